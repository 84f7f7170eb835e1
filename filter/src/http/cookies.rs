//! Reading the `cookie` request header(s) and writing `Set-Cookie`.

use crate::config::{CookieSettings, SameSite};

/// Every `name=value` pair across all `cookie` header lines, in order.
pub fn pairs<'a, 'l>(lines: &'l [&'a [u8]]) -> impl Iterator<Item = (&'a str, &'a str)> + 'l {
    lines
        .iter()
        .filter_map(|l| std::str::from_utf8(l).ok())
        .flat_map(|l| l.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .map(|(n, v)| (n.trim(), v.trim().trim_matches('"')))
}

/// The value of cookie `name`, if sent (the first one wins, as browsers order by path).
pub fn find<'a>(lines: &[&'a [u8]], name: &str) -> Option<&'a str> {
    pairs(lines).find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// The cookie header for the upstream with our own cookies (session and flow) removed;
/// `None` when nothing would be left.
pub fn without_ours(lines: &[&[u8]], settings: &CookieSettings) -> Option<String> {
    let kept: Vec<String> = pairs(lines)
        .filter(|(n, _)| *n != settings.name && !n.starts_with(&settings.flow_prefix))
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// True if any of our cookies is present (so the header needs rewriting).
pub fn has_ours(lines: &[&[u8]], settings: &CookieSettings) -> bool {
    pairs(lines).any(|(n, _)| n == settings.name || n.starts_with(&settings.flow_prefix))
}

/// A `Set-Cookie` value: HttpOnly, Path=/, no Domain (`__Host-` rules), with `max_age`
/// seconds (0 deletes it).
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool, same_site: SameSite) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite={}{}",
        same_site.as_str(),
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CookieSettings {
        CookieSettings {
            name: "__Host-oidc_session".into(),
            flow_prefix: "__Host-oidc_flow_".into(),
            secure: true,
            same_site: SameSite::Lax,
        }
    }

    #[test]
    fn finds_across_several_lines() {
        let lines: [&[u8]; 2] = [b"a=1; __Host-oidc_session=abc", b"b=2"];
        assert_eq!(find(&lines, "__Host-oidc_session"), Some("abc"));
        assert_eq!(find(&lines, "b"), Some("2"));
        assert_eq!(find(&lines, "missing"), None);
    }

    #[test]
    fn strips_only_our_cookies() {
        let lines: [&[u8]; 2] = [b"a=1; __Host-oidc_session=abc; __Host-oidc_flow_x1=f", b"theme=dark"];
        assert!(has_ours(&lines, &settings()));
        assert_eq!(without_ours(&lines, &settings()).as_deref(), Some("a=1; theme=dark"));
        let only: [&[u8]; 1] = [b"__Host-oidc_session=abc"];
        assert_eq!(without_ours(&only, &settings()), None);
    }

    #[test]
    fn set_cookie_attributes() {
        let c = set_cookie("__Host-s", "v", 60, true, SameSite::Lax);
        assert_eq!(c, "__Host-s=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure");
        assert!(!set_cookie("s", "v", 0, false, SameSite::Strict).contains("Secure"));
    }
}
