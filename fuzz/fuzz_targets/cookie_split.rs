//! Cookie header lines → our cookies and what the upstream keeps.
#![no_main]

use envoy_oidc::config::{CookieSettings, SameSite};
use envoy_oidc::http::cookies;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let settings = CookieSettings {
        name: "__Host-oidc_session".into(),
        flow_prefix: "__Host-oidc_flow_".into(),
        secure: true,
        same_site: SameSite::Lax,
    };
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let found = cookies::find(&lines, &settings.name);
    match cookies::split_ours(&lines, &settings) {
        Some(split) => {
            // The session value found is the one `find` sees, and nothing of ours goes on.
            assert_eq!(split.session, found);
            if let Some(rest) = &split.rest {
                for pair in rest.split("; ") {
                    let name = pair.split('=').next().unwrap_or("").trim();
                    assert!(name != settings.name && !name.starts_with(&settings.flow_prefix), "{rest:?}");
                }
            }
        }
        None => assert!(found.is_none(), "a session cookie was found but not split out"),
    }
});
