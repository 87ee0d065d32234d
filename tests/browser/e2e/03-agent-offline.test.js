// Messages sent while the agent page is closed wait in the table (isread=0) and are shown when
// the agent page opens: once before the agent ever opened it, and once after the agent closed
// the page (its stream connection gone) and opened it again.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openScenario } from '../lib/harness.js';

test('a message sent while the agent page was closed is shown when it opens', async (t) => {
  const s = await openScenario(t, 'agent-offline');
  const customer = await s.openCustomer();
  const name = await customer.username();

  // 1. No agent page yet.
  const early = '有人在吗?我先留个言';
  const earlySentAt = await customer.send(early);
  assert.equal(s.sql(`SELECT COUNT(*) FROM msg WHERE rec = 'admin' AND isread = 0;`).trim(), '1', 'stored unread');
  const agentContext = await s.newAgentContext();
  let agent = await s.openAgent(agentContext);
  let shownAt = await agent.waitForMessage(name, early);
  s.report('customer→agent (sent before the agent page existed)', shownAt - earlySentAt, `${shownAt - agent.startedAt} ms after the agent page started loading`);

  // 2. The agent closes the page (its stream ends) and the customer writes again.
  await agent.page.close();
  const later = '客服刚才是不是离开了?';
  const laterSentAt = await customer.send(later);
  agent = await s.openAgent(agentContext);
  shownAt = await agent.waitForMessage(name, later);
  s.report('customer→agent (sent while the agent page was closed)', shownAt - laterSentAt, `${shownAt - agent.startedAt} ms after the agent page reopened`);
  assert.deepEqual(await agent.inbox(), [{ from: name, content: later }], 'the reopened page shows what it missed, and only that');

  // 3. The conversation goes on live.
  const answer = '抱歉久等了,请说';
  const repliedAt = await agent.reply(name, answer);
  s.report('agent→customer', (await customer.waitForReply(answer)) - repliedAt);
  const followUp = '好的,谢谢';
  const followUpAt = await customer.send(followUp);
  s.report('customer→agent (live again)', (await agent.waitForMessage(name, followUp)) - followUpAt);
  assert.deepEqual(await customer.replies(), [answer]);
});
