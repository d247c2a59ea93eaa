// End-to-end tests for wxlogin, run against a live server in sandbox mode.
//
//   BASE_URL=http://127.0.0.1:3000 node --test end2end/tests/
//
// scripts/test starts the server and sets BASE_URL. The browser is the system Chromium
// (Debian package), driven by playwright-core; nothing is downloaded. The setup and the
// helpers shared with the other files are in end2end/support.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE_URL,
  STEP_TIMEOUT,
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
  scanText,
  recordNavigations,
  submission,
  typeCode,
  smsCode,
} from '../support.mjs';

const TEST_TIMEOUT = 90_000;
const OPENID_PREFIX = 'e2e-';
const PHONE_PREFIX = '138';

const newContext = useBrowser();

// ---------------------------------------------------------------------------------------
// helpers

/** Reads the scan ticket from the login page's `a#sandbox-link` (last path segment). */
async function ticketFrom(page) {
  const href = await page.locator('a#sandbox-link').getAttribute('href');
  assert.ok(href, 'a#sandbox-link has an href');
  const link = new URL(href); // throws unless absolute, which the contract requires
  assert.match(link.pathname, /\/sandbox\/scan\/[^/]+$/, `sandbox link path: ${href}`);
  const ticket = ticketInLink(href);
  assert.ok(ticket.length > 0, 'ticket is not empty');
  return { href, ticket };
}

/** The shared scan(), also checking the answer: a non-empty reply to a subscribe or SCAN event. */
async function scan(ticket, openid) {
  const text = await scanText(ticket, openid);
  const body = JSON.parse(text);
  assert.equal(typeof body.reply, 'string', `scan answer has a string reply: ${text}`);
  assert.ok(body.reply.trim().length > 0, `scan reply is not empty: ${text}`);
  assert.ok(['subscribe', 'SCAN'].includes(body.event), `scan event: ${text}`);
  return body;
}

/**
 * Opens /login and waits until the page's EventSource to /login/events has an answer,
 * so a scan made afterwards is a *live* push, not something seen on the next load.
 */
async function openLoginWithLiveEvents(page) {
  const events = page.waitForResponse((r) => pathOf(r.url()) === '/login/events', {
    timeout: STEP_TIMEOUT,
  });
  const res = await page.goto(url('/login'));
  assert.equal(res.status(), 200, 'GET /login -> 200');
  const ev = await events;
  assert.equal(ev.status(), 200, 'GET /login/events -> 200');
  assert.match(ev.headers()['content-type'] ?? '', /text\/event-stream/, 'SSE content type');
  await page.locator('#qr svg').waitFor({ state: 'visible' });
  await page.locator('#status').waitFor({ state: 'attached' });
  await page.locator('#countdown').waitFor({ state: 'attached' });
}

/**
 * What a person on a phone would notice: the page scrolls sideways, or something sticks out
 * of the screen. Returns a description of each offender (empty when all fits).
 */
async function overflowOf(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const problems = [];
    if (document.documentElement.scrollWidth > width) {
      problems.push(`page is ${document.documentElement.scrollWidth}px wide in a ${width}px screen`);
    }
    for (const el of document.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      if (r.left < -0.5 || r.right > width + 0.5) {
        const name = el.tagName.toLowerCase() + (el.id ? `#${el.id}` : '');
        problems.push(`${name} spans ${Math.round(r.left)}..${Math.round(r.right)}px`);
      }
    }
    return problems;
  });
}

async function whoami(page) {
  const who = page.locator('#whoami');
  await who.waitFor({ state: 'visible' });
  return (await who.textContent()) ?? '';
}

// ---------------------------------------------------------------------------------------
// tests

