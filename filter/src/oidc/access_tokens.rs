//! Access tokens presented as bearer credentials (RFC 9068), kept apart from every other
//! token the IdP signs: the checks on a JWT's type, shape and client, and the subject and
//! client rules introspected tokens share.

use serde::Deserialize;
use serde_json::Value;

use super::tokens::{invalid, typ, typed, valid_subject, Audience, TokenError, Verified, Verifier};
use crate::config::BearerSettings;

/// The claims of an access token presented as a bearer credential (RFC 9068 §2.2).
#[derive(Debug, Clone, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject.
    pub sub: String,
    /// Audience(s).
    pub aud: Audience,
    /// Expiry.
    pub exp: u64,
    /// Issued at (required by RFC 9068, checked when present).
    #[serde(default)]
    pub iat: Option<u64>,
    /// The client the token was issued to: `client_id` (RFC 9068) or `azp` (most IdPs).
    #[serde(default, alias = "azp")]
    pub client_id: Option<String>,
}

impl Verifier<'_> {
    /// An API client's bearer token: an access token of our IdP for one of the configured
    /// audiences, issued to an authorized client, and nothing else the IdP signs.
    pub fn access_token(
        &self,
        token: &str,
        policy: &BearerSettings,
    ) -> Result<Verified<AccessTokenClaims>, TokenError> {
        let (header, payload) = self.signed(token, &policy.audiences, &["exp", "iss", "aud", "sub"])?;
        // RFC 9068 §4: `typ` at+jwt where the IdP sets it; a token typed as anything else
        // (an ID token, a logout token) is refused, and untyped ones only when allowed.
        match typ(&header).as_deref() {
            Some("at+jwt") => {}
            Some("jwt") | None if !policy.require_at_jwt => {}
            Some(other) => return Err(invalid(format!("typ {other} is not an access token"))),
            None => return Err(invalid("typ at+jwt required")),
        }
        // The shapes of ID and logout tokens (Keycloak marks them in a `typ` claim too).
        const NOT_ACCESS: [&str; 5] = ["nonce", "events", "at_hash", "c_hash", "s_hash"];
        if let Some(claim) = NOT_ACCESS.iter().find(|c| payload.contains_key(**c)) {
            return Err(invalid(format!("carries {claim}: not an access token")));
        }
        if payload
            .get("typ")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("id") || t.eq_ignore_ascii_case("logout"))
        {
            return Err(invalid("typed as an ID or logout token"));
        }
        let claims: AccessTokenClaims = typed(&payload)?;
        access_token_client(&claims, policy, &self.settings.client_id)?;
        if typ(&header).as_deref() == Some("at+jwt") && claims.iat.is_none() {
            return Err(invalid("at+jwt without iat"));
        }
        Ok(Verified { claims, payload })
    }
}

/// The subject and the client of an access token (JWT or introspected): a usable `sub`,
/// and the client it was issued to, checked always when `authorized_parties` is set and
/// whenever the token is for several audiences (then it must be us).
pub fn access_token_client(
    claims: &AccessTokenClaims,
    policy: &BearerSettings,
    client_id: &str,
) -> Result<(), TokenError> {
    if !valid_subject(&claims.sub) {
        return Err(invalid("sub is empty, too long or has control characters"));
    }
    let authorized = |c: &str| {
        if policy.authorized_parties.is_empty() {
            c == client_id
        } else {
            policy.authorized_parties.iter().any(|p| p == c)
        }
    };
    if claims.aud.is_several() || !policy.authorized_parties.is_empty() {
        match claims.client_id.as_deref() {
            Some(c) if authorized(c) => {}
            Some(_) => return Err(invalid("issued to another client (azp)")),
            None => return Err(invalid("no azp or client_id")),
        }
    }
    Ok(())
}
