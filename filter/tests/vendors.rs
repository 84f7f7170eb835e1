//! What real IdPs send, reproduced by a second OP (oauth2-mock-server, `vendor-op.mjs`)
//! and sent through the real Envoy: each test is one vendor's day-one behaviour.

mod support;

use serde_json::json;
use support::{seen, Browser, VendorSetup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_login_at_the_second_op() {
    let setup = VendorSetup::start(json!({}), json!({})).await;
    let pages = setup.login(&Browser::new(), "/hello").await;
    let s = seen(&pages);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
    assert_eq!(s.path(), "/hello");
}

/// JumpCloud, Apple, Cognito: `email_verified: "true"`; Auth0 (default `profile` scope):
/// `updated_at` as RFC 3339; Entra v1: `expires_in: "3599"`. None of it is security
/// relevant, so none of it may break a login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sloppy_but_harmless_claims_and_token_fields_log_in() {
    let setup = VendorSetup::start(
        json!({
            "id_token": {"email": "jd@example.com", "email_verified": "true", "updated_at": "2026-11-01T10:00:00.000Z"},
            "userinfo": {"email": "jd@example.com", "email_verified": "true", "updated_at": "2026-11-01T10:00:00.000Z"},
            "token_response": {"expires_in": "3599"}
        }),
        json!({}),
    )
    .await;
    let pages = setup.login(&Browser::new(), "/").await;
    let s = seen(&pages);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
    assert_eq!(s.header("x-auth-request-email").as_deref(), Some("jd@example.com"));
}

/// The email header comes only from a verified email (unless configured otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_emails_are_not_passed_on() {
    let profile = json!({"id_token": {"email": "ceo@example.com", "email_verified": false}});
    let setup = VendorSetup::start(profile.clone(), json!({})).await;
    let s = seen(&setup.login(&Browser::new(), "/").await);
    assert_eq!(s.header("x-auth-request-email"), None);
    let lax = VendorSetup::start(profile, json!({"headers": {"unverified_email": true}})).await;
    let s = seen(&lax.login(&Browser::new(), "/").await);
    assert_eq!(s.header("x-auth-request-email").as_deref(), Some("ceo@example.com"));
}

/// Keycloak with its EdDSA provider publishes an X25519 key; others publish encryption
/// keys or key types we do not know. Those keys are skipped; the rest still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_we_cannot_use_are_skipped_not_fatal() {
    let extra = json!([
        {"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"},
        {"kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": "X9dEm1m0Yf0s54fsYWrUah2hNCSFpw4fig6nXYDpZ3jt8SR2m0bHBhvWeD3x5Q9s0foavq_oJWGA"},
        {"kty": "RSA", "use": "enc", "kid": "enc-1", "alg": "RSA-OAEP", "e": "AQAB", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"},
        {"kty": "QUANTUM", "kid": "future"}
    ]);
    let setup = VendorSetup::start(json!({"jwks_extra": extra}), json!({})).await;
    let s = seen(&setup.login(&Browser::new(), "/").await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
    assert!(
        setup.envoy.log().contains("skipped"),
        "one log line names what was skipped"
    );
}

/// The IdP signs with a new key: the callback fetches the keys again (once, rate
/// limited) instead of failing logins until the next periodic discovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_signing_key_at_the_callback_is_fetched() {
    let setup = VendorSetup::start(json!({}), json!({})).await;
    let before = setup.op.calls().await["jwks"].as_u64().expect("count");
    setup.op.behave(json!({"rotate_key": true})).await;
    let s = seen(&setup.login(&Browser::new(), "/").await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
    let after = setup.op.calls().await["jwks"].as_u64().expect("count");
    assert_eq!(after, before + 1, "one fetch for the unknown kid");
}
