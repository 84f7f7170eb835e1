//! The decisions: what the filter does with a request, as data. The hook gathers
//! [`Facts`] from the stream, [`decide`] turns them (with what the session cache and the
//! provider snapshot say) into a [`Decision`], and only the hook applies it. Work that
//! needs I/O comes back as [`Verdict::Async`]; the task ends in the same functions
//! ([`for_session`], [`for_bearer`], [`unauthenticated`]), never in a second copy.

use std::borrow::Cow;

use envoy_module::TraceId;
use session_store::{Check, OpenedTicket, Session};

use crate::bearer;
use crate::config::{ClientAuthorization, CrossSiteSignOut, HeaderSettings, RouteSettings};
use crate::endpoints;
use crate::failure::{Failure, FailureKind};
use crate::gateway::Gateway;
use crate::http::is_api;
use crate::http::path;
use crate::http::request::RequestHeaders;
use crate::metrics::Metric;
use crate::oidc::login::{self, LoginStart};
use crate::oidc::refresh;
use crate::session::identity;
use async_filter::LocalReply;

/// What the hook read from the request, borrowed from Envoy's header map: decided on
/// before the stream is changed, so nothing is copied on the way to a verdict. (No
/// `Debug`: it holds cookies and credentials.)
pub struct Facts<'a> {
    /// The headers the filter reads (method, accept, cookie lines, trace...).
    pub req: &'a RequestHeaders<'a>,
    /// `:path` as sent (with the query).
    pub path: Cow<'a, str>,
    /// The route's rules (default: authenticate, no group rule).
    pub route: std::sync::Arc<RouteSettings>,
    /// Our session cookie's value, if sent.
    pub session_cookie: Option<&'a str>,
    /// Our login-flow cookies' names, oldest first.
    pub flow_cookies: Vec<&'a str>,
    /// `Authorization: Bearer` token, read before any header is stripped.
    pub bearer: Option<&'a str>,
    /// The path hides separators from route rules (`%2F`, `%5C`, `%2E%2E`) and such
    /// paths are refused.
    pub hidden_separators: bool,
    /// A sign-out request sent from another site (Fetch Metadata or `Origin`).
    pub other_site: bool,
    /// The redirect URI of a login started by this request, when its host has its own.
    pub redirect_uri: Option<url::Url>,
}

impl Facts<'_> {
    /// The path without query.
    pub fn bare_path(&self) -> &str {
        self.path.split('?').next().unwrap_or("/")
    }

    /// `:method` (empty when it is not text: it then matches no rule).
    pub fn method(&self) -> &str {
        std::str::from_utf8(self.req.method.unwrap_or(b"GET")).unwrap_or("")
    }

    /// The request's trace id (made when a log line or a reply needs it).
    pub fn trace(&self) -> TraceId {
        self.req.trace_id()
    }

    /// An API client (401) rather than a browser (302)?
    pub fn api(&self, gw: &Gateway) -> bool {
        is_api(&gw.settings.api, &self.path, self.req.accept, self.req.requested_with)
    }
}

/// A signed-in request's identity, to apply before continuing.
#[derive(Debug)]
pub struct Admission {
    /// Identity headers for the upstream and the user for access logs.
    pub identity: std::sync::Arc<identity::Identity>,
    /// The session with its idle expiry pushed, to write back (cache now, store later).
    pub touch: Option<(OpenedTicket, Session)>,
    /// Admitted on a bearer token, which then goes upstream as it came.
    pub by_bearer: bool,
}

impl Verdict {
    /// Whether the client's `authorization` header is removed before the upstream: it
    /// stays where it is the checked credential (bearer) or on public routes, and goes
    /// where a session admits the request (unless configured to keep it) or the filter
    /// sends its own.
    pub fn strips_authorization(&self, h: &HeaderSettings) -> bool {
        match self {
            Verdict::Admit(Admission { by_bearer: true, .. })
            | Verdict::Async(Work::Bearer { .. } | Work::Introspect { .. }) => false,
            Verdict::Admit(_) | Verdict::Async(Work::Session { .. }) => {
                h.access_token || h.client_authorization == ClientAuthorization::Strip
            }
            _ => false,
        }
    }
}

/// What happens to the request.
#[derive(Debug)]
pub enum Verdict {
    /// Continue without identity (public route, pass-through rule).
    Pass,
    /// Continue as this user.
    Admit(Admission),
    /// Answer with this reply (login redirect, sign-out page, logout acknowledgement).
    Reply(LocalReply),
    /// Answer with the failure's error page.
    Fail(Failure),
    /// Needs I/O: finish off the worker thread.
    Async(Work),
    /// Wait for the request body (back-channel logout).
    AwaitBody,
}

