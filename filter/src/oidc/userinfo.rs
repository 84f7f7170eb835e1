//! The userinfo endpoint (OIDC Core §5.3), at login and (when configured) at each refresh:
//! claims about the user as JSON, or as a JWT the IdP signed (`application/jwt`, verified
//! like any other token of it), whose `sub` must be the ID token's.

use serde_json::{Map, Value};

use crate::error::IdpError;
use crate::oidc::provider::{Provider, ProviderHandle};
use crate::oidc::tokens::Verifier;
use crate::oidc::transport::get_json;

/// Why userinfo gave no claims.
#[derive(Debug, thiserror::Error)]
pub enum UserinfoError {
    /// The IdP refused our access token there (401/403: Entra with an API scope).
    #[error("userinfo refused the access token: HTTP {0}")]
    Refused(u16),
    /// An answer we cannot use: another error status, not JSON, a bad signature, or
    /// another user's `sub`.
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
    let mut request = get_json(url.as_str(), Some(access_token))?;
    request.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json, application/jwt"),
    );
    let response = handle.send(request).await?;
    let status = response.status().as_u16();
    if matches!(status, 401 | 403) {
        return Err(UserinfoError::Refused(status));
    }
    if !response.status().is_success() {
        return Err(UserinfoError::Invalid(format!("HTTP {status}")));
    }
    let signed = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("application/jwt"));
    let info = if signed {
        let jwt = std::str::from_utf8(response.body()).map_err(|e| UserinfoError::Invalid(e.to_string()))?;
        Verifier::new(p, handle.settings())
            .userinfo(jwt.trim())
            .map_err(|e| UserinfoError::Invalid(format!("signed userinfo: {e}")))?
    } else {
        serde_json::from_slice(response.body()).map_err(|e| UserinfoError::Invalid(e.to_string()))?
    };
    // OIDC Core 5.3.2: the userinfo `sub` MUST match the ID token's (token substitution).
    if info.get("sub").and_then(Value::as_str) != Some(subject) {
        return Err(UserinfoError::Invalid("sub differs from the ID token".into()));
    }
    Ok(info)
}
