//! The per-stream filter: gathers what the request carries, asks [`decide`] what to do,
//! and applies the answer. Only this file touches the stream; nothing here blocks, and
//! I/O goes to the async core and comes back in `on_scheduled`.

use std::borrow::Cow;
use std::sync::Arc;

use async_filter::{AsyncError, Completed, Outcome, Pending, TaskFailure, COMPLETION_EVENT};
use envoy_module::{BodyStatus, HeaderKind, HeadersStatus, HttpFilter, HttpStream, TraceId};

use crate::config::{EncodedSeparators, RouteSettings};
use crate::decide::{self, Admission, Decision, Facts, Verdict, Work};
use crate::endpoints::backchannel;
use crate::failure::{Failure, FailureKind, ReplyFormat};
use crate::gateway::Gateway;
use crate::http::request::RequestHeaders;
use crate::http::{bearer_token, cookies, from_other_site, is_identity_header, path};
use crate::realms::Realms;
use crate::work;

/// The facts of a request, and the `cookie` header its upstream gets: `None` when it
/// holds nothing of ours (left as it is), `Some(None)` when only ours (removed),
/// `Some(Some(rest))` otherwise.
struct Gathered<'a> {
    facts: Facts<'a>,
    upstream_cookie: Option<Option<Vec<u8>>>,
}

/// How a stream's error replies are written: decided once from its request.
struct Replying {
    format: ReplyFormat,
    /// The request's path, for the "try again" link; `None`: home.
    retry_path: Option<String>,
    trace: TraceId,
}

impl Replying {
    /// Where "try again" goes: the request's same-origin target, made only when a page
    /// needs it.
    fn retry_url(&self) -> String {
        self.retry_path
            .as_deref()
            .map_or_else(|| "/".to_owned(), path::same_origin_target)
    }
}

/// The filter of one stream.
pub struct OidcFilter {
    realms: Arc<Realms>,
    /// The index of the IdP serving this stream (in `realms`).
    realm: usize,
    gw: Arc<Gateway>,
    task: Option<Pending<Decision>>,
    replying: Option<Replying>,
    awaiting_logout_body: bool,
    /// The back-channel request's `content-type`, checked with its body.
    logout_content_type: Option<Vec<u8>>,
}

impl OidcFilter {
    /// A filter for a new stream (served by the default IdP until the request says else).
    pub fn new(realms: Arc<Realms>) -> Self {
        Self {
            gw: realms.default_realm().gw.clone(),
            realms,
            realm: 0,
            task: None,
            replying: None,
            awaiting_logout_body: false,
            logout_content_type: None,
        }
    }

