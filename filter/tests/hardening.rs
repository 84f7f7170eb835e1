//! What a hostile client or IdP tries, one test per bypass class, through `OidcFilter`
//! over a fake stream with the fake IdP (the real-Envoy versions are in `attacks.rs`).

mod fakes;

use std::sync::Arc;

use envoy_oidc::config::RouteSettings;
use fakes::{Exchanged, FakeIdp, Harness, CLIENT_ID, ISSUER};
use serde_json::{json, Value};

fn now() -> u64 {
    session_store::unix_now()
}

fn status(r: &Exchanged) -> u16 {
    if r.passed {
        200
    } else {
        r.reply().status
    }
}

fn session_cookie(value: &str) -> String {
    format!("theme=dark; __Host-oidc_session={value}")
}

fn merged(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    for (k, v) in extra.as_object().expect("object") {
        out[k] = v.clone();
    }
    out
}

fn with_bearer(h: &Harness, token: &str) -> Exchanged {
    let auth = format!("Bearer {token}");
    h.request(
        &[
            (":path", "/api/x"),
            ("accept", "application/json"),
            ("authorization", &auth),
        ],
        None,
    )
}

#[test]
fn only_access_tokens_are_bearer_credentials() {
    let h = Harness::new(json!({"bearer": {"enabled": true}}));
    let t = now();
    let base = json!({"iss": ISSUER, "aud": CLIENT_ID, "sub": "svc", "iat": t, "exp": t + 300});
    let sign = |claims: &Value, typ: Option<&str>| h.idp.sign(claims, typ);
    for (what, token) in [
        ("untyped", sign(&base, None)),
        ("typ JWT", sign(&base, Some("JWT"))),
        ("typ at+jwt", sign(&base, Some("at+jwt"))),
        ("typ application/at+jwt", sign(&base, Some("application/at+jwt"))),
        (
            "several audiences, azp us",
            sign(
                &merged(&base, json!({"aud": [CLIENT_ID, "api"], "azp": CLIENT_ID})),
                None,
            ),
        ),
    ] {
        assert_eq!(status(&with_bearer(&h, &token)), 200, "{what}");
    }
    let logout_claims = merged(
        &base,
        json!({"jti": "j", "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}),
    );
    for (what, token) in [
        ("an ID token (nonce)", sign(&merged(&base, json!({"nonce": "n"})), None)),
        (
            "an ID token (at_hash)",
            sign(&merged(&base, json!({"at_hash": "x"})), None),
        ),
        ("a logout token", sign(&logout_claims, Some("logout+jwt"))),
        ("a logout token, untyped", sign(&logout_claims, None)),
        ("typ logout+jwt", sign(&base, Some("logout+jwt"))),
        (
            "Keycloak's ID typ claim",
            sign(&merged(&base, json!({"typ": "ID"})), None),
        ),
        (
            "several audiences, no azp",
            sign(&merged(&base, json!({"aud": [CLIENT_ID, "api"]})), None),
        ),
        (
            "several audiences, azp another client",
            sign(&merged(&base, json!({"aud": [CLIENT_ID, "api"], "azp": "api"})), None),
        ),
        ("not yet valid", sign(&merged(&base, json!({"nbf": t + 600})), None)),
        (
            "issued in the future",
            sign(&merged(&base, json!({"iat": t + 600})), None),
        ),
        (
            "control characters in sub",
            sign(&merged(&base, json!({"sub": "a\nb"})), None),
        ),
        ("empty sub", sign(&merged(&base, json!({"sub": ""})), None)),
        (
            "control characters in a claim",
            sign(&merged(&base, json!({"email": "a@b\r\nx-admin: 1"})), None),
        ),
    ] {
        let r = with_bearer(&h, &token);
        assert_eq!(status(&r), 401, "{what}");
        assert!(r.body().contains("trace-1"), "{what}");
    }
}

#[test]
fn bearer_policy_can_require_at_jwt_and_name_the_clients() {
    let h = Harness::new(json!({"bearer": {"enabled": true, "require_at_jwt": true, "authorized_parties": ["svc-a"]}}));
    let t = now();
    let base = json!({"iss": ISSUER, "aud": CLIENT_ID, "sub": "svc", "iat": t, "exp": t + 300});
    let ok = merged(&base, json!({"client_id": "svc-a"}));
    assert_eq!(status(&with_bearer(&h, &h.idp.sign(&ok, Some("at+jwt")))), 200);
    assert_eq!(status(&with_bearer(&h, &h.idp.sign(&ok, None))), 401, "untyped");
    let no_iat = merged(&ok, json!({"iat": null}));
    assert_eq!(
        status(&with_bearer(&h, &h.idp.sign(&no_iat, Some("at+jwt")))),
        401,
        "RFC 9068 iat"
    );
    let other = merged(&base, json!({"azp": "svc-b"}));
    assert_eq!(
        status(&with_bearer(&h, &h.idp.sign(&other, Some("at+jwt")))),
        401,
        "another client"
    );
    assert_eq!(
        status(&with_bearer(&h, &h.idp.sign(&base, Some("at+jwt")))),
        401,
        "no client named"
    );
}

const SPOOFS: [(&str, &str); 10] = [
    ("x_auth_request_groups", "admins"),
    ("X_Auth_Request_User", "root"),
    ("x-auth-request-anything", "1"),
    ("X-Forwarded-User", "root"),
    ("x-forwarded-email", "root@example.com"),
    ("X-Forwarded-Groups", "admins"),
    ("x-forwarded-preferred-username", "root"),
    ("X-Remote-User", "root"),
    ("Remote-User", "root"),
    ("remote_user", "root"),
];

/// The request headers that reached the upstream, by name as sent.
fn upstream_names(r: &Exchanged) -> Vec<String> {
    r.stream.request_headers.iter().map(|(k, _)| k.clone()).collect()
}

#[test]
fn identity_headers_in_every_spelling_and_family_never_reach_the_app() {
    let h = Harness::new(json!({}));
    let cookie = session_cookie(&h.login("bob"));
    let mut headers: Vec<(&str, &str)> = vec![(":path", "/x"), ("accept", "text/html"), ("cookie", &cookie)];
    headers.extend(SPOOFS);
    headers.push(("authorization", "Basic cm9vdDpyb290"));
    let r = h.request(&headers, None);
    assert!(r.passed);
    let names = upstream_names(&r);
    for (spoof, _) in SPOOFS {
        assert!(!names.iter().any(|n| n == spoof), "{spoof} reached the app: {names:?}");
    }
    assert_eq!(r.upstream("x-auth-request-user").as_deref(), Some("bob"));
    assert_eq!(r.upstream("x-auth-request-groups"), None, "bob has no groups");
    assert_eq!(
        r.upstream("authorization"),
        None,
        "an unchecked credential is stripped by default"
    );

    // Public routes lose them too; the client's authorization stays there (not ours).
    headers[2] = ("cookie", "a=1");
    let public = RouteSettings {
        disabled: true,
        ..RouteSettings::default()
    };
    let r = h.request(&headers, Some(public));
    assert!(r.passed);
    let names = upstream_names(&r);
    for (spoof, _) in SPOOFS {
        assert!(
            !names.iter().any(|n| n == spoof),
            "{spoof} reached the app on a public route"
        );
    }
    assert!(r.upstream("authorization").is_some());

    let keep = Harness::new(json!({"headers": {"client_authorization": "keep"}}));
    let cookie = session_cookie(&keep.login("bob"));
    let r = keep.request(
        &[
            (":path", "/x"),
            ("cookie", &cookie),
            ("authorization", "Basic cm9vdDpyb290"),
        ],
        None,
    );
    assert_eq!(
        r.upstream("authorization").as_deref(),
        Some("Basic cm9vdDpyb290"),
        "kept when asked"
    );
}

#[test]
fn encoded_separators_are_refused_unless_allowed() {
    let h = Harness::new(json!({"pass_through": [{"path_prefix": "/public/"}]}));
    for path in [
        "/public%2f..%2fadmin",
        "/public/%2e%2e/admin",
        "/public%5c..%5cadmin",
        "/%2Fadmin",
        "/public/..%2Fadmin",
    ] {
        let r = h.request(&[(":path", path), ("accept", "text/html")], None);
        assert_eq!(status(&r), 400, "{path}");
        assert!(r.body().contains("trace-1"));
    }
    let r = h.request(&[(":path", "/public/page?next=%2Fadmin")], None);
    assert!(r.passed, "an encoded slash in the query is fine");
    // A route without rules of its own too: the app behind it may decode `/admin`.
    let plain = Harness::new(json!({}));
    let r = plain.request(&[(":path", "/x%2F..%2Fadmin"), ("accept", "text/html")], None);
    assert_eq!(status(&r), 400);
    // Allowed by config (apps with encoded slashes in paths): the login starts as usual.
    let allow = Harness::new(json!({"encoded_separators": "allow"}));
    let r = allow.request(&[(":path", "/a%2Fb"), ("accept", "text/html")], None);
    assert_eq!(status(&r), 302);
}

/// A browser's cookie jar: creation order, `Max-Age=0` deletes.
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn line(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn apply(&mut self, r: &Exchanged) {
        for sc in r.reply().header_values("set-cookie") {
            let sc = String::from_utf8_lossy(sc).into_owned();
            let (pair, attrs) = sc.split_once(';').unwrap_or((&sc, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            let gone = attrs.contains("Max-Age=0");
            match self.0.iter().position(|(n, _)| n == name) {
                Some(i) if gone => {
                    self.0.remove(i);
                }
                Some(i) => self.0[i].1 = value.to_owned(),
                None if !gone => self.0.push((name.to_owned(), value.to_owned())),
                None => {}
            }
        }
    }
}

#[test]
fn a_thousand_unfinished_logins_never_grow_the_cookie_header() {
    let h = Harness::new(json!({}));
    let mut jar = Jar::default();
    let mut longest = 0;
    let mut last = None;
    for i in 0..1000 {
        let line = jar.line();
        longest = longest.max(line.len());
        let target = format!("/deep/{i}?pad={}", "x".repeat(1900));
        let r = h.request(&[(":path", &target), ("accept", "text/html"), ("cookie", &line)], None);
        assert_eq!(status(&r), 302);
        jar.apply(&r);
        assert!(jar.0.len() <= 3, "at most 3 flows: {}", jar.0.len());
        last = Some(r);
    }
    assert!(longest < 12_000, "cookie header grew to {longest} bytes");
    // The newest login still completes with what the browser holds.
    let start = last.expect("a start");
    let callback = h.idp.authorize(&start.header("location").expect("location"), "alice");
    let r = h.request(&[(":path", &callback), ("cookie", &jar.line())], None);
    assert_eq!(status(&r), 302);
    assert!(r.header("location").expect("home").starts_with("/deep/999?pad="));
}

fn logout_token(h: &Harness, extra: Value) -> String {
    let claims = merged(
        &json!({"iss": ISSUER, "aud": CLIENT_ID, "iat": now(), "jti": format!("j-{}", rand_id()),
                "sid": "sid-x", "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}),
        extra,
    );
    h.idp.sign(&claims, Some("logout+jwt"))
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn logout_tokens_must_be_fresh_unique_and_form_posted() {
    let h = Harness::new(json!({}));
    let post = |token: &str| h.post("/oauth2/backchannel_logout", &format!("logout_token={token}"));
    let fresh = logout_token(&h, json!({}));
    assert_eq!(status(&post(&fresh)), 200);
    for (what, r) in [
        ("replayed jti", post(&fresh)),
        ("no jti", post(&logout_token(&h, json!({"jti": null})))),
        ("old iat", post(&logout_token(&h, json!({"iat": now() - 3600})))),
        (
            "iat in the future",
            post(&logout_token(&h, json!({"iat": now() + 3600}))),
        ),
        (
            "JSON body",
            h.post_as(
                "/oauth2/backchannel_logout",
                &format!("logout_token={}", logout_token(&h, json!({}))),
                "application/json",
            ),
        ),
    ] {
        assert_eq!(status(&r), 400, "{what}");
        let body: Value = serde_json::from_str(&r.body()).expect("json");
        assert_eq!(body["trace_id"], "trace-bc", "{what}");
    }
    let r = h.post_as(
        "/oauth2/backchannel_logout",
        &format!("logout_token={}", logout_token(&h, json!({}))),
        "Application/X-WWW-Form-Urlencoded; charset=utf-8",
    );
    assert_eq!(status(&r), 200, "parameters and case are fine");
}

#[test]
fn refreshed_id_tokens_are_verified_and_must_name_the_same_user() {
    let another_user: fakes::IdTokenMaker = Arc::new(|idp: &FakeIdp, mut c: Value, _: &str| {
        c["sub"] = json!("mallory");
        idp.sign(&c, None)
    });
    let forged: fakes::IdTokenMaker = Arc::new(|idp: &FakeIdp, c: Value, _: &str| {
        let t = idp.sign(&c, None);
        format!("{}AAAA", &t[..t.len() - 4])
    });
    for (what, bad) in [("another user", another_user), ("a forged signature", forged)] {
        let h = Harness::new(json!({}));
        h.idp.id_tokens_on_refresh();
        let cookie = session_cookie(&h.login("alice"));
        let get = || h.request(&[(":path", "/x"), ("cookie", &cookie)], None);
        h.clock.advance(3600 - 10);
        let r = get();
        assert!(r.passed);
        assert_eq!(
            h.counter(&r.stream, "oidc_refreshes", &["refreshed"]),
            1,
            "an honest one is taken"
        );
        h.settle();
        // The next refresh answers with a bad ID token: nothing of that answer is kept.
        h.idp.id_tokens_from(bad);
        h.clock.advance(3600);
        let r = get();
        assert!(r.passed, "{what}: the session goes on with what it had");
        assert_eq!(h.counter(&r.stream, "oidc_refreshes", &["failed"]), 1, "{what}");
        assert_eq!(r.upstream("x-auth-request-user").as_deref(), Some("alice"));
    }
}

#[test]
fn a_new_login_ends_the_session_it_replaces() {
    let h = Harness::new(json!({}));
    let old = h.login("alice");
    let start = h.request(&[(":path", "/"), ("accept", "text/html")], None);
    let flow = start.set_cookie_pair("__Host-oidc_flow_").expect("flow");
    let callback = h.idp.authorize(&start.header("location").expect("location"), "bob");
    let both = format!("{flow}; __Host-oidc_session={old}");
    let r = h.request(&[(":path", &callback), ("cookie", &both)], None);
    assert_eq!(status(&r), 302);
    h.settle();
    let r = h.request(
        &[
            (":path", "/x"),
            ("accept", "text/html"),
            ("cookie", &session_cookie(&old)),
        ],
        None,
    );
    assert_eq!(status(&r), 302, "the replaced session is over");
}

#[test]
fn sign_out_from_another_site_is_confirmed_or_refused() {
    let h = Harness::new(json!({}));
    let cookie = session_cookie(&h.login("alice"));
    let alive = |h: &Harness| h.request(&[(":path", "/x"), ("cookie", &cookie)], None).passed;
    let signout = |h: &Harness, method: &str, extra: (&str, &str)| {
        h.request(
            &[
                (":method", method),
                (":path", "/oauth2/sign_out"),
                ("accept", "text/html"),
                ("cookie", &cookie),
                extra,
            ],
            None,
        )
    };
    let r = signout(&h, "GET", ("sec-fetch-site", "cross-site"));
    assert_eq!(status(&r), 200);
    assert!(
        r.body().contains("<form method=\"post\" action=\"/oauth2/sign_out\">"),
        "{}",
        r.body()
    );
    assert!(alive(&h), "a link from elsewhere signs nobody out");
    let r = signout(&h, "GET", ("origin", "https://evil.test"));
    assert!(r.body().contains("Sign out?"));
    assert_eq!(status(&signout(&h, "POST", ("sec-fetch-site", "cross-site"))), 403);
    assert_eq!(status(&signout(&h, "POST", ("origin", "https://evil.test"))), 403);
    assert!(alive(&h));
    // Confirmed from our own page: signed out.
    let r = signout(&h, "POST", ("sec-fetch-site", "same-origin"));
    assert_eq!(status(&r), 200);
    assert!(r.body().contains("id_token_hint"));
    assert!(!alive(&h));

    let strict = Harness::new(json!({"logout": {"cross_site": "refuse"}}));
    assert_eq!(status(&signout(&strict, "GET", ("sec-fetch-site", "same-site"))), 403);
}

/// Logs in as alice with the IdP misbehaving as `prepare` sets up; the callback reply.
fn login_with(prepare: impl FnOnce(&FakeIdp)) -> (Harness, Exchanged) {
    let h = Harness::new(json!({}));
    prepare(&h.idp);
    let start = h.request(&[(":path", "/"), ("accept", "text/html")], None);
    let flow = start.set_cookie_pair("__Host-oidc_flow_").expect("flow");
    let callback = h.idp.authorize(&start.header("location").expect("location"), "alice");
    let r = h.request(
        &[(":path", &callback), ("cookie", &flow), ("accept", "text/html")],
        None,
    );
    (h, r)
}

#[test]
fn hostile_claims_get_a_clear_refusal() {
    let (_, r) = login_with(|idp| {
        idp.id_tokens_from(Arc::new(|idp: &FakeIdp, mut c: Value, _: &str| {
            c["email"] = json!("a@example.com\r\nx-admin: 1");
            idp.sign(&c, None)
        }))
    });
    assert_eq!(status(&r), 502, "the IdP's data, not the user's fault");
    assert!(r.body().contains("trace-1"));
    let (_, r) = login_with(|idp| {
        idp.id_tokens_from(Arc::new(|idp: &FakeIdp, mut c: Value, _: &str| {
            c["sub"] = json!("");
            idp.sign(&c, None)
        }))
    });
    assert_ne!(status(&r), 302, "an empty sub never makes a session");
    // Thousands of groups: a page saying why, not a 500.
    let many: Vec<String> = (0..5000).map(|i| format!("group-number-{i:05}")).collect();
    let (_, r) = login_with(|idp| idp.groups_are(many));
    assert_eq!(status(&r), 403);
    assert!(r.body().contains("more data"), "{}", r.body());
    assert!(r.body().contains("trace-1"));
    // A group with the separator in its name stays one group.
    let (h, r) = login_with(|idp| idp.groups_are(vec!["admins".into(), "a,b".into()]));
    assert_eq!(status(&r), 302);
    let cookie = r.set_cookie_pair("__Host-oidc_session=").expect("session");
    let r = h.request(&[(":path", "/x"), ("cookie", &cookie)], None);
    assert_eq!(r.upstream("x-auth-request-groups").as_deref(), Some("admins,a%2Cb"));
}

#[test]
fn statuses_tell_whose_fault_it_is() {
    for (status_code, body) in [(500, "<html>oops</html>"), (200, "not json"), (503, "")] {
        let (_, r) = login_with(|idp| idp.token_endpoint_answers(status_code, body));
        assert_eq!(status(&r), 502, "token endpoint {status_code} {body:?}");
    }
    let h = Harness::new(json!({}));
    let r = h.request(&[(":path", "/oauth2/nothing-here"), ("accept", "text/html")], None);
    assert_eq!(status(&r), 404);
    assert!(r.body().contains("trace-1"));
    let r = h.request(&[(":path", "/oauth2x/app-page"), ("accept", "text/html")], None);
    assert_eq!(status(&r), 302, "only our folder is ours");
}

#[test]
fn a_non_utf8_cookie_hides_nothing_and_leaks_nothing() {
    let h = Harness::new(json!({}));
    let value = h.login("alice");
    let line = [
        b"junk=\xff\xfe; __Host-oidc_session=".as_slice(),
        value.as_bytes(),
        b"; b=2",
    ]
    .concat();
    let r = h.request_bytes(&[(":path", b"/x"), ("cookie", &line)]);
    assert!(r.passed);
    assert_eq!(
        r.upstream("x-auth-request-user").as_deref(),
        Some("alice"),
        "the session is seen"
    );
    let upstream = r
        .stream
        .request_headers
        .iter()
        .find(|(k, _)| k == "cookie")
        .expect("cookie");
    assert_eq!(
        upstream.1,
        b"junk=\xff\xfe; b=2".to_vec(),
        "ours removed, theirs kept as sent"
    );
}

#[test]
fn a_deep_link_with_encoded_spaces_survives_login() {
    let h = Harness::new(json!({}));
    let start = h.request(&[(":path", "/my%20report?q=a%20b"), ("accept", "text/html")], None);
    let flow = start.set_cookie_pair("__Host-oidc_flow_").expect("flow");
    let callback = h.idp.authorize(&start.header("location").expect("location"), "alice");
    let r = h.request(&[(":path", &callback), ("cookie", &flow)], None);
    assert_eq!(r.header("location").as_deref(), Some("/my%20report?q=a%20b"));
}

#[test]
fn opaque_tokens_are_introspected_and_cached_when_enabled() {
    let h = Harness::new(json!({"bearer": {"enabled": true, "introspection": {"enabled": true}},
                                "headers": {"access_token": true}}));
    // The access token of alice's session (opaque at this IdP), as an API client sends it.
    let cookie = session_cookie(&h.login("alice"));
    let r = h.request(&[(":path", "/x"), ("cookie", &cookie)], None);
    let token = r.upstream("authorization").expect("forwarded").replace("Bearer ", "");
    for _ in 0..3 {
        let r = with_bearer(&h, &token);
        assert_eq!(status(&r), 200);
        assert_eq!(r.upstream("x-auth-request-user").as_deref(), Some("alice"));
        assert_eq!(r.upstream("x-auth-request-groups").as_deref(), Some("admins"));
    }
    assert_eq!(h.idp.introspections(), 1, "answers are cached");
    let r = with_bearer(&h, "not-a-token-we-issued");
    assert_eq!(status(&r), 401);
    assert_eq!(status(&with_bearer(&h, "not-a-token-we-issued")), 401);
    assert_eq!(h.idp.introspections(), 2, "refusals are cached too");
    // Off (the default): an opaque token is refused without asking anyone.
    let off = Harness::new(json!({"bearer": {"enabled": true}}));
    assert_eq!(status(&with_bearer(&off, &token)), 401);
    assert_eq!(off.idp.introspections(), 0);
}

/// A verified bearer token is remembered by the whole token: the same token is admitted
/// again (the route's rules checked each time), a token one character apart is checked
/// on its own (and refused).
#[test]
fn remembered_bearer_tokens_are_the_exact_token_until_it_expires() {
    let h = Harness::new(json!({"bearer": {"enabled": true}}));
    let t = now();
    let token = h.idp.sign(
        &json!({"iss": ISSUER, "aud": CLIENT_ID, "sub": "svc", "iat": t, "exp": t + 300, "groups": ["ops"]}),
        Some("at+jwt"),
    );
    for _ in 0..2 {
        let r = with_bearer(&h, &token);
        assert_eq!(status(&r), 200);
        assert_eq!(r.upstream("x-auth-request-user").as_deref(), Some("svc"));
    }
    let admins = envoy_oidc::config::RouteSettings::parse(br#"{"require_groups": ["admins"]}"#).expect("route");
    let auth = format!("Bearer {token}");
    let r = h.request(
        &[
            (":path", "/admin"),
            ("accept", "application/json"),
            ("authorization", &auth),
        ],
        Some(admins),
    );
    assert_eq!(status(&r), 403, "the route's rule, on a remembered token too");

    // A character inside the signature (the last one may only carry padding bits).
    let at = token.len() - 10;
    let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
    assert_eq!(
        status(&with_bearer(&h, &forged)),
        401,
        "one character apart: checked, refused"
    );
    assert_eq!(status(&with_bearer(&h, &token)), 200, "and the real one still admitted");
}
