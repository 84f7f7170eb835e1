//! API clients: 401 instead of a redirect, and bearer JWTs checked against the IdP's keys.

mod support;

use serde_json::json;
use support::{client, Options, Seen, Setup, CLIENT_ID};

fn now() -> u64 {
    session_store::unix_now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_without_a_session_get_401() {
    let setup = Setup::start(Options::default()).await;
    let c = client();
    for (name, value) in [("x-requested-with", "XMLHttpRequest"), ("accept", "application/json")] {
        let r = c
            .get(setup.url("/api/items"))
            .header(name, value)
            .header("x-request-id", "api-1")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 401, "{name}");
        let challenge = r.headers()["www-authenticate"].to_str().expect("ascii").to_owned();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        let id = r.headers()["x-request-id"].to_str().expect("ascii").to_owned();
        assert_ne!(id, "api-1", "the client's request id is not trusted");
        assert!(r.text().await.expect("body").contains(&id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_valid_and_invalid() {
    let setup = Setup::start(Options::default()).await;
    let iss = setup.idp.issuer.clone();
    let t = now();
    let good = setup
        .idp
        .mint(
            json!({"iss": iss, "aud": CLIENT_ID, "sub": "svc-1", "email": "svc@example.com", "email_verified": true, "iat": t, "exp": t + 300}),
        )
        .await;
    let r = client()
        .get(setup.url("/api/items"))
        .header("accept", "application/json")
        .header("x-auth-request-user", "spoofed")
        .bearer_auth(&good)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let s = Seen(r.json().await.expect("echo"));
    assert_eq!(s.header_values("x-auth-request-user"), vec!["svc-1"]);
    assert_eq!(s.header("x-auth-request-email").as_deref(), Some("svc@example.com"));
    assert_eq!(
        s.header("authorization"),
        Some(format!("Bearer {good}")),
        "the token itself goes on"
    );

    let bad = [
        (
            "expired",
            setup
                .idp
                .mint(json!({"iss": iss, "aud": CLIENT_ID, "sub": "x", "iat": t - 7200, "exp": t - 3600}))
                .await,
        ),
        (
            "wrong aud",
            setup
                .idp
                .mint(json!({"iss": iss, "aud": "someone-else", "sub": "x", "iat": t, "exp": t + 300}))
                .await,
        ),
        (
            "wrong iss",
            setup
                .idp
                .mint(json!({"iss": "https://evil.example", "aud": CLIENT_ID, "sub": "x", "iat": t, "exp": t + 300}))
                .await,
        ),
        (
            "alg none",
            unsigned(&json!({"iss": iss, "aud": CLIENT_ID, "sub": "x", "iat": t, "exp": t + 300})),
        ),
        ("garbage", "not.a.jwt".to_owned()),
        ("re-signed payload", tampered(&good)),
    ];
    for (what, token) in bad {
        let r = api_get(&setup, "/api/items", &token).await;
        assert_eq!(r.status(), 401, "{what}");
        let challenge = r.headers()["www-authenticate"].to_str().expect("ascii").to_owned();
        assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
    }
    let prom = setup.envoy().admin_get("/stats/prometheus").await.expect("stats");
    assert!(
        prom.contains("envoy_dynamicmodulescustom_oidc_bearer_tokens{result=\"invalid\"} 6"),
        "{prom}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_groups_satisfy_per_route_group_rules() {
    let setup = Setup::start(Options::default()).await;
    let t = now();
    let mint = |sub: &str, groups: &[&str]| json!({"iss": setup.idp.issuer, "aud": CLIENT_ID, "sub": sub, "groups": groups, "iat": t, "exp": t + 60});
    let admin = setup.idp.mint(mint("alice", &["admins"])).await;
    let r = api_get(&setup, "/admin/api", &admin).await;
    assert_eq!(r.status(), 200);
    let s = Seen(r.json().await.expect("echo"));
    assert_eq!(s.header("x-auth-request-groups").as_deref(), Some("admins"));
    let plain = setup.idp.mint(mint("bob", &[])).await;
    let r = api_get(&setup, "/admin/api", &plain).await;
    assert_eq!(r.status(), 403, "require_groups applies to bearer callers too");
}

fn b64(v: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn unsigned(claims: &serde_json::Value) -> String {
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

/// The good token with its payload swapped for one claiming another subject.
fn tampered(good: &str) -> String {
    let parts: Vec<&str> = good.split('.').collect();
    let payload = b64(br#"{"sub":"admin","aud":"gateway"}"#);
    format!("{}.{}.{}", parts[0], payload, parts[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_access_tokens_are_introspected_at_the_idp() {
    let setup = Setup::start(Options {
        extra: json!({"bearer": {"introspection": {"enabled": true}}, "headers": {"access_token": true}}),
        ..Options::default()
    })
    .await;
    // oidc-provider issues opaque access tokens: take alice's as the app received it.
    let b = support::logged_in(&setup, "alice", "/").await;
    let page = &b.navigate(&setup.url("/whoami")).await[0];
    let s = Seen(serde_json::from_str(&page.body).expect("echo"));
    let token = s.header("authorization").expect("forwarded").replace("Bearer ", "");
    assert_eq!(token.split('.').count(), 1, "opaque: {token}");
    for _ in 0..2 {
        let r = api_get(&setup, "/api/items", &token).await;
        assert_eq!(r.status(), 200);
        let s = Seen(r.json().await.expect("echo"));
        assert_eq!(s.header("x-auth-request-user").as_deref(), Some("alice"));
    }
    assert_eq!(
        api_get(&setup, "/api/items", "made-up-opaque-token").await.status(),
        401
    );
}

/// An API client's GET with a bearer token.
async fn api_get(setup: &Setup, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(setup.url(path))
        .header("accept", "application/json")
        .bearer_auth(token)
        .send()
        .await
        .expect("send")
}
