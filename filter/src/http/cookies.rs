//! Reading the `cookie` request header(s) and writing `Set-Cookie`. Writing uses the
//! `cookie` crate; reading is this one pass because it runs on every request and costs
//! two thirds of the crate's parser doing the same job (`benches/cookies.rs`: 578 ns
//! against 883 ns on a five-cookie header).

use crate::config::{CookieSettings, SameSite};

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// A cookie line's `;`-separated pieces, found with `memchr` (a session cookie's long
/// value is skipped a word at a time, not byte by byte).
fn crumbs(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b';', r) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Every `name=value` pair across all `cookie` header lines, in order, as bytes: a
/// non-UTF-8 byte in one cookie (another app's, or an attacker's) must not hide the
/// others on the same line.
pub fn pairs<'a, 'l>(lines: &'l [&'a [u8]]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'l {
    lines.iter().flat_map(|l| crumbs(l)).filter_map(|c| {
        let c = trim(c);
        let eq = c.iter().position(|b| *b == b'=')?;
        let value = trim(&c[eq + 1..]);
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        Some((trim(&c[..eq]), value))
    })
}

/// The value of cookie `name`, if sent as text (the first one wins, as browsers order
/// by path).
pub fn find<'a>(lines: &[&'a [u8]], name: &str) -> Option<&'a str> {
    pairs(lines)
        .find(|(n, _)| *n == name.as_bytes())
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// Our cookies separated from the rest, in one pass over the header lines.
#[derive(Debug)]
pub struct Split<'a> {
    /// The session cookie's value, if sent (empty when it is not text: it then fails to
    /// open like any other forged value).
    pub session: Option<&'a str>,
    /// Names of the login-flow cookies sent, oldest first (browsers list cookies of the
    /// same path in creation order, RFC 6265 §5.4).
    pub flows: Vec<&'a str>,
    /// The cookie header for the upstream without our cookies (session and flow);
    /// `None` when nothing would be left.
    pub rest: Option<Vec<u8>>,
}

/// Splits our cookies from the others, dropping those of `foreign` configs (the filter's
/// other IdPs); `None` when none of ours or theirs is present (the header then needs no
/// rewriting).
pub fn split_ours<'a>(lines: &[&'a [u8]], settings: &CookieSettings, foreign: &[CookieSettings]) -> Option<Split<'a>> {
    let mut session = None;
    let mut flows = Vec::new();
    let mut ours = false;
    let mut rest: Vec<u8> = Vec::new();
    for (n, v) in pairs(lines) {
        if n == settings.name.as_bytes() {
            ours = true;
            session.get_or_insert(std::str::from_utf8(v).unwrap_or(""));
        } else if n.starts_with(settings.flow_prefix.as_bytes()) {
            ours = true;
            if let Ok(name) = std::str::from_utf8(n) {
                flows.push(name);
            }
        } else if foreign
            .iter()
            .any(|f| n == f.name.as_bytes() || n.starts_with(f.flow_prefix.as_bytes()))
        {
            ours = true;
        } else {
            if rest.is_empty() {
                // One allocation as a rule: what is kept is about as long as the lines.
                rest.reserve(lines.iter().map(|l| l.len()).sum());
            } else {
                rest.extend_from_slice(b"; ");
            }
            rest.extend_from_slice(n);
            rest.push(b'=');
            rest.extend_from_slice(v);
        }
    }
    ours.then(|| Split {
        session,
        flows,
        rest: (!rest.is_empty()).then_some(rest),
    })
}

impl CookieSettings {
    /// `Set-Cookie` of the session cookie.
    pub fn session(&self, value: &str, max_age: u64) -> String {
        self.build(&self.name, value, max_age, self.same_site)
    }

    /// `Set-Cookie` of a login flow's cookie: `Lax`, or the IdP's top-level redirect back
    /// would arrive without it.
    pub fn flow(&self, name: &str, value: &str, max_age: u64) -> String {
        self.build(name, value, max_age, SameSite::Lax)
    }

    /// `Set-Cookie` that deletes cookie `name` (session or flow).
    pub fn expire(&self, name: &str) -> String {
        let same_site = if name == self.name {
            self.same_site
        } else {
            SameSite::Lax
        };
        self.build(name, "", 0, same_site)
    }

