//! A dynamic module that exercises every capability of `envoy-module` and `async-filter`,
//! one request path per capability, so integration tests can drive them through Envoy.
//!
//! | path prefix          | what the filter does                                            |
//! |----------------------|-----------------------------------------------------------------|
//! | `/sync/edit`         | set/add/remove request headers, continue                        |
//! | `/sync/rewrite`      | rewrite `:path`, continue                                       |
//! | `/sync/reply`        | local 200 with body and two `Set-Cookie`                        |
//! | `/sync/panic`        | panics in the request-headers hook                              |
//! | `/async/continue`    | task sleeps `ms`, then continues with header edits              |
//! | `/async/redirect`    | task answers 302 + `Location` + two `Set-Cookie`                |
//! | `/async/panic`       | task panics                                                     |
//! | `/probe/inflight`    | replies with the number of tasks in flight                      |
//! | `/probe/metrics`     | adds `inc` to counters, records `observe` in a histogram        |
//! | `/probe/echo`        | replies with cookies, worker, route tag, metadata, filter state |
//! | `/probe/body`        | buffers the request body, replies with it                       |
//! | anything else        | one header read, one header write (the benchmark path)          |
//!
//! The probe paths also set `x-probe-response` on the response (the response-headers hook).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_filter::{
    AsyncCore, AsyncError, Completed, HeaderEdit, Limits, LocalReply, Outcome, Pending, TaskFailure, COMPLETION_EVENT,
};
use envoy_module::DefineMetrics;
use envoy_module::{
    send_error, BodyStatus, ConfigContext, Counter, Gauge, HeaderKind, HeadersStatus, Histogram, HttpFilter,
    HttpFilterConfig, HttpStream,
};
use serde::Deserialize;

envoy_module::declare_module!(new_filter_config: new_config, new_route_config: new_route_config);

/// Filter config JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeSettings {
    #[serde(default = "default_deadline_ms")]
    deadline_ms: u64,
    #[serde(default = "default_max_in_flight")]
    max_in_flight: usize,
    /// Do nothing at all: measures Envoy's own cost of calling a module.
    #[serde(default)]
    passthrough: bool,
}

fn default_deadline_ms() -> u64 {
    2_000
}

fn default_max_in_flight() -> usize {
    1_000
}

/// Per-route config JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSettings {
    tag: String,
}

struct ProbeConfig {
    passthrough: bool,
    core: AsyncCore,
    requests: Counter,
    labeled: Counter,
    in_flight: Gauge,
    values: Histogram,
}

fn new_config(ctx: &mut ConfigContext, _name: &str, raw: &[u8]) -> Result<Box<dyn HttpFilterConfig>, String> {
    let settings: ProbeSettings = serde_json::from_slice(raw).map_err(|e| format!("invalid probe config: {e}"))?;
    let metric_err = |e: envoy_module::MetricsError| e.to_string();
    Ok(Box::new(ProbeFactory(Arc::new(ProbeConfig {
        passthrough: settings.passthrough,
        core: AsyncCore::new(Limits {
            max_in_flight: settings.max_in_flight,
            deadline: Duration::from_millis(settings.deadline_ms),
        }),
        requests: ctx.define_counter("probe_requests", &[]).map_err(metric_err)?,
        labeled: ctx.define_counter("probe_labeled", &["kind"]).map_err(metric_err)?,
        in_flight: ctx.define_gauge("probe_in_flight", &[]).map_err(metric_err)?,
        values: ctx.define_histogram("probe_values", &[]).map_err(metric_err)?,
    }))))
}

fn new_route_config(_name: &str, raw: &[u8]) -> Result<Box<dyn Any + Send + Sync>, String> {
    let settings: RouteSettings =
        serde_json::from_slice(raw).map_err(|e| format!("invalid probe route config: {e}"))?;
    Ok(Box::new(settings))
}

/// The config Envoy holds; each stream's filter shares its `ProbeConfig`.
struct ProbeFactory(Arc<ProbeConfig>);

impl HttpFilterConfig for ProbeFactory {
    fn new_filter(&self, _stream: &mut dyn HttpStream) -> Box<dyn HttpFilter> {
        Box::new(ProbeFilter {
            config: self.0.clone(),
            pending: None,
            probe_path: false,
        })
    }
}

