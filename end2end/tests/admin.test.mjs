// End-to-end test of the admin area, run against a live server in sandbox mode.
//
//   BASE_URL=http://127.0.0.1:3000 WXLOGIN_BIN=target/debug/wxlogin \
//   WXLOGIN_DATABASE_URL=sqlite:///tmp/e2e/e2e.db node --test end2end/tests/
//
// The first administrator can only be made on the command line, so this test runs
// `$WXLOGIN_BIN admin grant <phone>` on the server's database (WXLOGIN_DATABASE_URL): scripts/test
// exports both. Everything else goes through the browser, or the sandbox's automation API where
// a person would use their phone. The setup and the helpers shared with the other files are in
// end2end/support.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  STEP_TIMEOUT,
  useBrowser,
  url,
  pathOf,
  sleep,
  randomOpenid,
  randomPhone,
  maskPhone,
  screenshot,
  ticketInLink,
  scan,
  recordNavigations,
  smsCode,
  ticketOf,
  openLogin,
  wxloginAdmin,
  siteSkip,
} from '../support.mjs';


const TEST_TIMEOUT = 120_000;
const OPENID_PREFIX = 'e2e-admin-';
const PHONE_PREFIX = '139';

const newContext = useBrowser({ locale: 'zh-CN' });

// ---------------------------------------------------------------------------------------
// helpers


/** A first scan and phone binding in `page`, ending logged in on /. */
async function bind(page, openid, phone) {
  await openLogin(page);
  await scan(await ticketOf(page), openid);
  await page.waitForURL((u) => pathOf(u.toString()) === '/bind');
  await page.locator('form#send-code-form input[name=phone]').fill(phone);
  await page.locator('button#send-code').click();
  const input = page.locator('form#verify-form input#code');
  await input.waitFor({ state: 'visible' });
  const code = await smsCode(phone);
  // app.js submits the form once the sixth digit is in.
  await Promise.all([page.waitForURL((u) => pathOf(u.toString()) === '/'), input.fill(code)]);
  await page.locator('#whoami').waitFor({ state: 'visible' });
}


/**
 * Does action `<name>` on a user's page as a person would: an action that locks someone out
 * is a link to its confirmation first (a second step that works without JavaScript), the
 * others a form. Waits for the page it leads to, which says it is done.
 */
async function act(page, name) {
  const link = page.locator(`a#action-${name}`);
  let submit = page.locator(`form#action-${name} button`);
  if (await link.count()) {
    await Promise.all([page.waitForEvent('load'), link.click()]);
    await page.locator('#confirm').waitFor({ state: 'visible' });
    submit = page.locator(`form#confirm-${name} button`);
  }
  const answer = page.waitForResponse(
    (r) => r.request().method() === 'POST' && pathOf(r.url()).endsWith(`/${name}`),
  );
  const loaded = page.waitForEvent('load');
  await submit.click();
  assert.equal((await answer).status(), 303, `POST .../${name} -> 303`);
  await loaded;
  await page.locator('#done').waitFor({ state: 'visible' });
}

// ---------------------------------------------------------------------------------------
// the journey