    /// HttpOnly, Path=/, no Domain (the `__Host-` rules), `max_age` seconds (0 deletes).
    fn build(&self, name: &str, value: &str, max_age: u64, same_site: SameSite) -> String {
        let same_site = match same_site {
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::None => cookie::SameSite::None,
        };
        let mut c = cookie::Cookie::build((name, value))
            .path("/")
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age).unwrap_or(i64::MAX),
            ))
            .http_only(true)
            .same_site(same_site)
            .secure(self.secure);
        // The session cookie may be shared across subdomains; a flow cookie never is.
        if let Some(domain) = self.domain.as_deref().filter(|_| name == self.name) {
            c = c.domain(domain.to_owned());
        }
        c.build().to_string()
    }
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
            max_login_flows: 3,
            domain: None,
        }
    }

    #[test]
    fn finds_across_several_lines() {
        let lines: [&[u8]; 2] = [b"a=1; __Host-oidc_session=abc", b"b=2"];
        assert_eq!(find(&lines, "__Host-oidc_session"), Some("abc"));
        assert_eq!(find(&lines, "b"), Some("2"));
        assert_eq!(find(&lines, "missing"), None);
        let ragged: [&[u8]; 1] = [b";a=1;;  b=2 ;c=3;"];
        let all: Vec<_> = pairs(&ragged).collect();
        assert_eq!(
            all,
            vec![(&b"a"[..], &b"1"[..]), (b"b", b"2"), (b"c", b"3")],
            "empty pieces skipped"
        );
    }

    #[test]
    fn strips_only_our_cookies() {
        let lines: [&[u8]; 2] = [b"a=1; __Host-oidc_session=abc; __Host-oidc_flow_x1=f", b"theme=dark"];
        let split = split_ours(&lines, &settings(), &[]).expect("ours present");
        assert_eq!(split.session, Some("abc"));
        assert_eq!(split.flows, vec!["__Host-oidc_flow_x1"]);
        assert_eq!(split.rest.as_deref(), Some(&b"a=1; theme=dark"[..]));
        let only: [&[u8]; 1] = [b"__Host-oidc_session=abc"];
        assert_eq!(split_ours(&only, &settings(), &[]).expect("ours").rest, None);
        let flow_only: [&[u8]; 1] = [b"__Host-oidc_flow_x1=f; a=1"];
        let split = split_ours(&flow_only, &settings(), &[]).expect("a flow cookie is ours too");
        assert_eq!((split.session, split.rest.as_deref()), (None, Some(&b"a=1"[..])));
        let theirs: [&[u8]; 1] = [b"a=1; theme=dark"];
        assert!(split_ours(&theirs, &settings(), &[]).is_none(), "nothing to rewrite");
    }

    #[test]
    fn another_idps_cookies_are_dropped_not_read() {
        let mut partners = settings();
        partners.name = "__Host-partners-oidc_session".into();
        partners.flow_prefix = "__Host-partners-oidc_flow_".into();
        let lines: [&[u8]; 1] =
            [b"__Host-partners-oidc_session=p; a=1; __Host-partners-oidc_flow_s1=f; __Host-oidc_flow_s2=g"];
        let split = split_ours(&lines, &settings(), std::slice::from_ref(&partners)).expect("theirs to drop");
        assert_eq!(split.session, None, "their session is not ours");
        assert_eq!(split.flows, vec!["__Host-oidc_flow_s2"]);
        assert_eq!(split.rest.as_deref(), Some(&b"a=1"[..]), "nor the app's");
        let only_theirs: [&[u8]; 1] = [b"__Host-partners-oidc_session=p"];
        let split = split_ours(&only_theirs, &settings(), std::slice::from_ref(&partners)).expect("rewrite");
        assert_eq!((split.session, split.rest), (None, None));
    }

    #[test]
    fn a_non_utf8_cookie_hides_nothing_of_ours() {
        let lines: [&[u8]; 1] = [b"other=\xff\xfe; __Host-oidc_session=abc; b=2"];
        let split = split_ours(&lines, &settings(), &[]).expect("ours found past the bad byte");
        assert_eq!(split.session, Some("abc"));
        assert_eq!(
            split.rest.as_deref(),
            Some(&b"other=\xff\xfe; b=2"[..]),
            "theirs kept as sent"
        );
        let bad_value: [&[u8]; 1] = [b"__Host-oidc_session=\xff; b=2"];
        let split = split_ours(&bad_value, &settings(), &[]).expect("ours by name");
        assert_eq!(split.session, Some(""), "a non-text value is a forged one");
        assert_eq!(split.rest.as_deref(), Some(&b"b=2"[..]), "and never goes upstream");
    }

    fn attrs(set_cookie: &str) -> Vec<String> {
        let mut a: Vec<String> = set_cookie.split("; ").map(str::to_owned).collect();
        a.sort();
        a
    }

    #[test]
    fn set_cookie_attributes() {
        let c = settings();
        assert_eq!(
            attrs(&c.session("v", 60)),
            attrs("__Host-oidc_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure")
        );
        assert_eq!(
            attrs(&c.expire("__Host-oidc_flow_x")),
            attrs("__Host-oidc_flow_x=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure")
        );
        let strict = CookieSettings {
            name: "s".into(),
            secure: false,
            same_site: SameSite::Strict,
            ..settings()
        };
        assert!(!strict.session("v", 1).contains("Secure"));
        assert!(strict.session("v", 1).contains("SameSite=Strict"));
        assert!(
            strict.flow("oidc_flow_x", "f", 600).contains("SameSite=Lax"),
            "flow cookies stay Lax whatever the session's"
        );
        let shared = CookieSettings {
            name: "oidc_session".into(),
            domain: Some("example.com".into()),
            ..settings()
        };
        assert!(shared.session("v", 1).contains("Domain=example.com"));
        assert!(
            !shared.flow("oidc_flow_x", "f", 600).contains("Domain"),
            "flows stay host-only"
        );
    }
}
