//! Disconnects, config reloads, deadlines and overload, through a real Envoy 1.40.

mod support;

use std::time::{Duration, Instant};

use support::{client, eventually, Echo, Listeners};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnected_clients_cancel_their_tasks() {
    let echo = Echo::start().await;
    let mut envoy = support::start(
        r#"{"deadline_ms": 60000, "max_in_flight": 1000}"#,
        echo.port,
        Listeners::Static,
    )
    .await;
    let mut sockets = Vec::new();
    for i in 0..200 {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", envoy.port))
            .await
            .expect("connect");
        let req = format!("GET /async/continue?ms=30000 HTTP/1.1\r\nhost: x\r\nx-request-id: gone-{i}\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.expect("write");
        sockets.push(tcp);
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            support::in_flight(&envoy).await == 200
        })
        .await,
        "all 200 tasks started (in flight: {})",
        support::in_flight(&envoy).await
    );
    drop(sockets);
    // The tasks sleep 30 s: reaching 0 quickly proves the destroy hook cancelled them.
    let started = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || async {
            support::in_flight(&envoy).await == 0
        })
        .await,
        "tasks still in flight: {}",
        support::in_flight(&envoy).await
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(envoy.alive(), "envoy survived 200 disconnects");
    let resp = client().get(envoy.url("/sync/edit")).send().await.expect("healthy");
    assert_eq!(resp.status(), 200);
    assert!(!envoy.log().contains("panic"), "no panic in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reload_with_tasks_in_flight() {
    let echo = Echo::start().await;
    let mut envoy = support::start(r#"{"deadline_ms": 10000}"#, echo.port, Listeners::File).await;
    let c = client();
    let url = envoy.url("/async/continue?ms=1500");
    let in_flight: Vec<_> = (0..50)
        .map(|i| {
            let req = c.get(&url).header("x-request-id", format!("reload-{i}"));
            tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(5), || async {
            support::in_flight(&envoy).await == 50
        })
        .await
    );

    // The new listener has a 100 ms deadline, so its behaviour is observably different.
    support::reload(&envoy, r#"{"deadline_ms": 100}"#);
    let reloaded = eventually(Duration::from_secs(10), || async {
        envoy
            .admin_get("/stats?filter=listener_manager.lds.update_success")
            .await
            .is_ok_and(|s| s.contains("update_success: 2"))
    })
    .await;
    assert!(reloaded, "LDS update applied:\n{}", envoy.log());

    for (i, h) in in_flight.into_iter().enumerate() {
        assert_eq!(
            h.await.expect("join").expect("in-flight request finished"),
            200,
            "request {i} survived the reload"
        );
    }
    assert!(envoy.alive());
    envoy.port = envoy.listener_port().await.expect("listener after the reload");
    let resp = client()
        .get(envoy.url("/async/continue?ms=1000"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 504, "the new config is in force");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_gives_504() {
    let echo = Echo::start().await;
    let envoy = support::start(r#"{"deadline_ms": 200}"#, echo.port, Listeners::Static).await;
    let started = Instant::now();
    let resp = client()
        .get(envoy.url("/async/continue?ms=5000"))
        .header("x-request-id", "slow-1")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the deadline cut the 5 s task"
    );
    assert!(resp.text().await.expect("body").contains("trace id: slow-1"));
    assert_eq!(support::in_flight(&envoy).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_past_the_bound_gives_a_fast_503() {
    let echo = Echo::start().await;
    let envoy = support::start(
        r#"{"deadline_ms": 20000, "max_in_flight": 20}"#,
        echo.port,
        Listeners::Static,
    )
    .await;
    let c = client();
    let holders: Vec<_> = (0..20)
        .map(|_| {
            let req = c.get(envoy.url("/async/continue?ms=2000"));
            tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(5), || async {
            support::in_flight(&envoy).await == 20
        })
        .await
    );
    let started = Instant::now();
    let resp = c
        .get(envoy.url("/async/continue?ms=10"))
        .header("x-request-id", "over-1")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 503);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "rejected at once, not queued"
    );
    assert!(resp.text().await.expect("body").contains("over-1"));
    for h in holders {
        assert_eq!(
            h.await.expect("join").expect("send"),
            200,
            "requests within the bound are served"
        );
    }
    assert_eq!(
        c.get(envoy.url("/async/continue?ms=10"))
            .send()
            .await
            .expect("send")
            .status(),
        200,
        "capacity is back"
    );
}

#[test]
fn invalid_config_is_rejected_with_the_module_message() {
    let yaml = support::static_bootstrap(r#"{"deadline_ms": "soon", "bogus": 1}"#, 1);
    let (accepted, text) = testkit::envoy::validate(&yaml, &support::module_dir());
    assert!(!accepted, "a bad config must be rejected:\n{text}");
    assert!(
        text.contains("invalid probe config"),
        "the module's message is in Envoy's output:\n{text}"
    );
}
