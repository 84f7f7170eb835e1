//! Claims from the verified ID token and userinfo, reduced to lists of strings.

use serde_json::{Map, Value};
use session_store::Claims;

use crate::config::Settings;

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

/// Which claims the filter keeps and how it reads them (built once per config).
#[derive(Debug)]
pub struct ClaimNames {
    /// Every kept claim: those turned into headers or checked in rules. A name is a key,
    /// or a dotted path into nested objects (`realm_access.roles`) when no key is named so.
    pub names: Vec<String>,
    /// The groups claim.
    pub groups: String,
    /// Keycloak's full-path groups (`/admins`) read as `admins`.
    pub strip_group_slash: bool,
}

/// The claims a config keeps.
pub fn wanted(settings: &Settings) -> std::sync::Arc<ClaimNames> {
    let mut names: Vec<String> = ["email", "email_verified", "preferred_username", "name"]
        .map(String::from)
        .to_vec();
    names.push(settings.authz.groups_claim.clone());
    if settings.headers.user_claim != "sub" {
        names.push(settings.headers.user_claim.clone());
    }
    names.extend(settings.headers.claims.iter().map(|(c, _)| c.clone()));
    std::sync::Arc::new(ClaimNames {
        names,
        groups: settings.authz.groups_claim.clone(),
        strip_group_slash: settings.authz.strip_group_slash,
    })
}

/// A claim by name: the key itself (namespaced claims such as
/// `https://example.com/groups` have dots), else a dotted path (`resource_access.app.roles`).
pub fn lookup<'a>(source: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    source.get(name).or_else(|| {
        let mut parts = name.split('.');
        let first = source.get(parts.next()?)?;
        parts.try_fold(first, |v, key| v.get(key))
    })
}

impl ClaimNames {
    /// A claim's values as kept.
    fn values(&self, name: &str, v: &Value) -> Vec<String> {
        let values = strings(v);
        if self.strip_group_slash && name == self.groups {
            values
                .into_iter()
                .map(|g| g.strip_prefix('/').map(str::to_owned).unwrap_or(g))
                .collect()
        } else {
            values
        }
    }
}

/// The kept claims from `sources`; a later source (userinfo) wins over an earlier one.
pub fn select(wanted: &ClaimNames, sources: &[&Map<String, Value>]) -> Claims {
    let mut claims = Claims::default();
    for name in wanted.names.iter().map(String::as_str) {
        if let Some(v) = sources.iter().rev().find_map(|s| lookup(s, name)) {
            let values = wanted.values(name, v);
            if !values.is_empty() {
                claims.insert(name, values);
            }
        }
    }
    claims
}

/// Entra ID's group overage: too many groups to list, only a pointer (`_claim_names`)
/// to where they are. Treating that as "no groups" would silently lock admins out or,
/// worse, let rules see a partial picture; the login is refused, saying why.
pub fn groups_overage(wanted: &ClaimNames, claims: &Claims, sources: &[&Map<String, Value>]) -> bool {
    claims.get(&wanted.groups).is_none()
        && sources
            .iter()
            .any(|s| s.get("_claim_names").and_then(|n| n.get(&wanted.groups)).is_some())
}

/// The first kept claim whose values cannot go into a header or a log line (control
/// characters: CR/LF would forge headers and log lines, others break Envoy's codec).
pub fn unusable(claims: &Claims) -> Option<&str> {
    claims.names().find(|n| {
        claims
            .get(n)
            .is_some_and(|vs| vs.iter().any(|v| v.chars().any(char::is_control)))
    })
}

/// `base` with every kept claim `source` names replaced by its value there (removed when
/// it names it empty): a userinfo answer after a refresh that brought no ID token.
pub fn overlay(wanted: &ClaimNames, base: &Claims, source: &Map<String, Value>) -> Claims {
    let mut out = base.clone();
    for name in wanted.names.iter() {
        let Some(v) = lookup(source, name) else { continue };
        let values = wanted.values(name, v);
        if values.is_empty() {
            out.remove(name);
        } else {
            out.insert(name.as_str(), values);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_unusable() {
        let mut c = Claims::default();
        c.insert("email", vec!["a@example.com".into()]);
        assert_eq!(unusable(&c), None);
        c.insert("groups", vec!["ok".into(), "evil\r\nx-admin: 1".into()]);
        assert_eq!(unusable(&c), Some("groups"));
    }

    #[test]
    fn overlay_replaces_and_removes_what_the_source_names() {
        let wanted = ClaimNames {
            names: vec!["email".into(), "groups".into()],
            groups: "groups".into(),
            strip_group_slash: false,
        };
        let mut base = Claims::default();
        base.insert("email", vec!["a@x".into()]);
        base.insert("groups", vec!["admins".into()]);
        let info = serde_json::json!({"sub": "a", "groups": []});
        let out = overlay(&wanted, &base, info.as_object().expect("object"));
        assert_eq!(out.get("groups"), None, "removed from every group");
        assert_eq!(out.first("email"), Some("a@x"), "not named: kept");
    }

    #[test]
    fn paths_keys_and_keycloak_groups() {
        let token = serde_json::json!({
            "realm_access": {"roles": ["admins", "users"]},
            "https://example.com/groups": ["/admins", "/ops/oncall"],
        });
        let token = token.as_object().expect("object");
        assert_eq!(
            lookup(token, "realm_access.roles").map(strings),
            Some(vec!["admins".into(), "users".into()])
        );
        assert!(lookup(token, "realm_access.nothing").is_none());
        let names = ClaimNames {
            names: vec!["https://example.com/groups".into()],
            groups: "https://example.com/groups".into(),
            strip_group_slash: true,
        };
        let c = select(&names, &[token]);
        assert_eq!(
            c.get("https://example.com/groups"),
            Some(&["admins".to_owned(), "ops/oncall".into()][..])
        );
    }

    #[test]
    fn lists_and_scalars() {
        assert_eq!(strings(&serde_json::json!(["a", "b"])), vec!["a", "b"]);
        assert_eq!(strings(&serde_json::json!(true)), vec!["true"]);
        assert!(strings(&serde_json::json!({"x": 1})).is_empty());
    }
}
