//! Test fixtures: a real Envoy 1.40 loading the test module, and a loopback echo upstream.
//! Every process a test starts binds 127.0.0.1 and is stopped by pid when dropped.
#![allow(dead_code)] // each test binary uses a different subset

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The directory holding the `libtest_module.so` built with this test binary.
///
/// `cargo test` leaves the cdylib in `target/<profile>/deps/` beside the test binary
/// (only `cargo build` copies it up a level, and that copy may be stale).
pub fn module_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let deps = exe.parent().expect("deps dir").to_path_buf();
    assert!(
        deps.join("libtest_module.so").exists(),
        "no libtest_module.so in {}",
        deps.display()
    );
    deps
}

/// The real Envoy binary: `$ENVOY_BIN`, else the one the test script installed.
pub fn envoy_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ENVOY_BIN") {
        return PathBuf::from(p);
    }
    let lib = workspace().join(".tools/venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no Envoy under {}: run scripts/test.sh (or set ENVOY_BIN)",
            lib.display()
        )
    })
}

/// An HTTP client that never follows redirects and never uses a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()
        .expect("client")
}

/// A loopback upstream answering every request with JSON: method, path, headers.
pub struct Echo {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Echo {
    pub async fn start() -> Echo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let headers: Vec<Value> = req
                            .headers()
                            .iter()
                            .map(|(k, v)| json!([k.as_str(), String::from_utf8_lossy(v.as_bytes())]))
                            .collect();
                        let body = json!({
                            "method": req.method().as_str(),
                            "path": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
                            "headers": headers,
                        });
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body.to_string())))
                                .expect("response"),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Echo { port, task }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the echo upstream saw.
pub struct Seen(pub Value);

impl Seen {
    pub fn path(&self) -> &str {
        self.0["path"].as_str().unwrap_or_default()
    }
    /// Every value of a header, in order.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.0["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h[0].as_str() == Some(name))
            .map(|h| h[1].as_str().unwrap_or_default().to_owned())
            .collect()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name).into_iter().next()
    }
}

/// Where the listener config lives.
pub enum Listeners {
    /// In the bootstrap.
    Static,
    /// In a file Envoy watches (LDS), so a test can swap it.
    File,
}

/// A running Envoy with the probe filter in front of the echo upstream.
pub struct Envoy {
    child: Child,
    pub port: u16,
    pub admin: u16,
    dir: tempfile::TempDir,
    upstream_port: u16,
}

fn listener_yaml(filter_config: &str) -> String {
    let filter_config = filter_config.replace('\'', "''");
    format!(
        r#"
- name: main
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: ingress
        route_config:
          virtual_hosts:
          - name: all
            domains: ["*"]
            routes:
            - match: {{prefix: "/probe/echo/tagged"}}
              route: {{cluster: upstream}}
              typed_per_filter_config:
                probe:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute
                  dynamic_module_config: {{name: test_module, do_not_close: true}}
                  filter_name: probe
                  filter_config: {{"@type": type.googleapis.com/google.protobuf.StringValue, value: '{{"tag":"blue"}}'}}
            - match: {{prefix: "/"}}
              route: {{cluster: upstream, timeout: 60s}}
        http_filters:
        - name: probe
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
            dynamic_module_config: {{name: test_module, do_not_close: true}}
            filter_name: probe
            filter_config: {{"@type": type.googleapis.com/google.protobuf.StringValue, value: '{filter_config}'}}
        - name: envoy.filters.http.router
          typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#
    )
}

fn cluster_yaml(upstream_port: u16) -> String {
    format!(
        r#"
  clusters:
  - name: upstream
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream_port}}}}}}}}}]}}]
"#
    )
}

