//! JWT validation with the cached keys: bearer tokens of API clients (synchronously, on
//! the worker: CPU only) and back-channel logout tokens.

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::oidc::provider::Provider;

/// The verdict on a token.
#[derive(Debug)]
pub enum TokenCheck {
    /// Valid; its claims.
    Valid(Map<String, Value>),
    /// Signed with a key we do not have (yet): refresh keys and retry once.
    UnknownKey,
    /// Invalid, with the reason (for logs and `WWW-Authenticate`).
    Invalid(String),
}

const ALGS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What kind of token is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An access/ID token presented as `Authorization: Bearer`.
    Bearer,
    /// An OIDC back-channel `logout_token`.
    Logout,
}

/// Verifies signature (allow-listed algorithms, never `none` or HMAC), `iss`, `aud`, and
/// time claims; for logout tokens also the `events` claim, `sid`/`sub`, and no `nonce`.
pub fn verify(p: &Provider, token: &str, issuer: &str, audiences: &[String], kind: Kind) -> TokenCheck {
    let header = match decode_header(token) {
        Ok(h) => h,
        Err(e) => return TokenCheck::Invalid(format!("malformed: {e}")),
    };
    // Secure default: the algorithm comes from our allow-list, never from the token alone.
    if !ALGS.contains(&header.alg) {
        return TokenCheck::Invalid(format!("algorithm {:?} not allowed", header.alg));
    }
    let jwk = match &header.kid {
        Some(kid) => p.jwks.find(kid),
        None if p.jwks.keys.len() == 1 => p.jwks.keys.first(),
        None => None,
    };
    let Some(jwk) = jwk else { return TokenCheck::UnknownKey };
    let key = match DecodingKey::from_jwk(jwk) {
        Ok(k) => k,
        Err(e) => return TokenCheck::Invalid(format!("unusable key: {e}")),
    };
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[issuer]);
    v.set_audience(audiences);
    v.leeway = 30;
    match kind {
        Kind::Bearer => v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]),
        Kind::Logout => v.set_required_spec_claims(&["iss", "aud", "iat"]),
    }
    let claims = match decode::<Map<String, Value>>(token, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => return TokenCheck::Invalid(e.to_string()),
    };
    if kind == Kind::Logout {
        // OIDC Back-Channel Logout 1.0 §2.6.
        let has_event = claims
            .get("events")
            .and_then(|e| e.get("http://schemas.openid.net/event/backchannel-logout"))
            .is_some();
        if !has_event {
            return TokenCheck::Invalid("no back-channel logout event".into());
        }
        if claims.contains_key("nonce") {
            return TokenCheck::Invalid("logout token carries a nonce".into());
        }
        if !claims.contains_key("sid") && !claims.contains_key("sub") {
            return TokenCheck::Invalid("neither sid nor sub".into());
        }
    }
    TokenCheck::Valid(claims)
}
