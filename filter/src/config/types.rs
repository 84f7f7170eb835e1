//! The validated config: grouped, immutable settings, built once by `super::parse`.

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use session_store::{KeyRing, Lifetimes};
use url::Url;

/// Where the signed-in user is recorded for access logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogUser {
    /// Dynamic metadata `oidc:user` (`%DYNAMIC_METADATA(oidc:user)%`). Envoy merges a
    /// protobuf Struct per request: the costliest call on the hot path.
    DynamicMetadata,
    /// Filter state `oidc.user` (`%FILTER_STATE(oidc.user:PLAIN)%`) (default): far cheaper.
    #[default]
    FilterState,
    /// Not recorded.
    None,
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

/// A client's own `Authorization` header on a request admitted by its session cookie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthorization {
    /// Removed (default): nothing unchecked that looks like a credential reaches the app.
    #[default]
    Strip,
    /// Passed on as sent (the app has its own scheme, e.g. Basic for a second factor).
    Keep,
}

/// What a sign-out request from another site (`Sec-Fetch-Site` other than
/// `same-origin`/`none`, or a foreign `Origin`) gets: it could be a forged link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrossSiteSignOut {
    /// A page asking the user to confirm (a same-origin POST) (default).
    #[default]
    Confirm,
    /// 403.
    Refuse,
}

/// Paths that still hide separators from route matching (`%2F`, `%5C`, `%2E%2E`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodedSeparators {
    /// 400 (default): a route rule for `/admin` cannot be walked around with
    /// `/public%2F..%2Fadmin` even where Envoy's own normalisation is off.
    #[default]
    Reject,
    /// Passed on (apps with encoded slashes in paths, where no rule depends on the path).
    Allow,
}

/// Signing out: where users land, and the back channel's freshness bound.
#[derive(Debug, Clone)]
pub struct SignOutSettings {
    /// Where to land after logout.
    pub post_logout_redirect_uri: Option<Url>,
    /// How to reach the IdP's end-session endpoint.
    pub end_session_method: EndSessionMethod,
    /// Oldest logout token accepted (its `iat`), and how long its `jti` is remembered.
    pub backchannel_max_age: Duration,
    /// Sign-out requests from other sites.
    pub cross_site: CrossSiteSignOut,
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
    /// Readiness probe.
    pub ready: String,
    /// The folder of the sign-out path (`/oauth2/`), where every other path is answered
    /// 404 by the filter; `None` when that folder is `/`.
    pub own_prefix: Option<String>,
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
    /// Most unfinished logins (flow cookies) a browser keeps; older ones are dropped.
    pub max_login_flows: usize,
    /// `Domain` of the session cookie, for single sign-on across subdomains (then the
    /// name cannot be `__Host-`); `None`: host-only.
    pub domain: Option<String>,
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
    Redis(Box<session_store::RedisConfig>),
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
    /// The rules; any one lets a request through.
    pub rules: Vec<Rule>,
}

/// One pass-through rule (all its parts must match).
#[derive(Debug)]
pub struct Rule {
    /// Methods (empty: any).
    pub methods: Vec<String>,
    /// Path prefix, on the normalised path.
    pub prefix: Option<String>,
    /// Regex, on the normalised path.
    pub regex: Option<Regex>,
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
    /// More trusted-identity headers removed from every request (names, or prefixes
    /// ending in `*`).
    pub strip_incoming: Vec<String>,
    /// The client's own `authorization` on a session-admitted request.
    pub client_authorization: ClientAuthorization,
    /// Most bytes of identity headers one user may produce (a session with thousands
    /// of groups is refused at login with a page saying so).
    pub max_bytes: usize,
    /// Pass on an email the IdP does not say is verified (`email_verified` not true).
    pub unverified_email: bool,
    /// The claim the user header carries (`sub`, `email`, `preferred_username`, `upn`...).
    pub user_claim: String,
    /// The first bytes (either case) of every name above and of `strip_incoming`: a header
    /// starting otherwise is none of them, without comparing names.
    pub first_bytes: [bool; 256],
}

impl HeaderSettings {
    /// Fills `first_bytes` from the names (after any change to them).
    pub fn index_first_bytes(&mut self) {
        let firsts: Vec<u8> = self
            .emitted()
            .chain(self.strip_incoming.iter().map(String::as_str))
            .filter_map(|n| n.bytes().next())
            .collect();
        self.first_bytes = [false; 256];
        for b in firsts {
            self.first_bytes[usize::from(b.to_ascii_lowercase())] = true;
            self.first_bytes[usize::from(b.to_ascii_uppercase())] = true;
        }
    }

