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
        max_login_flows: 3,
        domain: None,
    };
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let found = cookies::find(&lines, &settings.name);
    match cookies::split_ours(&lines, &settings, &[]) {
        Some(split) => {
            // The session value is the one `find` sees (or empty when it is not text).
            match found {
                Some(v) => assert_eq!(split.session, Some(v)),
                None => assert!(split.session.is_none_or(str::is_empty)),
            }
            // Nothing of ours goes on, however the header was spelled.
            if let Some(rest) = &split.rest {
                let again = [rest.as_slice()];
                for (name, _) in cookies::pairs(&again) {
                    assert!(name != settings.name.as_bytes(), "session cookie kept: {rest:?}");
                    assert!(
                        !name.starts_with(settings.flow_prefix.as_bytes()),
                        "flow cookie kept: {rest:?}"
                    );
                }
            }
            assert!(split.flows.iter().all(|f| f.starts_with(&settings.flow_prefix)));
        }
        None => assert!(found.is_none(), "a session cookie was found but not split out"),
    }
});
