//! Every way a request can fail, and the one place a failure becomes an HTTP reply: the
//! status table ([`FailureKind::status`]), the page a browser gets (HTML) and the body an
//! API client gets (JSON), both from templates a user can override, with the trace id.

use async_filter::LocalReply;
use envoy_module::TraceId;

use crate::config::{ErrorPages, TemplateField, TemplatePiece, Templates};

/// What kind of failure, which decides the status (client's fault 4xx, ours or the
/// IdP's 5xx).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The request is malformed or no longer valid (bad callback, replayed state).
    BadRequest,
    /// No credentials, or credentials that are not valid (API clients).
    Unauthorized,
    /// Authenticated, but not allowed.
    Forbidden,
    /// A path of the filter's own that it does not serve.
    NotFound,
    /// A body larger than the filter accepts.
    PayloadTooLarge,
    /// The IdP answered wrongly or could not be reached.
    IdpUnavailable,
    /// The IdP did not answer in time.
    IdpTimeout,
    /// The IdP has not been discovered yet (startup, IdP down): try again shortly.
    NotReady,
    /// The session store failed or is unreachable.
    StoreUnavailable,
    /// The session store did not answer in time.
    StoreTimeout,
    /// Too much async work in flight: refused at once instead of queued.
    Overloaded,
    /// Our own bug or a broken invariant (a panic, a sealing failure).
    Internal,
}

impl FailureKind {
    /// Every kind (tests walk the table).
    pub const ALL: [FailureKind; 12] = [
        FailureKind::BadRequest,
        FailureKind::Unauthorized,
        FailureKind::Forbidden,
        FailureKind::NotFound,
        FailureKind::PayloadTooLarge,
        FailureKind::IdpUnavailable,
        FailureKind::IdpTimeout,
        FailureKind::NotReady,
        FailureKind::StoreUnavailable,
        FailureKind::StoreTimeout,
        FailureKind::Overloaded,
        FailureKind::Internal,
    ];

    /// The status table: the only place a failure gets an HTTP status and reason phrase.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            FailureKind::BadRequest => (400, "Bad Request"),
            FailureKind::Unauthorized => (401, "Unauthorized"),
            FailureKind::Forbidden => (403, "Forbidden"),
            FailureKind::NotFound => (404, "Not Found"),
            FailureKind::PayloadTooLarge => (413, "Payload Too Large"),
            FailureKind::IdpUnavailable => (502, "Bad Gateway"),
            FailureKind::IdpTimeout | FailureKind::StoreTimeout => (504, "Gateway Timeout"),
            FailureKind::StoreUnavailable | FailureKind::Overloaded | FailureKind::NotReady => {
                (503, "Service Unavailable")
            }
            FailureKind::Internal => (500, "Internal Server Error"),
        }
    }

    /// Seconds a client should wait before trying again (`Retry-After`), where waiting
    /// is what helps (the busy page, the IdP or the store not there yet), as the least
    /// and the spread above it.
    fn retry_after(self) -> Option<(u32, u32)> {
        match self {
            FailureKind::Overloaded => Some((1, 4)),
            FailureKind::NotReady | FailureKind::StoreUnavailable => Some((3, 5)),
            _ => None,
        }
    }

    /// The OAuth-style error code of the JSON body (RFC 6749 §5.2 names where one fits).
    fn code(self) -> &'static str {
        match self {
            FailureKind::BadRequest | FailureKind::PayloadTooLarge => "invalid_request",
            FailureKind::Unauthorized => "invalid_token",
            FailureKind::Forbidden => "access_denied",
            FailureKind::NotFound => "not_found",
            FailureKind::IdpUnavailable
            | FailureKind::IdpTimeout
            | FailureKind::NotReady
            | FailureKind::StoreUnavailable
            | FailureKind::StoreTimeout
            | FailureKind::Overloaded => "temporarily_unavailable",
            FailureKind::Internal => "server_error",
        }
    }
}

