//! The login callback's synchronous checks: query string and cookie lines, as a client
//! sends them. Without a flow cookie sealed by us nothing passes.
#![no_main]

use envoy_oidc::endpoints::callback;
use envoy_oidc_fuzz::{harness, parts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [query, cookie] = parts(data, 2)[..] else { return };
    let Ok(query) = std::str::from_utf8(query) else { return };
    let h = harness();
    let path = format!("/oauth2/callback?{query}");
    let lines = [cookie];
    assert!(callback::check(&h.gw, &path, &lines, h.now()).is_err());
});
