//! A real `redis-server` on a loopback port (plain, password, TLS), stopped by pid when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_for_port};

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
    tls: Option<bool>,
}

/// PEM files of a throwaway CA, and of a server and a client certificate it signed.
pub struct TlsMaterial {
    /// The CA certificate.
    pub ca_pem: Vec<u8>,
    /// A client certificate the CA signed.
    pub client_cert_pem: Vec<u8>,
    /// Its key.
    pub client_key_pem: Vec<u8>,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 (`server.pem`, `server.key`) and a client
/// certificate, in `dir`.
pub fn make_certs(dir: &std::path::Path) -> TlsMaterial {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=test-ca",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for who in ["server", "client"] {
        let key = format!("{who}.key");
        let csr = format!("{who}.csr");
        let pem = format!("{who}.pem");
        let ext = format!("{who}.ext");
        openssl(
            dir,
            &[
                &["req"][..],
                &ec,
                &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={who}")],
            ]
            .concat(),
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "1",
                "-extfile",
                &ext,
            ],
        );
    }
    let read = |f: &str| std::fs::read(dir.join(f)).expect("pem");
    TlsMaterial {
        ca_pem: read("ca.pem"),
        client_cert_pem: read("client.pem"),
        client_key_pem: read("client.key"),
    }
}

fn redis_bin() -> PathBuf {
    for p in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("redis-server is not installed: run scripts/test.sh, which installs it");
}

impl RedisServer {
    /// Starts a server, optionally requiring a password.
    pub fn start(password: Option<&str>) -> Self {
        let mut s = Self {
            child: None,
            port: free_port(),
            password: password.map(str::to_owned),
            dir: tempfile::tempdir().expect("tempdir"),
            tls: None,
        };
        s.spawn();
        s
    }

    /// A server that speaks only TLS; with `require_client_cert`, only mutual TLS.
    pub fn start_tls(require_client_cert: bool) -> (Self, TlsMaterial) {
        let dir = tempfile::tempdir().expect("tempdir");
        let material = make_certs(dir.path());
        let mut s = Self {
            child: None,
            port: free_port(),
            password: None,
            dir,
            tls: Some(require_client_cert),
        };
        s.spawn();
        (s, material)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(redis_bin());
        let port = self.port.to_string();
        match self.tls {
            None => cmd.args(["--port", &port]),
            Some(mutual) => cmd
                .args(["--port", "0", "--tls-port", &port])
                .args([
                    "--tls-cert-file",
                    "server.pem",
                    "--tls-key-file",
                    "server.key",
                    "--tls-ca-cert-file",
                    "ca.pem",
                ])
                .args(["--tls-auth-clients", if mutual { "yes" } else { "no" }]),
        };
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(self.dir.path())
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        self.child = Some(cmd.spawn().expect("start redis-server"));
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "redis-server did not start"
        );
    }

    /// Kills the server (losing all data, as a crash would) and starts it again.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Stops the server (by pid).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The URL to reach it (with the password, `rediss://` for TLS).
    pub fn url(&self) -> String {
        if self.tls.is_some() {
            return format!("rediss://127.0.0.1:{}/0", self.port);
        }
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Every string value stored (a raw scan, as an attacker with Redis access sees it).
    pub async fn raw_values(&self) -> Vec<Vec<u8>> {
        let client = redis::Client::open(self.url()).expect("client");
        let mut c = client.get_multiplexed_async_connection().await.expect("connect");
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut c).await.expect("keys");
        let mut out = Vec::new();
        for k in keys {
            let kind: String = redis::cmd("TYPE").arg(&k).query_async(&mut c).await.expect("type");
            if kind == "string" {
                out.push(redis::cmd("GET").arg(&k).query_async(&mut c).await.expect("get"));
            } else if kind == "set" {
                let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
                    .arg(&k)
                    .query_async(&mut c)
                    .await
                    .expect("smembers");
                out.extend(members);
            }
            out.push(k.into_bytes());
        }
        out
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
