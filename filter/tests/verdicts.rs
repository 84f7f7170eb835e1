//! Every verdict of the request paths, through `OidcFilter` over a fake stream, with a
//! fake IdP and a manual clock: no Envoy, no network, no sleeping for expiry.

mod fakes;

use std::sync::Arc;
use std::time::Duration;

use envoy_module::HttpStream;
use envoy_oidc::config::RouteSettings;
use fakes::{FakeIdp, Harness, APP, CLIENT_ID, ISSUER};
use serde_json::{json, Value};

fn html(path: &str) -> [(&str, &str); 2] {
    [(":path", path), ("accept", "text/html")]
}

fn with_cookie<'a>(path: &'a str, cookie: &'a str) -> [(&'a str, &'a str); 3] {
    [(":path", path), ("accept", "text/html"), ("cookie", cookie)]
}

fn session_cookie(value: &str) -> String {
    format!("theme=dark; __Host-oidc_session={value}")
}

#[test]
fn unauthenticated_browser_is_sent_to_the_idp_with_pkce_state_and_nonce() {
    let h = Harness::new(json!({}));
    let r = h.request(&html("/reports?q=1"), None);
    assert!(!r.passed);
    assert_eq!(r.reply().status, 302);
    let location = r.header("location").expect("location");
    let url = url::Url::parse(&location).expect("url");
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(location.starts_with(&format!("{ISSUER}/auth?")));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], format!("{APP}/oauth2/callback"));
    assert!(q["state"].len() >= 16 && q["nonce"].len() >= 16);
    let flow = r.set_cookie_pair("__Host-oidc_flow_").expect("a flow cookie");
    assert!(flow.starts_with(&format!("__Host-oidc_flow_{}", &q["state"][..16])));
    assert_eq!(h.counter(&r.stream, "oidc_login_started", &[]), 1);
}

#[test]
fn api_clients_get_401_json_with_trace_id_and_a_challenge() {
    let h = Harness::new(json!({}));
    let r = h.request(&[(":path", "/api/x"), ("accept", "application/json")], None);
    let reply = r.reply();
    assert_eq!(reply.status, 401);
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer realm=\"oidc\""));
    let body: Value = serde_json::from_str(&r.body()).expect("json");
    assert_eq!(body["trace_id"], "trace-1");
    assert_eq!(body["error"], "invalid_token");
}

#[test]
fn login_then_requests_carry_identity_and_never_our_cookie_or_spoofed_headers() {
    let h = Harness::new(json!({}));
    let cookie = h.login("alice");
    assert_eq!(h.idp.calls().0, 1, "one code exchange");
    let r = h.request(
        &[
            (":path", "/reports"),
            ("accept", "text/html"),
            ("cookie", &session_cookie(&cookie)),
            ("X-Auth-Request-User", "mallory"),
        ],
        None,
    );
    assert!(r.passed, "{:?}", r.stream.reply);
    assert_eq!(r.upstream("x-auth-request-user").as_deref(), Some("alice"));
    assert_eq!(r.upstream("x-auth-request-groups").as_deref(), Some("admins"));
    assert_eq!(r.upstream("x-auth-request-email").as_deref(), Some("alice@example.com"));
    assert_eq!(
        r.upstream("cookie").as_deref(),
        Some("theme=dark"),
        "only our cookie is removed"
    );
    assert_eq!(
        r.stream.filter_state("oidc.user"),
        Some(&b"alice"[..]),
        "for the access log"
    );
}

#[test]
fn spoofed_identity_headers_are_removed_from_requests_answered_here_too() {
    // An access log may read the user header (`access_log_user: none`): a request
    // refused or sent to the IdP must not log the user it claims to be.
    let h = Harness::new(json!({}));
    let spoof = ("X-Auth-Request-User", "mallory");
    let browser = h.request(&[(":path", "/reports"), ("accept", "text/html"), spoof], None);
    assert_eq!(browser.reply().status, 302);
    let api = h.request(&[(":path", "/api/x"), ("accept", "application/json"), spoof], None);
    assert_eq!(api.reply().status, 401);
    let bad_callback = h.request(
        &[
            (":path", "/oauth2/callback?code=x&state=y"),
            ("accept", "text/html"),
            spoof,
        ],
        None,
    );
    assert_eq!(bad_callback.reply().status, 400);
    for r in [&browser, &api, &bad_callback] {
        assert_eq!(r.upstream("x-auth-request-user"), None);
        assert!(r.upstream("accept").is_some(), "other headers stay");
    }
}

