//! Trace ids: the value every log line and every error reply of a request carries.

use std::fmt;

/// A request's trace id, reduced to a safe alphabet so it can go into logs and bodies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TraceId(String);

/// Longest id kept; longer input is cut (ids are for correlation, not storage).
const MAX_LEN: usize = 64;

impl TraceId {
    /// Picks `x-request-id`, else the trace-id field of a W3C `traceparent`, else `-`.
    pub fn from_headers(request_id: Option<&[u8]>, traceparent: Option<&[u8]>) -> Self {
        if let Some(id) = request_id.and_then(sanitize) {
            return Self(id);
        }
        // traceparent = version "-" trace-id(32 hex) "-" parent-id "-" flags
        let from_parent = traceparent
            .and_then(|v| v.split(|b| *b == b'-').nth(1))
            .filter(|t| t.len() == 32 && t.iter().all(u8::is_ascii_hexdigit))
            .and_then(sanitize);
        Self(from_parent.unwrap_or_else(|| "-".to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Keeps ids made of `[A-Za-z0-9._:-]`; anything else (CR/LF, quotes, spaces) is refused
/// so an attacker-chosen id cannot forge log lines or break out of a reply body.
fn sanitize(raw: &[u8]) -> Option<String> {
    let raw = &raw[..raw.len().min(MAX_LEN)];
    let ok = !raw.is_empty()
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    ok.then(|| String::from_utf8_lossy(raw).into_owned())
}

#[cfg(test)]
mod tests {
    use super::TraceId;

    #[test]
    fn prefers_request_id() {
        let t = TraceId::from_headers(
            Some(b"abc-123"),
            Some(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        assert_eq!(t.as_str(), "abc-123");
    }

    #[test]
    fn falls_back_to_traceparent() {
        let t = TraceId::from_headers(None, Some(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
        assert_eq!(t.as_str(), "0af7651916cd43dd8448eb211c80319c");
    }

    #[test]
    fn refuses_injection_and_garbage() {
        assert_eq!(TraceId::from_headers(Some(b"a\r\nfake log"), None).as_str(), "-");
        assert_eq!(TraceId::from_headers(Some(b""), Some(b"00-xyz-1-01")).as_str(), "-");
        assert_eq!(TraceId::from_headers(None, None).as_str(), "-");
    }

    #[test]
    fn cuts_long_ids() {
        let long = vec![b'a'; 500];
        assert_eq!(TraceId::from_headers(Some(&long), None).as_str().len(), 64);
    }
}
