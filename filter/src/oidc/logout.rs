//! Signing out: locally (delete the session everywhere, clear the cookie, then RP-initiated
//! logout at the IdP) and from the IdP (OIDC back-channel logout).

use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::config::EndSessionMethod;
use crate::gateway::Gateway;
use crate::oidc::provider::Provider;
use crate::oidc::tokens::{self, Kind, TokenCheck};

/// The script that submits the logout form; allowed by its hash in the page's CSP.
const SUBMIT_SCRIPT: &str = "document.forms[0].submit()";

fn html_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// What the browser gets after a local sign-out.
pub enum SignOutPage {
    /// A page POSTing `id_token_hint` to the IdP's end-session endpoint (the token goes in
    /// a form body, never in a URL), with a CSP allowing only that one script.
    EndSessionForm {
        /// Page body.
        html: String,
        /// `content-security-policy` value.
        csp: String,
    },
    /// No end-session endpoint: a plain redirect.
    Redirect(String),
}

/// The page that takes the user to the IdP's logout, or back to the app.
pub fn sign_out_page(gw: &Gateway, provider: Option<&Provider>, id_token: Option<&str>) -> SignOutPage {
    let post_logout = gw.settings.post_logout_redirect_uri.as_ref().map(|u| u.to_string());
    let Some(endpoint) = provider.and_then(|p| p.end_session_endpoint.as_ref()) else {
        return SignOutPage::Redirect(post_logout.unwrap_or_else(|| "/".into()));
    };
    let mut fields = vec![("client_id", gw.settings.provider.client_id.clone())];
    if let Some(t) = id_token {
        fields.push(("id_token_hint", t.to_owned()));
    }
    if let Some(u) = post_logout {
        fields.push(("post_logout_redirect_uri", u));
    }
    if gw.settings.end_session_method == EndSessionMethod::Get {
        let mut url = endpoint.clone();
        url.query_pairs_mut().extend_pairs(&fields);
        return SignOutPage::Redirect(url.to_string());
    }
    let inputs: String = fields
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", html_escape(v)))
        .collect();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Signing out</title></head><body>\
<form method=\"post\" action=\"{}\">{inputs}<noscript><button type=\"submit\">Continue signing out</button></noscript></form>\
<script>{SUBMIT_SCRIPT}</script></body></html>",
        html_escape(endpoint.as_str())
    );
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SUBMIT_SCRIPT.as_bytes()));
    let origin = endpoint.origin().ascii_serialization();
    let csp = format!("default-src 'none'; script-src 'sha256-{hash}'; form-action {origin}; frame-ancestors 'none'");
    SignOutPage::EndSessionForm { html, csp }
}

/// How a back-channel logout request ended.
#[derive(Debug, PartialEq, Eq)]
pub enum BackchannelResult {
    /// Sessions ended (how many).
    Done(usize),
    /// The request or token is invalid (why).
    Invalid(String),
    /// The store or IdP failed.
    Unavailable(String),
}

/// Validates a `logout_token` (form body) and ends every session of its `sid`/`sub`.
pub async fn backchannel(gw: &Arc<Gateway>, body: &[u8]) -> BackchannelResult {
    let Some(token) = form_urlencoded::parse(body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
    else {
        return BackchannelResult::Invalid("no logout_token".into());
    };
    let s = &gw.settings.provider;
    let provider = match gw.provider.wait(gw.settings.timeouts.startup_wait).await {
        Ok(p) => p,
        Err(e) => return BackchannelResult::Unavailable(e.to_string()),
    };
    let audience = [s.client_id.clone()];
    let mut check = tokens::verify(&provider, &token, &s.issuer, &audience, Kind::Logout);
    if matches!(check, TokenCheck::UnknownKey) {
        if let Some(fresh) = gw.provider.refresh_for_unknown_key().await {
            check = tokens::verify(&fresh, &token, &s.issuer, &audience, Kind::Logout);
        }
    }
    let claims = match check {
        TokenCheck::Valid(c) => c,
        TokenCheck::UnknownKey => return BackchannelResult::Invalid("unknown signing key".into()),
        TokenCheck::Invalid(why) => return BackchannelResult::Invalid(why),
    };
    let ended = match (
        claims.get("sid").and_then(|v| v.as_str()),
        claims.get("sub").and_then(|v| v.as_str()),
    ) {
        (Some(sid), _) => gw.sessions.delete_by_sid(&s.issuer, sid).await,
        (None, Some(sub)) => gw.sessions.delete_by_subject(&s.issuer, sub).await,
        (None, None) => return BackchannelResult::Invalid("neither sid nor sub".into()),
    };
    match ended {
        Ok(n) => BackchannelResult::Done(n),
        Err(e) => BackchannelResult::Unavailable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::html_escape;

    #[test]
    fn escapes_attribute_values() {
        assert_eq!(html_escape(r#"a"><script>&'"#), "a&quot;&gt;&lt;script&gt;&amp;&#39;");
    }
}
