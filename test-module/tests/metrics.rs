//! Module-defined metrics in Envoy's `/stats/prometheus`.

mod support;

use std::time::Duration;

use support::{client, eventually, Echo, Listeners};

fn value_of(prom: &str, series: &str) -> Option<f64> {
    prom.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_histograms_show_the_values_driven() {
    let echo = Echo::start().await;
    let envoy = support::start("{}", echo.port, Listeners::Static).await;
    for observe in [7, 42, 300] {
        let resp = client()
            .get(envoy.url(&format!("/probe/metrics?inc=5&observe={observe}")))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
    }
    let flushed = eventually(Duration::from_secs(10), || async {
        let prom = envoy.admin_get("/stats/prometheus").await.unwrap_or_default();
        value_of(&prom, "envoy_dynamicmodulescustom_probe_values_count{}") == Some(3.0)
    })
    .await;
    let prom = envoy.admin_get("/stats/prometheus").await.expect("stats");
    assert!(flushed, "histogram count reached 3:\n{prom}");
    assert_eq!(
        value_of(&prom, "envoy_dynamicmodulescustom_probe_requests{}"),
        Some(15.0)
    );
    assert_eq!(
        value_of(&prom, "envoy_dynamicmodulescustom_probe_labeled{kind=\"alpha\"}"),
        Some(15.0)
    );
    let sum = value_of(&prom, "envoy_dynamicmodulescustom_probe_values_sum{}").expect("sum");
    assert!((sum - 349.0).abs() < 10.0, "histogram sum {sum} ≈ 349");
    assert_eq!(
        value_of(&prom, "envoy_dynamicmodulescustom_probe_values_bucket{le=\"10\"}"),
        Some(1.0)
    );
    assert_eq!(
        value_of(&prom, "envoy_dynamicmodulescustom_probe_values_bucket{le=\"50\"}"),
        Some(2.0)
    );
}
