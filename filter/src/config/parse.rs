//! From the raw shapes to the settings: one `TryFrom` per section, each error naming its
//! field; secrets and files are read here, once, at load.

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use session_store::{KeyRing, Lifetimes};
use url::Url;

use super::fields::{abs_path, passthrough};
use super::idp::provider;
use super::raw::{Raw, RawApi, RawAuthz, RawCookie, RawRule, RawSession};
use super::types::{
    ApiMatcher, AuthzRules, BearerSettings, CookieSettings, ErrorPages, HeaderSettings, IntrospectionSettings,
    PassThrough, Paths, RefreshSettings, Rule, SameSite, SessionSettings, Settings, SignOutSettings, StoreSettings,
    Timeouts,
};
use super::SecretFiles;
use super::{err, ConfigError};

impl Settings {
    /// Parses and validates the JSON config.
    pub fn parse(json: &[u8]) -> Result<Self, ConfigError> {
        let raw: Raw = serde_json::from_slice(json).map_err(|e| err("config", e.to_string()))?;
        Self::from_raw(raw)
    }

    /// Validates a config already read as JSON (one entry of `idps`, merged over the base).
    pub(super) fn from_value(json: serde_json::Value) -> Result<Self, ConfigError> {
        let raw: Raw = serde_json::from_value(json).map_err(|e| err("config", e.to_string()))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: Raw) -> Result<Self, ConfigError> {
        let provider = provider(&raw)?;
        let t = raw.timeouts;
        if t.idp_ms == 0 || t.store_ms == 0 || t.request_ms == 0 {
            return Err(err("timeouts", "must be positive"));
        }
        if raw.max_in_flight == 0 {
            return Err(err("max_in_flight", "must be positive"));
        }
        if raw.max_logins_in_flight < 4 {
            return Err(err("max_logins_in_flight", "must be at least 4"));
        }
        if !(1..=64).contains(&raw.runtime.threads) {
            return Err(err("runtime.threads", "must be 1 to 64"));
        }
        if !(0..=19).contains(&raw.runtime.nice) {
            return Err(err("runtime.nice", "must be 0 (as Envoy's workers) to 19 (lowest)"));
        }
        let logout = abs_path("logout.path", &raw.logout.path)?;
        let folder = &logout[..logout.rfind('/').map_or(1, |i| i + 1)];
        let paths = Paths {
            callback: provider.redirect_uri.path().to_owned(),
            own_prefix: (folder != "/").then(|| folder.to_owned()),
            logout,
            signed_out: abs_path("logout.signed_out_path", &raw.logout.signed_out_path)?,
            backchannel: abs_path("logout.backchannel_path", &raw.logout.backchannel_path)?,
            ready: abs_path("readiness_path", &raw.readiness_path)?,
        };
        let secret_files = SecretFiles::new(
            Duration::from_secs(raw.secret_reload_secs),
            raw.client_secret.as_ref(),
            &raw.client_auth,
            &raw.session.keys,
        );
        let mut session = SessionSettings::try_from(raw.session)?;
        if let StoreSettings::Redis(cfg) = &mut session.store {
            cfg.timeout = Duration::from_millis(t.store_ms);
        }
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
            authorized_parties: raw.bearer.authorized_parties,
            require_at_jwt: raw.bearer.require_at_jwt,
            introspection: raw.bearer.introspection.enabled.then(|| IntrospectionSettings {
                cache_ttl: Duration::from_secs(raw.bearer.introspection.cache_ttl_secs),
                cache_capacity: raw.bearer.introspection.cache_capacity,
            }),
        };
        if raw.logout.backchannel_max_age_secs == 0 {
            return Err(err("logout.backchannel_max_age_secs", "must be positive"));
        }
        let sign_out = SignOutSettings {
            post_logout_redirect_uri,
            end_session_method: raw.logout.end_session_method,
            backchannel_max_age: Duration::from_secs(raw.logout.backchannel_max_age_secs),
            cross_site: raw.logout.cross_site,
        };
        Ok(Settings {
            provider: Arc::new(provider),
            paths,
            cookie: CookieSettings::try_from(raw.cookie)?,
            session,
            pass_through: PassThrough::try_from(raw.pass_through)?,
            api: ApiMatcher::from(raw.api),
            headers: HeaderSettings::try_from(raw.headers)?,
            authz: AuthzRules::from(raw.authorization),
            sign_out,
            bearer,
            timeouts: Timeouts {
                store: Duration::from_millis(t.store_ms),
                startup_wait: Duration::from_millis(t.startup_wait_ms),
                request: Duration::from_millis(t.request_ms),
            },
            refresh: RefreshSettings {
                leeway: Duration::from_secs(raw.refresh.leeway_secs),
                lock_ttl: Duration::from_millis(raw.refresh.lock_ttl_ms.max(100)),
                userinfo: raw.refresh.userinfo,
            },
            max_in_flight: raw.max_in_flight,
            max_logins_in_flight: raw.max_logins_in_flight,
            runtime: async_filter::RuntimeSettings {
                threads: raw.runtime.threads,
                nice: raw.runtime.nice,
            },
            access_log_user: raw.access_log_user,
            error_pages: ErrorPages::try_from(raw.error_pages)?,
            encoded_separators: raw.encoded_separators,
            authorize_passthrough: passthrough(raw.authorize_passthrough)?,
            redirect_hosts: raw.redirect_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            secret_files: Arc::new(secret_files),
        })
    }
}

