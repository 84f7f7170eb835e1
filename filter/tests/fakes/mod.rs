//! Fakes for unit tests of the filter without Envoy or network: an OIDC provider that
//! answers the filter's transport in-process, and a driver that runs one request through
//! `OidcFilter` over a `FakeStream`, async completions included.
#![allow(dead_code)] // each test uses a subset

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_filter::COMPLETION_EVENT;
use base64::Engine;
use envoy_module::testing::{FakeMetrics, FakeStream, RecordedReply};
use envoy_module::{HeaderKind, HeadersStatus, HttpFilter, HttpStream};
use envoy_oidc::clock::{Clock, ManualClock};
use envoy_oidc::config::{parse_all, RouteSettings};
use envoy_oidc::error::IdpError;
use envoy_oidc::filter::OidcFilter;
use envoy_oidc::gateway::Gateway;
use envoy_oidc::oidc::transport::{Exchange, IdpTransport};
use envoy_oidc::realms::Realms;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openidconnect::{HttpRequest, HttpResponse};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const ISSUER: &str = "https://idp.test";
pub const APP: &str = "https://app.test";
pub const CLIENT_ID: &str = "gateway";
pub const CLIENT_SECRET: &str = "s3cret";
const SESSION_KEY: &str = "dGVzdC1zZXNzaW9uLWtleS0zMi1ieXRlcy1sb25nISE";

/// The fake IdP's ES256 signing key (a test fixture, used nowhere else).
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgDxASYLLtgSIWgefy
9ODe7m9XCls95Bd9sfKBmX787PuhRANCAAQht0SH18gzIVZDHhgExH/fkTkoHVtN
8jnl0Bebs3/2liwTwtSWLOcb/vpH10pAFHpP67aXetso3JTyUgxJhyBa
-----END PRIVATE KEY-----
";
const KEY_X: &str = "IbdEh9fIMyFWQx4YBMR_35E5KB1bTfI55dAXm7N_9pY";
const KEY_Y: &str = "LBPC1JYs5xv--kfXSkAUek_rtpd62yjclPJSDEmHIFo";
const KID: &str = "k1";

#[derive(Clone)]
struct Grant {
    sub: String,
    nonce: String,
    challenge: String,
    sid: String,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, Grant>,
    refresh: HashMap<String, Grant>,
    access: HashMap<String, String>,
    token_calls: usize,
    refresh_calls: usize,
    introspect_calls: usize,
    /// A scripted answer of the token endpoint instead of the real one.
    token_answer: Option<(u16, String)>,
    last_sid: HashMap<String, String>,
    /// Makes the ID token from its claims and the access token (tests of each check).
    id_token: Option<IdTokenMaker>,
    /// Refresh responses carry an ID token too.
    id_token_on_refresh: bool,
    /// Groups every user has instead of the fixed ones.
    groups: Option<Vec<String>>,
    next: u64,
}

/// Builds the raw ID token from the claims the IdP would sign and the access token.
pub type IdTokenMaker = Arc<dyn Fn(&FakeIdp, Value, &str) -> String + Send + Sync>;

/// The fake provider. Token lifetimes are in real time (openidconnect checks ID-token
/// expiry against the system clock); the filter's own time is the manual clock.
pub struct FakeIdp {
    state: Mutex<State>,
    key: EncodingKey,
    /// Access-token lifetime handed out.
    pub access_ttl: u64,
    /// Token endpoint held until this is notified.
    pub stall: Mutex<Option<Arc<tokio::sync::Notify>>>,
}

