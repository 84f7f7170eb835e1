//! Opaque access tokens (RFC 7662): asked about at the IdP's introspection endpoint with
//! our client credentials, the answer checked like a JWT's claims and cached (bounded, at
//! most until the token expires), so an API client costs one IdP call per token and TTL.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::{BearerSettings, IntrospectionSettings, ProviderSettings};
use crate::error::IdpError;
use crate::oidc::access_tokens::{self, AccessTokenClaims};
use crate::oidc::provider::ProviderHandle;
use crate::oidc::token_endpoint;
use crate::oidc::tokens::{Audience, Verified};

/// How long a "not active" answer is remembered (a flood of garbage tokens costs the IdP
/// one call per token per this, within the cache's bound).
const NEGATIVE_TTL_SECS: u64 = 10;

/// An introspection answer as kept: the claims, or why the token is refused.
pub type Answer = Result<Verified<AccessTokenClaims>, String>;

/// What RFC 7662 §2.2 says about a token, as far as the filter uses it.
#[derive(Deserialize)]
struct Response {
    active: bool,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

struct Cached {
    answer: Answer,
    until: u64,
}

/// The cache of introspection answers, keyed by a hash of the token.
pub struct Introspector {
    cache: moka::sync::Cache<[u8; 32], Arc<Cached>>,
    ttl: u64,
}

fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Introspector {
    /// A cache as configured.
    pub fn new(s: &IntrospectionSettings) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(s.cache_capacity)
                .time_to_live(s.cache_ttl.max(Duration::from_secs(NEGATIVE_TTL_SECS)))
                .build(),
            ttl: s.cache_ttl.as_secs(),
        }
    }

    /// The cached answer for `token`, if still good at `now`. No I/O.
    pub fn cached(&self, token: &str, now: u64) -> Option<Answer> {
        self.cache
            .get(&key(token))
            .filter(|c| c.until > now)
            .map(|c| c.answer.clone())
    }

    /// Asks the IdP, checks the answer, caches it.
    pub async fn introspect(
        &self,
        provider: &ProviderHandle,
        token: &str,
        policy: &BearerSettings,
        now: u64,
    ) -> Result<Answer, IdpError> {
        let snapshot = provider.current().ok_or(IdpError::NotReady)?;
        let endpoint = snapshot
            .introspection_endpoint
            .as_ref()
            .ok_or(IdpError::NoEndpoint("introspection"))?;
        let form = [("token", token), ("token_type_hint", "access_token")];
        let request = token_endpoint::form_post(endpoint.as_str(), provider.settings(), snapshot.client_auth, &form)?;
        let body = provider.send_json(request).await?;
        // Parsed once: the typed fields are read from the same value the claims come from.
        let value: Value = serde_json::from_slice(&body).map_err(|e| IdpError::Malformed(e.to_string()))?;
        let response = Response::deserialize(&value).map_err(|e| IdpError::Malformed(e.to_string()))?;
        let Value::Object(payload) = value else {
            return Err(IdpError::Malformed("introspection answer is not an object".into()));
        };
        let answer = check(response, payload, provider.settings(), policy, now);
        let until = match &answer {
            Ok(v) => now + self.ttl.min(v.claims.exp.saturating_sub(now)),
            Err(_) => now + NEGATIVE_TTL_SECS,
        };
        self.cache.insert(
            key(token),
            Arc::new(Cached {
                answer: answer.clone(),
                until,
            }),
        );
        Ok(answer)
    }
}

/// An active token of our issuer, for one of our audiences, not expired, not a refresh
/// token, with a usable subject, issued to an authorized client.
fn check(r: Response, payload: Map<String, Value>, s: &ProviderSettings, policy: &BearerSettings, now: u64) -> Answer {
    if !r.active {
        return Err("not active".into());
    }
    if r.iss.as_deref().is_some_and(|iss| iss != s.issuer) {
        return Err("issued by another issuer".into());
    }
    if r.aud.as_ref().is_some_and(|aud| !aud.any_of(&policy.audiences)) {
        return Err("not for us (aud)".into());
    }
    if r.token_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("refresh_token"))
    {
        return Err("a refresh token".into());
    }
    let skew = s.clock_skew.as_secs();
    let exp = r.exp.unwrap_or(now + 60);
    if exp + skew <= now {
        return Err("expired".into());
    }
    if r.nbf.is_some_and(|nbf| nbf > now + skew) {
        return Err("not yet valid".into());
    }
    let claims = AccessTokenClaims {
        iss: r.iss.unwrap_or_else(|| s.issuer.clone()),
        sub: r.sub.ok_or("no sub")?,
        aud: r.aud.unwrap_or_else(|| Audience::One(s.client_id.clone())),
        exp,
        iat: payload.get("iat").and_then(Value::as_u64),
        client_id: payload
            .get("client_id")
            .or_else(|| payload.get("azp"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    access_tokens::access_token_client(&claims, policy, &s.client_id).map_err(|e| e.to_string())?;
    Ok(Verified { claims, payload })
}
