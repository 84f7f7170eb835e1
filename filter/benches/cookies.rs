//! The session check's cookie step, two ways: our one-pass split of the `cookie` lines
//! (find ours, rebuild the rest) against the `cookie` crate's parser doing the same job.
//! Run: `cargo bench -p envoy-oidc --bench cookies`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use envoy_oidc::config::{CookieSettings, SameSite};
use envoy_oidc::http::cookies::split_ours;

fn settings() -> CookieSettings {
    CookieSettings {
        name: "__Host-oidc_session".into(),
        flow_prefix: "__Host-oidc_flow_".into(),
        secure: true,
        same_site: SameSite::Lax,
        max_login_flows: 3,
        domain: None,
    }
}

/// A browser's header: analytics and app cookies around ours.
const LINE: &[u8] = b"_ga=GA1.1.123456789.1700000000; theme=dark; \
__Host-oidc_session=AQEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; \
lang=en-GB; _gid=GA1.1.987654321.1700000000";

/// Our split, with the session value owned as the filter keeps it.
fn with_ours(lines: &[&[u8]], s: &CookieSettings) -> (Option<String>, Option<Vec<u8>>) {
    match split_ours(lines, s, &[]) {
        Some(split) => (split.session.map(str::to_owned), split.rest),
        None => (None, None),
    }
}

/// The same job with `cookie::Cookie::split_parse`.
fn with_cookie_crate(lines: &[&[u8]], s: &CookieSettings) -> (Option<String>, Option<Vec<u8>>) {
    let mut session = None;
    let mut rest = Vec::new();
    for line in lines {
        let Ok(line) = std::str::from_utf8(line) else { continue };
        for c in cookie::Cookie::split_parse(line).flatten() {
            let (name, value) = c.name_value_trimmed();
            if name == s.name {
                session.get_or_insert_with(|| value.to_owned());
            } else if !name.starts_with(&s.flow_prefix) {
                rest.push(format!("{name}={value}"));
            }
        }
    }
    (session, (!rest.is_empty()).then(|| rest.join("; ").into_bytes()))
}

fn bench(c: &mut Criterion) {
    let s = settings();
    let lines: Vec<&[u8]> = vec![LINE];
    assert_eq!(with_ours(&lines, &s), with_cookie_crate(&lines, &s), "the same answer");
    c.bench_function("cookies/split_ours", |b| {
        b.iter(|| with_ours(black_box(&lines), black_box(&s)))
    });
    c.bench_function("cookies/cookie_crate", |b| {
        b.iter(|| with_cookie_crate(black_box(&lines), black_box(&s)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
