// End-to-end test of wxlogin as an OpenID Connect provider: an example site
// (examples/relying-party.mjs, a separate program) sends Chromium to wxlogin, the person
// scans in the sandbox and binds a phone, and lands back on the site logged in with the phone
// claim; a second visit with prompt=none is silent. The site is registered with
// `$WXLOGIN_BIN client add` on the server's database (scripts/test exports both).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE_URL,
  useBrowser,
  url,
  pathOf,
  randomOpenid,
  randomPhone,
  screenshot,
  scan,
  smsCode,
  ticketOf,
  recordNavigations,
  siteSkip,
  startSite,
} from '../support.mjs';

const newContext = useBrowser({ locale: 'en-US' });


test(
  'a site logs its user in through wxlogin (scan, bind, back with the phone claim); prompt=none is silent',
  {
    timeout: 120_000,
    skip: siteSkip,
  },
  async () => {
    const site = await startSite();
    const context = await newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${site.origin}/`);
      await page.locator('a#rp-login').click();
      // On wxlogin's login page, which names the site.
      await page.waitForURL((u) => u.toString().startsWith(url('/login')));
      await page.locator('#login-site').waitFor({ state: 'visible' });
      assert.match(await page.locator('#login-site').innerText(), /Example Site/);
      await screenshot(page, 'oidc-login-names-the-site');

      const phone = randomPhone('137');
      await scan(await ticketOf(page), randomOpenid('e2e-oidc-'));
      await page.waitForURL((u) => pathOf(u.toString()) === '/bind');
      await page.locator('form#send-code-form input[name=phone]').fill(phone);
      await page.locator('button#send-code').click();
      const input = page.locator('form#verify-form input#code');
      await input.waitFor({ state: 'visible' });
      const code = await smsCode(phone);
      // app.js submits the code; the login completes and goes back to the site.
      await Promise.all([page.waitForURL(`${site.origin}/`), input.fill(code)]);
      const shown = await page.locator('#rp-phone').innerText();
      assert.equal(shown, `+86${phone}`, 'the site got the phone claim');
      const sub = await page.locator('#rp-sub').innerText();
      await screenshot(page, 'oidc-back-on-the-site');

      // A second visit with prompt=none: no wxlogin page is shown, the person is back at once.
      const second = await context.newPage();
      const visited = recordNavigations(second);
      await second.goto(`${site.origin}/login?prompt=none`);
      await second.waitForURL(`${site.origin}/`);
      assert.equal(await second.locator('#rp-sub').innerText(), sub, 'the same person');
      const shownPages = visited.filter((u) => u.startsWith(BASE_URL));
      assert.deepEqual(shownPages, [], `no wxlogin page was shown: ${visited.join(' -> ')}`);

      // A stranger with prompt=none gets login_required, not a login page.
      const strangerCtx = await newContext();
      try {
        const stranger = await strangerCtx.newPage();
        await stranger.goto(`${site.origin}/login?prompt=none`);
        await stranger.locator('#rp-error').waitFor({ state: 'visible' });
        assert.equal(await stranger.locator('#rp-error').innerText(), 'login_required');
      } finally {
        await strangerCtx.close();
      }
    } finally {
      await context.close();
      site.stop();
    }
  },
);
