//! The one shape of every error reply the module sends: status, reason and trace id.

use crate::stream::HttpStream;
use crate::trace::TraceId;

/// Plain-text body of an error reply; it names the trace id so a user can report it.
pub fn error_body(status: u16, reason: &str, trace_id: &TraceId) -> String {
    format!("{status} {reason}\ntrace id: {trace_id}\n")
}

/// Sends an error reply carrying the trace id in the body and in `x-request-id`.
pub fn send_error(stream: &mut dyn HttpStream, status: u16, reason: &str, details: &str) {
    let trace_id = stream.trace_id();
    let body = error_body(status, reason, &trace_id);
    stream.send_response(
        status,
        &[
            ("content-type", b"text/plain; charset=utf-8"),
            ("cache-control", b"no-store"),
            ("x-request-id", trace_id.as_str().as_bytes()),
        ],
        body.as_bytes(),
        details,
    );
}
