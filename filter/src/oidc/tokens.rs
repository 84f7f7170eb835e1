//! Every JWT the filter accepts, on one stack with one algorithm allow-list: ID tokens
//! (login), access tokens (API clients' bearer) and logout tokens (back channel). Claims
//! are typed, with the rest kept in a map; each check names the spec step it enforces.
//! A [`VerifiedIdToken`] can only come out of [`verify_id_token`].

use base64::Engine;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

use crate::oidc::provider::Provider;

/// Signature algorithms accepted on every token. Secure default: never `none`, never a
/// shared-secret (HMAC) algorithm, whatever the token's header says.
pub const ALLOWED_ALGS: [Algorithm; 9] = [
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

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 30;

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Signed with a key we do not have (yet): refresh the keys and retry once.
    UnknownKey,
    /// Invalid, with the reason (for logs and `WWW-Authenticate`).
    Invalid(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::UnknownKey => f.write_str("signed with an unknown key"),
            TokenError::Invalid(why) => f.write_str(why),
        }
    }
}

fn invalid(why: impl Into<String>) -> TokenError {
    TokenError::Invalid(why.into())
}

/// `aud`: one string or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    fn is_several(&self) -> bool {
        matches!(self, Audience::Many(all) if all.len() > 1)
    }
}

/// The claims of an ID token (OIDC Core §2) the filter checks or keeps.
#[derive(Debug, Clone, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience(s).
    pub aud: Audience,
    /// Expiry.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// The nonce of the authentication request.
    #[serde(default)]
    pub nonce: Option<String>,
    /// Authorized party.
    #[serde(default)]
    pub azp: Option<String>,
    /// Access-token hash.
    #[serde(default)]
    pub at_hash: Option<String>,
    /// Session id at the IdP (back-channel logout).
    #[serde(default)]
    pub sid: Option<String>,
}

/// An ID token that passed every check of OIDC Core §3.1.3.7.
#[derive(Debug)]
pub struct VerifiedIdToken {
    raw: String,
    claims: IdTokenClaims,
    payload: Map<String, Value>,
}

impl VerifiedIdToken {
    /// The token as received (kept for `id_token_hint`).
    pub fn raw(&self) -> &str {
        &self.raw
    }
    /// The typed claims.
    pub fn claims(&self) -> &IdTokenClaims {
        &self.claims
    }
    /// Every claim, for claim mapping (groups, email...).
    pub fn payload(&self) -> &Map<String, Value> {
        &self.payload
    }
}

/// The claims of an access token presented as a bearer credential (RFC 9068 §2.2).
#[derive(Debug, Clone, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Expiry.
    pub exp: u64,
}

/// The claims of a back-channel logout token (Back-Channel Logout 1.0 §2.4).
#[derive(Debug, Clone, Deserialize)]
pub struct LogoutTokenClaims {
    /// Session id at the IdP.
    #[serde(default)]
    pub sid: Option<String>,
    /// Subject.
    #[serde(default)]
    pub sub: Option<String>,
    /// The event list.
    #[serde(default)]
    pub events: Map<String, Value>,
    /// Must be absent.
    #[serde(default)]
    pub nonce: Option<Value>,
}

/// A verified token's claims: typed, and all of them.
#[derive(Debug)]
pub struct Verified<T> {
    /// The typed claims.
    pub claims: T,
    /// Every claim.
    pub payload: Map<String, Value>,
}

/// Signature with an allow-listed algorithm and a key of the IdP, `iss` exact, `aud`,
/// and the time claims; returns the header's algorithm with the payload.
fn verify_signed(
    p: &Provider,
    token: &str,
    issuer: &str,
    audiences: &[String],
    required: &[&str],
) -> Result<(Algorithm, Map<String, Value>), TokenError> {
    let header = decode_header(token).map_err(|e| invalid(format!("malformed: {e}")))?;
    // OIDC Core 3.1.3.7 step 6-7: the algorithm comes from our allow-list, never from
    // the token alone.
    if !ALLOWED_ALGS.contains(&header.alg) {
        return Err(invalid(format!("algorithm {:?} not allowed", header.alg)));
    }
    let jwk = match &header.kid {
        Some(kid) => p.jwks.find(kid),
        None if p.jwks.keys.len() == 1 => p.jwks.keys.first(),
        None => None,
    };
    let jwk = jwk.ok_or(TokenError::UnknownKey)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(format!("unusable key: {e}")))?;
    let mut v = Validation::new(header.alg);
    // Step 2: `iss` exactly; step 3: `aud` contains us; step 9: `exp`.
    v.set_issuer(&[issuer]);
    v.set_audience(audiences);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    v.set_required_spec_claims(required);
    let data = decode::<Map<String, Value>>(token, &key, &v).map_err(|e| invalid(e.to_string()))?;
    Ok((header.alg, data.claims))
}

