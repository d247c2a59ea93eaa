// What each state looks like where the eye is: a dead QR code looks dead on the code itself
// and a tap brings a fresh one; a scan shows the scanned code before the page moves on; a dead
// SMS code turns its field off and offers a new code; a resend asked for too early is a notice.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  expireUntilDead,
  openLogin,
  pathOf,
  randomOpenid,
  randomPhone,
  scan,
  screenshot,
  smsCode,
  ticketInLink,
  ticketOf,
  typeCode,
  url,
  useBrowser,
  wrongCode,
} from '../support.mjs';

const newContext = useBrowser({ locale: 'en-US' });
const TIMEOUT = { timeout: 90_000 };

test('a dead QR code looks dead on the code itself, and a tap brings a fresh one', TIMEOUT, async () => {
  const context = await newContext();
  try {
    const page = await context.newPage();
    await openLogin(page);
    await expireUntilDead(page);
    const overlay = page.locator('#qr[data-state="expired"] a#qr-refresh');
    await overlay.waitFor({ state: 'visible' });
    assert.match(await overlay.innerText(), /expired[\s\S]*Tap to refresh/);
    assert.equal(await page.locator('#countdown').count(), 0, 'no countdown on a dead code');
    assert.equal(await page.locator('a#sandbox-link').count(), 0, 'no link to a dead ticket');
    const opacity = await page.locator('#qr svg').evaluate((svg) => Number(getComputedStyle(svg).opacity));
    assert.ok(opacity < 0.5, `the dead code is dimmed (opacity ${opacity})`);
    await screenshot(page, 'state-qr-expired');

    await Promise.all([page.waitForEvent('load'), overlay.click()]);
    await page.locator('#qr[data-state="live"]').waitFor({ state: 'visible' });
    assert.ok(ticketInLink(await page.locator('a#sandbox-link').getAttribute('href')), 'a fresh code to scan');
    assert.match(await page.locator('#countdown').innerText(), /^[1-9]:\d\d$/, 'its countdown starts again');
  } finally {
    await context.close();
  }
});

test('a scan shows the scanned code and "logging in" before the page moves on', TIMEOUT, async () => {
  const context = await newContext();
  try {
    const page = await context.newPage();
    await openLogin(page);
    const ticket = await ticketOf(page);
    const seen = page.locator('#qr[data-state="scanned"]').waitFor({ state: 'visible' });
    await scan(ticket, randomOpenid('e2e-state-'));
    await seen;
    assert.match(await page.locator('#status').innerText(), /Scanned/);
    assert.equal(await page.locator('#countdown').count(), 0);
    await screenshot(page, 'state-qr-scanned');
    await page.waitForURL((u) => pathOf(u.toString()) === '/bind');
  } finally {
    await context.close();
  }
});

test('a dead SMS code turns its field off and offers a new code; an early resend is a notice', TIMEOUT, async () => {
  const context = await newContext();
  try {
    const page = await context.newPage();
    await openLogin(page);
    await scan(await ticketOf(page), randomOpenid('e2e-state-'));
    await page.waitForURL((u) => pathOf(u.toString()) === '/bind');
    const phone = randomPhone('133');
    await page.locator('form#send-code-form input[name=phone]').fill(phone);
    await Promise.all([page.waitForEvent('load'), page.locator('button#send-code').click()]);
    await page.locator('#code-sent').waitFor({ state: 'visible' });
    const wrong = wrongCode(await smsCode(phone));
    for (let i = 0; i < 5; i++) await typeCode(page, wrong);

    await page.locator('#code-dead').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#code-sent').count(), 0, 'no "sent, valid 5 minutes" any more');
    assert.ok(await page.locator('input#code').isDisabled(), 'the code field is off');
    assert.ok(await page.locator('button#verify').isDisabled(), 'so is its button');
    await page.locator('button#resend').waitFor({ state: 'visible' });
    assert.match(await page.locator('button#resend').getAttribute('data-label'), /Send a new code/);
    await screenshot(page, 'state-bind-dead-code');
  } finally {
    await context.close();
  }

  // Without JavaScript the resend button is never frozen: it says when it will work, and
  // pressing it early answers with a notice, not an error under the field.
  const plain = await newContext({ javaScriptEnabled: false });
  try {
    const page = await plain.newPage();
    await page.goto(url('/login'));
    await scan(await ticketOf(page), randomOpenid('e2e-state-'));
    await page.goto(url('/bind'));
    const phone = randomPhone('133');
    await page.locator('form#send-code-form input[name=phone]').fill(phone);
    await Promise.all([page.waitForEvent('load'), page.locator('button#send-code').click()]);
    assert.ok(await page.locator('button#resend').isEnabled(), 'the button works without a script');
    assert.match(await page.locator('#resend-when').innerText(), /You can ask again after \d\d:\d\d:\d\d/);
    await Promise.all([page.waitForEvent('load'), page.locator('button#resend').click()]);
    await page.locator('#code-notice').waitFor({ state: 'visible' });
    assert.match(await page.locator('#code-notice').innerText(), /Wait \d+ s before asking again/);
    assert.equal(await page.locator('#code-sent').count(), 0, 'no second "sent" banner');
    assert.equal(await page.locator('.field-error').count(), 0, 'not a field error');
    await screenshot(page, 'state-bind-resend-too-early');
  } finally {
    await plain.close();
  }
});
