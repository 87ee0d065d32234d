// Text fidelity through the real pages.
//
// The customer page posts with jQuery ($.post encodes every field), so anything arrives intact.
// The agent page posts `'rec='+rec+'&content='+cont` without encoding; the browser sends the
// string as UTF-8, and PHP decoded that body with its usual rules: `+` is a space, `&` ends the
// field, `%XX` is a byte, and a `%` not followed by two hex digits stays as it is. Chinese and
// emoji have none of those characters, so they go through both ways unchanged.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openScenario } from '../lib/harness.js';

test('Chinese text and emoji round-trip both ways', async (t) => {
  const s = await openScenario(t, 'chinese-and-emoji');
  const customer = await s.openCustomer();
  const name = await customer.username();
  const agent = await s.openAgent();

  // BMP Chinese, full-width punctuation, astral-plane emoji (surrogate pairs in JSON's \uXXXX),
  // a ZWJ sequence and a flag.
  const question = '您好!请问“包邮”吗?😀🎉 👨‍👩‍👧 🇨🇳';
  const askedAt = await customer.send(question);
  s.report('customer→agent', (await agent.waitForMessage(name, question)) - askedAt);

  const answer = '包邮的,明天发货 🚚👍 谢谢惠顾🙏';
  const answeredAt = await agent.reply(name, answer);
  s.report('agent→customer', (await customer.waitForReply(answer)) - answeredAt);

  assert.deepEqual(await agent.inbox(), [{ from: name, content: question }]);
  assert.deepEqual(await customer.replies(), [answer]);
  assert.deepEqual(
    s.sql('SELECT content FROM msg ORDER BY mid;').trimEnd().split('\n'),
    [question, answer],
    'stored as the same characters (utf8mb4)',
  );
});

test("the agent page's unencoded reply is decoded as PHP did; the customer's is exact", async (t) => {
  const s = await openScenario(t, 'legacy-form-encoding');
  const customer = await s.openCustomer();
  const name = await customer.username();
  const agent = await s.openAgent();

  const question = '1+1=2 & 100% %41 真的吗?';
  const askedAt = await customer.send(question);
  s.report('customer→agent', (await agent.waitForMessage(name, question)) - askedAt);

  // Body: rec=adminNNN&content=a+b%21 100% &cut -> content is "a+b%21 100% ", decoded "a b! 100% ".
  const typed = 'a+b%21 100% &cut';
  const delivered = 'a b! 100% ';
  const answeredAt = await agent.reply(name, typed); // the agent page echoes what was typed
  s.report('agent→customer', (await customer.waitForReply(delivered)) - answeredAt);

  assert.deepEqual(await agent.inbox(), [{ from: name, content: question }], 'jQuery-encoded text arrives exactly');
  assert.deepEqual(await customer.replies(), [delivered], 'the raw body is decoded as PHP decoded it');
});
