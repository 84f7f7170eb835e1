//! Config parsing: defaults, field-named errors, sections.

use super::*;
use crate::config::types::AccessLogUser;
use session_store::RedisTarget;
use std::time::Duration;

fn base() -> serde_json::Value {
    serde_json::json!({
        "issuer": "https://idp.example",
        "client_id": "c",
        "client_secret": {"inline": "s"},
        "redirect_uri": "https://app.example/oauth2/callback",
        "session": {"keys": [{"inline": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}
    })
}

fn parse(v: serde_json::Value) -> Result<Settings, ConfigError> {
    Settings::parse(v.to_string().as_bytes())
}

#[test]
fn minimal_config_gets_secure_defaults() {
    let s = parse(base()).expect("valid");
    assert_eq!(s.cookie.name, "__Host-oidc_session");
    assert!(s.cookie.secure);
    assert_eq!(s.cookie.same_site, SameSite::Lax);
    assert_eq!(s.paths.callback, "/oauth2/callback");
    assert_eq!(s.provider.scopes[0], "openid");
    assert!(s.pass_through.is_empty());
    assert_eq!(s.cookie.max_login_flows, 3);
    assert_eq!(s.paths.own_prefix.as_deref(), Some("/oauth2/"));
    assert_eq!(s.headers.client_authorization, ClientAuthorization::Strip);
    assert!(s.headers.strip_incoming.iter().any(|h| h == "x-forwarded-user"));
    assert_eq!(s.sign_out.cross_site, CrossSiteSignOut::Confirm);
}

#[test]
fn the_client_secret_never_prints() {
    let mut v = base();
    v["client_secret"] = serde_json::json!({"inline": "hunter2-very-secret"});
    let s = parse(v).expect("valid");
    assert_eq!(
        format!("{:?}", s.provider.client_secret),
        "Some(ClientSecret([redacted]))"
    );
    assert_eq!(
        s.provider.client_secret.as_ref().map(|c| c.get().secret().to_owned()),
        Some("hunter2-very-secret".to_owned())
    );
}

#[test]
fn files_are_read_with_a_bound() {
    let mut v = base();
    v["client_secret"] = serde_json::json!({"file": "/dev/zero"});
    let e = parse(v).err().expect("refused");
    assert_eq!(e.field, "client_secret");
    assert!(e.reason.contains("larger than"), "{}", e.reason);
}

#[test]
fn the_own_prefix_follows_the_sign_out_path() {
    let mut v = base();
    v["logout"] = serde_json::json!({"path": "/logout"});
    assert_eq!(parse(v).expect("valid").paths.own_prefix, None, "never the whole site");
}

fn field_of(v: serde_json::Value) -> String {
    match parse(v) {
        Err(e) => e.field,
        Ok(_) => "accepted".into(),
    }
}

#[test]
fn errors_name_the_field() {
    let mut v = base();
    v["session"]["keys"] =
        serde_json::json!([{"inline": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}, {"inline": "c2hvcnQ"}]);
    assert_eq!(field_of(v), "session.keys[1]");
    let mut v = base();
    v["cookie"] = serde_json::json!({"secure": false});
    assert_eq!(field_of(v), "cookie.secure", "__Host- needs Secure");
    let mut v = base();
    v["pass_through"] = serde_json::json!([{"path_regex": "("}]);
    assert_eq!(field_of(v), "pass_through[0].path_regex");
    let mut v = base();
    v["headers"] = serde_json::json!({"user": "X Bad"});
    assert_eq!(field_of(v), "headers.user");
    let mut v = base();
    v["client_secret"] = serde_json::json!({"env": "SURELY_NOT_SET_ANYWHERE_42"});
    assert_eq!(field_of(v), "client_secret");
    let mut v = base();
    v["session"]["store"] = serde_json::json!({"redis": {"url": {"inline": "http://nope"}}});
    assert_eq!(field_of(v), "session.store.redis.url");
    let mut v = base();
    v["unknown_field"] = serde_json::json!(1);
    assert_eq!(field_of(v), "config", "unknown fields are rejected");
}

#[test]
fn extra_authorize_params_may_not_replace_the_flow_parameters() {
    let mut v = base();
    v["extra_authorize_params"] = serde_json::json!({"prompt": "select_account", "audience": "https://api"});
    let s = parse(v).expect("valid");
    assert_eq!(
        s.provider.extra_authorize_params,
        vec![
            ("audience".into(), "https://api".into()),
            ("prompt".into(), "select_account".into())
        ]
    );
    for reserved in ["state", "nonce", "code_challenge", "redirect_uri", "scope", "client_id"] {
        let mut v = base();
        v["extra_authorize_params"] = serde_json::json!({reserved: "x"});
        assert_eq!(field_of(v), format!("extra_authorize_params.{reserved}"));
    }
}

#[test]
fn redis_credentials_from_their_own_sources_are_encoded_into_the_url() {
    let mut v = base();
    v["session"]["store"] = serde_json::json!({"redis": {
        "url": {"inline": "redis://redis.example:6380/2"},
        "username": {"inline": "gateway"},
        "password": {"inline": "p@ss:w/rd#1"}
    }});
    let s = parse(v).expect("valid");
    let StoreSettings::Redis(cfg) = &s.session.store else {
        panic!("redis store expected")
    };
    let RedisTarget::Url(url) = &cfg.target else {
        panic!("a URL target expected")
    };
    assert_eq!(url, "redis://gateway:p%40ss%3Aw%2Frd%231@redis.example:6380/2");
    assert_eq!(cfg.replicas_to_ack, 0, "one server: nothing to wait for");
    let mut v = base();
    v["session"]["store"] = serde_json::json!({"redis": {
        "url": {"inline": "redis://redis.example"}, "password": {"env": "SURELY_NOT_SET_ANYWHERE_43"}
    }});
    assert_eq!(field_of(v), "session.store.redis.password");
}

#[test]
fn redis_sentinel_and_cluster_targets_and_their_mistakes() {
    let mut v = base();
    v["session"]["store"] = serde_json::json!({"redis": {
        "sentinel": {"master": "sessions", "nodes": ["10.0.0.1:26379", "[::1]:26380"],
                     "password": {"inline": "sentinel-pw"}, "db": 2},
        "password": {"inline": "data-pw"}, "tls": true, "circuit_failures": 7
    }});
    let s = parse(v).expect("valid");
    let StoreSettings::Redis(cfg) = &s.session.store else {
        panic!("redis store expected")
    };
    let RedisTarget::Sentinel(t) = &cfg.target else {
        panic!("a sentinel target expected")
    };
    assert_eq!(t.master, "sessions");
    assert_eq!(t.sentinels, [("10.0.0.1".to_owned(), 26379), ("::1".to_owned(), 26380)]);
    assert_eq!(
        t.sentinel_auth.password.as_deref().map(String::as_str),
        Some("sentinel-pw")
    );
    assert_eq!(t.auth.password.as_deref().map(String::as_str), Some("data-pw"));
    assert_eq!((t.db, t.tls, t.check_interval), (2, true, Duration::from_secs(5)));
    assert_eq!(
        (cfg.replicas_to_ack, cfg.circuit_failures),
        (1, 7),
        "writes wait for a replica by default"
    );

    let mut v = base();
    v["session"]["store"] = serde_json::json!({"redis": {
        "cluster": {"nodes": ["redis-0.redis:6379"]}, "replicas_to_ack": 0
    }});
    let s = parse(v).expect("valid");
    let StoreSettings::Redis(cfg) = &s.session.store else {
        panic!("redis store expected")
    };
    assert!(matches!(&cfg.target, RedisTarget::Cluster(c) if c.nodes == [("redis-0.redis".to_owned(), 6379)]));
    assert_eq!(cfg.replicas_to_ack, 0);

    for (store, field) in [
        (
            serde_json::json!({"url": {"inline": "redis://a"}, "cluster": {"nodes": ["a:1"]}}),
            "session.store.redis",
        ),
        (serde_json::json!({"prefix": "x:"}), "session.store.redis"),
        (
            serde_json::json!({"cluster": {"nodes": []}}),
            "session.store.redis.cluster.nodes",
        ),
        (
            serde_json::json!({"cluster": {"nodes": ["a:1", "no-port"]}}),
            "session.store.redis.cluster.nodes[1]",
        ),
        (
            serde_json::json!({"sentinel": {"master": "", "nodes": ["a:1"]}}),
            "session.store.redis.sentinel.master",
        ),
        (
            serde_json::json!({"url": {"inline": "redis://a"}, "tls": true}),
            "session.store.redis.tls",
        ),
        (
            serde_json::json!({"cluster": {"nodes": ["a:1"]}, "replicas_to_ack": 9}),
            "session.store.redis.replicas_to_ack",
        ),
    ] {
        let mut v = base();
        v["session"]["store"] = serde_json::json!({ "redis": store });
        assert_eq!(field_of(v), field, "{store}");
    }
}

#[test]
fn pass_through_matches_method_and_normalised_path_only() {
    let mut v = base();
    v["pass_through"] =
        serde_json::json!([{"methods": ["GET"], "path_prefix": "/health"}, {"path_regex": "^/static/"}]);
    let s = parse(v).expect("valid");
    let p = &s.pass_through;
    assert!(p.matches("GET", "/health"));
    assert!(!p.matches("POST", "/health"));
    assert!(p.matches("PUT", "/static/app.js"));
    assert!(!p.matches("GET", "/private"));
}

#[test]
fn access_log_user_goes_where_configured() {
    use envoy_module::testing::FakeStream;
    use envoy_module::HttpStream;
    let mut s = FakeStream::default();
    AccessLogUser::DynamicMetadata.record(&mut s, "alice");
    assert_eq!(s.metadata("oidc", "user"), Some(&b"alice"[..]));
    let mut s = FakeStream::default();
    AccessLogUser::FilterState.record(&mut s, "alice");
    assert_eq!(s.filter_state("oidc.user"), Some(&b"alice"[..]));
    assert!(s.metadata.is_empty());
    let mut s = FakeStream::default();
    AccessLogUser::None.record(&mut s, "alice");
    assert!(s.metadata.is_empty() && s.filter_state.is_empty());
    assert_eq!(
        parse(base()).expect("valid").access_log_user,
        AccessLogUser::FilterState
    );
    let mut v = base();
    v["access_log_user"] = serde_json::json!("dynamic_metadata");
    assert_eq!(parse(v).expect("valid").access_log_user, AccessLogUser::DynamicMetadata);
}

#[test]
fn secrets_never_show_in_debug() {
    let shown = format!("{:?}", SecretSource::Inline("hunter2".into()));
    assert!(!shown.contains("hunter2"));
}

#[test]
fn client_authentication_needs_its_credential() {
    let mut v = base();
    v.as_object_mut().expect("object").remove("client_secret");
    assert_eq!(field_of(v.clone()), "client_secret", "a secret or a key");
    v["client_auth"] = serde_json::json!({"method": "private_key_jwt"});
    assert_eq!(field_of(v.clone()), "client_auth.private_key");
    v["client_auth"] = serde_json::json!({"method": "private_key_jwt", "private_key": {"inline": "not a pem"}});
    assert_eq!(
        field_of(v.clone()),
        "client_auth.private_key",
        "a key that does not load fails at load"
    );
    v["client_auth"] =
        serde_json::json!({"method": "private_key_jwt", "private_key": {"inline": "x"}, "algorithm": "HS256"});
    assert_eq!(field_of(v), "client_auth.algorithm");
}

#[test]
fn tls_client_auth_needs_a_client_certificate() {
    let mut v = base();
    v["client_auth"] = serde_json::json!({"method": "tls_client_auth"});
    assert_eq!(field_of(v), "provider.client_cert_file");
}

#[test]
fn a_shared_session_cookie_cannot_be_host_only_by_name() {
    let mut v = base();
    v["cookie"] = serde_json::json!({"domain": "example.com"});
    assert_eq!(field_of(v.clone()), "cookie.domain");
    v["cookie"] = serde_json::json!({"domain": "example.com", "name": "__Secure-oidc_session"});
    assert_eq!(parse(v).expect("valid").cookie.domain.as_deref(), Some("example.com"));
}

fn parse_idps(idps: serde_json::Value, extra: serde_json::Value) -> Result<Vec<IdpConfig>, ConfigError> {
    let mut v = base();
    v["idps"] = idps;
    for (k, val) in extra.as_object().expect("object") {
        v[k] = val.clone();
    }
    parse_all(v.to_string().as_bytes())
}

#[test]
fn each_idp_gets_its_own_cookies_and_key_prefix() {
    let store = serde_json::json!({"keys": [{"inline": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}],
        "store": {"redis": {"url": {"inline": "redis://127.0.0.1:6379"}}}});
    let all = parse_idps(
        serde_json::json!([
            {"name": "partners", "hosts": ["Partners.Example"], "issuer": "https://other.example",
             "redirect_uri": "https://partners.example/oauth2/callback"},
            {"name": "staff", "redirect_uri": "https://app.example/staff/callback",
             "logout": {"path": "/staff/logout", "backchannel_path": "/staff/backchannel"},
             "cookie": {"name": "staff_session", "secure": false}},
        ]),
        serde_json::json!({"session": store}),
    )
    .expect("valid");
    let names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["default", "partners", "staff"]);
    assert_eq!(all[1].hosts, ["partners.example"], "hosts compare in lower case");
    assert_eq!(all[1].settings.provider.issuer, "https://other.example");
    assert_eq!(all[1].settings.provider.client_id, "c", "the rest comes from the base");
    assert_eq!(all[1].settings.cookie.name, "__Host-partners-oidc_session");
    assert_eq!(all[1].settings.cookie.flow_prefix, "__Host-partners-oidc_flow_");
    assert_eq!(all[2].settings.cookie.name, "staff_session", "a name given is kept");
    assert_eq!(all[2].settings.cookie.flow_prefix, "staff-oidc_flow_");
    let prefix = |i: usize| match &all[i].settings.session.store {
        StoreSettings::Redis(cfg) => cfg.prefix.clone(),
        StoreSettings::Memory { .. } => panic!("redis"),
    };
    assert_eq!(
        (prefix(0), prefix(1), prefix(2)),
        ("oidc:".into(), "oidc:partners:".into(), "oidc:staff:".into())
    );
}

#[test]
fn idps_that_would_share_what_tells_them_apart_are_refused() {
    let cases = [
        // Chosen per route, with the default's callback: the IdP's redirect could not
        // tell them apart.
        (
            serde_json::json!([{"name": "staff"}]),
            "idps[0].redirect_uri",
            "\"/oauth2/callback\"",
        ),
        (
            serde_json::json!([{"name": "staff", "redirect_uri": "https://app.example/staff/callback"}]),
            "idps[0].logout.path",
            "\"/oauth2/sign_out\"",
        ),
        (
            serde_json::json!([{"name": "a", "hosts": ["x.example"]}, {"name": "b", "hosts": ["X.example"]}]),
            "idps[1].hosts",
            "\"x.example\"",
        ),
        (
            serde_json::json!([{"name": "a", "hosts": ["x.example"]}, {"name": "a", "hosts": ["y.example"]}]),
            "idps[1].name",
            "twice",
        ),
        (
            serde_json::json!([{"name": "default", "hosts": ["x.example"]}]),
            "idps[0].name",
            "not",
        ),
        (
            serde_json::json!([{"name": "Bad_Name", "hosts": ["x.example"]}]),
            "idps[0].name",
            "letters",
        ),
        (
            serde_json::json!([{"hosts": ["x.example"]}]),
            "idps[0].name",
            "required",
        ),
        (
            serde_json::json!([{"name": "a", "hosts": ["x.example"], "cookie": {"name": "__Host-oidc_session"}}]),
            "idps[0].cookie.name",
            "default",
        ),
        (
            serde_json::json!([{"name": "a", "hosts": ["x.example"], "client_id": ""}]),
            "idps[0].client_id",
            "empty",
        ),
        (serde_json::json!({"name": "a"}), "idps", "list"),
    ];
    for (idps, field, says) in cases {
        let Err(e) = parse_idps(idps.clone(), serde_json::json!({})) else {
            panic!("{idps} accepted");
        };
        assert_eq!(e.field, field, "{idps}: {e}");
        assert!(e.reason.contains(says), "{idps}: {e}");
    }
}

#[test]
fn secret_files_report_what_changed_validated() {
    let dir = tempfile::tempdir().expect("dir");
    let (secret, key) = (dir.path().join("secret"), dir.path().join("key"));
    std::fs::write(&secret, "one\n").expect("write");
    std::fs::write(&key, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY").expect("write");
    let mut v = base();
    v["client_secret"] = serde_json::json!({ "file": secret });
    v["session"]["keys"] =
        serde_json::json!([{ "file": key }, {"inline": "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA"}]);
    let s = parse(v).expect("valid");
    assert!(s.secret_files.any());
    assert!(s.secret_files.poll().is_empty(), "nothing changed since the load");

    std::fs::write(&secret, "two\n").expect("write");
    let renewed = s.secret_files.poll();
    assert_eq!(renewed.len(), 1);
    match &renewed[0] {
        Ok(Renewed::ClientSecret(c)) => assert_eq!(c.secret(), "two"),
        _ => panic!("the client secret, renewed"),
    }
    assert!(s.secret_files.poll().is_empty(), "reported once");

    std::fs::write(&key, "short").expect("write");
    let renewed = s.secret_files.poll();
    assert!(
        matches!(&renewed[..], [Err(e)] if e.field == "session.keys[0]"),
        "a bad key is refused with its field"
    );
}

#[test]
fn login_bound_and_runtime_have_defaults_and_limits() {
    let s = parse(base()).expect("valid");
    assert_eq!(s.max_logins_in_flight, 256);
    assert_eq!(s.runtime, async_filter::RuntimeSettings { threads: 2, nice: 10 });
    let mut v = base();
    v["runtime"] = serde_json::json!({"threads": 4, "nice": 0});
    v["max_logins_in_flight"] = serde_json::json!(64);
    let s = parse(v).expect("valid");
    assert_eq!((s.runtime.threads, s.runtime.nice, s.max_logins_in_flight), (4, 0, 64));
    for (field, value, named) in [
        ("max_logins_in_flight", serde_json::json!(3), "max_logins_in_flight"),
        ("runtime", serde_json::json!({"threads": 0}), "runtime.threads"),
        ("runtime", serde_json::json!({"nice": 20}), "runtime.nice"),
        ("runtime", serde_json::json!({"nice": -5}), "runtime.nice"),
    ] {
        let mut v = base();
        v[field] = value;
        match parse(v) {
            Err(e) => assert_eq!(e.field, named),
            Ok(_) => panic!("{named} out of range must be refused"),
        }
    }
}
