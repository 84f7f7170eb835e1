//! How the filter reaches and proves itself to the IdP: TLS trust (a private CA, the
//! system bundle), a client certificate, a proxy, and the private key of
//! `private_key_jwt`, all read at load so a bad file fails the config, not logins.

use jsonwebtoken::{Algorithm, EncodingKey};
use url::Url;
use zeroize::Zeroizing;

use super::fields::read_file;
use super::raw::{RawClientAuth, RawProvider};
use super::{err, ConfigError};
use crate::oidc::client_auth::SigningKey;
use crate::oidc::transport::IdpTls;

/// Where the system's CA bundle is on the distributions Envoy images use.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

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
