//! An in-memory [`HttpStream`] for unit tests of filter logic without Envoy.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::metrics::{Counter, DefineMetrics, Gauge, Histogram, MetricsError};
use crate::stream::{HeaderKind, HttpStream, Scheduler};

/// A local reply the fake recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedReply {
    /// Status.
    pub status: u16,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    pub body: Vec<u8>,
    /// Response-code details.
    pub details: String,
}

impl RecordedReply {
    /// Every value of a header (case-insensitive name).
    pub fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

/// What the fake's schedulers did, shared with the test.
#[derive(Default, Debug)]
pub struct SchedulerLog {
    /// Event ids committed, in order.
    pub commits: Mutex<Vec<u64>>,
    /// Schedulers created and not yet dropped.
    pub live: AtomicUsize,
}

impl SchedulerLog {
    /// Event ids committed so far.
    pub fn committed(&self) -> Vec<u64> {
        self.commits.lock().map(|c| c.clone()).unwrap_or_default()
    }
    /// Schedulers not yet deleted.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

struct FakeScheduler(Arc<SchedulerLog>);

impl Scheduler for FakeScheduler {
    fn commit(&self, event_id: u64) {
        if let Ok(mut c) = self.0.commits.lock() {
            c.push(event_id);
        }
    }
}

impl Drop for FakeScheduler {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A fake stream: headers in vectors, everything the filter does is recorded.
#[derive(Default)]
pub struct FakeStream {
    /// Request headers in order (pseudo-headers included).
    pub request_headers: Vec<(String, Vec<u8>)>,
    /// Response headers in order.
    pub response_headers: Vec<(String, Vec<u8>)>,
    /// Request body.
    pub body: Vec<u8>,
    /// The local reply sent, if any.
    pub reply: Option<RecordedReply>,
    /// Times `continue_decoding` was called.
    pub continued_decoding: usize,
    /// Times `continue_encoding` was called.
    pub continued_encoding: usize,
    /// Dynamic metadata by (namespace, key).
    pub metadata: HashMap<(String, String), String>,
    /// Filter state by key.
    pub filter_state: HashMap<String, Vec<u8>>,
    /// The per-route config to hand out.
    pub route: Option<Box<dyn Any + Send + Sync>>,
    /// Counter totals by (id, labels).
    pub counters: HashMap<(usize, Vec<String>), u64>,
    /// Gauge values by (id, labels).
    pub gauges: HashMap<(usize, Vec<String>), u64>,
    /// Histogram samples by (id, labels).
    pub histograms: HashMap<(usize, Vec<String>), Vec<u64>>,
    /// What schedulers made by this stream did.
    pub schedulers: Arc<SchedulerLog>,
}

impl FakeStream {
    /// A stream with the given request headers.
    pub fn with_request_headers(headers: &[(&str, &str)]) -> Self {
        Self {
            request_headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
                .collect(),
            ..Self::default()
        }
    }

    fn map(&self, kind: HeaderKind) -> &Vec<(String, Vec<u8>)> {
        match kind {
            HeaderKind::Request => &self.request_headers,
            HeaderKind::Response => &self.response_headers,
        }
    }

