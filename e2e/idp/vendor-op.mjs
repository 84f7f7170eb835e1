// A second, independent OpenID Provider for the integration tests: npm
// `oauth2-mock-server` (real keys, real signatures), driven at run time to behave like a
// given vendor. Authorization auto-approves (no login page); the user is "johndoe".
//
// IDP_PORT: port. Test hooks:
//   POST /__test/profile {...} → the behaviour from now on (replaces the previous one):
//     id_token: {claim: value | null}   merged into ID tokens (null deletes)
//     access_token: {...}               merged into access tokens
//     token_response: {...}             merged into token endpoint answers
//     userinfo: {...}, userinfo_status  the userinfo answer ({sub} kept unless overridden)
//     discovery: {...}                  merged into the discovery document
//     jwks_extra: [jwk, ...]            published beside the real keys (keys we never sign with)
//     rotate_key: true                  a new signing key, published from now on
//     unique_subjects: true             each ID token for a new user: sub soak-<n>, sid sid-<n>
//   POST /__test/mint {...claims, __typ?} → a JWT signed with the current key (logout tokens)
//   GET /__test/calls → {token, refresh, userinfo, jwks, last_auth, last_basic, last_assertion}
import { Events, OAuth2Server } from 'oauth2-mock-server';

const port = Number(process.env.IDP_PORT || 9100);
// IDP_TLS_KEY / IDP_TLS_CERT: serve HTTPS with this key and certificate.
const server = process.env.IDP_TLS_KEY ? new OAuth2Server(process.env.IDP_TLS_KEY, process.env.IDP_TLS_CERT) : new OAuth2Server();
await server.issuer.keys.generate('RS256', { kid: 'k1' });
let profile = {};
const calls = { token: 0, refresh: 0, userinfo: 0, jwks: 0, last_auth: null, last_basic: null, last_assertion: null };

const merge = (target, extra) => {
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === null) delete target[k];
    else target[k] = v;
  }
};

const send = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

const service = server.service;
// Custom routes get the parsed JSON body in req.body.
service.addRoute('POST', '/__test/profile', async (req, res) => {
  profile = req.body ?? {};
  if (profile.rotate_key) {
    const n = server.issuer.keys.toJSON().length + 1;
    await server.issuer.keys.generate('RS256', { kid: `k${n}` });
  }
  send(res, 200, { ok: true });
});
service.addRoute('GET', '/__test/calls', (req, res) => send(res, 200, calls));
service.addRoute('POST', '/__test/mint', async (req, res) => {
  const { __typ: typ, ...claims } = req.body ?? {};
  const jwt = await server.issuer.buildToken({
    scopesOrTransform: (header, payload) => {
      for (const k of Object.keys(payload)) delete payload[k];
      Object.assign(payload, claims);
      if (typ) header.typ = typ;
    },
  });
  res.writeHead(200, { 'content-type': 'application/jwt' });
  res.end(jwt);
});
let subjects = 0;
// Entra ID's multi-tenant discovery (`/common/v2.0`): the issuer is a template.
service.addRoute('GET', '/common/v2.0/.well-known/openid-configuration', async (req, res) => {
  const doc = await (await fetch(`${server.issuer.url}/.well-known/openid-configuration`)).json();
  send(res, 200, { ...doc, issuer: `${server.issuer.url}/{tenantid}/v2.0` });
});
// Signed userinfo (OIDC Core §5.3.2), used when profile.discovery points userinfo here.
service.addRoute('GET', '/__test/userinfo-jwt', async (req, res) => {
  calls.userinfo += 1;
  const jwt = await server.issuer.buildToken({
    scopesOrTransform: (header, payload) => Object.assign(payload, { sub: 'johndoe', aud: 'gateway' }, profile.userinfo ?? {}),
  });
  res.writeHead(200, { 'content-type': 'application/jwt' });
  res.end(jwt);
});
service.addRoute('GET', '/__test/jwks', (req, res) => {
  calls.jwks += 1;
  send(res, 200, { keys: [...(profile.jwks_extra ?? []), ...server.issuer.keys.toJSON()] });
});

service.on(Events.BeforeWellKnownOpenIdConfiguration, (doc) => {
  doc.body.jwks_uri = `${server.issuer.url}/__test/jwks`;
  merge(doc.body, profile.discovery);
});
service.on(Events.BeforeTokenSigning, (token) => {
  // The mock's access tokens carry `scope`; its ID tokens do not.
  const isIdToken = !('scope' in token.payload);
  merge(token.payload, isIdToken ? profile.id_token : profile.access_token);
  if (isIdToken && profile.unique_subjects) {
    subjects += 1;
    Object.assign(token.payload, { sub: `soak-${subjects}`, sid: `sid-${subjects}` });
  }
});
service.on(Events.BeforeResponse, (response, req) => {
  calls.token += 1;
  // How the client authenticated (the mock itself accepts anything; tests check it).
  const basic = (req.headers.authorization ?? '').match(/^Basic (.+)$/);
  calls.last_basic = basic ? Buffer.from(basic[1], 'base64').toString() : null;
  calls.last_assertion = req.body?.client_assertion ?? null;
  calls.last_auth = basic ? 'client_secret_basic' : req.body?.client_secret ? 'client_secret_post'
    : req.body?.client_assertion ? 'private_key_jwt' : 'none';
  if (req.body?.grant_type === 'refresh_token') calls.refresh += 1;
  merge(response.body, profile.token_response);
});
service.on(Events.BeforeUserinfo, (response) => {
  calls.userinfo += 1;
  merge(response.body, profile.userinfo);
  if (profile.userinfo_status) response.statusCode = profile.userinfo_status;
});

await server.start(port, '127.0.0.1');
// The issuer is what the filter is configured with: the loopback address, not "localhost".
server.issuer.url = `${process.env.IDP_TLS_KEY ? 'https' : 'http'}://127.0.0.1:${port}`;
console.log(`vendor OP (oauth2-mock-server) on ${server.issuer.url}`);