#[test]
fn callback_failures_are_4xx_pages_with_the_trace_id() {
    let h = Harness::new(json!({}));
    // The user cancelled at the IdP.
    let r = h.request(&html("/oauth2/callback?error=access_denied&state=x"), None);
    assert_eq!(r.reply().status, 400);
    let page = r.body();
    assert!(
        page.contains("cancelled or refused") && page.contains("trace id: trace-1"),
        "{page}"
    );
    assert_eq!(r.header("content-type").as_deref(), Some("text/html; charset=utf-8"));
    assert_eq!(h.counter(&r.stream, "oidc_login_failed", &["idp_error"]), 1);
    assert!(
        page.contains("<a href=\"/\">Try again</a>"),
        "starts over at home: {page}"
    );
    // A state nobody issued (forged, or its flow cookie is gone).
    let r = h.request(&html("/oauth2/callback?code=c&state=AAAAAAAAAAAAAAAAAAAAAA"), None);
    assert_eq!(r.reply().status, 400);
    assert!(r.body().contains("expired or was already used"));
}

#[test]
fn a_replayed_callback_is_refused() {
    let h = Harness::new(json!({}));
    let start = h.request(&html("/"), None);
    let flow = start.set_cookie_pair("__Host-oidc_flow_").expect("flow");
    let callback = h.idp.authorize(&start.header("location").expect("location"), "alice");
    let first = h.request(&with_cookie(&callback, &flow), None);
    assert_eq!(first.reply().status, 302);
    // The same code again (the IdP forgets codes once used): invalid_grant → 400.
    let again = h.request(&with_cookie(&callback, &flow), None);
    assert_eq!(again.reply().status, 400, "{}", again.body());
}

#[test]
fn a_token_endpoint_that_answers_garbage_is_the_idps_fault() {
    let h = Harness::new(json!({}));
    let start = h.request(&html("/"), None);
    let flow = start.set_cookie_pair("__Host-oidc_flow_").expect("flow");
    let callback = h.idp.authorize(&start.header("location").expect("location"), "alice");
    h.idp.token_endpoint_answers(500, "<html>Internal Server Error</html>");
    let r = h.request(&with_cookie(&callback, &flow), None);
    assert_eq!(r.reply().status, 502, "{}", r.body());
}

#[test]
fn group_rules_refuse_with_403_and_admit_members() {
    let h = Harness::new(json!({}));
    let admins = RouteSettings {
        require_groups: vec!["admins".into()],
        ..RouteSettings::default()
    };
    let bob = h.login("bob");
    let r = h.request(&with_cookie("/admin", &session_cookie(&bob)), Some(admins.clone()));
    assert_eq!(r.reply().status, 403);
    assert!(r.body().contains("not allowed here"));
    let alice = h.login("alice");
    let r = h.request(&with_cookie("/admin", &session_cookie(&alice)), Some(admins));
    assert!(r.passed);
}

#[test]
fn disabled_routes_pass_without_login_but_still_lose_spoofed_identity() {
    let h = Harness::new(json!({}));
    let public = RouteSettings {
        disabled: true,
        ..RouteSettings::default()
    };
    let r = h.request(
        &[(":path", "/public"), ("x-auth-request-user", "mallory")],
        Some(public),
    );
    assert!(r.passed);
    assert_eq!(r.upstream("x-auth-request-user"), None);
}

#[test]
fn a_token_near_expiry_is_refreshed_once_and_the_session_goes_on() {
    let h = Harness::new(json!({"refresh": {"leeway_secs": 30}}));
    let cookie = h.login("alice");
    // An hour later the access token is within the leeway: move the clock, not time.
    h.clock.advance(3600 - 10);
    let r = h.request(&with_cookie("/x", &session_cookie(&cookie)), None);
    assert!(r.passed, "{:?}", r.stream.reply);
    assert_eq!(r.upstream("x-auth-request-user").as_deref(), Some("alice"));
    assert_eq!(h.idp.calls().1, 1, "one refresh at the IdP");
    assert_eq!(h.counter(&r.stream, "oidc_refreshes", &["refreshed"]), 1);
    // Fresh tokens now: the next request needs none.
    let r = h.request(&with_cookie("/x", &session_cookie(&cookie)), None);
    assert!(r.passed);
    assert_eq!(h.idp.calls().1, 1);
}

