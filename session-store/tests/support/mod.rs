//! Fixtures shared by the store tests.
#![allow(dead_code, unused_imports)] // each test binary uses a subset

pub mod conformance;
pub mod load;
pub use testkit::redis_server;

use std::sync::Arc;
use std::time::Duration;

use session_store::{AccessToken, Claims, IdToken, KeyRing, Lifetimes, RefreshToken, Session, StoreKey, Tokens};

/// Token texts that must never appear in stored bytes.
pub const SECRET_TOKENS: [&str; 3] = [
    "ACCESS-plaintext-7f3a",
    "REFRESH-plaintext-91bc",
    "IDTOKEN-plaintext-c0de",
];

/// Bound of every call of a replicated group's store where the test times the store (a put
/// waits up to half of it for its replica).
pub const TIMEOUT: Duration = Duration::from_millis(500);

/// Bound where a replicated group's test checks what the store does, not how fast: on a
/// loaded 2-core CI machine a replica once went unscheduled for longer than the 250 ms a
/// put waits under [`TIMEOUT`], and the cluster's conformance run failed `NotReplicated`.
pub const RELAXED: Duration = Duration::from_secs(2);

pub fn key(n: u32) -> StoreKey {
    StoreKey::from_hex(&format!("{n:064x}")).expect("hex")
}

pub fn ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::from_secrets(&[[9u8; 32]]).expect("ring"))
}

pub fn session(subject: &str, sid: &str, now: u64) -> Session {
    let mut claims = Claims::default();
    claims.insert("email", vec![format!("{subject}@example.com")]);
    claims.insert("groups", vec!["admins".into(), "dev".into()]);
    Session::new(
        subject.into(),
        "https://idp.example".into(),
        Some(sid.into()),
        claims,
        Tokens {
            access: AccessToken::new(SECRET_TOKENS[0].into()),
            access_expires_at: Some(now + 300),
            refresh: Some(RefreshToken::new(SECRET_TOKENS[1].into())),
            id_token: Some(IdToken::new(SECRET_TOKENS[2].into())),
        },
        now,
        Lifetimes {
            absolute_secs: 3_600,
            idle_secs: 1_800,
        },
    )
}

/// True if `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}
