// Three customers at once, each in their own browser context (own cookie, own long poll): all
// three messages reach the agent with the right sender, and each customer receives only the
// reply meant for them.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openScenario, waitFor } from '../lib/harness.js';

test('three customers at once each receive only their own replies', async (t) => {
  const s = await openScenario(t, 'three-customers');
  const agent = await s.openAgent();

  const customers = [];
  for (let i = 0; i < 3; i++) customers.push(await s.openCustomer());
  // rand(100,999) can give two newcomers the same name; a real second visitor would then share a
  // mailbox. Give a clashing customer a new cookie the way the page does: clear it and reload.
  for (let i = 1; i < customers.length; i++) {
    const taken = await Promise.all(customers.slice(0, i).map((c) => c.username()));
    await waitFor('a distinct customer name', async () => {
      if (!taken.includes(await customers[i].username())) return true;
      await customers[i].context.clearCookies();
      await customers[i].load(() => customers[i].page.reload());
      return false;
    });
  }
  const names = await Promise.all(customers.map((c) => c.username()));
  assert.equal(new Set(names).size, 3, `three distinct names: ${names}`);

  const questions = ['一号顾客:发票在哪里开?', '二号顾客:可以退货吗?', '三号顾客:运费多少?'];
  // All three click 询问 together.
  const sentAt = await Promise.all(customers.map((c, i) => c.send(questions[i])));
  const shownAt = await Promise.all(names.map((name, i) => agent.waitForMessage(name, questions[i])));
  names.forEach((name, i) => s.report(`customer→agent (${name})`, shownAt[i] - sentAt[i]));

  const inbox = await agent.inbox();
  assert.deepEqual(
    [...inbox].sort((a, b) => a.from.localeCompare(b.from)),
    names.map((from, i) => ({ from, content: questions[i] })).sort((a, b) => a.from.localeCompare(b.from)),
    'each message shown once, under its sender',
  );

  // The agent answers each in turn (the page has one XMLHttpRequest; reply() waits for its OK).
  const answers = names.map((name) => `${name},这是给你的回复`);
  const repliedAt = [];
  for (let i = 0; i < 3; i++) repliedAt.push(await agent.reply(names[i], answers[i]));
  const receivedAt = await Promise.all(customers.map((c, i) => c.waitForReply(answers[i])));
  names.forEach((name, i) => s.report(`agent→customer (${name})`, receivedAt[i] - repliedAt[i]));

  // Every reply is delivered and nothing is left unread, so nothing more can arrive anywhere:
  // what each page shows now is all it will ever get.
  await waitFor('no unread rows', () => s.sql('SELECT COUNT(*) FROM msg WHERE isread = 0;').trim() === '0');
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(await customers[i].replies(), [answers[i]], `${names[i]} sees only their own reply`);
  }
});
