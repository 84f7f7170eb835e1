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

/// The claims the filter keeps: those it turns into headers or checks in rules.
pub fn select(settings: &Settings, sources: &[&Map<String, Value>]) -> Claims {
    let mut wanted: Vec<&str> = vec![
        "email",
        "email_verified",
        "preferred_username",
        "name",
        &settings.authz.groups_claim,
    ];
    wanted.extend(settings.headers.claims.iter().map(|(c, _)| c.as_str()));
    let mut claims = Claims::default();
    for name in wanted {
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
    fn lists_and_scalars() {
        assert_eq!(strings(&serde_json::json!(["a", "b"])), vec!["a", "b"]);
        assert_eq!(strings(&serde_json::json!(true)), vec!["true"]);
        assert!(strings(&serde_json::json!({"x": 1})).is_empty());
    }
}
