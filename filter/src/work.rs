//! The async half of the decisions: each [`Work`] runs on the async core and ends in the
//! same decision functions as the synchronous path.

use std::sync::Arc;

use crate::bearer;
use crate::decide::{self, Decision, Unauthenticated, Verdict, Work};
use crate::endpoints;
use crate::failure::Failure;
use crate::gateway::Gateway;
use crate::metrics::Metric;
use crate::oidc::login::{self, LoginStart};
use crate::oidc::refresh::RefreshOutcome;
use crate::oidc::tokens::{TokenError, Verifier};

/// Runs one piece of work to its decision (never [`Verdict::Async`] again). Each kind of
/// work is boxed: this future stays a few words, so the worker moves (and the runtime
/// polls) no kilobytes of HTTP-client state for work that does not need it.
pub async fn run(gw: Arc<Gateway>, work: Work) -> Decision {
    match work {
        Work::Session {
            ticket,
            cached,
            route,
            next,
        } => Box::pin(session(&gw, ticket, cached, route, next)).await,
        Work::Bearer { token, route } => Box::pin(bearer(&gw, token, route)).await,
        Work::Introspect { token, route } => Box::pin(introspect(&gw, token, route)).await,
        Work::Login(next) => Box::pin(login(&gw, next)).await,
        Work::Callback(cb) => {
            let _counted = gw.logins.enter();
            Box::pin(endpoints::callback::complete(&gw, cb)).await
        }
        Work::SignOut(check) => Box::pin(endpoints::sign_out::run(&gw, check)).await,
    }
}

async fn session(
    gw: &Gateway,
    ticket: session_store::OpenedTicket,
    cached: bool,
    route: std::sync::Arc<crate::config::RouteSettings>,
    next: Unauthenticated,
) -> Decision {
    let now = gw.clock.now();
    let mut metrics = decide::Metrics::new();
    // A cached session may have left the cache since the check: then read the store.
    let loaded = match gw.sessions.cache().get(&ticket.store_key()).filter(|_| cached) {
        Some(s) => Ok(Some(s)),
        None => gw.sessions.load(&ticket, now).await,
    };
    let mut session = match loaded {
        Ok(s) => s,
        Err(e) => {
            return Decision {
                verdict: Verdict::Fail(Failure::from(e)),
                metrics: smallvec::smallvec![Metric::StoreError],
            }
        }
    };
    if session
        .as_ref()
        .is_some_and(|s| crate::oidc::refresh::due(&gw.settings.refresh, s, now))
    {
        let (refreshed, outcome) = gw.refresher.refresh(&gw.refresh_context(), &ticket).await;
        metrics.push(Metric::Refresh(outcome.label()));
        session = match outcome {
            RefreshOutcome::Ended => None,
            // Keep serving the old session if the IdP is briefly away.
            _ => refreshed.or(session),
        };
    }
    if let Some(t) = session.as_ref().and_then(|s| decide::touched(gw, s, now)) {
        match gw.sessions.save(&ticket, t, now).await {
            // `None`: it ended meanwhile, and the request is treated as signed out.
            Ok(saved) => session = saved,
            Err(e) => tracing::warn!(error = %e, "session idle-expiry update failed"),
        }
    }
    let mut decision = match session {
        Some(session) => decide::for_session(gw, &session, &route).into(),
        None => match next {
            Unauthenticated::Browser(start) => {
                // The cookie named a session that is gone: drop it with the redirect.
                let start = LoginStart {
                    clear_cookie: true,
                    ..start
                };
                login(gw, Unauthenticated::Browser(start)).await
            }
            api => decide::unauthenticated(gw, api, now),
        },
    };
    metrics.extend(decision.metrics.drain(..));
    Decision {
        verdict: decision.verdict,
        metrics,
    }
}

async fn bearer(gw: &Gateway, token: String, route: std::sync::Arc<crate::config::RouteSettings>) -> Decision {
    let s = &gw.settings;
    let provider = match gw.provider.refresh_for_unknown_key().await {
        Some(p) => Some(p),
        None => gw.provider.wait(s.timeouts.startup_wait).await.ok(),
    };
    match provider.map(|p| Verifier::new(&p, &s.provider).access_token(&token, &s.bearer)) {
        Some(Ok(verified)) => bearer::for_bearer(gw, &token, &verified, &route),
        Some(Err(e @ (TokenError::Invalid(_) | TokenError::UnknownKey))) => bearer::invalid_bearer(e.to_string()),
        None => Verdict::Fail(Failure::from(crate::error::IdpError::NotReady)).into(),
    }
}

async fn introspect(gw: &Gateway, token: String, route: std::sync::Arc<crate::config::RouteSettings>) -> Decision {
    let Some(introspector) = &gw.introspector else {
        return bearer::invalid_bearer("introspection is off".into());
    };
    if let Err(e) = gw.provider.wait(gw.settings.timeouts.startup_wait).await {
        return Verdict::Fail(Failure::from(e)).into();
    }
    let now = gw.clock.now();
    match introspector
        .introspect(&gw.provider, &token, &gw.settings.bearer, now)
        .await
    {
        Ok(answer) => bearer::introspected(gw, answer, &route),
        Err(e) => Verdict::Fail(Failure::from(e)).into(),
    }
}

async fn login(gw: &Gateway, next: Unauthenticated) -> Decision {
    let Unauthenticated::Browser(start) = next else {
        return decide::unauthenticated(gw, next, gw.clock.now());
    };
    match gw.provider.wait(gw.settings.timeouts.startup_wait).await {
        Ok(p) => login::redirect(gw, &p, start, gw.clock.now()),
        Err(e) => Verdict::Fail(Failure::from(e)).into(),
    }
}
