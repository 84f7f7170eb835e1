//! Fixtures: the real IdP, echo app, Envoy(s) with the filter (the shipped demo config),
//! and Redis when asked.
#![allow(dead_code, unused_imports)] // each test binary uses a subset

use std::time::Duration;

use serde_json::{json, Value};
pub use testkit::browser::{first_form, Browser, Page};
pub use testkit::echo::{Echo, Seen};
pub use testkit::envoy::Envoy;
pub use testkit::idp::{Idp, IdpClient};
pub use testkit::redis_server::RedisServer;
pub use testkit::vendor_op::VendorOp;
pub use testkit::{client, eventually, free_port};

pub const CLIENT_ID: &str = "gateway";
pub const CLIENT_SECRET: &str = "gateway-test-secret";
/// A fixed session key for tests (base64url of 32 bytes).
pub const SESSION_KEY: &str = "dGVzdC1zZXNzaW9uLWtleS0zMi1ieXRlcy1sb25nISE";

/// How to set up a test.
pub struct Options {
    /// Envoy instances (sharing the store when it is Redis).
    pub instances: usize,
    /// Use Redis (started by the fixture) instead of the memory store.
    pub redis: bool,
    /// IdP access-token lifetime.
    pub access_ttl_secs: u64,
    /// Extra top-level filter config (merged over the defaults).
    pub extra: Value,
    /// Point the filter at a dead issuer instead of the IdP.
    pub dead_issuer: bool,
    /// The IdP is down when Envoy starts (`setup.idp.start_again()` brings it up).
    pub idp_down_at_start: bool,
    /// The listener comes from a watched LDS file (`Setup::reload` replaces it).
    pub lds: bool,
    /// The gateway is also reached as `localhost:<port>`, a host with its own redirect URI
    /// (`redirect_hosts`), registered at the IdP too.
    pub localhost_too: bool,
    /// Changes the shipped demo config before use (tests of what the filter does when
    /// Envoy's own defences are off).
    pub envoy_yaml: fn(String) -> String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            instances: 1,
            redis: false,
            access_ttl_secs: 3600,
            extra: json!({}),
            dead_issuer: false,
            idp_down_at_start: false,
            lds: false,
            localhost_too: false,
            envoy_yaml: |y| y,
        }
    }
}

/// A running setup.
pub struct Setup {
    pub idp: Idp,
    pub echo: Echo,
    pub envoys: Vec<Envoy>,
    pub redis: Option<RedisServer>,
    /// Each Envoy's filter config and base URL (for reloads).
    configs: Vec<(Value, String)>,
    edit: fn(String) -> String,
}

impl Setup {
    /// Starts everything.
    pub async fn start(opts: Options) -> Setup {
        let ports: Vec<u16> = (0..opts.instances).map(|_| free_port()).collect();
        let bases: Vec<String> = ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
        let mut idp = Idp::start(
            &[IdpClient {
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                redirect_uris: bases
                    .iter()
                    .flat_map(|b| {
                        [
                            format!("{b}/oauth2/callback"),
                            format!("{}/oauth2/callback", b.replace("127.0.0.1", "localhost")),
                        ]
                    })
                    .collect(),
                post_logout_redirect_uris: bases.iter().map(|b| format!("{b}/")).collect(),
                backchannel_logout_uri: Some(format!("{}/oauth2/backchannel_logout", bases[0])),
            }],
            opts.access_ttl_secs,
        )
        .await;
        if opts.idp_down_at_start {
            idp.stop();
        }
        let echo = Echo::start().await;
        let redis = opts.redis.then(|| RedisServer::start(None));
        let issuer = if opts.dead_issuer {
            format!("http://127.0.0.1:{}", free_port())
        } else {
            idp.issuer.clone()
        };
        let mut envoys = Vec::new();
        let mut configs = Vec::new();
        for base in &bases {
            let store = match &redis {
                Some(r) => json!({"redis": {"url": {"inline": r.url()}}}),
                None => json!({"memory": {}}),
            };
            let mut config = json!({
                "issuer": issuer,
                "client_id": CLIENT_ID,
                "client_secret": {"inline": CLIENT_SECRET},
                "redirect_uri": format!("{base}/oauth2/callback"),
                "scopes": ["openid", "email", "profile", "groups", "offline_access"],
                "session": {"keys": [{"inline": SESSION_KEY}], "store": store},
                "logout": {"post_logout_redirect_uri": format!("{base}/")},
                "bearer": {"enabled": true},
                "timeouts": {"startup_wait_ms": 3000, "idp_ms": 3000},
            });
            if opts.localhost_too {
                let host = base.trim_start_matches("http://");
                let alias = host.replace("127.0.0.1", "localhost");
                merge(&mut config, &json!({"redirect_hosts": [host, alias]}));
            }
            merge(&mut config, &opts.extra);
            // `${BASE}`, `${ALIAS}` and `${ALIAS_HOST}` in `extra`: this instance's URL,
            // its `localhost` alias and that alias's host, for configs naming their own.
            let alias = base.replace("127.0.0.1", "localhost");
            let text = config
                .to_string()
                .replace("${BASE}", base)
                .replace("${ALIAS}", &alias)
                .replace("${ALIAS_HOST}", alias.trim_start_matches("http://"));
            let config: Value = serde_json::from_str(&text).expect("config");
            let yaml = (opts.envoy_yaml)(demo_yaml(base, &config.to_string(), echo.port));
            let envoy = if opts.lds {
                let (bootstrap, listeners) = split_listeners(&yaml);
                Envoy::start(&testkit::envoy::module_dir("envoy_oidc"), move |dir| {
                    write_lds(dir, &listeners);
                    bootstrap.replace("${LDS_DIR}", &dir.display().to_string())
                })
                .await
            } else {
                Envoy::start(&testkit::envoy::module_dir("envoy_oidc"), move |_| yaml).await
            };
            envoys.push(envoy);
            configs.push((config, base.clone()));
        }
        let setup = Setup {
            idp,
            echo,
            envoys,
            redis,
            configs,
            edit: opts.envoy_yaml,
        };
        if !opts.dead_issuer && !opts.idp_down_at_start {
            for e in &setup.envoys {
                let discovered = eventually(Duration::from_secs(10), || async {
                    e.log().contains("identity provider discovered")
                })
                .await;
                assert!(discovered, "filter discovered the IdP:\n{}", e.log());
            }
        }
        setup
    }

