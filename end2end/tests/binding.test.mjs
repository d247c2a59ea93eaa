// End-to-end tests of phone binding, run against a live server in sandbox mode.
//
//   BASE_URL=http://127.0.0.1:3000 E2E_RESEND_SECONDS=10 node --test end2end/tests/
//
// The server must run with WXLOGIN_SMS_RESEND_SECONDS equal to E2E_RESEND_SECONDS (default 3
// here): the journey waits out one resend cooldown, and a real minute is too long for a test.
// scripts/test starts the server and sets BASE_URL. The browser is the system Chromium
// (Debian package), driven by playwright-core; nothing is downloaded. The setup and the
// helpers shared with the other files are in end2end/support.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useBrowser,
  url,
  pathOf,
  sleep,
  randomOpenid,
  randomPhone,
  wrongCode,
  maskPhone,
  screenshot,
  ticketInLink,
  scan,
  submission,
  typeCode,
} from '../support.mjs';

/** The server's resend cooldown (WXLOGIN_SMS_RESEND_SECONDS). */
const RESEND_SECONDS = Number(process.env.E2E_RESEND_SECONDS || 3);
const TEST_TIMEOUT = 90_000 + 2 * RESEND_SECONDS * 1000;
const OPENID_PREFIX = 'e2e-bind-';
const PHONE_PREFIX = '159';

const newContext = useBrowser({ locale: 'zh-CN' });

// ---------------------------------------------------------------------------------------
// helpers

/** The newest SMS the sandbox "sent" to this phone, `{code, sent_at}`, or null. */
async function lastSms(phone) {
  const res = await fetch(url(`/sandbox/api/sms?phone=${encodeURIComponent(phone)}`), {
    headers: { accept: 'application/json' },
  });
  const text = await res.text();
  if (res.status === 404) return null;
  assert.equal(res.status, 200, `GET /sandbox/api/sms -> ${res.status}: ${text}`);
  const body = JSON.parse(text);
  assert.match(String(body.code), /^\d{6}$/, `sms answer has a 6-digit code: ${text}`);
  return { code: String(body.code), sentAt: Number(body.sent_at) };
}

/** Waits (10 s at most) for an SMS to `phone` other than `previous`. */
async function nextSms(phone, previous = null) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const sms = await lastSms(phone);
    if (sms && (!previous || sms.code !== previous.code || sms.sentAt !== previous.sentAt)) {
      return sms;
    }
    if (Date.now() > deadline) assert.fail(`no new SMS for ${phone} after 10 s`);
    await sleep(250);
  }
}

/** Opens /login, scans it as `openid`, and waits for the live push to /bind. */
async function scanToBind(page, openid) {
  const events = page.waitForResponse((r) => pathOf(r.url()) === '/login/events');
  const res = await page.goto(url('/login'));
  assert.equal(res.status(), 200, 'GET /login -> 200');
  await events;
  const href = await page.locator('a#sandbox-link').getAttribute('href');
  const ticket = ticketInLink(href);
  await scan(ticket, openid);
  await page.waitForURL((u) => pathOf(u.toString()) === '/bind');
  await page.locator('form#send-code-form').waitFor({ state: 'visible' });
}

/** Fills the phone step and sends; returns the answer to POST /bind/code. */
async function sendCode(page, phone) {
  await page.locator('form#send-code-form input[name=phone]').fill(phone);
  return submission(page, '/bind/code', () => page.locator('button#send-code').click());
}

/** Reads the cooldown the page shows on #resend, checking it fits this run's setting. */
async function cooldownOf(page) {
  const wait = Number(await page.locator('button#resend').getAttribute('data-wait'));
  assert.ok(
    wait <= RESEND_SECONDS,
    `#resend waits ${wait} s but E2E_RESEND_SECONDS is ${RESEND_SECONDS}: ` +
      'start the server with WXLOGIN_SMS_RESEND_SECONDS=$E2E_RESEND_SECONDS',
  );
  return wait;
}

/** Binds `phone` to `openid` through the pages, ending logged in on /. */
async function bindThroughPages(page, openid, phone) {
  await scanToBind(page, openid);
  const sent = await sendCode(page, phone);
  assert.equal(sent.status(), 303, 'POST /bind/code -> 303');
  const { code } = await nextSms(phone);
  const done = await typeCode(page, code);
  assert.equal(done.status(), 303, 'the right code is accepted');
  await page.waitForURL((u) => pathOf(u.toString()) === '/');
}

// ---------------------------------------------------------------------------------------
// tests

