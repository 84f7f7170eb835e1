//! Refreshing access tokens: single-flight per session in this process (concurrent
//! requests share one refresh), and under the store's short lock across replicas, so a
//! rotating refresh token is never used twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store::{IdToken, Lifetimes, OpenedTicket, RefreshToken, Session, Sessions, StoreKey};

use crate::authz;
use crate::clock::Clock;
use crate::config::{AuthzRules, RefreshSettings};
use crate::oidc::provider::ProviderHandle;
use crate::oidc::token_endpoint::{self, TokenEndpointError};
use crate::oidc::tokens::{IdTokenCheck, Verifier};
use crate::oidc::{claims, userinfo};

/// How a refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// This process called the IdP and stored new tokens.
    Refreshed,
    /// Someone else (another request or replica) refreshed; we use their result.
    Shared,
    /// The IdP refused the refresh token (`invalid_grant`): the session ended.
    Ended,
    /// The IdP or store failed; the session is left as it was.
    Failed,
}

impl RefreshOutcome {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            RefreshOutcome::Refreshed => "refreshed",
            RefreshOutcome::Shared => "shared",
            RefreshOutcome::Ended => "ended",
            RefreshOutcome::Failed => "failed",
        }
    }
}

/// Whether the session's access token should be refreshed now: within the leeway of its
/// expiry, the leeway being at most half the token's lifetime (a token living 20 s with a
/// 30 s leeway would otherwise be refreshed on every request).
pub fn due(policy: &RefreshSettings, s: &Session, now: u64) -> bool {
    s.has_refresh()
        && s.tokens.access_expires_at.is_some_and(|exp| {
            let leeway = policy.leeway.as_secs();
            let leeway = s
                .access_received_at
                .map_or(leeway, |got| leeway.min(exp.saturating_sub(got) / 2));
            exp <= now + leeway
        })
}

/// What a refresh needs, and nothing more (cheap to clone: handles).
#[derive(Clone)]
pub struct RefreshContext {
    /// Where sessions and the cross-replica lock live.
    pub sessions: Sessions,
    /// The IdP.
    pub provider: Arc<ProviderHandle>,
    /// Leeway and lock lifetime.
    pub policy: RefreshSettings,
    /// Lifetimes, to push the idle expiry of a refreshed session.
    pub lifetimes: Lifetimes,
    /// How long to wait for a first discovery.
    pub startup_wait: Duration,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// The claims kept (updated from a refreshed ID token and userinfo).
    pub claim_names: Arc<claims::ClaimNames>,
    /// The login rules, checked again with the updated claims.
    pub authz: AuthzRules,
}

/// A refresh result as shared between coalesced callers.
type Shared = (Option<Arc<Session>>, RefreshOutcome);

/// Refreshes single-flight: concurrent requests of one session in this process share
/// one refresh, and replicas take turns under the store's lock.
pub struct Refresher {
    in_flight: moka::future::Cache<StoreKey, Arc<Shared>>,
}

impl Default for Refresher {
    fn default() -> Self {
        Self {
            // Entries only coalesce concurrent callers; they expire right after.
            in_flight: moka::future::Cache::builder()
                .time_to_live(Duration::from_secs(1))
                .max_capacity(100_000)
                .build(),
        }
    }
}

impl Refresher {
    /// Refreshes (or waits for a concurrent refresh); `None` if the session ended.
    pub async fn refresh(&self, cx: &RefreshContext, ticket: &OpenedTicket) -> Shared {
        // Concurrent callers for the same session await the same future; only the
        // caller that ran it reports its outcome, the others report `Shared`.
        let (cx, t) = (cx.clone(), ticket.clone());
        let entry = self
            .in_flight
            .entry(ticket.store_key())
            .or_insert_with(async move { Arc::new(refresh_across_replicas(&cx, &t).await) })
            .await;
        let fresh = entry.is_fresh();
        if fresh {
            // Callers that waited have their copy; a later refresh must not get this one.
            self.in_flight.invalidate(&ticket.store_key()).await;
        }
        let (session, outcome) = entry.into_value().as_ref().clone();
        (session, if fresh { outcome } else { RefreshOutcome::Shared })
    }
}

async fn refresh_across_replicas(cx: &RefreshContext, t: &OpenedTicket) -> Shared {
    let deadline = Instant::now() + cx.policy.lock_ttl;
    loop {
        let now = cx.clock.now();
        match cx.sessions.try_lock(t, cx.policy.lock_ttl).await {
            Ok(Some(lock)) => {
                let result = refresh_locked(cx, t, now).await;
                if let Err(e) = cx.sessions.unlock(t, &lock).await {
                    tracing::warn!(error = %e, "refresh lock release failed (it expires by itself)");
                }
                return result;
            }
            Ok(None) => {
                // Another replica holds the lock: wait for its result in the store.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let now = cx.clock.now();
                match cx.sessions.load(t, now).await {
                    Ok(Some(s)) if !due(&cx.policy, &s, now) => return (Some(s), RefreshOutcome::Shared),
                    Ok(None) => return (None, RefreshOutcome::Ended),
                    _ if Instant::now() > deadline => return (None, RefreshOutcome::Failed),
                    _ => continue,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "refresh lock unavailable");
                return (None, RefreshOutcome::Failed);
            }
        }
    }
}

