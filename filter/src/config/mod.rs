//! The filter config: JSON from Envoy, parsed once into an immutable, grouped [`Settings`].
//! Every error names the field it is about; secrets are read here, once.

mod secret;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use session_store::{KeyRing, Lifetimes};
use url::Url;
use zeroize::Zeroizing;

pub use secret::SecretSource;

/// A config error: which field, and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `session.keys[1]`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------- raw JSON shape

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    issuer: String,
    client_id: String,
    client_secret: SecretSource,
    redirect_uri: String,
    #[serde(default = "default_scopes")]
    scopes: Vec<String>,
    #[serde(default)]
    extra_authorize_params: BTreeMap<String, String>,
    #[serde(default)]
    cookie: RawCookie,
    session: RawSession,
    #[serde(default)]
    pass_through: Vec<RawRule>,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    headers: RawHeaders,
    #[serde(default)]
    authorization: RawAuthz,
    #[serde(default)]
    logout: RawLogout,
    #[serde(default)]
    bearer: RawBearer,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default)]
    refresh: RawRefresh,
    #[serde(default)]
    provider: RawProvider,
    #[serde(default = "default_max_in_flight")]
    max_in_flight: usize,
    #[serde(default)]
    access_log_user: AccessLogUser,
    #[serde(default)]
    error_pages: RawErrorPages,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawErrorPages {
    html: Option<RawTemplate>,
    json: Option<RawTemplate>,
}

/// A template's text: in the config, or in a file read at load.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum RawTemplate {
    Inline(String),
    File(String),
}

/// Where the signed-in user is recorded for access logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogUser {
    /// Dynamic metadata `oidc:user` (`%DYNAMIC_METADATA(oidc:user)%`). Envoy merges a
    /// protobuf Struct per request: the costliest call on the hot path.
    #[default]
    DynamicMetadata,
    /// Filter state `oidc.user` (`%FILTER_STATE(oidc.user:PLAIN)%`): far cheaper.
    FilterState,
    /// Not recorded.
    None,
}

impl AccessLogUser {
    /// Records `user` on the stream as configured.
    pub fn record(self, s: &mut dyn envoy_module::HttpStream, user: &str) {
        match self {
            AccessLogUser::DynamicMetadata => s.set_metadata("oidc", "user", user),
            AccessLogUser::FilterState => {
                s.set_filter_state("oidc.user", user.as_bytes());
            }
            AccessLogUser::None => {}
        }
    }
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}
fn default_max_in_flight() -> usize {
    10_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCookie {
    name: String,
    secure: bool,
    same_site: SameSite,
}

impl Default for RawCookie {
    fn default() -> Self {
        Self {
            name: "__Host-oidc_session".into(),
            secure: true,
            same_site: SameSite::Lax,
        }
    }
}

/// The `SameSite` attribute of the session cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SameSite {
    /// `Lax` (default): sent on top-level navigations from other sites.
    Lax,
    /// `Strict`: never sent from other sites.
    Strict,
    /// `None`: always sent (requires `Secure`).
    None,
}

impl SameSite {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    keys: Vec<SecretSource>,
    #[serde(default = "default_idle")]
    idle_timeout_secs: u64,
    #[serde(default = "default_absolute")]
    absolute_timeout_secs: u64,
    #[serde(default = "default_cache_ttl")]
    cache_ttl_secs: u64,
    #[serde(default = "default_cache_capacity")]
    cache_capacity: u64,
    #[serde(default)]
    store: RawStore,
}

