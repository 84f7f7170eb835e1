//! `:path` → the normalised path rules see, the hidden-separator check, and the
//! same-origin post-login target.
#![no_main]

use envoy_oidc::http::path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let n = path::normalize(raw);
    assert!(n.starts_with('/'), "{n:?}");
    assert!(!n.contains("//"), "{n:?}");
    assert!(n.split(['/', '\\']).all(|s| s != ".." && s != "."), "{n:?}");
    let _ = path::hides_separators(raw);
    let target = path::same_origin_target(raw);
    if target != "/" {
        assert_eq!(target, raw);
        let b = target.as_bytes();
        assert!(b[0] == b'/' && !matches!(b.get(1), Some(b'/' | b'\\')), "{target:?}");
        assert!(!target.chars().any(|c| c.is_control() || c == '\\'), "{target:?}");
    }
});