struct ProbeFilter {
    config: Arc<ProbeConfig>,
    pending: Option<Pending<Outcome>>,
    /// The request is one of the probe paths (not the benchmark path).
    probe_path: bool,
}

fn query_param(path: &[u8], key: &str) -> Option<String> {
    let query = path.splitn(2, |b| *b == b'?').nth(1)?;
    form_urlencoded::parse(query)
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn reply_text(stream: &mut dyn HttpStream, body: &str) -> HeadersStatus {
    stream.send_response(200, &[("content-type", b"text/plain")], body.as_bytes(), "probe");
    HeadersStatus::StopIteration
}

impl ProbeFilter {
    fn spawn(
        &mut self,
        stream: &mut dyn HttpStream,
        task: impl std::future::Future<Output = Outcome> + Send + 'static,
    ) -> HeadersStatus {
        match self.config.core.spawn(stream, task) {
            Ok(pending) => {
                self.pending = Some(pending);
                HeadersStatus::StopIteration
            }
            Err(e) => {
                // This test module's own mapping (the OIDC filter has its failure table).
                let (status, reason) = match e {
                    AsyncError::Overloaded { .. } => (503, "Service Unavailable"),
                    AsyncError::Runtime(_) => (500, "Internal Server Error"),
                };
                send_error(stream, status, reason, "probe_spawn_refused");
                HeadersStatus::StopIteration
            }
        }
    }

    fn echo(&self, stream: &mut dyn HttpStream) -> HeadersStatus {
        stream.set_metadata("probe", "user", "alice");
        let stored = stream.set_filter_state("probe.state", b"kept");
        let cookies: Vec<String> = stream
            .header_values(HeaderKind::Request, "cookie")
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let tag = stream
            .route_config()
            .and_then(|c| c.downcast_ref::<RouteSettings>())
            .map_or("none".to_owned(), |r| r.tag.clone());
        let meta = stream
            .metadata("probe", "user")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        let state = stream
            .filter_state("probe.state")
            .map(|v| String::from_utf8_lossy(v).into_owned());
        let header_count = stream.headers(HeaderKind::Request).len();
        let body = format!(
            "cookies={}\nworker={}\ntag={}\nmetadata={}\nfilter_state={} stored={}\ntrace={}\nheaders={}\n",
            cookies.join(" | "),
            stream.worker_index(),
            tag,
            meta.unwrap_or_default(),
            state.unwrap_or_default(),
            stored,
            stream.trace_id(),
            header_count,
        );
        reply_text(stream, &body)
    }
}

impl HttpFilter for ProbeFilter {
    fn on_request_headers(&mut self, stream: &mut dyn HttpStream, end_of_stream: bool) -> HeadersStatus {
        if self.config.passthrough {
            return HeadersStatus::Continue;
        }
        let path = stream.header(HeaderKind::Request, ":path").unwrap_or(b"/");
        if !(path.starts_with(b"/sync/") || path.starts_with(b"/async/") || path.starts_with(b"/probe/")) {
            // The benchmark path: exactly one header read and one header write.
            let seen = stream.header(HeaderKind::Request, "user-agent").map_or(0, <[u8]>::len);
            stream.set_header(HeaderKind::Request, "x-probe-seen", seen.to_string().as_bytes());
            return HeadersStatus::Continue;
        }
        let path = path.to_vec();
        self.probe_path = true;
        let in_flight = self.config.core.in_flight() as u64;
        stream.set_gauge(self.config.in_flight, &[], in_flight);
        let ms = query_param(&path, "ms")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let trace = stream.trace_id().to_string();

        if path.starts_with(b"/sync/edit") {
            stream.set_header(HeaderKind::Request, "x-probe-sync", b"edited");
            stream.add_header(HeaderKind::Request, "x-probe-multi", b"one");
            stream.add_header(HeaderKind::Request, "x-probe-multi", b"two");
            stream.remove_header(HeaderKind::Request, "x-remove-me");
            HeadersStatus::Continue
        } else if path.starts_with(b"/sync/rewrite") {
            stream.set_header(HeaderKind::Request, ":path", b"/rewritten?from=sync");
            HeadersStatus::Continue
        } else if path.starts_with(b"/sync/reply") {
            stream.send_response(
                200,
                &[
                    ("content-type", b"text/plain"),
                    ("set-cookie", b"a=1; Path=/"),
                    ("set-cookie", b"b=2; Path=/; HttpOnly"),
                ],
                b"local reply",
                "probe_reply",
            );
            HeadersStatus::StopIteration
        } else if path.starts_with(b"/sync/panic") {
            panic!("probe: deliberate panic in request headers");
        } else if path.starts_with(b"/async/continue") {
            self.spawn(stream, async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Outcome::Continue(vec![
                    HeaderEdit::Set("x-probe-async".into(), trace.into_bytes()),
                    HeaderEdit::Remove("x-remove-me".into()),
                ])
            })
        } else if path.starts_with(b"/async/redirect") {
            self.spawn(stream, async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Outcome::Reply(LocalReply {
                    status: 302,
                    headers: vec![
                        ("location".into(), format!("/landing?trace={trace}").into_bytes()),
                        ("set-cookie".into(), b"session=s1; Path=/; HttpOnly".to_vec()),
                        ("set-cookie".into(), b"flow=; Path=/; Max-Age=0".to_vec()),
                    ],
                    body: Vec::new(),
                    details: "probe_redirect".into(),
                })
            })
        } else if path.starts_with(b"/async/panic") {
            self.spawn(stream, async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                panic!("probe: deliberate panic in async task");
            })
        } else if path.starts_with(b"/probe/inflight") {
            reply_text(stream, &format!("{in_flight}"))
        } else if path.starts_with(b"/probe/metrics") {
            let inc = query_param(&path, "inc").and_then(|v| v.parse().ok()).unwrap_or(1);
            let observe = query_param(&path, "observe").and_then(|v| v.parse().ok()).unwrap_or(0);
            stream.increment_counter(self.config.requests, &[], inc);
            stream.increment_counter(self.config.labeled, &["alpha"], inc);
            stream.record_histogram(self.config.values, &[], observe);
            reply_text(stream, "recorded")
        } else if path.starts_with(b"/probe/echo") {
            self.echo(stream)
        } else if path.starts_with(b"/probe/body") {
            if end_of_stream {
                reply_text(stream, "body=")
            } else {
                HeadersStatus::StopIteration
            }
        } else {
            HeadersStatus::Continue
        }
    }

    fn on_request_body(&mut self, stream: &mut dyn HttpStream, end_of_stream: bool) -> BodyStatus {
        let is_body_probe = stream
            .header(HeaderKind::Request, ":path")
            .is_some_and(|p| p.starts_with(b"/probe/body"));
        if !is_body_probe {
            return BodyStatus::Continue;
        }
        if !end_of_stream {
            return BodyStatus::StopIterationAndBuffer;
        }
        let body = stream.request_body();
        let text = format!("body={}", String::from_utf8_lossy(&body));
        stream.send_response(200, &[("content-type", b"text/plain")], text.as_bytes(), "probe_body");
        BodyStatus::StopIterationAndBuffer
    }

    fn on_response_headers(&mut self, stream: &mut dyn HttpStream, _end_of_stream: bool) -> HeadersStatus {
        if self.probe_path {
            stream.set_header(HeaderKind::Response, "x-probe-response", b"seen");
        }
        HeadersStatus::Continue
    }

    fn on_scheduled(&mut self, stream: &mut dyn HttpStream, event_id: u64) {
        if event_id == COMPLETION_EVENT {
            if let Some(pending) = self.pending.take() {
                match pending.take() {
                    Completed::Done(outcome) => outcome.apply(stream),
                    Completed::Failed(TaskFailure::Panicked) => {
                        send_error(stream, 500, "Internal Server Error", "async_panic")
                    }
                    Completed::Failed(TaskFailure::DeadlineExceeded) => {
                        send_error(stream, 504, "Gateway Timeout", "async_deadline")
                    }
                    Completed::NotReady => {}
                }
            }
        }
    }

    fn on_destroy(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.cancel();
        }
    }
}