impl TryFrom<RawCookie> for CookieSettings {
    type Error = ConfigError;

    fn try_from(c: RawCookie) -> Result<Self, ConfigError> {
        let valid_name = !c.name.is_empty()
            && c.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(err("cookie.name", "must be letters, digits, '_' or '-'"));
        }
        if (c.name.starts_with("__Host-") || c.name.starts_with("__Secure-")) && !c.secure {
            return Err(err("cookie.secure", "a __Host- or __Secure- cookie must be Secure"));
        }
        if c.domain.is_some() && c.name.starts_with("__Host-") {
            return Err(err(
                "cookie.domain",
                "a __Host- cookie cannot have a Domain: rename it (e.g. __Secure-oidc_session)",
            ));
        }
        if c.max_login_flows == 0 {
            return Err(err("cookie.max_login_flows", "must be at least 1"));
        }
        if c.same_site == SameSite::None && !c.secure {
            return Err(err("cookie.same_site", "SameSite=None requires Secure"));
        }
        let flow_prefix = if c.name.starts_with("__Host-") {
            "__Host-oidc_flow_"
        } else {
            "oidc_flow_"
        };
        Ok(CookieSettings {
            flow_prefix: flow_prefix.into(),
            name: c.name,
            secure: c.secure,
            same_site: c.same_site,
            max_login_flows: c.max_login_flows,
            domain: c.domain,
        })
    }
}

/// The session key ring from its sources (at load, and when a key file changes).
pub(super) fn key_ring(sources: &[super::SecretSource]) -> Result<KeyRing, ConfigError> {
    let mut key_texts = Vec::with_capacity(sources.len());
    for (i, k) in sources.iter().enumerate() {
        key_texts.push(k.load().map_err(|e| err(format!("session.keys[{i}]"), e))?);
    }
    KeyRing::from_base64(&key_texts.iter().map(|k| k.as_str()).collect::<Vec<_>>()).map_err(|e| {
        let field = match &e {
            session_store::KeyError::NotBase64 { index }
            | session_store::KeyError::TooShort { index, .. }
            | session_store::KeyError::Duplicate { index } => format!("session.keys[{index}]"),
            session_store::KeyError::Empty => "session.keys".into(),
        };
        err(field, e.to_string())
    })
}

impl TryFrom<RawSession> for SessionSettings {
    type Error = ConfigError;

    fn try_from(s: RawSession) -> Result<Self, ConfigError> {
        if s.keys.is_empty() {
            return Err(err(
                "session.keys",
                "at least one key is required (32+ random bytes, base64)",
            ));
        }
        let keys = key_ring(&s.keys)?;
        if s.idle_timeout_secs == 0 || s.absolute_timeout_secs == 0 {
            return Err(err("session", "timeouts must be positive"));
        }
        Ok(SessionSettings {
            lifetimes: Lifetimes {
                absolute_secs: s.absolute_timeout_secs,
                idle_secs: s.idle_timeout_secs,
            },
            keys: Arc::new(keys),
            cache_ttl: Duration::from_secs(s.cache_ttl_secs.max(1)),
            cache_capacity: s.cache_capacity,
            store: StoreSettings::try_from(s.store)?,
        })
    }
}

impl TryFrom<Vec<RawRule>> for PassThrough {
    type Error = ConfigError;

    fn try_from(raw: Vec<RawRule>) -> Result<Self, ConfigError> {
        let mut rules = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
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
        Ok(PassThrough { rules })
    }
}

impl From<RawApi> for ApiMatcher {
    fn from(a: RawApi) -> Self {
        ApiMatcher {
            path_prefixes: a.path_prefixes,
            detect_xhr: a.detect_xhr,
            detect_accept: a.detect_accept,
        }
    }
}

impl From<RawAuthz> for AuthzRules {
    fn from(a: RawAuthz) -> Self {
        AuthzRules {
            allowed_groups: a.allowed_groups,
            allowed_emails: a.allowed_emails.iter().map(|e| e.to_ascii_lowercase()).collect(),
            allowed_email_domains: a
                .allowed_email_domains
                .iter()
                .map(|d| d.trim_start_matches('@').to_ascii_lowercase())
                .collect(),
            groups_claim: a.groups_claim,
            strip_group_slash: a.strip_group_slash,
        }
    }
}
