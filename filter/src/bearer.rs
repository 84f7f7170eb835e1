//! API clients: a bearer token (a JWT checked against the IdP's keys, or an opaque token
//! introspected at the IdP) turned into a decision, with the same group rules as sessions.

use crate::config::RouteSettings;
use crate::decide::{route_allows, Admission, Decision, Verdict, Work};
use crate::failure::{Failure, FailureKind};
use crate::gateway::Gateway;
use crate::metrics::Metric;
use crate::oidc::access_tokens::AccessTokenClaims;
use crate::oidc::claims;
use crate::oidc::tokens::{TokenError, Verified, Verifier};
use crate::session::identity;

/// A valid bearer token meets the route's rules: admit it.
pub fn for_bearer(gw: &Gateway, token: &Verified<AccessTokenClaims>, route: &RouteSettings) -> Decision {
    let selected = claims::select(&gw.claim_names, &[&token.payload]);
    if let Some(name) = claims::unusable(&selected) {
        return invalid_bearer(format!("claim {name:?} has control characters"));
    }
    let verdict = if route_allows(gw, &selected, route) {
        Verdict::Admit(Admission {
            headers: identity::for_bearer(&gw.settings, &token.claims.sub, &selected),
            user: token.claims.sub.clone(),
            touch: None,
            by_bearer: true,
        })
    } else {
        Verdict::Fail(Failure::new(FailureKind::Forbidden, "forbidden"))
    };
    Decision::counting(verdict, Metric::Bearer("valid"))
}

/// A request's bearer token, decided without I/O where possible: a JWT against the
/// current keys, an opaque token against the introspection cache.
pub fn decide(gw: &Gateway, token: &str, route: &RouteSettings, now: u64) -> Decision {
    // Not a JWT: only introspection can tell what it is.
    if token.split('.').count() != 3 {
        return match &gw.introspector {
            Some(i) => match i.cached(token, now) {
                Some(answer) => introspected(gw, answer, route),
                None => Verdict::Async(Work::Introspect {
                    token: token.to_owned(),
                    route: route.clone(),
                })
                .into(),
            },
            None => invalid_bearer("not a JWT (introspection is off)".into()),
        };
    }
    let Some(provider) = gw.provider.current() else {
        return Verdict::Async(Work::Bearer {
            token: token.to_owned(),
            route: route.clone(),
        })
        .into();
    };
    let s = &gw.settings;
    match Verifier::new(&provider, &s.provider).access_token(token, &s.bearer) {
        Ok(verified) => for_bearer(gw, &verified, route),
        Err(TokenError::Invalid(why)) => invalid_bearer(why),
        Err(TokenError::UnknownKey) => Verdict::Async(Work::Bearer {
            token: token.to_owned(),
            route: route.clone(),
        })
        .into(),
    }
}

/// An introspection answer meets the route's rules.
pub fn introspected(gw: &Gateway, answer: crate::oidc::introspect::Answer, route: &RouteSettings) -> Decision {
    match answer {
        Ok(verified) => for_bearer(gw, &verified, route),
        Err(why) => invalid_bearer(why),
    }
}

/// A bearer token that is not valid.
pub fn invalid_bearer(why: String) -> Decision {
    Decision::counting(
        Verdict::Fail(Failure::because(FailureKind::Unauthorized, "invalid_token", why)),
        Metric::Bearer("invalid"),
    )
}
