// The whole loop, as the issue states it: a customer opens AJ05customer.php and gets a username
// cookie; the agent opens AJ04custserv.php; the customer's message reaches the agent through the
// iframe stream; the agent clicks the name and replies; the reply reaches the customer through the
// long poll. Screenshots of both pages go to docs/ for the README.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';

import { openScenario, repoRoot } from '../lib/harness.js';

test('a customer and the agent chat both ways through the unchanged legacy pages', async (t) => {
  const s = await openScenario(t, 'main');

  const customer = await s.openCustomer();
  const name = await customer.username();
  assert.match(name ?? '', /^admin[1-9][0-9]{2}$/, 'a newcomer gets username=adminNNN (rand(100,999))');
  assert.match(
    (await customer.lastResponse.headerValue('set-cookie')) ?? '',
    /^username=admin[1-9][0-9]{2}\b/,
    'the cookie came from the page, as setcookie() sent it',
  );

  const agent = await s.openAgent();
  assert.equal(await agent.username(), 'admin', 'the agent page sets username=admin');

  const question = '你好,我的订单还没到';
  const sentAt = await customer.send(question);
  const shownToAgentAt = await agent.waitForMessage(name, question);
  s.report('customer→agent', shownToAgentAt - sentAt);

  const answer = '您好,马上为您查询';
  const repliedAt = await agent.reply(name, answer);
  const shownToCustomerAt = await customer.waitForReply(answer);
  s.report('agent→customer', shownToCustomerAt - repliedAt);

  assert.deepEqual(await agent.inbox(), [{ from: name, content: question }]);
  assert.deepEqual(await customer.replies(), [answer]);

  await customer.screenshot(path.join(repoRoot, 'docs', 'e2e-customer.png'));
  await agent.screenshot(path.join(repoRoot, 'docs', 'e2e-agent.png'));
});