    /// The first Envoy.
    pub fn envoy(&self) -> &Envoy {
        &self.envoys[0]
    }

    /// URL on the first Envoy.
    pub fn url(&self, path: &str) -> String {
        self.envoys[0].url(path)
    }

    /// Replaces the first Envoy's listener (an LDS update) with `extra` merged into its
    /// filter config: Envoy builds a new filter config and drains the old one.
    pub fn reload(&self, extra: &Value) {
        let (config, base) = &self.configs[0];
        let mut config = config.clone();
        merge(&mut config, extra);
        let yaml = (self.edit)(demo_yaml(base, &config.to_string(), self.echo.port));
        let (_, listeners) = split_listeners(&yaml);
        write_lds(self.envoys[0].dir(), &listeners);
    }
}

/// The demo config's listeners as an LDS file, and the bootstrap that watches it.
fn split_listeners(yaml: &str) -> (String, String) {
    let start = yaml.find("  listeners:\n").expect("listeners");
    let end = yaml.find("  clusters:\n").expect("clusters");
    let block = &yaml[start + "  listeners:\n".len()..end];
    let mut lds = String::from("resources:\n");
    for (i, line) in block.lines().enumerate() {
        let line = line.strip_prefix("  ").unwrap_or(line);
        if i == 0 {
            let rest = line.strip_prefix("- ").expect("a listener item");
            lds.push_str("- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  ");
            lds.push_str(rest);
        } else {
            lds.push_str(line);
        }
        lds.push('\n');
    }
    let bootstrap = format!(
        "node: {{id: test, cluster: test}}\n{}dynamic_resources:\n  lds_config:\n    path_config_source:\n      path: ${{LDS_DIR}}/lds.yaml\n      watched_directory: {{path: ${{LDS_DIR}}}}\nstatic_resources:\n{}",
        &yaml[..yaml.find("static_resources:").expect("static")],
        &yaml[end..]
    );
    (bootstrap, lds)
}

/// The filter in front of the echo app, logging in at the second OP (a vendor's
/// behaviour, set with `op.behave`), memory store.
pub struct VendorSetup {
    pub op: VendorOp,
    pub echo: Echo,
    pub envoy: Envoy,
}

impl VendorSetup {
    /// Starts the OP with `profile` already in force, then Envoy with `extra` merged into
    /// the filter config.
    pub async fn start(profile: Value, extra: Value) -> VendorSetup {
        let op = VendorOp::start().await;
        op.behave(profile).await;
        Self::start_at(op, "", extra, true).await
    }

