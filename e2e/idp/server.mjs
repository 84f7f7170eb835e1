// The local identity provider for the demo and the tests: panva's oidc-provider
// (OpenID Certified) on 127.0.0.1. Its dev login form accepts any login; `alice` is in
// group `admins`, `bob` in none. Configured by environment:
//   IDP_PORT (9000), IDP_ISSUER (http://127.0.0.1:$IDP_PORT)
//   IDP_CLIENTS: JSON list of {client_id, client_secret, redirect_uri,
//                post_logout_redirect_uri, backchannel_logout_uri}
//   IDP_ACCESS_TTL (seconds, 3600): short values exercise refresh.
// Test hooks: GET /__test/stats → {refresh_grants, backchannel_sent, ...};
//             POST /__test/stall {ms} → token and userinfo answers held ms (0: off);
//             POST /__test/mint {...claims, __typ?} → a JWT signed with the IdP's key
//             (`__typ` goes in the header as `typ`).
// Accounts: alice (admins), bob, comma (a group named "a,b"), and two hostile ones:
// eve (CR/LF in her email), crowd (5000 groups).
import { generateKeyPairSync } from 'node:crypto';
import { importJWK, SignJWT } from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.env.IDP_PORT || 9000);
const issuer = process.env.IDP_ISSUER || `http://127.0.0.1:${port}`;
const accessTtl = Number(process.env.IDP_ACCESS_TTL || 3600);
const clientsIn = JSON.parse(process.env.IDP_CLIENTS || JSON.stringify([{
  client_id: 'demo',
  client_secret: 'demo-secret-change-me',
  redirect_uri: 'http://127.0.0.1:10000/oauth2/callback',
  post_logout_redirect_uri: 'http://127.0.0.1:10000/',
  backchannel_logout_uri: 'http://127.0.0.1:10000/oauth2/backchannel_logout',
}]));

const groups = { alice: ['admins'], bob: [], comma: ['admins', 'a,b'] };
// Hostile accounts for the hardening tests: what a broken or malicious IdP sends.
const hostile = {
  eve: { email: 'eve@example.com\r\nx-admin: 1' },
  crowd: { groups: Array.from({ length: 5000 }, (_, i) => `group-number-${String(i).padStart(5, '0')}`) },
};
const stats = { refresh_grants: 0, code_grants: 0, backchannel_sent: 0, backchannel_errors: 0 };
// Fault injection: token and userinfo answers held this long (POST /__test/stall {ms}).
let stallMs = 0;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

const clients = clientsIn.map((c) => ({
  client_id: c.client_id,
  client_secret: c.client_secret,
  redirect_uris: [c.redirect_uri].flat(),
  post_logout_redirect_uris: [c.post_logout_redirect_uri].flat().filter(Boolean),
  ...(c.backchannel_logout_uri ? { backchannel_logout_uri: c.backchannel_logout_uri, backchannel_logout_session_required: true } : {}),
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
}));

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: ['idp-cookie-key-for-tests-only'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  conformIdTokenClaims: false, // put the requested claims in the ID token too
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      email: `${id}@example.com`,
      email_verified: true,
      name: id,
      preferred_username: id,
      groups: groups[id] ?? [],
      ...(hostile[id] ?? {}),
    }),
  }),
  // No consent screen for the registered clients: grant what they ask.
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const existing = await ctx.oidc.provider.Grant.find(grantId);
      if (existing) return existing;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid offline_access email profile groups');
    grant.addOIDCClaims(['email', 'email_verified', 'name', 'preferred_username', 'groups']);
    await grant.save();
    return grant;
  },
  // Test IdP only: its back-channel logout calls go to Envoy on 127.0.0.1, which the
  // provider's SSRF guard (a dispatcher refusing special-use IPs) would block.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return fetch(url, rest);
  },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  pkce: { required: () => true },
  ttl: {
    AccessToken: accessTtl,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 86400,
    Grant: 86400,
    Session: 86400,
    Interaction: 600,
  },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
});
provider.proxy = false;

provider.on('grant.success', (ctx) => {
  const type = ctx.oidc.params?.grant_type;
  if (type === 'refresh_token') stats.refresh_grants += 1;
  if (type === 'authorization_code') stats.code_grants += 1;
});
provider.on('backchannel.success', () => { stats.backchannel_sent += 1; });
provider.on('backchannel.error', (ctx, err) => {
  stats.backchannel_errors += 1;
  console.error('backchannel error', err?.message, err?.cause?.code ?? '', err?.cause?.message ?? '');
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/stats') {
    ctx.body = stats;
    return;
  }
  if (ctx.path === '/__test/stall' && ctx.method === 'POST') {
    const chunks = [];
    for await (const c of ctx.req) chunks.push(c);
    stallMs = Number(JSON.parse(Buffer.concat(chunks).toString() || '{}').ms || 0);
    ctx.body = { stall_ms: stallMs };
    return;
  }
  if (stallMs && (ctx.path === '/token' || ctx.path === '/me')) {
    await new Promise((resolve) => setTimeout(resolve, stallMs));
  }
  if (ctx.path === '/__test/mint' && ctx.method === 'POST') {
    const chunks = [];
    for await (const c of ctx.req) chunks.push(c);
    const { __typ: typ, ...claims } = JSON.parse(Buffer.concat(chunks).toString() || '{}');
    const key = await importJWK(signingKey, 'RS256');
    const header = { alg: 'RS256', kid: signingKey.kid, ...(typ ? { typ } : {}) };
    ctx.body = await new SignJWT(claims).setProtectedHeader(header).sign(key);
    return;
  }
  await next();
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer} (clients: ${clients.map((c) => c.client_id).join(', ')})`);
});
