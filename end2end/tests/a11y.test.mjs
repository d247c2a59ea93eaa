// Accessibility check of every page and state, with axe-core, in both languages and at two
// sizes; a full-page screenshot of each goes to end2end/test-results/screens/.
//
//   BASE_URL=http://127.0.0.1:3000 WXLOGIN_BIN=target/debug/wxlogin \
//   WXLOGIN_DATABASE_URL=sqlite:///tmp/e2e/e2e.db node --test end2end/tests/a11y.test.mjs
//
// Each page view is audited against WCAG 2.1 A and AA (axe's wcag2a, wcag2aa, wcag21a and
// wcag21aa rules). The tests that reach the states fail only when a state can't be reached;
// the last test fails when axe found anything, with one report of all of it (also written to
// test-results/a11y-report.txt).
//
// Administrators are made with `$WXLOGIN_BIN admin grant` on the server's database, as in
// admin.test.mjs. The "too many QR codes" page needs a cap the shared server doesn't have, so
// this file starts a second server of its own ($WXLOGIN_BIN) with a cap of one QR code an hour.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  RESULTS_DIR,
  useBrowser,
  url,
  pathOf,
  sleep,
  randomOpenid,
  randomPhone,
  wrongCode,
  maskPhone,
  ticketOf,
  scan,
  smsCode,
  typeCode,
  submission,
  expireUntilDead,
  openLogin,
  wxloginAdmin,
  siteSkip,
} from '../support.mjs';

const WXLOGIN_BIN = process.env.WXLOGIN_BIN ?? '';

const TEST_TIMEOUT = 180_000;
const OPENID_PREFIX = 'e2e-a11y-';
const PHONE_PREFIX = '137';
const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const SCREENS_DIR = `${RESULTS_DIR}screens/`;
mkdirSync(SCREENS_DIR, { recursive: true });

const WECHAT_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) ' +
  'Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/en';

const LANGS = [
  { lang: 'zh', locale: 'zh-CN' },
  { lang: 'en', locale: 'en-US' },
];
const SIZES = [
  { size: 'desktop', options: { viewport: { width: 1280, height: 800 } } },
  {
    size: 'phone',
    options: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
  },
];
const VARIANTS = LANGS.flatMap((l) => SIZES.map((s) => ({ ...l, ...s })));

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const newContext = useBrowser();

// ---------------------------------------------------------------------------------------
// the audit

/** Every violation axe found: `{state, lang, size, id, impact, help, helpUrl, targets, detail}`. */
const violations = [];
/** Every page view audited: `state-lang-size`. */
const audited = [];

/** A browser context for this variant (language and size), with `extra` options on top. */
function contextFor(v, extra = {}) {
  return newContext({ locale: v.locale, ...v.options, ...extra });
}

/** Runs `body(page, context)` in a fresh context for this variant, and closes it. */
async function inContext(v, extra, body) {
  const context = await contextFor(v, extra);
  try {
    return await body(await context.newPage(), context);
  } finally {
    await context.close();
  }
}

/**
 * Screenshots the page as `<state>-<lang>-<size>.png` and runs axe on it; records what
 * axe found. The pages' CSP (script-src 'self') blocks an inline <script>, so axe's source is
 * evaluated through the DevTools protocol, which CSP does not govern.
 */
async function audit(page, state, v) {
  const name = `${state}-${v.lang}-${v.size}`;
  await page.waitForLoadState('load');
  await page.evaluate(() => document.fonts?.ready.then(() => undefined));
  await page.screenshot({ path: `${SCREENS_DIR}${name}.png`, fullPage: true });
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.evaluate(AXE_SOURCE);
  }
  assert.equal(await page.evaluate(() => typeof window.axe?.run), 'function', `axe loaded on ${name}`);
  const found = await page.evaluate(
    (tags) =>
      window.axe
        .run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] })
        .then((r) =>
          r.violations.map((x) => ({
            id: x.id,
            impact: x.impact,
            help: x.help,
            helpUrl: x.helpUrl,
            count: x.nodes.length,
            targets: x.nodes.slice(0, 4).map((n) => n.target.map(String).join(' >>> ')),
            // What axe says of the first element, e.g. the contrast ratio and the colours.
            detail: [...(x.nodes[0]?.any ?? []), ...(x.nodes[0]?.all ?? []), ...(x.nodes[0]?.none ?? [])][0]?.message ?? '',
          })),
        ),
    WCAG_TAGS,
  );
  audited.push(name);
  for (const x of found) violations.push({ state, lang: v.lang, size: v.size, ...x });
  return found;
}

