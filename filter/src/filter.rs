//! The per-stream filter: routes each request to the session check, the login, the
//! callback, sign-out or back-channel logout. Everything here runs on the worker thread
//! and never blocks; I/O goes to the async core and comes back in `on_scheduled`.

use std::sync::Arc;

use async_filter::{Completed, HeaderEdit, LocalReply, Outcome, Pending, COMPLETION_EVENT};
use envoy_module::{error_body, send_error, BodyStatus, HeaderKind, HeadersStatus, HttpFilter, HttpStream, TraceId};
use session_store::{Check, OpenedTicket, Session};

use crate::authz;
use crate::config::RouteSettings;
use crate::gateway::Gateway;
use crate::http::{cookies, is_api, path};
use crate::metrics::Metric;
use crate::oidc::logout::{BackchannelResult, SignOutPage};
use crate::oidc::tokens::{self, Kind, TokenCheck};
use crate::oidc::{callback, login, logout, refresh};
use crate::session::identity;

/// Largest back-channel logout body accepted.
const MAX_LOGOUT_BODY: usize = 64 * 1024;

/// What an async task reports back to the worker.
#[derive(Default)]
pub struct Report {
    metrics: Vec<Metric>,
    user: Option<String>,
}

impl Report {
    fn of(metrics: Vec<Metric>) -> Self {
        Self { metrics, user: None }
    }
}

/// Where an unauthenticated request goes.
#[derive(Clone)]
enum Unauthenticated {
    /// 401 with `WWW-Authenticate`.
    Api { trace: TraceId },
    /// 302 to the IdP, back to `target` afterwards; `clear_cookie` drops a bad session cookie.
    Browser { target: String, clear_cookie: bool },
}

/// The filter of one stream.
pub struct OidcFilter {
    gw: Arc<Gateway>,
    task: Option<Pending<Report>>,
    awaiting_logout_body: bool,
}

impl OidcFilter {
    /// A filter for a new stream.
    pub fn new(gw: Arc<Gateway>) -> Self {
        Self {
            gw,
            task: None,
            awaiting_logout_body: false,
        }
    }