/// Work for the async core.
#[derive(Debug)]
pub enum Work {
    /// Load the session (cache miss) or refresh its tokens, then decide.
    Session {
        /// The opened cookie.
        ticket: OpenedTicket,
        /// The session was in the cache (a refresh is due).
        cached: bool,
        /// Route rules.
        route: std::sync::Arc<RouteSettings>,
        /// Where an ended session goes.
        next: Unauthenticated,
    },
    /// A bearer token signed with a key not fetched yet.
    Bearer {
        /// The token.
        token: String,
        /// Route rules.
        route: std::sync::Arc<RouteSettings>,
    },
    /// An opaque bearer token to introspect at the IdP.
    Introspect {
        /// The token.
        token: String,
        /// Route rules.
        route: std::sync::Arc<RouteSettings>,
    },
    /// Start a login once discovery has succeeded.
    Login(Unauthenticated),
    /// The login callback, past its synchronous checks.
    Callback(endpoints::callback::CheckedCallback),
    /// Sign-out of whatever session the cookie names.
    SignOut(Option<Check>),
}

/// Where an unauthenticated request goes.
#[derive(Debug, Clone)]
pub enum Unauthenticated {
    /// 401 with `WWW-Authenticate`.
    Api,
    /// 302 to the IdP.
    Browser(LoginStart),
}

/// What a decision counts (one or two metrics, kept inline).
pub type Metrics = smallvec::SmallVec<[Metric; 2]>;

/// A verdict and what to count.
#[derive(Debug)]
pub struct Decision {
    /// What happens.
    pub verdict: Verdict,
    /// Metrics to record on the worker.
    pub metrics: Metrics,
}

impl From<Verdict> for Decision {
    fn from(verdict: Verdict) -> Self {
        Self {
            verdict,
            metrics: Metrics::new(),
        }
    }
}

impl Decision {
    /// The verdict, counting `m`.
    pub fn counting(verdict: Verdict, m: Metric) -> Self {
        Self {
            verdict,
            metrics: smallvec::smallvec![m],
        }
    }
}

/// Decides a request from its facts. No I/O.
pub fn decide(gw: &Gateway, f: &Facts<'_>, now: u64) -> Decision {
    let paths = &gw.settings.paths;
    let bare = f.bare_path();
    if bare == paths.callback {
        if !gw.logins.exchange_allowed(gw.settings.max_logins_in_flight) {
            return login::busy();
        }
        return match endpoints::callback::check(gw, &f.path, &f.req.cookies, now) {
            Ok(mut cb) => {
                // A new login in a browser that has a session replaces it: end the old one.
                cb.replaces = f.session_cookie.and_then(|v| match gw.sessions.check(v, now) {
                    Check::Hit(_, t) | Check::Miss(t) => Some(t),
                    Check::Invalid(_) => None,
                });
                Verdict::Async(Work::Callback(cb)).into()
            }
            Err(e) => {
                let failure = Failure::from(e);
                let label = failure.reason;
                Decision::counting(Verdict::Fail(failure), Metric::LoginFailed(label))
            }
        };
    }
    if bare == paths.logout {
        // A sign-out another site sent may be a forged link or form: confirm or refuse.
        if f.other_site {
            return match (gw.settings.sign_out.cross_site, f.method()) {
                (CrossSiteSignOut::Confirm, "GET" | "HEAD") => {
                    Verdict::Reply(endpoints::sign_out::confirm_page(&paths.logout)).into()
                }
                _ => Verdict::Fail(Failure::new(FailureKind::Forbidden, "cross_site_sign_out")).into(),
            };
        }
        let check = f.session_cookie.map(|v| gw.sessions.check(v, now));
        return Verdict::Async(Work::SignOut(check)).into();
    }
    if bare == paths.signed_out {
        return Verdict::Reply(endpoints::sign_out::signed_out_page()).into();
    }
    if bare == paths.ready {
        return endpoints::ready::reply(gw);
    }
    if bare == paths.backchannel {
        return if f.method() == "POST" {
            Verdict::AwaitBody.into()
        } else {
            Decision::counting(
                Verdict::Fail(Failure::new(FailureKind::BadRequest, "backchannel_method")),
                Metric::Backchannel("invalid"),
            )
        };
    }
    // Under our own prefix, what we do not serve is not the app's either.
    if paths.own_prefix.as_deref().is_some_and(|p| bare.starts_with(p)) {
        return Verdict::Fail(Failure::new(FailureKind::NotFound, "not_found")).into();
    }
    if f.hidden_separators {
        return Verdict::Fail(Failure::new(FailureKind::BadRequest, "encoded_path")).into();
    }

    let pass = &gw.settings.pass_through;
    if f.route.disabled || (!pass.is_empty() && pass.matches(f.method(), &path::normalize(bare))) {
        return Verdict::Pass.into();
    }

    let mut bad_cookie = false;
    if let Some(value) = f.session_cookie {
        match gw.sessions.check(value, now) {
            Check::Hit(session, ticket) => {
                if refresh::due(&gw.settings.refresh, &session, now) {
                    let work = Work::Session {
                        ticket,
                        cached: true,
                        route: f.route.clone(),
                        next: next_step(gw, f, true),
                    };
                    return Decision::counting(Verdict::Async(work), Metric::CacheHit);
                }
                let touch = touched(gw, &session, now).map(|t| (ticket, t));
                let verdict = match for_session(gw, &session, &f.route) {
                    Verdict::Admit(a) => Verdict::Admit(Admission { touch, ..a }),
                    other => other,
                };
                return Decision::counting(verdict, Metric::CacheHit);
            }
            Check::Miss(ticket) => {
                let work = Work::Session {
                    ticket,
                    cached: false,
                    route: f.route.clone(),
                    next: next_step(gw, f, true),
                };
                return Decision::counting(Verdict::Async(work), Metric::CacheMiss);
            }
            Check::Invalid(reason) => {
                tracing::debug!(trace_id = %f.trace(), %reason, "session cookie rejected");
                bad_cookie = true;
            }
        }
    }
    if gw.settings.bearer.enabled {
        if let Some(token) = f.bearer {
            return bearer::decide(gw, token, &f.route, now);
        }
    }
    unauthenticated(gw, next_step(gw, f, bad_cookie), now)
}

