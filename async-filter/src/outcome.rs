//! What an async task decides for its stream, applied on the worker thread.

use envoy_module::{HeaderKind, HttpStream};

/// One change to the request headers before the request continues upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Replace every value of the header.
    Set(String, Vec<u8>),
    /// Add one value.
    Add(String, Vec<u8>),
    /// Remove every value.
    Remove(String),
}

/// A complete local reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u16,
    /// Headers in order; repeated names (several `set-cookie`) are kept.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Envoy's response-code details (shows in access logs).
    pub details: String,
}

/// What a stream stopped in its request-headers hook is told to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Apply the edits to the request headers, then continue to the upstream.
    Continue(Vec<HeaderEdit>),
    /// Answer the client directly.
    Reply(LocalReply),
}

impl Outcome {
    /// Applies the outcome to a stream stopped in its request-headers hook.
    pub fn apply(self, stream: &mut dyn HttpStream) {
        match self {
            Outcome::Continue(edits) => {
                for edit in edits {
                    match edit {
                        HeaderEdit::Set(name, value) => stream.set_header(HeaderKind::Request, &name, &value),
                        HeaderEdit::Add(name, value) => stream.add_header(HeaderKind::Request, &name, &value),
                        HeaderEdit::Remove(name) => stream.remove_header(HeaderKind::Request, &name),
                    }
                }
                stream.continue_decoding();
            }
            Outcome::Reply(reply) => {
                let headers: Vec<(&str, &[u8])> =
                    reply.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
                stream.send_response(reply.status, &headers, &reply.body, &reply.details);
            }
        }
    }
}
