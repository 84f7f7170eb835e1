//! The identity provider as this filter knows it: discovery document, signing keys and a
//! ready OIDC client, fetched on the async core at config load and kept fresh.
//!
//! Readers take the current snapshot without locking ([`ProviderHandle::current`]);
//! the first requests wait (bounded) for the first snapshot; an unknown `kid` triggers a
//! rate-limited re-fetch.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use openidconnect::core::{CoreClient, CoreJsonWebKeySet, CoreProviderMetadata};
use openidconnect::{ClientId, EndpointMaybeSet, EndpointNotSet, EndpointSet, RedirectUrl};
use url::Url;

use crate::config::ProviderSettings;
use crate::error::IdpError;
use crate::oidc::client_auth::ClientAuth;
use crate::oidc::tokens::{accepted_issuers, TokenError, ALLOWED_ALGS};
use crate::oidc::transport::{get_json, IdpTransport};

/// The OIDC client with the endpoints discovery provides.
pub type OidcClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// One consistent view of the IdP.
pub struct Provider {
    /// The OIDC client built from discovery (with the JWKS inside).
    pub client: OidcClient,
    /// The same keys for `jsonwebtoken` (bearer and logout tokens).
    pub jwks: JwkSet,
    /// RP-initiated logout endpoint, if the IdP has one.
    pub end_session_endpoint: Option<Url>,
    /// The IdP promises `iss` on authorization responses (RFC 9207).
    pub iss_parameter_supported: bool,
    /// RFC 7662 token introspection, if the IdP has it.
    pub introspection_endpoint: Option<Url>,
    /// The token endpoint.
    pub token_endpoint: Option<Url>,
    /// How we authenticate there (and at introspection).
    pub client_auth: ClientAuth,
    /// A multi-tenant issuer's template (`https://login.microsoftonline.com/{tenantid}/v2.0`).
    pub tenant_issuer: Option<String>,
    /// The `iss` values tokens may carry: the issuer (and Google's bare spelling), or the
    /// template filled with each allowed tenant (built once, not per token).
    pub issuers: Vec<String>,
    /// When the keys were fetched.
    pub fetched_at: Instant,
}

/// How long discovery may fail before requests stop waiting for it: long enough for a
/// start-up race to resolve (the first retries come after 0.2, 0.6 and 1.4 s), short
/// enough that a user gets a page, not a hang.
pub const FAST_FAIL_AFTER: Duration = Duration::from_secs(1);

/// The shared, refreshed provider state of one filter config.
pub struct ProviderHandle {
    settings: Arc<ProviderSettings>,
    transport: Arc<dyn IdpTransport>,
    current: ArcSwapOption<Provider>,
    ready: tokio::sync::Notify,
    /// When discovery first failed (cleared by no success: once discovered, the snapshot
    /// answers). Past [`FAST_FAIL_AFTER`] of failing, requests fail at once.
    failing_since: Mutex<Option<Instant>>,
    last_key_refresh: Mutex<Option<Instant>>,
    /// The keys skipped at the last fetch (logged when that changes).
    last_skipped: Mutex<Vec<String>>,
}

impl ProviderHandle {
    /// A handle with nothing fetched yet, talking to the IdP through `transport`.
    pub fn new(settings: Arc<ProviderSettings>, transport: Arc<dyn IdpTransport>) -> Arc<Self> {
        Arc::new(Self {
            settings,
            transport,
            current: ArcSwapOption::empty(),
            ready: tokio::sync::Notify::new(),
            failing_since: Mutex::new(None),
            last_key_refresh: Mutex::new(None),
            last_skipped: Mutex::new(Vec::new()),
        })
    }

    /// A GET of JSON from the IdP (userinfo with `bearer`): the body of a 2xx answer.
    pub async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Vec<u8>, IdpError> {
        self.send_json(get_json(url, bearer)?).await
    }

    /// One request, any status (the caller reads it).
    pub async fn send(&self, request: openidconnect::HttpRequest) -> Result<openidconnect::HttpResponse, IdpError> {
        self.transport.send(request).await
    }

    /// Any request for JSON: the body of a 2xx answer.
    pub async fn send_json(&self, request: openidconnect::HttpRequest) -> Result<Vec<u8>, IdpError> {
        let resp = self.transport.send(request).await?;
        if !resp.status().is_success() {
            return Err(IdpError::Status(resp.status().as_u16()));
        }
        Ok(resp.into_body())
    }

    /// The provider settings.
    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    /// The current snapshot, if discovery has succeeded once. No I/O, no lock.
    pub fn current(&self) -> Option<Arc<Provider>> {
        self.current.load_full()
    }