test('binding journey: wrong code, resend after the cooldown, the new code binds', { timeout: TEST_TIMEOUT }, async () => {
  const context = await newContext();
  try {
    const page = await context.newPage();
    const phone = randomPhone(PHONE_PREFIX);
    await scanToBind(page, randomOpenid(OPENID_PREFIX));

    // --- an invalid number is refused next to the field, in Chinese
    const bad = await sendCode(page, '12345');
    assert.equal(bad.status(), 303, 'an invalid number goes back to the form');
    assert.equal(pathOf(page.url()), '/bind', 'at /bind again');
    const phoneError = page.locator('form#send-code-form #phone-error');
    await phoneError.waitFor({ state: 'visible' });
    assert.match((await phoneError.textContent()) ?? '', /手机号/);
    assert.equal(await page.locator('input#phone').getAttribute('aria-invalid'), 'true');

    // --- the first code
    const sent = await sendCode(page, phone);
    assert.equal(sent.status(), 303, 'POST /bind/code -> 303');
    await page.locator('form#verify-form').waitFor({ state: 'visible' });
    const first = await nextSms(phone);
    assert.ok(
      ((await page.locator('.info').textContent()) ?? '').includes(maskPhone(phone)),
      'the page says where the code went, masked',
    );

    // --- a wrong code: refused, tries left are counted, still on the code step
    const wrong = await typeCode(page, wrongCode(first.code));
    assert.equal(wrong.status(), 303, 'a wrong code goes back to the form');
    assert.equal(pathOf(page.url()), '/bind', 'at /bind again');
    const codeError = page.locator('form#verify-form #code-error');
    await codeError.waitFor({ state: 'visible' });
    assert.match((await codeError.textContent()) ?? '', /还可尝试 4 次/, 'four tries left');
    await screenshot(page, 'binding-wrong-code');

    // --- resend: disabled while the cooldown runs, enabled when it ends
    const resend = page.locator('button#resend');
    const wait = await cooldownOf(page);
    if (wait > 0) assert.equal(await resend.isDisabled(), true, '#resend is disabled during the cooldown');
    await page.waitForFunction(() => !document.getElementById('resend').disabled, null, {
      timeout: (RESEND_SECONDS + 5) * 1000,
    });
    assert.equal(
      ((await resend.textContent()) ?? '').trim(),
      await resend.getAttribute('data-label'),
      'after the countdown the button reads "resend"',
    );
    // The countdown runs on whole seconds; give the server's clock the same second.
    await sleep(1_100);
    const resent = await submission(page, '/bind/code', () => resend.click());
    assert.equal(resent.status(), 303, 'a resend after the cooldown -> 303');
    const second = await nextSms(phone, first);
    assert.notEqual(second.sentAt, first.sentAt, 'a second SMS went out');
    await page.locator('form#verify-form').waitFor({ state: 'visible' });
    assert.equal(await resend.isDisabled(), (await cooldownOf(page)) > 0, 'a new cooldown starts');

    // --- the new code binds and logs in
    const right = await typeCode(page, second.code);
    assert.equal(right.status(), 303, 'the new code is accepted');
    await page.waitForURL((u) => pathOf(u.toString()) === '/');
    const who = page.locator('#whoami');
    await who.waitFor({ state: 'visible' });
    assert.ok(((await who.textContent()) ?? '').includes(maskPhone(phone)), '#whoami shows the masked phone');
    assert.ok(!(await page.content()).includes(phone), 'the full number is nowhere on the page');
  } finally {
    await context.close();
  }
});

test('a number bound to another WeChat is refused with a clear message', { timeout: TEST_TIMEOUT }, async () => {
  const owner = await newContext();
  const intruder = await newContext();
  try {
    const phone = randomPhone(PHONE_PREFIX);
    await bindThroughPages(await owner.newPage(), randomOpenid(OPENID_PREFIX), phone);
    // A phone gets one code per cooldown; the owner's has just gone out.
    await sleep((RESEND_SECONDS + 1) * 1000);

    const page = await intruder.newPage();
    await scanToBind(page, randomOpenid(OPENID_PREFIX));
    const before = await lastSms(phone);
    const sent = await sendCode(page, phone);
    assert.equal(sent.status(), 303, 'the code is sent: the number proves itself first');
    const { code } = await nextSms(phone, before);
    const refused = await typeCode(page, code);

    assert.equal(refused.status(), 303, 'POST /bind/verify goes back to the form');
    assert.equal(pathOf(page.url()), '/bind', 'at /bind again');
    const error = page.locator('.field-error');
    await error.waitFor({ state: 'visible' });
    assert.match((await error.textContent()) ?? '', /该手机号已绑定其他微信账号/);
    // Back at the phone step, the number still filled in, to correct it.
    await page.locator('form#send-code-form').waitFor({ state: 'visible' });
    assert.equal(await page.locator('input#phone').inputValue(), phone);
    await screenshot(page, 'binding-refused-number');

    // Nothing changed: the intruder is not logged in.
    await page.goto(url('/'));
    await page.locator('a#login-link').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#whoami').count(), 0, 'the intruder is not logged in');
  } finally {
    await intruder.close();
    await owner.close();
  }
});

test('a person who leaves the form comes back to it through /login and finishes', { timeout: TEST_TIMEOUT }, async () => {
  const context = await newContext({ locale: 'en-US' });
  try {
    const page = await context.newPage();
    const phone = randomPhone(PHONE_PREFIX);
    await scanToBind(page, randomOpenid(OPENID_PREFIX));
    assert.equal((await sendCode(page, phone)).status(), 303);
    const { code } = await nextSms(phone);

    // Off to another site, then back to the login page: it leads straight back to the form.
    await page.goto('about:blank');
    await page.goto(url('/login'));
    await page.waitForURL((u) => pathOf(u.toString()) === '/bind');
    const info = page.locator('.info');
    await info.waitFor({ state: 'visible' });
    assert.ok(((await info.textContent()) ?? '').includes(maskPhone(phone)), 'back at the code step');

    const done = await typeCode(page, code);
    assert.equal(done.status(), 303);
    await page.waitForURL((u) => pathOf(u.toString()) === '/');
  } finally {
    await context.close();
  }
});
