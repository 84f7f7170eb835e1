//! Test fixtures: real processes on loopback ports, each stopped by pid when dropped.
//! Used only by integration tests (`[dev-dependencies]`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod browser;
pub mod echo;
pub mod envoy;
pub mod idp;
pub mod redis_group;
pub mod redis_server;
pub mod vendor_op;

pub use redis_server::{make_certs, TlsMaterial};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A loopback port free at the time of asking, for a server started later. Taken below
/// Linux's ephemeral range (32768 and up), where every `bind(0)` and outgoing connection
/// gets its port: a port chosen there could be handed to another test's server or client
/// before ours binds it. Each call in a process gets another port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread over the range by process id, so test binaries run one after the other do
    // not walk the same ports while a previous one's servers linger in TIME_WAIT.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 600) as u16 * 20,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = if port >= 32_000 {
            NEXT.store(20_001, Ordering::Relaxed);
            20_000
        } else {
            port
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// An HTTP client that never follows redirects and never uses a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        // Only our own loopback servers are reached; some have throwaway certificates.
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client")
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

/// Waits until something listens on the port.
pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
