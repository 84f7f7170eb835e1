//! The identity headers the upstream receives.

use std::sync::Arc;

use session_store::{Claims, Session};

use crate::config::{AccessLogUser, Settings};

/// Header values never carry control characters (login refuses such claims; this is
/// the second line for sessions made before that check).
fn header_safe(v: &str) -> String {
    v.chars().filter(|c| !c.is_control()).collect()
}

/// Several values in one header, comma-separated; a comma or `%` inside a value is
/// percent-encoded, so a group named `a,b` never reads as the two groups `a` and `b`.
fn join(values: &[String]) -> String {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for c in header_safe(v).chars() {
            match c {
                ',' => out.push_str("%2C"),
                '%' => out.push_str("%25"),
                c => out.push(c),
            }
        }
    }
    out
}

fn from_claims(settings: &Settings, subject: &str, claims: &Claims) -> Vec<(String, String)> {
    let h = &settings.headers;
    let user = if h.user_claim == "sub" {
        subject
    } else {
        claims.first(&h.user_claim).unwrap_or(subject)
    };
    let mut out = vec![(h.user.clone(), header_safe(user))];
    // An address the IdP has not verified says nothing about who the user is.
    let verified = claims
        .first("email_verified")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if let Some(e) = claims.first("email").filter(|_| verified || h.unverified_email) {
        out.push((h.email.clone(), header_safe(e)));
    }
    if let Some(g) = claims.get(&settings.authz.groups_claim) {
        out.push((h.groups.clone(), join(g)));
    }
    if let Some(u) = claims.first("preferred_username") {
        out.push((h.preferred_username.clone(), header_safe(u)));
    }
    for (claim, header) in &h.claims {
        if let Some(v) = claims.get(claim) {
            out.push((header.clone(), join(v)));
        }
    }
    out
}

/// The user as the access log may show it: without control characters (subjects are
/// checked at login; this guards sessions stored before that check). No copy when clean.
fn loggable(user: &str) -> std::borrow::Cow<'_, str> {
    if user.chars().any(char::is_control) {
        header_safe(user).into()
    } else {
        user.into()
    }
}

/// How many bytes of identity headers a user produces (names and values).
pub fn header_bytes(settings: &Settings, subject: &str, claims: &Claims) -> usize {
    from_claims(settings, subject, claims)
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum()
}

/// What an admitted request carries: identity headers for the upstream, the user for the
/// access log.
#[derive(Debug)]
pub struct Identity {
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// Who, for access logs (control characters removed).
    pub user: String,
}

/// A browser session's identity (plus `authorization` when configured): made once per
/// cached session, then shared by its requests.
pub fn for_session(settings: &Settings, session: &Session) -> Arc<Identity> {
    let make = || {
        let mut headers = from_claims(settings, &session.subject, &session.claims);
        if settings.headers.access_token {
            headers.push((
                "authorization".into(),
                format!("Bearer {}", session.tokens.access.secret()),
            ));
        }
        Arc::new(Identity {
            headers,
            user: loggable(&session.subject).into_owned(),
        })
    };
    match session.derived.get_or_init(make) {
        Some(made) => made.clone(),
        None => make(),
    }
}

/// A validated bearer token's identity (the token itself stays in `authorization`).
pub fn for_bearer(settings: &Settings, subject: &str, claims: &Claims) -> Arc<Identity> {
    Arc::new(Identity {
        headers: from_claims(settings, subject, claims),
        user: loggable(subject).into_owned(),
    })
}

impl AccessLogUser {
    /// Records `user` (made loggable already) on the stream as configured.
    pub fn record(self, s: &mut dyn envoy_module::HttpStream, user: &str) {
        match self {
            AccessLogUser::DynamicMetadata => s.set_metadata("oidc", "user", user),
            AccessLogUser::FilterState => {
                s.set_filter_state("oidc.user", user.as_bytes());
            }
            AccessLogUser::None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_inside_values_are_encoded() {
        let groups = vec!["admins".to_owned(), "a,b".into(), "100%".into(), "x\ny".into()];
        assert_eq!(join(&groups), "admins,a%2Cb,100%25,xy");
    }
}
