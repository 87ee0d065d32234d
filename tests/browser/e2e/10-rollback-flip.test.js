// Rollback without touching the front, in a real browser: a customer and the agent chat through
// chat-server; mid-conversation AJsendmsg.php is flipped to the legacy PHP (the
// --endpoint-to-php-file rewritten, SIGHUP, the server's reload counter awaited), both sides go
// on (their messages now stored by the unchanged AJsendmsg.php on PHP-FPM, with the mysql_* shim),
// then it is flipped back and both go on again. The customer's long poll and the agent's stream
// stay open on chat-server throughout. Every message is shown exactly once, in order, on the right
// page, and the table holds each exactly once, read.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openScenario } from '../lib/harness.js';

test('AJsendmsg.php flipped to PHP mid-conversation and back loses and doubles nothing', async (t) => {
  const s = await openScenario(t, 'rollback-flip', { php: {} });
  const customer = await s.openCustomer();
  const name = await customer.username();
  const agent = await s.openAgent();

  const questions = [];
  const answers = [];
  /** What the customer's #msgzone must show, in order. */
  const customerZone = [];
  const stored = () => s.metric('chat_messages_sent_total');

  async function ask(text, phase) {
    const askedAt = await customer.send(text);
    customerZone.push(`你对客服说${text}`);
    questions.push(text);
    s.report(`customer→agent (${phase})`, (await agent.waitForMessage(name, text)) - askedAt);
  }
  async function answer(text, phase) {
    const repliedAt = await agent.reply(name, text);
    answers.push(text);
    const shownAt = await customer.waitForReply(text);
    customerZone.push(`客服对你说${text}`);
    s.report(`agent→customer (${phase})`, shownAt - repliedAt);
  }

  await ask('你好,订单1001', 'chat-server');
  await answer('您好,正在查询', 'chat-server');
  assert.equal(await stored(), 2, 'both stored by chat-server');

  await s.flipToPhp(['AJsendmsg.php']);
  await ask('还要多久', 'PHP');
  await answer('明天到', 'PHP');
  // Two in a row each way while the send runs on PHP.
  await ask('好的', 'PHP');
  await ask('谢谢', 'PHP');
  await answer('不客气', 'PHP');
  // The page polls again a second after each reply: this one waits unread meanwhile.
  await answer('还有问题请再联系', 'PHP');
  assert.equal(await stored(), 2, 'the six sends since the flip were stored by the legacy PHP');

  await s.flipToPhp([]);
  await ask('再见', 'chat-server again');
  await answer('再见', 'chat-server again');
  assert.equal(await stored(), 4, 'stored by chat-server again after the flip back');

  const shown = await customer.page.$$eval('#msgzone p', (ps) => ps.map((p) => p.textContent));
  assert.deepEqual(shown, customerZone, 'the customer page: each message once, in order');
  assert.deepEqual(
    await agent.inbox(),
    questions.map((content) => ({ from: name, content })),
    "the agent page: each of the customer's messages once, in order",
  );
  const agentText = await agent.page.evaluate(() => document.getElementById('msgzone').textContent);
  const echoes = agentText.split(`你对${name}说`).slice(1);
  assert.equal(echoes.length, answers.length, "the agent page: each of the agent's replies echoed once");
  answers.forEach((text, i) => assert.ok(echoes[i].startsWith(text), `echo ${i}: ${echoes[i]}`));

  const rows = s
    .sql('SELECT pos, rec, content, isread FROM msg ORDER BY mid;')
    .trim()
    .split('\n')
    .map((line) => line.split('\t'));
  const fromCustomer = rows.filter(([pos]) => pos === name).map(([, rec, content, isread]) => [rec, content, isread]);
  const fromAgent = rows.filter(([pos]) => pos === 'admin').map(([, rec, content, isread]) => [rec, content, isread]);
  assert.equal(rows.length, questions.length + answers.length, 'one row per message, no more');
  assert.deepEqual(
    fromCustomer,
    questions.map((q) => ['admin', q, '1']),
    "the customer's messages stored once each, in order, read",
  );
  assert.deepEqual(
    fromAgent,
    answers.map((a) => [name, a, '1']),
    "the agent's replies stored once each, in order, read",
  );
});