/// A failed request: what kind, why (a stable label for metrics, Envoy's response-code
/// details and the page's explanation), and the cause for the log line.
#[derive(Debug)]
pub struct Failure {
    /// Decides the status.
    pub kind: FailureKind,
    /// Stable label, e.g. `unknown_state`, `idp_unreachable`.
    pub reason: &'static str,
    /// What went wrong, for the log only (never shown: it may name internals).
    pub source: Option<String>,
}

impl Failure {
    /// A failure without more to log than its reason.
    pub fn new(kind: FailureKind, reason: &'static str) -> Self {
        Self {
            kind,
            reason,
            source: None,
        }
    }

    /// A failure with its cause, for the log line.
    pub fn because(kind: FailureKind, reason: &'static str, source: impl std::fmt::Display) -> Self {
        Self {
            kind,
            reason,
            source: Some(source.to_string()),
        }
    }

    /// What the user is told, and whether trying again can help.
    fn explanation(&self) -> &'static str {
        match (self.kind, self.reason) {
            (_, "idp_error") => "Sign-in was cancelled or refused at the identity provider.",
            (_, "deadline") => "This took too long. Try again in a minute.",
            (FailureKind::BadRequest, "unknown_state" | "state_mismatch" | "missing_parameters") => {
                "This sign-in attempt has expired or was already used."
            }
            (_, "session_too_large") => {
                "Your account carries more data (groups, claims) than a session here can hold. \
                 Ask an administrator to reduce it."
            }
            (_, "groups_overage") => {
                "Your account is in too many groups for the sign-in service to list them. \
                 Ask an administrator to limit the groups sent for this application."
            }
            (_, "claims_invalid") => "The sign-in service sent an account name this gateway cannot use.",
            (_, "encoded_path") => "The address contains encoded slashes or dots, which are not allowed here.",
            (_, "cross_site_sign_out") => "Sign-out was requested from another site and was not done.",
            (FailureKind::BadRequest, _) => "The request could not be understood.",
            (FailureKind::Unauthorized, _) => "Sign in first, or send a valid access token.",
            (FailureKind::Forbidden, _) => "You are signed in, but your account is not allowed here.",
            (FailureKind::NotFound, _) => "There is nothing at this address.",
            (FailureKind::PayloadTooLarge, _) => "The request is too large.",
            (FailureKind::IdpUnavailable | FailureKind::IdpTimeout | FailureKind::NotReady, _) => {
                "The sign-in service cannot be reached right now. Try again in a minute."
            }
            (FailureKind::StoreUnavailable | FailureKind::StoreTimeout, _) => {
                "Sessions are unavailable right now. Try again in a minute."
            }
            (_, "logins_busy") => "Too many sign-ins are waiting for the sign-in service. Try again in a moment.",
            (FailureKind::Overloaded, _) => "The gateway is busy. Try again in a moment.",
            (FailureKind::Internal, _) => "Something went wrong on our side.",
        }
    }

    /// The reply: an HTML page for browsers, JSON for API clients, from `pages`.
    pub fn reply(&self, trace: &TraceId, format: ReplyFormat, pages: &ErrorPages, retry_url: &str) -> LocalReply {
        let (status, phrase) = self.kind.status();
        let status_text = status.to_string();
        let value = |field: TemplateField| match field {
            TemplateField::Status => status_text.as_str(),
            TemplateField::Reason => phrase,
            TemplateField::Message => self.explanation(),
            TemplateField::Error => self.kind.code(),
            TemplateField::ErrorDescription => self.reason,
            TemplateField::RetryUrl => retry_url,
            TemplateField::TraceId => trace.as_str(),
        };
        let (content_type, body) = match format {
            ReplyFormat::Html => ("text/html; charset=utf-8", pages.html.render(value, push_html_escaped)),
            ReplyFormat::Json => ("application/json", pages.json.render(value, push_json_escaped)),
        };
        let mut headers = vec![
            ("content-type".to_owned(), content_type.as_bytes().to_vec()),
            ("cache-control".to_owned(), b"no-store".to_vec()),
            ("x-request-id".to_owned(), trace.as_str().as_bytes().to_vec()),
        ];
        if format == ReplyFormat::Html {
            // The page has no script and loads nothing.
            headers.push((
                "content-security-policy".to_owned(),
                b"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'".to_vec(),
            ));
        }
        if let Some((least, spread)) = self.kind.retry_after() {
            // Spread by the (random) trace id: clients refused together must not all come
            // back together, or the refusals come in synchronized waves.
            let hash = trace
                .as_str()
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            let seconds = least + hash % spread;
            headers.push(("retry-after".to_owned(), seconds.to_string().into_bytes()));
        }
        if self.kind == FailureKind::Unauthorized {
            let challenge = match self.reason {
                "no_credentials" => "Bearer realm=\"oidc\"".to_owned(),
                _ => "Bearer realm=\"oidc\", error=\"invalid_token\"".to_owned(),
            };
            headers.push(("www-authenticate".to_owned(), challenge.into_bytes()));
        }
        LocalReply {
            status,
            headers,
            body: body.into_bytes(),
            details: format!("oidc_{}", self.reason),
        }
    }
}

