//! The token endpoint (RFC 6749 §3.2): the code exchange and refresh, with our client
//! authentication, and the answer read strictly where it matters (an access token, a
//! bearer token type, JSON) and leniently where vendors are sloppy (`expires_in` as a
//! string, extra fields). The ID token in it is verified separately (`tokens`).

use serde::{Deserialize, Deserializer};

use crate::config::ProviderSettings;
use crate::error::IdpError;
use crate::oidc::client_auth::ClientAuth;
use crate::oidc::provider::{Provider, ProviderHandle};

/// What the token endpoint answered.
#[derive(Deserialize)]
pub struct TokenAnswer {
    /// The access token.
    pub access_token: String,
    /// `Bearer` (any case); absent is tolerated, another type is not.
    #[serde(default)]
    token_type: Option<String>,
    /// Lifetime of the access token, in seconds (a number, or a string of digits).
    #[serde(default, deserialize_with = "lenient_seconds")]
    pub expires_in: Option<u64>,
    /// A refresh token.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// An ID token (raw JWT).
    #[serde(default)]
    pub id_token: Option<String>,
}

/// `Debug` without the tokens.
impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAnswer")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.is_some())
            .field("id_token", &self.id_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Why the token endpoint gave no tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenEndpointError {
    /// An RFC 6749 §5.2 error answer (`invalid_grant`, `invalid_client`...).
    #[error("token endpoint refused: {error}")]
    Refused {
        /// The `error` code.
        error: String,
    },
    /// Not a token answer: a 5xx, HTML, JSON without an access token, another type.
    #[error("token endpoint answered something that is not a token response: {0}")]
    Malformed(String),
    /// The IdP could not be reached or did not answer in time.
    #[error(transparent)]
    Idp(#[from] IdpError),
}

/// `expires_in` as vendors send it: 3599, "3599", 3599.0.
fn lenient_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Int(u64),
        Float(f64),
        Text(String),
    }
    Ok(match Option::<Seconds>::deserialize(d)? {
        None => None,
        Some(Seconds::Int(n)) => Some(n),
        Some(Seconds::Float(f)) if f.is_finite() && f >= 0.0 => Some(f as u64),
        Some(Seconds::Text(t)) => t.trim().parse().ok(),
        Some(Seconds::Float(_)) => None,
    })
}

/// Exchanges an authorization code (with its PKCE verifier).
pub async fn exchange_code(
    handle: &ProviderHandle,
    p: &Provider,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> Result<TokenAnswer, TokenEndpointError> {
    let s = handle.settings();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    post(handle, p, s, &form).await
}

/// Uses a refresh token.
pub async fn refresh(
    handle: &ProviderHandle,
    p: &Provider,
    refresh_token: &str,
) -> Result<TokenAnswer, TokenEndpointError> {
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    post(handle, p, handle.settings(), &form).await
}

async fn post(
    handle: &ProviderHandle,
    p: &Provider,
    s: &ProviderSettings,
    form: &[(&'static str, &str)],
) -> Result<TokenAnswer, TokenEndpointError> {
    let url = p.token_endpoint.as_ref().ok_or(IdpError::NoEndpoint("token"))?;
    let request = form_post(url.as_str(), s, p.client_auth, form)?;
    let response = handle.send(request).await?;
    let status = response.status();
    let body = response.body();
    if status.is_success() {
        let answer: TokenAnswer =
            serde_json::from_slice(body).map_err(|e| TokenEndpointError::Malformed(format!("HTTP {status}: {e}")))?;
        if answer
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(TokenEndpointError::Malformed("token_type is not Bearer".into()));
        }
        return Ok(answer);
    }
    #[derive(Deserialize)]
    struct ErrorAnswer {
        error: String,
    }
    // §5.2: errors come as 400 (or 401 for client authentication) with a JSON `error`.
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(e) if status.is_client_error() => Err(TokenEndpointError::Refused {
            error: e.error.chars().filter(|c| c.is_ascii_graphic()).take(64).collect(),
        }),
        _ => Err(TokenEndpointError::Malformed(format!("HTTP {status}"))),
    }
}

/// A form POST with our client authentication (the method this IdP snapshot uses).
pub fn form_post(
    url: &str,
    s: &ProviderSettings,
    auth: ClientAuth,
    fields: &[(&'static str, &str)],
) -> Result<openidconnect::HttpRequest, IdpError> {
    let mut form: Vec<(&'static str, String)> = fields.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    let authorization = auth.apply(s, url, &mut form)?;
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish();
    let mut b = http::Request::builder()
        .method(http::Method::POST)
        .uri(url)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(value) = authorization {
        b = b.header(http::header::AUTHORIZATION, value);
    }
    b.body(body.into_bytes())
        .map_err(|e| IdpError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_vendors_send() {
        let a: TokenAnswer = serde_json::from_str(
            r#"{"access_token":"a","token_type":"bearer","expires_in":"3599","id_token":"x.y.z","extra":1}"#,
        )
        .expect("lenient");
        assert_eq!(a.expires_in, Some(3599));
        for (v, want) in [
            ("3599", Some(3599)),
            ("3599.0", Some(3599)),
            ("\"n/a\"", None),
            ("null", None),
        ] {
            let a: TokenAnswer =
                serde_json::from_str(&format!(r#"{{"access_token":"a","expires_in":{v}}}"#)).expect("parse");
            assert_eq!(a.expires_in, want, "{v}");
        }
        assert!(
            serde_json::from_str::<TokenAnswer>(r#"{"token_type":"Bearer"}"#).is_err(),
            "no access token"
        );
        assert!(!format!("{a:?}").contains("x.y.z"));
    }
}