    /// The snapshot, waiting up to `limit` for the first discovery. A start-up race (the
    /// IdP behind this same Envoy, whose listener is not up yet) is waited out; an IdP
    /// that has been failing for [`FAST_FAIL_AFTER`] gets `NotReady` at once (a fast 503,
    /// not a hang), until an attempt succeeds.
    pub async fn wait(&self, limit: Duration) -> Result<Arc<Provider>, IdpError> {
        let deadline = Instant::now() + limit;
        loop {
            // Registered before the checks: a notification in between is not lost.
            let notified = self.ready.notified();
            if let Some(p) = self.current() {
                return Ok(p);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.failing_for(FAST_FAIL_AFTER) {
                return Err(IdpError::NotReady);
            }
            // Woken by each attempt's outcome, success or failure.
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// Whether discovery has failed at least once and not succeeded since (readiness
    /// reports why it is not ready).
    pub fn has_failed(&self) -> bool {
        self.failing_for(Duration::ZERO)
    }

    fn failing_for(&self, at_least: Duration) -> bool {
        let since = self.failing_since.lock().unwrap_or_else(|p| p.into_inner());
        since.is_some_and(|t| t.elapsed() >= at_least)
    }

    /// Fetches discovery and keys now and installs the result.
    pub async fn refresh(&self) -> Result<Arc<Provider>, IdpError> {
        let p = Arc::new(self.fetch().await?);
        self.current.store(Some(p.clone()));
        self.ready.notify_waiters();
        Ok(p)
    }

    /// Re-fetches after a token named a key we do not have, at most once per
    /// `jwks_min_refresh`. Returns the snapshot to retry with, if a fetch happened.
    pub async fn refresh_for_unknown_key(&self) -> Option<Arc<Provider>> {
        {
            let mut last = self.last_key_refresh.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < self.settings.jwks_min_refresh) {
                return None;
            }
            *last = Some(Instant::now());
        }
        match self.refresh().await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "key refresh for an unknown kid failed");
                None
            }
        }
    }

    /// Verifies with `p`'s keys; a token signed with a key not fetched yet (rotation)
    /// fetches the keys again (rate limited) and is verified once more.
    pub async fn verify<T>(
        &self,
        p: &Provider,
        verify: impl Fn(&Provider) -> Result<T, TokenError>,
    ) -> Result<T, TokenError> {
        match verify(p) {
            Err(TokenError::UnknownKey) => {
                tracing::info!("token signed with a key id not fetched yet: fetching the keys again");
                match self.refresh_for_unknown_key().await {
                    Some(fresh) => verify(&fresh),
                    None => Err(TokenError::UnknownKey),
                }
            }
            other => other,
        }
    }

    /// Keeps the snapshot fresh: first fetch with backoff, then every `refresh_interval`.
    pub async fn maintain(self: Arc<Self>) {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.refresh().await {
                Ok(_) => {
                    *self.failing_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    tracing::info!(issuer = %self.settings.issuer, "identity provider discovered");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, issuer = %self.settings.issuer, retry_ms = delay.as_millis() as u64, "discovery failed");
                    self.failing_since
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert_with(Instant::now);
                    // Waiting requests look again: past the fast-fail point they give up.
                    self.ready.notify_waiters();
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        loop {
            tokio::time::sleep(self.settings.refresh_interval).await;
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "periodic discovery failed; keeping the previous keys");
            }
        }
    }

    async fn fetch(&self) -> Result<Provider, IdpError> {
        let s = &self.settings;
        let url = format!("{}/.well-known/openid-configuration", s.issuer.trim_end_matches('/'));
        let doc = self.get_json(&url, None).await?;
        let metadata: CoreProviderMetadata = serde_json::from_slice(&doc).map_err(IdpError::Discovery)?;
        let extra: serde_json::Value = serde_json::from_slice(&doc).map_err(IdpError::Discovery)?;
        // OIDC Discovery §4.3: the issuer in the document MUST exactly match; Entra ID's
        // multi-tenant endpoints (`/common/v2.0`) publish a template instead, accepted only
        // with an allow-list of tenants (`provider.tenants`).
        let discovered = metadata.issuer().as_str();
        let tenant_issuer = if discovered == s.issuer {
            None
        } else if discovered.contains("{tenantid}") && !s.tenants.is_empty() {
            Some(discovered.to_owned())
        } else {
            return Err(IdpError::IssuerMismatch {
                configured: s.issuer.clone(),
                discovered: discovered.to_owned(),
            });
        };
        let keys = self.get_json(metadata.jwks_uri().as_str(), None).await?;
        let (jwks, kept, skipped) = usable_keys(&keys)?;
        if !skipped.is_empty() {
            let mut last = self.last_skipped.lock().unwrap_or_else(|p| p.into_inner());
            if *last != skipped {
                tracing::warn!(issuer = %s.issuer, keys = %skipped.join(", "), "skipped keys we cannot use for signatures");
                *last = skipped;
            }
        }
        // openidconnect keeps its own copy (unused for verification, which is ours).
        let oidc_keys: CoreJsonWebKeySet = serde_json::from_value(serde_json::json!({ "keys": kept }))
            .unwrap_or_else(|_| CoreJsonWebKeySet::new(Vec::new()));
        let metadata = metadata.set_jwks(oidc_keys);
        let end_session_endpoint = extra["end_session_endpoint"].as_str().and_then(|u| Url::parse(u).ok());
        let iss_parameter_supported = extra["authorization_response_iss_parameter_supported"].as_bool() == Some(true);
        let introspection_endpoint = extra["introspection_endpoint"]
            .as_str()
            .and_then(|u| Url::parse(u).ok());
        let token_endpoint = metadata.token_endpoint().map(|u| u.url().clone());
        let supported: Vec<String> = extra["token_endpoint_auth_methods_supported"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let client_auth = ClientAuth::choose(s.client_auth, s.client_key.is_some(), &supported);
        let redirect = RedirectUrl::new(s.redirect_uri.to_string())
            .map_err(|e| IdpError::Malformed(format!("redirect_uri: {e}")))?;
        // Without the secret: our own token client authenticates (with the secret in force
        // now), and ID tokens are never HMAC-signed (`ALLOWED_ALGS`).
        let client = CoreClient::from_provider_metadata(metadata, ClientId::new(s.client_id.clone()), None)
            .set_redirect_uri(redirect);
        Ok(Provider {
            client,
            jwks,
            end_session_endpoint,
            iss_parameter_supported,
            introspection_endpoint,
            token_endpoint,
            client_auth,
            issuers: match &tenant_issuer {
                Some(template) => s.tenants.iter().map(|t| template.replace("{tenantid}", t)).collect(),
                None => accepted_issuers(&s.issuer).into_iter().map(str::to_owned).collect(),
            },
            tenant_issuer,
            fetched_at: Instant::now(),
        })
    }
}

