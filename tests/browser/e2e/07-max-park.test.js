// With --max-park-ms, a long poll that waited that long is answered `null`. The unchanged
// customer page takes that as "poll again": its success handler schedules the next poll first,
// then stops at `res.content` (a TypeError in the console, nothing on the page). So a customer
// behind a proxy that cuts idle connections keeps polling, sees nothing odd, and still gets the
// agent's reply.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openScenario, waitFor } from '../lib/harness.js';

test('a poll answered null after the maximum park time polls again and shows nothing', async (t) => {
  const s = await openScenario(t, 'max-park', {
    serverArgs: ['--max-park-ms', '300'],
    tolerate: [/Cannot read properties of null \(reading 'content'\)/],
  });
  const customer = await s.openCustomer();
  const name = await customer.username();
  let polls = 0;
  customer.page.on('request', (request) => {
    if (request.url().includes('AJ05comitajax.php')) polls += 1;
  });
  await waitFor('three more long polls after null answers', () => polls >= 3);
  assert.equal(
    await customer.page.$$eval('#msgzone p', (ps) => ps.length),
    0,
    'nothing was added to the page',
  );

  const agent = await s.openAgent();
  const question = '有人吗?';
  const askedAt = await customer.send(question);
  s.report('customer→agent', (await agent.waitForMessage(name, question)) - askedAt);
  const reply = '您好,请问有什么可以帮您?';
  const repliedAt = await agent.reply(name, reply);
  s.report('agent→customer (between null answers)', (await customer.waitForReply(reply)) - repliedAt);
  assert.deepEqual(await customer.replies(), [reply]);
});
