//! OIDC Back-Channel Logout 1.0: the IdP POSTs a `logout_token`; every session of its
//! `sid` (or `sub`) ends on every replica. Errors answer in the spec's form (§2.8: 400
//! with an OAuth error JSON), with the trace id.

use async_filter::LocalReply;

use crate::decide::{Decision, Verdict};
use crate::failure::{Failure, FailureKind};
use crate::gateway::Gateway;
use crate::metrics::Metric;
use crate::oidc::tokens::Verifier;

/// Largest back-channel logout body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Validates the form body's `logout_token` and ends the sessions it names.
pub async fn run(gw: &Gateway, body: &[u8], content_type: Option<&[u8]>) -> Decision {
    // §2.5: the token comes as a form post; anything else is not from the IdP.
    let form = content_type
        .and_then(|c| c.split(|b| *b == b';').next())
        .is_some_and(|c| {
            c.trim_ascii()
                .eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
        });
    if !form {
        return invalid("content type is not application/x-www-form-urlencoded");
    }
    let Some(token) = form_urlencoded::parse(body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
    else {
        return invalid("no logout_token");
    };
    let s = &gw.settings;
    let provider = match gw.provider.wait(s.timeouts.startup_wait).await {
        Ok(p) => p,
        Err(e) => return failed(Failure::from(e)),
    };
    let max_age = s.sign_out.backchannel_max_age;
    let check = gw
        .provider
        .verify(&provider, |p| {
            Verifier::new(p, &s.provider).logout_token(&token, max_age.as_secs())
        })
        .await;
    let claims = match check {
        Ok(verified) => verified.claims,
        Err(e) => return invalid(&e.to_string()),
    };
    // §2.6 step 7: a `jti` seen before (by any replica) is a replay. Remembered for as
    // long as its `iat` would still be accepted.
    let remember = max_age + s.provider.clock_skew * 2;
    let issuer = &s.provider.issuer;
    match gw
        .sessions
        .first_sighting("logout-jti", &format!("{issuer}\n{}", claims.jti), remember)
        .await
    {
        Ok(true) => {}
        Ok(false) => return invalid("logout token replayed (jti seen before)"),
        Err(e) => return failed(Failure::from(e)),
    }
    let ended = match (claims.sid.as_deref(), claims.sub.as_deref()) {
        (Some(sid), _) => gw.sessions.delete_by_sid(issuer, sid).await,
        (None, Some(sub)) => gw.sessions.delete_by_subject(issuer, sub).await,
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
