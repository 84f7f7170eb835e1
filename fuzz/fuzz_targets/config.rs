//! The filter config (JSON, from Envoy, with its `idps`) and the per-route config.
#![no_main]

use envoy_oidc::config::{parse_all, RouteSettings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_all(data);
    let _ = RouteSettings::parse(data);
});
