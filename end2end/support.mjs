// What the browser tests in end2end/tests/ share: the server's address, the browser, and the
// helpers every file uses the same way. It lives outside tests/ so `node --test` does not run
// it as a test file.
//
// Helpers that differ from file to file (what they check, how they wait) stay in their file.

import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const BASE_URL = (process.env.BASE_URL ?? '').replace(/\/+$/, '');
if (!BASE_URL) {
  throw new Error('BASE_URL is not set (e.g. BASE_URL=http://127.0.0.1:3000); run scripts/test');
}
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Screenshots go here (end2end/test-results/); scripts/test keeps it after the run. */
export const RESULTS_DIR = fileURLToPath(new URL('./test-results/', import.meta.url));
mkdirSync(RESULTS_DIR, { recursive: true });

/** Default timeout of each browser action and navigation. */
export const STEP_TIMEOUT = 15_000;

const LAUNCH_OPTIONS = {
  executablePath: CHROMIUM,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--no-first-run',
    '--disable-sync',
    '--disable-quic',
  ],
};

/**
 * Launches Chromium before the calling file's tests and closes it after them (node:test
 * hooks, registered where this is called). Returns `newContext(options)`, which opens a
 * browser context with `defaults` overridden by `options`, and the step timeouts set.
 */
export function useBrowser(defaults = {}) {
  let browser;
  before(async () => {
    browser = await chromium.launch(LAUNCH_OPTIONS);
  });
  after(async () => {
    await browser?.close();
  });
  return async function newContext(options = {}) {
    const context = await browser.newContext({ ...defaults, ...options });
    context.setDefaultTimeout(STEP_TIMEOUT);
    context.setDefaultNavigationTimeout(STEP_TIMEOUT);
    return context;
  };
}

// ---------------------------------------------------------------------------------------
// addresses and made-up people

export function url(path) {
  return new URL(path, BASE_URL + '/').toString();
}

export function pathOf(u) {
  return new URL(u).pathname;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A new openid: `prefix` (each file has its own) and 16 random hex digits. */
export function randomOpenid(prefix) {
  return `${prefix}${randomBytes(8).toString('hex')}`;
}

/** A new mobile number: `prefix` (3 digits; each file has its own) and 8 random digits. */
export function randomPhone(prefix) {
  let digits = '';
  for (let i = 0; i < 8; i++) digits += String(randomInt(10));
  return `${prefix}${digits}`;
}

/** The code with its last digit changed. */
export function wrongCode(code) {
  return code.slice(0, -1) + String((Number(code.at(-1)) + 1) % 10);
}

export function maskPhone(phone) {
  return `${phone.slice(0, 3)}****${phone.slice(-4)}`;
}

// ---------------------------------------------------------------------------------------
// the sandbox and the pages

export async function screenshot(page, name) {
  await page.screenshot({ path: `${RESULTS_DIR}${name}.png`, fullPage: true });
}

/** The scan ticket of the login page's sandbox link. */
export async function ticketOf(page) {
  const href = await page.locator('a#sandbox-link').getAttribute('href');
  assert.ok(href, 'a#sandbox-link has an href');
  return ticketInLink(href);
}

/** The SMS code the sandbox "sent" to this phone (polls briefly: sending may be async). */
export async function smsCode(phone) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await fetch(url(`/sandbox/api/sms?phone=${encodeURIComponent(phone)}`), {
      headers: { accept: 'application/json' },
    });
    const text = await res.text();
    if (res.status === 200) {
      const body = JSON.parse(text);
      assert.match(String(body.code), /^\d{4,8}$/, `sms answer has a numeric code: ${text}`);
      return String(body.code);
    }
    assert.equal(res.status, 404, `GET /sandbox/api/sms -> ${res.status}: ${text}`);
    if (Date.now() > deadline) assert.fail(`no SMS code for ${phone} after 10 s`);
    await sleep(250);
  }
}

/** The scan ticket in a sandbox link's URL (its last path segment, decoded). */
export function ticketInLink(href) {
  return decodeURIComponent(new URL(href).pathname.split('/').pop());
}

/**
 * What WeChat would do when the person scans: POST the sandbox automation API. Checks the
 * answer is a 200 and returns its text.
 */
export async function scanText(ticket, openid) {
  const res = await fetch(url('/sandbox/api/scan'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ ticket, openid }),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `POST /sandbox/api/scan -> ${res.status}: ${text}`);
  return text;
}

/** scanText(), parsed: the sandbox's JSON answer to the scan. */
export async function scan(ticket, openid) {
  return JSON.parse(await scanText(ticket, openid));
}

/** Records every committed navigation of the page's main frame. */
export function recordNavigations(page) {
  const urls = [];
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) urls.push(frame.url());
  });
  return urls;
}