    /// Reads the request, borrowing what it can: the decision is made before the stream
    /// is changed.
    fn gather<'a>(&self, req: &'a RequestHeaders<'a>, path: Cow<'a, str>, route: Arc<RouteSettings>) -> Gathered<'a> {
        let settings = &self.gw.settings;
        // One pass over the cookie lines: our session cookie, login flows, and what the
        // upstream keeps.
        let foreign = &self.realms.all()[self.realm].foreign_cookies;
        let (session_cookie, flow_cookies, upstream_cookie) =
            match cookies::split_ours(&req.cookies, &settings.cookie, foreign) {
                Some(split) => (split.session, split.flows, Some(split.rest)),
                None => (None, Vec::new(), None),
            };
        let bare = path.split('?').next().unwrap_or("/");
        // Any route's rules could be walked around with such a path (the app decodes it
        // behind a route without rules), so the filter cannot tell where it is safe.
        let hidden_separators =
            settings.encoded_separators == EncodedSeparators::Reject && path::hides_separators(&path);
        let redirect_uri = if settings.redirect_hosts.is_empty() {
            None
        } else {
            self.gw.redirect_uri_for(req.authority).cloned()
        };
        let other_site = bare == settings.paths.logout && {
            let origin = redirect_uri.as_ref().map(|u| u.origin().ascii_serialization());
            from_other_site(req.fetch_site, req.origin, origin.as_deref().unwrap_or(&self.gw.origin))
        };
        let facts = Facts {
            req,
            // Read before the identity headers are stripped: with `headers.access_token`
            // the client's `authorization` is one of them.
            bearer: req.authorization.and_then(bearer_token),
            session_cookie,
            flow_cookies,
            hidden_separators,
            other_site,
            redirect_uri,
            route,
            path,
        };
        Gathered { facts, upstream_cookie }
    }

    /// The identity headers the client sent, of any of the config's IdPs (the app behind
    /// one route may trust another's), in any spelling.
    fn spoofed(&self, all: &[(&[u8], &[u8])]) -> Vec<String> {
        let realms = self.realms.all();
        all.iter()
            .filter(|(k, _)| realms.iter().any(|r| is_identity_header(k, &r.gw.settings.headers)))
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    /// No identity header from the client, on every request: none reaches the app, and
    /// none reaches the access log of a request answered here (it may log the user
    /// header).
    fn unspoof(s: &mut dyn HttpStream, spoofed: Vec<String>) {
        for name in spoofed {
            s.remove_header(HeaderKind::Request, &name);
        }
    }

    /// Upstream hygiene for every request that may go upstream: the client's own
    /// `authorization` only where it is the checked credential or allowed, none of our
    /// cookies.
    fn scrub(&self, s: &mut dyn HttpStream, upstream_cookie: Option<Option<Vec<u8>>>, strip_authorization: bool) {
        if strip_authorization {
            s.remove_header(HeaderKind::Request, "authorization");
        }
        match upstream_cookie {
            Some(Some(rest)) => s.set_header(HeaderKind::Request, "cookie", &rest),
            Some(None) => s.remove_header(HeaderKind::Request, "cookie"),
            None => {}
        }
    }

    fn request_headers(&mut self, s: &mut dyn HttpStream) -> HeadersStatus {
        let route = s
            .route_config()
            .and_then(|r| r.downcast_ref::<Arc<RouteSettings>>())
            .map_or_else(RouteSettings::none, Arc::clone);
        let all = s.headers(HeaderKind::Request);
        let spoofed = self.spoofed(&all);
        let req = RequestHeaders::read(&all);
        let path = String::from_utf8_lossy(req.path.unwrap_or(b"/"));
        if self.realms.all().len() > 1 {
            let bare = path.split('?').next().unwrap_or("/");
            match self.realms.select(req.authority, route.idp.as_deref(), bare) {
                Ok(i) => {
                    self.realm = i;
                    self.gw = self.realms.all()[i].gw.clone();
                }
                Err(e) => {
                    self.replying = Some(Replying {
                        format: ReplyFormat::for_accept(req.accept),
                        retry_path: None,
                        trace: req.trace_id(),
                    });
                    Self::unspoof(s, spoofed);
                    self.fail(s, Failure::because(FailureKind::Internal, "unknown_idp", e));
                    return HeadersStatus::StopIteration;
                }
            }
        }
        let Gathered { facts, upstream_cookie } = self.gather(&req, path, route);
        let decision = decide::decide(&self.gw, &facts, self.gw.clock.now());
        let goes_upstream = matches!(decision.verdict, Verdict::Pass | Verdict::Admit(_) | Verdict::Async(_));
        // A request admitted or passed at once meets no error page later: what such a page
        // needs (trace id, reply format, retry link) is made only for the others.
        if !matches!(decision.verdict, Verdict::Pass | Verdict::Admit(_)) {
            self.replying = Some(self.replying_for(&facts));
        }
        let strip_authorization = goes_upstream
            && req.authorization.is_some()
            && decision.verdict.strips_authorization(&self.gw.settings.headers);
        // The borrowed facts end here: the stream may change from now on.
        drop(facts);
        Self::unspoof(s, spoofed);
        if goes_upstream {
            self.scrub(s, upstream_cookie, strip_authorization);
        }
        self.apply(s, decision, false)
    }

    /// How error replies of this stream are written, from its request.
    fn replying_for(&mut self, f: &Facts<'_>) -> Replying {
        let paths = &self.gw.settings.paths;
        let bare = f.bare_path();
        let backchannel = bare == paths.backchannel;
        if backchannel {
            self.logout_content_type = f.req.content_type.map(<[u8]>::to_vec);
        }
        // "Try again" from an error at one of our endpoints starts over at home (the
        // callback's URL would only fail again); elsewhere it retries the request.
        let own = [
            &paths.callback,
            &paths.logout,
            &paths.signed_out,
            &paths.backchannel,
            &paths.ready,
        ];
        let ours = own.iter().any(|p| p.as_str() == bare);
        Replying {
            format: if backchannel {
                ReplyFormat::Json
            } else {
                ReplyFormat::for_accept(f.req.accept)
            },
            retry_path: (!ours).then(|| f.path.clone().into_owned()),
            trace: f.trace(),
        }
    }

    /// Applies a decision to the stream; `resumed` after async work (the stream is
    /// stopped and must be continued or answered).
    fn apply(&mut self, s: &mut dyn HttpStream, decision: Decision, resumed: bool) -> HeadersStatus {
        for m in decision.metrics {
            self.gw.metrics.record(s, m);
        }
        let go_on = |s: &mut dyn HttpStream| {
            if resumed {
                s.continue_decoding();
            }
            HeadersStatus::Continue
        };
        match decision.verdict {
            Verdict::Pass => go_on(s),
            Verdict::Admit(admission) => {
                self.admit(s, admission);
                go_on(s)
            }
            Verdict::Reply(reply) => {
                Outcome::Reply(reply).apply(s);
                HeadersStatus::StopIteration
            }
            Verdict::Fail(failure) => {
                self.fail(s, failure);
                HeadersStatus::StopIteration
            }
            Verdict::AwaitBody => {
                self.awaiting_logout_body = true;
                HeadersStatus::StopIteration
            }
            Verdict::Async(w) => {
                // Logins may wait at the IdP and end in waves: their results are paced.
                let paced = matches!(w, Work::Callback(_) | Work::Login(_));
                let gw = self.gw.clone();
                self.spawn(s, work::run(gw, w), paced)
            }
        }
    }

    fn admit(&self, s: &mut dyn HttpStream, a: Admission) {
        // Added, not set: `scrub` already removed every client copy of these names (and
        // `authorization` where the filter sends its own), so no lookup is needed.
        for (h, v) in &a.identity.headers {
            s.add_header(HeaderKind::Request, h, v.as_bytes());
        }
        self.gw.settings.access_log_user.record(s, &a.identity.user);
        if let Some((ticket, touched)) = a.touch {
            // The cache at once (concurrent requests need not repeat it), the store in the
            // background, under the core's bound and deadline.
            // (Refused if the session was revoked since it was read: it stays out.)
            let touched = Arc::new(touched);
            self.gw.sessions.cache().insert(ticket.store_key(), touched.clone());
            let gw = self.gw.clone();
            let now = gw.clock.now();
            let write = async move {
                match gw.sessions.save(&ticket, (*touched).clone(), now).await {
                    Ok(Some(_)) => {}
                    Ok(None) => tracing::debug!("session ended before its idle-expiry update: left ended"),
                    Err(e) => tracing::warn!(error = %e, "session idle-expiry update failed"),
                }
            };
            if let Err(e) = self.gw.core.spawn_detached(write) {
                tracing::debug!(error = %e, "idle-expiry update skipped");
            }
        }
    }

    /// The one place a failure reaches the client: its reply, and its log line.
    fn fail(&self, s: &mut dyn HttpStream, failure: Failure) {
        let (format, retry, trace) = match &self.replying {
            Some(r) => (r.format, r.retry_url(), r.trace.clone()),
            None => (ReplyFormat::Json, "/".to_owned(), s.trace_id()),
        };
        let (status, _) = failure.kind.status();
        let source = failure.source.as_deref().unwrap_or("");
        if status >= 500 {
            tracing::warn!(trace_id = %trace, status, reason = failure.reason, source, "request failed");
        } else {
            tracing::info!(trace_id = %trace, status, reason = failure.reason, source, "request refused");
        }
        let reply = failure.reply(&trace, format, &self.gw.settings.error_pages, &retry);
        Outcome::Reply(reply).apply(s);
    }

    fn spawn(
        &mut self,
        s: &mut dyn HttpStream,
        task: impl std::future::Future<Output = Decision> + Send + 'static,
        paced: bool,
    ) -> HeadersStatus {
        let started = if paced {
            self.gw.core.spawn_paced(s, task)
        } else {
            self.gw.core.spawn(s, task)
        };
        match started {
            Ok(p) => self.task = Some(p),
            Err(e) => {
                let failure = match e {
                    AsyncError::Overloaded { .. } => Failure::because(FailureKind::Overloaded, "overloaded", e),
                    AsyncError::Runtime(_) => Failure::because(FailureKind::Internal, "runtime", e),
                };
                self.fail(s, failure);
            }
        }
        HeadersStatus::StopIteration
    }
}

