//! Refreshing access tokens: single-flight per session in this process (concurrent
//! requests share one refresh), and under the store's short lock across replicas, so a
//! rotating refresh token is never used twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::{OAuth2TokenResponse, RefreshToken as OidcRefreshToken, RequestTokenError, TokenResponse};
use session_store::{IdToken, OpenedTicket, RefreshToken, Session};

use crate::gateway::Gateway;

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

/// Whether the session's access token should be refreshed now.
pub fn due(gw: &Gateway, s: &Session, now: u64) -> bool {
    s.tokens.refresh.is_some()
        && s.tokens
            .access_expires_at
            .is_some_and(|exp| exp <= now + gw.settings.refresh.leeway.as_secs())
}

/// Refreshes (or waits for a concurrent refresh); `None` if the session ended.
pub async fn refresh(gw: &Arc<Gateway>, ticket: &OpenedTicket) -> (Option<Arc<Session>>, RefreshOutcome) {
    let key = ticket.store_key();
    let gw2 = gw.clone();
    let t = ticket.clone();
    // Concurrent callers for the same session in this process await the same future;
    // only the caller that ran it reports its outcome, the others report `Shared`.
    let entry = gw
        .refreshing
        .entry(key)
        .or_insert_with(async move { Arc::new(refresh_across_replicas(&gw2, &t).await) })
        .await;
    let fresh = entry.is_fresh();
    let (session, outcome) = entry.into_value().as_ref().clone();
    (session, if fresh { outcome } else { RefreshOutcome::Shared })
}

/// A refresh result as shared between coalesced callers.
pub type Shared = (Option<Arc<Session>>, RefreshOutcome);

async fn refresh_across_replicas(gw: &Gateway, t: &OpenedTicket) -> Shared {
    let deadline = Instant::now() + gw.settings.refresh.lock_ttl;
    loop {
        let now = session_store::unix_now();
        match gw.sessions.try_lock(t, gw.settings.refresh.lock_ttl).await {
            Ok(Some(lock)) => {
                let result = refresh_locked(gw, t, now).await;
                if let Err(e) = gw.sessions.unlock(t, &lock).await {
                    tracing::warn!(error = %e, "refresh lock release failed (it expires by itself)");
                }
                return result;
            }
            Ok(None) => {
                // Another replica holds the lock: wait for its result in the store.
                tokio::time::sleep(Duration::from_millis(50)).await;
                match gw.sessions.load(t, session_store::unix_now()).await {
                    Ok(Some(s)) if !due(gw, &s, session_store::unix_now()) => return (Some(s), RefreshOutcome::Shared),
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

async fn refresh_locked(gw: &Gateway, t: &OpenedTicket, now: u64) -> Shared {
    // Re-read under the lock: the previous holder may have refreshed already.
    let current = match gw.sessions.load(t, now).await {
        Ok(Some(s)) => s,
        Ok(None) => return (None, RefreshOutcome::Ended),
        Err(e) => {
            tracing::warn!(error = %e, "session reload before refresh failed");
            return (None, RefreshOutcome::Failed);
        }
    };
    if !due(gw, &current, now) {
        return (Some(current), RefreshOutcome::Shared);
    }
    let Some(refresh_token) = current.tokens.refresh.as_ref() else {
        return (Some(current), RefreshOutcome::Shared);
    };
    let provider = match gw.provider.wait(gw.settings.timeouts.startup_wait).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "refresh: provider unavailable");
            return (Some(current), RefreshOutcome::Failed);
        }
    };
    let rt = OidcRefreshToken::new(refresh_token.secret().to_owned());
    let request = match provider.client.exchange_refresh_token(&rt) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "refresh: no token endpoint");
            return (Some(current), RefreshOutcome::Failed);
        }
    };
    match request.request_async(gw.provider.http()).await {
        Ok(token) => {
            let mut s = (*current).clone();
            s.tokens.access = session_store::AccessToken::new(token.access_token().secret().clone());
            s.tokens.access_expires_at = token.expires_in().map(|d| now + d.as_secs());
            if let Some(r) = token.refresh_token() {
                s.tokens.refresh = Some(RefreshToken::new(r.secret().clone()));
            }
            if let Some(id) = token.id_token() {
                s.tokens.id_token = Some(IdToken::new(id.to_string()));
            }
            s.touch(now, gw.settings.session.lifetimes);
            match gw.sessions.save(t, s, now).await {
                Ok(saved) => (Some(saved), RefreshOutcome::Refreshed),
                Err(e) => {
                    tracing::warn!(error = %e, "refreshed tokens could not be stored");
                    (Some(current), RefreshOutcome::Failed)
                }
            }
        }
        Err(RequestTokenError::ServerResponse(r)) if r.error().to_string() == "invalid_grant" => {
            tracing::info!("refresh token rejected (invalid_grant): ending the session");
            let _ = gw.sessions.delete(t).await;
            (None, RefreshOutcome::Ended)
        }
        Err(e) => {
            tracing::warn!(error = %e, "refresh failed; keeping the session until its token expires");
            (Some(current), RefreshOutcome::Failed)
        }
    }
}