test('journey: scan, live push to /bind, phone + SMS code, logged in, logout, scan again', { timeout: TEST_TIMEOUT }, async () => {
  const context = await newContext();
  try {
    const page = await context.newPage();
    const openid = randomOpenid(OPENID_PREFIX);
    const phone = randomPhone(PHONE_PREFIX);

    // --- the login page, with its live connection open
    await openLoginWithLiveEvents(page);
    const { ticket } = await ticketFrom(page);
    await screenshot(page, 'login');

    // From here on, any navigation is recorded. A reload of /login (polling, meta refresh)
    // would show up before /bind; the live push navigates straight there.
    const navigations = recordNavigations(page);

    const first = await scan(ticket, openid);
    assert.equal(first.event, 'subscribe', 'a new openid scanning is a subscribe event');

    await page.waitForURL((u) => pathOf(u.toString()) === '/bind');
    assert.ok(navigations.length >= 1, 'the page navigated');
    assert.equal(
      pathOf(navigations[0]),
      '/bind',
      `first navigation after the scan goes to /bind (live push, no reload); saw ${JSON.stringify(navigations)}`,
    );

    // --- bind a phone: send the code
    const sendForm = page.locator('form#send-code-form');
    await sendForm.waitFor({ state: 'visible' });
    await screenshot(page, 'bind');
    await sendForm.locator('input[name=phone]').fill(phone);
    const sent = await submission(page, '/bind/code', () => page.locator('button#send-code').click());
    assert.equal(sent.status(), 303, 'POST /bind/code -> 303 (post/redirect/get)');

    const verifyForm = page.locator('form#verify-form');
    await verifyForm.waitFor({ state: 'visible' });
    assert.equal(pathOf(page.url()), '/bind', 'after sending the code the page is still /bind');
    await screenshot(page, 'bind-verify');

    const code = await smsCode(phone);

    // The page says where the code went, without giving the whole number away.
    const info = page.locator('.info');
    await info.waitFor({ state: 'visible' });
    assert.ok(
      ((await info.textContent()) ?? '').includes(maskPhone(phone)),
      `.info shows the masked phone ${maskPhone(phone)}: ${await info.textContent()}`,
    );
    assert.ok(!((await info.textContent()) ?? '').includes(phone), '.info does not show the full number');

    // --- a wrong code first. Typing the sixth digit submits the form by itself (app.js),
    // so the test types like a person and waits for that submission; it does not click.
    const wrongAnswer = await typeCode(page, wrongCode(code));
    // Post/redirect/get: every answer goes back to /bind, which shows why.
    assert.equal(wrongAnswer.status(), 303, 'a wrong code goes back to the form (POST /bind/verify -> 303)');
    assert.equal(pathOf(page.url()), '/bind', 'the address is /bind again, not /bind/verify');
    const error = page.locator('form#verify-form .field-error');
    await error.waitFor({ state: 'visible' });
    const errorText = ((await error.textContent()) ?? '').trim();
    assert.ok(errorText.length > 0, 'the error says something');
    assert.match(errorText, /\d/, `the error tells how many tries are left: ${errorText}`);
    assert.equal(await page.locator('form#send-code-form').count(), 0, 'still on the code step, not back to the phone step');
    assert.ok(
      ((await page.locator('.info').textContent()) ?? '').includes(maskPhone(phone)),
      'after the wrong code, .info still shows the masked phone',
    );

    // --- a new code can't be had while the cooldown runs: the button is disabled and counts down.
    const resend = page.locator('button#resend');
    await resend.waitFor({ state: 'visible' });
    assert.equal(await resend.isDisabled(), true, '#resend is disabled during the cooldown');
    const secondsLeft = async () => Number(((await resend.textContent()) ?? '').match(/\d+/)?.[0]);
    const shown = await secondsLeft();
    assert.ok(shown > 0, `#resend shows the seconds left: ${await resend.textContent()}`);
    await page.waitForFunction(
      (n) => Number(document.getElementById('resend').textContent.match(/\d+/)?.[0]) < n,
      shown,
      { timeout: 5_000 },
    );
    assert.equal(await resend.isDisabled(), true, '#resend is still disabled while counting down');
    // Without JavaScript the button is enabled: the server must refuse too, and send nothing.
    const refusedAnswer = await submission(page, '/bind/code', () =>
      page.locator('form#resend-form').evaluate((form) => form.submit()),
    );
    assert.equal(refusedAnswer.status(), 303, 'POST /bind/code during the cooldown goes back to the form');
    assert.equal(pathOf(page.url()), '/bind', 'the address is /bind again, not /bind/code');
    await page.locator('form#verify-form').waitFor({ state: 'visible' });
    // A notice in place of "sent", not an error under the field.
    const cooldownNotice = page.locator('#code-notice');
    await cooldownNotice.waitFor({ state: 'visible' });
    assert.match((await cooldownNotice.textContent()) ?? '', /\d+/, 'the refusal says how long to wait');
    assert.equal(await smsCode(phone), code, 'no new SMS code was sent during the cooldown');
    assert.equal(await page.locator('button#resend').isDisabled(), true, '#resend is still disabled');

    // --- the right code: logged in on /
    const rightAnswer = await typeCode(page, code);
    assert.equal(rightAnswer.status(), 303, 'the right code is accepted (POST /bind/verify -> 303)');
    await page.waitForURL((u) => pathOf(u.toString()) === '/');
    assert.ok(
      (await whoami(page)).includes(maskPhone(phone)),
      `#whoami shows the masked phone ${maskPhone(phone)}`,
    );
    assert.ok(!(await page.content()).includes(phone), 'the full phone number is not on the page');

    // --- log out
    const loggedOut = await submission(page, '/logout', () =>
      page.locator('form#logout').locator('button, input[type=submit]').first().click(),
    );
    assert.equal(loggedOut.status(), 303, 'POST /logout -> 303');
    assert.equal(pathOf(page.url()), '/', 'after logging out the person is on /');
    await page.locator('a#login-link').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#whoami').count(), 0, 'no #whoami after logout');

    // --- the same person scans again: straight to /, no /bind
    await openLoginWithLiveEvents(page);
    const again = await ticketFrom(page);
    assert.notEqual(again.ticket, ticket, 'a new login gets a new ticket');
    const navigations2 = recordNavigations(page);

    const second = await scan(again.ticket, openid);
    assert.equal(second.event, 'SCAN', 'a follower scanning again is a SCAN event');

    await page.waitForURL((u) => pathOf(u.toString()) === '/');
    assert.ok(
      !navigations2.some((u) => pathOf(u) === '/bind'),
      `a known person does not see /bind; saw ${JSON.stringify(navigations2)}`,
    );
    assert.ok((await whoami(page)).includes(maskPhone(phone)), 'logged in again as the same person');
    await screenshot(page, 'home');
  } finally {
    await context.close();
  }
});

