//! The filter config (JSON, from Envoy) and the per-route config.
#![no_main]

use envoy_oidc::config::{RouteSettings, Settings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Settings::parse(data);
    let _ = RouteSettings::parse(data);
});
