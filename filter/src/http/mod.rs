//! HTTP details: cookies, paths, request classification, query strings.

pub mod cookies;
pub mod path;

use crate::config::ApiMatcher;

/// Decoded value of a query parameter of a `:path`.
pub fn query_param(path: &str, key: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
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
        let accept = accept.map(|a| String::from_utf8_lossy(a).to_ascii_lowercase());
        return !accept.is_some_and(|a| a.contains("text/html"));
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
    }

    #[test]
    fn query_params_decode() {
        assert_eq!(query_param("/cb?code=a%2Bb&state=s", "code").as_deref(), Some("a+b"));
        assert_eq!(query_param("/cb", "code"), None);
    }
}