/**
 * All violations as a text report: by rule, then by state and what axe said of the first
 * element (the same finding in several languages and sizes is one line).
 */
function report() {
  const byRule = new Map();
  for (const x of violations) {
    if (!byRule.has(x.id)) byRule.set(x.id, { ...x, rows: new Map() });
    const rows = byRule.get(x.id).rows;
    const key = `${x.state}\u0000${x.detail}`;
    if (!rows.has(key)) rows.set(key, { state: x.state, detail: x.detail, where: [], targets: [], count: 0 });
    const row = rows.get(key);
    row.where.push(`${x.lang}-${x.size}`);
    row.count = Math.max(row.count, x.count);
    for (const t of x.targets) if (!row.targets.includes(t)) row.targets.push(t);
  }
  const views = new Set(violations.map((x) => `${x.state}-${x.lang}-${x.size}`));
  const lines = [
    `axe found ${byRule.size} rule(s) violated on ${views.size} of ${audited.length} page views ` +
      `(tags ${WCAG_TAGS.join(', ')}):`,
  ];
  for (const [id, rule] of byRule) {
    lines.push('', `${id} [${rule.impact}] ${rule.help}`, `  ${rule.helpUrl}`);
    for (const row of rule.rows.values()) {
      const shown = row.targets.slice(0, 3);
      const more = Math.max(row.count, row.targets.length) - shown.length;
      lines.push(`  - ${row.state} (${row.where.join(' ')}): ${shown.join(', ')}${more > 0 ? ` (+${more} more)` : ''}`);
      if (row.detail) lines.push(`      ${row.detail}`);
    }
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------
// getting there


/** Sends a code to `phone` from the phone step; waits for the code step. */
async function sendCode(page, phone) {
  await page.locator('form#send-code-form input[name=phone]').fill(phone);
  const sent = await submission(page, '/bind/code', () => page.locator('button#send-code').click());
  assert.equal(sent.status(), 303, 'POST /bind/code -> 303');
  await page.locator('form#verify-form input#code').waitFor({ state: 'visible' });
}

/** A first scan and phone binding in a fresh zh desktop context, ending logged in on /. */
async function bindPerson(openid, phone, body = async () => {}) {
  return inContext(VARIANTS[0], {}, async (page) => {
    await openLogin(page);
    await scan(await ticketOf(page), openid);
    await page.waitForURL((u) => pathOf(u.toString()) === '/bind');
    await sendCode(page, phone);
    const done = await typeCode(page, await smsCode(phone));
    assert.equal(done.status(), 303, 'the code is accepted');
    await page.waitForURL((u) => pathOf(u.toString()) === '/');
    await page.locator('#whoami').waitFor({ state: 'visible' });
    return body(page);
  });
}

/** A known person logs in by scanning: ends on / logged in. */
async function logIn(page, openid) {
  await openLogin(page);
  await scan(await ticketOf(page), openid);
  await page.waitForURL((u) => pathOf(u.toString()) === '/');
  await page.locator('#whoami').waitFor({ state: 'visible' });
}


/** The people every variant uses: an administrator, a disabled person, a plain person. */
const people = {};

/** The second server, with a cap of one QR code an hour: `{base, stop}`. */
let capped;

/** Starts `$WXLOGIN_BIN` in sandbox mode on a temporary database, with one QR code an hour. */
async function startCappedServer() {
  const dir = mkdtempSync(join(tmpdir(), 'wxlogin-a11y-'));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WXLOGIN_')));
  const child = spawn(WXLOGIN_BIN, [], {
    env: {
      ...env,
      LEPTOS_SITE_ADDR: '127.0.0.1:0',
      WXLOGIN_MODE: 'sandbox',
      WXLOGIN_DATABASE_URL: `sqlite://${dir}/db.sqlite`,
      WXLOGIN_QR_PER_IP_PER_HOUR: '1',
      RUST_LOG: 'warn',
      NO_COLOR: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the capped server printed no address in 60 s:\n${log}`)), 60_000);
    const read = (chunk) => {
      log += chunk;
      const m = log.match(/^wxlogin: open (http:\/\/\S+)\/login$/m);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the capped server exited (${code}):\n${log}`));
    });
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ok = await fetch(`${base}/healthz`).then((r) => r.status === 200, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`${base}/healthz did not answer 200 in 30 s`);
      await sleep(200);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { base, stop };
}

/**
 * After `expireUntilDead`: dead for good (no fresh code a moment later), with no sandbox link
 * to the dead ticket and no countdown.
 */
async function deadForGood(page) {
  await sleep(1_000);
  assert.equal(await page.locator('#qr[data-state="expired"]').count(), 1, 'the page still shows the dead code');
  assert.equal(await page.locator('a#sandbox-link').count(), 0, 'no link to the dead ticket');
  assert.equal(await page.locator('#countdown').count(), 0, 'no countdown on a dead code');
}

// The setup is inside the describe: the browser (useBrowser's hook, on the file) is up by then.
describe('accessibility (axe-core)', { skip: siteSkip }, () => {
  before(async () => {
    capped = await startCappedServer();

    // The one QR code the capped server gives this address this hour.
    await inContext(VARIANTS[0], {}, async (page) => {
      const res = await page.goto(`${capped.base}/login`);
      assert.equal(res.status(), 200, 'the first /login of the capped server -> 200');
    });

    people.admin = { openid: randomOpenid(OPENID_PREFIX), phone: randomPhone(PHONE_PREFIX) };
    people.disabled = { openid: randomOpenid(OPENID_PREFIX), phone: randomPhone(PHONE_PREFIX) };
    people.plain = { openid: randomOpenid(OPENID_PREFIX), phone: randomPhone(PHONE_PREFIX) };
    await bindPerson(people.disabled.openid, people.disabled.phone);
    await bindPerson(people.plain.openid, people.plain.phone);
    await bindPerson(people.admin.openid, people.admin.phone, async (admin) => {
      assert.match(wxloginAdmin('grant', people.admin.phone), /is now an administrator/);

      // Find the person to disable by the last four digits, as admin.test.mjs does.
      const digits = people.disabled.phone.slice(-4);
      assert.equal((await admin.goto(url('/admin/users'))).status(), 200, 'GET /admin/users as admin');
      await admin.locator('form#user-filters input#q').fill(digits);
      await Promise.all([
        admin.waitForURL((u) => new URL(u).searchParams.get('q') === digits),
        admin.locator('button#apply-filters').click(),
      ]);
      const rows = admin.locator('table#users tbody tr', { hasText: maskPhone(people.disabled.phone) });
      const hrefs = [];
      for (let i = 0; i < (await rows.count()); i++) hrefs.push(await rows.nth(i).locator('a.phone').getAttribute('href'));
      for (const href of hrefs) {
        await admin.goto(url(href));
        if ((await admin.locator('#user-phone').textContent()) === `+86${people.disabled.phone}`) {
          people.disabled.detail = href;
          break;
        }
      }
      assert.ok(people.disabled.detail, 'the person to disable is among the results');

      // Disabling asks first: the link opens the confirmation, whose form does it.
      await Promise.all([admin.waitForEvent('load'), admin.locator('a#action-disable').click()]);
      const answer = admin.waitForResponse(
        (r) => r.request().method() === 'POST' && pathOf(r.url()).endsWith('/disable'),
      );
      const loaded = admin.waitForEvent('load');
      await admin.locator('form#confirm-disable button').click();
      assert.equal((await answer).status(), 303, 'POST .../disable -> 303');
      await loaded;
      assert.match((await admin.locator('#user-disabled').textContent()) ?? '', /是|Yes/);
    });
  }, { timeout: TEST_TIMEOUT });

  after(async () => {
    await capped?.stop();
  });

  // -------------------------------------------------------------------------------------
  // the states, in each language and size

  for (const v of VARIANTS) {
    describe(`${v.lang} ${v.size}`, () => {
      const opts = { timeout: TEST_TIMEOUT };

      test('login-live, sandbox-phone', opts, () =>
        inContext(v, {}, async (page, context) => {
          await openLogin(page);
          await page.locator('#status').waitFor({ state: 'attached' });
          await audit(page, 'login-live', v);

          const href = await page.locator('a#sandbox-link').getAttribute('href');
          const phone = await context.newPage();
          assert.equal((await phone.goto(href)).status(), 200, 'GET /sandbox/scan/<ticket> -> 200');
          await phone.locator('form#scan-form').waitFor({ state: 'visible' });
          await audit(phone, 'sandbox-phone', v);
        }));

      test('login-expired', opts, () =>
        inContext(v, {}, async (page) => {
          await openLogin(page);
          await expireUntilDead(page);
          await deadForGood(page);
          await audit(page, 'login-expired', v);
        }));

      test('login-disabled', opts, () =>
        inContext(v, {}, async (page) => {
          await openLogin(page);
          const refused = await scan(await ticketOf(page), people.disabled.openid);
          assert.match(refused.reply, /停用|disabled/, `the WeChat reply says disabled: ${refused.reply}`);
          await page.waitForFunction(
            () =>
              document.querySelector('#status .status-refused, [data-state="refused"], [data-state="rejected"]') ||
              /停用|disabled/i.test(document.getElementById('status')?.textContent ?? ''),
          );
          await audit(page, 'login-disabled', v);
        }));

      test('bind-phone, bind-code, bind-dead-code, sandbox-sms', opts, () =>
        inContext(v, {}, async (page) => {
          await openLogin(page);
          await scan(await ticketOf(page), randomOpenid(OPENID_PREFIX));
          await page.waitForURL((u) => pathOf(u.toString()) === '/bind');
          await page.locator('form#send-code-form').waitFor({ state: 'visible' });
          await audit(page, 'bind-phone', v);

          const phone = randomPhone(PHONE_PREFIX);
          await sendCode(page, phone);
          await audit(page, 'bind-code', v);

          const wrong = wrongCode(await smsCode(phone));
          for (let i = 0; i < 5; i++) {
            const answer = await typeCode(page, wrong);
            assert.equal(answer.status(), 303, `wrong code #${i + 1} goes back to the form`);
            await page.locator('form#verify-form').waitFor({ state: 'visible' });
          }
          const dead = page.locator('#code-dead');
          await dead.waitFor({ state: 'visible' });
          assert.match((await dead.textContent()) ?? '', /失效|no longer valid|没有剩余|last try/, 'the code is dead');
          await audit(page, 'bind-dead-code', v);

          assert.equal((await page.goto(url('/sandbox/sms'))).status(), 200, 'GET /sandbox/sms -> 200');
          await audit(page, 'sandbox-sms', v);
        }));

      test('home-in, error-403, home-out', opts, () =>
        inContext(v, {}, async (page) => {
          await logIn(page, people.plain.openid);
          await audit(page, 'home-in', v);

          assert.equal((await page.goto(url('/admin'))).status(), 403, 'GET /admin as a non-admin -> 403');
          await audit(page, 'error-403', v);

          await page.goto(url('/'));
          const out = await submission(page, '/logout', () =>
            page.locator('form#logout').locator('button, input[type=submit]').first().click(),
          );
          assert.equal(out.status(), 303, 'POST /logout -> 303');
          await page.locator('a#login-link').waitFor({ state: 'visible' });
          await audit(page, 'home-out', v);
        }));

      test('admin-dashboard, admin-users, admin-detail', opts, () =>
        inContext(v, {}, async (page) => {
          await logIn(page, people.admin.openid);
          for (const [state, path] of [
            ['admin-dashboard', '/admin'],
            ['admin-users', '/admin/users'],
            ['admin-detail', people.disabled.detail],
            // The second step of enabling nothing: the disabled person's "unbind" confirmation.
            ['admin-confirm', `${people.disabled.detail}?confirm=unbind`],
          ]) {
            assert.equal((await page.goto(url(path))).status(), 200, `GET ${path} as admin -> 200`);
            await audit(page, state, v);
          }
        }));

      test('error-404, sms-login', opts, () =>
        inContext(v, {}, async (page) => {
          assert.equal((await page.goto(url('/no-such-page'))).status(), 404, 'GET /no-such-page -> 404');
          await audit(page, 'error-404', v);

          assert.equal((await page.goto(url('/login/sms'))).status(), 200, 'GET /login/sms -> 200');
          await page.locator('form#send-code-form').waitFor({ state: 'visible' });
          await audit(page, 'sms-login', v);
        }));

      test('error-429', opts, () =>
        inContext(v, {}, async (page) => {
          const res = await page.goto(`${capped.base}/login`);
          assert.equal(res.status(), 429, 'the capped server refuses a second QR code -> 429');
          await audit(page, 'error-429', v);
        }));

      test('sandbox-wechat-authorize', opts, () =>
        inContext(v, { userAgent: WECHAT_UA }, async (page) => {
          await page.goto(url('/login'));
          await page.waitForURL((u) => pathOf(u.toString()) === '/sandbox/connect/oauth2/authorize');
          await page.locator('#oauth-allow').waitFor({ state: 'visible' });
          await audit(page, 'sandbox-wechat-authorize', v);
        }));
    });
  }

  test('axe: no WCAG 2.1 A/AA violations on any page', () => {
    const text = report();
    writeFileSync(`${RESULTS_DIR}a11y-report.txt`, `${text}\n`);
    writeFileSync(`${RESULTS_DIR}a11y-violations.json`, `${JSON.stringify(violations, null, 2)}\n`);
    assert.ok(audited.length > 0, 'some pages were audited');
    if (violations.length) assert.fail(`${text}\n\nscreenshots: ${SCREENS_DIR}`);
  });
});