fn default_idle() -> u64 {
    8 * 3600
}
fn default_absolute() -> u64 {
    24 * 3600
}
fn default_cache_ttl() -> u64 {
    60
}
fn default_cache_capacity() -> u64 {
    100_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum RawStore {
    Memory {
        #[serde(default = "default_cache_capacity")]
        capacity: u64,
    },
    Redis {
        url: SecretSource,
        #[serde(default)]
        username: Option<SecretSource>,
        #[serde(default)]
        password: Option<SecretSource>,
        #[serde(default = "default_prefix")]
        prefix: String,
        #[serde(default)]
        ca_file: Option<String>,
        #[serde(default)]
        client_cert_file: Option<String>,
        #[serde(default)]
        client_key_file: Option<String>,
    },
}

fn default_prefix() -> String {
    "oidc:".into()
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore::Memory {
            capacity: default_cache_capacity(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    path_prefix: Option<String>,
    #[serde(default)]
    path_regex: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawApi {
    path_prefixes: Vec<String>,
    detect_xhr: bool,
    detect_accept: bool,
}

impl Default for RawApi {
    fn default() -> Self {
        Self {
            path_prefixes: Vec::new(),
            detect_xhr: true,
            detect_accept: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHeaders {
    user: String,
    email: String,
    groups: String,
    preferred_username: String,
    claims: BTreeMap<String, String>,
    access_token: bool,
}

impl Default for RawHeaders {
    fn default() -> Self {
        Self {
            user: "x-auth-request-user".into(),
            email: "x-auth-request-email".into(),
            groups: "x-auth-request-groups".into(),
            preferred_username: "x-auth-request-preferred-username".into(),
            claims: BTreeMap::new(),
            access_token: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAuthz {
    allowed_groups: Vec<String>,
    allowed_emails: Vec<String>,
    allowed_email_domains: Vec<String>,
    groups_claim: String,
}

impl Default for RawAuthz {
    fn default() -> Self {
        Self {
            allowed_groups: Vec::new(),
            allowed_emails: Vec::new(),
            allowed_email_domains: Vec::new(),
            groups_claim: "groups".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLogout {
    path: String,
    signed_out_path: String,
    post_logout_redirect_uri: Option<String>,
    backchannel_path: String,
    end_session_method: EndSessionMethod,
}

/// How the browser is sent to the IdP's end-session endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndSessionMethod {
    /// An auto-submitted form: `id_token_hint` travels in a POST body (default).
    #[default]
    Post,
    /// A redirect: `id_token_hint` goes in the URL (for IdPs that only accept GET).
    Get,
}

impl Default for RawLogout {
    fn default() -> Self {
        Self {
            path: "/oauth2/sign_out".into(),
            signed_out_path: "/oauth2/signed_out".into(),
            post_logout_redirect_uri: None,
            backchannel_path: "/oauth2/backchannel_logout".into(),
            end_session_method: EndSessionMethod::Post,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawBearer {
    enabled: bool,
    audiences: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTimeouts {
    idp_ms: u64,
    store_ms: u64,
    startup_wait_ms: u64,
    request_ms: u64,
}

impl Default for RawTimeouts {
    fn default() -> Self {
        Self {
            idp_ms: 5_000,
            store_ms: 2_000,
            startup_wait_ms: 10_000,
            request_ms: 15_000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawRefresh {
    leeway_secs: u64,
    lock_ttl_ms: u64,
}

impl Default for RawRefresh {
    fn default() -> Self {
        Self {
            leeway_secs: 30,
            lock_ttl_ms: 10_000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawProvider {
    refresh_interval_secs: u64,
    jwks_min_refresh_secs: u64,
}

impl Default for RawProvider {
    fn default() -> Self {
        Self {
            refresh_interval_secs: 600,
            jwks_min_refresh_secs: 30,
        }
    }
}

// ---------------------------------------------------------------- validated settings

/// Everything about the identity provider and this client.
pub struct ProviderSettings {
    /// Issuer identifier, compared exactly (no normalisation).
    pub issuer: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: Zeroizing<String>,
    /// The exact redirect URI registered at the IdP.
    pub redirect_uri: Url,
    /// Scopes requested (always including `openid`).
    pub scopes: Vec<String>,
    /// More authorization-request parameters (`prompt`, `audience`, `access_type`...).
    pub extra_authorize_params: Vec<(String, String)>,
    /// Re-discovery period.
    pub refresh_interval: Duration,
    /// Least time between JWKS fetches triggered by unknown key ids.
    pub jwks_min_refresh: Duration,
    /// Timeout of each call to the IdP.
    pub timeout: Duration,
}

/// The filter's own endpoints (exact paths).
#[derive(Debug, Clone)]
pub struct Paths {
    /// Where the IdP redirects back (path of `redirect_uri`).
    pub callback: String,
    /// Local sign-out.
    pub logout: String,
    /// The "signed out" page.
    pub signed_out: String,
    /// Back-channel logout (POST from the IdP).
    pub backchannel: String,
}

/// Cookie attributes.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// Session cookie name.
    pub name: String,
    /// Prefix of per-flow cookie names.
    pub flow_prefix: String,
    /// `Secure` attribute.
    pub secure: bool,
    /// `SameSite` attribute.
    pub same_site: SameSite,
}

/// Where sessions are kept.
#[derive(Debug)]
pub enum StoreSettings {
    /// In this Envoy's memory.
    Memory {
        /// Most sessions kept.
        capacity: u64,
    },
    /// In Redis.
    Redis(session_store::RedisConfig),
}

/// Session lifetimes, keys, cache and store.
pub struct SessionSettings {
    /// Idle and absolute timeouts.
    pub lifetimes: Lifetimes,
    /// Keys (first seals).
    pub keys: Arc<KeyRing>,
    /// How long a session may be served from this process's cache.
    pub cache_ttl: Duration,
    /// Most sessions cached.
    pub cache_capacity: u64,
    /// The store.
    pub store: StoreSettings,
}

/// Requests let through without authentication.
#[derive(Debug, Default)]
pub struct PassThrough {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    methods: Vec<String>,
    prefix: Option<String>,
    regex: Option<Regex>,
}

impl PassThrough {
    /// True when no rule is configured (the common case: skip normalising the path).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a request (method, normalised path without query) passes unauthenticated.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.rules.iter().any(|r| {
            (r.methods.is_empty() || r.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
                && r.prefix.as_deref().is_none_or(|p| path.starts_with(p))
                && r.regex.as_ref().is_none_or(|re| re.is_match(path))
        })
    }
}

/// Which requests are API calls (401 instead of a redirect).
#[derive(Debug, Clone)]
pub struct ApiMatcher {
    /// Paths under these prefixes are API calls.
    pub path_prefixes: Vec<String>,
    /// `X-Requested-With` marks an API call.
    pub detect_xhr: bool,
    /// An `Accept` without `text/html` marks an API call.
    pub detect_accept: bool,
}

/// Identity headers sent upstream.
#[derive(Debug, Clone)]
pub struct HeaderSettings {
    /// Subject header.
    pub user: String,
    /// Email header.
    pub email: String,
    /// Groups header (comma-separated).
    pub groups: String,
    /// Preferred-username header.
    pub preferred_username: String,
    /// Extra claim → header mappings.
    pub claims: Vec<(String, String)>,
    /// Also send `authorization: Bearer <access token>`.
    pub access_token: bool,
}

impl HeaderSettings {
    /// Every header the filter may inject (all incoming copies are removed first).
    pub fn all(&self) -> impl Iterator<Item = &str> {
        [self.user.as_str(), &self.email, &self.groups, &self.preferred_username]
            .into_iter()
            .chain(self.claims.iter().map(|(_, h)| h.as_str()))
            .chain(self.access_token.then_some("authorization"))
    }
}

/// Who may pass once authenticated.
#[derive(Debug, Clone, Default)]
pub struct AuthzRules {
    /// Any of these groups (empty: no group rule).
    pub allowed_groups: Vec<String>,
    /// Any of these emails, exactly (case-insensitive).
    pub allowed_emails: Vec<String>,
    /// Any email in these domains.
    pub allowed_email_domains: Vec<String>,
    /// The claim holding groups.
    pub groups_claim: String,
}

/// Bearer-token validation for API clients.
#[derive(Debug, Clone)]
pub struct BearerSettings {
    /// On/off.
    pub enabled: bool,
    /// Accepted `aud` values (default: the client id).
    pub audiences: Vec<String>,
}

/// Time bounds.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Each store call.
    pub store: Duration,
    /// Waiting for discovery / the store at startup.
    pub startup_wait: Duration,
    /// A whole async request path (callback, refresh, load).
    pub request: Duration,
}

/// Refresh policy.
#[derive(Debug, Clone, Copy)]
pub struct RefreshSettings {
    /// Refresh when the access token expires within this.
    pub leeway: Duration,
    /// Cross-replica lock lifetime.
    pub lock_ttl: Duration,
}

/// The whole validated config.
pub struct Settings {
    /// IdP and client (shared with the provider handle).
    pub provider: Arc<ProviderSettings>,
    /// Our endpoints.
    pub paths: Paths,
    /// Cookies.
    pub cookie: CookieSettings,
    /// Sessions.
    pub session: SessionSettings,
    /// Unauthenticated pass-through.
    pub pass_through: PassThrough,
    /// API detection.
    pub api: ApiMatcher,
    /// Identity headers.
    pub headers: HeaderSettings,
    /// Authorization rules.
    pub authz: AuthzRules,
    /// Where to land after logout.
    pub post_logout_redirect_uri: Option<Url>,
    /// How to reach the IdP's end-session endpoint.
    pub end_session_method: EndSessionMethod,
    /// Bearer tokens.
    pub bearer: BearerSettings,
    /// Time bounds.
    pub timeouts: Timeouts,
    /// Refresh.
    pub refresh: RefreshSettings,
    /// In-flight bound of async work.
    pub max_in_flight: usize,
    /// Where the user goes for access logs.
    pub access_log_user: AccessLogUser,
    /// Error page templates.
    pub error_pages: ErrorPages,
}

/// A page or body template with `{{placeholders}}` (see `failure.rs`).
#[derive(Debug, Clone)]
pub struct Templates(String);

impl Templates {
    /// The template text.
    pub fn text(&self) -> &str {
        &self.0
    }

    fn load(field: &str, raw: Option<RawTemplate>, default: &str) -> Result<Self, ConfigError> {
        let text = match raw {
            None => return Ok(Self(default.to_owned())),
            Some(RawTemplate::Inline(t)) => t,
            Some(RawTemplate::File(p)) => {
                std::fs::read_to_string(&p).map_err(|e| err(field, format!("cannot read {p:?}: {e}")))?
            }
        };
        // A user who reports a problem needs the id that finds its log line.
        if !text.contains("{{trace_id}}") {
            return Err(err(field, "must contain {{trace_id}}"));
        }
        Ok(Self(text))
    }
}

/// The error replies' templates: a page for browsers, a body for API clients.
#[derive(Debug, Clone)]
pub struct ErrorPages {
    /// HTML page.
    pub html: Templates,
    /// JSON body.
    pub json: Templates,
}

impl Default for ErrorPages {
    fn default() -> Self {
        Self {
            html: Templates(crate::failure::DEFAULT_HTML.to_owned()),
            json: Templates(crate::failure::DEFAULT_JSON.to_owned()),
        }
    }
}

fn header_name(field: &str, v: &str) -> Result<String, ConfigError> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(v.to_owned())
    } else {
        Err(err(field, format!("{v:?} is not a lower-case header name")))
    }
}

/// Parameters the filter sets itself; letting config override them would undo PKCE,
/// state or nonce.
const RESERVED_AUTHORIZE_PARAMS: &[&str] = &[
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "request",
    "request_uri",
];

fn authorize_params(raw: BTreeMap<String, String>) -> Result<Vec<(String, String)>, ConfigError> {
    raw.into_iter()
        .map(|(k, v)| {
            let field = format!("extra_authorize_params.{k}");
            if k.is_empty() || RESERVED_AUTHORIZE_PARAMS.contains(&k.as_str()) {
                return Err(err(field, "is set by the filter itself (use `scopes` for scope)"));
            }
            Ok((k, v))
        })
        .collect()
}

fn abs_path(field: &str, v: &str) -> Result<String, ConfigError> {
    if v.starts_with('/') && !v.starts_with("//") && !v.contains('?') {
        Ok(v.to_owned())
    } else {
        Err(err(field, format!("{v:?} must be an absolute path without a query")))
    }
}

fn read_file(field: &str, path: &Option<String>) -> Result<Option<Vec<u8>>, ConfigError> {
    path.as_ref()
        .map(|p| std::fs::read(p).map_err(|e| err(field, format!("cannot read {p:?}: {e}"))))
        .transpose()
}

impl Settings {
    /// Parses and validates the JSON config.
    pub fn parse(json: &[u8]) -> Result<Self, ConfigError> {
        let raw: Raw = serde_json::from_slice(json).map_err(|e| err("config", e.to_string()))?;

        let issuer_url = Url::parse(&raw.issuer).map_err(|e| err("issuer", e.to_string()))?;
        if !matches!(issuer_url.scheme(), "https" | "http") || issuer_url.query().is_some() {
            return Err(err("issuer", "must be an http(s) URL without a query"));
        }
        if raw.client_id.is_empty() {
            return Err(err("client_id", "must not be empty"));
        }
        let client_secret = raw.client_secret.load().map_err(|e| err("client_secret", e))?;
        let redirect_uri = Url::parse(&raw.redirect_uri).map_err(|e| err("redirect_uri", e.to_string()))?;
        if redirect_uri.query().is_some() || redirect_uri.fragment().is_some() {
            return Err(err("redirect_uri", "must not have a query or fragment"));
        }
        let mut scopes = raw.scopes;
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        let extra_authorize_params = authorize_params(raw.extra_authorize_params)?;

        let paths = Paths {
            callback: redirect_uri.path().to_owned(),
            logout: abs_path("logout.path", &raw.logout.path)?,
            signed_out: abs_path("logout.signed_out_path", &raw.logout.signed_out_path)?,
            backchannel: abs_path("logout.backchannel_path", &raw.logout.backchannel_path)?,
        };

        let c = raw.cookie;
        if c.name.is_empty()
            || !c
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(err("cookie.name", "must be letters, digits, '_' or '-'"));
        }
        if (c.name.starts_with("__Host-") || c.name.starts_with("__Secure-")) && !c.secure {
            return Err(err("cookie.secure", "a __Host- or __Secure- cookie must be Secure"));
        }
        if c.same_site == SameSite::None && !c.secure {
            return Err(err("cookie.same_site", "SameSite=None requires Secure"));
        }
        let flow_prefix = if c.name.starts_with("__Host-") {
            "__Host-oidc_flow_"
        } else {
            "oidc_flow_"
        };
        let cookie = CookieSettings {
            flow_prefix: flow_prefix.into(),
            name: c.name,
            secure: c.secure,
            same_site: c.same_site,
        };

        let s = raw.session;
        if s.keys.is_empty() {
            return Err(err(
                "session.keys",
                "at least one key is required (32+ random bytes, base64)",
            ));
        }
        let mut key_texts = Vec::with_capacity(s.keys.len());
        for (i, k) in s.keys.iter().enumerate() {
            key_texts.push(k.load().map_err(|e| err(format!("session.keys[{i}]"), e))?);
        }
        let keys = KeyRing::from_base64(&key_texts.iter().map(|k| k.as_str()).collect::<Vec<_>>()).map_err(|e| {
            let field = match &e {
                session_store::KeyError::NotBase64 { index }
                | session_store::KeyError::TooShort { index, .. }
                | session_store::KeyError::Duplicate { index } => format!("session.keys[{index}]"),
                session_store::KeyError::Empty => "session.keys".into(),
            };
            err(field, e.to_string())
        })?;
        if s.idle_timeout_secs == 0 || s.absolute_timeout_secs == 0 {
            return Err(err("session", "timeouts must be positive"));
        }
        let store = match s.store {
            RawStore::Memory { capacity } => StoreSettings::Memory { capacity },
            RawStore::Redis {
                url,
                username,
                password,
                prefix,
                ca_file,
                client_cert_file,
                client_key_file,
            } => {
                let url = url.load().map_err(|e| err("session.store.redis.url", e))?;
                let mut parsed = Url::parse(&url).map_err(|e| err("session.store.redis.url", e.to_string()))?;
                if !matches!(parsed.scheme(), "redis" | "rediss") {
                    return Err(err("session.store.redis.url", "must be redis:// or rediss://"));
                }
                // Credentials from their own sources are percent-encoded into the URL
                // here, so a password with `@`, `:` or `/` needs no escaping by hand.
                if let Some(user) = username {
                    let user = user.load().map_err(|e| err("session.store.redis.username", e))?;
                    parsed
                        .set_username(&user)
                        .map_err(|()| err("session.store.redis.username", "cannot be set on this URL"))?;
                }
                if let Some(password) = password {
                    let password = password.load().map_err(|e| err("session.store.redis.password", e))?;
                    parsed
                        .set_password(Some(&password))
                        .map_err(|()| err("session.store.redis.password", "cannot be set on this URL"))?;
                }
                let url = Zeroizing::new(String::from(parsed));
                let tls = if ca_file.is_some() || client_cert_file.is_some() {
                    Some(session_store::RedisTls {
                        ca_pem: read_file("session.store.redis.ca_file", &ca_file)?,
                        client_cert_pem: read_file("session.store.redis.client_cert_file", &client_cert_file)?,
                        client_key_pem: read_file("session.store.redis.client_key_file", &client_key_file)?
                            .map(Zeroizing::new),
                    })
                } else {
                    None
                };
                let mut cfg = session_store::RedisConfig::new(url.as_str());
                cfg.prefix = prefix;
                cfg.tls = tls;
                cfg.timeout = Duration::from_millis(raw.timeouts.store_ms);
                StoreSettings::Redis(cfg)
            }
        };
        let session = SessionSettings {
            lifetimes: Lifetimes {
                absolute_secs: s.absolute_timeout_secs,
                idle_secs: s.idle_timeout_secs,
            },
            keys: Arc::new(keys),
            cache_ttl: Duration::from_secs(s.cache_ttl_secs.max(1)),
            cache_capacity: s.cache_capacity,
            store,
        };

        let mut rules = Vec::with_capacity(raw.pass_through.len());
        for (i, r) in raw.pass_through.into_iter().enumerate() {
            if r.path_prefix.is_none() && r.path_regex.is_none() {
                return Err(err(format!("pass_through[{i}]"), "needs path_prefix or path_regex"));
            }
            if let Some(p) = &r.path_prefix {
                abs_path(&format!("pass_through[{i}].path_prefix"), p)?;
            }
            let regex = r
                .path_regex
                .map(|re| Regex::new(&re).map_err(|e| err(format!("pass_through[{i}].path_regex"), e.to_string())))
                .transpose()?;
            rules.push(Rule {
                methods: r.methods,
                prefix: r.path_prefix,
                regex,
            });
        }

        let h = raw.headers;
        let mut claims = Vec::with_capacity(h.claims.len());
        for (claim, header) in h.claims {
            claims.push((claim.clone(), header_name(&format!("headers.claims.{claim}"), &header)?));
        }
        let headers = HeaderSettings {
            user: header_name("headers.user", &h.user)?,
            email: header_name("headers.email", &h.email)?,
            groups: header_name("headers.groups", &h.groups)?,
            preferred_username: header_name("headers.preferred_username", &h.preferred_username)?,
            claims,
            access_token: h.access_token,
        };

        let post_logout_redirect_uri = raw
            .logout
            .post_logout_redirect_uri
            .map(|u| Url::parse(&u).map_err(|e| err("logout.post_logout_redirect_uri", e.to_string())))
            .transpose()?;

        let bearer = BearerSettings {
            enabled: raw.bearer.enabled,
            audiences: if raw.bearer.audiences.is_empty() {
                vec![raw.client_id.clone()]
            } else {
                raw.bearer.audiences
            },
        };
        let t = raw.timeouts;
        if t.idp_ms == 0 || t.store_ms == 0 || t.request_ms == 0 {
            return Err(err("timeouts", "must be positive"));
        }
        if raw.max_in_flight == 0 {
            return Err(err("max_in_flight", "must be positive"));
        }
        Ok(Settings {
            provider: Arc::new(ProviderSettings {
                issuer: raw.issuer,
                client_id: raw.client_id,
                client_secret,
                redirect_uri,
                scopes,
                extra_authorize_params,
                refresh_interval: Duration::from_secs(raw.provider.refresh_interval_secs.max(10)),
                jwks_min_refresh: Duration::from_secs(raw.provider.jwks_min_refresh_secs),
                timeout: Duration::from_millis(t.idp_ms),
            }),
            paths,
            cookie,
            session,
            pass_through: PassThrough { rules },
            api: ApiMatcher {
                path_prefixes: raw.api.path_prefixes,
                detect_xhr: raw.api.detect_xhr,
                detect_accept: raw.api.detect_accept,
            },
            headers,
            authz: AuthzRules {
                allowed_groups: raw.authorization.allowed_groups,
                allowed_emails: raw
                    .authorization
                    .allowed_emails
                    .iter()
                    .map(|e| e.to_ascii_lowercase())
                    .collect(),
                allowed_email_domains: raw
                    .authorization
                    .allowed_email_domains
                    .iter()
                    .map(|d| d.trim_start_matches('@').to_ascii_lowercase())
                    .collect(),
                groups_claim: raw.authorization.groups_claim,
            },
            post_logout_redirect_uri,
            end_session_method: raw.logout.end_session_method,
            bearer,
            timeouts: Timeouts {
                store: Duration::from_millis(t.store_ms),
                startup_wait: Duration::from_millis(t.startup_wait_ms),
                request: Duration::from_millis(t.request_ms),
            },
            refresh: RefreshSettings {
                leeway: Duration::from_secs(raw.refresh.leeway_secs),
                lock_ttl: Duration::from_millis(raw.refresh.lock_ttl_ms.max(100)),
            },
            max_in_flight: raw.max_in_flight,
            access_log_user: raw.access_log_user,
            error_pages: ErrorPages {
                html: Templates::load("error_pages.html", raw.error_pages.html, crate::failure::DEFAULT_HTML)?,
                json: Templates::load("error_pages.json", raw.error_pages.json, crate::failure::DEFAULT_JSON)?,
            },
        })
    }
}

/// Per-route config: `{"disabled": true}` or `{"require_groups": ["admins"]}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteSettings {
    /// No authentication on this route.
    pub disabled: bool,
    /// Authenticated users must be in one of these groups.
    pub require_groups: Vec<String>,
}

impl RouteSettings {
    /// Parses the per-route JSON.
    pub fn parse(json: &[u8]) -> Result<Self, ConfigError> {
        serde_json::from_slice(json).map_err(|e| err("per_route", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "issuer": "https://idp.example",
            "client_id": "c",
            "client_secret": {"inline": "s"},
            "redirect_uri": "https://app.example/oauth2/callback",
            "session": {"keys": [{"inline": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}
        })
    }

    fn parse(v: serde_json::Value) -> Result<Settings, ConfigError> {
        Settings::parse(v.to_string().as_bytes())
    }

    #[test]
    fn minimal_config_gets_secure_defaults() {
        let s = parse(base()).expect("valid");
        assert_eq!(s.cookie.name, "__Host-oidc_session");
        assert!(s.cookie.secure);
        assert_eq!(s.cookie.same_site, SameSite::Lax);
        assert_eq!(s.paths.callback, "/oauth2/callback");
        assert_eq!(s.provider.scopes[0], "openid");
        assert!(s.pass_through.is_empty());
    }

    fn field_of(v: serde_json::Value) -> String {
        match parse(v) {
            Err(e) => e.field,
            Ok(_) => "accepted".into(),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let mut v = base();
        v["session"]["keys"] =
            serde_json::json!([{"inline": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}, {"inline": "c2hvcnQ"}]);
        assert_eq!(field_of(v), "session.keys[1]");
        let mut v = base();
        v["cookie"] = serde_json::json!({"secure": false});
        assert_eq!(field_of(v), "cookie.secure", "__Host- needs Secure");
        let mut v = base();
        v["pass_through"] = serde_json::json!([{"path_regex": "("}]);
        assert_eq!(field_of(v), "pass_through[0].path_regex");
        let mut v = base();
        v["headers"] = serde_json::json!({"user": "X Bad"});
        assert_eq!(field_of(v), "headers.user");
        let mut v = base();
        v["client_secret"] = serde_json::json!({"env": "SURELY_NOT_SET_ANYWHERE_42"});
        assert_eq!(field_of(v), "client_secret");
        let mut v = base();
        v["session"]["store"] = serde_json::json!({"redis": {"url": {"inline": "http://nope"}}});
        assert_eq!(field_of(v), "session.store.redis.url");
        let mut v = base();
        v["unknown_field"] = serde_json::json!(1);
        assert_eq!(field_of(v), "config", "unknown fields are rejected");
    }

    #[test]
    fn extra_authorize_params_may_not_replace_the_flow_parameters() {
        let mut v = base();
        v["extra_authorize_params"] = serde_json::json!({"prompt": "select_account", "audience": "https://api"});
        let s = parse(v).expect("valid");
        assert_eq!(
            s.provider.extra_authorize_params,
            vec![
                ("audience".into(), "https://api".into()),
                ("prompt".into(), "select_account".into())
            ]
        );
        for reserved in ["state", "nonce", "code_challenge", "redirect_uri", "scope", "client_id"] {
            let mut v = base();
            v["extra_authorize_params"] = serde_json::json!({reserved: "x"});
            assert_eq!(field_of(v), format!("extra_authorize_params.{reserved}"));
        }
    }

    #[test]
    fn redis_credentials_from_their_own_sources_are_encoded_into_the_url() {
        let mut v = base();
        v["session"]["store"] = serde_json::json!({"redis": {
            "url": {"inline": "redis://redis.example:6380/2"},
            "username": {"inline": "gateway"},
            "password": {"inline": "p@ss:w/rd#1"}
        }});
        let s = parse(v).expect("valid");
        let StoreSettings::Redis(cfg) = &s.session.store else {
            panic!("redis store expected")
        };
        assert_eq!(cfg.url, "redis://gateway:p%40ss%3Aw%2Frd%231@redis.example:6380/2");
        let mut v = base();
        v["session"]["store"] = serde_json::json!({"redis": {
            "url": {"inline": "redis://redis.example"}, "password": {"env": "SURELY_NOT_SET_ANYWHERE_43"}
        }});
        assert_eq!(field_of(v), "session.store.redis.password");
    }

    #[test]
    fn pass_through_matches_method_and_normalised_path_only() {
        let mut v = base();
        v["pass_through"] =
            serde_json::json!([{"methods": ["GET"], "path_prefix": "/health"}, {"path_regex": "^/static/"}]);
        let s = parse(v).expect("valid");
        let p = &s.pass_through;
        assert!(p.matches("GET", "/health"));
        assert!(!p.matches("POST", "/health"));
        assert!(p.matches("PUT", "/static/app.js"));
        assert!(!p.matches("GET", "/private"));
    }

    #[test]
    fn access_log_user_goes_where_configured() {
        use envoy_module::testing::FakeStream;
        use envoy_module::HttpStream;
        let mut s = FakeStream::default();
        AccessLogUser::DynamicMetadata.record(&mut s, "alice");
        assert_eq!(s.metadata("oidc", "user"), Some(&b"alice"[..]));
        let mut s = FakeStream::default();
        AccessLogUser::FilterState.record(&mut s, "alice");
        assert_eq!(s.filter_state("oidc.user"), Some(&b"alice"[..]));
        assert!(s.metadata.is_empty());
        let mut s = FakeStream::default();
        AccessLogUser::None.record(&mut s, "alice");
        assert!(s.metadata.is_empty() && s.filter_state.is_empty());
        let mut v = base();
        v["access_log_user"] = serde_json::json!("filter_state");
        assert_eq!(parse(v).expect("valid").access_log_user, AccessLogUser::FilterState);
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let shown = format!("{:?}", SecretSource::Inline("hunter2".into()));
        assert!(!shown.contains("hunter2"));
    }
}
