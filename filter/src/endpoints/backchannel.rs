//! OIDC Back-Channel Logout 1.0: the IdP POSTs a `logout_token`; every session of its
//! `sid` (or `sub`) ends on every replica. Errors answer in the spec's form (§2.8: 400
//! with an OAuth error JSON), with the trace id.

use async_filter::LocalReply;

use crate::decide::{Decision, Verdict};
use crate::failure::{Failure, FailureKind};
use crate::gateway::Gateway;
use crate::metrics::Metric;
use crate::oidc::tokens::{self, TokenError};

/// Largest back-channel logout body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Validates the form body's `logout_token` and ends the sessions it names.
pub async fn run(gw: &Gateway, body: &[u8]) -> Decision {
    let Some(token) = form_urlencoded::parse(body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
    else {
        return invalid("no logout_token");
    };
    let s = &gw.settings.provider;
    let provider = match gw.provider.wait(gw.settings.timeouts.startup_wait).await {
        Ok(p) => p,
        Err(e) => return failed(Failure::from(e)),
    };
    let mut check = tokens::verify_logout_token(&provider, &token, &s.issuer, &s.client_id);
    if check.as_ref().err() == Some(&TokenError::UnknownKey) {
        if let Some(fresh) = gw.provider.refresh_for_unknown_key().await {
            check = tokens::verify_logout_token(&fresh, &token, &s.issuer, &s.client_id);
        }
    }
    let claims = match check {
        Ok(verified) => verified.claims,
        Err(e) => return invalid(&e.to_string()),
    };
    let ended = match (claims.sid.as_deref(), claims.sub.as_deref()) {
        (Some(sid), _) => gw.sessions.delete_by_sid(&s.issuer, sid).await,
        (None, Some(sub)) => gw.sessions.delete_by_subject(&s.issuer, sub).await,
        (None, None) => return invalid("neither sid nor sub"),
    };
    match ended {
        Ok(n) => {
            tracing::info!(sessions = n, "back-channel logout");
            let reply = LocalReply {
                status: 200,
                headers: vec![("cache-control".into(), b"no-store".to_vec())],
                body: Vec::new(),
                details: "oidc_backchannel".into(),
            };
            Decision::counting(Verdict::Reply(reply), Metric::Backchannel("ok"))
        }
        Err(e) => failed(Failure::from(e)),
    }
}

fn invalid(why: &str) -> Decision {
    Decision::counting(
        Verdict::Fail(Failure::because(FailureKind::BadRequest, "backchannel_invalid", why)),
        Metric::Backchannel("invalid"),
    )
}

fn failed(f: Failure) -> Decision {
    Decision::counting(Verdict::Fail(f), Metric::Backchannel("failed"))
}
