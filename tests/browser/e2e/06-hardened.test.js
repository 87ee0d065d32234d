// The opt-in hardened mode, in the real browser, with the unchanged legacy pages:
//   - the agent page opened with the agent's credentials (typed into the URL, as a person would)
//     works: its own iframe stream and its own replies (XMLHttpRequest) carry the credentials,
//     which the server requires for both; without them the page is 401;
//   - customers get signed identities (`admin` + 12 digits, an HttpOnly companion cookie that the
//     page's script cannot read);
//   - script in a message, either way, or in a sender's name, does not run in the other side's
//     browser; the people read the payloads as text.
// The control scenario runs the same payloads against the default (legacy) mode and shows they
// do run there, so the hardened scenario's "did not run" is a real observation.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openScenario } from '../lib/harness.js';
import { AgentPage, CustomerPage } from '../lib/pages.js';

const PASSWORD = 'e2e agent password';

// Each payload marks `window.__xss` only on the *recipient's* page: the sender's page echoes its
// own text into innerHTML too (the legacy pages do that themselves), and must not count.
// `huifu` exists only on the agent page, `xunwen` only on the customer page. The agent's reply
// avoids `&` and `+`: its page posts the text unencoded.
const TO_AGENT = '<img src=/xss-probe onerror=window.huifu?window.__xss=1:0>';
const TO_CUSTOMER = '<img src=/xss-probe onerror=window.xunwen?window.__xss=1:0>';
const EVIL_NAME = "x');window.__xssName=1;('";

async function plantEvilName(s) {
  s.sql(`INSERT INTO msg(rec,pos,content) VALUES('admin','${EVIL_NAME.replace(/'/g, "''")}','name probe');`);
}

async function clickEvilName(agent, shownName) {
  await agent.waitForText('name probe');
  await agent.page.locator('#msgzone a').filter({ hasText: shownName }).first().click();
  await agent.page.waitForFunction(() => document.getElementById('rec').textContent !== '', null, {
    polling: 25,
  });
}

const marked = (page, flag) => page.page.evaluate((f) => window[f] === 1, flag);

// The sender's own page echoes a payload as markup (the legacy pages do that to their own text),
// so "sent" is observed as the page clearing its textarea, which it does on the server's OK.
async function sendRaw(page, text, button) {
  await page.typeAndClick(text, button);
  await page.page.waitForFunction(() => document.getElementsByTagName('textarea')[0].value === '', null, {
    polling: 25,
  });
}

async function replyRaw(agent, to, text) {
  await agent.page.locator('#msgzone a').filter({ hasText: new RegExp(`^${to}$`) }).first().click();
  await agent.page.waitForFunction((who) => document.getElementById('rec').textContent === who, to, { polling: 25 });
  await sendRaw(agent, text, '回复');
}

test('hardened: credentials, signed identities, and no script from messages or names', async (t) => {
  const s = await openScenario(t, 'hardened', {
    serverArgs: ['--agent-password', PASSWORD, '--cookie-secret', 'e2e cookie secret'],
    expectedErrors: [{ url: '/xss-probe' }, { role: 'intruder' }],
  });

  // Without credentials: 401 and a challenge, for the page and for its stream. (Headless
  // Chromium cannot show the password prompt, so a navigation would only fail; fetch() shows the
  // answer itself.)
  const intruder = await (await s.newContext('intruder')).newPage();
  await intruder.goto('.chat-server/health');
  for (const script of ['AJ04custserv.php', 'AJ04serve.php']) {
    const refused = await intruder.evaluate(async (url) => {
      // credentials: 'omit' so Chromium does not wait for a password prompt it cannot show.
      const response = await fetch(url, { credentials: 'omit' });
      return { status: response.status, challenge: response.headers.get('www-authenticate') };
    }, `/${script}`);
    assert.equal(refused.status, 401, script);
    assert.match(refused.challenge ?? '', /^Basic realm=/);
  }

  const customer = await s.openCustomer();
  const name = await customer.username();
  assert.match(name ?? '', /^admin[1-9][0-9]{11}$/, 'a newcomer gets admin + 12 digits');
  const signature = (await customer.context.cookies()).find((c) => c.name === 'username_sig');
  assert.ok(signature?.httpOnly, 'the signature cookie is HttpOnly');
  assert.equal(signature.sameSite, 'Lax');
  assert.ok(
    !(await customer.page.evaluate(() => document.cookie)).includes('username_sig'),
    "the page's script cannot read the signature",
  );

  const agentContext = await s.newAgentContext(`admin:${PASSWORD}`);
  const streamStatus = new Promise((resolve) =>
    agentContext.on('response', (r) => r.url().includes('AJ04serve.php') && resolve(r.status())),
  );
  const agent = await AgentPage.open(agentContext);
  assert.equal(await streamStatus, 200, 'the iframe stream carried the credentials');
  const csp = await customer.lastResponse.headerValue('content-security-policy');
  assert.match(csp ?? '', /object-src 'none'/);

  // Customer → agent: the payload is shown as text and does not run on the agent's page.
  await sendRaw(customer, TO_AGENT, '询问');
  await agent.waitForMessage(name, TO_AGENT);
  assert.equal(await agent.page.locator('#msgzone img').count(), 0, 'no element from the message');
  assert.equal(await marked(agent, '__xss'), false, 'the message ran no script on the agent page');

  // Agent → customer: the reply is accepted (the XHR carried the credentials the server requires
  // for `admin`), shown as text, and runs nothing on the customer's page.
  await replyRaw(agent, name, TO_CUSTOMER);
  await customer.waitForReply(TO_CUSTOMER);
  assert.equal(await customer.page.locator('#msgzone p img').count(), 1, "only the customer's own echo");
  assert.equal(await marked(customer, '__xss'), false, 'the reply ran no script on the customer page');

  // A name with script in it (a row written by another writer): shown without its quotes, and
  // clicking it runs nothing.
  await plantEvilName(s);
  await clickEvilName(agent, 'xwindowxssName1');
  assert.equal(await marked(agent, '__xssName'), false, 'the name ran no script');
  assert.equal(await agent.page.evaluate(() => document.getElementById('rec').textContent), 'xwindowxssName1');
});

test('hardened control: the same payloads run script in the default (legacy) mode', async (t) => {
  const s = await openScenario(t, 'hardened-control', { expectedErrors: [{ url: '/xss-probe' }] });
  const customer = await s.openCustomer();
  const name = await customer.username();
  const agent = await s.openAgent();
  await sendRaw(customer, TO_AGENT, '询问');
  await agent.page.waitForFunction(() => window.__xss === 1, null, { polling: 25 });
  await replyRaw(agent, name, TO_CUSTOMER);
  await customer.page.waitForFunction(() => window.__xss === 1, null, { polling: 25 });
  await plantEvilName(s);
  await agent.waitForText('name probe');
  await agent.page.locator('#msgzone a').filter({ hasText: 'window.__xssName' }).first().click();
  assert.equal(await marked(agent, '__xssName'), true, 'the legacy page runs a name as script');
});
