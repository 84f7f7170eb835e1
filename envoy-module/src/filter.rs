//! The traits a module implements: one config per Envoy filter config, one filter per stream.

use crate::stream::HttpStream;

/// What Envoy does after a headers hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadersStatus {
    /// Pass the headers on to the next filter.
    Continue,
    /// Hold the stream until `continue_decoding`/`continue_encoding` or a local reply.
    StopIteration,
}

/// What Envoy does after a body hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyStatus {
    /// Pass the data on.
    Continue,
    /// Keep buffering the body until the filter continues.
    StopIterationAndBuffer,
}

/// One filter configuration, built on the main thread and shared by all workers.
pub trait HttpFilterConfig: Send + Sync {
    /// Creates the filter of one new stream (on its worker thread). Must not block.
    fn new_filter(&self, stream: &mut dyn HttpStream) -> Box<dyn HttpFilter>;
}

/// The filter of one stream. Every hook runs on the stream's worker thread and must not
/// block; defaults pass everything through.
pub trait HttpFilter {
    /// Request headers arrived. `StopIteration` holds the request (async work, local reply).
    fn on_request_headers(&mut self, _stream: &mut dyn HttpStream, _end_of_stream: bool) -> HeadersStatus {
        HeadersStatus::Continue
    }
    /// A request body chunk arrived.
    fn on_request_body(&mut self, _stream: &mut dyn HttpStream, _end_of_stream: bool) -> BodyStatus {
        BodyStatus::Continue
    }
    /// Response headers arrived from upstream.
    fn on_response_headers(&mut self, _stream: &mut dyn HttpStream, _end_of_stream: bool) -> HeadersStatus {
        HeadersStatus::Continue
    }
    /// A scheduler commit with `event_id` reached this stream's worker.
    fn on_scheduled(&mut self, _stream: &mut dyn HttpStream, _event_id: u64) {}
    /// The stream ended (before access logs are written).
    fn on_stream_complete(&mut self, _stream: &mut dyn HttpStream) {}
    /// Envoy is destroying the stream (completion or client disconnect); no stream access.
    fn on_destroy(&mut self) {}
}
