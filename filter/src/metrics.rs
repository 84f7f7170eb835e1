//! The filter's Envoy stats, declared once; incremented on the worker thread only.

use envoy_module::{Counter, DefineMetrics, Gauge, Histogram, HttpStream, MetricsError};

/// Every metric, as defined at config load (shared by a config's IdPs).
#[derive(Clone)]
pub struct Metrics {
    login_started: Counter,
    login_succeeded: Counter,
    login_failed: Counter,
    cache_hit: Counter,
    cache_miss: Counter,
    store_errors: Counter,
    refreshes: Counter,
    backchannel: Counter,
    logouts: Counter,
    bearer: Counter,
    callback_ms: Histogram,
    ready: Gauge,
    tasks: Gauge,
}

/// One thing to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A browser was sent to the IdP.
    LoginStarted,
    /// A callback created a session; the async part took this long.
    LoginSucceeded(u64),
    /// A callback failed for this reason.
    LoginFailed(&'static str),
    /// A session was served from this process's cache.
    CacheHit,
    /// A session had to be loaded from the store.
    CacheMiss,
    /// A store call failed.
    StoreError,
    /// A refresh ended this way.
    Refresh(&'static str),
    /// A back-channel logout request ended this way.
    Backchannel(&'static str),
    /// A local sign-out.
    Logout,
    /// A bearer token was checked with this result.
    Bearer(&'static str),
    /// What a readiness probe saw: discovery done, tasks alive on the module's runtime.
    Health {
        /// Discovery has succeeded.
        ready: bool,
        /// Tasks alive (background work of every live config, and requests in flight).
        tasks: u64,
    },
}

impl Metrics {
    /// Defines the metrics (names are prefixed `oidc_` in `/stats/prometheus`).
    pub fn define(ctx: &mut dyn DefineMetrics) -> Result<Self, MetricsError> {
        Ok(Self {
            login_started: ctx.define_counter("oidc_login_started", &[])?,
            login_succeeded: ctx.define_counter("oidc_login_succeeded", &[])?,
            login_failed: ctx.define_counter("oidc_login_failed", &["reason"])?,
            cache_hit: ctx.define_counter("oidc_session_cache_hit", &[])?,
            cache_miss: ctx.define_counter("oidc_session_cache_miss", &[])?,
            store_errors: ctx.define_counter("oidc_store_errors", &[])?,
            refreshes: ctx.define_counter("oidc_refreshes", &["result"])?,
            backchannel: ctx.define_counter("oidc_backchannel_logouts", &["result"])?,
            logouts: ctx.define_counter("oidc_logouts", &[])?,
            bearer: ctx.define_counter("oidc_bearer_tokens", &["result"])?,
            callback_ms: ctx.define_histogram("oidc_callback_latency_ms", &[])?,
            ready: ctx.define_gauge("oidc_ready", &[])?,
            tasks: ctx.define_gauge("oidc_runtime_tasks", &[])?,
        })
    }

    /// Counts one event.
    pub fn record(&self, s: &mut dyn HttpStream, m: Metric) {
        match m {
            Metric::LoginStarted => s.increment_counter(self.login_started, &[], 1),
            Metric::LoginSucceeded(ms) => {
                s.increment_counter(self.login_succeeded, &[], 1);
                s.record_histogram(self.callback_ms, &[], ms);
            }
            Metric::LoginFailed(reason) => s.increment_counter(self.login_failed, &[reason], 1),
            Metric::CacheHit => s.increment_counter(self.cache_hit, &[], 1),
            Metric::CacheMiss => s.increment_counter(self.cache_miss, &[], 1),
            Metric::StoreError => s.increment_counter(self.store_errors, &[], 1),
            Metric::Refresh(r) => s.increment_counter(self.refreshes, &[r], 1),
            Metric::Backchannel(r) => s.increment_counter(self.backchannel, &[r], 1),
            Metric::Logout => s.increment_counter(self.logouts, &[], 1),
            Metric::Bearer(r) => s.increment_counter(self.bearer, &[r], 1),
            Metric::Health { ready, tasks } => {
                s.set_gauge(self.ready, &[], u64::from(ready));
                s.set_gauge(self.tasks, &[], tasks);
            }
        }
    }
}
