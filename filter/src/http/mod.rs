//! HTTP details: cookies, paths, request classification, query strings.

pub mod cookies;
pub mod path;
pub mod request;

use crate::config::{ApiMatcher, HeaderSettings};

/// Decoded value of a query parameter of a `:path`.
pub fn query_param(path: &str, key: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The token of an `Authorization: Bearer <token>` value (RFC 6750 §2.1): the scheme in
/// any case, one or more spaces, then a token of the b64token alphabet; anything else
/// (other schemes, control characters, spaces inside) is not a bearer token.
pub fn bearer_token(value: &[u8]) -> Option<&str> {
    let v = std::str::from_utf8(value).ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim_matches(' ');
    let b64token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '=');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.chars().all(b64token)).then_some(token)
}

/// Whether header `name` as sent is `want` (lower case) in any case, `_` standing for
/// `-` (Envoy passes `x_auth_request_user` on unless told to reject underscores, and
/// many app frameworks read it as `X-Auth-Request-User`).
fn same_name(name: &[u8], want: &[u8]) -> bool {
    name.len() == want.len()
        && name
            .iter()
            .zip(want)
            .all(|(a, b)| a.to_ascii_lowercase() == *b || (*a == b'_' && *b == b'-'))
}

/// Whether a request header claims an identity the upstream might trust: one the filter
/// emits, or one of the configured families (`x-forwarded-user`, `x-auth-request-*`...),
/// in any spelling. Such headers are removed from every request.
pub fn is_identity_header(name: &[u8], h: &HeaderSettings) -> bool {
    // Most headers (`host`, `accept`, `cookie`...) start with a letter no such name has.
    if !name.first().is_some_and(|b| h.first_bytes[usize::from(*b)]) {
        return false;
    }
    h.emitted().any(|e| same_name(name, e.as_bytes()))
        || h.strip_incoming.iter().any(|s| match s.strip_suffix('*') {
            Some(prefix) => name.len() >= prefix.len() && same_name(&name[..prefix.len()], prefix.as_bytes()),
            None => same_name(name, s.as_bytes()),
        })
}

/// Whether a request comes from another site (Fetch Metadata, then `Origin`): a link or
/// form elsewhere may have sent it on the user's behalf.
pub fn from_other_site(fetch_site: Option<&[u8]>, origin: Option<&[u8]>, our_origin: &str) -> bool {
    if let Some(site) = fetch_site {
        return !(site.eq_ignore_ascii_case(b"same-origin") || site.eq_ignore_ascii_case(b"none"));
    }
    origin.is_some_and(|o| !o.eq_ignore_ascii_case(our_origin.as_bytes()))
}

/// Whether an `accept` value names `text/html` (in any case).
pub fn accepts_html(accept: &[u8]) -> bool {
    accept.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html"))
}

/// Whether a request is an API call (gets 401) rather than a browser navigation (302).
pub fn is_api(matcher: &ApiMatcher, path: &str, accept: Option<&[u8]>, xhr: Option<&[u8]>) -> bool {
    if matcher.path_prefixes.iter().any(|p| path.starts_with(p.as_str())) {
        return true;
    }
    if matcher.detect_xhr && xhr.is_some() {
        return true;
    }
    if matcher.detect_accept {
        return !accept.is_some_and(accepts_html);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> ApiMatcher {
        ApiMatcher {
            path_prefixes: vec!["/api/".into()],
            detect_xhr: true,
            detect_accept: true,
        }
    }

    #[test]
    fn browsers_are_not_api_clients() {
        let nav = b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(!is_api(&m(), "/page", Some(nav), None));
        assert!(is_api(&m(), "/api/x", Some(nav), None), "path rule");
        assert!(is_api(&m(), "/page", Some(nav), Some(b"XMLHttpRequest")), "XHR");
        assert!(
            is_api(&m(), "/page", Some(b"application/json"), None),
            "Accept without HTML"
        );
        assert!(is_api(&m(), "/page", None, None), "no Accept at all");
        assert!(!is_api(&m(), "/page", Some(b"Text/HTML;q=1"), None), "any case");
        assert!(is_api(&m(), "/page", Some(b"text/htm"), None), "a prefix is not HTML");
    }

    #[test]
    fn bearer_values() {
        assert_eq!(bearer_token(b"Bearer abc.def-_~+/="), Some("abc.def-_~+/="));
        assert_eq!(bearer_token(b"bearer   tok  "), Some("tok"));
        for bad in [
            &b"Basic dXNlcg=="[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer a b",
            b"Bearer a\tb",
            b"Bearer \xff",
        ] {
            assert_eq!(bearer_token(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn identity_headers_in_every_spelling() {
        let mut h = HeaderSettings {
            first_bytes: [false; 256],
            user: "x-auth-request-user".into(),
            email: "x-email".into(),
            groups: "x-groups".into(),
            preferred_username: "x-name".into(),
            claims: vec![("dept".into(), "x-dept".into())],
            access_token: false,
            strip_incoming: vec!["x-auth-request-*".into(), "remote-user".into()],
            client_authorization: crate::config::ClientAuthorization::Strip,
            max_bytes: 16384,
            unverified_email: false,
            user_claim: "sub".into(),
        };
        h.index_first_bytes();
        for spoof in [
            &b"x-auth-request-user"[..],
            b"X-Auth-Request-User",
            b"x_auth_request_user",
            b"X_EMAIL",
            b"x-Dept",
            b"x-auth-request-anything",
            b"X_AUTH_REQUEST_GROUPS",
            b"Remote_User",
        ] {
            assert!(is_identity_header(spoof, &h), "{}", String::from_utf8_lossy(spoof));
        }
        for fine in [
            &b"x-auth-reques"[..],
            b"remote-users",
            b"accept",
            b"x-emails",
            b"authorization",
        ] {
            assert!(!is_identity_header(fine, &h), "{}", String::from_utf8_lossy(fine));
        }
    }

    #[test]
    fn other_sites() {
        let us = "https://app.test";
        assert!(!from_other_site(Some(b"same-origin"), Some(b"https://evil.test"), us));
        assert!(!from_other_site(Some(b"none"), None, us), "typed or bookmarked");
        assert!(from_other_site(Some(b"cross-site"), None, us));
        assert!(
            from_other_site(Some(b"same-site"), None, us),
            "a sibling subdomain is another site"
        );
        assert!(from_other_site(None, Some(b"https://evil.test"), us));
        assert!(from_other_site(None, Some(b"null"), us));
        assert!(!from_other_site(None, Some(b"https://app.test"), us));
        assert!(
            !from_other_site(None, None, us),
            "no browser metadata: not a browser's forgery"
        );
    }

    #[test]
    fn query_params_decode() {
        assert_eq!(query_param("/cb?code=a%2Bb&state=s", "code").as_deref(), Some("a+b"));
        assert_eq!(query_param("/cb", "code"), None);
    }
}