/// The JWKS keys usable for signatures: parsed by `jsonwebtoken`, `use` absent or `sig`,
/// an allowed algorithm when one is named, and a key that loads. One key we cannot use (an
/// X25519 or Ed448 key, an encryption key, a type we do not know) must not lock every user
/// out: it is skipped and named. Returns the set, the kept keys as JSON, and the skipped.
fn usable_keys(doc: &[u8]) -> Result<(JwkSet, Vec<serde_json::Value>, Vec<String>), IdpError> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(doc).map_err(IdpError::Discovery)?;
    let (mut keys, mut kept, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for raw in doc.keys {
        let kid = raw.get("kid").and_then(|k| k.as_str()).unwrap_or("(no kid)").to_owned();
        let why = match serde_json::from_value::<Jwk>(raw.clone()) {
            Err(_) => Some("unknown key type or curve"),
            Ok(_) if raw.get("use").and_then(|u| u.as_str()).is_some_and(|u| u != "sig") => Some("not a signing key"),
            Ok(jwk) if jwk.common.key_algorithm.is_some_and(|a| !allowed(a)) => Some("algorithm not allowed"),
            Ok(jwk) if DecodingKey::from_jwk(&jwk).is_err() => Some("unusable key"),
            Ok(jwk) => {
                keys.push(jwk);
                kept.push(raw);
                None
            }
        };
        if let Some(why) = why {
            skipped.push(format!("{kid} ({why})"));
        }
    }
    Ok((JwkSet { keys }, kept, skipped))
}

/// Whether a JWK's `alg` is one we verify with (the names are shared, RFC 7518).
fn allowed(alg: KeyAlgorithm) -> bool {
    Algorithm::from_str(&alg.to_string()).is_ok_and(|a| ALLOWED_ALGS.contains(&a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_keys_we_cannot_use() {
        let doc = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "good", "alg": "ES256", "use": "sig",
             "x": "IbdEh9fIMyFWQx4YBMR_35E5KB1bTfI55dAXm7N_9pY", "y": "LBPC1JYs5xv--kfXSkAUek_rtpd62yjclPJSDEmHIFo"},
            {"kty": "OKP", "crv": "X25519", "kid": "x", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": "IbdEh9fIMyFWQx4YBMR_35E5KB1bTfI55dAXm7N_9pY", "y": "LBPC1JYs5xv--kfXSkAUek_rtpd62yjclPJSDEmHIFo"},
            {"kty": "oct", "kid": "hmac", "alg": "HS256", "k": "c2VjcmV0"},
            {"kty": "WHAT", "kid": "future"}
        ]});
        let (set, kept, skipped) = usable_keys(doc.to_string().as_bytes()).expect("parsed");
        assert_eq!(set.keys.len(), 1);
        assert_eq!(kept.len(), 1);
        assert_eq!(skipped.len(), 4, "{skipped:?}");
        assert!(
            skipped.iter().any(|s| s.starts_with("hmac")),
            "an HMAC key is never used"
        );
        assert!(usable_keys(b"{\"nokeys\": 1}").is_err());
    }
}
