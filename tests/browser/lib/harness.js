// Test harness for the real-browser suite: one fresh MariaDB database, one chat-server process
// and one Chromium per scenario, all torn down after the scenario whether it passed or not.
//
// It builds nothing. It expects:
//   CHAT_SERVER_BIN   the release binary (default target/release/chat-server, relative to the repo)
//   E2E_CHROMIUM      the browser (default /usr/bin/chromium, Debian's package)
//   E2E_DB_HOST/E2E_DB_PORT/E2E_DB_USER/E2E_DB_PASSWORD
//                     the MariaDB server to create scratch databases on (default root@127.0.0.1:3306)
//   E2E_DELIVERY_TIMEOUT_MS
//                     how long any one wait on the pages may take before the test fails (default 15000)
//   E2E_PHP_FPM       php-fpm, for scenarios that run PHP (default /usr/sbin/php-fpm8.2, Debian's
//                     php8.2-fpm, with php8.2-mysql for the legacy scripts)

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { DEADLINE_MS } from './config.js';
import { AgentPage, CustomerPage, instrumentContext } from './pages.js';

export { DEADLINE_MS };

/** The repository root (tests/browser/lib/../../..). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Where run artefacts (server logs, latencies.jsonl) go; git-ignored. */
export const resultsDir = path.join(repoRoot, 'tests', 'browser', 'test-results');


const serverBin = path.resolve(repoRoot, process.env.CHAT_SERVER_BIN ?? 'target/release/chat-server');
const chromiumPath = process.env.E2E_CHROMIUM ?? '/usr/bin/chromium';
const phpFpmPath = process.env.E2E_PHP_FPM ?? '/usr/sbin/php-fpm8.2';
// Debian's production php.ini for FPM, as compat/legacy-up uses it.
const phpFpmIni = '/etc/php/8.2/fpm/php.ini';
const db = {
  host: process.env.E2E_DB_HOST ?? '127.0.0.1',
  port: Number(process.env.E2E_DB_PORT ?? 3306),
  user: process.env.E2E_DB_USER ?? 'root',
  password: process.env.E2E_DB_PASSWORD ?? '',
};

/** The flags the issue prescribes for Debian's Chromium in this sandbox. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// Last-resort cleanup if the test process exits without running the after-hooks (an uncaught
// error, a test-runner timeout): kill our servers and drop our databases synchronously.
const emergency = new Set();
process.on('exit', () => {
  for (const fn of emergency) {
    try {
      fn();
    } catch {
      // Nothing more can be done while exiting.
    }
  }
});

/** Runs an SQL script through the mariadb/mysql command-line client; returns its stdout. */
export function sql(script, database) {
  const args = [
    '--protocol=TCP',
    `--host=${db.host}`,
    `--port=${db.port}`,
    `--user=${db.user}`,
    '--batch',
    '--skip-column-names',
    '--default-character-set=utf8mb4',
  ];
  if (db.password) args.push(`--password=${db.password}`);
  if (database) args.push(database);
  const result = spawnSync(sqlClient(), args, { input: script, encoding: 'utf8', timeout: DEADLINE_MS });
  if (result.error || result.status !== 0) {
    throw new Error(
      `SQL failed (${sqlClient()} ${args.join(' ')}): ${result.error ?? result.stderr.trim()}\n--- script ---\n${script}`,
    );
  }
  return result.stdout;
}

let client;
function sqlClient() {
  if (!client) {
    client = ['mariadb', 'mysql'].find((name) => spawnSync(name, ['--version']).status === 0);
    if (!client) throw new Error('neither the `mariadb` nor the `mysql` client is installed');
  }
  return client;
}

