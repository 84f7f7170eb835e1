//! The safe surface of one HTTP stream, as a trait so that filter logic can be tested
//! with a fake and run against [`crate::EnvoyStream`] inside Envoy.

use std::any::Any;

use crate::metrics::{Counter, Gauge, Histogram};
use crate::trace::TraceId;

/// Which header map of the stream an operation addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderKind {
    /// Request headers (pseudo-headers such as `:path` included).
    Request,
    /// Response headers.
    Response,
}

/// Wakes a stream's filter on its worker thread from any thread.
///
/// Implementations must be safe to call after the stream is gone (the commit is then
/// dropped) for as long as the scheduler itself is alive.
pub trait Scheduler: Send + Sync {
    /// Schedules `on_scheduled(event_id)` on the stream's worker thread.
    fn commit(&self, event_id: u64);
}

/// Operations on one HTTP stream, valid only inside a filter hook on its worker thread.
///
/// Borrowed values (`&[u8]`) live until the next mutating call, which the borrow checker
/// enforces: every getter takes `&self`, every setter `&mut self`.
pub trait HttpStream {
    /// First value of a header.
    fn header(&self, kind: HeaderKind, name: &str) -> Option<&[u8]>;
    /// Every value of a header, in order (e.g. several `cookie` lines).
    fn header_values(&self, kind: HeaderKind, name: &str) -> Vec<&[u8]>;
    /// Every header, in order.
    fn headers(&self, kind: HeaderKind) -> Vec<(&[u8], &[u8])>;
    /// Replaces every value of a header with one value.
    fn set_header(&mut self, kind: HeaderKind, name: &str, value: &[u8]);
    /// Adds one more value of a header.
    fn add_header(&mut self, kind: HeaderKind, name: &str, value: &[u8]);
    /// Removes every value of a header.
    fn remove_header(&mut self, kind: HeaderKind, name: &str);
    /// The request body Envoy holds so far (buffered plus the chunk of this event).
    fn request_body(&self) -> Vec<u8>;
    /// Sends a local reply; the hook must then return `StopIteration`.
    fn send_response(&mut self, status: u16, headers: &[(&str, &[u8])], body: &[u8], details: &str);
    /// Resumes a request stopped by a previous hook.
    fn continue_decoding(&mut self);
    /// Resumes a response stopped by a previous hook.
    fn continue_encoding(&mut self);
    /// Sets a string in the stream's dynamic metadata (visible to access logs).
    fn set_metadata(&mut self, namespace: &str, key: &str, value: &str);
    /// Reads a string from the stream's dynamic metadata.
    fn metadata(&self, namespace: &str, key: &str) -> Option<&[u8]>;
    /// Sets a filter-state value; false if the key exists read-only.
    fn set_filter_state(&mut self, key: &str, value: &[u8]) -> bool;
    /// Reads a filter-state value.
    fn filter_state(&self, key: &str) -> Option<&[u8]>;
    /// The most specific per-route config of this module for the stream's route.
    fn route_config(&self) -> Option<&(dyn Any + Send + Sync)>;
    /// Index of the Envoy worker running this stream.
    fn worker_index(&self) -> u32;
    /// A scheduler bound to this stream, usable from any thread.
    fn new_scheduler(&mut self) -> Box<dyn Scheduler>;
    /// Adds to a counter defined at config time.
    fn increment_counter(&mut self, counter: Counter, labels: &[&str], by: u64);
    /// Sets a gauge defined at config time.
    fn set_gauge(&mut self, gauge: Gauge, labels: &[&str], value: u64);
    /// Records a histogram sample defined at config time.
    fn record_histogram(&mut self, histogram: Histogram, labels: &[&str], value: u64);

    /// The request's trace id: `x-request-id`, else the trace id of `traceparent`.
    fn trace_id(&self) -> TraceId {
        TraceId::from_headers(
            self.header(HeaderKind::Request, "x-request-id"),
            self.header(HeaderKind::Request, "traceparent"),
        )
    }
}
