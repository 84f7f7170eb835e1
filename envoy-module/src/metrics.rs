//! Handles of metrics defined once at config load and updated per stream.

/// A counter defined with [`crate::ConfigContext::define_counter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter(pub(crate) usize);

/// A gauge defined with [`crate::ConfigContext::define_gauge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gauge(pub(crate) usize);

/// A histogram defined with [`crate::ConfigContext::define_histogram`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Histogram(pub(crate) usize);

/// Why Envoy refused to define or update a metric.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("envoy refused metric {name:?}: result code {code}")]
pub struct MetricsError {
    /// The metric's name.
    pub name: String,
    /// `envoy_dynamic_module_type_metrics_result` as returned.
    pub code: u32,
}

/// Where a filter config defines its metrics: Envoy's [`crate::ConfigContext`] in the
/// config hook, or a fake in unit tests, so a filter config can be built without Envoy.
pub trait DefineMetrics {
    /// Defines a counter, optionally with label names (values given at each increment).
    fn define_counter(&mut self, name: &str, labels: &[&str]) -> Result<Counter, MetricsError>;
    /// Defines a gauge.
    fn define_gauge(&mut self, name: &str, labels: &[&str]) -> Result<Gauge, MetricsError>;
    /// Defines a histogram.
    fn define_histogram(&mut self, name: &str, labels: &[&str]) -> Result<Histogram, MetricsError>;
}