async fn refresh_locked(cx: &RefreshContext, t: &OpenedTicket, now: u64) -> Shared {
    // Re-read under the lock: the previous holder may have refreshed already.
    let current = match cx.sessions.load(t, now).await {
        Ok(Some(s)) => s,
        Ok(None) => return (None, RefreshOutcome::Ended),
        Err(e) => {
            tracing::warn!(error = %e, "session reload before refresh failed");
            return (None, RefreshOutcome::Failed);
        }
    };
    if !due(&cx.policy, &current, now) {
        return (Some(current), RefreshOutcome::Shared);
    }
    let Some(refresh_token) = current.tokens.refresh.as_ref() else {
        return (Some(current), RefreshOutcome::Shared);
    };
    let provider = match cx.provider.wait(cx.startup_wait).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "refresh: provider unavailable");
            return (Some(current), RefreshOutcome::Failed);
        }
    };
    match token_endpoint::refresh(&cx.provider, &provider, refresh_token.secret()).await {
        Ok(token) => {
            // OIDC Core §12.2: a new ID token is verified like the first (signature, iss,
            // aud, azp, exp, iat) and names the same user; otherwise nothing is stored.
            let mut id_token = None;
            let mut id_claims = None;
            if let Some(raw) = token.id_token.as_deref() {
                let access = token.access_token.as_str();
                let verify = |p: &crate::oidc::provider::Provider| {
                    let check = IdTokenCheck {
                        nonce: None,
                        access_token: access,
                        subject: Some(&current.subject),
                    };
                    Verifier::new(p, cx.provider.settings()).id_token(raw, check)
                };
                match cx.provider.verify(&provider, verify).await {
                    Ok(v) => id_claims = Some(v.payload().clone()),
                    Err(e) => {
                        tracing::warn!(error = %e, "refreshed ID token refused; the session keeps its tokens");
                        return (Some(current), RefreshOutcome::Failed);
                    }
                }
                id_token = Some(IdToken::new(raw.to_owned()));
            }
            let claims = updated_claims(cx, &provider, &current, id_claims.as_ref(), &token.access_token).await;
            let mut s = (*current).clone();
            s.tokens.access = session_store::AccessToken::new(token.access_token.clone());
            s.tokens.access_expires_at = token.expires_in.map(|secs| now + secs);
            s.access_received_at = Some(now);
            if let Some(r) = token.refresh_token.clone() {
                s.tokens.refresh = Some(RefreshToken::new(r));
            }
            if id_token.is_some() {
                s.tokens.id_token = id_token;
            }
            if let Some(claims) = claims {
                // Claims follow the IdP: a user it no longer lets in is out now.
                if !authz::allowed_at_login(&cx.authz, &claims) {
                    tracing::info!(subject = %s.subject, "refreshed claims no longer meet the login rules: ending the session");
                    if let Err(e) = cx.sessions.delete(t).await {
                        tracing::warn!(error = %e, "ended session could not be deleted (it expires by itself)");
                    }
                    return (None, RefreshOutcome::Ended);
                }
                s.claims = claims;
            }
            s.touch(now, cx.lifetimes);
            match cx.sessions.save(t, s, now).await {
                Ok(Some(saved)) => (Some(saved), RefreshOutcome::Refreshed),
                // Signed out or logged out by the IdP while the refresh ran: it stays so.
                Ok(None) => (None, RefreshOutcome::Ended),
                Err(e) => {
                    tracing::warn!(error = %e, "refreshed tokens could not be stored");
                    (Some(current), RefreshOutcome::Failed)
                }
            }
        }
        Err(TokenEndpointError::Refused { error }) if error == "invalid_grant" => {
            tracing::info!("refresh token rejected (invalid_grant): ending the session");
            if let Err(e) = cx.sessions.delete(t).await {
                tracing::warn!(error = %e, "ended session could not be deleted (it expires by itself)");
            }
            (None, RefreshOutcome::Ended)
        }
        Err(e) => {
            tracing::warn!(error = %e, "refresh failed; keeping the session until its token expires");
            (Some(current), RefreshOutcome::Failed)
        }
    }
}

/// The session's claims after a refresh: a new verified ID token (with userinfo when
/// configured) replaces them; userinfo alone overlays what it names; `None` keeps the old
/// ones (nothing new, or userinfo failed: the claims then follow at the next refresh).
async fn updated_claims(
    cx: &RefreshContext,
    provider: &crate::oidc::provider::Provider,
    current: &Session,
    id_claims: Option<&serde_json::Map<String, serde_json::Value>>,
    access_token: &str,
) -> Option<session_store::Claims> {
    let info = if cx.policy.userinfo {
        match userinfo::fetch(&cx.provider, provider, access_token, &current.subject).await {
            Ok(i) => Some(i),
            // As at login: a userinfo that refuses our token leaves the ID token's claims.
            Err(userinfo::UserinfoError::Refused(_)) if !cx.provider.settings().userinfo_required => None,
            Err(e) => {
                tracing::warn!(error = %e, "userinfo after refresh failed; claims kept until the next refresh");
                return None;
            }
        }
    } else {
        None
    };
    match (id_claims, &info) {
        (Some(id), info) => {
            let sources: Vec<_> = std::iter::once(id).chain(info.as_ref()).collect();
            Some(claims::select(&cx.claim_names, &sources))
        }
        (None, Some(info)) => Some(claims::overlay(&cx.claim_names, &current.claims, info)),
        (None, None) => None,
    }
}
