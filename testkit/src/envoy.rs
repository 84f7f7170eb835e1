//! A real Envoy 1.40 process with a dynamic module, on ports Envoy picks itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{client, workspace};

/// The real Envoy binary: `$ENVOY_BIN`, else the one `scripts/test.sh` installed.
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

/// The directory holding `lib<name>.so` built with the running test binary.
///
/// `cargo test` leaves a cdylib in `target/<profile>/deps/` beside the test binary (only
/// `cargo build` copies it up a level, and that copy may be stale).
pub fn module_dir(lib_name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let deps = exe.parent().expect("deps dir").to_path_buf();
    let file = format!("lib{lib_name}.so");
    assert!(deps.join(&file).exists(), "no {file} in {}", deps.display());
    deps
}

/// `envoy --mode validate` on a bootstrap: whether Envoy, and the module's config hook,
/// accepted it, and everything Envoy printed (the module's message on refusal).
pub fn validate(yaml: &str, module_dir: &Path) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("envoy.yaml");
    std::fs::write(&cfg, yaml).expect("write the bootstrap");
    let out = Command::new(envoy_bin())
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&cfg)
        .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", module_dir)
        .output()
        .expect("run envoy");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A running Envoy; killed when dropped.
pub struct Envoy {
    child: Child,
    /// Port of the first listener.
    pub port: u16,
    /// Admin port.
    pub admin: u16,
    dir: tempfile::TempDir,
}

impl Envoy {
    /// Starts Envoy with the bootstrap `make_yaml(dir)` returns (`dir` is this Envoy's
    /// private directory, for LDS files and the like). Listeners and admin should use port
    /// 0; the real ports are read back from the admin API.
    pub async fn start(module_dir: &Path, make_yaml: impl FnOnce(&Path) -> String) -> Envoy {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("envoy.yaml");
        std::fs::write(&cfg, make_yaml(dir.path())).expect("write config");
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
                // Access-log lines reach the log within 0.2 s, not Envoy's default 10 s.
                "--file-flush-interval-msec",
                "200",
            ])
            .args(["--component-log-level", "dynamic_modules:debug"])
            .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", module_dir)
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
        };
        envoy.wait_ready().await;
        envoy
    }

    /// This Envoy's private directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
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
                if let Some(addr) = std::fs::read_to_string(&admin_file)
                    .ok()
                    .and_then(|t| t.trim().parse::<SocketAddr>().ok())
                {
                    self.admin = addr.port();
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

    /// The first listener's port as Envoy reports it now (after an LDS update, say).
    pub async fn listener_port(&self) -> Option<u16> {
        let text = self.admin_get("/listeners?format=json").await.ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        let port = v["listener_statuses"][0]["local_address"]["socket_address"]["port_value"].as_u64()?;
        u16::try_from(port).ok().filter(|p| *p != 0)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// GET on the admin API.
    pub async fn admin_get(&self, path: &str) -> reqwest::Result<String> {
        client()
            .get(format!("http://127.0.0.1:{}{}", self.admin, path))
            .send()
            .await?
            .text()
            .await
    }

    /// A counter or gauge from `/stats/prometheus` (`series` with its labels), if present.
    pub async fn prometheus_value(&self, series: &str) -> Option<f64> {
        let text = self.admin_get("/stats/prometheus").await.ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
