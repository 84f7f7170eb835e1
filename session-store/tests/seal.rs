//! The sealed-cookie codec: round trip, every tamper class, rotation.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use session_store::{KeyRing, OpenError, Sealer, MAX_SEALED_LEN};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Flow {
    state: String,
    verifier: String,
    original_url: String,
}

fn flow() -> Flow {
    Flow {
        state: "st-123".into(),
        verifier: "v".repeat(43),
        original_url: "/deep/page?q=1".into(),
    }
}

fn ring(seeds: &[u8]) -> Arc<KeyRing> {
    let secrets: Vec<[u8; 32]> = seeds.iter().map(|s| [*s; 32]).collect();
    Arc::new(KeyRing::from_secrets(&secrets).expect("ring"))
}

const NOW: u64 = 1_700_000_000;

#[test]
fn round_trip() {
    let s = Sealer::new(ring(&[1]));
    let sealed = s.seal("__Host-oidc-flow", &flow(), NOW + 600).expect("seal");
    assert!(
        sealed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "base64url, no padding"
    );
    let (back, _) = s.open::<Flow>("__Host-oidc-flow", &sealed, NOW).expect("open");
    assert_eq!(back, flow());
    assert!(!sealed.contains("st-123"), "the payload is not visible");
}

#[test]
fn same_payload_seals_differently_each_time() {
    let s = Sealer::new(ring(&[1]));
    assert_ne!(
        s.seal("c", &flow(), NOW + 1).expect("a"),
        s.seal("c", &flow(), NOW + 1).expect("b")
    );
}

#[test]
fn every_single_bit_flip_is_rejected() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let s = Sealer::new(ring(&[1]));
    let raw = URL_SAFE_NO_PAD
        .decode(s.seal("c", &flow(), NOW + 600).expect("seal"))
        .expect("b64");
    for byte in 0..raw.len() {
        for bit in 0..8 {
            let mut t = raw.clone();
            t[byte] ^= 1 << bit;
            let err = s
                .open::<Flow>("c", &URL_SAFE_NO_PAD.encode(&t), NOW)
                .expect_err("flipped bit must fail");
            let expected = match byte {
                0 => OpenError::UnsupportedVersion(t[0]),
                1..=4 => OpenError::UnknownKey,
                _ => OpenError::Tampered,
            };
            assert_eq!(err, expected, "byte {byte} bit {bit}");
        }
    }
}

#[test]
fn every_truncation_is_rejected() {
    let s = Sealer::new(ring(&[1]));
    let sealed = s.seal("c", &flow(), NOW + 600).expect("seal");
    for len in 0..sealed.len() {
        let err = s
            .open::<Flow>("c", &sealed[..len], NOW)
            .expect_err("truncated must fail");
        assert!(
            matches!(err, OpenError::Malformed | OpenError::Tampered),
            "len {len}: {err:?}"
        );
    }
}

#[test]
fn garbage_and_oversized_input() {
    let s = Sealer::new(ring(&[1]));
    for junk in [
        "",
        "!!!!",
        "a",
        "====",
        "%00%ff",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert!(s.open::<Flow>("c", junk, NOW).is_err(), "{junk:?}");
    }
    let huge = "A".repeat(MAX_SEALED_LEN + 1);
    assert_eq!(
        s.open::<Flow>("c", &huge, NOW).expect_err("too big"),
        OpenError::Oversized
    );
}

#[test]
fn wrong_cookie_name_is_rejected() {
    let s = Sealer::new(ring(&[1]));
    let sealed = s.seal("__Host-oidc-session", &flow(), NOW + 600).expect("seal");
    assert_eq!(
        s.open::<Flow>("__Host-oidc-flow", &sealed, NOW)
            .expect_err("name is bound"),
        OpenError::Tampered
    );
}

#[test]
fn expired_is_rejected() {
    let s = Sealer::new(ring(&[1]));
    let sealed = s.seal("c", &flow(), NOW + 10).expect("seal");
    assert!(s.open::<Flow>("c", &sealed, NOW + 9).is_ok());
    assert_eq!(
        s.open::<Flow>("c", &sealed, NOW + 10).expect_err("expired"),
        OpenError::Expired
    );
}

#[test]
fn foreign_key_is_rejected() {
    let sealed = Sealer::new(ring(&[1])).seal("c", &flow(), NOW + 600).expect("seal");
    assert_eq!(
        Sealer::new(ring(&[2]))
            .open::<Flow>("c", &sealed, NOW)
            .expect_err("other ring"),
        OpenError::UnknownKey
    );
}

#[test]
fn key_id_swap_is_rejected() {
    // A value sealed under key 1 relabelled as key 2 (both in the ring) must not open.
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let both = Sealer::new(ring(&[1, 2]));
    let under_2 = URL_SAFE_NO_PAD
        .decode(Sealer::new(ring(&[2])).seal("c", &flow(), NOW + 600).expect("seal"))
        .expect("b64");
    let mut under_1 = URL_SAFE_NO_PAD
        .decode(both.seal("c", &flow(), NOW + 600).expect("seal"))
        .expect("b64");
    under_1[1..5].copy_from_slice(&under_2[1..5]);
    assert_eq!(
        both.open::<Flow>("c", &URL_SAFE_NO_PAD.encode(&under_1), NOW)
            .expect_err("swap"),
        OpenError::Tampered
    );
}

#[test]
fn rotation_old_key_opens_new_key_seals() {
    let old = Sealer::new(ring(&[1]));
    let rotated = Sealer::new(ring(&[2, 1]));
    let before = old.seal("c", &flow(), NOW + 600).expect("seal under old");
    assert_eq!(
        rotated
            .open::<Flow>("c", &before, NOW)
            .expect("old value still opens")
            .0,
        flow()
    );
    let after = rotated.seal("c", &flow(), NOW + 600).expect("seal under new");
    assert_eq!(
        old.open::<Flow>("c", &after, NOW).expect_err("new key seals"),
        OpenError::UnknownKey
    );
    let retired = Sealer::new(ring(&[2]));
    assert_eq!(
        retired.open::<Flow>("c", &before, NOW).expect_err("retired key"),
        OpenError::UnknownKey
    );
}

#[test]
fn payload_of_another_type_fails_cleanly() {
    let s = Sealer::new(ring(&[1]));
    let sealed = s.seal("c", &42u8, NOW + 600).expect("seal");
    assert_eq!(
        s.open::<Flow>("c", &sealed, NOW).expect_err("wrong type"),
        OpenError::Payload
    );
}
