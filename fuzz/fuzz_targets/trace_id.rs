//! `x-request-id` and `traceparent` → the trace id every log line and error page carries.
#![no_main]

use envoy_module::TraceId;
use envoy_oidc_fuzz::parts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [id, parent] = parts(data, 2)[..] else { return };
    let t = TraceId::from_headers(Some(id), Some(parent));
    let s = t.as_str();
    assert!(!s.is_empty() && s.len() <= 64, "{s:?}");
    assert!(
        s.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b)),
        "{s:?}"
    );
});