/**
 * Runs `action`, which submits a form, and waits both for the server's answer to that POST
 * and for the page it leads to to load (so later steps never act on the old page).
 * Returns the answer to the POST (a 303 when it redirects).
 */
export async function submission(page, path, action) {
  const answer = page.waitForResponse(
    (r) => pathOf(r.url()) === path && r.request().method() === 'POST',
  );
  const loaded = page.waitForEvent('load');
  await action();
  const res = await answer;
  await loaded;
  return res;
}

/**
 * Types a code into #code key by key, as a person would. app.js submits the form when the
 * sixth digit arrives (nothing is clicked); returns the answer to that POST /bind/verify.
 */
export async function typeCode(page, code) {
  const input = page.locator('form#verify-form input#code');
  await input.waitFor({ state: 'visible' });
  await input.fill('');
  return submission(page, '/bind/verify', () => input.pressSequentially(code));
}

// ---------------------------------------------------------------------------------------
// the example site (examples/relying-party.mjs), registered as an OpenID Connect client

const WXLOGIN_BIN = process.env.WXLOGIN_BIN ?? '';
const DATABASE_URL = process.env.WXLOGIN_DATABASE_URL ?? '';
const EXAMPLE = fileURLToPath(new URL('../examples/relying-party.mjs', import.meta.url));

/** A free port on 127.0.0.1 (the example site binds it next). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Registers the example site and starts it; resolves once it listens. */
export async function startSite() {
  const port = await freePort();
  const out = execFileSync(
    WXLOGIN_BIN,
    ['client', 'add', '--name', 'Example Site', '--redirect-uri', `http://127.0.0.1:${port}/callback`],
    { env: { ...process.env, WXLOGIN_DATABASE_URL: DATABASE_URL, RUST_LOG: 'warn' }, encoding: 'utf8', timeout: 30_000 },
  );
  const { client_id: clientId, client_secret: clientSecret } = JSON.parse(out);
  assert.ok(clientId && clientSecret, `client add printed its credentials: ${out}`);
  const site = spawn(process.execPath, [EXAMPLE], {
    env: { ...process.env, WXLOGIN_ISSUER: BASE_URL, CLIENT_ID: clientId, CLIENT_SECRET: clientSecret, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    site.once('exit', (code) => reject(new Error(`the example site exited (${code})`)));
    site.stdout.on('data', (chunk) => {
      if (String(chunk).includes('listening')) resolve();
    });
  });
  return { origin: `http://127.0.0.1:${port}`, stop: () => site.kill() };
}

/** Why the tests that need the example site can't run, or false. */
const missing = [!WXLOGIN_BIN && 'WXLOGIN_BIN', !DATABASE_URL && 'WXLOGIN_DATABASE_URL'].filter(Boolean);
export const siteSkip = missing.length ? `${missing.join(' and ')} not set (scripts/test exports them)` : false;

/** Opens the login page (or `path`) and waits for its event stream and its QR code. */
export async function openLogin(page, path = '/login') {
  const events = page.waitForResponse((r) => pathOf(r.url()) === '/login/events');
  const res = await page.goto(url(path));
  assert.equal(res.status(), 200, `GET ${path}`);
  assert.equal((await events).status(), 200, 'GET /login/events -> 200');
  await page.locator('#qr svg').waitFor({ state: 'visible' });
}

/**
 * Kills the page's QR code with the sandbox (POST /sandbox/api/expire), and each fresh one the
 * page gets (up to six per connection), until the page shows the dead code. Returns how many
 * codes it killed.
 */
export async function expireUntilDead(page) {
  for (let round = 1; round <= 10; round++) {
    const ticket = await ticketOf(page);
    const res = await fetch(url('/sandbox/api/expire'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ ticket }),
    });
    assert.equal(res.status, 200, `POST /sandbox/api/expire -> ${res.status}`);
    const what = await page
      .waitForFunction((old) => {
        if (document.querySelector('#qr[data-state="expired"]')) return 'dead';
        const href = document.querySelector('a#sandbox-link')?.getAttribute('href') ?? '';
        return href && !href.endsWith(old) ? 'fresh' : false;
      }, ticket)
      .then((h) => h.jsonValue());
    if (what === 'dead') return round;
  }
  assert.fail('the login page kept getting fresh QR codes after 10 expired ones (at most 6 expected)');
}

/** Runs `wxlogin admin ...` on the server's database (scripts/test exports both). */
export function wxloginAdmin(...args) {
  return execFileSync(WXLOGIN_BIN, ['admin', ...args], {
    env: { ...process.env, WXLOGIN_DATABASE_URL: DATABASE_URL, RUST_LOG: 'warn' },
    encoding: 'utf8',
    timeout: 30_000,
  });
}
