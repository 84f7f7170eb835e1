// Starts the gateway stack for a browser test: the IdP (oidc-provider), the echo app and
// Envoy with the filter, on free loopback ports; stop() kills them by pid.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, openSync, existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

// Ports this process was given: the kernel may hand a just-closed port out again, and
// two servers told the same port leave the second unbound (Envoy once lost its listener
// to the echo app that way, and the tests then talked to the app).
const given = new Set();

async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const { port } = s.address();
        s.close(() => resolve(port));
      });
      s.on('error', reject);
    });
    if (!given.has(port)) {
      given.add(port);
      return port;
    }
  }
}

async function waitFor(url, ms = 20000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not ready: ${url}`);
}

async function waitForPort(port, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const open = await new Promise((resolve) => {
      const c = connect(port, '127.0.0.1', () => { c.end(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

/** The directory holding libenvoy_oidc.so: $OIDC_MODULE_DIR, else what cargo built. */
function moduleDir() {
  const candidates = [process.env.OIDC_MODULE_DIR, join(root, 'target/debug/deps'), join(root, 'target/debug'), join(root, 'target/release')];
  const dir = candidates.find((d) => d && existsSync(join(d, 'libenvoy_oidc.so')));
  if (!dir) throw new Error('libenvoy_oidc.so not built: run cargo build -p envoy-oidc');
  return dir;
}

/** Access tokens live this long at the local IdP (Keycloak: the realm's client says 8 s). */
export const ACCESS_TTL_SECS = 8;
/** The filter refreshes this long before expiry: the refresh test waits past the gap. */
export const REFRESH_LEEWAY_SECS = 3;

/** Sums the values of the Prometheus lines of `name` whose labels include `labels`. */
function metricValue(text, name, labels = '') {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-z_]+)(\{[^}]*\})? ([0-9.e+]+)$/);
    if (m && m[1] === `envoy_dynamicmodulescustom_${name}` && (m[2] ?? '').includes(labels)) sum += Number(m[3]);
  }
  return sum;
}

/**
 * With OIDC_ISSUER set (Keycloak in CI), that IdP is used with OIDC_CLIENT_ID /
 * OIDC_CLIENT_SECRET and Envoy listens on E2E_LISTEN_PORT (the registered redirect URI);
 * otherwise the local oidc-provider is started on free ports. E2E_STORE=redis keeps
 * sessions in Redis: E2E_REDIS_URL, or a redis-server started here.
 */
export async function startStack() {
  const dir = mkdtempSync(join(tmpdir(), 'oidc-e2e-'));
  const external = process.env.OIDC_ISSUER;
  const listen = external ? Number(process.env.E2E_LISTEN_PORT || 10000) : await freePort();
  const [app, idpPort] = [await freePort(), await freePort()];
  const base = `http://127.0.0.1:${listen}`;
  const issuer = external || `http://127.0.0.1:${idpPort}`;
  const clientId = external ? process.env.OIDC_CLIENT_ID : 'e2e';
  const clientSecret = external ? process.env.OIDC_CLIENT_SECRET : 'e2e-secret';
  const children = [];
  const run = (cmd, args, env, name) => {
    const out = openSync(join(dir, `${name}.log`), 'w');
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
    children.push(child);
    return child;
  };
  let idpChild;
  if (!external) {
    idpChild = run(process.execPath, [join(root, 'e2e/idp/server.mjs')], {
      IDP_PORT: String(idpPort),
      IDP_ACCESS_TTL: String(ACCESS_TTL_SECS),
      IDP_CLIENTS: JSON.stringify([{
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uri: `${base}/oauth2/callback`,
        post_logout_redirect_uri: `${base}/oauth2/signed_out`,
        backchannel_logout_uri: `${base}/oauth2/backchannel_logout`,
      }]),
    }, 'idp');
  }
  run('python3', [join(root, 'e2e/echo/server.py'), String(app)], {}, 'echo');
  let store = { memory: {} };
  if (process.env.E2E_STORE === 'redis') {
    let url = process.env.E2E_REDIS_URL;
    if (!url) {
      const port = await freePort();
      run('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {}, 'redis');
      url = `redis://127.0.0.1:${port}`;
      await waitForPort(port);
    }
    store = { redis: { url: { inline: url }, prefix: `e2e-${process.pid}:` } };
  }
  await waitFor(`${issuer}/.well-known/openid-configuration`);
  const filterConfig = JSON.stringify({
    issuer,
    client_id: clientId,
    client_secret: { inline: clientSecret },
    redirect_uri: `${base}/oauth2/callback`,
    // Keycloak refuses scopes its client does not have (invalid_scope): it sends groups by mapper.
    scopes: (process.env.E2E_SCOPES || 'openid email profile groups offline_access').split(' '),
    session: { keys: [{ inline: 'ZTJlLWJyb3dzZXItdGVzdC1rZXktMzItYnl0ZXMhISE' }], store },
    refresh: { leeway_secs: REFRESH_LEEWAY_SECS },
    // oidc-provider takes POST logouts only with SameSite=None (HTTPS) cookies; on this
    // plain-HTTP loopback stack it gets id_token_hint by GET. Keycloak takes the POST.
    logout: { post_logout_redirect_uri: `${base}/oauth2/signed_out`, end_session_method: external ? 'post' : 'get' },
  });
  const yaml = readFileSync(join(root, 'configs/envoy-demo.yaml'), 'utf8')
    .replaceAll('${ADMIN_PORT}', '0')
    .replaceAll('${LISTEN_PORT}', String(listen))
    .replaceAll('${APP_PORT}', String(app))
    .replaceAll('${FILTER_CONFIG}', filterConfig);
  writeFileSync(join(dir, 'envoy.yaml'), yaml);
  const envoyBin = process.env.ENVOY_BIN;
  if (!envoyBin) throw new Error('ENVOY_BIN is not set (scripts/test.sh sets it)');
  const adminPath = join(dir, 'admin-address');
  run(envoyBin, ['-c', join(dir, 'envoy.yaml'), '--disable-hot-restart', '--concurrency', '2', '-l', 'warning',
    '--component-log-level', 'dynamic_modules:info', '--admin-address-path', adminPath],
  { ENVOY_DYNAMIC_MODULES_SEARCH_PATH: moduleDir() }, 'envoy');
  await waitFor(`${base}/public/ready`);
  // The filter discovers the IdP in the background: wait until logins can start.
  const end = Date.now() + 10000;
  while (Date.now() < end) {
    const r = await fetch(`${base}/`, { redirect: 'manual', headers: { accept: 'text/html' } });
    if (r.status === 302) break;
    await new Promise((r2) => setTimeout(r2, 100));
  }
  const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  return {
    base,
    issuer,
    dir,
    discovery,
    store: Object.keys(store)[0],
    /** Stops the local IdP (its pid); `false` when the IdP is not ours to stop. */
    stopIdp() {
      if (!idpChild) return false;
      idpChild.kill('SIGKILL');
      return true;
    },
    /** The filter's counter `name` (labels e.g. 'result="refreshed"'), from Envoy's admin. */
    async metric(name, labels) {
      const admin = readFileSync(adminPath, 'utf8').trim();
      return metricValue(await (await fetch(`http://${admin}/stats/prometheus`)).text(), name, labels);
    },
    stop() {
      for (const c of children) c.kill('SIGKILL');
    },
  };
}
