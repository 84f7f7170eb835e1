//! Faults through real processes: the IdP down at start, Redis killed and restarted
//! under load, listener reloads with requests in flight (no task left behind).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{json, Value};
use support::{assert_traced, client, eventually, logged_in, seen, Browser, Options, Setup};
use url::Url;

async fn ready(setup: &Setup) -> (u16, Value) {
    let r = client().get(setup.url("/oauth2/ready")).send().await.expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_down_at_start_is_a_fast_503_and_not_ready_until_discovery() {
    let mut setup = Setup::start(Options {
        idp_down_at_start: true,
        ..Options::default()
    })
    .await;
    let unreachable = eventually(Duration::from_secs(5), || async {
        ready(&setup).await.1["identity_provider"] == "unreachable"
    })
    .await;
    assert!(unreachable, "readiness names the cause");
    let (status, body) = ready(&setup).await;
    assert_eq!((status, &body["ready"]), (503, &json!(false)));
    // Past the start-up grace (a second of failing), no request waits for the IdP.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..3 {
        let started = Instant::now();
        let page = Browser::new()
            .request(
                "GET",
                &Url::parse(&setup.url(&format!("/page/{i}"))).expect("url"),
                None,
                &[],
            )
            .await;
        assert_eq!(page.status, 503, "{}", page.body);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a fast answer, not a wait: {:?}",
            started.elapsed()
        );
        assert_traced(&page, "");
    }
    setup.idp.start_again().await;
    let up = eventually(Duration::from_secs(20), || async { ready(&setup).await.0 == 200 }).await;
    assert!(up, "ready once the IdP answers:\n{}", setup.envoy().log());
    logged_in(&setup, "alice", "/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load() {
    let mut setup = Setup::start(Options {
        redis: true,
        ..Options::default()
    })
    .await;
    let alice = logged_in(&setup, "alice", "/").await;
    let cookie = alice.cookie(&setup.url("/"), "__Host-oidc_session").expect("session");
    // Alice keeps working the whole time (bounded: at most 30 s).
    let stop = Arc::new(AtomicBool::new(false));
    // Marks the requests sent while Redis is down.
    let down = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, down, url) = (stop.clone(), down.clone(), setup.url("/work"));
        let cookie = format!("__Host-oidc_session={cookie}");
        tokio::spawn(async move {
            let (http, started) = (client(), Instant::now());
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                let during = down.load(Ordering::Relaxed);
                let r = http.get(&url).header("cookie", &cookie).send().await.expect("send");
                statuses.push((during, r.status().as_u16()));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    setup.redis.as_mut().expect("redis").stop();
    down.store(true, Ordering::Relaxed);
    // A new login cannot be stored: a 503 page with the trace id, quickly.
    let pages = Browser::new().login(&setup.url("/"), "bob").await;
    let last = pages.last().expect("page");
    assert_eq!(last.status, 503, "{}", last.body);
    assert_traced(last, "");
    down.store(false, Ordering::Relaxed);
    setup.redis.as_mut().expect("redis").restart();
    // Recovery without restarting Envoy.
    let recovered = eventually(Duration::from_secs(15), || async {
        let pages = Browser::new().login(&setup.url("/"), "bob").await;
        pages.last().is_some_and(|p| p.status == 200)
    })
    .await;
    assert!(recovered, "logins work again:\n{}", setup.envoy().log());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let statuses = load.await.expect("load");
    let during: Vec<u16> = statuses.iter().filter(|(d, _)| *d).map(|(_, s)| *s).collect();
    assert!(!during.is_empty(), "the load ran through the outage");
    assert!(
        during.iter().all(|s| *s == 200),
        "the cached session served while Redis was down: {during:?}"
    );
    // This Redis restarts empty (a crash without persistence): once the caches learn of
    // the lost subscription and flush, alice's session is gone (401), never a 5xx.
    let errors: Vec<_> = statuses.iter().filter(|(_, s)| *s >= 500).collect();
    assert!(errors.is_empty(), "no 5xx at any point: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_reloads_with_requests_in_flight_leave_no_task_behind() {
    let setup = Setup::start(Options {
        redis: true,
        lds: true,
        ..Options::default()
    })
    .await;
    let alice = logged_in(&setup, "alice", "/").await;
    let cookie = format!(
        "__Host-oidc_session={}",
        alice.cookie(&setup.url("/"), "__Host-oidc_session").expect("session")
    );
    let tasks = || async { ready(&setup).await.1["runtime_tasks"].as_u64().expect("tasks") };
    let before = tasks().await;
    let updates = || async {
        let stats = setup
            .envoy()
            .admin_get("/stats?filter=lds.update_success")
            .await
            .unwrap_or_default();
        stats
            .split(": ")
            .nth(1)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    for i in 0..5 {
        let done = updates().await;
        let http = client();
        let in_flight: Vec<_> = (0..200)
            .map(|_| http.get(setup.url("/work")).header("cookie", &cookie).send())
            .collect();
        setup.reload(&json!({"refresh": {"leeway_secs": 31 + i}}));
        let statuses: Vec<u16> = join_all(in_flight)
            .await
            .into_iter()
            .map(|r| r.expect("send").status().as_u16())
            .collect();
        assert!(statuses.iter().all(|s| *s == 200), "reload {i}: {statuses:?}");
        assert!(
            eventually(Duration::from_secs(10), || async { updates().await > done }).await,
            "reload {i} applied"
        );
        let pages = alice.navigate(&setup.url("/after")).await;
        assert_eq!(
            seen(&pages).header("x-auth-request-user").as_deref(),
            Some("alice"),
            "sessions survive (Redis)"
        );
    }
    let discovered = setup.envoy().log().matches("identity provider discovered").count();
    assert_eq!(discovered, 6, "each reload built a new filter config");
    let peak = tasks().await;
    eprintln!("runtime tasks: {before} before, {peak} right after 5 reloads");
    // Old configs drain (2 s here) and their tasks end: back to one config's worth.
    let settled = eventually(Duration::from_secs(15), || async { tasks().await <= before }).await;
    assert!(settled, "tasks {} after 5 reloads, {before} before", tasks().await);
    // The same figure as a gauge (set by each readiness probe).
    let gauge = setup
        .envoy()
        .prometheus_value("envoy_dynamicmodulescustom_oidc_runtime_tasks{}")
        .await
        .expect("gauge");
    assert!(gauge <= before as f64, "gauge {gauge}");
}

/// A browser that started a login: its flow cookie is in its jar; the callback URL it
/// would come back to with `code`.
async fn started_login(setup: &Setup, code: &str) -> (Browser, Url) {
    let b = Browser::new();
    let start = b
        .request("GET", &Url::parse(&setup.url("/app")).expect("url"), None, &[])
        .await;
    assert_eq!(start.status, 302, "{}", start.body);
    let to_idp = start.location().expect("location");
    let state = to_idp
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let mut callback = Url::parse(&setup.url("/oauth2/callback")).expect("url");
    callback
        .query_pairs_mut()
        .append_pair("code", code)
        .append_pair("state", &state)
        .append_pair("iss", &setup.idp.issuer);
    (b, callback)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_piling_up_at_a_stalled_idp_get_a_fast_busy_page() {
    let setup = Setup::start(Options {
        extra: json!({ "max_logins_in_flight": 4 }),
        ..Options::default()
    })
    .await;
    let mut flows = Vec::new();
    for i in 0..5 {
        flows.push(started_login(&setup, &format!("held-{i}")).await);
    }
    setup.idp.stall(2500).await;
    let held: Vec<_> = flows
        .drain(..3)
        .map(|(b, cb)| tokio::spawn(async move { b.request("GET", &cb, None, &[]).await.status }))
        .collect();
    // Three code exchanges wait at the IdP: from three quarters of the bound (3 of 4), a
    // new login gets the busy page at once, with when to come back and the trace id.
    let busy = eventually(Duration::from_secs(2), || async {
        let started = Instant::now();
        let page = Browser::new()
            .request(
                "GET",
                &Url::parse(&setup.url("/other")).expect("url"),
                None,
                &[("x-request-id", "busy-1")],
            )
            .await;
        if page.status != 503 {
            return false;
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        assert_traced(&page, "busy-1");
        assert!(page.body.contains("Too many sign-ins"), "{}", page.body);
        let retry: u32 = page
            .header("retry-after")
            .expect("retry-after")
            .parse()
            .expect("seconds");
        assert!((1..=4).contains(&retry));
        true
    })
    .await;
    assert!(busy, "a login start past the bound is refused");
    // Users already at the IdP still come back: a fourth exchange is taken...
    let (b4, cb4) = flows.remove(0);
    let fourth = tokio::spawn(async move { b4.request("GET", &cb4, None, &[]).await.status });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...and a fifth, past the bound itself, is refused at once.
    let (b5, cb5) = flows.remove(0);
    let started = Instant::now();
    let fifth = b5.request("GET", &cb5, None, &[]).await;
    assert_eq!(fifth.status, 503, "{}", fifth.body);
    assert!(started.elapsed() < Duration::from_millis(500));
    // The held ones end with the IdP's answer (it refuses the made-up codes: 400), within
    // the tests' 3 s IdP timeout.
    for h in held {
        assert_eq!(h.await.expect("join"), 400);
    }
    assert_eq!(fourth.await.expect("join"), 400);
    setup.idp.stall(0).await;
    logged_in(&setup, "alice", "/").await;
    let metrics = setup
        .envoy()
        .admin_get("/stats?filter=login_failed")
        .await
        .expect("stats");
    assert!(metrics.contains("logins_busy"), "{metrics}");
}
