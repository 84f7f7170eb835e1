//! What real IdPs send, reproduced by a second OP (oauth2-mock-server, `vendor-op.mjs`)
//! and sent through the real Envoy: each test is one vendor's day-one behaviour.

mod support;

use serde_json::json;
use support::{seen, Browser, VendorSetup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_login_at_the_second_op() {
    let setup = VendorSetup::start(json!({}), json!({})).await;
    let pages = setup.login(&Browser::new(), "/hello").await;
    let s = seen(&pages);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
    assert_eq!(s.path(), "/hello");
}

/// JumpCloud, Apple, Cognito: `email_verified: "true"`; Auth0 (default `profile` scope):
/// `updated_at` as RFC 3339; Entra v1: `expires_in: "3599"`. None of it is security
/// relevant, so none of it may break a login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sloppy_but_harmless_claims_and_token_fields_log_in() {
    let setup = VendorSetup::start(
        json!({
            "id_token": {"email": "jd@example.com", "email_verified": "true", "updated_at": "2026-11-01T10:00:00.000Z"},
            "userinfo": {"email": "jd@example.com", "email_verified": "true", "updated_at": "2026-11-01T10:00:00.000Z"},
            "token_response": {"expires_in": "3599"}
        }),
        json!({}),
    )
    .await;
    let pages = setup.login(&Browser::new(), "/").await;
    let s = seen(&pages);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
    assert_eq!(s.header("x-auth-request-email").as_deref(), Some("jd@example.com"));
}

/// The email header comes only from a verified email (unless configured otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_emails_are_not_passed_on() {
    let profile = json!({"id_token": {"email": "ceo@example.com", "email_verified": false}});
    let setup = VendorSetup::start(profile.clone(), json!({})).await;
    let s = seen(&setup.login(&Browser::new(), "/").await);
    assert_eq!(s.header("x-auth-request-email"), None);
    let lax = VendorSetup::start(profile, json!({"headers": {"unverified_email": true}})).await;
    let s = seen(&lax.login(&Browser::new(), "/").await);
    assert_eq!(s.header("x-auth-request-email").as_deref(), Some("ceo@example.com"));
}

/// Keycloak with its EdDSA provider publishes an X25519 key; others publish encryption
/// keys or key types we do not know. Those keys are skipped; the rest still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_we_cannot_use_are_skipped_not_fatal() {
    let extra = json!([
        {"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"},
        {"kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": "X9dEm1m0Yf0s54fsYWrUah2hNCSFpw4fig6nXYDpZ3jt8SR2m0bHBhvWeD3x5Q9s0foavq_oJWGA"},
        {"kty": "RSA", "use": "enc", "kid": "enc-1", "alg": "RSA-OAEP", "e": "AQAB", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"},
        {"kty": "QUANTUM", "kid": "future"}
    ]);
    let setup = VendorSetup::start(json!({"jwks_extra": extra}), json!({})).await;
    let s = seen(&setup.login(&Browser::new(), "/").await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
    assert!(
        setup.envoy.log().contains("skipped"),
        "one log line names what was skipped"
    );
}

/// The IdP signs with a new key: the callback fetches the keys again (once, rate
/// limited) instead of failing logins until the next periodic discovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_signing_key_at_the_callback_is_fetched() {
    let setup = VendorSetup::start(json!({}), json!({})).await;
    let before = setup.op.calls().await["jwks"].as_u64().expect("count");
    setup.op.behave(json!({"rotate_key": true})).await;
    let s = seen(&setup.login(&Browser::new(), "/").await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
    let after = setup.op.calls().await["jwks"].as_u64().expect("count");
    assert_eq!(after, before + 1, "one fetch for the unknown kid");
}

/// Step 3 of OIDC Core §3.1.3.7: an ID token for us and others (Auth0 with an API
/// audience, Entra with a resource) is valid only when the others are trusted, and names
/// us as `azp`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_audiences_need_azp_us_and_trust() {
    let profile = json!({"id_token": {"aud": [support::CLIENT_ID, "https://api.example"], "azp": support::CLIENT_ID}});
    let strict = VendorSetup::start(profile.clone(), json!({})).await;
    let pages = strict.login(&Browser::new(), "/").await;
    let last = pages.last().expect("page");
    assert_eq!(last.status, 502, "an untrusted audience: {}", last.body);
    assert!(strict.envoy.log().contains("is not trusted"), "the log says why");
    let trusting = VendorSetup::start(profile, json!({"trusted_audiences": ["https://api.example"]})).await;
    let s = seen(&trusting.login(&Browser::new(), "/").await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
}

/// An issuer configured with a trailing slash the IdP does not use (or the reverse): one
/// clear log line naming both values, and requests get a quick 503 page, not a wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_a_slash_apart_is_named_in_the_log() {
    let op = support::VendorOp::start().await;
    let configured = format!("{}/", op.issuer);
    let setup = support::VendorSetup::start_at(op, &configured, json!({}), false).await;
    let logged = support::eventually(std::time::Duration::from_secs(5), || async {
        let log = setup.envoy.log();
        log.contains(&format!("{:?}", setup.op.issuer)) && log.contains(&format!("{configured:?}"))
    })
    .await;
    assert!(logged, "both issuers named:\n{}", setup.envoy.log());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let started = std::time::Instant::now();
    let page = &Browser::new().navigate(&setup.url("/")).await[0];
    assert_eq!(page.status, 503);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

/// An access token living less than the refresh leeway (20 s against 30 s): refreshed
/// once it is past half its life, not on every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_access_tokens_are_not_refreshed_on_every_request() {
    let setup = VendorSetup::start(json!({"token_response": {"expires_in": 20}}), json!({})).await;
    let b = Browser::new();
    seen(&setup.login(&b, "/").await);
    for _ in 0..5 {
        seen(&b.navigate(&setup.url("/again")).await);
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    }
    let refreshes = setup.op.calls().await["refresh"].as_u64().expect("count");
    assert_eq!(refreshes, 0, "5 requests within the first half of the token's life");
}