fn groups(sub: &str) -> Vec<&'static str> {
    if sub == "alice" {
        vec!["admins"]
    } else {
        Vec::new()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn reply(status: u16, body: Value) -> HttpResponse {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .expect("response")
}

impl FakeIdp {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::default(),
            key: EncodingKey::from_ec_pem(KEY_PEM.as_bytes()).expect("test key"),
            access_ttl: 3600,
            stall: Mutex::new(None),
        })
    }

    /// Signs `claims` with the IdP's key (ID tokens, access tokens, logout tokens).
    pub fn sign(&self, claims: &Value, typ: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.into());
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.key).expect("sign")
    }

    fn now() -> u64 {
        session_store::unix_now()
    }

    /// What the user's browser does at the authorization endpoint: logs in as `user`
    /// and returns the callback path (code, state, iss) the IdP redirects to.
    pub fn authorize(&self, location: &str, user: &str) -> String {
        let url = url::Url::parse(location).expect("authorization URL");
        assert!(location.starts_with(&format!("{ISSUER}/auth?")), "{location}");
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], CLIENT_ID);
        assert_eq!(q["code_challenge_method"], "S256");
        let mut st = self.state.lock().expect("state");
        st.next += 1;
        let code = format!("code-{}", st.next);
        let grant = Grant {
            sub: user.into(),
            nonce: q["nonce"].clone(),
            challenge: q["code_challenge"].clone(),
            sid: format!("sid-{user}-{}", st.next),
        };
        st.codes.insert(code.clone(), grant);
        let redirect = url::Url::parse(&q["redirect_uri"]).expect("redirect_uri");
        format!(
            "{}?code={code}&state={}&iss={}",
            redirect.path(),
            q["state"],
            urlencode(ISSUER)
        )
    }

    /// The sid of the last login of `user`.
    pub fn sid_of(&self, user: &str) -> String {
        self.state.lock().expect("state").last_sid[user].clone()
    }

    /// Calls of the token endpoint for codes, and for refresh tokens.
    pub fn calls(&self) -> (usize, usize) {
        let st = self.state.lock().expect("state");
        (st.token_calls, st.refresh_calls)
    }

    /// Calls of the introspection endpoint.
    pub fn introspections(&self) -> usize {
        self.state.lock().expect("state").introspect_calls
    }

    /// Every refresh token is forgotten: the next refresh gets `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        self.state.lock().expect("state").refresh.clear();
    }

    /// The next ID tokens come from `make` instead of the honest signer.
    pub fn id_tokens_from(&self, make: IdTokenMaker) {
        self.state.lock().expect("state").id_token = Some(make);
    }

    /// Refresh responses carry a new ID token (made like the login's).
    pub fn id_tokens_on_refresh(&self) {
        self.state.lock().expect("state").id_token_on_refresh = true;
    }

    /// Every user is in these groups (ID token and userinfo).
    pub fn groups_are(&self, groups: Vec<String>) {
        self.state.lock().expect("state").groups = Some(groups);
    }

    /// The token endpoint answers this instead (status, body).
    pub fn token_endpoint_answers(&self, status: u16, body: &str) {
        self.state.lock().expect("state").token_answer = Some((status, body.to_owned()));
    }

    fn tokens(&self, st: &mut State, g: Grant, with_id_token: bool) -> HttpResponse {
        st.next += 1;
        let now = Self::now();
        let access = format!("at-{}", st.next);
        let refresh = format!("rt-{}", st.next);
        st.access.insert(access.clone(), g.sub.clone());
        st.refresh.insert(refresh.clone(), g.clone());
        let mut body = json!({
            "access_token": access, "token_type": "Bearer", "expires_in": self.access_ttl,
            "refresh_token": refresh,
        });
        if with_id_token {
            let claims = json!({
                "iss": ISSUER, "sub": g.sub, "aud": CLIENT_ID, "exp": now + 3600, "iat": now,
                "nonce": g.nonce, "sid": g.sid, "email": format!("{}@example.com", g.sub),
                "email_verified": true, "groups": st.groups.clone().map_or_else(|| json!(groups(&g.sub)), |g| json!(g)),
                "preferred_username": g.sub,
            });
            body["id_token"] = json!(match st.id_token.clone() {
                Some(make) => make(self, claims, &access),
                None => self.sign(&claims, None),
            });
        }
        reply(200, body)
    }

    fn token(&self, req: &HttpRequest) -> HttpResponse {
        let form: HashMap<String, String> = form_urlencoded::parse(req.body()).into_owned().collect();
        let basic = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        );
        if basic != expected {
            return reply(401, json!({"error": "invalid_client"}));
        }
        let mut st = self.state.lock().expect("state");
        if let Some((status, body)) = st.token_answer.clone() {
            return http::Response::builder()
                .status(status)
                .body(body.into_bytes())
                .expect("response");
        }
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                st.token_calls += 1;
                let Some(g) = form.get("code").and_then(|c| st.codes.remove(c)) else {
                    return reply(400, json!({"error": "invalid_grant"}));
                };
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                if b64(&Sha256::digest(verifier.as_bytes())) != g.challenge {
                    return reply(400, json!({"error": "invalid_grant", "error_description": "PKCE"}));
                }
                st.last_sid.insert(g.sub.clone(), g.sid.clone());
                self.tokens(&mut st, g, true)
            }
            Some("refresh_token") => {
                st.refresh_calls += 1;
                // Rotating refresh tokens: each works once.
                let Some(g) = form.get("refresh_token").and_then(|r| st.refresh.remove(r)) else {
                    return reply(400, json!({"error": "invalid_grant"}));
                };
                let with_id_token = st.id_token_on_refresh;
                self.tokens(&mut st, g, with_id_token)
            }
            _ => reply(400, json!({"error": "unsupported_grant_type"})),
        }
    }

    fn answer(&self, req: &HttpRequest) -> HttpResponse {
        let uri = req.uri().to_string();
        let path = uri.strip_prefix(ISSUER).unwrap_or(&uri);
        match path {
            "/.well-known/openid-configuration" => reply(
                200,
                json!({
                    "issuer": ISSUER,
                    "authorization_endpoint": format!("{ISSUER}/auth"),
                    "token_endpoint": format!("{ISSUER}/token"),
                    "userinfo_endpoint": format!("{ISSUER}/userinfo"),
                    "jwks_uri": format!("{ISSUER}/jwks"),
                    "introspection_endpoint": format!("{ISSUER}/introspect"),
                    "end_session_endpoint": format!("{ISSUER}/logout"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["ES256"],
                    "authorization_response_iss_parameter_supported": true,
                }),
            ),
            "/jwks" => reply(
                200,
                json!({"keys": [{"kty": "EC", "crv": "P-256", "x": KEY_X, "y": KEY_Y, "kid": KID, "alg": "ES256", "use": "sig"}]}),
            ),
            "/token" => self.token(req),
            "/introspect" => {
                let form: HashMap<String, String> = form_urlencoded::parse(req.body()).into_owned().collect();
                let mut st = self.state.lock().expect("state");
                st.introspect_calls += 1;
                match form.get("token").and_then(|t| st.access.get(t)) {
                    Some(sub) => reply(
                        200,
                        json!({"active": true, "sub": sub, "client_id": CLIENT_ID, "iss": ISSUER,
                               "exp": Self::now() + 300, "token_type": "Bearer", "groups": groups(sub)}),
                    ),
                    None => reply(200, json!({"active": false})),
                }
            }
            "/userinfo" => {
                let token = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default();
                let st = self.state.lock().expect("state");
                match st.access.get(token) {
                    Some(sub) => reply(
                        200,
                        json!({"sub": sub, "groups": st.groups.clone().map_or_else(|| json!(groups(sub)), |g| json!(g))}),
                    ),
                    None => reply(401, json!({"error": "invalid_token"})),
                }
            }
            _ => reply(404, json!({})),
        }
    }
}