    fn spawn(
        &mut self,
        s: &mut dyn HttpStream,
        task: impl std::future::Future<Output = (Outcome, Report)> + Send + 'static,
    ) -> HeadersStatus {
        match self.gw.core.spawn_with_report(s, task) {
            Ok(p) => self.task = Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "async work refused");
                send_error(s, e.status(), "Service Unavailable", "oidc_overloaded");
            }
        }
        HeadersStatus::StopIteration
    }

    /// Removes every incoming copy of the headers we inject. One snapshot of the request
    /// headers finds them (usually none), instead of a removal call per header name.
    fn strip_identity_headers(&self, s: &mut dyn HttpStream) {
        let present: Vec<&str> = {
            let headers = s.headers(HeaderKind::Request);
            self.gw
                .settings
                .headers
                .all()
                .filter(|h| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(h.as_bytes())))
                .collect()
        };
        for h in present {
            s.remove_header(HeaderKind::Request, h);
        }
    }

    /// Removes our cookies from what the upstream sees; returns the session cookie value.
    fn take_session_cookie(&self, s: &mut dyn HttpStream) -> Option<String> {
        let c = &self.gw.settings.cookie;
        let (value, rewritten) = {
            let lines = s.header_values(HeaderKind::Request, "cookie");
            let split = cookies::split_ours(&lines, c)?;
            (split.session.map(str::to_owned), split.rest)
        };
        match rewritten {
            Some(v) => s.set_header(HeaderKind::Request, "cookie", v.as_bytes()),
            None => s.remove_header(HeaderKind::Request, "cookie"),
        }
        value
    }

    fn route<'a>(&self, s: &'a dyn HttpStream) -> Option<&'a RouteSettings> {
        s.route_config().and_then(|r| r.downcast_ref::<RouteSettings>())
    }

    fn record(&self, s: &mut dyn HttpStream, m: Metric) {
        self.gw.metrics.record(s, m);
    }

    fn request_headers(&mut self, s: &mut dyn HttpStream, end_of_stream: bool) -> HeadersStatus {
        let now = session_store::unix_now();
        let raw_path = String::from_utf8_lossy(s.header(HeaderKind::Request, ":path").unwrap_or(b"/")).into_owned();
        let method = String::from_utf8_lossy(s.header(HeaderKind::Request, ":method").unwrap_or(b"GET")).into_owned();
        let bare = raw_path.split('?').next().unwrap_or("/");
        let paths = &self.gw.settings.paths;
        if bare == paths.callback {
            return self.callback(s, &raw_path, now);
        }
        if bare == paths.logout {
            return self.sign_out(s, now);
        }
        if bare == paths.backchannel {
            if method != "POST" || end_of_stream {
                send_error(s, 400, "Bad Request", "oidc_backchannel_bad_request");
                return HeadersStatus::StopIteration;
            }
            self.awaiting_logout_body = true;
            return HeadersStatus::StopIteration;
        }

        // Upstream hygiene on every request: no spoofed identity, none of our cookies.
        self.strip_identity_headers(s);
        let session_cookie = self.take_session_cookie(s);
        let route = self.route(s).cloned().unwrap_or_default();
        let pass = &self.gw.settings.pass_through;
        if route.disabled || (!pass.is_empty() && pass.matches(&method, &path::normalize(bare))) {
            return HeadersStatus::Continue;
        }

        let mut bad_cookie = false;
        if let Some(value) = session_cookie {
            match self.gw.sessions.check(&value, now) {
                Check::Hit(session, ticket) => {
                    self.record(s, Metric::CacheHit);
                    if refresh::due(&self.gw, &session, now) {
                        let next = self.unauthenticated_kind(s, &raw_path, true);
                        return self.spawn_session(s, ticket, route, next, true);
                    }
                    self.touch_if_stale(&session, ticket, now);
                    return self.admit(s, &session, &route);
                }
                Check::Miss(ticket) => {
                    self.record(s, Metric::CacheMiss);
                    let next = self.unauthenticated_kind(s, &raw_path, true);
                    return self.spawn_session(s, ticket, route, next, false);
                }
                Check::Invalid(reason) => {
                    tracing::debug!(trace_id = %s.trace_id(), %reason, "session cookie rejected");
                    bad_cookie = true;
                }
            }
        }
        if self.gw.settings.bearer.enabled {
            if let Some(token) = bearer_token(s) {
                return self.bearer(s, token, route);
            }
        }
        let next = self.unauthenticated_kind(s, &raw_path, bad_cookie);
        self.unauthenticated(s, next)
    }

    fn unauthenticated_kind(&self, s: &dyn HttpStream, raw_path: &str, clear_cookie: bool) -> Unauthenticated {
        let api = is_api(
            &self.gw.settings.api,
            raw_path,
            s.header(HeaderKind::Request, "accept"),
            s.header(HeaderKind::Request, "x-requested-with"),
        );
        if api {
            Unauthenticated::Api { trace: s.trace_id() }
        } else {
            Unauthenticated::Browser {
                target: path::same_origin_target(raw_path),
                clear_cookie,
            }
        }
    }

    /// Pushes the idle expiry of a session in use, at most once per period: the cache is
    /// updated at once (so concurrent requests don't repeat it), the store in the background.
    fn touch_if_stale(&self, session: &Arc<Session>, ticket: OpenedTicket, now: u64) {
        let Some(touched) = touched(&self.gw, session, now) else {
            return;
        };
        self.gw
            .sessions
            .cache()
            .insert(ticket.store_key(), Arc::new(touched.clone()));
        let Ok(rt) = async_filter::runtime() else { return };
        let gw = self.gw.clone();
        rt.spawn(async move {
            if let Err(e) = gw.sessions.save(&ticket, touched, now).await {
                tracing::warn!(error = %e, "session idle-expiry update failed");
            }
        });
    }

    /// A live session: route rules, identity headers, continue.
    fn admit(&self, s: &mut dyn HttpStream, session: &Session, route: &RouteSettings) -> HeadersStatus {
        if !route_allows(&self.gw, &session.claims, route) {
            send_error(s, 403, "Forbidden", "oidc_forbidden");
            return HeadersStatus::StopIteration;
        }
        for (h, v) in identity::for_session(&self.gw.settings, session) {
            s.set_header(HeaderKind::Request, &h, v.as_bytes());
        }
        self.gw.settings.access_log_user.record(s, &session.subject);
        HeadersStatus::Continue
    }

    /// Cache miss or refresh due: load / refresh on the async core, then admit or log in.
    fn spawn_session(
        &mut self,
        s: &mut dyn HttpStream,
        ticket: OpenedTicket,
        route: RouteSettings,
        next: Unauthenticated,
        cached: bool,
    ) -> HeadersStatus {
        let gw = self.gw.clone();
        self.spawn(s, async move {
            let now = session_store::unix_now();
            let mut metrics = Vec::new();
            // A cached session may have left the cache since the check: then read the store.
            let loaded = match gw.sessions.cache().get(&ticket.store_key()).filter(|_| cached) {
                Some(s) => Ok(Some(s)),
                None => gw.sessions.load(&ticket, now).await,
            };
            let mut session = match loaded {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "session load failed");
                    metrics.push(Metric::StoreError);
                    return (store_error(e.status()), Report::of(metrics));
                }
            };
            if session.as_ref().is_some_and(|s| refresh::due(&gw, s, now)) {
                let (refreshed, outcome) = refresh::refresh(&gw, &ticket).await;
                metrics.push(Metric::Refresh(outcome.label()));
                session = match outcome {
                    refresh::RefreshOutcome::Ended => None,
                    // Keep serving the old session if the IdP is briefly away.
                    _ => refreshed.or(session),
                };
            }
            if let Some(t) = session.as_ref().and_then(|s| touched(&gw, s, now)) {
                match gw.sessions.save(&ticket, t, now).await {
                    Ok(saved) => session = Some(saved),
                    Err(e) => tracing::warn!(error = %e, "session idle-expiry update failed"),
                }
            }
            match session {
                Some(session) if route_allows(&gw, &session.claims, &route) => {
                    let edits = identity::for_session(&gw.settings, &session)
                        .into_iter()
                        .map(|(h, v)| HeaderEdit::Set(h, v.into_bytes()))
                        .collect();
                    (
                        Outcome::Continue(edits),
                        Report {
                            metrics,
                            user: Some(session.subject.clone()),
                        },
                    )
                }
                Some(_) => (
                    Outcome::Error {
                        status: 403,
                        reason: "Forbidden",
                        details: "oidc_forbidden",
                    },
                    Report::of(metrics),
                ),
                None => {
                    let (outcome, mut more) = unauthenticated_outcome(&gw, next, now).await;
                    metrics.append(&mut more);
                    (outcome, Report::of(metrics))
                }
            }
        })
    }

    fn unauthenticated(&mut self, s: &mut dyn HttpStream, next: Unauthenticated) -> HeadersStatus {
        match (&next, self.gw.provider.current()) {
            (Unauthenticated::Api { trace }, _) => {
                let reply = unauthorized(trace, None);
                send_reply(s, reply);
                HeadersStatus::StopIteration
            }
            (Unauthenticated::Browser { target, clear_cookie }, Some(provider)) => {
                match login_reply(
                    &self.gw,
                    &provider,
                    target.clone(),
                    *clear_cookie,
                    session_store::unix_now(),
                ) {
                    Some(reply) => {
                        self.record(s, Metric::LoginStarted);
                        send_reply(s, reply);
                    }
                    None => send_error(s, 500, "Internal Server Error", "oidc_login_seal"),
                }
                HeadersStatus::StopIteration
            }
            (Unauthenticated::Browser { .. }, None) => {
                // Discovery not done yet: wait for it off the worker.
                let gw = self.gw.clone();
                self.spawn(s, async move {
                    let (outcome, metrics) = unauthenticated_outcome(&gw, next, session_store::unix_now()).await;
                    (outcome, Report::of(metrics))
                })
            }
        }
    }

    fn bearer(&mut self, s: &mut dyn HttpStream, token: String, route: RouteSettings) -> HeadersStatus {
        let trace = s.trace_id();
        let gw = self.gw.clone();
        if let Some(provider) = gw.provider.current() {
            let issuer = &gw.settings.provider.issuer;
            match tokens::verify(&provider, &token, issuer, &gw.settings.bearer.audiences, Kind::Bearer) {
                TokenCheck::Valid(claims) => {
                    self.record(s, Metric::Bearer("valid"));
                    if !bearer_route_allows(&gw, &claims, &route) {
                        send_error(s, 403, "Forbidden", "oidc_forbidden");
                        return HeadersStatus::StopIteration;
                    }
                    for (h, v) in identity::for_bearer(&gw.settings, &claims) {
                        s.set_header(HeaderKind::Request, &h, v.as_bytes());
                    }
                    if let Some(sub) = claims.get("sub").and_then(|v| v.as_str()) {
                        gw.settings.access_log_user.record(s, sub);
                    }
                    return HeadersStatus::Continue;
                }
                TokenCheck::Invalid(why) => {
                    tracing::info!(trace_id = %trace, reason = %why, "bearer token rejected");
                    self.record(s, Metric::Bearer("invalid"));
                    send_reply(s, unauthorized(&trace, Some("invalid_token")));
                    return HeadersStatus::StopIteration;
                }
                TokenCheck::UnknownKey => {}
            }
        }
        // Unknown key or no keys yet: fetch (rate-limited) and check again off the worker.
        self.spawn(s, async move {
            let issuer = gw.settings.provider.issuer.clone();
            let provider = match gw.provider.refresh_for_unknown_key().await {
                Some(p) => Some(p),
                None => gw.provider.wait(gw.settings.timeouts.startup_wait).await.ok(),
            };
            let check =
                provider.map(|p| tokens::verify(&p, &token, &issuer, &gw.settings.bearer.audiences, Kind::Bearer));
            match check {
                Some(TokenCheck::Valid(claims)) if !bearer_route_allows(&gw, &claims, &route) => (
                    Outcome::Error {
                        status: 403,
                        reason: "Forbidden",
                        details: "oidc_forbidden",
                    },
                    Report::of(vec![Metric::Bearer("valid")]),
                ),
                Some(TokenCheck::Valid(claims)) => {
                    let edits = identity::for_bearer(&gw.settings, &claims)
                        .into_iter()
                        .map(|(h, v)| HeaderEdit::Set(h, v.into_bytes()))
                        .collect();
                    let user = claims.get("sub").and_then(|v| v.as_str()).map(str::to_owned);
                    (
                        Outcome::Continue(edits),
                        Report {
                            metrics: vec![Metric::Bearer("valid")],
                            user,
                        },
                    )
                }
                _ => (
                    Outcome::Reply(unauthorized(&trace, Some("invalid_token"))),
                    Report::of(vec![Metric::Bearer("invalid")]),
                ),
            }
        })
    }

    fn callback(&mut self, s: &mut dyn HttpStream, raw_path: &str, now: u64) -> HeadersStatus {
        let checked = {
            let lines = s.header_values(HeaderKind::Request, "cookie");
            callback::check(&self.gw, raw_path, &lines, now)
        };
        let cb = match checked {
            Ok(cb) => cb,
            Err(e) => {
                tracing::info!(trace_id = %s.trace_id(), error = %e, "login callback refused");
                self.record(s, Metric::LoginFailed(e.reason()));
                send_error(s, e.status(), e.phrase(), e.reason());
                return HeadersStatus::StopIteration;
            }
        };
        let gw = self.gw.clone();
        self.spawn(s, async move {
            let c = &gw.settings.cookie;
            let clear_flow = cookies::set_cookie(&cb.flow_cookie_name, "", 0, c.secure, crate::config::SameSite::Lax);
            match callback::complete(&gw, cb).await {
                Ok(done) => {
                    let max_age = gw.settings.session.lifetimes.absolute_secs;
                    let reply = LocalReply {
                        status: 302,
                        headers: vec![
                            ("location".into(), path::same_origin_target(&done.target).into_bytes()),
                            (
                                "set-cookie".into(),
                                cookies::set_cookie(&c.name, &done.cookie, max_age, c.secure, c.same_site).into_bytes(),
                            ),
                            ("set-cookie".into(), clear_flow.into_bytes()),
                            ("cache-control".into(), b"no-store".to_vec()),
                        ],
                        body: Vec::new(),
                        details: "oidc_login".into(),
                    };
                    (
                        Outcome::Reply(reply),
                        Report::of(vec![Metric::LoginSucceeded(done.elapsed_ms)]),
                    )
                }
                Err(e) => {
                    tracing::warn!(error = %e, "login failed");
                    let outcome = Outcome::Error {
                        status: e.status(),
                        reason: e.phrase(),
                        details: e.reason(),
                    };
                    (outcome, Report::of(vec![Metric::LoginFailed(e.reason())]))
                }
            }
        })
    }

    fn sign_out(&mut self, s: &mut dyn HttpStream, now: u64) -> HeadersStatus {
        let check = self.take_session_cookie(s).map(|v| self.gw.sessions.check(&v, now));
        let gw = self.gw.clone();
        self.spawn(s, async move {
            let session = match check {
                Some(Check::Hit(session, ticket)) => Some((Some(session), ticket)),
                Some(Check::Miss(ticket)) => Some((gw.sessions.load(&ticket, now).await.ok().flatten(), ticket)),
                _ => None,
            };
            let mut metrics = vec![Metric::Logout];
            let mut id_token = None;
            if let Some((session, ticket)) = session {
                id_token = session.and_then(|s| s.tokens.id_token.as_ref().map(|t| t.secret().to_owned()));
                if let Err(e) = gw.sessions.delete(&ticket).await {
                    tracing::warn!(error = %e, "sign-out could not delete the session");
                    metrics.push(Metric::StoreError);
                    return (store_error(e.status()), Report::of(metrics));
                }
            }
            let c = &gw.settings.cookie;
            let clear = cookies::set_cookie(&c.name, "", 0, c.secure, c.same_site).into_bytes();
            let provider = gw.provider.current();
            let mut headers = vec![
                ("set-cookie".to_owned(), clear),
                ("cache-control".to_owned(), b"no-store".to_vec()),
            ];
            let (status, body) = match logout::sign_out_page(&gw, provider.as_deref(), id_token.as_deref()) {
                SignOutPage::EndSessionForm { html, csp } => {
                    headers.push(("content-type".into(), b"text/html; charset=utf-8".to_vec()));
                    headers.push(("content-security-policy".into(), csp.into_bytes()));
                    (200, html.into_bytes())
                }
                SignOutPage::Redirect(to) => {
                    headers.push(("location".into(), to.into_bytes()));
                    (302, Vec::new())
                }
            };
            (
                Outcome::Reply(LocalReply {
                    status,
                    headers,
                    body,
                    details: "oidc_sign_out".into(),
                }),
                Report::of(metrics),
            )
        })
    }
}

