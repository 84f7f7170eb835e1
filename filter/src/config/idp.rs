//! The identity provider and this client: the settings the filter uses, the `provider`
//! and `client_auth` sections as written, and how the filter reaches and proves itself to
//! the IdP (TLS trust, a client certificate, a proxy, the private key of
//! `private_key_jwt`), all read at load so a bad file fails the config, not logins.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde::Deserialize;
use url::Url;
use zeroize::Zeroizing;

use super::fields::{authorize_params, read_file};
use super::raw::Raw;
use super::secret::{ClientSecret, Live, SecretSource};
use super::{err, ConfigError};
use crate::oidc::client_auth::{ClientAuthMethod, SigningKey};
use crate::oidc::transport::IdpTls;

/// Everything about the identity provider and this client.
pub struct ProviderSettings {
    /// Issuer identifier, compared exactly (no normalisation).
    pub issuer: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (not needed with `private_key_jwt`).
    pub client_secret: Option<Live<ClientSecret>>,
    /// How we authenticate to the token and introspection endpoints.
    pub client_auth: ClientAuthMethod,
    /// Our private key for `private_key_jwt`.
    pub client_key: Option<Live<SigningKey>>,
    /// The exact redirect URI registered at the IdP.
    pub redirect_uri: Url,
    /// Scopes requested (always including `openid`).
    pub scopes: Vec<String>,
    /// More authorization-request parameters (`prompt`, `audience`, `access_type`...).
    pub extra_authorize_params: Vec<(String, String)>,
    /// Re-discovery period.
    pub refresh_interval: Duration,
    /// Least time between JWKS fetches triggered by unknown key ids.
    pub jwks_min_refresh: Duration,
    /// Timeout of each call to the IdP.
    pub timeout: Duration,
    /// Clock difference tolerated with the IdP on `exp`, `nbf` and `iat`.
    pub clock_skew: Duration,
    /// Audiences an ID token may name beside us (OIDC Core §3.1.3.7 step 3).
    pub trusted_audiences: Vec<String>,
    /// Tenants allowed at a multi-tenant issuer (Entra ID `/common/v2.0`).
    pub tenants: Vec<String>,
    /// A userinfo endpoint refusing our access token fails the login (else the ID
    /// token's claims are used).
    pub userinfo_required: bool,
    /// Trust, client certificate and proxy of the connection to the IdP.
    pub tls: IdpTls,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawClientAuth {
    pub(super) method: ClientAuthMethod,
    pub(super) private_key: Option<SecretSource>,
    pub(super) key_id: Option<String>,
    pub(super) algorithm: String,
}

impl Default for RawClientAuth {
    fn default() -> Self {
        Self {
            method: ClientAuthMethod::Auto,
            private_key: None,
            key_id: None,
            algorithm: "RS256".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawProvider {
    pub(super) refresh_interval_secs: u64,
    pub(super) jwks_min_refresh_secs: u64,
    pub(super) clock_skew_secs: u64,
    pub(super) ca_file: Option<String>,
    pub(super) system_roots: bool,
    pub(super) client_cert_file: Option<String>,
    pub(super) client_key: Option<SecretSource>,
    pub(super) proxy: Option<String>,
    pub(super) userinfo_required: bool,
    pub(super) tenants: Vec<String>,
}

impl Default for RawProvider {
    fn default() -> Self {
        Self {
            refresh_interval_secs: 600,
            jwks_min_refresh_secs: 30,
            clock_skew_secs: 30,
            ca_file: None,
            system_roots: false,
            client_cert_file: None,
            client_key: None,
            proxy: None,
            userinfo_required: false,
            tenants: Vec::new(),
        }
    }
}

/// Where the system's CA bundle is on the distributions Envoy images use.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The IdP and client settings, validated; secrets and files read now.
pub(super) fn provider(raw: &Raw) -> Result<ProviderSettings, ConfigError> {
    let issuer_url = Url::parse(&raw.issuer).map_err(|e| err("issuer", e.to_string()))?;
    if !matches!(issuer_url.scheme(), "https" | "http") || issuer_url.query().is_some() {
        return Err(err("issuer", "must be an http(s) URL without a query"));
    }
    if raw.client_id.is_empty() {
        return Err(err("client_id", "must not be empty"));
    }
    let redirect_uri = Url::parse(&raw.redirect_uri).map_err(|e| err("redirect_uri", e.to_string()))?;
    if redirect_uri.query().is_some() || redirect_uri.fragment().is_some() {
        return Err(err("redirect_uri", "must not have a query or fragment"));
    }
    let client_secret = raw
        .client_secret
        .as_ref()
        .map(|c| c.load().map_err(|e| err("client_secret", e)).map(ClientSecret::from))
        .transpose()?;
    let client_key = signing_key(&raw.client_auth)?;
    match (raw.client_auth.method, client_secret.is_some(), client_key.is_some()) {
        (ClientAuthMethod::PrivateKeyJwt, _, false) => {
            return Err(err("client_auth.private_key", "required with private_key_jwt"))
        }
        (ClientAuthMethod::TlsClientAuth, _, _) if raw.provider.client_cert_file.is_none() => {
            return Err(err("provider.client_cert_file", "required with tls_client_auth"))
        }
        (ClientAuthMethod::TlsClientAuth, _, _) => {}
        (ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost, false, _)
        | (ClientAuthMethod::Auto, false, false) => return Err(err("client_secret", "required")),
        _ => {}
    }
    let mut scopes = raw.scopes.clone();
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    Ok(ProviderSettings {
        issuer: raw.issuer.clone(),
        client_id: raw.client_id.clone(),
        client_secret: client_secret.map(Live::new),
        client_auth: raw.client_auth.method,
        client_key: client_key.map(Live::new),
        redirect_uri,
        scopes,
        extra_authorize_params: authorize_params(raw.extra_authorize_params.clone())?,
        refresh_interval: Duration::from_secs(raw.provider.refresh_interval_secs.max(10)),
        jwks_min_refresh: Duration::from_secs(raw.provider.jwks_min_refresh_secs),
        timeout: Duration::from_millis(raw.timeouts.idp_ms),
        clock_skew: Duration::from_secs(raw.provider.clock_skew_secs),
        trusted_audiences: raw.trusted_audiences.clone(),
        tls: idp_tls(&raw.provider)?,
        userinfo_required: raw.provider.userinfo_required,
        tenants: raw.provider.tenants.clone(),
    })
}

/// The connection to the IdP: extra trust (a private CA, the system bundle), a client
/// certificate, a proxy; read at load so a missing file fails the config, not logins.
pub(super) fn idp_tls(p: &RawProvider) -> Result<IdpTls, ConfigError> {
    let mut extra_roots = read_file("provider.ca_file", &p.ca_file)?.unwrap_or_default();
    if p.system_roots {
        let bundle = SYSTEM_BUNDLES
            .iter()
            .find_map(|path| std::fs::read(path).ok())
            .ok_or_else(|| err("provider.system_roots", format!("no CA bundle at {SYSTEM_BUNDLES:?}")))?;
        extra_roots.extend_from_slice(&bundle);
    }
    if !extra_roots.is_empty() {
        openidconnect::reqwest::Certificate::from_pem_bundle(&extra_roots)
            .map_err(|e| err("provider.ca_file", format!("not PEM certificates: {e}")))?;
    }
    let client_identity = match (&p.client_cert_file, &p.client_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let mut pem = read_file("provider.client_cert_file", &Some(cert.clone()))?.unwrap_or_default();
            pem.extend_from_slice(key.load().map_err(|e| err("provider.client_key", e))?.as_bytes());
            Some(Zeroizing::new(pem))
        }
        _ => {
            return Err(err(
                "provider.client_cert_file",
                "client_cert_file and client_key go together",
            ))
        }
    };
    let proxy = p
        .proxy
        .as_deref()
        .map(|u| Url::parse(u).map_err(|e| err("provider.proxy", e.to_string())))
        .transpose()?;
    Ok(IdpTls {
        extra_roots,
        client_identity,
        proxy,
    })
}

/// The private key of `private_key_jwt`, loaded now so a bad key fails the config load.
pub(super) fn signing_key(raw: &RawClientAuth) -> Result<Option<SigningKey>, ConfigError> {
    let Some(source) = &raw.private_key else {
        return Ok(None);
    };
    let pem = source.load().map_err(|e| err("client_auth.private_key", e))?;
    let (alg, key) = match raw.algorithm.as_str() {
        "RS256" => (Algorithm::RS256, EncodingKey::from_rsa_pem(pem.as_bytes())),
        "PS256" => (Algorithm::PS256, EncodingKey::from_rsa_pem(pem.as_bytes())),
        "ES256" => (Algorithm::ES256, EncodingKey::from_ec_pem(pem.as_bytes())),
        other => {
            return Err(err(
                "client_auth.algorithm",
                format!("{other:?}: use RS256, PS256 or ES256"),
            ))
        }
    };
    let key = key.map_err(|e| {
        err(
            "client_auth.private_key",
            format!("not a PEM {} key: {e}", raw.algorithm),
        )
    })?;
    Ok(Some(SigningKey {
        key,
        alg,
        kid: raw.key_id.clone(),
    }))
}
