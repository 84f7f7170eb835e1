//! The request headers the filter reads, found in one pass over Envoy's header map: one
//! call across the module boundary instead of one per header (each costs Envoy a lookup
//! of its own; `scripts/bench_icount.py` measured eight of them at 6.5k instructions).

use envoy_module::TraceId;

/// What the filter reads of a request, borrowed from Envoy's header map (valid until the
/// stream is changed).
#[derive(Default)]
pub struct RequestHeaders<'a> {
    /// `:path` as sent.
    pub path: Option<&'a [u8]>,
    /// `:method`.
    pub method: Option<&'a [u8]>,
    /// `:authority`.
    pub authority: Option<&'a [u8]>,
    /// `accept`.
    pub accept: Option<&'a [u8]>,
    /// Every `cookie` line, in order.
    pub cookies: Vec<&'a [u8]>,
    /// `authorization`.
    pub authorization: Option<&'a [u8]>,
    /// `x-requested-with`.
    pub requested_with: Option<&'a [u8]>,
    /// `sec-fetch-site`.
    pub fetch_site: Option<&'a [u8]>,
    /// `origin`.
    pub origin: Option<&'a [u8]>,
    /// `content-type`.
    pub content_type: Option<&'a [u8]>,
    request_id: Option<&'a [u8]>,
    traceparent: Option<&'a [u8]>,
}

impl<'a> RequestHeaders<'a> {
    /// Picks the headers out of the whole map (the first value of each, every `cookie`).
    pub fn read(all: &[(&'a [u8], &'a [u8])]) -> Self {
        let mut r = Self::default();
        for &(name, value) in all {
            let slot = match name {
                b":path" => &mut r.path,
                b":method" => &mut r.method,
                b":authority" => &mut r.authority,
                _ if name.eq_ignore_ascii_case(b"cookie") => {
                    r.cookies.push(value);
                    continue;
                }
                _ if name.eq_ignore_ascii_case(b"accept") => &mut r.accept,
                _ if name.eq_ignore_ascii_case(b"authorization") => &mut r.authorization,
                _ if name.eq_ignore_ascii_case(b"x-requested-with") => &mut r.requested_with,
                _ if name.eq_ignore_ascii_case(b"sec-fetch-site") => &mut r.fetch_site,
                _ if name.eq_ignore_ascii_case(b"origin") => &mut r.origin,
                _ if name.eq_ignore_ascii_case(b"content-type") => &mut r.content_type,
                _ if name.eq_ignore_ascii_case(b"x-request-id") => &mut r.request_id,
                _ if name.eq_ignore_ascii_case(b"traceparent") => &mut r.traceparent,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        r
    }

    /// The request's trace id: `x-request-id`, else the trace id of `traceparent`.
    pub fn trace_id(&self) -> TraceId {
        TraceId::from_headers(self.request_id, self.traceparent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_finds_each_header_and_every_cookie_line() {
        let all: Vec<(&[u8], &[u8])> = vec![
            (b":path", b"/x?y=1"),
            (b":method", b"GET"),
            (b"Cookie", b"a=1"),
            (b"accept", b"text/html"),
            (b"cookie", b"b=2"),
            (b"accept", b"application/json"),
            (b"x-request-id", b"rid"),
        ];
        let r = RequestHeaders::read(&all);
        assert_eq!(r.path, Some(&b"/x?y=1"[..]));
        assert_eq!(r.cookies, vec![&b"a=1"[..], &b"b=2"[..]]);
        assert_eq!(r.accept, Some(&b"text/html"[..]), "the first value");
        assert_eq!(r.authorization, None);
        assert_eq!(r.trace_id().to_string(), "rid");
    }
}
