//! The config as it is written: serde shapes with their defaults, unknown fields refused.
//! Nothing here is validated; `super::parse` turns each section into its settings.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::idp::{RawClientAuth, RawProvider};
use super::secret::SecretSource;
use super::store::{default_cache_capacity, RawStore};
use super::types::{
    AccessLogUser, ClientAuthorization, CrossSiteSignOut, EncodedSeparators, EndSessionMethod, SameSite,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub(super) issuer: String,
    pub(super) client_id: String,
    #[serde(default)]
    pub(super) client_secret: Option<SecretSource>,
    #[serde(default)]
    pub(super) client_auth: RawClientAuth,
    pub(super) redirect_uri: String,
    #[serde(default = "default_scopes")]
    pub(super) scopes: Vec<String>,
    #[serde(default)]
    pub(super) extra_authorize_params: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) trusted_audiences: Vec<String>,
    #[serde(default)]
    pub(super) cookie: RawCookie,
    pub(super) session: RawSession,
    #[serde(default)]
    pub(super) pass_through: Vec<RawRule>,
    #[serde(default)]
    pub(super) api: RawApi,
    #[serde(default)]
    pub(super) headers: RawHeaders,
    #[serde(default)]
    pub(super) authorization: RawAuthz,
    #[serde(default)]
    pub(super) logout: RawLogout,
    #[serde(default)]
    pub(super) bearer: RawBearer,
    #[serde(default)]
    pub(super) timeouts: RawTimeouts,
    #[serde(default)]
    pub(super) refresh: RawRefresh,
    #[serde(default)]
    pub(super) provider: RawProvider,
    #[serde(default = "default_max_in_flight")]
    pub(super) max_in_flight: usize,
    #[serde(default)]
    pub(super) access_log_user: AccessLogUser,
    #[serde(default)]
    pub(super) error_pages: RawErrorPages,
    #[serde(default)]
    pub(super) encoded_separators: EncodedSeparators,
    #[serde(default = "default_readiness_path")]
    pub(super) readiness_path: String,
    #[serde(default)]
    pub(super) authorize_passthrough: Vec<String>,
    #[serde(default)]
    pub(super) redirect_hosts: Vec<String>,
    #[serde(default = "default_secret_reload_secs")]
    pub(super) secret_reload_secs: u64,
    #[serde(default = "default_max_logins_in_flight")]
    pub(super) max_logins_in_flight: usize,
    #[serde(default)]
    pub(super) runtime: RawRuntime,
}

