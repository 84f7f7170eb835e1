//! Signing out here: the session ends everywhere, its cookie is cleared, and the browser
//! goes to the IdP's end-session endpoint (RP-initiated logout) with `id_token_hint`,
//! then back to `post_logout_redirect_uri`, or to the filter's own "signed out" page, so
//! a user who signed out is not logged straight back in.

use async_filter::LocalReply;
use base64::Engine;
use session_store::Check;
use sha2::{Digest, Sha256};

use crate::config::EndSessionMethod;
use crate::decide::{Decision, Verdict};
use crate::failure::{html_escape, Failure};
use crate::gateway::Gateway;
use crate::metrics::Metric;
use crate::oidc::provider::Provider;

/// The script that submits the logout form; allowed by its hash in the page's CSP.
const SUBMIT_SCRIPT: &str = "document.forms[0].submit()";

/// Ends the session the cookie names (if any) and sends the browser on its way out.
pub async fn run(gw: &Gateway, check: Option<Check>) -> Decision {
    let now = gw.clock.now();
    let session = match check {
        Some(Check::Hit(session, ticket)) if !session.left_in_store.id_token => Some((Some(session), ticket)),
        // The cached copy leaves the ID token (for `id_token_hint`) in the store.
        Some(Check::Hit(_, ticket) | Check::Miss(ticket)) => {
            Some((gw.sessions.load(&ticket, now).await.ok().flatten(), ticket))
        }
        _ => None,
    };
    let mut id_token = None;
    if let Some((session, ticket)) = session {
        id_token = session.and_then(|s| s.tokens.id_token.as_ref().map(|t| t.secret().to_owned()));
        if let Err(e) = gw.sessions.delete(&ticket).await {
            return Decision {
                verdict: Verdict::Fail(Failure::from(e)),
                metrics: smallvec::smallvec![Metric::Logout, Metric::StoreError],
            };
        }
    }
    let c = &gw.settings.cookie;
    let mut headers = vec![
        ("set-cookie".to_owned(), c.expire(&c.name).into_bytes()),
        ("cache-control".to_owned(), b"no-store".to_vec()),
    ];
    let provider = gw.provider.current();
    let (status, body) = match page(gw, provider.as_deref(), id_token.as_deref()) {
        Page::EndSessionForm { html, csp } => {
            headers.push(("content-type".into(), b"text/html; charset=utf-8".to_vec()));
            headers.push(("content-security-policy".into(), csp.into_bytes()));
            (200, html.into_bytes())
        }
        Page::Redirect(to) => {
            headers.push(("location".into(), to.into_bytes()));
            (302, Vec::new())
        }
    };
    let reply = LocalReply {
        status,
        headers,
        body,
        details: "oidc_sign_out".into(),
    };
    Decision::counting(Verdict::Reply(reply), Metric::Logout)
}

/// What the browser gets after a local sign-out.
pub enum Page {
    /// A page POSTing `id_token_hint` to the IdP's end-session endpoint (the token goes in
    /// a form body, never in a URL), with a CSP allowing only that one script.
    EndSessionForm {
        /// Page body.
        html: String,
        /// `content-security-policy` value.
        csp: String,
    },
    /// A redirect: to the IdP (GET end-session), or home when the IdP has no endpoint.
    Redirect(String),
}

/// The page that takes the user to the IdP's logout, or to the signed-out page.
pub fn page(gw: &Gateway, provider: Option<&Provider>, id_token: Option<&str>) -> Page {
    let post_logout = gw
        .settings
        .sign_out
        .post_logout_redirect_uri
        .as_ref()
        .map(|u| u.to_string());
    let Some(endpoint) = provider.and_then(|p| p.end_session_endpoint.as_ref()) else {
        return Page::Redirect(post_logout.unwrap_or_else(|| gw.settings.paths.signed_out.clone()));
    };
    let mut fields = vec![("client_id", gw.settings.provider.client_id.clone())];
    if let Some(t) = id_token {
        fields.push(("id_token_hint", t.to_owned()));
    }
    if let Some(u) = post_logout {
        fields.push(("post_logout_redirect_uri", u));
    }
    if gw.settings.sign_out.end_session_method == EndSessionMethod::Get {
        let mut url = endpoint.clone();
        url.query_pairs_mut().extend_pairs(&fields);
        return Page::Redirect(url.to_string());
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
    Page::EndSessionForm { html, csp }
}

const PAGE_HEAD: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}</style>";

/// The "you have signed out" page: no login is started until the user asks for one.
pub fn signed_out_page() -> LocalReply {
    let body = format!(
        "{PAGE_HEAD}<title>Signed out</title></head><body><h1>You have signed out</h1>\
<p><a href=\"/\">Sign in again</a></p></body></html>\n"
    );
    page_reply(body, "oidc_signed_out", "")
}

/// A sign-out link followed from another site: nothing happens until the user confirms
/// with a POST from this origin (a forged link cannot sign anyone out).
pub fn confirm_page(logout_path: &str) -> LocalReply {
    let body = format!(
        "{PAGE_HEAD}<title>Sign out?</title></head><body><h1>Sign out?</h1>\
<p>Another site asked to sign you out.</p><form method=\"post\" action=\"{}\">\
<button type=\"submit\">Sign out</button></form><p><a href=\"/\">Stay signed in</a></p></body></html>\n",
        html_escape(logout_path)
    );
    page_reply(body, "oidc_sign_out_confirm", " form-action 'self';")
}

fn page_reply(body: String, details: &str, csp_extra: &str) -> LocalReply {
    let csp = format!("default-src 'none'; style-src 'unsafe-inline';{csp_extra} frame-ancestors 'none'");
    LocalReply {
        status: 200,
        headers: vec![
            ("content-type".into(), b"text/html; charset=utf-8".to_vec()),
            ("cache-control".into(), b"no-store".to_vec()),
            ("content-security-policy".into(), csp.into_bytes()),
        ],
        body: body.into_bytes(),
        details: details.into(),
    }
}

#[cfg(test)]
mod tests {
    use crate::failure::html_escape;

    #[test]
    fn escapes_attribute_values() {
        assert_eq!(html_escape(r#"a"><script>&'"#), "a&quot;&gt;&lt;script&gt;&amp;&#39;");
    }
}
