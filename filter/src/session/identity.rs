//! The identity headers the upstream receives.

use session_store::{Claims, Session};

use crate::config::{AccessLogUser, Settings};

/// Header values may not carry CR, LF or NUL; anything else is passed on as it is.
fn header_safe(v: &str) -> String {
    v.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')).collect()
}

fn from_claims(settings: &Settings, subject: &str, claims: &Claims) -> Vec<(String, String)> {
    let h = &settings.headers;
    let mut out = vec![(h.user.clone(), header_safe(subject))];
    if let Some(e) = claims.first("email") {
        out.push((h.email.clone(), header_safe(e)));
    }
    if let Some(g) = claims.get(&settings.authz.groups_claim) {
        out.push((h.groups.clone(), header_safe(&g.join(","))));
    }
    if let Some(u) = claims.first("preferred_username") {
        out.push((h.preferred_username.clone(), header_safe(u)));
    }
    for (claim, header) in &h.claims {
        if let Some(v) = claims.get(claim) {
            out.push((header.clone(), header_safe(&v.join(","))));
        }
    }
    out
}

/// Headers for a browser session (plus `authorization` when configured).
pub fn for_session(settings: &Settings, session: &Session) -> Vec<(String, String)> {
    let mut out = from_claims(settings, &session.subject, &session.claims);
    if settings.headers.access_token {
        out.push((
            "authorization".into(),
            format!("Bearer {}", session.tokens.access.secret()),
        ));
    }
    out
}

/// Headers for a validated bearer token (the token itself stays in `authorization`).
pub fn for_bearer(settings: &Settings, subject: &str, claims: &Claims) -> Vec<(String, String)> {
    from_claims(settings, subject, claims)
}

impl AccessLogUser {
    /// Records `user` on the stream as configured.
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
