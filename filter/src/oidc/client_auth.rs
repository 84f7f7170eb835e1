//! How the filter authenticates to the IdP's token and introspection endpoints (RFC 6749
//! §2.3, OIDC Core §9): a client secret in HTTP Basic or in the form, or a JWT assertion
//! signed with our private key (RFC 7523, `private_key_jwt`). `auto` takes what the IdP's
//! discovery document lists, preferring Basic.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::config::ProviderSettings;
use crate::error::IdpError;

/// The configured method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// From discovery's `token_endpoint_auth_methods_supported` (default).
    #[default]
    Auto,
    /// `client_secret_basic`.
    ClientSecretBasic,
    /// `client_secret_post`.
    ClientSecretPost,
    /// `private_key_jwt`.
    PrivateKeyJwt,
    /// `tls_client_auth` (RFC 8705): the client certificate of `provider.client_cert_file`.
    TlsClientAuth,
}

/// The method in use with one IdP snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Id and secret in HTTP Basic, each form-encoded first (RFC 6749 §2.3.1).
    Basic,
    /// Id and secret as form fields (for IdPs that do not form-decode Basic).
    Post,
    /// A signed JWT assertion.
    PrivateKeyJwt,
    /// Mutual TLS: the connection's client certificate is the credential; the form names
    /// the client.
    Tls,
}

/// Our private key for `private_key_jwt`.
pub struct SigningKey {
    /// The key.
    pub key: EncodingKey,
    /// RS256 or ES256.
    pub alg: Algorithm,
    /// The `kid` the IdP knows the public key by.
    pub kid: Option<String>,
}

impl ClientAuth {
    /// The method for this IdP: the configured one, or (auto) the first of ours the IdP
    /// lists; an IdP listing none means Basic (RFC 8414 §2).
    pub fn choose(method: ClientAuthMethod, has_key: bool, supported: &[String]) -> ClientAuth {
        match method {
            ClientAuthMethod::ClientSecretBasic => ClientAuth::Basic,
            ClientAuthMethod::ClientSecretPost => ClientAuth::Post,
            ClientAuthMethod::PrivateKeyJwt => ClientAuth::PrivateKeyJwt,
            ClientAuthMethod::TlsClientAuth => ClientAuth::Tls,
            ClientAuthMethod::Auto => {
                let lists = |m: &str| supported.iter().any(|s| s == m);
                if has_key && lists("private_key_jwt") {
                    ClientAuth::PrivateKeyJwt
                } else if supported.is_empty() || lists("client_secret_basic") || !lists("client_secret_post") {
                    ClientAuth::Basic
                } else {
                    ClientAuth::Post
                }
            }
        }
    }

    /// Adds our credentials to a form POST to `audience` (the endpoint's URL): returns
    /// the `authorization` header to send, if any.
    pub fn apply(
        self,
        s: &ProviderSettings,
        audience: &str,
        form: &mut Vec<(&'static str, String)>,
    ) -> Result<Option<String>, IdpError> {
        // The secret in force now (its file may have changed since the load).
        let held = s.client_secret.as_ref().map(|c| c.get());
        let secret = || {
            held.as_deref().map(|c| c.secret()).ok_or(IdpError::Malformed(
                "no client_secret for this client authentication".into(),
            ))
        };
        match self {
            ClientAuth::Basic => {
                let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", enc(&s.client_id), enc(secret()?));
                Ok(Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )))
            }
            ClientAuth::Tls => {
                form.push(("client_id", s.client_id.clone()));
                Ok(None)
            }
            ClientAuth::Post => {
                form.push(("client_id", s.client_id.clone()));
                form.push(("client_secret", secret()?.to_owned()));
                Ok(None)
            }
            ClientAuth::PrivateKeyJwt => {
                let key = s.client_key.as_ref().map(|k| k.get()).ok_or(IdpError::Malformed(
                    "no client_auth.private_key for private_key_jwt".into(),
                ))?;
                form.push(("client_id", s.client_id.clone()));
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion(&key, &s.client_id, audience)?));
                Ok(None)
            }
        }
    }
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: u64,
    exp: u64,
}

/// RFC 7523 §3: issued by and about us, for the endpoint, short-lived, never reused.
fn assertion(key: &SigningKey, client_id: &str, audience: &str) -> Result<String, IdpError> {
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).map_err(|e| IdpError::Malformed(format!("no randomness: {e}")))?;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Assertion {
        iss: client_id,
        sub: client_id,
        aud: audience,
        jti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
        iat: now,
        exp: now + 60,
    };
    let mut header = Header::new(key.alg);
    header.kid = key.kid.clone();
    jsonwebtoken::encode(&header, &claims, &key.key).map_err(|e| IdpError::Malformed(format!("client assertion: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(m: &[&str]) -> Vec<String> {
        m.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn auto_follows_discovery() {
        let auto = ClientAuthMethod::Auto;
        assert_eq!(
            ClientAuth::choose(auto, false, &[]),
            ClientAuth::Basic,
            "none listed: Basic"
        );
        assert_eq!(
            ClientAuth::choose(auto, false, &listed(&["client_secret_post"])),
            ClientAuth::Post
        );
        assert_eq!(
            ClientAuth::choose(auto, false, &listed(&["client_secret_post", "client_secret_basic"])),
            ClientAuth::Basic
        );
        assert_eq!(
            ClientAuth::choose(auto, true, &listed(&["client_secret_basic", "private_key_jwt"])),
            ClientAuth::PrivateKeyJwt,
            "a key and an IdP that takes it"
        );
        assert_eq!(
            ClientAuth::choose(
                ClientAuthMethod::ClientSecretPost,
                false,
                &listed(&["client_secret_basic"])
            ),
            ClientAuth::Post,
            "configured wins"
        );
    }
}
