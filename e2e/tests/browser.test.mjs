// End to end in a real browser (Debian's Chromium via playwright-core): log in through
// the IdP's form, use the app, see identity headers, sign out through the IdP.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ACCESS_TTL_SECS, REFRESH_LEEWAY_SECS, startStack } from './stack.mjs';

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
let stack;
let browser;

before(async () => {
  stack = await startStack();
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close();
  stack?.stop();
});

// What differs between the IdPs this suite runs against: their login and logout pages.
const idp = process.env.E2E_IDP === 'keycloak'
  ? {
    loginPage: () => new RegExp(`^${stack.issuer}/(protocol/openid-connect/auth|login-actions/)`),
    async submitLogin(page, user) {
      await page.fill('#username', user);
      await page.fill('#password', user); // the demo realm's passwords equal the user names
      await page.click('#kc-login, button[type=submit], input[type=submit]');
    },
    // With id_token_hint and a registered post_logout_redirect_uri Keycloak asks nothing.
    async confirmLogout() {},
    // Without them (the user signs out at Keycloak itself) it asks.
    async confirmIdpLogout(page) {
      await page.click('#kc-logout, [name=confirmLogout]');
    },
    // Keycloak's login page has no cancel: come back the way an IdP reports one.
    async cancelLogin(page) {
      const state = new URL(page.url()).searchParams.get('state') ?? 'x';
      await page.goto(`${stack.base}/oauth2/callback?error=access_denied&state=${state}`);
    },
  }
  : {
    loginPage: () => new RegExp(`^${stack.issuer}/interaction/`),
    async submitLogin(page, user) {
      await page.fill('input[name=login]', user);
      await page.fill('input[name=password]', 'any password');
      await page.click('button[type=submit]');
    },
    async confirmLogout(page) {
      await page.waitForURL(new RegExp(`^${stack.issuer}/session/end`));
      await page.click('button[autofocus], button[type=submit]');
    },
    async confirmIdpLogout(page) {
      await this.confirmLogout(page);
    },
    async cancelLogin(page) {
      await page.click('a[href*="/abort"]');
    },
  };

async function login(page, user, path) {
  await page.goto(`${stack.base}${path}`);
  await page.waitForURL(idp.loginPage());
  await idp.submitLogin(page, user);
  await page.waitForURL((u) => u.toString().startsWith(stack.base) && !u.pathname.startsWith('/oauth2/'));
}

function echoed(text) {
  const body = JSON.parse(text);
  const headers = Object.fromEntries(body.headers);
  return { path: body.path, headers };
}

test('alice logs in, lands on her deep link, and the app sees who she is', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await login(page, 'alice', '/reports/2026?tab=q3');
  assert.equal(new URL(page.url()).pathname + new URL(page.url()).search, '/reports/2026?tab=q3');
  const seen = echoed(await page.innerText('body'));
  assert.equal(seen.path, '/reports/2026?tab=q3');
  assert.equal(seen.headers['x-auth-request-user'], 'alice');
  assert.equal(seen.headers['x-auth-request-groups'], 'admins');
  // Cookies are per host, not per port: the IdP's own (also on 127.0.0.1) may pass; ours never.
  assert.doesNotMatch(seen.headers.cookie ?? '', /oidc_(session|flow)/, 'our cookies never reach the app');

  const cookies = await context.cookies(stack.base);
  const session = cookies.find((c) => c.name === '__Host-oidc_session');
  assert.ok(session, `the browser kept the __Host- session cookie: ${JSON.stringify(cookies.map((c) => c.name))}`);
  assert.equal(session.httpOnly, true);
  assert.equal(session.secure, true);
  assert.equal(session.sameSite, 'Lax');
  assert.equal(session.path, '/');

  // JavaScript in the page cannot read the session cookie.
  assert.equal(await page.evaluate(() => document.cookie.includes('oidc_session')), false);

  await page.goto(`${stack.base}/admin/tools`);
  assert.equal(echoed(await page.innerText('body')).headers['x-auth-request-user'], 'alice');
  await page.screenshot({ path: join(stack.dir, 'alice-admin.png') });
  await context.close();
});

