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

/// Our cookies separated from the rest, in one pass over the header lines.
pub struct Split<'a> {
    /// The session cookie's value, if sent.
    pub session: Option<&'a str>,
    /// The cookie header for the upstream without our cookies (session and flow);
    /// `None` when nothing would be left.
    pub rest: Option<String>,
}

/// Splits our cookies from the others; `None` when none of ours is present (the header
/// then needs no rewriting).
pub fn split_ours<'a>(lines: &[&'a [u8]], settings: &CookieSettings) -> Option<Split<'a>> {
    let mut session = None;
    let mut ours = false;
    let mut rest: Vec<(&str, &str)> = Vec::new();
    for (n, v) in pairs(lines) {
        if n == settings.name {
            ours = true;
            session.get_or_insert(v);
        } else if n.starts_with(&settings.flow_prefix) {
            ours = true;
        } else {
            rest.push((n, v));
        }
    }
    ours.then(|| Split {
        session,
        rest: (!rest.is_empty()).then(|| {
            rest.iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        }),
    })
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
        let split = split_ours(&lines, &settings()).expect("ours present");
        assert_eq!(split.session, Some("abc"));
        assert_eq!(split.rest.as_deref(), Some("a=1; theme=dark"));
        let only: [&[u8]; 1] = [b"__Host-oidc_session=abc"];
        assert_eq!(split_ours(&only, &settings()).expect("ours").rest, None);
        let flow_only: [&[u8]; 1] = [b"__Host-oidc_flow_x1=f; a=1"];
        let split = split_ours(&flow_only, &settings()).expect("a flow cookie is ours too");
        assert_eq!((split.session, split.rest.as_deref()), (None, Some("a=1")));
        let theirs: [&[u8]; 1] = [b"a=1; theme=dark"];
        assert!(split_ours(&theirs, &settings()).is_none(), "nothing to rewrite");
    }

    #[test]
    fn set_cookie_attributes() {
        let c = set_cookie("__Host-s", "v", 60, true, SameSite::Lax);
        assert_eq!(c, "__Host-s=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure");
        assert!(!set_cookie("s", "v", 0, false, SameSite::Strict).contains("Secure"));
    }
}
