//! The authorization code, turned into a session: exchange with the PKCE verifier, full
//! ID-token validation, userinfo, authorization rules, session write.

use std::time::Instant;

use session_store::{AccessToken, IdToken, RefreshToken, Session, Tokens};

use crate::authz;
use crate::error::CallbackError;
use crate::gateway::Gateway;
use crate::oidc::claims;
use crate::oidc::login::FlowState;
use crate::oidc::provider::Provider;
use crate::oidc::token_endpoint::{self, TokenEndpointError};
use crate::oidc::tokens::{IdTokenCheck, Verifier};
use crate::oidc::userinfo::{self, UserinfoError};
use crate::session::identity;

/// A completed login: the session cookie to set.
pub struct LoggedIn {
    /// Session cookie value.
    pub cookie: String,
    /// Time spent in the async part.
    pub elapsed_ms: u64,
}

/// Exchange, validation, userinfo, rules, session write.
pub async fn complete_login(gw: &Gateway, code: String, flow: &FlowState) -> Result<LoggedIn, CallbackError> {
    let started = Instant::now();
    let provider = gw.provider.wait(gw.settings.timeouts.startup_wait).await?;
    let session = exchange_and_validate(gw, &provider, code, flow).await?;
    if !authz::allowed_at_login(&gw.settings.authz, &session.claims) {
        tracing::info!(subject = %session.subject, "login refused by authorization rules");
        return Err(CallbackError::Forbidden);
    }
    let now = gw.clock.now();
    let (cookie, _, _) = gw.sessions.create(session, now).await?;
    Ok(LoggedIn {
        cookie,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

async fn exchange_and_validate(
    gw: &Gateway,
    p: &Provider,
    code: String,
    flow: &FlowState,
) -> Result<Session, CallbackError> {
    let token = token_endpoint::exchange_code(&gw.provider, p, &code, &flow.verifier, &flow.redirect_uri)
        .await
        .map_err(|e| match e {
            // RFC 6749 §5.2: only invalid_grant is about the code the browser brought
            // (expired, replayed); every other answer is the IdP's or our client's.
            TokenEndpointError::Refused { error } if error == "invalid_grant" => CallbackError::CodeRejected(error),
            TokenEndpointError::Idp(inner) => CallbackError::Idp(inner),
            other => CallbackError::TokenResponse(other.to_string()),
        })?;
    let raw_id_token = token.id_token.as_deref().ok_or(CallbackError::NoIdToken)?;
    let verify = |p: &Provider| {
        let check = IdTokenCheck {
            nonce: Some(&flow.nonce),
            access_token: &token.access_token,
            subject: None,
        };
        Verifier::new(p, &gw.settings.provider).id_token(raw_id_token, check)
    };
    // Key rotation: a kid not fetched yet fetches the keys again, not a failed login.
    let verified = gw.provider.verify(p, verify).await;
    let id_token = verified.map_err(|e| CallbackError::IdTokenInvalid(e.to_string()))?;
    let subject = id_token.claims().sub.clone();
    let userinfo = match userinfo::fetch(&gw.provider, p, &token.access_token, &subject).await {
        Ok(info) => info,
        // The access token is for another API (Entra with an API scope): the ID token's
        // claims are what we have, unless configured to insist.
        Err(UserinfoError::Refused(status)) if !gw.settings.provider.userinfo_required => {
            tracing::info!(status, "userinfo refused the access token; using the ID token's claims");
            serde_json::Map::new()
        }
        Err(UserinfoError::Idp(inner)) => return Err(CallbackError::Idp(inner)),
        Err(other) => return Err(CallbackError::UserInfo(other.to_string())),
    };
    let sources = [id_token.payload(), &userinfo];
    let claims = claims::select(&gw.claim_names, &sources);
    if claims::groups_overage(&gw.claim_names, &claims, &sources) {
        return Err(CallbackError::GroupsOverage);
    }
    let user_claim = &gw.settings.headers.user_claim;
    if user_claim != "sub" && claims.first(user_claim).is_none_or(str::is_empty) {
        return Err(CallbackError::ClaimsInvalid(user_claim.clone()));
    }
    // Hostile or broken claims end here, with a page saying why, not in Envoy's codec.
    if let Some(name) = claims::unusable(&claims) {
        return Err(CallbackError::ClaimsInvalid(name.to_owned()));
    }
    let size = identity::header_bytes(&gw.settings, &subject, &claims);
    if size > gw.settings.headers.max_bytes {
        return Err(CallbackError::TooLarge(size, gw.settings.headers.max_bytes));
    }
    let now = gw.clock.now();
    let tokens = Tokens {
        access: AccessToken::new(token.access_token.clone()),
        access_expires_at: token.expires_in.map(|secs| now + secs),
        refresh: token.refresh_token.clone().map(RefreshToken::new),
        id_token: Some(IdToken::new(id_token.raw().to_owned())),
    };
    Ok(Session::new(
        subject,
        gw.settings.provider.issuer.clone(),
        id_token.claims().sid.clone(),
        claims,
        tokens,
        now,
        gw.settings.session.lifetimes,
    ))
}