test('bob is refused where admins are required', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await login(page, 'bob', '/');
  const resp = await page.goto(`${stack.base}/admin/tools`);
  assert.equal(resp.status(), 403);
  const text = await page.innerText('body');
  assert.match(text, /403 Forbidden[\s\S]*not allowed here[\s\S]*trace id: \S+/);
  await page.screenshot({ path: join(stack.dir, 'error-forbidden.png') });
  await context.close();
});

test('sign-out ends the session here and at the IdP', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await login(page, 'alice', '/');
  await page.goto(`${stack.base}/oauth2/sign_out`);
  // The sign-out page sends id_token_hint to the IdP, which may ask for confirmation.
  await idp.confirmLogout(page);
  // Back from the IdP on the signed-out page, which does not start a new login.
  await page.waitForURL(`${stack.base}/oauth2/signed_out`);
  assert.match(await page.innerText('body'), /You have signed out/);
  await page.screenshot({ path: join(stack.dir, 'signed-out.png') });
  const cookies = await context.cookies(stack.base);
  assert.equal(cookies.find((c) => c.name === '__Host-oidc_session'), undefined, 'session cookie cleared');
  // Back at the app, a new login is needed: the IdP asks for credentials again.
  await page.goto(`${stack.base}/`);
  await page.waitForURL(idp.loginPage());
  await context.close();
});

async function eventually(check, what, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('a token near expiry is refreshed at the IdP and the session survives it', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await login(page, 'alice', '/');
  const refreshed = () => stack.metric('oidc_refreshes', 'result="refreshed"');
  for (const round of [1, 2]) {
    const before = await refreshed();
    // Past the point where the access token is within the refresh leeway of its expiry.
    await new Promise((r) => setTimeout(r, (ACCESS_TTL_SECS - REFRESH_LEEWAY_SECS + 1) * 1000));
    const resp = await page.goto(`${stack.base}/after-refresh-${round}`);
    assert.equal(resp.status(), 200, `round ${round}: still signed in`);
    const seen = echoed(await page.innerText('body'));
    assert.equal(seen.headers['x-auth-request-user'], 'alice');
    assert.equal(seen.headers['x-auth-request-groups'], 'admins');
    // Round 2 uses the refresh token the IdP rotated in round 1.
    assert.ok(await refreshed() > before, `round ${round}: the filter refreshed the tokens at the IdP`);
  }
  await context.close();
});

test('signing out at the IdP ends the session here too (back-channel logout)', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await login(page, 'alice', '/');
  const ended = () => stack.metric('oidc_backchannel_logouts', 'result="ok"');
  const before = await ended();
  // The user signs out at the IdP itself, not through the gateway.
  await page.goto(stack.discovery.end_session_endpoint);
  await idp.confirmIdpLogout(page);
  await eventually(async () => (await ended()) > before, 'the IdP\'s back-channel logout to reach the filter');
  // The browser still holds our cookie, but the session behind it is gone.
  assert.ok((await context.cookies(stack.base)).some((c) => c.name === '__Host-oidc_session'));
  await page.goto(`${stack.base}/`);
  await page.waitForURL(idp.loginPage());
  await context.close();
});