/** Creates a fresh database with the legacy `msg` table; returns its name. */
function createDatabase(label) {
  const slug = label.toLowerCase().replace(/[^a-z0-9]+/g, '_').slice(0, 30);
  const name = `e2e_${slug}_${randomBytes(4).toString('hex')}`;
  sql(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4;`);
  const drop = () => sql(`DROP DATABASE IF EXISTS \`${name}\`;`);
  emergency.add(drop);
  sql(fs.readFileSync(path.join(repoRoot, 'sql', 'schema.sql'), 'utf8'), name);
  return {
    name,
    drop() {
      emergency.delete(drop);
      drop();
    },
  };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Starts chat-server on a free port against `database`; resolves once /.chat-server/health says ok. */
async function startServer(database, logPath, extraArgs = []) {
  if (!fs.existsSync(serverBin)) {
    throw new Error(`no server binary at ${serverBin}: run \`cargo build --release\` or set CHAT_SERVER_BIN`);
  }
  // The server reads every flag from the environment too; keep the caller's CHAT_* out of it so
  // only the flags below decide how it runs.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('CHAT_') && key !== 'DATABASE_URL'),
  );
  env.NO_COLOR = '1';
  env.RUST_LOG = process.env.RUST_LOG ?? 'info';
  const auth = db.password ? `${encodeURIComponent(db.user)}:${encodeURIComponent(db.password)}` : encodeURIComponent(db.user);
  const databaseUrl = `mysql://${auth}@${db.host}:${db.port}/${database}`;

  // A port found free can be taken before the server binds it; try a few.
  let lastError;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const log = fs.openSync(logPath, 'a');
    const child = spawn(
      serverBin,
      [
        '--listen',
        `127.0.0.1:${port}`,
        '--database-url',
        databaseUrl,
        '--site',
        path.join(repoRoot, 'compat', 'legacy-site'),
        ...extraArgs,
      ],
      { cwd: repoRoot, env, stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    const kill = () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL');
    emergency.add(kill);
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const baseUrl = `http://127.0.0.1:${port}/`;
    const deadline = Date.now() + DEADLINE_MS;
    let outcome;
    while (!outcome) {
      const answer = await Promise.race([
        exited.then((how) => ({ exited: how })),
        fetch(new URL('.chat-server/health', baseUrl), { signal: AbortSignal.timeout(1000) })
          .then(async (response) => ({ body: (await response.text()).trim() }))
          .catch((error) => ({ error })),
      ]);
      if (answer.exited) outcome = { exited: answer.exited };
      else if (answer.body === 'ok') outcome = { ok: true };
      else if (Date.now() > deadline) outcome = { timeout: answer.error ?? `health said ${JSON.stringify(answer.body)}` };
      else await new Promise((resolve) => setTimeout(resolve, 50)); // retry interval inside a deadline
    }
    if (outcome.ok) {
      return {
        baseUrl,
        /** Sends `signal` to the server's pid (SIGHUP re-reads --endpoint-to-php-file). */
        signal(name) {
          if (!child.kill(name)) throw new Error(`could not send ${name} to chat-server (pid ${child.pid})`);
        },
        async stop() {
          await stopChild(child, exited);
          emergency.delete(kill);
        },
      };
    }
    kill();
    emergency.delete(kill);
    lastError = outcome.exited
      ? `chat-server exited (${JSON.stringify(outcome.exited)}) before it was healthy`
      : `chat-server not healthy within ${DEADLINE_MS} ms: ${outcome.timeout}`;
  }
  throw new Error(`${lastError}; log:\n${tail(logPath)}`);
}

/** Waits for a child's exit after `signal`, then SIGKILL if it ignored it for DEADLINE_MS. */
async function stopChild(child, exited, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), DEADLINE_MS);
  await exited;
  clearTimeout(timer);
}

/**
 * The legacy PHP of the scenario's own: a scratch copy of compat/legacy-site whose AJconn.php
 * uses `database` (the sed of compat/fuzz-live), plus the `fixtures` (file names under
 * tests/browser/fixtures/, copied beside the legacy pages), served by a php-fpm started by pid
 * and configured as compat/legacy-up configures it: Debian's production php.ini, a static pool,
 * the mysql_* shim (compat/php/mysql.php) auto-prepended. Sessions are kept in the run directory.
 * Resolves to { site, socket, stop }.
 */