impl IdpTransport for FakeIdp {
    fn send(&self, request: HttpRequest) -> Exchange<'_> {
        Box::pin(async move {
            let stall = self.stall.lock().expect("stall").clone();
            if let (Some(n), true) = (stall, request.uri().path() == "/token") {
                n.notified().await;
            }
            Ok::<_, IdpError>(self.answer(&request))
        })
    }
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A gateway on the fake IdP with a manual clock, its discovery done.
pub struct Harness {
    pub gw: Arc<Gateway>,
    pub realms: Arc<Realms>,
    pub idp: Arc<FakeIdp>,
    pub clock: Arc<ManualClock>,
    pub metrics: FakeMetrics,
}

/// The filter config of the tests, with `extra` merged over it.
pub fn config(extra: Value) -> Value {
    let mut cfg = json!({
        "issuer": ISSUER,
        "client_id": CLIENT_ID,
        "client_secret": {"inline": CLIENT_SECRET},
        "redirect_uri": format!("{APP}/oauth2/callback"),
        "scopes": ["openid", "email", "profile", "offline_access"],
        "session": {"keys": [{"inline": SESSION_KEY}]},
    });
    merge(&mut cfg, extra);
    cfg
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

impl Harness {
    pub fn new(extra: Value) -> Self {
        Self::with_idp(FakeIdp::new(), extra)
    }

    pub fn with_idp(idp: Arc<FakeIdp>, extra: Value) -> Self {
        let configs = parse_all(config(extra).to_string().as_bytes()).expect("config");
        let clock = Arc::new(ManualClock::at(session_store::unix_now()));
        let mut metrics = FakeMetrics::default();
        let transport = idp.clone();
        let realms = Realms::new(
            configs,
            &mut metrics,
            move |_| Ok(transport.clone() as Arc<dyn IdpTransport>),
            clock.clone(),
        )
        .expect("gateways");
        let start = Instant::now();
        while realms.all().iter().any(|r| r.gw.provider.current().is_none()) {
            assert!(start.elapsed() < Duration::from_secs(5), "discovery of the fake IdP");
            std::thread::sleep(Duration::from_millis(2));
        }
        Self {
            gw: realms.default_realm().gw.clone(),
            realms,
            idp,
            clock,
            metrics,
        }
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// One request through a fresh filter: headers hook, then any async completion.
    pub fn request(&self, headers: &[(&str, &str)], route: Option<RouteSettings>) -> Exchanged {
        let (f, s, status) = self.begin(headers, route);
        self.finish(f, s, status)
    }

    /// The headers hook only: async work may still be running.
    pub fn begin(
        &self,
        headers: &[(&str, &str)],
        route: Option<RouteSettings>,
    ) -> (OidcFilter, FakeStream, HeadersStatus) {
        let mut all: Vec<(&str, &str)> = Vec::new();
        if !headers.iter().any(|(k, _)| *k == ":authority") {
            all.push((":authority", "app.test"));
        }
        if !headers.iter().any(|(k, _)| *k == ":method") {
            all.push((":method", "GET"));
        }
        all.extend_from_slice(headers);
        if !headers.iter().any(|(k, _)| *k == "x-request-id") {
            all.push(("x-request-id", "trace-1"));
        }
        let mut s = FakeStream::with_request_headers(&all);
        if let Some(r) = route {
            s.route = Some(Box::new(Arc::new(r)));
        }
        let mut f = OidcFilter::new(self.realms.clone());
        let status = f.on_request_headers(&mut s, true);
        (f, s, status)
    }

    /// A request whose header values are raw bytes (not UTF-8).
    pub fn request_bytes(&self, headers: &[(&str, &[u8])]) -> Exchanged {
        let mut s = FakeStream::with_request_headers(&[(":method", "GET"), ("x-request-id", "trace-1")]);
        s.request_headers
            .extend(headers.iter().map(|(k, v)| ((*k).to_owned(), v.to_vec())));
        let mut f = OidcFilter::new(self.realms.clone());
        let status = f.on_request_headers(&mut s, true);
        self.finish(f, s, status)
    }

    /// A POST with a body (back-channel logout).
    pub fn post(&self, path: &str, body: &str) -> Exchanged {
        self.post_as(path, body, "application/x-www-form-urlencoded")
    }

    /// A POST with a body of this content type.
    pub fn post_as(&self, path: &str, body: &str, content_type: &str) -> Exchanged {
        let mut s = FakeStream::with_request_headers(&[
            (":method", "POST"),
            (":path", path),
            ("content-type", content_type),
            ("x-request-id", "trace-bc"),
        ]);
        s.body = body.as_bytes().to_vec();
        let mut f = OidcFilter::new(self.realms.clone());
        let status = f.on_request_headers(&mut s, false);
        f.on_request_body(&mut s, true);
        self.finish(f, s, status)
    }

    /// Delivers the async completion, as Envoy would, and returns what happened.
    pub fn finish(&self, mut f: OidcFilter, mut s: FakeStream, status: HeadersStatus) -> Exchanged {
        let start = Instant::now();
        let mut seen = 0;
        // Async work ends with a scheduler commit: deliver it as Envoy would.
        while s.reply.is_none() && s.continued_decoding == 0 && status == HeadersStatus::StopIteration {
            let commits = s.schedulers.committed().len();
            if commits > seen {
                seen = commits;
                f.on_scheduled(&mut s, COMPLETION_EVENT);
                continue;
            }
            if start.elapsed() > Duration::from_secs(10) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Exchanged {
            passed: status == HeadersStatus::Continue || s.continued_decoding > 0,
            stream: s,
        }
    }

    /// Waits for background work (the idle-expiry write) to end, as it would while time
    /// passes between two requests.
    pub fn settle(&self) {
        let start = Instant::now();
        while self.gw.core.in_flight() > 0 {
            assert!(start.elapsed() < Duration::from_secs(5), "background work did not end");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A counter's total on a stream (this harness's metric ids).
    pub fn counter(&self, s: &FakeStream, name: &str, labels: &[&str]) -> u64 {
        s.counter(&self.metrics, name, labels)
    }

    /// Logs `user` in through the fake IdP; returns the session cookie value.
    pub fn login(&self, user: &str) -> String {
        let start = self.request(&[(":path", "/reports?q=1"), ("accept", "text/html")], None);
        let reply = start.reply();
        assert_eq!(reply.status, 302, "login redirect");
        let location = start.header("location").expect("location");
        let flow = start.set_cookie_pair("__Host-oidc_flow_").expect("flow cookie");
        let callback = self.idp.authorize(&location, user);
        let done = self.request(
            &[(":path", &callback), ("cookie", &flow), ("accept", "text/html")],
            None,
        );
        let reply = done.reply();
        assert_eq!(reply.status, 302, "callback: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(done.header("location").as_deref(), Some("/reports?q=1"));
        done.set_cookie_pair("__Host-oidc_session=")
            .and_then(|c| c.split_once('=').map(|(_, v)| v.to_owned()))
            .expect("session cookie")
    }
}

/// A request after the filter is done with it.
pub struct Exchanged {
    /// The request went upstream.
    pub passed: bool,
    pub stream: FakeStream,
}

impl Exchanged {
    pub fn reply(&self) -> RecordedReply {
        self.stream
            .reply
            .clone()
            .unwrap_or_else(|| panic!("a local reply (request passed: {})", self.passed))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.stream
            .reply
            .as_ref()?
            .header_values(name)
            .first()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// `name=value` of the first Set-Cookie starting with `prefix`.
    pub fn set_cookie_pair(&self, prefix: &str) -> Option<String> {
        self.stream
            .reply
            .as_ref()?
            .header_values("set-cookie")
            .iter()
            .find_map(|v| {
                let v = String::from_utf8_lossy(v);
                v.starts_with(prefix)
                    .then(|| v.split(';').next().unwrap_or_default().to_owned())
            })
    }

    /// What the upstream receives: a request header.
    pub fn upstream(&self, name: &str) -> Option<String> {
        self.stream
            .header(HeaderKind::Request, name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn body(&self) -> String {
        String::from_utf8_lossy(&self.reply().body).into_owned()
    }
}
