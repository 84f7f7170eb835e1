//! The IdP recipes of `docs/idps/`: every config accepted by the real Envoy and the
//! filter as written; the Keycloak and Dex recipes used for a login against OPs that send
//! what those IdPs send.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use support::{demo_yaml_with_block, eventually, free_port, seen, Browser, Echo, Envoy, Idp, IdpClient, VendorOp};

const RECIPES: [&str; 8] = [
    "keycloak", "entra-id", "google", "okta", "auth0", "cognito", "dex", "gitlab",
];
const SECRET: &str = "recipe-client-secret";

fn recipes_dir() -> PathBuf {
    testkit::workspace().join("docs/idps")
}

/// The secret files where the recipes (and the Helm chart) expect them, under `dir`.
fn secrets(dir: &Path) {
    std::fs::create_dir_all(dir.join("client")).expect("dir");
    std::fs::create_dir_all(dir.join("session")).expect("dir");
    std::fs::write(dir.join("client/client-secret"), format!("{SECRET}\n")).expect("secret");
    std::fs::write(dir.join("session/session-key"), support::SESSION_KEY).expect("key");
}

/// A recipe's config with its secrets under `dir` and, for each `(from, to)`, its
/// placeholders pointed at the test's servers.
fn recipe(name: &str, dir: &Path, replace: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(recipes_dir().join(format!("{name}.yaml"))).expect("recipe");
    text = text.replace("/etc/envoy-oidc/", &format!("{}/", dir.display()));
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    text
}

#[test]
fn every_recipe_is_accepted_by_envoy_and_the_filter() {
    let dir = tempfile::tempdir().expect("dir");
    secrets(dir.path());
    let index = std::fs::read_to_string(recipes_dir().join("README.md")).expect("index");
    let module = testkit::envoy::module_dir("envoy_oidc");
    for name in RECIPES {
        assert!(recipes_dir().join(format!("{name}.md")).exists(), "{name}.md");
        assert!(index.contains(&format!("({name}.yaml)")), "{name} in the index");
        let yaml = demo_yaml_with_block("http://127.0.0.1:10000", &recipe(name, dir.path(), &[]), 10001);
        let (ok, out) = testkit::envoy::validate(&yaml, &module);
        assert!(
            ok,
            "{name}: {}",
            out.lines()
                .filter(|l| l.contains("oidc"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let files = std::fs::read_dir(recipes_dir()).expect("dir").count();
    assert_eq!(files, 1 + 2 * RECIPES.len(), "every recipe here is checked");

    // The check can fail: a recipe missing its client id is refused, naming the field.
    let broken = recipe("keycloak", dir.path(), &[("client_id: envoy-oidc\n", "")]);
    let (ok, out) = testkit::envoy::validate(&demo_yaml_with_block("http://127.0.0.1:10000", &broken, 10001), &module);
    assert!(!ok && out.contains("client_id"), "{out}");
}

/// Envoy on `base` with a recipe's config in front of a fresh echo app, once the IdP is
/// discovered.
async fn gateway(base: &str, config: &str) -> (Envoy, Echo) {
    let echo = Echo::start().await;
    let yaml = demo_yaml_with_block(base, config, echo.port);
    let envoy = Envoy::start(&testkit::envoy::module_dir("envoy_oidc"), move |_| yaml).await;
    let discovered = eventually(Duration::from_secs(10), || async {
        envoy.log().contains("identity provider discovered")
    })
    .await;
    assert!(discovered, "{}", envoy.log());
    (envoy, echo)
}

/// The Keycloak recipe against an OP sending what Keycloak sends: full-path groups from
/// the group-membership mapper, `preferred_username`, and an X25519 key in the JWKS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keycloak_recipe_logs_in() {
    let op = VendorOp::start().await;
    let claims = json!({"preferred_username": "alice.k", "groups": ["/admins", "/ops/oncall"],
        "email": "alice@example.com", "email_verified": true, "realm_access": {"roles": ["offline_access"]}});
    op.behave(json!({"id_token": claims, "userinfo": claims, "jwks_extra": [
        {"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"}]}))
        .await;
    let dir = tempfile::tempdir().expect("dir");
    secrets(dir.path());
    let base = format!("http://127.0.0.1:{}", free_port());
    let config = recipe(
        "keycloak",
        dir.path(),
        &[
            ("https://keycloak.example.com/realms/apps", &op.issuer),
            ("https://app.example.com", &base),
        ],
    );
    let (_envoy, _echo) = gateway(&base, &config).await;
    let s = seen(&Browser::new().navigate(&format!("{base}/reports")).await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("alice.k"));
    assert_eq!(s.header("x-auth-request-groups").as_deref(), Some("admins,ops/oncall"));
    assert_eq!(s.header("x-auth-request-email").as_deref(), Some("alice@example.com"));
    let calls = op.calls().await;
    assert_eq!(
        calls["last_basic"],
        format!("envoy-oidc:{SECRET}"),
        "the secret from the file the chart mounts"
    );
}

/// The Dex recipe against oidc-provider (OpenID Certified), which sends what Dex sends
/// for these scopes: `groups`, `email` with `email_verified`, refresh tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dex_recipe_logs_in() {
    let base = format!("http://127.0.0.1:{}", free_port());
    let idp = Idp::start(
        &[IdpClient {
            client_id: "envoy-oidc".into(),
            client_secret: SECRET.into(),
            redirect_uris: vec![format!("{base}/oauth2/callback")],
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
        }],
        3600,
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    secrets(dir.path());
    let config = recipe(
        "dex",
        dir.path(),
        &[
            ("https://dex.example.com/dex", &idp.issuer),
            ("https://app.example.com", &base),
        ],
    );
    let (_envoy, _echo) = gateway(&base, &config).await;
    let s = seen(&Browser::new().login(&format!("{base}/reports"), "alice").await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("alice"));
    assert_eq!(s.header("x-auth-request-groups").as_deref(), Some("admins"));
}
