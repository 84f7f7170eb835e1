//! A back-channel logout POST body → form parsing → logout-token verification. Nothing
//! forged ends a session.
#![no_main]

use envoy_oidc::decide::Verdict;
use envoy_oidc::endpoints::backchannel;
use envoy_oidc_fuzz::harness;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let decision = rt.block_on(backchannel::run(
        &h.gw,
        data,
        Some(b"application/x-www-form-urlencoded"),
    ));
    assert!(matches!(decision.verdict, Verdict::Fail(_)), "{:?}", decision.verdict);
});
