//! The login callback. Synchronously: IdP errors, `state` against the flow cookie and the
//! RFC 9207 `iss` parameter. Then on the async core: the code exchange and validation
//! (`oidc::code`), and the reply that sets the session cookie.

use async_filter::LocalReply;
use subtle::ConstantTimeEq;

use crate::decide::{Decision, Verdict};
use crate::error::CallbackError;
use crate::failure::Failure;
use crate::gateway::Gateway;
use crate::http::{cookies, path};
use crate::metrics::Metric;
use crate::oidc::code;
use crate::oidc::login::{flow_cookie_name, FlowState};
use session_store::OpenedTicket;

/// A callback that passed the synchronous checks (`Debug` leaves the code out).
pub struct CheckedCallback {
    /// The authorization code.
    pub code: String,
    /// The flow's secrets from its cookie.
    pub flow: FlowState,
    /// The flow cookie to clear.
    pub flow_cookie_name: String,
    /// The session this browser had, ended once the new one exists.
    pub replaces: Option<OpenedTicket>,
}

impl std::fmt::Debug for CheckedCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedCallback")
            .field("flow", &self.flow)
            .field("flow_cookie_name", &self.flow_cookie_name)
            .finish_non_exhaustive()
    }
}

/// The callback's parameters, read in one pass over the query (the first of each wins).
#[derive(Default)]
struct CallbackQuery {
    error: Option<String>,
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
}

impl CallbackQuery {
    fn parse(path: &str) -> Self {
        let mut q = Self::default();
        let Some((_, query)) = path.split_once('?') else {
            return q;
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*k {
                "error" => &mut q.error,
                "code" => &mut q.code,
                "state" => &mut q.state,
                "iss" => &mut q.iss,
                _ => continue,
            };
            slot.get_or_insert_with(|| v.into_owned());
        }
        q
    }
}

/// The synchronous checks, in the order RFC 9700 / RFC 9207 want them.
pub fn check(gw: &Gateway, path: &str, cookie_lines: &[&[u8]], now: u64) -> Result<CheckedCallback, CallbackError> {
    let query = CallbackQuery::parse(path);
    if let Some(error) = query.error {
        // Keep only a safe token of the IdP's error for logs and the page.
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(CallbackError::IdpRejected(error));
    }
    let (Some(code), Some(state)) = (query.code, query.state) else {
        return Err(CallbackError::MissingParameters);
    };
    let name = flow_cookie_name(&gw.settings.cookie.flow_prefix, &state).ok_or(CallbackError::UnknownState)?;
    let sealed = cookies::find(cookie_lines, &name).ok_or(CallbackError::UnknownState)?;
    let (flow, _) = gw
        .sessions
        .sealer()
        .open::<FlowState>(&name, sealed, now)
        .map_err(|_| CallbackError::UnknownState)?;
    if !bool::from(flow.state.as_bytes().ct_eq(state.as_bytes())) {
        return Err(CallbackError::StateMismatch);
    }
    // RFC 9207 §2.4: compare `iss` exactly when present; require it when promised.
    match query.iss {
        Some(iss) if iss != gw.settings.provider.issuer => return Err(CallbackError::IssuerMismatch),
        None if gw.provider.current().is_some_and(|p| p.iss_parameter_supported) => {
            return Err(CallbackError::IssuerMismatch)
        }
        _ => {}
    }
    Ok(CheckedCallback {
        code,
        flow,
        flow_cookie_name: name,
        replaces: None,
    })
}

/// The async part: exchange, validation, rules, session write, then the 302 home.
pub async fn complete(gw: &Gateway, cb: CheckedCallback) -> Decision {
    let c = &gw.settings.cookie;
    let clear_flow = c.expire(&cb.flow_cookie_name);
    match code::complete_login(gw, cb.code, &cb.flow).await {
        Ok(done) => {
            if let Some(old) = &cb.replaces {
                // Fixation and leftovers: the replaced session must not stay usable.
                if let Err(e) = gw.sessions.delete(old).await {
                    tracing::warn!(error = %e, "replaced session could not be ended (it expires by itself)");
                }
            }
            let max_age = gw.settings.session.lifetimes.absolute_secs;
            let reply = LocalReply {
                status: 302,
                headers: vec![
                    (
                        "location".into(),
                        path::same_origin_target(&cb.flow.target).into_bytes(),
                    ),
                    ("set-cookie".into(), c.session(&done.cookie, max_age).into_bytes()),
                    ("set-cookie".into(), clear_flow.into_bytes()),
                    ("cache-control".into(), b"no-store".to_vec()),
                ],
                body: Vec::new(),
                details: "oidc_login".into(),
            };
            Decision::counting(Verdict::Reply(reply), Metric::LoginSucceeded(done.elapsed_ms))
        }
        Err(e) => {
            let failure = Failure::from(e);
            let label = failure.reason;
            Decision::counting(Verdict::Fail(failure), Metric::LoginFailed(label))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CallbackQuery;

    #[test]
    fn one_pass_reads_each_parameter_once() {
        let q = CallbackQuery::parse("/cb?state=s1&code=a%2Bb&x=1&state=s2&iss=https%3A%2F%2Fidp");
        assert_eq!(q.code.as_deref(), Some("a+b"));
        assert_eq!(q.state.as_deref(), Some("s1"), "the first value wins");
        assert_eq!(q.iss.as_deref(), Some("https://idp"));
        assert_eq!(q.error, None);
        let none = CallbackQuery::parse("/cb");
        assert!(none.code.is_none() && none.state.is_none() && none.iss.is_none() && none.error.is_none());
    }
}