fn next_step(gw: &Gateway, f: &Facts<'_>, clear_cookie: bool) -> Unauthenticated {
    if f.api(gw) {
        return Unauthenticated::Api;
    }
    // The reply adds one flow: drop the oldest so at most `max_login_flows` remain.
    let keep = gw.settings.cookie.max_login_flows.saturating_sub(1);
    let excess = f.flow_cookies.len().saturating_sub(keep);
    // The route's parameters, then those the request may pass on (`login_hint`...).
    let mut params = f.route.authorize_params.clone();
    for name in &gw.settings.authorize_passthrough {
        if let Some(v) = crate::http::query_param(&f.path, name).filter(|v| v.len() <= 256) {
            params.retain(|(n, _)| n != name);
            params.push((name.clone(), v));
        }
    }
    Unauthenticated::Browser(LoginStart {
        target: path::same_origin_target(&f.path),
        clear_cookie,
        stale_flows: f.flow_cookies[..excess].iter().map(|n| (*n).to_owned()).collect(),
        params,
        redirect_uri: f.redirect_uri.clone(),
    })
}

/// A live session meets the route's rules: admit it with its identity headers.
pub fn for_session(gw: &Gateway, session: &Session, route: &RouteSettings) -> Verdict {
    if !route_allows(gw, &session.claims, route) {
        return Verdict::Fail(Failure::new(FailureKind::Forbidden, "forbidden"));
    }
    Verdict::Admit(Admission {
        identity: identity::for_session(&gw.settings, session),
        touch: None,
        by_bearer: false,
    })
}

/// No (valid) credentials: 401 for API clients, the login redirect for browsers (async
/// when discovery has not succeeded yet).
pub fn unauthenticated(gw: &Gateway, next: Unauthenticated, now: u64) -> Decision {
    match (next, gw.provider.current()) {
        (Unauthenticated::Api, _) => Verdict::Fail(Failure::new(FailureKind::Unauthorized, "no_credentials")).into(),
        (Unauthenticated::Browser(_), Some(_)) if !gw.logins.start_allowed(gw.settings.max_logins_in_flight) => {
            login::busy()
        }
        (Unauthenticated::Browser(start), Some(p)) => login::redirect(gw, &p, start, now),
        (next, None) => Verdict::Async(Work::Login(next)).into(),
    }
}

/// The session with its idle expiry pushed, if it was last marked used long enough ago
/// (a tenth of the idle timeout, at most a minute) to be worth a store write.
pub fn touched(gw: &Gateway, session: &Session, now: u64) -> Option<Session> {
    let life = gw.settings.session.lifetimes;
    let period = (life.idle_secs / 10).clamp(1, 60);
    (now.saturating_sub(session.last_used_at) >= period).then(|| {
        let mut t = session.clone();
        t.touch(now, life);
        t
    })
}

/// Whether claims meet the route's group requirement (sessions and bearer tokens alike).
pub(crate) fn route_allows(gw: &Gateway, c: &session_store::Claims, route: &RouteSettings) -> bool {
    route.require_groups.is_empty()
        || crate::authz::in_any_group(c, &gw.settings.authz.groups_claim, &route.require_groups)
}