test('sandbox phone page: scanning from another device moves the login page to /bind', { timeout: TEST_TIMEOUT }, async () => {
  const desktop = await newContext();
  // The phone is a different device: its own context, cookies and all.
  const phone = await newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  try {
    const loginPage = await desktop.newPage();
    await openLoginWithLiveEvents(loginPage);
    const { href } = await ticketFrom(loginPage);
    assert.equal(
      new URL(href).origin,
      new URL(BASE_URL).origin,
      `the sandbox link points at this server (${href})`,
    );

    const phonePage = await phone.newPage();
    const res = await phonePage.goto(href);
    assert.equal(res.status(), 200, 'GET /sandbox/scan/<ticket> -> 200');
    const form = phonePage.locator('form#scan-form');
    await form.waitFor({ state: 'visible' });
    await form.locator('input[name=openid]').fill(randomOpenid(OPENID_PREFIX));
    await phonePage.locator('#scan').click();

    const bubble = phonePage.locator('.bubble.reply').first();
    await bubble.waitFor({ state: 'visible' });
    assert.ok(((await bubble.textContent()) ?? '').trim().length > 0, 'the WeChat reply bubble has text');
    assert.deepEqual(await overflowOf(phonePage), [], 'the simulated phone page fits its screen');
    await screenshot(phonePage, 'sandbox-phone');

    await loginPage.waitForURL((u) => pathOf(u.toString()) === '/bind');
    await loginPage.locator('form#send-code-form').waitFor({ state: 'visible' });
  } finally {
    await phone.close();
    await desktop.close();
  }
});