#[test]
fn a_refused_refresh_ends_the_session_and_starts_a_login() {
    let h = Harness::new(json!({}));
    let cookie = h.login("alice");
    h.idp.revoke_refresh_tokens();
    h.clock.advance(3600);
    let r = h.request(&with_cookie("/x", &session_cookie(&cookie)), None);
    assert_eq!(r.reply().status, 302);
    assert!(r.header("location").expect("location").starts_with(ISSUER));
    assert!(
        r.set_cookie_pair("__Host-oidc_session=").is_some(),
        "the dead cookie is cleared"
    );
    assert_eq!(h.counter(&r.stream, "oidc_refreshes", &["ended"]), 1);
}

#[test]
fn sessions_in_use_outlive_the_idle_timeout_and_idle_ones_end() {
    let h = Harness::new(json!({"session": {"idle_timeout_secs": 600}}));
    let cookie = h.login("alice");
    // Used every 200 s for 1000 s, beyond the 600 s idle timeout: still signed in.
    for _ in 0..5 {
        h.clock.advance(200);
        let r = h.request(&with_cookie("/x", &session_cookie(&cookie)), None);
        assert!(r.passed, "an active session does not go idle: {:?}", r.stream.reply);
        h.settle();
    }
    // Left alone past the idle timeout: it ends.
    h.clock.advance(601);
    let r = h.request(&with_cookie("/x", &session_cookie(&cookie)), None);
    assert_eq!(r.reply().status, 302, "an idle session ends");
}

/// Bug: with `headers.access_token` the client's `authorization` header is one of the
/// identity headers stripped from every request — and it was stripped before the bearer
/// token was read, so bearer authentication silently never happened.
#[test]
fn bearer_tokens_work_when_access_tokens_are_forwarded_too() {
    let h = Harness::new(json!({"bearer": {"enabled": true}, "headers": {"access_token": true}}));
    let now = session_store::unix_now();
    let token = h.idp.sign(
        &json!({"iss": ISSUER, "sub": "svc", "aud": CLIENT_ID, "exp": now + 300, "iat": now}),
        Some("at+jwt"),
    );
    let bearer = format!("Bearer {token}");
    let r = h.request(
        &[
            (":path", "/api/x"),
            ("accept", "application/json"),
            ("authorization", &bearer),
        ],
        None,
    );
    assert!(
        r.passed,
        "{:?}",
        r.stream
            .reply
            .as_ref()
            .map(|x| String::from_utf8_lossy(&x.body).into_owned())
    );
    assert_eq!(r.upstream("x-auth-request-user").as_deref(), Some("svc"));
    assert_eq!(
        r.upstream("authorization").as_deref(),
        Some(bearer.as_str()),
        "the checked token goes on"
    );
    // A spoofed authorization on a session request is replaced by the session's token.
    let cookie = h.login("alice");
    let r = h.request(
        &[
            (":path", "/x"),
            ("accept", "text/html"),
            ("cookie", &session_cookie(&cookie)),
            ("authorization", "Bearer forged"),
        ],
        None,
    );
    assert!(r.passed);
    assert!(r.upstream("authorization").expect("set").starts_with("Bearer at-"));
}