test('an administrator ending the user\'s sessions at Keycloak ends them here', { skip: process.env.E2E_IDP !== 'keycloak' && 'Keycloak only (its admin API)' }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await login(page, 'bob', '/');
  const origin = new URL(stack.issuer).origin;
  const token = await (await fetch(`${origin}/realms/master/protocol/openid-connect/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'password', client_id: 'admin-cli',
      username: process.env.KEYCLOAK_ADMIN_USER, password: process.env.KEYCLOAK_ADMIN_PASSWORD,
    }),
  })).json();
  assert.ok(token.access_token, `admin token: ${JSON.stringify(token)}`);
  const admin = { authorization: `Bearer ${token.access_token}` };
  const realm = stack.issuer.replace(`${origin}/realms/`, '');
  const [user] = await (await fetch(`${origin}/admin/realms/${realm}/users?exact=true&username=bob`, { headers: admin })).json();
  const ended = () => stack.metric('oidc_backchannel_logouts', 'result="ok"');
  const before = await ended();
  const resp = await fetch(`${origin}/admin/realms/${realm}/users/${user.id}/logout`, { method: 'POST', headers: admin });
  assert.equal(resp.status, 204);
  await eventually(async () => (await ended()) > before, 'Keycloak\'s back-channel logout to reach the filter');
  await page.goto(`${stack.base}/`);
  await page.waitForURL(idp.loginPage());
  await context.close();
});

test('a cancelled sign-in gets a page that says so, with a way back and the trace id', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${stack.base}/reports`);
  await page.waitForURL(idp.loginPage());
  await idp.cancelLogin(page);
  await page.waitForURL((u) => u.toString().startsWith(`${stack.base}/oauth2/callback`));
  const text = await page.innerText('body');
  assert.match(text, /400 Bad Request/);
  assert.match(text, /Sign-in was cancelled or refused/);
  assert.match(text, /trace id: \S+/);
  await page.screenshot({ path: join(stack.dir, 'error-cancelled.png') });
  // "Try again" starts a new sign-in.
  await page.click('text=Try again');
  await page.waitForURL(idp.loginPage());
  await context.close();
});

test('API clients get JSON errors with the trace id', async () => {
  const resp = await fetch(`${stack.base}/api/orders`, { headers: { accept: 'application/json', 'x-request-id': 'e2e-json-1' } });
  assert.equal(resp.status, 401);
  assert.equal(resp.headers.get('www-authenticate'), 'Bearer realm="oidc"');
  // Envoy replaces a client-chosen request id (use_remote_address, SECURITY.md).
  const id = resp.headers.get('x-request-id');
  assert.notEqual(id, 'e2e-json-1');
  assert.deepEqual(await resp.json(), { error: 'invalid_token', error_description: 'no_credentials', trace_id: id });
});

// Last: it stops the IdP.
test('the IdP going down mid-login gets a 502 page, not a hang', { skip: !!process.env.OIDC_ISSUER && 'needs the local IdP' }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${stack.base}/`);
  await page.waitForURL(idp.loginPage());
  // Each of the IdP's redirects becomes a link (Playwright does not intercept redirect
  // hops), so the IdP can die after it issued the code and before the filter redeems it.
  await page.route(`${stack.issuer}/**`, async (route) => {
    const resp = await route.fetch({ maxRedirects: 0 });
    const location = resp.headers().location;
    if (resp.status() < 300 || resp.status() >= 400 || !location) {
      await route.fulfill({ response: resp });
      return;
    }
    const next = new URL(location, route.request().url()).toString();
    const headers = Object.fromEntries(resp.headersArray()
      .filter(({ name }) => !['location', 'content-length', 'set-cookie'].includes(name.toLowerCase()))
      .map(({ name, value }) => [name, value]));
    await context.addCookies(resp.headersArray()
      .filter(({ name }) => name.toLowerCase() === 'set-cookie')
      .map(({ value }) => {
        const [pair] = value.split(';');
        const i = pair.indexOf('=');
        return { name: pair.slice(0, i), value: pair.slice(i + 1), url: stack.issuer };
      }));
    await route.fulfill({ status: 200, headers: { ...headers, 'content-type': 'text/html' }, body: `<a id="next" href="${next}">next</a>` });
  });
  const started = Date.now();
  await idp.submitLogin(page, 'alice');
  for (let hop = 0; hop < 5; hop += 1) {
    await page.waitForSelector('#next');
    const next = await page.getAttribute('#next', 'href');
    if (next.startsWith(`${stack.base}/oauth2/callback`)) {
      assert.ok(stack.stopIdp(), 'the local IdP stops');
      await page.click('#next');
      break;
    }
    await page.click('#next');
  }
  await page.waitForURL((u) => u.toString().startsWith(`${stack.base}/oauth2/callback`));
  const text = await page.innerText('body');
  assert.match(text, /502 Bad Gateway/);
  assert.match(text, /sign-in service cannot be reached/);
  assert.match(text, /trace id: \S+/);
  assert.ok(Date.now() - started < 10000, 'answered without waiting out a long timeout');
  await page.screenshot({ path: join(stack.dir, 'error-idp-down.png') });
  await context.close();
});