pub(super) fn default_max_logins_in_flight() -> usize {
    256
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRuntime {
    pub(super) threads: usize,
    pub(super) nice: i32,
}

impl Default for RawRuntime {
    fn default() -> Self {
        let d = async_filter::RuntimeSettings::default();
        Self {
            threads: d.threads,
            nice: d.nice,
        }
    }
}

pub(super) fn default_secret_reload_secs() -> u64 {
    30
}

pub(super) fn default_readiness_path() -> String {
    "/oauth2/ready".into()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawErrorPages {
    pub(super) html: Option<RawTemplate>,
    pub(super) json: Option<RawTemplate>,
}

/// A template's text: in the config, or in a file read at load.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum RawTemplate {
    Inline(String),
    File(String),
}

pub(super) fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}
pub(super) fn default_max_in_flight() -> usize {
    10_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCookie {
    pub(super) name: String,
    pub(super) secure: bool,
    pub(super) same_site: SameSite,
    pub(super) max_login_flows: usize,
    pub(super) domain: Option<String>,
}

impl Default for RawCookie {
    fn default() -> Self {
        Self {
            name: "__Host-oidc_session".into(),
            secure: true,
            same_site: SameSite::Lax,
            max_login_flows: 3,
            domain: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    pub(super) keys: Vec<SecretSource>,
    #[serde(default = "default_idle")]
    pub(super) idle_timeout_secs: u64,
    #[serde(default = "default_absolute")]
    pub(super) absolute_timeout_secs: u64,
    #[serde(default = "default_cache_ttl")]
    pub(super) cache_ttl_secs: u64,
    #[serde(default = "default_cache_capacity")]
    pub(super) cache_capacity: u64,
    #[serde(default)]
    pub(super) store: RawStore,
}

pub(super) fn default_idle() -> u64 {
    8 * 3600
}
pub(super) fn default_absolute() -> u64 {
    24 * 3600
}
pub(super) fn default_cache_ttl() -> u64 {
    60
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    #[serde(default)]
    pub(super) methods: Vec<String>,
    #[serde(default)]
    pub(super) path_prefix: Option<String>,
    #[serde(default)]
    pub(super) path_regex: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawApi {
    pub(super) path_prefixes: Vec<String>,
    pub(super) detect_xhr: bool,
    pub(super) detect_accept: bool,
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
pub(super) struct RawHeaders {
    pub(super) user: String,
    pub(super) email: String,
    pub(super) groups: String,
    pub(super) preferred_username: String,
    pub(super) claims: BTreeMap<String, String>,
    pub(super) access_token: bool,
    pub(super) strip_incoming: Vec<String>,
    pub(super) client_authorization: ClientAuthorization,
    pub(super) max_bytes: usize,
    pub(super) unverified_email: bool,
    pub(super) user_claim: String,
}

/// Identity headers other gateways and apps trust (oauth2-proxy, Apache, Envoy's own
/// conventions): removed from every request, whatever this filter is set to emit.
pub(super) fn default_strip_incoming() -> Vec<String> {
    [
        "x-auth-request-*",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-forwarded-access-token",
        "x-remote-user",
        "x-remote-group",
        "remote-user",
        "remote-groups",
    ]
    .map(String::from)
    .to_vec()
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
            strip_incoming: default_strip_incoming(),
            client_authorization: ClientAuthorization::Strip,
            max_bytes: 16 * 1024,
            unverified_email: false,
            user_claim: "sub".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAuthz {
    pub(super) allowed_groups: Vec<String>,
    pub(super) allowed_emails: Vec<String>,
    pub(super) allowed_email_domains: Vec<String>,
    pub(super) groups_claim: String,
    pub(super) strip_group_slash: bool,
}

impl Default for RawAuthz {
    fn default() -> Self {
        Self {
            allowed_groups: Vec::new(),
            allowed_emails: Vec::new(),
            allowed_email_domains: Vec::new(),
            groups_claim: "groups".into(),
            strip_group_slash: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLogout {
    pub(super) path: String,
    pub(super) signed_out_path: String,
    pub(super) post_logout_redirect_uri: Option<String>,
    pub(super) backchannel_path: String,
    pub(super) end_session_method: EndSessionMethod,
    pub(super) backchannel_max_age_secs: u64,
    pub(super) cross_site: CrossSiteSignOut,
}

impl Default for RawLogout {
    fn default() -> Self {
        Self {
            path: "/oauth2/sign_out".into(),
            signed_out_path: "/oauth2/signed_out".into(),
            post_logout_redirect_uri: None,
            backchannel_path: "/oauth2/backchannel_logout".into(),
            end_session_method: EndSessionMethod::Post,
            backchannel_max_age_secs: 120,
            cross_site: CrossSiteSignOut::Confirm,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBearer {
    pub(super) enabled: bool,
    pub(super) audiences: Vec<String>,
    pub(super) authorized_parties: Vec<String>,
    pub(super) require_at_jwt: bool,
    pub(super) introspection: RawIntrospection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawIntrospection {
    pub(super) enabled: bool,
    pub(super) cache_ttl_secs: u64,
    pub(super) cache_capacity: u64,
}

impl Default for RawIntrospection {
    fn default() -> Self {
        Self {
            enabled: false,
            cache_ttl_secs: 60,
            cache_capacity: 10_000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTimeouts {
    pub(super) idp_ms: u64,
    pub(super) store_ms: u64,
    pub(super) startup_wait_ms: u64,
    pub(super) request_ms: u64,
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
pub(super) struct RawRefresh {
    pub(super) leeway_secs: u64,
    pub(super) lock_ttl_ms: u64,
    pub(super) userinfo: bool,
}

impl Default for RawRefresh {
    fn default() -> Self {
        Self {
            leeway_secs: 30,
            lock_ttl_ms: 10_000,
            userinfo: true,
        }
    }
}
