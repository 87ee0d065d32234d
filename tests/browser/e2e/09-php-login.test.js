// The operator's own PHP in front of the chat, all through chat-server with --php-fpm: a login page
// with a PHP session (tests/browser/fixtures/login.php and chat.php, copied beside the unchanged
// legacy pages into the scenario's docroot) runs on PHP-FPM; Chromium logs in, the PHPSESSID
// cookie goes back and forth, and the page behind the login leads to the unchanged customer and
// agent pages, which chat both ways (those five scripts answered by chat-server itself).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openScenario } from '../lib/harness.js';
import { AgentPage, CustomerPage } from '../lib/pages.js';

const sessionId = (header) => /(?:^|[;\n]\s*)PHPSESSID=([^;\s]+)/.exec(header ?? '')?.[1];

test('a PHP login page with a session cookie leads to the unchanged chat, all through chat-server', async (t) => {
  const s = await openScenario(t, 'php-login', { php: { fixtures: ['login.php', 'chat.php'] } });

  /** Logs `name` in from a fresh context, as a person would; returns the page on chat.php. */
  async function logIn(role, name) {
    const context = await s.newContext(role);
    const page = await context.newPage();
    await page.goto('chat.php');
    assert.match(page.url(), /\/login\.php$/, `${role}: no session yet, so chat.php sends the browser to log in`);

    const posted = () =>
      page.waitForResponse((r) => r.url().endsWith('/login.php') && r.request().method() === 'POST');
    await page.fill('input[name="name"]', name);
    await page.fill('input[name="password"]', 'wrong');
    const refused = posted();
    await page.click('#login');
    assert.equal((await refused).status(), 200);
    assert.equal(await page.textContent('#error'), '用户名或密码错误', `${role}: a wrong password is refused`);

    await page.fill('input[name="name"]', name);
    await page.fill('input[name="password"]', 'letmein');
    const accepted = posted();
    const behind = page.waitForRequest((r) => r.url().endsWith('/chat.php'));
    await page.click('#login');
    const login = await accepted;
    assert.equal(login.status(), 302, `${role}: PHP's redirect`);
    assert.equal(await login.headerValue('location'), 'chat.php');
    const issued = sessionId(await login.headerValue('set-cookie'));
    assert.ok(issued, `${role}: the login set a new PHPSESSID`);
    const returned = sessionId(await (await behind).headerValue('cookie'));
    assert.equal(returned, issued, `${role}: the browser sent the session cookie back`);
    await page.waitForSelector('#welcome');
    assert.equal(await page.textContent('#welcome'), `欢迎, ${name}`, `${role}: PHP found the session`);
    return { context, page };
  }

  const asCustomer = await logIn('customer', '张三');
  const customer = new CustomerPage(asCustomer.context, asCustomer.page);
  await customer.load(() => asCustomer.page.click('#customer'));
  const name = await customer.username();
  assert.match(name ?? '', /^admin[1-9][0-9]{2}$/, 'the unchanged customer page gave its username cookie');

  const asAgent = await logIn('agent', '客服小李');
  const stream = asAgent.page.waitForResponse((r) => r.url().includes('AJ04serve.php'));
  await asAgent.page.click('#agent');
  await stream;
  const agent = new AgentPage(asAgent.context, asAgent.page);
  assert.equal(await agent.username(), 'admin');

  const question = '登录以后能聊天吗?';
  const askedAt = await customer.send(question);
  s.report('customer→agent', (await agent.waitForMessage(name, question)) - askedAt);
  const answer = '可以,会话一直有效';
  const repliedAt = await agent.reply(name, answer);
  s.report('agent→customer', (await customer.waitForReply(answer)) - repliedAt);

  assert.deepEqual(await agent.inbox(), [{ from: name, content: question }]);
  assert.deepEqual(await customer.replies(), [answer]);
  assert.equal(
    s.sql('SELECT rec, pos, content, isread FROM msg ORDER BY mid;'),
    `admin\t${name}\t${question}\t1\n${name}\tadmin\t${answer}\t1\n`,
  );
  for (const side of [asCustomer, asAgent]) {
    const cookies = (await side.context.cookies()).map((c) => c.name).sort();
    assert.deepEqual(cookies, ['PHPSESSID', 'username'], 'the session and the chat cookie live side by side');
  }
});