/// Bug: a refusal of async work could be sent as "500 Service Unavailable"; every
/// failure now takes status and phrase from one table. Overload is a fast 503.
#[test]
fn overload_is_a_fast_503_with_the_right_phrase() {
    let idp = FakeIdp::new();
    let h = Harness::with_idp(idp.clone(), json!({"max_in_flight": 1}));
    let flows: Vec<(String, String)> = (0..2)
        .map(|_| {
            let start = h.request(&html("/"), None);
            let flow = start.set_cookie_pair("__Host-oidc_flow_").expect("flow");
            (
                idp.authorize(&start.header("location").expect("location"), "alice"),
                flow,
            )
        })
        .collect();
    // The first callback, stuck at the token endpoint, holds the only slot.
    let gate = Arc::new(tokio::sync::Notify::new());
    *idp.stall.lock().expect("stall") = Some(gate.clone());
    let (f, s, status) = h.begin(&with_cookie(&flows[0].0, &flows[0].1), None);
    let began = std::time::Instant::now();
    let r = h.request(&with_cookie(&flows[1].0, &flows[1].1), None);
    assert!(began.elapsed() < Duration::from_secs(1), "refused at once, not queued");
    let reply = r.reply();
    assert_eq!(reply.status, 503);
    assert!(
        r.body().contains("503 Service Unavailable") && r.body().contains("busy"),
        "{}",
        r.body()
    );
    // Released, the first completes normally.
    *idp.stall.lock().expect("stall") = None;
    gate.notify_waiters();
    let first = h.finish(f, s, status);
    assert_eq!(first.reply().status, 302);
}

#[test]
fn overload_reply_uses_the_table() {
    use envoy_oidc::failure::{Failure, FailureKind, ReplyFormat};
    let h = Harness::new(json!({}));
    let trace = envoy_module::TraceId::from_headers(Some(b"t"), None);
    let r = Failure::new(FailureKind::Overloaded, "overloaded").reply(
        &trace,
        ReplyFormat::Json,
        &h.gw.settings.error_pages,
        "/",
    );
    assert_eq!(r.status, 503);
    let internal = Failure::new(FailureKind::Internal, "runtime").reply(
        &trace,
        ReplyFormat::Html,
        &h.gw.settings.error_pages,
        "/",
    );
    let page = String::from_utf8(internal.body).expect("utf-8");
    assert!(page.contains("500 Internal Server Error") && !page.contains("Service Unavailable"));
}

#[test]
fn a_task_past_its_deadline_gets_a_504_page() {
    let idp = FakeIdp::new();
    let h = Harness::with_idp(idp.clone(), json!({"timeouts": {"request_ms": 200}}));
    let start = h.request(&html("/"), None);
    let flow = start.set_cookie_pair("__Host-oidc_flow_").expect("flow");
    let callback = idp.authorize(&start.header("location").expect("location"), "alice");
    let gate = Arc::new(tokio::sync::Notify::new());
    *idp.stall.lock().expect("stall") = Some(gate.clone());
    let began = std::time::Instant::now();
    let r = h.request(&with_cookie(&callback, &flow), None);
    assert_eq!(r.reply().status, 504);
    assert!(r.body().contains("took too long") && r.body().contains("trace id: trace-1"));
    assert!(began.elapsed() < Duration::from_secs(5));
    gate.notify_waiters();
}

#[test]
fn sign_out_ends_the_session_and_sends_the_browser_to_the_idp_then_the_signed_out_page() {
    let h = Harness::new(json!({"logout": {"post_logout_redirect_uri": format!("{APP}/oauth2/signed_out")}}));
    let cookie = h.login("alice");
    let r = h.request(&with_cookie("/oauth2/sign_out", &session_cookie(&cookie)), None);
    assert_eq!(r.reply().status, 200);
    let page = r.body();
    assert!(page.contains(&format!("action=\"{ISSUER}/logout\"")) && page.contains("id_token_hint"));
    assert!(page.contains("oauth2/signed_out"));
    assert!(r
        .set_cookie_pair("__Host-oidc_session=")
        .is_some_and(|c| c.ends_with('=')));
    // The session is gone everywhere: the old cookie starts a login.
    let r = h.request(&with_cookie("/x", &session_cookie(&cookie)), None);
    assert_eq!(r.reply().status, 302);
    // The landing page does not log the user straight back in.
    let r = h.request(&html("/oauth2/signed_out"), None);
    assert_eq!(r.reply().status, 200);
    assert!(r.body().contains("You have signed out"));
}