async function startPhpFpm(database, fixtures, logPath) {
  if (!fs.existsSync(phpFpmPath)) {
    throw new Error(`no php-fpm at ${phpFpmPath}: tests/browser/run installs php8.2-fpm and php8.2-mysql`);
  }
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-e2e-php-'));
  const removeRun = () => fs.rmSync(run, { recursive: true, force: true });
  const site = path.join(run, 'site');
  fs.cpSync(path.join(repoRoot, 'compat', 'legacy-site'), site, { recursive: true });
  const conn = path.join(site, 'AJconn.php');
  const original = fs.readFileSync(conn, 'utf8');
  if (!original.includes('use test')) throw new Error(`${conn} has no 'use test' to rewrite`);
  fs.writeFileSync(conn, original.replace('use test', `use ${database}`));
  for (const fixture of fixtures) {
    fs.copyFileSync(path.join(repoRoot, 'tests', 'browser', 'fixtures', fixture), path.join(site, fixture));
  }
  fs.mkdirSync(path.join(run, 'sessions'));
  const socket = path.join(run, 'php-fpm.sock');
  const { username } = os.userInfo();
  const group = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim();
  const shim = path.join(repoRoot, 'compat', 'php', 'mysql.php');
  fs.writeFileSync(
    path.join(run, 'php-fpm.conf'),
    [
      '; Written by tests/browser/lib/harness.js, as compat/legacy-up writes its pool.',
      '[global]',
      `error_log = ${run}/php-fpm.log`,
      'daemonize = no',
      '',
      '[legacy]',
      `user = ${username}`,
      `group = ${group}`,
      `listen = ${socket}`,
      'listen.mode = 0660',
      'pm = static',
      'pm.max_children = 6',
      'catch_workers_output = yes',
      `php_admin_value[auto_prepend_file] = ${shim}`,
      `php_admin_value[error_log] = ${run}/php-errors.log`,
      `php_admin_value[session.save_path] = ${run}/sessions`,
      '',
    ].join('\n'),
  );
  const log = fs.openSync(logPath, 'a');
  const args = [...(process.getuid() === 0 ? ['-R'] : []), '-F', '-c', phpFpmIni, '-y', path.join(run, 'php-fpm.conf')];
  const child = spawn(phpFpmPath, args, { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    removeRun();
  };
  emergency.add(kill);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const stop = async () => {
    // TERM to the master ends its workers at once, legacy long polls included.
    await stopChild(child, exited);
    emergency.delete(kill);
    removeRun();
  };
  try {
    await waitFor(`php-fpm's socket ${socket}`, () => {
      if (child.exitCode !== null) throw new Error(`php-fpm exited (${child.exitCode}); see ${run}/php-fpm.log`);
      return fs.existsSync(socket);
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { site, socket, run, stop };
}

function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Sets up one scenario for the node:test context `t`: fresh database, server, Chromium. Everything
 * is torn down by an after-hook (browser, then server, then database), and the hook fails the
 * test if any page threw, alerted or got an HTTP error.
 *
 * Options: `serverArgs`, extra chat-server flags (the hardened mode, the maximum park time);
 * `expectedErrors`, the HTTP errors a scenario provokes on purpose and checks itself, as
 * `{ role, url }` (either may be left out; `url` is a substring); `tolerate`, patterns of page
 * errors a scenario expects and proves harmless; `baseUrl`, a running site to use instead (a
 * load balancer in front of several instances): then no database or server is started;
 * `php`, to run PHP beside the server (`{ fixtures: ['login.php', …] }`): a php-fpm of the
 * scenario's own (startPhpFpm), the server started with `--site` its scratch docroot,
 * `--php-fpm` its socket and `--endpoint-to-php-file` an empty list, which `flipToPhp` changes.
 */
export async function openScenario(
  t,
  label,
  { serverArgs = [], expectedErrors = [], tolerate = [], baseUrl: external, php } = {},
) {
  const cleanups = [];
  const problems = [];
  const dir = path.join(resultsDir, label.replace(/[^A-Za-z0-9_-]+/g, '-'));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const logPath = path.join(dir, 'server.log');

  t.after(async () => {
    const errors = [];
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        errors.push(error);
      }
    }
    if (problems.length) errors.push(new Error(`page problems:\n  ${problems.join('\n  ')}`));
    if (errors.length) {
      console.error(`--- ${label}: server log (${logPath}) ---\n${tail(logPath)}`);
      throw errors.length === 1 ? errors[0] : new AggregateError(errors, errors.map(String).join('; '));
    }
  });

  let server = { baseUrl: external };
  let database = { name: undefined };
  let endpointFile;
  if (!external) {
    database = createDatabase(label);
    cleanups.push(() => database.drop());
    const args = [...serverArgs];
    if (php) {
      const fpm = await startPhpFpm(database.name, php.fixtures ?? [], path.join(dir, 'php-fpm.log'));
      cleanups.push(() => fpm.stop());
      endpointFile = path.join(fpm.run, 'endpoint-to-php');
      fs.writeFileSync(endpointFile, '# every endpoint on chat-server\n');
      args.push('--site', fpm.site, '--php-fpm', fpm.socket, '--endpoint-to-php-file', endpointFile);
    }
    server = await startServer(database.name, logPath, args);
    cleanups.push(() => server.stop());
  }
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: DEADLINE_MS * 2,
  });
  cleanups.push(() => browser.close());

  // Each role gets its own browser context: its own cookie jar (customer and agent share one
  // origin) and its own connection pool (a long poll and an iframe stream each hold one).
  // `credentials` ("user:password") go into the base URL, as a person would type them in the
  // address bar; the browser then keeps sending them for the site's own requests.
  async function newContext(role, credentials) {
    const base = new URL(server.baseUrl);
    if (credentials) [base.username, base.password] = credentials.split(':').map(encodeURIComponent);
    const context = await browser.newContext({
      baseURL: base.href,
      viewport: { width: 560, height: 680 },
      locale: 'zh-CN',
    });
    context.setDefaultTimeout(DEADLINE_MS);
    await instrumentContext(context);
    context.on('page', (page) => watchPage(page, role));
    return context;
  }

  function watchPage(page, role) {
    page.on('pageerror', (error) => {
      if (!tolerate.some((pattern) => pattern.test(String(error)))) problems.push(`${role}: uncaught ${error}`);
    });
    page.on('dialog', (dialog) => {
      problems.push(`${role}: alert(${JSON.stringify(dialog.message())})`);
      dialog.dismiss().catch(() => {});
    });
    page.on('response', (response) => {
      const expected = expectedErrors.some(
        (e) => (e.role === undefined || e.role === role) && (e.url === undefined || response.url().includes(e.url)),
      );
      if (response.status() >= 400 && !expected && !response.url().endsWith('/favicon.ico')) {
        problems.push(`${role}: HTTP ${response.status()} for ${response.url()}`);
      }
    });
  }

  /** A counter or gauge from the server's /.chat-server/metrics. */
  async function metric(name) {
    const response = await fetch(new URL('.chat-server/metrics', server.baseUrl), {
      signal: AbortSignal.timeout(DEADLINE_MS),
    });
    const text = await response.text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    if (!line) throw new Error(`no ${name} in the metrics:\n${text}`);
    return Number(line.slice(name.length + 1));
  }

  let customers = 0;
  return {
    baseUrl: server.baseUrl,
    database: database.name,
    dir,
    /** Runs SQL against this scenario's database. */
    sql: (script) => {
      if (!database.name) throw new Error('no database of its own behind an external site');
      return sql(script, database.name);
    },
    /** A customer in a context of their own, on AJ05customer.php. */
    async openCustomer() {
      customers += 1;
      const page = await CustomerPage.open(await newContext(`customer${customers}`));
      return page;
    },
    /** A context for `role`, optionally with credentials ("user:password"). */
    newContext: (role, credentials) => newContext(role, credentials),
    /** A context for the agent (pages opened with `openAgent`), optionally with credentials. */
    newAgentContext: (credentials) => newContext('agent', credentials),
    /** The agent, on AJ04custserv.php, in `context` (a new one when omitted). */
    async openAgent(context) {
      return AgentPage.open(context ?? (await newContext('agent')));
    },
    metric,
    /**
     * Sends exactly `names` (e.g. ['AJsendmsg.php'], or [] for none) to PHP-FPM from now on: writes
     * the --endpoint-to-php-file, sends SIGHUP, and waits until the server has re-read it.
     */
    async flipToPhp(names) {
      if (!endpointFile) throw new Error('flipToPhp needs openScenario(…, { php: … })');
      const before = await metric('chat_endpoint_to_php_reloads_total');
      fs.writeFileSync(endpointFile, `# written by the scenario\n${names.map((n) => `${n}\n`).join('')}`);
      server.signal('SIGHUP');
      await waitFor('the server to re-read the endpoint file', async () => {
        if ((await metric('chat_endpoint_to_php_reload_failures_total')) > 0) {
          throw new Error(`the server refused the endpoint file; log:\n${tail(logPath)}`);
        }
        return (await metric('chat_endpoint_to_php_reloads_total')) > before;
      });
      const onPhp = await metric('chat_endpoints_on_php');
      if (onPhp !== names.length) throw new Error(`${onPhp} endpoints on PHP after flipping to ${names}`);
    },
    /** Prints one measured latency and appends it to test-results/latencies.jsonl. */
    report(direction, ms, note = '') {
      const line = `${label}: ${direction} ${ms} ms${note ? ` (${note})` : ''}`;
      t.diagnostic(line);
      fs.appendFileSync(
        path.join(resultsDir, 'latencies.jsonl'),
        `${JSON.stringify({ scenario: label, direction, ms, note })}\n`,
      );
    },
  };
}

/** Polls `probe` (sync or async) until it returns a truthy value, or fails after DEADLINE_MS. */
export async function waitFor(what, probe, { timeout = DEADLINE_MS, interval = 50 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, interval)); // poll interval inside a deadline
  }
}
