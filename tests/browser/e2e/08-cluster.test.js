// Through the load balancer of `scripts/cluster` (nginx in front of three instances, each on its
// own Galera node): the customer's long poll and the agent's iframe stream are answered by
// different instances, and messages still go both ways. nginx names the instance that answered
// each request in X-Chat-Upstream; rounds of question and reply go on (round robin moves every
// request to the next instance) until one round had the reply reach the customer's poll on
// another instance than the agent's stream, and the question reach the stream from a send
// through another instance.
//
// Needs the cluster: `scripts/cluster browser` runs it with E2E_CLUSTER_URL set. Without it, it
// is reported as skipped (never as passed).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openScenario } from '../lib/harness.js';

const site = process.env.E2E_CLUSTER_URL;
const ROUNDS = 8;

/** Records which instance answered each request of `context` whose URL contains `script`. */
function upstreams(context, script) {
  const seen = [];
  context.on('response', async (response) => {
    if (response.url().includes(script)) seen.push((await response.headerValue('x-chat-upstream')) ?? '');
  });
  return seen;
}

test(
  'through the load balancer, a customer and the agent on different instances chat both ways',
  { skip: site ? false : 'needs the cluster: scripts/cluster browser sets E2E_CLUSTER_URL' },
  async (t) => {
    const s = await openScenario(t, 'cluster', { baseUrl: site });
    const agentContext = await s.newAgentContext();
    const stream = upstreams(agentContext, 'AJ04serve.php');
    const agentSends = upstreams(agentContext, 'AJsendmsg.php');
    const agent = await s.openAgent(agentContext);
    const customer = await s.openCustomer();
    const polls = upstreams(customer.context, 'AJ05comitajax.php');
    const customerSends = upstreams(customer.context, 'AJsendmsg.php');
    const name = await customer.username();

    let crossed;
    for (let round = 1; round <= ROUNDS && !crossed; round++) {
      const question = `第${round}个问题 ${Date.now()}`;
      const sentAt = await customer.send(question);
      const shownAt = await agent.waitForMessage(name, question);
      const answer = `第${round}个回答 ${Date.now()}`;
      const repliedAt = await agent.reply(name, answer);
      const repliedShownAt = await customer.waitForReply(answer);
      const agentStream = stream.at(-1);
      const questionVia = customerSends.at(-1);
      const replyVia = agentSends.at(-1);
      const pollVia = polls.at(-1);
      t.diagnostic(
        `round ${round}: question via ${questionVia} to the stream on ${agentStream}; ` +
          `reply via ${replyVia} to the poll on ${pollVia}`,
      );
      assert.ok(agentStream && pollVia, 'nginx names the instance that answered (X-Chat-Upstream)');
      if (pollVia !== agentStream && questionVia !== agentStream && replyVia !== pollVia) {
        crossed = true;
        s.report('customer→agent', shownAt - sentAt, `sent via ${questionVia}, stream on ${agentStream}`);
        s.report('agent→customer', repliedShownAt - repliedAt, `sent via ${replyVia}, poll on ${pollVia}`);
      } else {
        // A round is three requests, as many as instances: round robin would give the poll the
        // same instance every round. One more request shifts it.
        await fetch(new URL('.chat-server/health', site));
      }
    }
    assert.ok(crossed, `no round in ${ROUNDS} crossed instances both ways`);
  },
);
