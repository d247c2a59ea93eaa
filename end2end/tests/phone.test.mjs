// Logging in from a phone, at phone size: inside WeChat's browser by web authorization (the
// sandbox plays WeChat's authorize step), also for a site's OpenID Connect request; and in a
// phone browser outside WeChat by saving the QR image (checked by decoding the PNG) or by an
// SMS code.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import jsQR from 'jsqr';
import { PNG } from 'pngjs';
import {
  maskPhone,
  pathOf,
  randomOpenid,
  randomPhone,
  recordNavigations,
  scan,
  screenshot,
  siteSkip,
  sleep,
  smsCode,
  startSite,
  ticketOf,
  url,
  useBrowser,
} from '../support.mjs';

const WECHAT_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) ' +
  'Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/en';
const SAFARI_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) ' +
  'Version/17.0 Mobile/15E148 Safari/604.1';
const PHONE_SIZE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const RESEND_SECONDS = Number(process.env.E2E_RESEND_SECONDS ?? 10);

const newContext = useBrowser({ locale: 'en-US', ...PHONE_SIZE });

/** On the sandbox's WeChat authorize page: goes on as a new simulated person. */
async function authorizeAsNewPerson(page, prefix) {
  await page.waitForURL((u) => pathOf(u.toString()) === '/sandbox/connect/oauth2/authorize');
  await page.locator('#openid').fill(randomOpenid(prefix));
  await page.locator('#oauth-allow').click();
}

/** On /bind or /login/sms: sends a code to `phone` and types it (app.js submits it). */
async function enterCode(page, phone, after, until) {
  await page.locator('form#send-code-form input[name=phone]').fill(phone);
  await page.locator('button#send-code').click();
  const input = page.locator('form#verify-form input#code');
  await input.waitFor({ state: 'visible' });
  let code = await smsCode(phone);
  // The code of an earlier step may still be the newest for a moment: wait for this one.
  for (let i = 0; code === after && i < 40; i++) {
    await sleep(250);
    code = await smsCode(phone);
  }
  assert.notEqual(code, after, 'a new code arrived');
  await Promise.all([page.waitForURL(until), input.fill(code)]);
  return code;
}

test('inside WeChat, /login ends logged in through web authorization, with no scan', async () => {
  const context = await newContext({ userAgent: WECHAT_UA });
  try {
    const page = await context.newPage();
    const visited = recordNavigations(page);
    await page.goto(url('/login'));
    await page.waitForURL((u) => pathOf(u.toString()) === '/sandbox/connect/oauth2/authorize');
    await screenshot(page, 'phone-wechat-authorize');
    await authorizeAsNewPerson(page, 'e2e-wx-');
    // A first-time person binds a phone, as after a scan.
    await page.waitForURL((u) => pathOf(u.toString()) === '/bind');
    const phone = randomPhone('136');
    await enterCode(page, phone, null, (u) => pathOf(u.toString()) === '/');
    assert.match(await page.locator('#whoami').innerText(), new RegExp(maskPhone(phone).replace(/\*/g, '\\*')));
    // Web authorization doesn't follow the account: the card suggests it, with its code.
    const card = page.locator('#follow-card');
    await card.waitFor({ state: 'visible' });
    const drawn = await card.locator('img').evaluate((img) => img.complete && img.naturalWidth > 0);
    assert.ok(drawn, 'the account QR image loaded');
    await screenshot(page, 'phone-wechat-logged-in-follow-card');
    // The QR page was never shown: /login only redirected.
    assert.ok(!visited.some((u) => pathOf(u) === '/login'), visited.join(' -> '));
  } finally {
    await context.close();
  }
});

test(
  "a site's OpenID Connect request opened in WeChat comes back to the site, by wechat_oauth",
  { timeout: 120_000, skip: siteSkip },
  async () => {
    const site = await startSite();
    const context = await newContext({ userAgent: WECHAT_UA });
    try {
      const page = await context.newPage();
      await page.goto(`${site.origin}/`);
      await page.locator('a#rp-login').click();
      await authorizeAsNewPerson(page, 'e2e-wx-oidc-');
      await page.waitForURL((u) => pathOf(u.toString()) === '/bind');
      const phone = randomPhone('135');
      await enterCode(page, phone, null, `${site.origin}/`);
      assert.equal(await page.locator('#rp-phone').innerText(), `+86${phone}`);
      assert.equal(await page.locator('#rp-amr').innerText(), 'wechat_oauth');
      await screenshot(page, 'phone-wechat-oidc-back-on-the-site');
    } finally {
      await context.close();
      site.stop();
    }
  },
);

/** The text of the one QR code in the PNG file at `path`. */
function decodePng(path) {
  const png = PNG.sync.read(readFileSync(path));
  const found = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
  assert.ok(found, 'a QR code in the PNG');
  return found.data;
}

test('a phone browser saves the QR image (it decodes to the same code) and logs in by SMS', { timeout: 90_000 }, async () => {
  // Someone who bound this phone earlier, on a computer.
  const phone = randomPhone('134');
  const desktop = await newContext({ viewport: { width: 1280, height: 800 }, isMobile: false, hasTouch: false });
  let bindingCode;
  let boundAt;
  try {
    const page = await desktop.newPage();
    await page.goto(url('/login'));
    await scan(await ticketOf(page), randomOpenid('e2e-safari-'));
    await page.waitForURL((u) => pathOf(u.toString()) === '/bind');
    boundAt = Date.now();
    bindingCode = await enterCode(page, phone, null, (u) => pathOf(u.toString()) === '/');
  } finally {
    await desktop.close();
  }

  const context = await newContext({ userAgent: SAFARI_UA, acceptDownloads: true });
  try {
    const page = await context.newPage();
    await page.goto(url('/login'));
    await page.locator('#phone-ways').waitFor({ state: 'visible' });
    await screenshot(page, 'phone-safari-login');
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('a#save-qr').click()]);
    assert.equal(download.suggestedFilename(), 'wechat-login-qr.png');
    const saved = await download.path();
    const shown = await page.locator('a#sandbox-link').getAttribute('href');
    assert.equal(decodePng(saved), shown, 'the saved image is the code on the page');

    await page.locator('a#sms-login').click();
    await page.waitForURL((u) => pathOf(u.toString()) === '/login/sms');
    await screenshot(page, 'phone-safari-sms-login');
    // The binding's code went to this phone moments ago: wait out the resend cooldown.
    const wait = boundAt + (RESEND_SECONDS + 1) * 1000 - Date.now();
    if (wait > 0) await sleep(wait);
    await enterCode(page, phone, bindingCode, (u) => pathOf(u.toString()) === '/');
    assert.match(await page.locator('#whoami').innerText(), /\*\*\*\*/);
    await screenshot(page, 'phone-safari-logged-in-by-sms');
  } finally {
    await context.close();
  }
});