/// Claims follow the IdP: a user removed from `admins` loses the header and `/admin` at
/// the next refresh (bounded by half the access token's life), not at the next login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_follow_the_idp_at_each_refresh() {
    let admin = json!({"groups": ["admins"]});
    let setup = VendorSetup::start(
        json!({"id_token": admin, "userinfo": admin, "token_response": {"expires_in": 4}}),
        json!({}),
    )
    .await;
    let b = Browser::new();
    seen(&setup.login(&b, "/").await);
    assert_eq!(b.navigate(&setup.url("/admin/panel")).await[0].status, 200);
    let none = json!({"groups": []});
    setup
        .op
        .behave(json!({"id_token": none, "userinfo": none, "token_response": {"expires_in": 4}}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let page = &b.navigate(&setup.url("/admin/panel")).await[0];
    assert_eq!(page.status, 403, "removed from admins at the IdP");
    assert!(setup.op.calls().await["refresh"].as_u64().expect("count") >= 1);
}

async fn last_auth(setup: &VendorSetup) -> serde_json::Value {
    setup.op.calls().await
}

/// Client authentication: Basic with the id and secret form-encoded first (a secret with
/// reserved characters arrives intact at IdPs that decode it), the form when configured
/// or when discovery lists only that, and a signed assertion (RFC 7523).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_authentication_methods() {
    let secret = "a:b%c+d/e";
    let basic = VendorSetup::start(json!({}), json!({"client_secret": {"inline": secret}})).await;
    seen(&basic.login(&Browser::new(), "/").await);
    let calls = last_auth(&basic).await;
    assert_eq!(calls["last_auth"], "client_secret_basic");
    assert_eq!(calls["last_basic"], format!("{}:a%3Ab%25c%2Bd%2Fe", support::CLIENT_ID));

    let post = VendorSetup::start(json!({}), json!({"client_auth": {"method": "client_secret_post"}})).await;
    seen(&post.login(&Browser::new(), "/").await);
    assert_eq!(last_auth(&post).await["last_auth"], "client_secret_post");

    let listed = json!({"discovery": {"token_endpoint_auth_methods_supported": ["client_secret_post"]}});
    let auto = VendorSetup::start(listed, json!({})).await;
    seen(&auto.login(&Browser::new(), "/").await);
    assert_eq!(
        last_auth(&auto).await["last_auth"],
        "client_secret_post",
        "auto follows discovery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_signs_a_fresh_assertion_for_the_token_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("client.pem");
    let (first, second) = (rsa_key(dir.path(), "first"), rsa_key(dir.path(), "second"));
    std::fs::copy(first.join("key.pem"), &key).expect("key in place");
    let extra = json!({"client_secret": null, "client_auth": {"method": "private_key_jwt",
        "private_key": {"file": key.display().to_string()}, "key_id": "gw-1"}, "secret_reload_secs": 1});
    let setup = VendorSetup::start(json!({}), extra).await;
    seen(&setup.login(&Browser::new(), "/").await);
    let calls = last_auth(&setup).await;
    assert_eq!(calls["last_auth"], "private_key_jwt");
    let assertion = calls["last_assertion"].as_str().expect("assertion");
    let header = jsonwebtoken::decode_header(assertion).expect("header");
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (jsonwebtoken::Algorithm::RS256, Some("gw-1"))
    );
    let claims =
        verify_assertion(assertion, &first, &setup.op.issuer).expect("signed by our key, for the token endpoint");
    assert_eq!(claims["sub"], support::CLIENT_ID);
    assert!(claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat") <= 60);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));

    // The key file replaced (a rotation): the next assertion is signed with the new key.
    let tmp = dir.path().join("client.pem.tmp");
    std::fs::copy(second.join("key.pem"), &tmp).expect("copy");
    std::fs::rename(&tmp, &key).expect("swap");
    let taken = support::eventually(std::time::Duration::from_secs(5), || async {
        setup.envoy.log().contains("the new value is in force")
    })
    .await;
    assert!(taken, "{}", setup.envoy.log());
    seen(&setup.login(&Browser::new(), "/").await);
    let calls = last_auth(&setup).await;
    let assertion = calls["last_assertion"].as_str().expect("assertion");
    assert!(
        verify_assertion(assertion, &second, &setup.op.issuer).is_ok(),
        "the new key signs"
    );
    assert!(
        verify_assertion(assertion, &first, &setup.op.issuer).is_err(),
        "not the old one"
    );
}

/// An RSA key pair (`key.pem`, `pub.pem`) in `dir/name`.
fn rsa_key(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let out = dir.join(name);
    std::fs::create_dir_all(&out).expect("dir");
    let openssl = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(&out)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl")
            .success()
    };
    assert!(openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "key.pem"
    ]));
    assert!(openssl(&["pkey", "-pubout", "-in", "key.pem", "-out", "pub.pem"]));
    out
}

