// Page objects for the two legacy pages, used exactly as a person would: type into the textarea,
// click the button, click the customer's name. Nothing on the pages is changed; an init script
// only *observes* them so that latencies are measured inside the browser:
//   - a capture-phase click listener stamps Date.now() when a button is clicked;
//   - a MutationObserver on #msgzone stamps Date.now() with the zone's text on every change.
// Both stamps use the one system clock, so a click on one page and the text appearing on another
// (another context, another renderer process) give the delivery latency without Playwright's own
// round trips in it.

import { DEADLINE_MS } from './config.js';

function observeLegacyPage() {
  const e2e = { clicks: [], snapshots: [] };
  window.__e2e = e2e;
  document.addEventListener(
    'click',
    (event) => {
      const target = event.target;
      if (target && target.tagName === 'INPUT' && target.type === 'button') e2e.clicks.push(Date.now());
    },
    true,
  );
  document.addEventListener('DOMContentLoaded', () => {
    const zone = document.getElementById('msgzone');
    if (!zone) return; // the agent's iframe (AJ04serve.php) has none
    const snapshot = () => e2e.snapshots.push({ at: Date.now(), text: zone.textContent });
    snapshot();
    new MutationObserver(snapshot).observe(zone, { childList: true, subtree: true, characterData: true });
  });
}

/** Installs the observers in every page the context opens. */
export async function instrumentContext(context) {
  await context.addInitScript(observeLegacyPage);
}

class LegacyPage {
  constructor(context, page) {
    this.context = context;
    this.page = page;
  }

  /** The `username` cookie the browser holds for the site. */
  async username() {
    const cookie = (await this.context.cookies()).find((c) => c.name === 'username');
    return cookie?.value;
  }

  /** Waits until #msgzone's text contains `text`; returns the in-page time it first did. */
  async waitForText(text, timeout = DEADLINE_MS) {
    try {
      await this.page.waitForFunction(
        (wanted) => window.__e2e?.snapshots.some((s) => s.text.includes(wanted)),
        text,
        { timeout, polling: 25 },
      );
    } catch (error) {
      const shown = await this.page
        .evaluate(() => document.getElementById('msgzone')?.textContent.trim())
        .catch(() => '(page gone)');
      throw new Error(
        `${this.constructor.name} (${this.page.url()}): ${JSON.stringify(text)} not shown within ${timeout} ms; ` +
          `#msgzone shows ${JSON.stringify(shown)}`,
        { cause: error },
      );
    }
    return this.page.evaluate((wanted) => window.__e2e.snapshots.find((s) => s.text.includes(wanted)).at, text);
  }

  /** Types `text` into the page's textarea and clicks `button`; returns the in-page click time. */
  async typeAndClick(text, button) {
    await this.page.locator('textarea').first().fill(text);
    const before = await this.page.evaluate(() => window.__e2e.clicks.length);
    await this.page.locator(`input[type="button"][value="${button}"]`).click();
    return this.page.evaluate((n) => window.__e2e.clicks[n], before);
  }

  /** The page's clock now (same clock as the stamps). */
  now() {
    return this.page.evaluate(() => Date.now());
  }

  screenshot(file) {
    return this.page.screenshot({ path: file, fullPage: true });
  }
}

/** AJ05customer.php: textarea + 询问; replies arrive by the jQuery long poll as <p>客服对你说<br/>…</p>. */
export class CustomerPage extends LegacyPage {
  static async open(context) {
    const page = await context.newPage();
    const customer = new CustomerPage(context, page);
    await customer.load(() => page.goto('AJ05customer.php'));
    return customer;
  }

  /**
   * Loads (or reloads) the page via `navigate` and waits for its long poll to be sent. Returns the
   * document response, so callers can check its Set-Cookie.
   */
  async load(navigate) {
    const poll = this.page.waitForRequest((request) => request.url().includes('AJ05comitajax.php'));
    const response = await navigate();
    await poll;
    this.lastResponse = response;
    return response;
  }

  /** Sends `text` to the agent; returns the click time. The page echoes it once the server says OK. */
  async send(text) {
    const clickedAt = await this.typeAndClick(text, '询问');
    await this.waitForText(`你对客服说${text}`);
    return clickedAt;
  }

  /** The agent's replies shown on the page, in order. */
  replies() {
    return this.page.$$eval('#msgzone p', (ps) =>
      ps.map((p) => p.textContent).filter((t) => t.startsWith('客服对你说')).map((t) => t.slice('客服对你说'.length)),
    );
  }

  /** Waits for the reply `text`; returns the in-page time it appeared. */
  waitForReply(text) {
    return this.waitForText(`客服对你说${text}`);
  }
}

/** AJ04custserv.php: messages arrive through the hidden AJ04serve.php iframe stream. */
export class AgentPage extends LegacyPage {
  static async open(context) {
    const page = await context.newPage();
    const stream = page.waitForResponse((response) => response.url().includes('AJ04serve.php'));
    const startedAt = Date.now();
    // The page never fires `load`: its iframe is an endless stream.
    await page.goto('AJ04custserv.php', { waitUntil: 'domcontentloaded' });
    await stream; // the stream's response headers arrived: it is open
    const agent = new AgentPage(context, page);
    agent.startedAt = startedAt;
    return agent;
  }

  /** Messages shown as `<a onclick="replay('NAME')">NAME</a>对你说<br />CONTENT<br />`, in order. */
  inbox() {
    return this.page.evaluate(() => {
      const out = [];
      for (const a of document.querySelectorAll('#msgzone a')) {
        if (a.nextSibling?.textContent !== '对你说') continue;
        let node = a.nextSibling;
        while (node && node.nodeName !== 'BR') node = node.nextSibling;
        node = node?.nextSibling;
        let content = '';
        while (node && node.nodeName !== 'BR') {
          content += node.textContent;
          node = node.nextSibling;
        }
        out.push({ from: a.textContent, content });
      }
      return out;
    });
  }

  /** Waits for `content` from `from`; returns the in-page time it appeared. */
  waitForMessage(from, content) {
    return this.waitForText(`${from}对你说${content}`);
  }

  /**
   * Clicks the customer's name (the page puts it in #rec), types `text`, clicks 回复; returns the
   * click time. Waits for the page's own echo (`你对NAME说…`), i.e. the server's OK, because the
   * page reuses one XMLHttpRequest and a second reply before that would abort the first.
   */
  async reply(to, text) {
    const name = this.page.locator('#msgzone a').filter({ hasText: new RegExp(`^${to}$`) }).first();
    await name.click();
    await this.page.waitForFunction((who) => document.getElementById('rec').textContent === who, to, {
      timeout: DEADLINE_MS,
      polling: 25,
    });
    const clickedAt = await this.typeAndClick(text, '回复');
    await this.waitForText(`你对${to}说${text}`);
    return clickedAt;
  }
}