/// What the client can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyFormat {
    /// A browser: a page.
    Html,
    /// An API client (or the IdP's back channel): JSON.
    Json,
}

impl ReplyFormat {
    /// HTML when the client accepts it.
    pub fn for_accept(accept: Option<&[u8]>) -> Self {
        match accept {
            Some(a) if crate::http::accepts_html(a) => ReplyFormat::Html,
            _ => ReplyFormat::Json,
        }
    }
}

impl Templates {
    /// The template written in one pass, each placeholder by its escaped value (a value
    /// is never read as a template: one holding `{{trace_id}}` stays as it is).
    fn render<'a>(&self, value: impl Fn(TemplateField) -> &'a str, escape: fn(&mut String, &str)) -> String {
        let mut out = String::with_capacity(1024);
        for piece in self.pieces() {
            match piece {
                TemplatePiece::Text(text) => out.push_str(text),
                TemplatePiece::Field(field) => escape(&mut out, value(*field)),
            }
        }
        out
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_html_escaped(&mut out, s);
    out
}

fn push_html_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Escapes text for the inside of a JSON string (RFC 8259 §7).
fn push_json_escaped(out: &mut String, s: &str) {
    use std::fmt::Write;
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// The built-in browser page.
pub const DEFAULT_HTML: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{{status}} {{reason}}</title>\
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}.trace{color:#666;font-size:.85rem}</style></head><body>\
<h1>{{status}} {{reason}}</h1><p>{{message}}</p><p><a href=\"{{retry_url}}\">Try again</a></p>\
<p class=\"trace\">trace id: {{trace_id}}</p></body></html>\n";

/// The built-in JSON body.
pub const DEFAULT_JSON: &str =
    "{\"error\":\"{{error}}\",\"error_description\":\"{{error_description}}\",\"trace_id\":\"{{trace_id}}\"}\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn pages() -> ErrorPages {
        ErrorPages::default()
    }

    #[test]
    fn phrases_are_the_canonical_ones_for_each_status() {
        for kind in FailureKind::ALL {
            let (status, phrase) = kind.status();
            let canonical = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason());
            assert_eq!(Some(phrase), canonical, "{kind:?}");
        }
    }

    #[test]
    fn client_mistakes_are_4xx_and_ours_or_the_idps_are_5xx() {
        use FailureKind::*;
        for kind in [BadRequest, Unauthorized, Forbidden, NotFound, PayloadTooLarge] {
            assert!((400..500).contains(&kind.status().0), "{kind:?}");
        }
        for kind in [
            IdpUnavailable,
            IdpTimeout,
            StoreUnavailable,
            StoreTimeout,
            Overloaded,
            Internal,
        ] {
            assert!((500..600).contains(&kind.status().0), "{kind:?}");
        }
    }

    #[test]
    fn html_page_escapes_and_carries_the_trace_id() {
        let f = Failure::new(FailureKind::BadRequest, "idp_error");
        let trace = TraceId::from_headers(Some(b"t-1"), None);
        let r = f.reply(&trace, ReplyFormat::Html, &pages(), "/a?b=1&c=\"<x>\"");
        let body = String::from_utf8(r.body).expect("utf-8");
        assert_eq!(r.status, 400);
        assert!(body.contains("400 Bad Request") && body.contains("trace id: t-1"));
        assert!(body.contains("cancelled or refused"));
        assert!(body.contains("href=\"/a?b=1&amp;c=&quot;&lt;x&gt;&quot;\""), "{body}");
        assert_eq!(r.details, "oidc_idp_error");
    }

    #[test]
    fn json_body_is_valid_json_with_the_trace_id() {
        let f = Failure::new(FailureKind::IdpTimeout, "idp_timeout");
        let trace = TraceId::from_headers(Some(b"t-2"), None);
        let r = f.reply(&trace, ReplyFormat::Json, &pages(), "/");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(r.status, 504);
        assert_eq!(v["error"], "temporarily_unavailable");
        assert_eq!(v["trace_id"], "t-2");
    }

    #[test]
    fn unauthorized_carries_a_bearer_challenge() {
        let trace = TraceId::from_headers(None, None);
        let r =
            Failure::new(FailureKind::Unauthorized, "no_credentials").reply(&trace, ReplyFormat::Json, &pages(), "/");
        assert_eq!(
            r.headers
                .iter()
                .find(|(k, _)| k == "www-authenticate")
                .map(|(_, v)| v.as_slice()),
            Some(&b"Bearer realm=\"oidc\""[..])
        );
        let r =
            Failure::new(FailureKind::Unauthorized, "invalid_token").reply(&trace, ReplyFormat::Json, &pages(), "/");
        assert!(String::from_utf8_lossy(
            &r.headers
                .iter()
                .find(|(k, _)| k == "www-authenticate")
                .expect("challenge")
                .1
        )
        .contains("invalid_token"));
    }

    #[test]
    fn json_values_are_escaped_to_valid_json() {
        for hostile in [
            "plain",
            "q\"uote",
            "back\\slash",
            "line\nbreak\r\t",
            "ctl\u{1}\u{1f}",
            "é✓",
        ] {
            let mut out = String::from("\"");
            push_json_escaped(&mut out, hostile);
            out.push('"');
            let back: String = serde_json::from_str(&out).expect("valid JSON string");
            assert_eq!(back, hostile);
        }
    }

    #[test]
    fn templates_fill_known_placeholders_once() {
        let t = Templates::parse("{{status}} {{nope}} {{retry_url}} {{trace_id}} {{ unclosed");
        let f = Failure::new(FailureKind::Overloaded, "logins_busy");
        let pages = ErrorPages {
            html: t.clone(),
            json: t,
        };
        // A value that looks like a placeholder is not expanded again.
        let trace = TraceId::from_headers(Some(b"t-3"), None);
        let r = f.reply(&trace, ReplyFormat::Json, &pages, "/{{status}}");
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            "503 {{nope}} /{{status}} t-3 {{ unclosed"
        );
    }

    #[test]
    fn refusals_that_pass_say_when_to_try_again() {
        let retry_after = |kind, reason, trace: &str| {
            let trace = TraceId::from_headers(Some(trace.as_bytes()), None);
            Failure::new(kind, reason)
                .reply(&trace, ReplyFormat::Html, &pages(), "/")
                .headers
                .into_iter()
                .find(|(k, _)| k == "retry-after")
                .map(|(_, v)| String::from_utf8_lossy(&v).parse::<u32>().expect("seconds"))
        };
        let busy: std::collections::BTreeSet<u32> = (0..40)
            .filter_map(|i| retry_after(FailureKind::Overloaded, "logins_busy", &format!("trace-{i}")))
            .collect();
        assert_eq!(
            busy,
            (1..=4).collect(),
            "spread over 1 to 4 s, so refused clients come back apart"
        );
        let not_ready = retry_after(FailureKind::NotReady, "not_ready", "t").expect("retry-after");
        assert!((3..=7).contains(&not_ready));
        assert_eq!(retry_after(FailureKind::BadRequest, "unknown_state", "t"), None);
    }
}
