//! Several identity providers in one filter config. `idps` lists them: each entry is the
//! base config with the entry's top-level fields in place of the base's (a field given
//! replaces the base's whole, sections included), chosen by host (`hosts`) or per route
//! (`idp`). Each gets its own discovery, keys and sessions: its own cookie names, and its
//! own Redis key prefix unless it sets one.

use serde_json::Value;

use super::types::{Settings, StoreSettings};
use super::{err, ConfigError};

/// The name of the base config's IdP (routes name it to opt out of a host's IdP).
pub const DEFAULT_IDP: &str = "default";

/// One identity provider of the filter config, validated.
pub struct IdpConfig {
    /// [`DEFAULT_IDP`] for the base config, else the entry's `name`.
    pub name: String,
    /// Hosts (`host[:port]`, lower case) whose requests it serves; empty: chosen per
    /// route only (or, for the default, every other request).
    pub hosts: Vec<String>,
    /// Its settings.
    pub settings: Settings,
}

/// Parses the filter config: the default IdP first, then each of `idps`, checked against
/// one another (names, hosts, cookies and paths that must not be shared).
pub fn parse_all(json: &[u8]) -> Result<Vec<IdpConfig>, ConfigError> {
    let mut base: Value = serde_json::from_slice(json).map_err(|e| err("config", e.to_string()))?;
    let Some(entries) = base.as_object_mut().and_then(|o| o.remove("idps")) else {
        // The common case keeps serde's line and column in its errors.
        return Ok(vec![IdpConfig {
            name: DEFAULT_IDP.into(),
            hosts: Vec::new(),
            settings: Settings::parse(json)?,
        }]);
    };
    let Value::Array(entries) = entries else {
        return Err(err("idps", "must be a list"));
    };
    let default = Settings::from_value(base.clone())?;
    let mut all = vec![IdpConfig {
        name: DEFAULT_IDP.into(),
        hosts: Vec::new(),
        settings: default,
    }];
    for (i, entry) in entries.into_iter().enumerate() {
        let idp = entry_config(&base, entry).map_err(|e| ConfigError {
            field: format!("idps[{i}].{}", e.field),
            reason: e.reason,
        })?;
        all.push(idp);
    }
    check_apart(&all)?;
    Ok(all)
}

/// One `idps` entry merged over the base, with its own cookie names and key prefix.
fn entry_config(base: &Value, entry: Value) -> Result<IdpConfig, ConfigError> {
    let Value::Object(mut entry) = entry else {
        return Err(err("", "must be an object"));
    };
    let name = match entry.remove("name") {
        Some(Value::String(n)) => n,
        _ => return Err(err("name", "required (letters, digits and '-')")),
    };
    let valid = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid || name == DEFAULT_IDP {
        return Err(err(
            "name",
            format!("{name:?}: 1 to 32 lower-case letters, digits or '-', not {DEFAULT_IDP:?}"),
        ));
    }
    let hosts = match entry.remove("hosts") {
        None => Vec::new(),
        Some(v) => serde_json::from_value::<Vec<String>>(v)
            .map_err(|e| err("hosts", e.to_string()))?
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
    };
    if hosts.iter().any(|h| h.is_empty() || h.contains(['/', ' ', ','])) {
        return Err(err("hosts", "each must be host[:port]"));
    }
    let own_cookie = entry.get("cookie").is_some_and(|c| c.get("name").is_some());
    let own_prefix = entry
        .get("session")
        .is_some_and(|s| s.pointer("/store/redis/prefix").is_some());
    let mut merged = base.clone();
    if let Value::Object(m) = &mut merged {
        m.extend(entry);
    }
    let mut settings = Settings::from_value(merged)?;
    let cookie = &mut settings.cookie;
    let host_only = if cookie.name.starts_with("__Host-") {
        "__Host-"
    } else {
        ""
    };
    if !own_cookie {
        // `__Host-oidc_session` becomes `__Host-partners-oidc_session`.
        let (secure_prefix, rest) = split_cookie_prefix(&cookie.name);
        cookie.name = format!("{secure_prefix}{name}-{rest}");
    }
    // Never a prefix of another IdP's: names have no '_'.
    cookie.flow_prefix = format!("{host_only}{name}-oidc_flow_");
    if let StoreSettings::Redis(cfg) = &mut settings.session.store {
        if !own_prefix {
            cfg.prefix = format!("{}{name}:", cfg.prefix);
        }
    }
    Ok(IdpConfig { name, hosts, settings })
}

/// `__Host-`/`__Secure-` and the rest of a cookie name.
fn split_cookie_prefix(name: &str) -> (&str, &str) {
    for p in ["__Host-", "__Secure-"] {
        if let Some(rest) = name.strip_prefix(p) {
            return (p, rest);
        }
    }
    ("", name)
}

/// What several IdPs must not share: a name, a host, a cookie; and, for an IdP chosen per
/// route (no hosts), the paths its callback, sign-out and back channel are found by.
fn check_apart(all: &[IdpConfig]) -> Result<(), ConfigError> {
    for (i, a) in all.iter().enumerate() {
        let field = |f: &str| {
            if i == 0 {
                f.to_owned()
            } else {
                format!("idps[{}].{f}", i - 1)
            }
        };
        for (j, b) in all[..i].iter().enumerate() {
            if a.name == b.name {
                return Err(err(field("name"), format!("{:?} is used twice", a.name)));
            }
            if let Some(h) = a.hosts.iter().find(|h| b.hosts.contains(h)) {
                return Err(err(field("hosts"), format!("{h:?} is also {:?}'s", b.name)));
            }
            let (ca, cb) = (&a.settings.cookie, &b.settings.cookie);
            if ca.name == cb.name || ca.name.starts_with(&cb.flow_prefix) || cb.name.starts_with(&ca.flow_prefix) {
                return Err(err(
                    field("cookie.name"),
                    format!("{:?} would be read as {:?}'s cookie", ca.name, b.name),
                ));
            }
            let per_route = |k: usize, c: &IdpConfig| k > 0 && c.hosts.is_empty();
            if per_route(i, a) || per_route(j, b) {
                let theirs = own_paths(&b.settings);
                let named = ["redirect_uri", "logout.path", "logout.backchannel_path"];
                if let Some((p, f)) = own_paths(&a.settings)
                    .into_iter()
                    .zip(named)
                    .find(|(p, _)| theirs.contains(p))
                {
                    return Err(err(
                        field(f),
                        format!(
                            "path {p:?} is also {:?}'s: an IdP chosen per route needs its own callback, \
                             logout and back-channel paths",
                            b.name
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The paths that reach an IdP from any route.
pub fn own_paths(s: &Settings) -> [&str; 3] {
    [&s.paths.callback, &s.paths.logout, &s.paths.backchannel]
}
