//! `Authorization` → the bearer token → access-token verification against the IdP's keys.
#![no_main]

use envoy_oidc::http::bearer_token;
use envoy_oidc::oidc::tokens;
use envoy_oidc_fuzz::harness;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(token) = bearer_token(data) else { return };
    assert!(!token.is_empty() && !token.contains([' ', '\r', '\n']));
    let h = harness();
    let provider = h.gw.provider.current().expect("discovered");
    let s = &h.gw.settings;
    let verified = tokens::Verifier::new(&provider, &s.provider).access_token(token, &s.bearer);
    assert!(verified.is_err(), "a forged token verified");
});
