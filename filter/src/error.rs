//! The filter's errors, each mapped once to an HTTP status and a metric reason.

/// Talking to the identity provider failed.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(#[source] openidconnect::reqwest::Error),
    /// The IdP could not be reached.
    #[error("identity provider unreachable: {0}")]
    Unreachable(#[source] openidconnect::reqwest::Error),
    /// The request to the IdP could not be made (I/O, malformed request).
    #[error("identity provider request failed: {0}")]
    Request(#[source] openidconnect::HttpClientError<openidconnect::reqwest::Error>),
    /// The IdP did not answer in time.
    #[error("identity provider timed out")]
    Timeout,
    /// The IdP answered with an unexpected HTTP status.
    #[error("identity provider answered HTTP {0}")]
    Status(u16),
    /// The discovery document or key set does not parse.
    #[error("discovery document invalid: {0}")]
    Discovery(#[source] serde_json::Error),
    /// The discovery document names another issuer.
    #[error("discovery document issuer does not match the configured issuer")]
    IssuerMismatch,
    /// Discovery has not succeeded yet.
    #[error("identity provider not discovered yet")]
    NotReady,
}

impl IdpError {
    pub(crate) fn from_reqwest(e: openidconnect::reqwest::Error) -> Self {
        if e.is_timeout() {
            IdpError::Timeout
        } else {
            IdpError::Unreachable(e)
        }
    }

    /// Classifies a failed token-endpoint call by its typed cause.
    pub(crate) fn from_http_client(e: openidconnect::HttpClientError<openidconnect::reqwest::Error>) -> Self {
        match e {
            openidconnect::HttpClientError::Reqwest(inner) => IdpError::from_reqwest(*inner),
            other => IdpError::Request(other),
        }
    }

    /// HTTP status for the client.
    pub fn status(&self) -> u16 {
        match self {
            IdpError::Timeout | IdpError::NotReady => 504,
            _ => 502,
        }
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
    /// The IdP could not be reached.
    #[error(transparent)]
    Idp(#[from] IdpError),
    /// The session store failed.
    #[error(transparent)]
    Session(#[from] session_store::SessionError),
}

impl CallbackError {
    /// HTTP status for the client.
    pub fn status(&self) -> u16 {
        match self {
            CallbackError::Forbidden => 403,
            CallbackError::Idp(e) => e.status(),
            CallbackError::Session(e) => e.status(),
            CallbackError::NoIdToken | CallbackError::UserInfo(_) => 502,
            _ => 400,
        }
    }

    /// The metric label of this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            CallbackError::IdpRejected(_) => "idp_error",
            CallbackError::MissingParameters => "missing_parameters",
            CallbackError::UnknownState => "unknown_state",
            CallbackError::StateMismatch => "state_mismatch",
            CallbackError::IssuerMismatch => "issuer_mismatch",
            CallbackError::CodeRejected(_) => "code_rejected",
            CallbackError::NoIdToken => "no_id_token",
            CallbackError::IdTokenInvalid(_) => "id_token_invalid",
            CallbackError::UserInfo(_) => "userinfo",
            CallbackError::Forbidden => "forbidden",
            CallbackError::Idp(_) => "idp_unreachable",
            CallbackError::Session(_) => "store",
        }
    }

    /// Short reason phrase for the error page.
    pub fn phrase(&self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            403 => "Forbidden",
            502 => "Bad Gateway",
            504 => "Gateway Timeout",
            _ => "Internal Server Error",
        }
    }
}
