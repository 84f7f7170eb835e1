//! Synchronous and asynchronous request paths through a real Envoy 1.40.

mod support;

use futures::future::join_all;
use support::{client, Echo, Listeners, Seen};

const CONFIG: &str = r#"{"deadline_ms": 5000, "max_in_flight": 1000}"#;

async fn seen(resp: reqwest::Response) -> Seen {
    Seen(resp.json().await.expect("echo json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_header_edits_reach_the_upstream() {
    let echo = Echo::start().await;
    let envoy = support::start(CONFIG, echo.port, Listeners::Static).await;
    let resp = client()
        .get(envoy.url("/sync/edit"))
        .header("x-remove-me", "spoof")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-probe-response"], "seen", "response-headers hook ran");
    let s = seen(resp).await;
    assert_eq!(s.header("x-probe-sync").as_deref(), Some("edited"));
    assert_eq!(s.header_values("x-probe-multi"), vec!["one", "two"]);
    assert_eq!(s.header("x-remove-me"), None);

    let s = seen(client().get(envoy.url("/sync/rewrite")).send().await.expect("send")).await;
    assert_eq!(
        s.path(),
        "/rewritten?from=sync",
        "setting :path rewrites what the upstream sees"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_envoy_runs_inside_another_is_skipped() {
    let echo = Echo::start().await;
    let envoy = support::start(CONFIG, echo.port, Listeners::Static).await;
    // `continue_decoding` from `on_scheduled` lets the router answer at once (no host):
    // Envoy then runs the response-headers hook while `on_scheduled` is still on the
    // stack. That nested call must not get a second `&mut` to the filter: it is skipped
    // (before the guard it ran, and its header showed it).
    let resp = client()
        .get(envoy.url("/async/continue/nowhere"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 503, "the router's own answer");
    assert!(
        resp.headers().get("x-probe-response").is_none(),
        "a hook ran inside another hook of the same filter"
    );
    // The next request on the same filter config is served normally.
    let resp = client().get(envoy.url("/sync/edit")).send().await.expect("send");
    assert_eq!(resp.headers()["x-probe-response"], "seen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_local_reply_carries_status_body_and_two_cookies() {
    let echo = Echo::start().await;
    let envoy = support::start(CONFIG, echo.port, Listeners::Static).await;
    let resp = client().get(envoy.url("/sync/reply")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
    let cookies: Vec<_> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(cookies, vec!["a=1; Path=/", "b=2; Path=/; HttpOnly"]);
    assert_eq!(resp.text().await.expect("body"), "local reply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_continue_with_edits_under_200_concurrent_requests() {
    let echo = Echo::start().await;
    let envoy = support::start(CONFIG, echo.port, Listeners::Static).await;
    let c = client();
    let futs: Vec<_> = (0..200)
        .map(|i| {
            let req = c
                .get(envoy.url(&format!("/async/continue?ms={}", 5 + i % 20)))
                .header("x-request-id", format!("req-{i}"))
                .header("x-remove-me", "x");
            async move {
                let resp = req.send().await.expect("send");
                (i, resp.status().as_u16(), resp.json::<serde_json::Value>().await.ok())
            }
        })
        .collect();
    for (i, status, body) in join_all(futs).await {
        assert_eq!(status, 200, "request {i}");
        let s = Seen(body.expect("echo json"));
        assert_eq!(
            s.header("x-probe-async"),
            Some(format!("req-{i}")),
            "request {i} got its own edit"
        );
        assert_eq!(s.header("x-remove-me"), None);
    }
    assert_eq!(support::in_flight(&envoy).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_local_reply_under_200_concurrent_requests() {
    let echo = Echo::start().await;
    let envoy = support::start(CONFIG, echo.port, Listeners::Static).await;
    let c = client();
    let futs: Vec<_> = (0..200)
        .map(|i| {
            let req = c
                .get(envoy.url(&format!("/async/redirect?ms={}", i % 15)))
                .header("x-request-id", format!("r{i}"));
            async move {
                let resp = req.send().await.expect("send");
                let location = resp
                    .headers()
                    .get("location")
                    .map(|v| v.to_str().unwrap_or("").to_owned());
                let cookies: Vec<String> = resp
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .map(|v| v.to_str().unwrap_or("").to_owned())
                    .collect();
                (i, resp.status().as_u16(), location, cookies)
            }
        })
        .collect();
    for (i, status, location, cookies) in join_all(futs).await {
        assert_eq!(status, 302, "request {i}");
        assert_eq!(location, Some(format!("/landing?trace=r{i}")));
        assert_eq!(
            cookies,
            vec!["session=s1; Path=/; HttpOnly", "flow=; Path=/; Max-Age=0"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_become_500_with_trace_id_and_envoy_keeps_serving() {
    let echo = Echo::start().await;
    let mut envoy = support::start(CONFIG, echo.port, Listeners::Static).await;
    for (path, trace) in [("/sync/panic", "sync-panic-1"), ("/async/panic?ms=5", "async-panic-1")] {
        let resp = client()
            .get(envoy.url(path))
            .header("x-request-id", trace)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 500, "{path}");
        let body = resp.text().await.expect("body");
        assert!(body.contains(&format!("trace id: {trace}")), "{path}: body {body:?}");
        assert!(envoy.alive(), "envoy survived {path}");
        let next = client()
            .get(envoy.url("/sync/edit"))
            .send()
            .await
            .expect("next request");
        assert_eq!(next.status(), 200, "envoy serves the request after {path}");
    }
    let log = envoy.log();
    assert!(
        log.contains("trace_id=async-panic-1") && log.contains("async task panicked"),
        "log carries the trace id:\n{log}"
    );
    assert!(
        log.contains("deliberate panic in request headers"),
        "sync panic is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_accessors_work_inside_envoy() {
    let echo = Echo::start().await;
    let envoy = support::start(CONFIG, echo.port, Listeners::Static).await;
    // reqwest folds cookies into one line, so send two `cookie` lines over raw HTTP/1.1.
    let raw = "GET /probe/echo/tagged HTTP/1.1\r\nhost: x\r\ncookie: a=1\r\ncookie: b=2\r\nx-request-id: echo-1\r\nconnection: close\r\n\r\n";
    let text = raw_request(envoy.port, raw).await;
    assert!(text.contains("cookies=a=1 | b=2"), "every cookie line: {text}");
    assert!(text.contains("tag=blue"), "per-route config: {text}");
    assert!(text.contains("metadata=alice"), "dynamic metadata round trip: {text}");
    assert!(
        text.contains("filter_state=kept stored=true"),
        "filter state round trip: {text}"
    );
    assert!(text.contains("trace=echo-1"), "trace id: {text}");
    assert!(
        text.contains("worker=0") || text.contains("worker=1"),
        "worker index: {text}"
    );

    let untagged = client()
        .get(envoy.url("/probe/echo"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(untagged.contains("tag=none"), "{untagged}");

    let body = client()
        .post(envoy.url("/probe/body"))
        .body("hello body")
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert_eq!(body, "body=hello body");
}

async fn raw_request(port: u16, raw: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    tcp.write_all(raw.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.expect("read");
    String::from_utf8_lossy(&out).into_owned()
}
