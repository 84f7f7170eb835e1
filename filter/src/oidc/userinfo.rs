//! The userinfo endpoint (OIDC Core §5.3), at login and (when configured) at each refresh:
//! JSON claims about the user whose `sub` must be the ID token's.

use serde_json::{Map, Value};

use crate::error::IdpError;
use crate::oidc::provider::{Provider, ProviderHandle};

/// Why userinfo gave no claims.
#[derive(Debug, thiserror::Error)]
pub enum UserinfoError {
    /// An answer we cannot use: an error status, not JSON, or another user's `sub`.
    #[error("userinfo invalid: {0}")]
    Invalid(String),
    /// The IdP could not be reached.
    #[error(transparent)]
    Idp(#[from] IdpError),
}

/// The user's claims from userinfo with `access_token`; empty when the IdP has no
/// userinfo endpoint.
pub async fn fetch(
    handle: &ProviderHandle,
    p: &Provider,
    access_token: &str,
    subject: &str,
) -> Result<Map<String, Value>, UserinfoError> {
    let Some(url) = p.client.user_info_url() else {
        return Ok(Map::new());
    };
    let bytes = match handle.get_json(url.as_str(), Some(access_token)).await {
        Ok(b) => b,
        Err(IdpError::Status(status)) => return Err(UserinfoError::Invalid(format!("HTTP {status}"))),
        Err(e) => return Err(e.into()),
    };
    let info: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|e| UserinfoError::Invalid(e.to_string()))?;
    // OIDC Core 5.3.2: the userinfo `sub` MUST match the ID token's (token substitution).
    if info.get("sub").and_then(Value::as_str) != Some(subject) {
        return Err(UserinfoError::Invalid("sub differs from the ID token".into()));
    }
    Ok(info)
}