/// The session with its idle expiry pushed, if it was last marked used long enough ago
/// (a tenth of the idle timeout, at most a minute) to be worth a store write.
fn touched(gw: &Gateway, session: &Session, now: u64) -> Option<Session> {
    let life = gw.settings.session.lifetimes;
    let period = (life.idle_secs / 10).clamp(1, 60);
    (now.saturating_sub(session.last_used_at) >= period).then(|| {
        let mut t = session.clone();
        t.touch(now, life);
        t
    })
}

/// Whether claims meet the route's group requirement (sessions and bearer tokens alike).
fn route_allows(gw: &Gateway, claims: &session_store::Claims, route: &RouteSettings) -> bool {
    route.require_groups.is_empty()
        || authz::in_any_group(claims, &gw.settings.authz.groups_claim, &route.require_groups)
}

fn bearer_route_allows(
    gw: &Gateway,
    claims: &serde_json::Map<String, serde_json::Value>,
    route: &RouteSettings,
) -> bool {
    route_allows(gw, &crate::oidc::claims::select(&gw.settings, &[claims]), route)
}

fn bearer_token(s: &dyn HttpStream) -> Option<String> {
    let v = s.header(HeaderKind::Request, "authorization")?;
    let v = std::str::from_utf8(v).ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

fn unauthorized(trace: &TraceId, error: Option<&str>) -> LocalReply {
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"oidc\", error=\"{e}\""),
        None => "Bearer realm=\"oidc\"".to_owned(),
    };
    LocalReply {
        status: 401,
        headers: vec![
            ("www-authenticate".into(), challenge.into_bytes()),
            ("content-type".into(), b"text/plain; charset=utf-8".to_vec()),
            ("cache-control".into(), b"no-store".to_vec()),
            ("x-request-id".into(), trace.as_str().as_bytes().to_vec()),
        ],
        body: error_body(401, "Unauthorized", trace).into_bytes(),
        details: "oidc_unauthorized".into(),
    }
}

