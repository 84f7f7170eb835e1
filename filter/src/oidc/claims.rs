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

/// The names of the claims the filter keeps: those it turns into headers or checks in
/// rules (built once per config).
pub fn wanted(settings: &Settings) -> std::sync::Arc<[String]> {
    let mut names: Vec<String> = ["email", "email_verified", "preferred_username", "name"]
        .map(String::from)
        .to_vec();
    names.push(settings.authz.groups_claim.clone());
    names.extend(settings.headers.claims.iter().map(|(c, _)| c.clone()));
    names.into()
}

/// The kept claims from `sources`; a later source (userinfo) wins over an earlier one.
pub fn select(wanted: &[String], sources: &[&Map<String, Value>]) -> Claims {
    let mut claims = Claims::default();
    for name in wanted.iter().map(String::as_str) {
        // Later sources (userinfo) win over earlier ones (ID token).
        if let Some(v) = sources.iter().rev().find_map(|s| s.get(name)) {
            let values = strings(v);
            if !values.is_empty() {
                claims.insert(name, values);
            }
        }
    }
    claims
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
pub fn overlay(wanted: &[String], base: &Claims, source: &Map<String, Value>) -> Claims {
    let mut out = base.clone();
    for name in wanted.iter().filter(|n| source.contains_key(n.as_str())) {
        let values = source.get(name).map(strings).unwrap_or_default();
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
        let wanted: Vec<String> = vec!["email".into(), "groups".into()];
        let mut base = Claims::default();
        base.insert("email", vec!["a@x".into()]);
        base.insert("groups", vec!["admins".into()]);
        let info = serde_json::json!({"sub": "a", "groups": []});
        let out = overlay(&wanted, &base, info.as_object().expect("object"));
        assert_eq!(out.get("groups"), None, "removed from every group");
        assert_eq!(out.first("email"), Some("a@x"), "not named: kept");
    }

    #[test]
    fn lists_and_scalars() {
        assert_eq!(strings(&serde_json::json!(["a", "b"])), vec!["a", "b"]);
        assert_eq!(strings(&serde_json::json!(true)), vec!["true"]);
        assert!(strings(&serde_json::json!({"x": 1})).is_empty());
    }
}