#[test]
fn back_channel_logout_ends_the_sid_and_refuses_bad_tokens_in_rfc_form() {
    let h = Harness::new(json!({}));
    let cookie = h.login("alice");
    let sid = h.idp.sid_of("alice");
    let now = session_store::unix_now();
    let logout = h.idp.sign(
        &json!({"iss": ISSUER, "aud": CLIENT_ID, "iat": now, "jti": "j1", "sid": sid,
                "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}),
        Some("logout+jwt"),
    );
    let r = h.post("/oauth2/backchannel_logout", &format!("logout_token={logout}"));
    assert_eq!(r.reply().status, 200);
    let r = h.request(&with_cookie("/x", &session_cookie(&cookie)), None);
    assert_eq!(r.reply().status, 302, "the session ended");
    // A token without the logout event: 400, OAuth error JSON with the trace id.
    let bad = h
        .idp
        .sign(&json!({"iss": ISSUER, "aud": CLIENT_ID, "iat": now, "sid": "x"}), None);
    let r = h.post("/oauth2/backchannel_logout", &format!("logout_token={bad}"));
    assert_eq!(r.reply().status, 400);
    let body: Value = serde_json::from_str(&r.body()).expect("json");
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["trace_id"], "trace-bc");
}

#[test]
fn error_pages_come_from_the_configured_templates() {
    let h = Harness::new(json!({"error_pages": {
        "html": {"inline": "<p class=mine>{{status}} {{message}} [{{trace_id}}]</p>"},
        "json": {"inline": "{\"code\":\"{{error}}\",\"id\":\"{{trace_id}}\"}"}
    }}));
    let r = h.request(&html("/oauth2/callback?error=access_denied"), None);
    assert_eq!(
        r.body(),
        "<p class=mine>400 Sign-in was cancelled or refused at the identity provider. [trace-1]</p>"
    );
    let r = h.request(&[(":path", "/api"), ("accept", "application/json")], None);
    assert_eq!(r.body(), "{\"code\":\"invalid_token\",\"id\":\"trace-1\"}");
    // A template that would hide the trace id is refused at load.
    let cfg = fakes::config(json!({"error_pages": {"html": {"inline": "<p>oops</p>"}}}));
    let err = envoy_oidc::config::Settings::parse(cfg.to_string().as_bytes())
        .err()
        .expect("refused");
    assert_eq!(err.field, "error_pages.html");
}

/// Runs a login whose ID token the IdP makes with `make`; the callback's status.
fn login_with_id_token(make: fakes::IdTokenMaker) -> (u16, Harness, fakes::Exchanged) {
    let h = Harness::new(json!({}));
    h.idp.id_tokens_from(make);
    let start = h.request(&html("/"), None);
    let flow = start.set_cookie_pair("__Host-oidc_flow_").expect("flow");
    let callback = h.idp.authorize(&start.header("location").expect("location"), "alice");
    let r = h.request(&with_cookie(&callback, &flow), None);
    (r.reply().status, h, r)
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn at_hash(access: &str) -> String {
    use sha2::Digest;
    b64url(&sha2::Sha256::digest(access.as_bytes())[..16])
}

fn resigned(edit: fn(&mut Value)) -> fakes::IdTokenMaker {
    Arc::new(move |idp: &FakeIdp, mut claims: Value, _access: &str| {
        edit(&mut claims);
        idp.sign(&claims, None)
    })
}

/// OIDC Core 3.1.3.7: each check refuses the login on its own (502: the ID token is the
/// IdP's, `id_token_invalid`).
#[test]
fn id_token_checks_each_refuse_the_login() {
    let cases: Vec<(&str, fakes::IdTokenMaker)> = vec![
        (
            "step 2: another issuer",
            resigned(|c| c["iss"] = json!("https://evil.test")),
        ),
        ("step 3: not for us", resigned(|c| c["aud"] = json!("someone-else"))),
        (
            "step 4: several audiences, no azp",
            resigned(|c| c["aud"] = json!([CLIENT_ID, "other"])),
        ),
        ("step 5: azp is another client", resigned(|c| c["azp"] = json!("other"))),
        (
            "step 3: an audience we do not trust, even with azp = us",
            resigned(|c| {
                c["aud"] = json!([CLIENT_ID, "other"]);
                c["azp"] = json!(CLIENT_ID);
            }),
        ),
        (
            "step 9: expired",
            resigned(|c| c["exp"] = json!(session_store::unix_now() - 3600)),
        ),
        (
            "step 11: another nonce",
            resigned(|c| c["nonce"] = json!("not-the-one-we-sent")),
        ),
        (
            "3.1.3.8: at_hash of another token",
            resigned(|c| c["at_hash"] = json!(at_hash("another-token"))),
        ),
        (
            "step 6: HMAC, whatever the header says",
            Arc::new(|_: &FakeIdp, claims: Value, _: &str| {
                let key = jsonwebtoken::EncodingKey::from_secret(b"the public key, as an HMAC secret");
                jsonwebtoken::encode(
                    &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                    &claims,
                    &key,
                )
                .expect("sign")
            }),
        ),
        (
            "step 6: alg none",
            Arc::new(|_: &FakeIdp, claims: Value, _: &str| {
                format!(
                    "{}.{}.",
                    b64url(br#"{"alg":"none","typ":"JWT"}"#),
                    b64url(claims.to_string().as_bytes())
                )
            }),
        ),
        (
            "signature: a payload changed after signing",
            Arc::new(|idp: &FakeIdp, claims: Value, _: &str| {
                let signed = idp.sign(&claims, None);
                let mut parts: Vec<String> = signed.split('.').map(str::to_owned).collect();
                let mut forged = claims.clone();
                forged["sub"] = json!("admin");
                parts[1] = b64url(forged.to_string().as_bytes());
                parts.join(".")
            }),
        ),
    ];
    for (case, make) in cases {
        let (status, h, r) = login_with_id_token(make);
        assert_eq!(status, 502, "{case}: {}", r.body());
        assert_eq!(
            h.counter(&r.stream, "oidc_login_failed", &["id_token_invalid"]),
            1,
            "{case}"
        );
    }
}

/// An ID token without `iat` (required by OIDC Core §2) is the IdP's fault (502), not
/// the browser's.
#[test]
fn an_id_token_without_iat_is_the_idps_fault() {
    let (status, h, r) = login_with_id_token(resigned(|c| {
        c.as_object_mut().expect("object").remove("iat");
    }));
    assert_eq!(status, 502, "{}", r.body());
    assert_eq!(h.counter(&r.stream, "oidc_login_failed", &["id_token_invalid"]), 1);
}

#[test]
fn id_tokens_that_follow_the_rules_log_in() {
    let cases: Vec<(&str, fakes::IdTokenMaker)> = vec![(
        "the right at_hash",
        Arc::new(|idp: &FakeIdp, mut claims: Value, access: &str| {
            claims["at_hash"] = json!(at_hash(access));
            idp.sign(&claims, None)
        }),
    )];
    for (case, make) in cases {
        let (status, _, r) = login_with_id_token(make);
        assert_eq!(status, 302, "{case}: {}", r.body());
    }
}

/// Authorization-request parameters: the filter's, the route's over them (step-up with
/// `acr_values` on an admin route), and `login_hint` passed on from the request when
/// configured; never one of the flow's own.
#[test]
fn authorize_parameters_from_config_route_and_request() {
    let h = Harness::new(
        json!({"extra_authorize_params": {"prompt": "select_account", "ui_locales": "en"},
                                "authorize_passthrough": ["login_hint"]}),
    );
    let route =
        RouteSettings::parse(br#"{"authorize_params": {"acr_values": "mfa", "prompt": "login"}}"#).expect("route");
    let r = h.request(&html("/admin?login_hint=jd%40example.com&state=evil"), Some(route));
    let url = url::Url::parse(&r.header("location").expect("location")).expect("url");
    let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let get = |k: &str| {
        q.iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("prompt"), vec!["login"], "the route's over the filter's, once");
    assert_eq!(get("acr_values"), vec!["mfa"]);
    assert_eq!(get("ui_locales"), vec!["en"]);
    assert_eq!(get("login_hint"), vec!["jd@example.com"]);
    assert_eq!(get("state").len(), 1, "the request cannot add a second state");
    assert_ne!(get("state"), vec!["evil"]);
    let e = RouteSettings::parse(br#"{"authorize_params": {"state": "x"}}"#).expect_err("refused");
    assert_eq!(e.field, "per_route.authorize_params.state");
    let cfg = fakes::config(json!({"authorize_passthrough": ["nonce"]}));
    assert!(envoy_oidc::config::Settings::parse(cfg.to_string().as_bytes()).is_err());
}