/// The claims of a client assertion checked with the public key in `pair`.
fn verify_assertion(
    assertion: &str,
    pair: &std::path::Path,
    issuer: &str,
) -> Result<serde_json::Value, jsonwebtoken::errors::Error> {
    let pem = std::fs::read(pair.join("pub.pem")).expect("public key");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[format!("{issuer}/token")]);
    v.set_issuer(&[support::CLIENT_ID]);
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(&pem).expect("pem");
    jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &v).map(|d| d.claims)
}

/// An IdP behind an internal CA: without its CA the log names the TLS cause (not just
/// "error sending request"); with `provider.ca_file` logins work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_behind_a_private_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    testkit::make_certs(dir.path());
    let op = support::VendorOp::start_tls(dir.path()).await;
    assert!(op.issuer.starts_with("https://"));
    let untrusted = support::VendorSetup::start_at(op, "", json!({}), false).await;
    let named = support::eventually(std::time::Duration::from_secs(5), || async {
        let log = untrusted.envoy.log();
        log.contains("discovery failed") && log.contains("UnknownIssuer")
    })
    .await;
    assert!(named, "the TLS cause in the log:\n{}", untrusted.envoy.log());
    let op = support::VendorOp::start_tls(dir.path()).await;
    let ca = dir.path().join("ca.pem").display().to_string();
    let trusted = support::VendorSetup::start_at(op, "", json!({"provider": {"ca_file": ca}}), true).await;
    let s = seen(&trusted.login(&Browser::new(), "/").await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
}

