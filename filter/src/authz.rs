//! Authorization rules: who may pass once authenticated.

use session_store::Claims;

use crate::config::AuthzRules;

/// The login-time rules: allowed groups, emails and email domains (each rule that is
/// configured must be met).
pub fn allowed_at_login(rules: &AuthzRules, claims: &Claims) -> bool {
    if !rules.allowed_groups.is_empty() && !in_any_group(claims, &rules.groups_claim, &rules.allowed_groups) {
        return false;
    }
    if rules.allowed_emails.is_empty() && rules.allowed_email_domains.is_empty() {
        return true;
    }
    // An unverified address proves nothing about who the user is.
    if claims.first("email_verified") == Some("false") {
        return false;
    }
    let Some(email) = claims.first("email").map(str::to_ascii_lowercase) else {
        return false;
    };
    let domain = email.rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap_or_default();
    rules.allowed_emails.contains(&email) || rules.allowed_email_domains.contains(&domain)
}

/// Whether the user is in at least one of `groups`.
pub fn in_any_group(claims: &Claims, groups_claim: &str, groups: &[String]) -> bool {
    claims
        .get(groups_claim)
        .is_some_and(|have| have.iter().any(|g| groups.contains(g)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(email: &str, verified: &str, groups: &[&str]) -> Claims {
        let mut c = Claims::default();
        c.insert("email", vec![email.into()]);
        c.insert("email_verified", vec![verified.into()]);
        c.insert("groups", groups.iter().map(|g| (*g).to_owned()).collect());
        c
    }

    fn rules() -> AuthzRules {
        AuthzRules {
            groups_claim: "groups".into(),
            ..AuthzRules::default()
        }
    }

    #[test]
    fn no_rules_allow_everyone() {
        assert!(allowed_at_login(&rules(), &claims("a@x.org", "true", &[])));
    }

    #[test]
    fn groups_rule() {
        let r = AuthzRules {
            allowed_groups: vec!["admins".into()],
            ..rules()
        };
        assert!(allowed_at_login(&r, &claims("a@x.org", "true", &["admins", "dev"])));
        assert!(!allowed_at_login(&r, &claims("b@x.org", "true", &["dev"])));
        assert!(!allowed_at_login(&r, &Claims::default()));
    }

    #[test]
    fn email_and_domain_rules() {
        let r = AuthzRules {
            allowed_emails: vec!["boss@y.org".into()],
            allowed_email_domains: vec!["x.org".into()],
            ..rules()
        };
        assert!(allowed_at_login(&r, &claims("Alice@X.org", "true", &[])));
        assert!(allowed_at_login(&r, &claims("boss@y.org", "true", &[])));
        assert!(!allowed_at_login(&r, &claims("eve@y.org", "true", &[])));
        assert!(!allowed_at_login(&r, &claims("alice@x.org.evil.com", "true", &[])));
        assert!(
            !allowed_at_login(&r, &claims("alice@x.org", "false", &[])),
            "unverified email"
        );
    }
}
