//! The test identity provider: `e2e/idp/server.mjs` (oidc-provider on Node 22).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{client, free_port, workspace};

/// One client registered at the IdP.
#[derive(Clone, Debug)]
pub struct IdpClient {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Redirect URIs (exact).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return.
    pub post_logout_redirect_uris: Vec<String>,
    /// Back-channel logout endpoint.
    pub backchannel_logout_uri: Option<String>,
}

/// A running IdP; killed when dropped.
pub struct Idp {
    child: Option<Child>,
    /// Port.
    pub port: u16,
    /// Issuer identifier.
    pub issuer: String,
    clients: String,
    access_ttl_secs: u64,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn node_bin() -> PathBuf {
    std::env::var("NODE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace().join("e2e/node_modules/.bin/node"))
}

impl Idp {
    /// Starts the IdP with these clients; access tokens live `access_ttl_secs`.
    pub async fn start(clients: &[IdpClient], access_ttl_secs: u64) -> Idp {
        let port = free_port();
        let clients: Vec<Value> = clients
            .iter()
            .map(|c| {
                json!({
                    "client_id": c.client_id,
                    "client_secret": c.client_secret,
                    "redirect_uri": c.redirect_uris,
                    "post_logout_redirect_uri": c.post_logout_redirect_uris,
                    "backchannel_logout_uri": c.backchannel_logout_uri,
                })
            })
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut idp = Idp {
            child: None,
            port,
            issuer: format!("http://127.0.0.1:{port}"),
            clients: Value::Array(clients).to_string(),
            access_ttl_secs,
            log: dir.path().join("idp.log"),
            _dir: dir,
        };
        idp.spawn().await;
        idp
    }

    async fn spawn(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let node = node_bin();
        assert!(node.exists(), "no node at {}: run scripts/test.sh", node.display());
        let mut cmd = Command::new(node);
        cmd.arg(workspace().join("e2e/idp/server.mjs"))
            .env("IDP_PORT", self.port.to_string())
            .env("IDP_CLIENTS", &self.clients)
            .env("IDP_ACCESS_TTL", self.access_ttl_secs.to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        self.child = Some(cmd.spawn().expect("start the IdP"));
        let start = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("IdP exited with {status}:\n{}", self.log());
            }
            let url = format!("{}/.well-known/openid-configuration", self.issuer);
            if client().get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "IdP not ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the IdP (by pid); `start_again` brings it back on the same port.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a stopped IdP again, same port and clients (its keys are new).
    pub async fn start_again(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Counters the IdP keeps for tests (`refresh_grants`, `backchannel_sent`, ...).
    pub async fn stats(&self) -> Value {
        client()
            .get(format!("{}/__test/stats", self.issuer))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json")
    }

    /// Holds every token and userinfo answer `ms` milliseconds (0: answer at once).
    pub async fn stall(&self, ms: u64) {
        let r = client()
            .post(format!("{}/__test/stall", self.issuer))
            .json(&serde_json::json!({ "ms": ms }))
            .send()
            .await
            .expect("stall");
        assert!(r.status().is_success(), "stall refused");
    }

    /// Signs arbitrary claims with the IdP's own key (for bearer-token tests).
    pub async fn mint(&self, claims: Value) -> String {
        let r = client()
            .post(format!("{}/__test/mint", self.issuer))
            .json(&claims)
            .send()
            .await
            .expect("mint");
        assert!(r.status().is_success(), "mint failed");
        r.text().await.expect("token")
    }

    /// The IdP's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}