/// Keycloak: roles nested in `realm_access.roles`, groups as full paths (`/admins`); the
/// user header from another claim (`preferred_username`, Entra's `upn`...).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_mapping_nested_paths_full_path_groups_and_the_user_claim() {
    let nested = VendorSetup::start(
        json!({"id_token": {"realm_access": {"roles": ["admins", "offline_access"]}, "upn": "jd@corp.example"}}),
        json!({"authorization": {"groups_claim": "realm_access.roles"}, "headers": {"user_claim": "upn"}}),
    )
    .await;
    let b = Browser::new();
    let s = seen(&nested.login(&b, "/").await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("jd@corp.example"));
    assert_eq!(
        s.header("x-auth-request-groups").as_deref(),
        Some("admins,offline_access")
    );
    assert_eq!(
        b.navigate(&nested.url("/admin/x")).await[0].status,
        200,
        "rules read the same path"
    );

    let paths = VendorSetup::start(
        json!({"id_token": {"groups": ["/admins", "/ops/oncall"]}}),
        json!({"authorization": {"strip_group_slash": true}}),
    )
    .await;
    let b = Browser::new();
    let s = seen(&paths.login(&b, "/").await);
    assert_eq!(s.header("x-auth-request-groups").as_deref(), Some("admins,ops/oncall"));
    assert_eq!(b.navigate(&paths.url("/admin/x")).await[0].status, 200);

    let missing = VendorSetup::start(json!({}), json!({"headers": {"user_claim": "upn"}})).await;
    let pages = missing.login(&Browser::new(), "/").await;
    assert_eq!(
        pages.last().expect("page").status,
        502,
        "no upn: refused, not a user named by sub"
    );
}

/// Entra ID's group overage (`_claim_names`): refused with a page saying why, never read
/// as "no groups".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_group_overage_is_refused_with_the_reason() {
    let setup = VendorSetup::start(
        json!({"id_token": {"_claim_names": {"groups": "src1"},
                            "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}}}}),
        json!({}),
    )
    .await;
    let pages = setup.login(&Browser::new(), "/").await;
    let last = pages.last().expect("page");
    assert_eq!(last.status, 403);
    assert!(last.body.contains("too many groups"), "{}", last.body);
    assert!(setup.envoy.log().contains("groups_overage"));
}

/// Userinfo as a JWT the IdP signed (`application/jwt`): verified, then used; one signed
/// with another key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_userinfo_is_verified_and_used() {
    let op = support::VendorOp::start().await;
    let jwt_userinfo = format!("{}/__test/userinfo-jwt", op.issuer);
    op.behave(json!({"discovery": {"userinfo_endpoint": jwt_userinfo}, "userinfo": {"groups": ["admins"]}}))
        .await;
    let setup = support::VendorSetup::start_at(op, "", json!({}), true).await;
    let s = seen(&setup.login(&Browser::new(), "/").await);
    assert_eq!(
        s.header("x-auth-request-groups").as_deref(),
        Some("admins"),
        "claims from the signed answer"
    );
    // Another audience in the signed answer: refused (the IdP's fault, 502).
    let jwt_userinfo = format!("{}/__test/userinfo-jwt", setup.op.issuer);
    setup
        .op
        .behave(json!({"discovery": {"userinfo_endpoint": jwt_userinfo}, "userinfo": {"aud": "someone-else"}}))
        .await;
    let pages = setup.login(&Browser::new(), "/").await;
    assert_eq!(pages.last().expect("page").status, 502);
}

/// Entra with an API scope: userinfo refuses the access token. The ID token's claims are
/// used (a log line says so), or the login fails when configured so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_refusing_the_token_falls_back_to_the_id_token() {
    let profile = json!({"id_token": {"preferred_username": "jd"}, "userinfo_status": 401,
                         "userinfo": {"error": "invalid_token"}});
    let lenient = VendorSetup::start(profile.clone(), json!({})).await;
    let s = seen(&lenient.login(&Browser::new(), "/").await);
    assert_eq!(s.header("x-auth-request-preferred-username").as_deref(), Some("jd"));
    assert!(lenient.envoy.log().contains("using the ID token's claims"));
    let strict = VendorSetup::start(profile, json!({"provider": {"userinfo_required": true}})).await;
    let pages = strict.login(&Browser::new(), "/").await;
    assert_eq!(pages.last().expect("page").status, 502);
}

