//! Reading the `cookie` request header(s) and writing `Set-Cookie`. Writing uses the
//! `cookie` crate; reading is this one pass because it runs on every request and costs
//! two thirds of the crate's parser doing the same job (`benches/cookies.rs`: 578 ns
//! against 883 ns on a five-cookie header).

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
        cookie::Cookie::build((name, value))
            .path("/")
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(max_age).unwrap_or(i64::MAX),
            ))
            .http_only(true)
            .same_site(same_site)
            .secure(self.secure)
            .build()
            .to_string()
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
    }
}
