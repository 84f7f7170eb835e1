//! Starting a login: 302 to the authorization endpoint with `state`, `nonce` and PKCE
//! S256; the flow's secrets travel in a short-lived sealed cookie named after the state,
//! so several tabs can log in at once and nothing is written to the store.

use std::sync::atomic::{AtomicUsize, Ordering};

use openidconnect::core::CoreAuthenticationFlow;
use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge, Scope};
use serde::{Deserialize, Serialize};

use async_filter::LocalReply;

use crate::decide::{Decision, Verdict};
use crate::failure::{Failure, FailureKind};
use crate::gateway::Gateway;
use crate::metrics::Metric;
use crate::oidc::provider::Provider;

/// How long a login may take at the IdP.
pub const FLOW_TTL_SECS: u64 = 600;
/// Characters of the state used in the flow cookie's name.
const NAME_CHARS: usize = 16;

/// What the flow cookie carries (sealed; the cookie name is the associated data).
/// `Debug` shows where the user was going, never the flow's secrets.
#[derive(Serialize, Deserialize)]
pub struct FlowState {
    /// Anti-CSRF state, compared with the callback's `state`.
    pub state: String,
    /// Replay protection, compared with the ID token's `nonce`.
    pub nonce: String,
    /// PKCE verifier (RFC 7636).
    pub verifier: String,
    /// Where the user was going (same-origin path).
    pub target: String,
    /// The redirect URI of this login (the host's own, or the configured one).
    pub redirect_uri: String,
}

impl std::fmt::Debug for FlowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowState")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The flow cookie's name for a given state, or `None` for a state we never issue.
pub fn flow_cookie_name(prefix: &str, state: &str) -> Option<String> {
    let ok = state.len() >= NAME_CHARS
        && state.len() <= 128
        && state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| format!("{prefix}{}", &state[..NAME_CHARS]))
}

/// The redirect to the IdP: `Location` and the flow cookie to set.
pub struct LoginRedirect {
    /// Authorization URL.
    pub location: String,
    /// `Set-Cookie` value of the flow cookie.
    pub flow_cookie: String,
}

/// Builds the authorization request for a user headed to `target`.
pub fn start(
    gw: &Gateway,
    provider: &Provider,
    target: String,
    params: &[(String, String)],
    redirect_uri: Option<&url::Url>,
    now: u64,
) -> Result<LoginRedirect, session_store::SealError> {
    let redirect_url = redirect_uri.unwrap_or(&gw.settings.provider.redirect_uri);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = provider
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        // Already parsed (config or host table): cloned, never parsed again per login.
        .set_redirect_uri(std::borrow::Cow::Owned(openidconnect::RedirectUrl::from_url(
            redirect_url.clone(),
        )));
    for scope in gw.settings.provider.scopes.iter().filter(|s| *s != "openid") {
        req = req.add_scope(Scope::new(scope.clone()));
    }
    // The filter's own parameters, then the route's and the request's over them.
    let global = &gw.settings.provider.extra_authorize_params;
    for (name, value) in global.iter().filter(|(n, _)| !params.iter().any(|(p, _)| p == n)) {
        req = req.add_extra_param(name.as_str(), value.as_str());
    }
    for (name, value) in params {
        req = req.add_extra_param(name.as_str(), value.as_str());
    }
    let (url, state, nonce) = req.url();
    let state = state.secret().clone();
    let c = &gw.settings.cookie;
    let name = flow_cookie_name(&c.flow_prefix, &state)
        .unwrap_or_else(|| unreachable!("CsrfToken::new_random is base64url of 16 bytes"));
    let flow = FlowState {
        state,
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        target,
        redirect_uri: redirect_url.to_string(),
    };
    let sealed = gw.sessions.sealer().seal(&name, &flow, now + FLOW_TTL_SECS)?;
    Ok(LoginRedirect {
        location: url.to_string(),
        flow_cookie: c.flow(&name, &sealed, FLOW_TTL_SECS),
    })
}

/// A login to start: where to, and what the redirect to the IdP carries.
#[derive(Debug, Clone)]
pub struct LoginStart {
    /// Same-origin path to return to.
    pub target: String,
    /// Also expire the session cookie (it named a bad or ended session).
    pub clear_cookie: bool,
    /// Flow cookies to drop so the browser keeps at most the configured number.
    pub stale_flows: Vec<String>,
    /// Authorization-request parameters of this login (the route's, the request's).
    pub params: Vec<(String, String)>,
    /// This host's redirect URI, when it has its own.
    pub redirect_uri: Option<url::Url>,
}

/// The 302 to the IdP with a fresh flow cookie.
pub fn redirect(gw: &Gateway, provider: &Provider, login: LoginStart, now: u64) -> Decision {
    let LoginStart {
        target,
        clear_cookie,
        stale_flows,
        params,
        redirect_uri,
    } = login;
    let redirect = match start(gw, provider, target, &params, redirect_uri.as_ref(), now) {
        Ok(r) => r,
        Err(e) => return Verdict::Fail(Failure::because(FailureKind::Internal, "login_seal", e)).into(),
    };
    let c = &gw.settings.cookie;
    let mut headers = vec![
        ("location".to_owned(), redirect.location.into_bytes()),
        ("set-cookie".to_owned(), redirect.flow_cookie.into_bytes()),
        ("cache-control".to_owned(), b"no-store".to_vec()),
    ];
    if clear_cookie {
        headers.push(("set-cookie".into(), c.expire(&c.name).into_bytes()));
    }
    for name in &stale_flows {
        headers.push(("set-cookie".into(), c.expire(name).into_bytes()));
    }
    Decision::counting(
        Verdict::Reply(LocalReply {
            status: 302,
            headers,
            body: Vec::new(),
            details: "oidc_login_redirect".into(),
        }),
        Metric::LoginStarted,
    )
}

/// Code exchanges in flight for one IdP. A slow or hanging IdP makes them pile up; past
/// a bound, new logins get the busy page at once (503, `Retry-After`) instead of adding
/// to the pile, so the worker's share of login work stays bounded.
#[derive(Debug, Default)]
pub struct LoginsInFlight(AtomicUsize);

/// One code exchange, counted until it ends however it ends (answer, deadline, client
/// gone: the task is dropped with it).
pub struct InFlightLogin<'a>(&'a AtomicUsize);

impl LoginsInFlight {
    /// Counts a code exchange until the guard is dropped.
    pub fn enter(&self) -> InFlightLogin<'_> {
        self.0.fetch_add(1, Ordering::AcqRel);
        InFlightLogin(&self.0)
    }

    /// Whether a new login may start: below three quarters of `max`, so that users
    /// already at the IdP can still come back (callbacks are refused at `max`).
    pub fn start_allowed(&self, max: usize) -> bool {
        self.0.load(Ordering::Acquire) < max - max / 4
    }

    /// Whether a callback may exchange its code: below `max`.
    pub fn exchange_allowed(&self, max: usize) -> bool {
        self.0.load(Ordering::Acquire) < max
    }
}

impl Drop for InFlightLogin<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The busy page for a login refused by the bound.
pub fn busy() -> Decision {
    Decision::counting(
        Verdict::Fail(Failure::new(FailureKind::Overloaded, "logins_busy")),
        Metric::LoginFailed("logins_busy"),
    )
}