/// Entra ID multi-tenant (`/common/v2.0`, `{tenantid}` in discovery's issuer): ID tokens
/// of the allowed tenants only, their `tid` the tenant their `iss` names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_multi_tenant_with_an_allow_list() {
    let op = support::VendorOp::start().await;
    let base = op.issuer.clone();
    let common = format!("{base}/common/v2.0");
    let tenant = |t: &str, tid: &str| json!({"id_token": {"iss": format!("{base}/{t}/v2.0"), "tid": tid}});
    op.behave(tenant("t1", "t1")).await;
    let setup = support::VendorSetup::start_at(op, &common, json!({"provider": {"tenants": ["t1"]}}), true).await;
    let s = seen(&setup.login(&Browser::new(), "/").await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
    for (what, profile) in [
        ("a tenant not allowed", tenant("t2", "t2")),
        ("tid of another tenant", tenant("t1", "t2")),
    ] {
        setup.op.behave(profile).await;
        let pages = setup.login(&Browser::new(), "/").await;
        assert_eq!(pages.last().expect("page").status, 502, "{what}");
    }
}

/// `tls_client_auth` (RFC 8705): no secret and no assertion at the token endpoint (the
/// connection's client certificate is the credential; this OP does not ask for one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_auth_sends_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    testkit::make_certs(dir.path());
    let op = support::VendorOp::start_tls(dir.path()).await;
    let path = |f: &str| dir.path().join(f).display().to_string();
    let extra = json!({"client_secret": null, "client_auth": {"method": "tls_client_auth"},
        "provider": {"ca_file": path("ca.pem"), "client_cert_file": path("client.pem"),
                     "client_key": {"file": path("client.key")}}});
    let setup = support::VendorSetup::start_at(op, "", extra, true).await;
    seen(&setup.login(&Browser::new(), "/").await);
    assert_eq!(last_auth(&setup).await["last_auth"], "none");
}

/// Several IdPs in one filter config (the oauth2-proxy request since 2020): the default
/// (oidc-provider) on 127.0.0.1, the second OP for `localhost` (by host) and for `/staff`
/// (by route). Each IdP discovers on its own, and a browser holds one session per IdP:
/// each route gets the user of its own IdP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_idps_by_host_and_by_route() {
    let op = support::VendorOp::start().await;
    let setup = support::Setup::start(support::Options {
        extra: json!({"idps": [
            {"name": "vendor", "hosts": ["${ALIAS_HOST}"], "issuer": op.issuer,
             "redirect_uri": "${ALIAS}/oauth2/callback"},
            {"name": "staff", "issuer": op.issuer, "redirect_uri": "${BASE}/oauth2/staff/callback",
             "logout": {"path": "/oauth2/staff/sign_out", "backchannel_path": "/oauth2/staff/backchannel"}},
        ]}),
        envoy_yaml: |y| {
            y.replace(
                "              - match: {prefix: \"/\"}\n",
                concat!(
                    "              - match: {path_separated_prefix: \"/staff\"}\n",
                    "                route: {cluster: app}\n",
                    "                typed_per_filter_config:\n",
                    "                  oidc:\n",
                    "                    \"@type\": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute\n",
                    "                    dynamic_module_config: {name: envoy_oidc, do_not_close: true}\n",
                    "                    filter_name: oidc\n",
                    "                    filter_config:\n",
                    "                      \"@type\": type.googleapis.com/google.protobuf.Struct\n",
                    "                      value: {idp: staff}\n",
                    "              - match: {prefix: \"/\"}\n",
                ),
            )
        },
        ..support::Options::default()
    })
    .await;
    let port = setup.envoy().port;
    let b = Browser::new();
    let s = seen(&b.login(&setup.url("/app"), "alice").await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("alice"), "default IdP");

    let pages = b.navigate(&format!("http://localhost:{port}/app")).await;
    assert!(
        pages[0].location().expect("to an IdP").as_str().starts_with(&op.issuer),
        "by host: the second OP"
    );
    assert_eq!(seen(&pages).header("x-auth-request-user").as_deref(), Some("johndoe"));

    let pages = b.navigate(&setup.url("/staff/reports")).await;
    let auth = pages[0].location().expect("to an IdP");
    assert!(auth.as_str().starts_with(&op.issuer), "by route: the second OP");
    assert!(auth.as_str().contains("staff%2Fcallback"), "{auth}");
    let s = seen(&pages);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
    assert_eq!(s.path(), "/staff/reports");

    // Both sessions live side by side on 127.0.0.1; neither leaks into the other's routes
    // or reaches the app.
    let s = seen(&b.navigate(&setup.url("/app")).await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("alice"));
    assert_eq!(s.header("cookie"), None, "no IdP's cookie upstream");
    let s = seen(&b.navigate(&setup.url("/staff/again")).await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
    assert_eq!(
        op.calls().await["token"].as_u64(),
        Some(2),
        "one code exchange per IdP login"
    );
    let all_three = support::eventually(std::time::Duration::from_secs(5), || async {
        setup.envoy().log().matches("identity provider discovered").count() == 3
    })
    .await;
    assert!(all_three, "each IdP discovered once:\n{}", setup.envoy().log());
}