fn typed<T: for<'de> Deserialize<'de>>(payload: &Map<String, Value>) -> Result<T, TokenError> {
    T::deserialize(&Value::Object(payload.clone())).map_err(|e| invalid(format!("claims: {e}")))
}

/// OIDC Core §3.1.3.7 (and §3.1.3.8 for `at_hash`): an ID token from the token endpoint.
pub fn verify_id_token(
    p: &Provider,
    raw: &str,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    access_token: &str,
) -> Result<VerifiedIdToken, TokenError> {
    let (alg, payload) = verify_signed(
        p,
        raw,
        issuer,
        &[client_id.to_owned()],
        &["iss", "sub", "aud", "exp", "iat"],
    )?;
    let claims: IdTokenClaims = typed(&payload)?;
    // Steps 4-5: with several audiences, `azp` names us; when present it is us.
    if claims.aud.is_several() && claims.azp.is_none() {
        return Err(invalid("several audiences and no azp"));
    }
    if claims.azp.as_deref().is_some_and(|azp| azp != client_id) {
        return Err(invalid("azp is another client"));
    }
    // Step 11: the nonce we sent, compared in constant time.
    let same_nonce = claims
        .nonce
        .as_deref()
        .is_some_and(|n| bool::from(n.as_bytes().ct_eq(nonce.as_bytes())));
    if !same_nonce {
        return Err(invalid("nonce does not match"));
    }
    // §3.1.3.8: at_hash, when present, binds the access token to this ID token.
    if let Some(expected) = &claims.at_hash {
        if !bool::from(token_hash(alg, access_token).as_bytes().ct_eq(expected.as_bytes())) {
            return Err(invalid("at_hash does not match the access token"));
        }
    }
    Ok(VerifiedIdToken {
        raw: raw.to_owned(),
        claims,
        payload,
    })
}

/// The left half of the token's hash with the signature's hash function, base64url
/// (OIDC Core §3.1.3.8 `at_hash`; EdDSA over Ed25519 uses SHA-512).
fn token_hash(alg: Algorithm, token: &str) -> String {
    let digest: Vec<u8> = match alg {
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => Sha384::digest(token).to_vec(),
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => Sha512::digest(token).to_vec(),
        _ => Sha256::digest(token).to_vec(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// An API client's bearer token: an access token of our IdP for one of `audiences`.
pub fn verify_access_token(
    p: &Provider,
    token: &str,
    issuer: &str,
    audiences: &[String],
) -> Result<Verified<AccessTokenClaims>, TokenError> {
    let (_, payload) = verify_signed(p, token, issuer, audiences, &["exp", "iss", "aud", "sub"])?;
    Ok(Verified {
        claims: typed(&payload)?,
        payload,
    })
}

/// Back-Channel Logout 1.0 §2.6: a logout token for `client_id`.
pub fn verify_logout_token(
    p: &Provider,
    token: &str,
    issuer: &str,
    client_id: &str,
) -> Result<Verified<LogoutTokenClaims>, TokenError> {
    let (_, payload) = verify_signed(p, token, issuer, &[client_id.to_owned()], &["iss", "aud", "iat"])?;
    let claims: LogoutTokenClaims = typed(&payload)?;
    // Step 4-5: the back-channel logout event, and no nonce (so an ID token is never one).
    if !claims
        .events
        .contains_key("http://schemas.openid.net/event/backchannel-logout")
    {
        return Err(invalid("no back-channel logout event"));
    }
    if claims.nonce.is_some() {
        return Err(invalid("logout token carries a nonce"));
    }
    // Step 4: a sid or a sub to end sessions by.
    if claims.sid.is_none() && claims.sub.is_none() {
        return Err(invalid("neither sid nor sub"));
    }
    Ok(Verified { claims, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_of_the_spec_example() {
        // OIDC Core A.3's access token and at_hash (RS256).
        assert_eq!(
            token_hash(Algorithm::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }

    #[test]
    fn audiences() {
        let one = Audience::One("a".into());
        let two = Audience::Many(vec!["a".into(), "b".into()]);
        assert!(!one.is_several() && two.is_several());
    }
}