impl Envoy {
    /// Starts Envoy with the probe filter configured by `filter_config` (JSON).
    pub async fn start(filter_config: &str, upstream_port: u16, listeners: Listeners) -> Envoy {
        let dir = tempfile::tempdir().expect("tempdir");
        let lds_dir = dir.path().join("lds");
        std::fs::create_dir_all(&lds_dir).expect("lds dir");
        let (static_listeners, dynamic) = match listeners {
            Listeners::Static => {
                let indented: String = listener_yaml(filter_config)
                    .lines()
                    .map(|l| format!("  {l}\n"))
                    .collect();
                (format!("  listeners:{indented}"), String::new())
            }
            Listeners::File => {
                write_lds(&lds_dir, filter_config);
                (
                    String::new(),
                    format!(
                        "dynamic_resources:\n  lds_config:\n    path_config_source:\n      path: {}\n      watched_directory: {{path: {}}}\n",
                        lds_dir.join("lds.yaml").display(),
                        lds_dir.display()
                    ),
                )
            }
        };
        let bootstrap = format!(
            "node: {{id: probe, cluster: probe}}\nstats_flush_interval: 0.5s\nadmin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}\n{dynamic}static_resources:\n{static_listeners}{}",
            cluster_yaml(upstream_port)
        );
        let cfg = dir.path().join("envoy.yaml");
        std::fs::write(&cfg, bootstrap).expect("write config");
        let admin_file = dir.path().join("admin.txt");
        let log = std::fs::File::create(dir.path().join("envoy.log")).expect("log file");
        let mut cmd = Command::new(envoy_bin());
        cmd.arg("-c")
            .arg(&cfg)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .args([
                "--disable-hot-restart",
                "--concurrency",
                "2",
                "--drain-time-s",
                "2",
                "-l",
                "info",
            ])
            .args(["--component-log-level", "dynamic_modules:debug"])
            .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", module_dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("spawn envoy");
        let mut envoy = Envoy {
            child,
            port: 0,
            admin: 0,
            dir,
            upstream_port,
        };
        envoy.wait_ready().await;
        envoy
    }

    async fn wait_ready(&mut self) {
        let start = Instant::now();
        let admin_file = self.dir.path().join("admin.txt");
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("envoy exited with {status} during start:\n{}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "envoy not ready:\n{}",
                self.log()
            );
            if self.admin == 0 {
                if let Ok(text) = std::fs::read_to_string(&admin_file) {
                    if let Ok(addr) = text.trim().parse::<SocketAddr>() {
                        self.admin = addr.port();
                    }
                }
            }
            if self.admin != 0 {
                if let Some(port) = self.listener_port().await {
                    self.port = port;
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn listener_port(&self) -> Option<u16> {
        let text = self.admin_get("/listeners?format=json").await.ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        let port = v["listener_statuses"][0]["local_address"]["socket_address"]["port_value"].as_u64()?;
        u16::try_from(port).ok().filter(|p| *p != 0)
    }

    /// Swaps the LDS file (atomic rename) to a listener with a new filter config.
    pub fn reload(&self, filter_config: &str) {
        write_lds(&self.dir.path().join("lds"), filter_config);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Result<String> {
        client()
            .get(format!("http://127.0.0.1:{}{}", self.admin, path))
            .send()
            .await?
            .text()
            .await
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// True while the Envoy process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The number of async tasks in flight, as the module reports it.
    pub async fn in_flight(&self) -> usize {
        let body = client()
            .get(self.url("/probe/inflight"))
            .send()
            .await
            .expect("inflight")
            .text()
            .await
            .expect("text");
        body.trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad inflight body {body:?}"))
    }
}

fn write_lds(dir: &Path, filter_config: &str) {
    let yaml = format!(
        "resources:\n{}",
        listener_yaml(filter_config).replacen(
            "\n- name: main",
            "\n- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: main",
            1
        )
    );
    let tmp = dir.join("lds.yaml.tmp");
    std::fs::write(&tmp, yaml).expect("write lds");
    std::fs::rename(&tmp, dir.join("lds.yaml")).expect("swap lds");
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