test(
  'admin: find a user by the last four digits, disable (session ends, scan refused), enable, see the login live',
  {
    timeout: TEST_TIMEOUT,
    skip: siteSkip,
  },
  async () => {
    const personCtx = await newContext();
    const adminCtx = await newContext({ viewport: { width: 1280, height: 900 } });
    try {
      // --- someone binds and stays on the site
      const person = await personCtx.newPage();
      const personOpenid = randomOpenid(OPENID_PREFIX);
      const personPhone = randomPhone(PHONE_PREFIX);
      await bind(person, personOpenid, personPhone);

      // --- someone else binds, and is made an administrator on the command line
      const admin = await adminCtx.newPage();
      const adminPhone = randomPhone(PHONE_PREFIX);
      await bind(admin, randomOpenid(OPENID_PREFIX), adminPhone);
      let res = await admin.goto(url('/admin'));
      assert.equal(res.status(), 403, 'not an admin yet: 403');
      const granted = wxloginAdmin('grant', adminPhone);
      assert.match(granted, /is now an administrator/, granted);
      assert.match(wxloginAdmin('list'), new RegExp(`\\+86${adminPhone}`));

      // --- the admin finds the person by the last four digits of their phone
      res = await admin.goto(url('/admin/users'));
      assert.equal(res.status(), 200, 'the admin area opens without logging in again');
      await admin.locator('form#user-filters input#q').fill(personPhone.slice(-4));
      await Promise.all([
        admin.waitForURL((u) => new URL(u).searchParams.get('q') === personPhone.slice(-4)),
        admin.locator('button#apply-filters').click(),
      ]);
      const rows = admin.locator('table#users tbody tr', { hasText: maskPhone(personPhone) });
      assert.ok((await rows.count()) >= 1, `a row shows ${maskPhone(personPhone)}`);
      await screenshot(admin, 'admin-users-search');
      // Masks can coincide; the detail page shows the whole number.
      let found = false;
      for (let i = 0; i < (await rows.count()) && !found; i++) {
        const href = await rows.nth(i).locator('a.phone').getAttribute('href');
        await admin.goto(url(href));
        found = (await admin.locator('#user-phone').textContent()) === `+86${personPhone}`;
      }
      assert.ok(found, 'the person is among the results');
      await screenshot(admin, 'admin-user-detail');

      // --- disable: their open page is logged out at its next request
      await act(admin, 'disable');
      assert.match((await admin.locator('#user-disabled').textContent()) ?? '', /是|Yes/);
      assert.equal(await admin.locator('#audit-log tr[data-audit-action="disable"]').count(), 1);
      await person.reload();
      await person.locator('a#login-link').waitFor({ state: 'visible' });
      assert.equal(await person.locator('#whoami').count(), 0, 'logged out at the next request');

      // --- and their next scan is refused
      await openLogin(person);
      const refused = await scan(await ticketOf(person), personOpenid);
      assert.match(refused.reply, /停用|disabled/, `the WeChat reply says disabled: ${refused.reply}`);
      await person.locator('#status .status-refused').waitFor({ state: 'visible' });

      // --- enable again, and watch the dashboard
      await act(admin, 'enable');
      assert.match((await admin.locator('#user-disabled').textContent()) ?? '', /否|No/);
      const stream = admin.waitForResponse((r) => pathOf(r.url()) === '/admin/events');
      await admin.goto(url('/admin'));
      assert.equal((await stream).status(), 200, 'GET /admin/events -> 200');
      const list = admin.locator('#latest-logins');
      const lastId = Number(await list.getAttribute('data-last-id'));
      await screenshot(admin, 'admin-dashboard');
      const navigations = recordNavigations(admin);

      // --- the person logs in again; the dashboard shows it without a reload
      await openLogin(person, '/login?fresh=1');
      const ok = await scan(await ticketOf(person), personOpenid);
      assert.doesNotMatch(ok.reply, /停用|disabled/, ok.reply);
      await person.waitForURL((u) => pathOf(u.toString()) === '/');
      await person.locator('#whoami').waitFor({ state: 'visible' });

      await admin.waitForFunction(
        ({ lastId, masked }) =>
          [...document.querySelectorAll('#latest-logins li')].some(
            (li) =>
              Number(li.dataset.id) > lastId &&
              li.textContent.includes(masked) &&
              li.querySelector('.outcome-logged_in'),
          ),
        { lastId, masked: maskPhone(personPhone) },
        { timeout: STEP_TIMEOUT },
      );
      assert.deepEqual(navigations, [], 'the dashboard did not reload');
      await screenshot(admin, 'admin-dashboard-live');
    } finally {
      await personCtx.close();
      await adminCtx.close();
    }
  },
);
