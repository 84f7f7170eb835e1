//! Two Envoy instances sharing one Redis: refresh happens once, logouts reach both.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{eventually, first_form, logged_in, seen, Browser, Options, Setup};

const COOKIE: &str = "__Host-oidc_session";

async fn two_replicas(access_ttl_secs: u64) -> Setup {
    Setup::start(Options {
        instances: 2,
        redis: true,
        access_ttl_secs,
        extra: json!({"refresh": {"leeway_secs": 3}, "session": {"cache_ttl_secs": 60}}),
        ..Options::default()
    })
    .await
}

/// A browser on replica B carrying the session cookie issued by replica A.
fn on_b(setup: &Setup, a: &Browser) -> Browser {
    let cookie = a.cookie(&setup.url("/"), COOKIE).expect("session cookie");
    let b = Browser::new();
    b.set_cookie(&setup.envoys[1].url("/"), COOKIE, &cookie);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_refresh_happens_once_for_20_concurrent_requests_across_two_instances() {
    let setup = two_replicas(6).await;
    let a = logged_in(&setup, "alice", "/").await;
    let b = on_b(&setup, &a);
    assert_eq!(
        seen(&b.navigate(&setup.envoys[1].url("/")).await)
            .header("x-auth-request-user")
            .as_deref(),
        Some("alice")
    );
    assert_eq!(setup.idp.stats().await["refresh_grants"], 0);

    // The access token (6 s) is due once fewer than 3 s are left.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let a = std::sync::Arc::new(a);
    let b = std::sync::Arc::new(b);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (browser, url) = if i % 2 == 0 {
            (a.clone(), setup.url("/"))
        } else {
            (b.clone(), setup.envoys[1].url("/"))
        };
        tasks.push(tokio::spawn(async move { browser.navigate(&url).await }));
    }
    for t in tasks {
        let pages = t.await.expect("join");
        assert_eq!(
            seen(&pages).header("x-auth-request-user").as_deref(),
            Some("alice"),
            "every request is served"
        );
    }
    assert_eq!(
        setup.idp.stats().await["refresh_grants"],
        1,
        "exactly one refresh at the IdP:\n{}",
        setup.idp.log()
    );
    let mut refreshed = 0.0;
    for e in &setup.envoys {
        refreshed += e
            .prometheus_value("envoy_dynamicmodulescustom_oidc_refreshes{result=\"refreshed\"}")
            .await
            .unwrap_or(0.0);
    }
    assert_eq!(refreshed, 1.0, "one instance reports the refresh, the rest share it");

    // Rotation worked: the stored refresh token is the new one, so the next refresh succeeds too.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(
        seen(&b.navigate(&setup.envoys[1].url("/")).await)
            .header("x-auth-request-user")
            .as_deref(),
        Some("alice")
    );
    assert_eq!(setup.idp.stats().await["refresh_grants"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_on_one_instance_ends_the_session_on_both() {
    let setup = two_replicas(3600).await;
    let a = logged_in(&setup, "alice", "/").await;
    let b = on_b(&setup, &a);
    let b_url = setup.envoys[1].url("/");
    assert_eq!(
        b.navigate(&b_url).await[0].status,
        200,
        "b serves the session (now cached there)"
    );

    let out = a.navigate(&setup.url("/oauth2/sign_out")).await;
    assert_eq!(out[0].status, 200);
    let ended = eventually(Duration::from_secs(5), || async {
        b.navigate(&b_url).await[0].status == 302
    })
    .await;
    assert!(ended, "replica b dropped the signed-out session");
    assert_eq!(a.navigate(&setup.url("/")).await[0].status, 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_back_channel_logout_ends_the_session_on_both() {
    let setup = two_replicas(3600).await;
    let a = logged_in(&setup, "alice", "/").await;
    let b = on_b(&setup, &a);
    let b_url = setup.envoys[1].url("/");
    assert_eq!(b.navigate(&b_url).await[0].status, 200);

    // The user logs out at the IdP itself (another app's logout, say): the IdP then calls
    // our back-channel endpoint with a signed logout token.
    let end = a.navigate(&format!("{}/session/end", setup.idp.issuer)).await;
    let confirm = end.last().expect("confirm page");
    let (action, mut fields) =
        first_form(confirm).unwrap_or_else(|| panic!("logout confirmation form:\n{}", confirm.body));
    fields.push(("logout".into(), "yes".into()));
    let done = a.request("POST", &action, Some(&fields), &[]).await;
    assert!(done.status < 400, "IdP logout: {} {}", done.status, done.body);

    let sent = eventually(Duration::from_secs(5), || async {
        setup.idp.stats().await["backchannel_sent"] == 1
    })
    .await;
    assert!(
        sent,
        "IdP delivered the logout token: {}\n{}",
        setup.idp.stats().await,
        setup.idp.log()
    );
    let ended = eventually(Duration::from_secs(5), || async {
        b.navigate(&b_url).await[0].status == 302 && a.navigate(&setup.url("/")).await[0].status == 302
    })
    .await;
    assert!(ended, "both replicas ended the session");
    let ok = setup
        .envoy()
        .prometheus_value("envoy_dynamicmodulescustom_oidc_backchannel_logouts{result=\"ok\"}")
        .await;
    assert_eq!(ok, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_logout_tokens_are_refused() {
    let setup = Setup::start(Options::default()).await;
    let c = support::client();
    let t = session_store::unix_now();
    let no_event = setup.idp.mint(json!({"iss": setup.idp.issuer, "aud": support::CLIENT_ID, "sub": "alice", "iat": t, "exp": t + 60, "jti": "1"})).await;
    for (what, body) in [
        ("no token", "x=1".to_owned()),
        ("garbage", "logout_token=abc".to_owned()),
        ("no event claim", format!("logout_token={no_event}")),
    ] {
        let r = c
            .post(setup.url("/oauth2/backchannel_logout"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "{what}");
    }
    let r = c
        .get(setup.url("/oauth2/backchannel_logout"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400, "GET is not a logout");
}
