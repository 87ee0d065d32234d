// A customer reloads the page mid-conversation: the page keeps its cookie (no new name), and a
// reply the agent sends while the page is reloading -- after the old page's long poll was
// abandoned and before the new page's long poll reached the server -- is delivered to the
// reloaded page.
//
// To make "while reloading" certain rather than a race, the reloaded page's first long-poll
// request is held in the browser (Playwright route) until the agent's reply is stored, then let
// through unchanged.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openScenario, waitFor } from '../lib/harness.js';

test('a customer page reloaded mid-conversation keeps its cookie and receives what was sent meanwhile', async (t) => {
  const s = await openScenario(t, 'customer-reload');
  const customer = await s.openCustomer();
  const name = await customer.username();
  const agent = await s.openAgent();

  const question = '我的快递单号是多少?';
  const askedAt = await customer.send(question);
  s.report('customer→agent', (await agent.waitForMessage(name, question)) - askedAt);
  const first = '请稍等,我查一下';
  const firstAt = await agent.reply(name, first);
  s.report('agent→customer (before the reload)', (await customer.waitForReply(first)) - firstAt);

  // Hold the reloaded page's first long poll in the browser.
  let held;
  const pollHeld = new Promise((resolve) => {
    customer.page.route('**/AJ05comitajax.php*', (route) => {
      if (held) return route.continue();
      held = route;
      resolve();
    });
  });
  const reloaded = await customer.page.reload();
  await pollHeld;
  assert.equal(await customer.username(), name, 'the reloaded page keeps the cookie');
  assert.equal(await reloaded.headerValue('set-cookie'), null, 'a returning customer is not given a new name');
  assert.deepEqual(await customer.replies(), [], 'the reloaded page starts empty, as the legacy did');

  const meanwhile = '单号是 SF1234567890';
  const meanwhileAt = await agent.reply(name, meanwhile);
  assert.equal(
    s.sql(`SELECT COUNT(*) FROM msg WHERE rec = '${name}' AND isread = 0;`).trim(),
    '1',
    'the reply waits unread: no long poll of this customer is at the server',
  );
  const releasedAt = await customer.now();
  await held.continue();
  const meanwhileShownAt = await customer.waitForReply(meanwhile);
  s.report(
    'agent→customer (sent during the reload)',
    meanwhileShownAt - meanwhileAt,
    `${meanwhileShownAt - releasedAt} ms after the reloaded page's long poll was let through`,
  );
  await customer.page.unroute('**/AJ05comitajax.php*');

  // The reloaded page keeps polling: a live reply and a new question still go through. (The page
  // re-polls 1 s after each reply it receives, so this reply may wait for that.)
  const live = '还有别的问题吗?';
  const liveAt = await agent.reply(name, live);
  s.report('agent→customer (after the reload)', (await customer.waitForReply(live)) - liveAt);
  const thanks = '没有了,谢谢';
  const thanksAt = await customer.send(thanks);
  s.report('customer→agent (after the reload)', (await agent.waitForMessage(name, thanks)) - thanksAt);

  assert.deepEqual(await customer.replies(), [meanwhile, live]);
  await waitFor('no unread rows', () => s.sql('SELECT COUNT(*) FROM msg WHERE isread = 0;').trim() === '0');
});