    fn map_mut(&mut self, kind: HeaderKind) -> &mut Vec<(String, Vec<u8>)> {
        match kind {
            HeaderKind::Request => &mut self.request_headers,
            HeaderKind::Response => &mut self.response_headers,
        }
    }
}

fn key(id: usize, labels: &[&str]) -> (usize, Vec<String>) {
    (id, labels.iter().map(|l| (*l).to_owned()).collect())
}

impl HttpStream for FakeStream {
    fn header(&self, kind: HeaderKind, name: &str) -> Option<&[u8]> {
        self.map(kind)
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
    fn header_values(&self, kind: HeaderKind, name: &str) -> Vec<&[u8]> {
        self.map(kind)
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }
    fn headers(&self, kind: HeaderKind) -> Vec<(&[u8], &[u8])> {
        self.map(kind)
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_slice()))
            .collect()
    }
    fn set_header(&mut self, kind: HeaderKind, name: &str, value: &[u8]) {
        self.remove_header(kind, name);
        self.map_mut(kind).push((name.to_owned(), value.to_vec()));
    }
    fn add_header(&mut self, kind: HeaderKind, name: &str, value: &[u8]) {
        self.map_mut(kind).push((name.to_owned(), value.to_vec()));
    }
    fn remove_header(&mut self, kind: HeaderKind, name: &str) {
        self.map_mut(kind).retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }
    fn request_body(&self) -> Vec<u8> {
        self.body.clone()
    }
    fn send_response(&mut self, status: u16, headers: &[(&str, &[u8])], body: &[u8], details: &str) {
        self.reply = Some(RecordedReply {
            status,
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), v.to_vec())).collect(),
            body: body.to_vec(),
            details: details.to_owned(),
        });
    }
    fn continue_decoding(&mut self) {
        self.continued_decoding += 1;
    }
    fn continue_encoding(&mut self) {
        self.continued_encoding += 1;
    }
    fn set_metadata(&mut self, namespace: &str, key: &str, value: &str) {
        self.metadata
            .insert((namespace.to_owned(), key.to_owned()), value.to_owned());
    }
    fn metadata(&self, namespace: &str, key: &str) -> Option<&[u8]> {
        self.metadata
            .get(&(namespace.to_owned(), key.to_owned()))
            .map(|v| v.as_bytes())
    }
    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> bool {
        self.filter_state.insert(key.to_owned(), value.to_vec());
        true
    }
    fn filter_state(&self, key: &str) -> Option<&[u8]> {
        self.filter_state.get(key).map(Vec::as_slice)
    }
    fn route_config(&self) -> Option<&(dyn Any + Send + Sync)> {
        self.route.as_deref()
    }
    fn worker_index(&self) -> u32 {
        0
    }
    fn new_scheduler(&mut self) -> Box<dyn Scheduler> {
        self.schedulers.live.fetch_add(1, Ordering::SeqCst);
        Box::new(FakeScheduler(self.schedulers.clone()))
    }
    fn increment_counter(&mut self, counter: Counter, labels: &[&str], by: u64) {
        *self.counters.entry(key(counter.0, labels)).or_default() += by;
    }
    fn set_gauge(&mut self, gauge: Gauge, labels: &[&str], value: u64) {
        self.gauges.insert(key(gauge.0, labels), value);
    }
    fn record_histogram(&mut self, histogram: Histogram, labels: &[&str], value: u64) {
        self.histograms.entry(key(histogram.0, labels)).or_default().push(value);
    }
}

/// Defines metrics without Envoy: each gets the next id; names are kept for assertions.
#[derive(Default, Debug)]
pub struct FakeMetrics {
    /// Names in definition order (the id is the index).
    pub names: Vec<String>,
}

impl FakeMetrics {
    fn next(&mut self, name: &str) -> usize {
        self.names.push(name.to_owned());
        self.names.len() - 1
    }

    /// The id a metric was defined with.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

impl DefineMetrics for FakeMetrics {
    fn define_counter(&mut self, name: &str, _labels: &[&str]) -> Result<Counter, MetricsError> {
        Ok(Counter(self.next(name)))
    }
    fn define_gauge(&mut self, name: &str, _labels: &[&str]) -> Result<Gauge, MetricsError> {
        Ok(Gauge(self.next(name)))
    }
    fn define_histogram(&mut self, name: &str, _labels: &[&str]) -> Result<Histogram, MetricsError> {
        Ok(Histogram(self.next(name)))
    }
}

impl FakeStream {
    /// The total of counter `name` (as defined through `metrics`) with these labels.
    pub fn counter(&self, metrics: &FakeMetrics, name: &str, labels: &[&str]) -> u64 {
        metrics
            .id(name)
            .and_then(|id| self.counters.get(&key(id, labels)).copied())
            .unwrap_or(0)
    }
}
