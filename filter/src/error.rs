//! The filter's typed errors, each mapped once to a [`FailureKind`] (the status comes
//! from the kind, in `failure.rs`) and to a stable reason label.

use session_store::{RecordError, SessionError, StoreError};

use crate::failure::{Failure, FailureKind};

/// Talking to the identity provider failed.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(#[source] openidconnect::reqwest::Error),
    /// The IdP could not be reached; the text carries every cause (a TLS error names the
    /// certificate problem, not just "error sending request").
    #[error("identity provider unreachable: {0}")]
    Unreachable(String),
    /// The IdP did not answer in time.
    #[error("identity provider timed out")]
    Timeout,
    /// The IdP answered with an unexpected HTTP status.
    #[error("identity provider answered HTTP {0}")]
    Status(u16),
    /// A request or response could not be formed or read.
    #[error("malformed exchange with the identity provider: {0}")]
    Malformed(String),
    /// The discovery document or key set does not parse.
    #[error("discovery document invalid: {0}")]
    Discovery(#[source] serde_json::Error),
    /// The discovery document names another issuer (often a trailing slash apart).
    #[error("the discovery document's issuer {discovered:?} is not the configured issuer {configured:?} (compared exactly: set `issuer` to the discovered value)")]
    IssuerMismatch {
        /// Our `issuer` setting.
        configured: String,
        /// What the document says.
        discovered: String,
    },
    /// Discovery has not succeeded yet.
    #[error("identity provider not discovered yet")]
    NotReady,
    /// The IdP's discovery document names no such endpoint.
    #[error("the identity provider has no {0} endpoint")]
    NoEndpoint(&'static str),
}

impl IdpError {
    pub(crate) fn from_reqwest(e: openidconnect::reqwest::Error) -> Self {
        if e.is_timeout() {
            IdpError::Timeout
        } else {
            // reqwest's own text stops at "error sending request": the causes say why.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            IdpError::Unreachable(text)
        }
    }
}

impl From<IdpError> for Failure {
    fn from(e: IdpError) -> Self {
        let (kind, reason) = match e {
            IdpError::Timeout => (FailureKind::IdpTimeout, "idp_timeout"),
            IdpError::NotReady => (FailureKind::NotReady, "idp_not_ready"),
            IdpError::Client(_) => (FailureKind::Internal, "idp_client"),
            _ => (FailureKind::IdpUnavailable, "idp_unreachable"),
        };
        Failure::because(kind, reason, e)
    }
}

impl From<SessionError> for Failure {
    fn from(e: SessionError) -> Self {
        let (kind, reason) = match &e {
            SessionError::Store(StoreError::Timeout) => (FailureKind::StoreTimeout, "store_timeout"),
            SessionError::Store(StoreError::InvalidUrl(_) | StoreError::Random(_)) => {
                (FailureKind::Internal, "store_internal")
            }
            SessionError::Store(_) => (FailureKind::StoreUnavailable, "store_unavailable"),
            // Too large to keep (thousands of groups): the user is told why, not a 500.
            SessionError::Record(RecordError::TooLarge(_)) => (FailureKind::Forbidden, "session_too_large"),
            SessionError::Record(_) => (FailureKind::Internal, "session_record"),
            SessionError::Seal(_) | SessionError::Random(_) => (FailureKind::Internal, "session_seal"),
        };
        Failure::because(kind, reason, e)
    }
}

/// Why a login callback failed.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The IdP returned `error=` (user denied, etc.).
    #[error("identity provider returned error {0:?}")]
    IdpRejected(String),
    /// No `code` or `state` parameter.
    #[error("callback without code or state")]
    MissingParameters,
    /// No flow cookie for this state (expired, replayed, or another browser).
    #[error("no login in progress for this state (expired or replayed)")]
    UnknownState,
    /// The flow cookie's state differs.
    #[error("state does not match")]
    StateMismatch,
    /// RFC 9207 `iss` parameter absent where promised, or not our issuer.
    #[error("authorization response issuer mismatch")]
    IssuerMismatch,
    /// The token endpoint refused the code (replayed or expired code).
    #[error("token endpoint refused the code: {0}")]
    CodeRejected(String),
    /// The token endpoint's answer is not a token response (HTTP 500, HTML, garbage).
    #[error("token endpoint answered with something that is not a token response: {0}")]
    TokenResponse(String),
    /// The token response lacks an ID token.
    #[error("token response has no id_token")]
    NoIdToken,
    /// ID token validation failed (signature, iss, aud, exp, nonce...).
    #[error("id token invalid: {0}")]
    IdTokenInvalid(String),
    /// Userinfo subject differs from the ID token or the call failed.
    #[error("userinfo invalid: {0}")]
    UserInfo(String),
    /// Authenticated, but not allowed by the rules.
    #[error("user not allowed")]
    Forbidden,
    /// A claim the filter would pass on is unusable (missing, empty, control characters).
    #[error("claim {0:?} is missing, empty or has control characters")]
    ClaimsInvalid(String),
    /// Entra ID sent a pointer to the groups instead of the groups (too many of them).
    #[error("groups overage: the IdP sent where the groups are (_claim_names) instead of the groups")]
    GroupsOverage,
    /// The user's identity headers would be larger than the configured bound.
    #[error("identity headers would take {0} bytes, over the limit of {1}")]
    TooLarge(usize, usize),
    /// The IdP could not be reached.
    #[error(transparent)]
    Idp(#[from] IdpError),
    /// The session store failed.
    #[error(transparent)]
    Session(#[from] SessionError),
}

impl From<CallbackError> for Failure {
    fn from(e: CallbackError) -> Self {
        let (kind, reason) = match &e {
            CallbackError::Idp(_) | CallbackError::Session(_) => {
                return match e {
                    CallbackError::Idp(inner) => inner.into(),
                    CallbackError::Session(inner) => inner.into(),
                    other => Failure::because(FailureKind::Internal, "callback", other),
                };
            }
            CallbackError::IdpRejected(_) => (FailureKind::BadRequest, "idp_error"),
            CallbackError::MissingParameters => (FailureKind::BadRequest, "missing_parameters"),
            CallbackError::UnknownState => (FailureKind::BadRequest, "unknown_state"),
            CallbackError::StateMismatch => (FailureKind::BadRequest, "state_mismatch"),
            CallbackError::IssuerMismatch => (FailureKind::BadRequest, "issuer_mismatch"),
            CallbackError::CodeRejected(_) => (FailureKind::BadRequest, "code_rejected"),
            // The IdP's fault, not the browser's.
            CallbackError::TokenResponse(_) => (FailureKind::IdpUnavailable, "token_response"),
            CallbackError::NoIdToken => (FailureKind::IdpUnavailable, "no_id_token"),
            // The ID token comes from the IdP over the back channel, never from the
            // browser: a bad one is the IdP's fault (or an attack on it), not the user's.
            CallbackError::IdTokenInvalid(_) => (FailureKind::IdpUnavailable, "id_token_invalid"),
            CallbackError::UserInfo(_) => (FailureKind::IdpUnavailable, "userinfo"),
            CallbackError::Forbidden => (FailureKind::Forbidden, "forbidden"),
            CallbackError::ClaimsInvalid(_) => (FailureKind::IdpUnavailable, "claims_invalid"),
            CallbackError::TooLarge(..) => (FailureKind::Forbidden, "session_too_large"),
            CallbackError::GroupsOverage => (FailureKind::Forbidden, "groups_overage"),
        };
        Failure::because(kind, reason, e)
    }
}
