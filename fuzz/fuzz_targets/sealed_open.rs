//! A session cookie's value (sealed ticket) and a flow cookie's value, opened.
#![no_main]

use envoy_oidc::oidc::login::FlowState;
use envoy_oidc_fuzz::harness;
use libfuzzer_sys::fuzz_target;
use session_store::Check;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else { return };
    let h = harness();
    let now = h.now();
    // Forged values never open: only our own seal does.
    assert!(matches!(h.gw.sessions.check(value, now), Check::Invalid(_)));
    let opened =
        h.gw.sessions
            .sealer()
            .open::<FlowState>("__Host-oidc_flow_AAAAAAAAAAAAAAAA", value, now);
    assert!(opened.is_err());
});