/// Writes `value` to `path` the way a Kubernetes secret volume does: a whole new file
/// swapped in, never a half-written one.
fn swap_file(path: &std::path::Path, value: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, value).expect("write");
    std::fs::rename(&tmp, path).expect("swap");
}

/// Secrets follow their files without restarting Envoy: a new client secret is used at
/// the next token call; session keys rotate (new first, old kept: sessions live on; old
/// dropped: its sessions end); a file that cannot be used keeps the value in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_follow_their_files() {
    use base64::Engine;
    let key = |seed: u8| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([seed; 32]);
    let dir = tempfile::tempdir().expect("dir");
    let (secret, current, previous) = (
        dir.path().join("client-secret"),
        dir.path().join("key-current"),
        dir.path().join("key-previous"),
    );
    swap_file(&secret, "first-secret\n");
    swap_file(&current, &key(1));
    swap_file(&previous, &key(0));
    let setup = VendorSetup::start(
        json!({}),
        json!({
            "client_secret": {"inline": null, "file": secret},
            "client_auth": {"method": "client_secret_basic"},
            "session": {"keys": [{"file": current}, {"file": previous}]},
            "secret_reload_secs": 1,
        }),
    )
    .await;
    let in_force = |n: usize| {
        let envoy = &setup.envoy;
        async move {
            support::eventually(std::time::Duration::from_secs(5), || async {
                envoy.log().matches("the new value is in force").count() >= n
            })
            .await
        }
    };
    let old = Browser::new();
    seen(&old.login(&setup.url("/"), "/").await);
    let basic = setup.op.calls().await["last_basic"].clone();
    assert_eq!(basic, format!("{}:first-secret", support::CLIENT_ID));

    // A new client secret, and the session keys rotated with the old one kept.
    swap_file(&secret, "second-secret\n");
    swap_file(&current, &key(2));
    swap_file(&previous, &key(1));
    assert!(in_force(2).await, "both changes taken up:\n{}", setup.envoy.log());
    let s = seen(&old.navigate(&setup.url("/still")).await);
    assert_eq!(
        s.header("x-auth-request-user").as_deref(),
        Some("johndoe"),
        "old session lives on"
    );
    let new = Browser::new();
    seen(&new.login(&setup.url("/"), "/").await);
    let basic = setup.op.calls().await["last_basic"].clone();
    assert_eq!(
        basic,
        format!("{}:second-secret", support::CLIENT_ID),
        "the new secret is used"
    );

    // A broken key file changes nothing.
    swap_file(&previous, "not a key");
    let refused = support::eventually(std::time::Duration::from_secs(5), || async {
        setup.envoy.log().contains("cannot be used; keeping the previous value")
    })
    .await;
    assert!(refused, "{}", setup.envoy.log());
    let s = seen(&old.navigate(&setup.url("/still")).await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));

    // The old key dropped: sessions sealed under it end; the new key's stay.
    swap_file(&previous, &key(3));
    assert!(in_force(3).await, "{}", setup.envoy.log());
    let pages = old.navigate(&setup.url("/again")).await;
    assert!(
        pages[0]
            .location()
            .is_some_and(|l| l.as_str().starts_with(&setup.op.issuer)),
        "sent to log in again: {}",
        pages[0].status
    );
    let s = seen(&new.navigate(&setup.url("/again")).await);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some("johndoe"));
}
