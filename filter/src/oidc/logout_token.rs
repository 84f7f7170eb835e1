//! The back-channel logout token (Back-Channel Logout 1.0 §2.4, §2.6): verified like
//! every token of the IdP, then the checks that make it a logout token and nothing else.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::tokens::{invalid, now, typ, typed, TokenError, Verified, Verifier};

/// The back-channel logout event (Back-Channel Logout 1.0 §2.4).
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The claims of a back-channel logout token (Back-Channel Logout 1.0 §2.4).
#[derive(Debug, Clone, Deserialize)]
pub struct LogoutTokenClaims {
    /// Unique id of this token (replay detection).
    pub jti: String,
    /// Issued at.
    pub iat: u64,
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

impl Verifier<'_> {
    /// Back-Channel Logout 1.0 §2.6: a logout token for us, issued at most `max_age` ago.
    pub fn logout_token(&self, token: &str, max_age: u64) -> Result<Verified<LogoutTokenClaims>, TokenError> {
        let client_id = &self.settings.client_id;
        let (header, payload) = self.signed(token, std::slice::from_ref(client_id), &["iss", "aud", "iat", "jti"])?;
        // §2.4: explicitly typed `logout+jwt` where the IdP types it; never an access token.
        if typ(&header).is_some_and(|t| t != "logout+jwt" && t != "jwt") {
            return Err(invalid("typ is not logout+jwt"));
        }
        let claims: LogoutTokenClaims = typed(&payload)?;
        // Step 4-5: the back-channel logout event, and no nonce (so an ID token is never one).
        if !claims.events.contains_key(LOGOUT_EVENT) {
            return Err(invalid("no back-channel logout event"));
        }
        if claims.nonce.is_some() {
            return Err(invalid("logout token carries a nonce"));
        }
        // Step 4: a sid or a sub to end sessions by.
        if claims.sid.is_none() && claims.sub.is_none() {
            return Err(invalid("neither sid nor sub"));
        }
        // Step 7 (freshness): a recent `iat`, so a captured token cannot be replayed later.
        if now().saturating_sub(claims.iat) > max_age + self.skew() {
            return Err(invalid("issued too long ago"));
        }
        if claims.jti.is_empty() || claims.jti.len() > 256 {
            return Err(invalid("jti is empty or too long"));
        }
        Ok(Verified { claims, payload })
    }
}