    /// Every header the filter may inject (all incoming copies are removed first).
    pub fn emitted(&self) -> impl Iterator<Item = &str> {
        [self.user.as_str(), &self.email, &self.groups, &self.preferred_username]
            .into_iter()
            .chain(self.claims.iter().map(|(_, h)| h.as_str()))
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
    /// The claim holding groups (a key, or a dotted path such as `realm_access.roles`).
    pub groups_claim: String,
    /// Read Keycloak's full-path groups (`/admins`) without the leading slash.
    pub strip_group_slash: bool,
}

/// Bearer-token validation for API clients.
#[derive(Debug, Clone)]
pub struct BearerSettings {
    /// On/off.
    pub enabled: bool,
    /// Accepted `aud` values (default: the client id).
    pub audiences: Vec<String>,
    /// Clients whose tokens are accepted (`azp`/`client_id`); empty: any, except that a
    /// token for several audiences must name us.
    pub authorized_parties: Vec<String>,
    /// Only explicitly typed access tokens (`typ: at+jwt`, RFC 9068).
    pub require_at_jwt: bool,
    /// Opaque (non-JWT) access tokens asked about at the IdP (RFC 7662); `None`: refused.
    pub introspection: Option<IntrospectionSettings>,
}

/// RFC 7662 introspection of opaque bearer tokens.
#[derive(Debug, Clone)]
pub struct IntrospectionSettings {
    /// Longest an answer is reused (never past the token's `exp`).
    pub cache_ttl: Duration,
    /// Most answers cached.
    pub cache_capacity: u64,
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
    /// Fetch userinfo again at each refresh (claims follow the IdP even when it puts them
    /// only there).
    pub userinfo: bool,
}

/// The whole validated config.
pub struct Settings {
    /// IdP and client (shared with the provider handle).
    pub provider: Arc<super::ProviderSettings>,
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
    /// Sign-out.
    pub sign_out: SignOutSettings,
    /// Bearer tokens.
    pub bearer: BearerSettings,
    /// Time bounds.
    pub timeouts: Timeouts,
    /// Refresh.
    pub refresh: RefreshSettings,
    /// In-flight bound of async work.
    pub max_in_flight: usize,
    /// Code exchanges in flight past which callbacks get the busy page (login starts
    /// already at three quarters of it).
    pub max_logins_in_flight: usize,
    /// The module's async runtime (shared by the process: the first config decides).
    pub runtime: async_filter::RuntimeSettings,
    /// Where the user goes for access logs.
    pub access_log_user: AccessLogUser,
    /// Error page templates.
    pub error_pages: ErrorPages,
    /// Paths with encoded separators.
    pub encoded_separators: EncodedSeparators,
    /// Hosts (`host[:port]`, lower case) whose own redirect URI a login started there
    /// uses (the configured one's scheme and path); any other host uses `redirect_uri`.
    pub redirect_hosts: Vec<String>,
    /// Query parameters of the request passed on to the authorization request
    /// (`login_hint`, `ui_locales`...).
    pub authorize_passthrough: Vec<String>,
    /// The secrets read from files, followed for changes.
    pub secret_files: Arc<super::SecretFiles>,
}

/// A page or body template, split once at load into text and `{{placeholders}}` so a
/// reply is written in one pass (see `failure.rs`).
#[derive(Debug, Clone)]
pub struct Templates(Vec<TemplatePiece>);

/// A run of a template: text as written, or a value's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePiece {
    /// Copied as is.
    Text(String),
    /// Replaced by the value, escaped.
    Field(TemplateField),
}

/// The values a template may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateField {
    /// `{{status}}`: 503.
    Status,
    /// `{{reason}}`: the reason phrase.
    Reason,
    /// `{{message}}`: what the user is told.
    Message,
    /// `{{error}}`: the OAuth-style error code.
    Error,
    /// `{{error_description}}`: the stable reason label.
    ErrorDescription,
    /// `{{retry_url}}`: where "try again" goes.
    RetryUrl,
    /// `{{trace_id}}`: the id of the request's log line.
    TraceId,
}

impl TemplateField {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "status" => TemplateField::Status,
            "reason" => TemplateField::Reason,
            "message" => TemplateField::Message,
            "error" => TemplateField::Error,
            "error_description" => TemplateField::ErrorDescription,
            "retry_url" => TemplateField::RetryUrl,
            "trace_id" => TemplateField::TraceId,
            _ => return None,
        })
    }
}

impl Templates {
    /// Splits `text` at its known `{{placeholders}}`; unknown ones stay text.
    pub fn parse(text: &str) -> Self {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let field = after
                .find("}}")
                .and_then(|close| Some((TemplateField::named(&after[..close])?, close)));
            match field {
                Some((field, close)) => {
                    literal.push_str(&rest[..open]);
                    if !literal.is_empty() {
                        pieces.push(TemplatePiece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(TemplatePiece::Field(field));
                    rest = &after[close + 2..];
                }
                None => {
                    literal.push_str(&rest[..open + 2]);
                    rest = after;
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(TemplatePiece::Text(literal));
        }
        Self(pieces)
    }

    /// The runs, in order.
    pub fn pieces(&self) -> &[TemplatePiece] {
        &self.0
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
            html: Templates::parse(crate::failure::DEFAULT_HTML),
            json: Templates::parse(crate::failure::DEFAULT_JSON),
        }
    }
}