fn store_error(status: u16) -> Outcome {
    let reason = if status == 504 {
        "Gateway Timeout"
    } else {
        "Bad Gateway"
    };
    Outcome::Error {
        status,
        reason,
        details: "oidc_session_store",
    }
}

fn login_reply(
    gw: &Gateway,
    provider: &crate::oidc::provider::Provider,
    target: String,
    clear_cookie: bool,
    now: u64,
) -> Option<LocalReply> {
    let redirect = login::start(gw, provider, target, now)
        .map_err(|e| tracing::error!(error = %e, "flow cookie"))
        .ok()?;
    let c = &gw.settings.cookie;
    let mut headers = vec![
        ("location".to_owned(), redirect.location.into_bytes()),
        ("set-cookie".to_owned(), redirect.flow_cookie.into_bytes()),
        ("cache-control".to_owned(), b"no-store".to_vec()),
    ];
    if clear_cookie {
        headers.push((
            "set-cookie".into(),
            cookies::set_cookie(&c.name, "", 0, c.secure, c.same_site).into_bytes(),
        ));
    }
    Some(LocalReply {
        status: 302,
        headers,
        body: Vec::new(),
        details: "oidc_login_redirect".into(),
    })
}

async fn unauthenticated_outcome(gw: &Gateway, next: Unauthenticated, now: u64) -> (Outcome, Vec<Metric>) {
    match next {
        Unauthenticated::Api { trace } => (Outcome::Reply(unauthorized(&trace, None)), Vec::new()),
        Unauthenticated::Browser { target, clear_cookie } => {
            match gw.provider.wait(gw.settings.timeouts.startup_wait).await {
                Ok(p) => match login_reply(gw, &p, target, clear_cookie, now) {
                    Some(r) => (Outcome::Reply(r), vec![Metric::LoginStarted]),
                    None => (
                        Outcome::Error {
                            status: 500,
                            reason: "Internal Server Error",
                            details: "oidc_login_seal",
                        },
                        Vec::new(),
                    ),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a login");
                    (
                        Outcome::Error {
                            status: e.status(),
                            reason: "Identity Provider Unavailable",
                            details: "oidc_idp_unavailable",
                        },
                        Vec::new(),
                    )
                }
            }
        }
    }
}

