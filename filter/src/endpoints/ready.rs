//! Readiness: 200 once the IdP has been discovered, 503 before (with why), for load
//! balancers and Kubernetes probes. The body and two gauges also show how many tasks are
//! alive on the module's runtime: background work of every live config plus requests in
//! flight, so a config reload that leaks tasks shows as a number that only grows.

use async_filter::LocalReply;

use crate::decide::{Decision, Verdict};
use crate::gateway::Gateway;
use crate::metrics::Metric;

/// The probe's answer.
pub fn reply(gw: &Gateway) -> Decision {
    let ready = gw.provider.current().is_some();
    let idp = match (ready, gw.provider.has_failed()) {
        (true, _) => "discovered",
        (false, true) => "unreachable",
        (false, false) => "discovering",
    };
    let tasks = async_filter::runtime().map_or(0, |rt| rt.metrics().num_alive_tasks()) as u64;
    let body = serde_json::json!({"ready": ready, "identity_provider": idp, "runtime_tasks": tasks});
    let reply = LocalReply {
        status: if ready { 200 } else { 503 },
        headers: vec![
            ("content-type".into(), b"application/json".to_vec()),
            ("cache-control".into(), b"no-store".to_vec()),
        ],
        body: body.to_string().into_bytes(),
        details: "oidc_ready".into(),
    };
    Decision::counting(Verdict::Reply(reply), Metric::Health { ready, tasks })
}