for (const locale of ['zh-CN', 'en-US']) {
  test(`phone-sized screen (${locale}): login and binding fit a 390 px wide phone`, { timeout: TEST_TIMEOUT }, async () => {
    // Someone may open the login page on a phone (and scan it with another); nothing should
    // need sideways scrolling, and the QR code must be whole on the first screen. Both
    // languages: Chinese is the default, English has the longest words.
    const tag = locale.slice(0, 2);
    const context = await newContext({
      locale,
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    try {
      const page = await context.newPage();
      await openLoginWithLiveEvents(page);
      assert.match(await page.evaluate(() => document.documentElement.lang), new RegExp(`^${tag}`));
      const qr = await page.locator('#qr svg').boundingBox();
      assert.ok(qr && qr.width >= 150, `the QR code is big enough to scan: ${JSON.stringify(qr)}`);
      assert.ok(qr.x >= 0 && qr.x + qr.width <= 390, `the QR code is whole across: ${JSON.stringify(qr)}`);
      assert.ok(qr.y >= 0 && qr.y + qr.height <= 844, `the QR code is on the first screen: ${JSON.stringify(qr)}`);
      assert.deepEqual(await overflowOf(page), [], '/login fits the phone screen');
      await screenshot(page, `login-phone-${tag}`);

      const { ticket } = await ticketFrom(page);
      await scan(ticket, randomOpenid(OPENID_PREFIX));
      await page.waitForURL((u) => pathOf(u.toString()) === '/bind');
      await page.locator('form#send-code-form').waitFor({ state: 'visible' });
      assert.deepEqual(await overflowOf(page), [], '/bind (phone step) fits the phone screen');
      await screenshot(page, `bind-phone-${tag}`);

      const phone = randomPhone(PHONE_PREFIX);
      await page.locator('form#send-code-form input[name=phone]').fill(phone);
      await page.locator('button#send-code').click();
      await page.locator('form#verify-form').waitFor({ state: 'visible' });
      await typeCode(page, wrongCode(await smsCode(phone)));
      await page.locator('form#verify-form .field-error').waitFor({ state: 'visible' });
      assert.deepEqual(await overflowOf(page), [], '/bind (code step, with an error) fits the phone screen');
      await screenshot(page, `bind-verify-phone-${tag}`);
    } finally {
      await context.close();
    }
  });
}

test('language: Chinese by default, English when the browser prefers English', { timeout: TEST_TIMEOUT }, async () => {
  const lang = async (options) => {
    const context = await newContext(options);
    try {
      const page = await context.newPage();
      await page.goto(url('/login'));
      return {
        lang: await page.evaluate(() => document.documentElement.lang),
        text: await page.evaluate(() => document.body.innerText),
      };
    } finally {
      await context.close();
    }
  };

  const en = await lang({ locale: 'en-US' });
  assert.match(en.lang, /^en(-|$)/, `<html lang> with locale en-US: ${en.lang}`);

  const zh = await lang({ locale: 'zh-CN' });
  assert.match(zh.lang, /^zh(-|$)/, `<html lang> with locale zh-CN: ${zh.lang}`);
  assert.match(zh.text, /[\u4e00-\u9fff]/, 'the Chinese page has Chinese text');

  // "By default" means no Accept-Language at all (a browser context always sends one).
  const res = await fetch(url('/login'), { headers: { accept: 'text/html' } });
  assert.equal(res.status, 200);
  const html = await res.text();
  const m = html.match(/<html[^>]*\blang="([^"]*)"/i);
  assert.ok(m, '<html> has a lang attribute');
  assert.match(m[1], /^zh(-|$)/, `<html lang> without Accept-Language: ${m[1]}`);
});

test('no JavaScript: the login page refreshes itself and reaches /bind after a scan', { timeout: TEST_TIMEOUT }, async () => {
  const context = await newContext({ javaScriptEnabled: false });
  try {
    const page = await context.newPage();
    const res = await page.goto(url('/login'));
    assert.equal(res.status(), 200);
    await page.locator('#qr svg').waitFor({ state: 'visible' });
    const html = await page.content();
    assert.match(html, /<noscript>[\s\S]*http-equiv="?refresh/i, 'a meta refresh inside <noscript>');
    const { ticket } = await ticketFrom(page);

    await scan(ticket, randomOpenid(OPENID_PREFIX));

    // The test does not reload: the page's own meta refresh must get there.
    await page.waitForURL((u) => pathOf(u.toString()) === '/bind', { timeout: 15_000 });
    await page.locator('form#send-code-form').waitFor({ state: 'visible' });
  } finally {
    await context.close();
  }
});