    /// Starts Envoy against a running OP, with `issuer` configured as the filter's issuer
    /// (empty: the OP's own); waits for discovery when `discover`.
    pub async fn start_at(op: VendorOp, issuer: &str, extra: Value, discover: bool) -> VendorSetup {
        let issuer = if issuer.is_empty() {
            op.issuer.clone()
        } else {
            issuer.to_owned()
        };
        let echo = Echo::start().await;
        let base = format!("http://127.0.0.1:{}", free_port());
        let mut config = json!({
            "issuer": issuer,
            "client_id": CLIENT_ID,
            "client_secret": {"inline": CLIENT_SECRET},
            "redirect_uri": format!("{base}/oauth2/callback"),
            "session": {"keys": [{"inline": SESSION_KEY}]},
            "timeouts": {"startup_wait_ms": 3000, "idp_ms": 3000},
        });
        merge(&mut config, &extra);
        let yaml = demo_yaml(&base, &config.to_string(), echo.port);
        let envoy = Envoy::start(&testkit::envoy::module_dir("envoy_oidc"), move |_| yaml).await;
        if discover {
            let discovered = eventually(Duration::from_secs(10), || async {
                envoy.log().contains("identity provider discovered")
            })
            .await;
            assert!(discovered, "filter discovered the vendor OP:\n{}", envoy.log());
        }
        VendorSetup { op, echo, envoy }
    }

    /// URL on Envoy.
    pub fn url(&self, path: &str) -> String {
        self.envoy.url(path)
    }

    /// A login (the OP approves at once): every page, the app's last.
    pub async fn login(&self, browser: &Browser, path: &str) -> Vec<Page> {
        browser.navigate(&self.url(path)).await
    }
}

/// Replaces the LDS file atomically (Envoy watches the directory for the rename).
fn write_lds(dir: &std::path::Path, listeners: &str) {
    let tmp = dir.join("lds.yaml.tmp");
    std::fs::write(&tmp, listeners).expect("write lds");
    std::fs::rename(&tmp, dir.join("lds.yaml")).expect("swap lds");
}

/// JSON merge patch (RFC 7396): objects merge, `null` removes, anything else replaces.
fn merge(base: &mut Value, extra: &Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, e) => *b = e.clone(),
    }
}

/// Renders the demo config with a filter config written as YAML (a recipe), in place of
/// the JSON one.
pub fn demo_yaml_with_block(base: &str, filter_yaml: &str, app_port: u16) -> String {
    let template = demo_yaml(base, "${FILTER_CONFIG}", app_port);
    let slot = "value: ${FILTER_CONFIG}";
    let line = template
        .lines()
        .find(|l| l.trim_start() == slot)
        .expect("the filter config's line");
    let indent = " ".repeat(line.len() - line.trim_start().len() + 2);
    let block: String = filter_yaml.lines().map(|l| format!("\n{indent}{l}")).collect();
    template.replace(slot, &format!("value:{block}"))
}

/// Renders `configs/envoy-demo.yaml` (the shipped demo config) for a test instance.
fn demo_yaml(base: &str, filter_config: &str, app_port: u16) -> String {
    let port = base.rsplit(':').next().expect("port").to_owned();
    let template = std::fs::read_to_string(testkit::workspace().join("configs/envoy-demo.yaml")).expect("demo config");
    template
        .replace("${ADMIN_PORT}", "0")
        .replace("${LISTEN_PORT}", &port)
        .replace("${APP_PORT}", &app_port.to_string())
        .replace("${FILTER_CONFIG}", filter_config)
}

/// An error page carries its trace id: Envoy's request id (in the reply's
/// `x-request-id`), never the one the client sent (`sent`), which the shipped configs
/// replace (`use_remote_address`, `preserve_external_request_id: false`).
pub fn assert_traced(page: &Page, sent: &str) {
    let id = page.header("x-request-id").expect("x-request-id on the reply");
    assert_ne!(id, sent, "a client-chosen request id was trusted");
    assert!(page.body.contains(&id), "trace id {id} in {:?}", page.body);
}

/// The last page of a walk.
pub fn last(pages: &[Page]) -> &Page {
    pages.last().expect("at least one page")
}

/// What the echo upstream saw, from the last page.
pub fn seen(pages: &[Page]) -> Seen {
    let p = last(pages);
    assert_eq!(
        p.status, 200,
        "expected the app's answer, got {} from {}:\n{}",
        p.status, p.url, p.body
    );
    Seen(serde_json::from_str(&p.body).expect("echo json"))
}

/// Logs `user` in through the IdP's form, landing on `path`.
pub async fn logged_in(setup: &Setup, user: &str, path: &str) -> Browser {
    let b = Browser::new();
    let pages = b.login(&setup.url(path), user).await;
    let s = seen(&pages);
    assert_eq!(s.header("x-auth-request-user").as_deref(), Some(user));
    b
}
