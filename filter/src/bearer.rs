//! API clients: a bearer token (a JWT checked against the IdP's keys, or an opaque token
//! introspected at the IdP) turned into a decision, with the same group rules as sessions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store::Claims;

use crate::config::RouteSettings;
use crate::decide::{route_allows, Admission, Decision, Verdict, Work};
use crate::failure::{Failure, FailureKind};
use crate::gateway::Gateway;
use crate::metrics::Metric;
use crate::oidc::access_tokens::AccessTokenClaims;
use crate::oidc::claims;
use crate::oidc::tokens::{TokenError, Verified, Verifier};
use crate::session::identity;

/// A bearer token that passed every check: what its requests need, kept so the same token
/// is not verified again (a signature check costs far more than the whole session path).
pub struct Accepted {
    claims: Claims,
    identity: Arc<identity::Identity>,
    /// Valid until (unix seconds, the clock skew included).
    until: u64,
    /// The keys it was checked with (a new discovery checks it again).
    keys_fetched_at: Instant,
}

/// Tokens verified lately, by the whole token (never by a hash that two tokens could share).
pub struct VerifiedTokens(moka::sync::Cache<Box<str>, Arc<Accepted>>);

impl Default for VerifiedTokens {
    fn default() -> Self {
        // A token is checked again at least every minute (a removed key, a revoked client).
        Self(
            moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        )
    }
}

/// A verified JWT bearer token meets the route's rules: admit it, and remember it.
pub fn for_bearer(
    gw: &Gateway,
    token: &str,
    verified: &Verified<AccessTokenClaims>,
    route: &RouteSettings,
) -> Decision {
    match accept(gw, verified) {
        Ok(accepted) => {
            gw.verified_tokens.0.insert(token.into(), accepted.clone());
            admit(gw, &accepted, route)
        }
        Err(why) => invalid_bearer(why),
    }
}

/// What a valid token's requests need, or why its claims cannot be used.
fn accept(gw: &Gateway, verified: &Verified<AccessTokenClaims>) -> Result<Arc<Accepted>, String> {
    let selected = claims::select(&gw.claim_names, &[&verified.payload]);
    if let Some(name) = claims::unusable(&selected) {
        return Err(format!("claim {name:?} has control characters"));
    }
    Ok(Arc::new(Accepted {
        identity: identity::for_bearer(&gw.settings, &verified.claims.sub, &selected),
        claims: selected,
        until: verified
            .claims
            .exp
            .saturating_add(gw.settings.provider.clock_skew.as_secs()),
        keys_fetched_at: gw.provider.current().map_or_else(Instant::now, |p| p.fetched_at),
    }))
}

fn admit(gw: &Gateway, accepted: &Accepted, route: &RouteSettings) -> Decision {
    let verdict = if route_allows(gw, &accepted.claims, route) {
        Verdict::Admit(Admission {
            identity: accepted.identity.clone(),
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
pub fn decide(gw: &Gateway, token: &str, route: &std::sync::Arc<RouteSettings>, now: u64) -> Decision {
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
    if let Some(hit) = gw.verified_tokens.0.get(token) {
        if now < hit.until && hit.keys_fetched_at == provider.fetched_at {
            return admit(gw, &hit, route);
        }
    }
    let s = &gw.settings;
    match Verifier::new(&provider, &s.provider).access_token(token, &s.bearer) {
        Ok(verified) => for_bearer(gw, token, &verified, route),
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
    // Not remembered here: the introspection cache has its own, shorter, bound.
    match answer.and_then(|verified| accept(gw, &verified)) {
        Ok(accepted) => admit(gw, &accepted, route),
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
