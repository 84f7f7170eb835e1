//! Browser login through the real Envoy 1.40, the real IdP (oidc-provider) and the
//! memory store: the flow, upstream hygiene, bad input, group rules.

mod support;

use support::{assert_traced, last, logged_in, seen, Browser, Options, Setup};
use url::Url;

fn query(u: &Url, key: &str) -> Option<String> {
    u.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_uses_pkce_state_nonce_and_restores_the_deep_url() {
    let setup = Setup::start(Options::default()).await;
    let b = Browser::new();
    let pages = b.login(&setup.url("/deep/page?x=1&y=two"), "alice").await;

    let first = &pages[0];
    assert_eq!(first.status, 302);
    let auth = first.location().expect("redirect to the IdP");
    assert!(
        auth.as_str().starts_with(&format!("{}/auth", setup.idp.issuer)),
        "{auth}"
    );
    assert_eq!(query(&auth, "response_type").as_deref(), Some("code"));
    assert_eq!(query(&auth, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(
        query(&auth, "code_challenge").map(|c| c.len()),
        Some(43),
        "S256 challenge"
    );
    assert!(query(&auth, "state").is_some_and(|s| s.len() >= 16));
    assert!(query(&auth, "nonce").is_some_and(|n| n.len() >= 16));
    assert_eq!(query(&auth, "redirect_uri"), Some(setup.url("/oauth2/callback")));
    let flow = first.set_cookies().join("\n");
    assert!(
        flow.contains("__Host-oidc_flow_") && flow.contains("HttpOnly") && flow.contains("Secure"),
        "{flow}"
    );

    let callback = pages
        .iter()
        .find(|p| p.url.path() == "/oauth2/callback")
        .expect("callback hop");
    assert_eq!(callback.status, 302);
    assert_eq!(
        callback.header("location").as_deref(),
        Some("/deep/page?x=1&y=two"),
        "deep URL with its query"
    );
    let session = callback
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-oidc_session="))
        .expect("session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(session.contains(attr), "{attr} in {session}");
    }
    assert!(
        !session.to_ascii_lowercase().contains("domain="),
        "__Host- cookies have no Domain"
    );

    let s = seen(&pages);
    assert_eq!(s.path(), "/deep/page?x=1&y=two");
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("alice"));
    assert_eq!(s.header("x-auth-request-email").as_deref(), Some("alice@example.com"));
    assert_eq!(s.header("x-auth-request-groups").as_deref(), Some("admins"));
    assert_eq!(s.header("x-auth-request-preferred-username").as_deref(), Some("alice"));

    // The session works for the next request without the IdP.
    let again = b.navigate(&setup.url("/other")).await;
    assert_eq!(again.len(), 1, "no redirect with a live session");
    assert_eq!(seen(&again).header("x-auth-request-user").as_deref(), Some("alice"));
    let prom = setup.envoy().admin_get("/stats/prometheus").await.expect("stats");
    assert!(
        prom.contains("envoy_dynamicmodulescustom_oidc_login_succeeded{} 1"),
        "{prom}"
    );
    assert!(prom.contains("envoy_dynamicmodulescustom_oidc_login_started{} 1"));
    // The access log (the shipped format, filter state by default) names the user.
    let logged = support::eventually(std::time::Duration::from_secs(5), || async {
        setup.envoy().log().contains("[access] GET /other 200 user=alice ")
    })
    .await;
    assert!(logged, "{}", setup.envoy().log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers_and_our_cookies_never_reach_the_upstream() {
    let setup = Setup::start(Options::default()).await;
    let b = logged_in(&setup, "bob", "/").await;
    b.set_cookie(&setup.url("/"), "theme", "dark");
    let url = Url::parse(&setup.url("/whoami")).expect("url");
    let variants: &[&[(&str, &str)]] = &[
        &[("x-auth-request-user", "mallory")],
        &[("X-Auth-Request-User", "mallory"), ("X-AUTH-REQUEST-GROUPS", "admins")],
        &[
            ("x-auth-request-email", "ceo@example.com"),
            ("x-auth-request-preferred-username", "ceo"),
        ],
    ];
    for spoof in variants {
        let page = b.request("GET", &url, None, spoof).await;
        let s = support::Seen(serde_json::from_str(&page.body).expect("echo"));
        assert_eq!(s.header_values("x-auth-request-user"), vec!["bob"], "{spoof:?}");
        assert_eq!(s.header_values("x-auth-request-email"), vec!["bob@example.com"]);
        assert!(
            s.header_values("x-auth-request-groups").iter().all(|g| g.is_empty()),
            "bob has no groups: {spoof:?}"
        );
        assert_eq!(s.header_values("x-auth-request-preferred-username"), vec!["bob"]);
        let cookies = s.header_values("cookie").join("; ");
        assert!(cookies.contains("theme=dark"), "other cookies pass: {cookies}");
        assert!(
            !cookies.contains("oidc_session") && !cookies.contains("oidc_flow"),
            "ours are stripped: {cookies}"
        );
    }
    // On a public route too, spoofed identity is removed.
    let anon = Browser::new();
    let public = Url::parse(&setup.url("/public/x")).expect("url");
    let page = anon
        .request("GET", &public, None, &[("x-auth-request-user", "mallory")])
        .await;
    assert_eq!(page.status, 200, "public route needs no login");
    let s = support::Seen(serde_json::from_str(&page.body).expect("echo"));
    assert!(s.header("x-auth-request-user").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_foreign_and_ended_sessions_restart_the_login() {
    let setup = Setup::start(Options::default()).await;
    let b = logged_in(&setup, "alice", "/").await;
    let cookie = b
        .cookie(&setup.url("/"), "__Host-oidc_session")
        .expect("session cookie");
    let home = setup.url("/");

    let mut chars: Vec<char> = cookie.chars().collect();
    let mid = chars.len() / 2;
    chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    for bad in [tampered.as_str(), "Zm9yZWlnbi1jb29raWU", "", "%%%", &"A".repeat(5000)] {
        let probe = Browser::new();
        probe.set_cookie(&home, "__Host-oidc_session", bad);
        let page = &probe.navigate(&home).await[0];
        assert_eq!(
            page.status,
            302,
            "bad cookie {:?} → new login, never 500",
            &bad[..bad.len().min(20)]
        );
        assert!(page
            .location()
            .is_some_and(|l| l.as_str().starts_with(&setup.idp.issuer)));
    }

    // Sign out, then replay the old cookie: the session is gone everywhere.
    let out = b.navigate(&setup.url("/oauth2/sign_out")).await;
    assert_eq!(out[0].status, 200, "sign-out page");
    assert!(out[0]
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("__Host-oidc_session=;") && c.contains("Max-Age=0")));
    assert!(
        out[0].body.contains("id_token_hint") && out[0].body.contains("/session/end"),
        "{}",
        out[0].body
    );
    assert!(
        !out[0].url.as_str().contains("id_token_hint"),
        "the ID token never goes in a URL"
    );
    let replay = Browser::new();
    replay.set_cookie(&home, "__Host-oidc_session", &cookie);
    assert_eq!(
        replay.navigate(&home).await[0].status,
        302,
        "an ended session means a new login"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_callbacks_get_400_with_the_trace_id() {
    let setup = Setup::start(Options::default()).await;
    // Run a real login up to the callback, without following it, to get a genuine state.
    let b = Browser::new();
    let pages = b.login(&setup.url("/"), "alice").await;
    let callback = pages
        .iter()
        .find(|p| p.url.path() == "/oauth2/callback")
        .expect("callback")
        .url
        .clone();
    let state = query(&callback, "state").expect("state");

    let cases = [
        ("/oauth2/callback?error=access_denied&state=x", "idp error"),
        ("/oauth2/callback?code=abc", "missing state"),
        (
            "/oauth2/callback?code=abc&state=forged-state-value-0123456789",
            "forged state",
        ),
        ("/oauth2/callback?state=abcdefghijklmnopqrstuvwxyz", "missing code"),
    ];
    for (i, (path, what)) in cases.iter().enumerate() {
        let trace = format!("cb-trace-{i}");
        let page = Browser::new()
            .request(
                "GET",
                &Url::parse(&setup.url(path)).expect("url"),
                None,
                &[("x-request-id", &trace)],
            )
            .await;
        assert_eq!(page.status, 400, "{what}");
        assert_traced(&page, &trace);
    }

    // Replayed callback (same code, same flow cookie restored): the IdP refuses the code.
    let replay = Browser::new();
    let flow_name = format!("__Host-oidc_flow_{}", &state[..16]);
    let flow = pages[0]
        .set_cookies()
        .into_iter()
        .find_map(|c| {
            c.strip_prefix(&format!("{flow_name}="))
                .map(|v| v.split(';').next().unwrap_or("").to_owned())
        })
        .expect("flow cookie");
    replay.set_cookie(&setup.url("/"), &flow_name, &flow);
    let page = replay
        .request("GET", &callback, None, &[("x-request-id", "replay-1")])
        .await;
    assert_eq!(page.status, 400, "replayed code: {}", page.body);
    assert_traced(&page, "replay-1");

    // A different `iss` in the response (RFC 9207 mix-up defence).
    let mut mixed = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "iss" {
                "https://evil.example".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    mixed.query_pairs_mut().clear().extend_pairs(pairs);
    let mix = Browser::new();
    mix.set_cookie(&setup.url("/"), &flow_name, &flow);
    let page = mix.request("GET", &mixed, None, &[("x-request-id", "mixup-1")]).await;
    assert_eq!(page.status, 400, "issuer mix-up: {}", page.body);
    assert_traced(&page, "mixup-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_idp_gives_a_gateway_error_page() {
    let setup = Setup::start(Options {
        dead_issuer: true,
        ..Options::default()
    })
    .await;
    let page = Browser::new()
        .request(
            "GET",
            &Url::parse(&setup.url("/")).expect("url"),
            None,
            &[("x-request-id", "idp-down-1")],
        )
        .await;
    assert_eq!(page.status, 503, "not discovered yet: {}", page.body);
    assert_traced(&page, "idp-down-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_login_redirects_never_leave_the_origin() {
    let setup = Setup::start(Options::default()).await;
    for evil in [
        "//evil.example/x",
        "/\\evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/%09/evil.example",
    ] {
        let b = Browser::new();
        let url = format!("http://127.0.0.1:{}{}", setup.envoy().port, evil);
        let pages = b.login(&url, "alice").await;
        let callback = pages
            .iter()
            .find(|p| p.url.path() == "/oauth2/callback")
            .expect("callback");
        let location = callback.header("location").expect("location");
        assert!(
            location.starts_with('/') && !location.starts_with("//") && !location.starts_with("/\\"),
            "{evil} → {location}"
        );
        let landed = last(&pages);
        assert_eq!(
            landed.url.host_str(),
            Some("127.0.0.1"),
            "{evil} landed on {}",
            landed.url
        );
        assert_eq!(landed.url.port(), Some(setup.envoy().port));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_rules_and_public_routes() {
    let setup = Setup::start(Options::default()).await;
    let bob = logged_in(&setup, "bob", "/").await;
    let admin = Url::parse(&setup.url("/admin/panel")).expect("url");
    let page = bob.request("GET", &admin, None, &[("x-request-id", "bob-admin")]).await;
    assert_eq!(page.status, 403, "bob is not in admins");
    assert_traced(&page, "bob-admin");
    let alice = logged_in(&setup, "alice", "/").await;
    assert_eq!(alice.request("GET", &admin, None, &[]).await.status, 200, "alice is");
    let anon = Browser::new();
    assert_eq!(
        anon.navigate(&setup.url("/public/readme")).await[0].status,
        200,
        "per-route disable"
    );
    assert_eq!(anon.navigate(&setup.url("/private")).await[0].status, 302);
}

/// Several hosts on one filter: a login started at a host in `redirect_hosts` comes back
/// to that host (its own redirect URI, checked by the IdP at the code exchange); the
/// request's host is not trusted beyond the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_allowed_host_logs_in_with_its_own_redirect_uri() {
    let setup = Setup::start(Options {
        localhost_too: true,
        ..Options::default()
    })
    .await;
    let port = setup.envoy().port;
    for host in ["127.0.0.1", "localhost"] {
        let b = Browser::new();
        let pages = b.login(&format!("http://{host}:{port}/deep"), "alice").await;
        let auth = pages[0].location().expect("to the IdP");
        assert_eq!(
            query(&auth, "redirect_uri"),
            Some(format!("http://{host}:{port}/oauth2/callback")),
            "{host}"
        );
        assert_eq!(seen(&pages).header("x-auth-request-user").as_deref(), Some("alice"));
        assert_eq!(last(&pages).url.host_str(), Some(host));
    }
    // A host not in the list gets the configured redirect URI, not its own.
    let page = Browser::new()
        .request(
            "GET",
            &Url::parse(&setup.url("/x")).expect("url"),
            None,
            &[("host", "evil.example")],
        )
        .await;
    let auth = page.location().expect("to the IdP");
    assert_eq!(query(&auth, "redirect_uri"), Some(setup.url("/oauth2/callback")));
}