impl HttpFilter for OidcFilter {
    fn on_request_headers(&mut self, s: &mut dyn HttpStream, end_of_stream: bool) -> HeadersStatus {
        let status = self.request_headers(s);
        if self.awaiting_logout_body && end_of_stream {
            // A back-channel POST without a body.
            self.awaiting_logout_body = false;
            self.fail(s, Failure::new(FailureKind::BadRequest, "backchannel_invalid"));
        }
        status
    }

    fn on_request_body(&mut self, s: &mut dyn HttpStream, end_of_stream: bool) -> BodyStatus {
        if !self.awaiting_logout_body {
            return BodyStatus::Continue;
        }
        let body = s.request_body();
        if body.len() > backchannel::MAX_BODY {
            self.awaiting_logout_body = false;
            self.fail(s, Failure::new(FailureKind::PayloadTooLarge, "backchannel_too_large"));
            return BodyStatus::StopIterationAndBuffer;
        }
        if !end_of_stream {
            return BodyStatus::StopIterationAndBuffer;
        }
        self.awaiting_logout_body = false;
        let gw = self.gw.clone();
        let content_type = self.logout_content_type.take();
        let task = async move { Box::pin(backchannel::run(&gw, &body, content_type.as_deref())).await };
        self.spawn(s, task, false);
        BodyStatus::StopIterationAndBuffer
    }

    fn on_scheduled(&mut self, s: &mut dyn HttpStream, event_id: u64) {
        if event_id != COMPLETION_EVENT {
            return;
        }
        let Some(task) = self.task.take() else { return };
        match task.take() {
            Completed::Done(decision) => {
                self.apply(s, decision, true);
            }
            Completed::Failed(TaskFailure::Panicked) => self.fail(s, Failure::new(FailureKind::Internal, "panic")),
            Completed::Failed(TaskFailure::DeadlineExceeded) => {
                self.fail(s, Failure::new(FailureKind::IdpTimeout, "deadline"))
            }
            Completed::NotReady => self.task = Some(task),
        }
    }

    fn on_destroy(&mut self) {
        // Dropping the pending task cancels it (client gone).
        self.task = None;
    }
}
