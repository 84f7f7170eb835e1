//! A stored session record: decryption of forged records, and the decoding of whatever
//! decrypts (round trip through the real encryption).
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_store::{decrypt_record, encrypt_record, Session, Ticket};

fuzz_target!(|data: &[u8]| {
    let h = envoy_oidc_fuzz::harness();
    let ticket = Ticket::generate().expect("randomness");
    let cookie =
        h.gw.sessions
            .sealer()
            .seal("__Host-oidc_session", &ticket, h.now() + 60)
            .expect("seal");
    let session_store::Check::Miss(opened) = h.gw.sessions.check(&cookie, h.now()) else {
        panic!("a fresh ticket is a cache miss")
    };
    let key = opened.store_key();
    assert!(
        decrypt_record(&ticket, &key, data).is_err(),
        "a forged record decrypted"
    );
    if let Ok(session) = postcard::from_bytes::<Session>(data) {
        if let Ok(record) = encrypt_record(&ticket, &key, &session) {
            let back = decrypt_record(&ticket, &key, &record).expect("own record decrypts");
            assert_eq!(back.subject, session.subject);
        }
    }
});
