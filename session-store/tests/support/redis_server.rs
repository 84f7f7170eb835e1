//! A real `redis-server` on a loopback port, stopped by pid when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
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
    pub fn start(password: Option<&str>) -> Self {
        let mut s = Self {
            child: None,
            port: free_port(),
            password: password.map(str::to_owned),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(redis_bin());
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
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
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (losing all data, as a crash would) and starts it again.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
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
