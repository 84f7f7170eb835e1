//! The second OpenID Provider: `e2e/idp/vendor-op.mjs` (npm `oauth2-mock-server`), which a
//! test drives to behave like a given vendor (string booleans, extra keys, rotation...).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{client, free_port, workspace};

/// A running vendor OP; killed when dropped.
pub struct VendorOp {
    child: Child,
    /// Issuer identifier (`http://127.0.0.1:<port>`).
    pub issuer: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl VendorOp {
    /// Starts it with the plain behaviour (no vendor quirks).
    pub async fn start() -> VendorOp {
        Self::spawn(None).await
    }

    /// Starts it on HTTPS with `dir`'s `server.pem` and `server.key` (see `make_certs`).
    pub async fn start_tls(dir: &std::path::Path) -> VendorOp {
        Self::spawn(Some(dir)).await
    }

    async fn spawn(tls: Option<&std::path::Path>) -> VendorOp {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("vendor-op.log");
        let out = std::fs::File::create(&log).expect("log");
        let node = std::env::var("NODE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace().join("e2e/node_modules/.bin/node"));
        let mut cmd = Command::new(node);
        cmd.arg(workspace().join("e2e/idp/vendor-op.mjs"))
            .env("IDP_PORT", port.to_string())
            .envs(
                tls.map(|d| {
                    [
                        ("IDP_TLS_KEY", d.join("server.key")),
                        ("IDP_TLS_CERT", d.join("server.pem")),
                    ]
                })
                .into_iter()
                .flatten(),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut op = VendorOp {
            child: cmd.spawn().expect("start the vendor OP"),
            issuer: format!("{}://127.0.0.1:{port}", if tls.is_some() { "https" } else { "http" }),
            log,
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = op.child.try_wait() {
                panic!("vendor OP exited with {status}:\n{}", op.log());
            }
            let url = format!("{}/.well-known/openid-configuration", op.issuer);
            if client().get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return op;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "vendor OP not ready:\n{}",
                op.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets how it behaves from now on (see `vendor-op.mjs` for the fields).
    pub async fn behave(&self, profile: Value) {
        let r = client()
            .post(format!("{}/__test/profile", self.issuer))
            .json(&profile)
            .send()
            .await
            .expect("profile");
        assert!(r.status().is_success(), "profile refused");
    }

    /// Calls it has answered: `token`, `refresh`, `userinfo`, `jwks`.
    pub async fn calls(&self) -> Value {
        client()
            .get(format!("{}/__test/calls", self.issuer))
            .send()
            .await
            .expect("calls")
            .json()
            .await
            .expect("json")
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for VendorOp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
