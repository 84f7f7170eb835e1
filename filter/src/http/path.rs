//! Paths: the normalised form rules match on, and same-origin redirect targets.

use percent_encoding::percent_decode_str;

use crate::config::PassThrough;

/// The path without query or fragment, percent-decoded, with `//` merged and `.`/`..`
/// resolved: what pass-through rules see, so `/public/../admin` or `/%61dmin` cannot
/// slip past a rule written for `/admin`, and a rule never matches on the query.
pub fn normalize(raw: &str) -> String {
    let path = raw.split(['?', '#']).next().unwrap_or("/");
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split(['/', '\\']) {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = decoded.ends_with('/') && !out.is_empty();
    format!("/{}{}", out.join("/"), if trailing { "/" } else { "" })
}

/// Whether the path (query excluded) still carries what route matching cannot see
/// through: an encoded separator (`%2F`, `%5C`), a backslash, or a segment that decodes
/// to `.` or `..`. Envoy's `path_with_escaped_slashes_action` and `normalize_path` remove
/// these before routing; when they are off, a rule written for `/admin` would not match
/// `/public%2F..%2Fadmin`, so the filter refuses such a path wherever rules are in force.
pub fn hides_separators(raw: &str) -> bool {
    let path = raw.split(['?', '#']).next().unwrap_or("/");
    // Most paths have neither: one scan, no copy.
    if !path.bytes().any(|b| b == b'%' || b == b'\\') {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || path.contains('\\') {
        return true;
    }
    path.split('/')
        .any(|seg| seg.contains('%') && matches!(&*percent_decode_str(seg).decode_utf8_lossy(), "." | ".."))
}

/// Longest post-login target kept (it travels in the flow cookie).
pub const MAX_TARGET_LEN: usize = 2048;

/// A post-login target that stays on this origin: a path starting with a single `/`,
/// free of control characters and backslashes, also after percent-decoding, and of raw
/// whitespace. Anything else (`//evil`, `/\evil`, `https://evil`, `/%2F%2Fevil`, tabs)
/// becomes `/`. An encoded space (`/a%20b`) is a normal path and is kept.
pub fn same_origin_target(raw: &str) -> String {
    fn safe(p: &str) -> bool {
        let b = p.as_bytes();
        b.first() == Some(&b'/')
            && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
            && !p.chars().any(|c| c.is_control() || c == '\\')
    }
    let decoded = percent_decode_str(raw).decode_utf8_lossy();
    let raw_whitespace = raw.chars().any(char::is_whitespace);
    if safe(raw) && safe(&decoded) && !raw_whitespace && raw.len() <= MAX_TARGET_LEN {
        raw.to_owned()
    } else {
        "/".to_owned()
    }
}

impl PassThrough {
    /// True when no rule is configured (the common case: skip normalising the path).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a request (method, normalised path without query) passes unauthenticated.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.rules.iter().any(|r| {
            (r.methods.is_empty() || r.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
                && r.prefix.as_deref().is_none_or(|p| path.starts_with(p))
                && r.regex.as_ref().is_none_or(|re| re.is_match(path))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_for_rules() {
        assert_eq!(normalize("/public/../admin?x=/public"), "/admin");
        assert_eq!(normalize("//a///b/./c"), "/a/b/c");
        assert_eq!(normalize("/%61dmin"), "/admin");
        assert_eq!(normalize("/a/b/"), "/a/b/");
        assert_eq!(normalize("/../../etc"), "/etc");
        assert_eq!(normalize("/x#frag"), "/x");
        assert_eq!(normalize("/a\\..\\admin"), "/admin");
    }

    #[test]
    fn finds_hidden_separators() {
        for hidden in [
            "/public%2f..%2fadmin",
            "/%2Fadmin",
            "/public%5c..",
            "/public\\..\\admin",
            "/public/%2e%2e/admin",
            "/a/%2E/b",
        ] {
            assert!(hides_separators(hidden), "{hidden}");
        }
        for plain in ["/admin", "/a%20b/c", "/x?next=%2Fadmin", "/a/..b/%2e%2ex"] {
            assert!(!hides_separators(plain), "{plain}");
        }
    }

    #[test]
    fn keeps_same_origin_paths() {
        for ok in ["/", "/deep/page?q=1&r=%2F", "/a/b#c", "/my%20report?x=a%20b"] {
            assert_eq!(same_origin_target(ok), ok);
        }
    }

    #[test]
    fn refuses_other_origins() {
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "/%2F%2Fevil.example",
            "/%5Cevil.example",
            "%2F%2Fevil.example",
            "/\t/evil.example",
            "/ /evil.example",
            "/%0d%0aevil",
            "/%09/evil.example",
            "javascript:alert(1)",
            "",
            "evil.example",
            "/\r\nset-cookie: x",
        ] {
            assert_eq!(same_origin_target(bad), "/", "{bad:?}");
        }
    }
}
