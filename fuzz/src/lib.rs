//! What the fuzz targets share: the filter's fake IdP and harness (the unit tests' own,
//! included rather than copied), built once per fuzzing process.

use std::sync::OnceLock;

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../filter/tests/fakes/mod.rs"]
pub mod fakes;

/// A gateway on the fake IdP, discovery done: shared by every input of a process.
pub fn harness() -> &'static fakes::Harness {
    static H: OnceLock<fakes::Harness> = OnceLock::new();
    H.get_or_init(|| fakes::Harness::new(serde_json::json!({"bearer": {"enabled": true}})))
}

/// Splits fuzz input into `n` parts at `\n` (the last takes the rest).
pub fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |b| *b == b'\n').collect();
    out.resize(n, &[]);
    out
}