fn send_reply(s: &mut dyn HttpStream, r: LocalReply) {
    Outcome::Reply(r).apply(s);
}

impl HttpFilter for OidcFilter {
    fn on_request_headers(&mut self, s: &mut dyn HttpStream, end_of_stream: bool) -> HeadersStatus {
        self.request_headers(s, end_of_stream)
    }

    fn on_request_body(&mut self, s: &mut dyn HttpStream, end_of_stream: bool) -> BodyStatus {
        if !self.awaiting_logout_body {
            return BodyStatus::Continue;
        }
        let body = s.request_body();
        if body.len() > MAX_LOGOUT_BODY {
            self.awaiting_logout_body = false;
            send_error(s, 413, "Payload Too Large", "oidc_backchannel_too_large");
            return BodyStatus::StopIterationAndBuffer;
        }
        if !end_of_stream {
            return BodyStatus::StopIterationAndBuffer;
        }
        self.awaiting_logout_body = false;
        let gw = self.gw.clone();
        self.spawn(s, async move {
            let result = logout::backchannel(&gw, &body).await;
            let (status, body, label) = match &result {
                BackchannelResult::Done(n) => {
                    tracing::info!(sessions = n, "back-channel logout");
                    (200, String::new(), "ok")
                }
                BackchannelResult::Invalid(why) => {
                    tracing::info!(reason = %why, "back-channel logout refused");
                    (400, r#"{"error":"invalid_request"}"#.to_owned(), "invalid")
                }
                BackchannelResult::Unavailable(why) => {
                    tracing::warn!(reason = %why, "back-channel logout failed");
                    (502, r#"{"error":"temporarily_unavailable"}"#.to_owned(), "failed")
                }
            };
            let reply = LocalReply {
                status,
                headers: vec![
                    ("content-type".into(), b"application/json".to_vec()),
                    ("cache-control".into(), b"no-store".to_vec()),
                ],
                body: body.into_bytes(),
                details: "oidc_backchannel".into(),
            };
            (Outcome::Reply(reply), Report::of(vec![Metric::Backchannel(label)]))
        });
        BodyStatus::StopIterationAndBuffer
    }

    fn on_scheduled(&mut self, s: &mut dyn HttpStream, event_id: u64) {
        if event_id != COMPLETION_EVENT {
            return;
        }
        let Some(task) = self.task.take() else { return };
        if let Completed::Done(report) = task.complete(s) {
            for m in report.metrics {
                self.record(s, m);
            }
            if let Some(user) = report.user {
                self.gw.settings.access_log_user.record(s, &user);
            }
        }
    }

    fn on_destroy(&mut self) {
        // Dropping the pending task cancels it (client gone).
        self.task = None;
    }
}
