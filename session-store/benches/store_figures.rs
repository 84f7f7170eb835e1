//! Figures criterion does not give: Redis get/put latency percentiles on loopback, and
//! resident memory per cached session for 100k sessions. Prints a table.
//!
//! `cargo bench -p session-store --bench store_figures` (needs `redis-server`, which
//! `scripts/test.sh` installs).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store::{
    encrypt_record, AccessToken, Claims, IdToken, IndexKey, Lifetimes, RedisConfig, RedisStore, RefreshToken, Session,
    SessionCache, SessionStore, StoreKey, Ticket, Tokens,
};

fn session(i: usize, token_len: usize, now: u64) -> Session {
    let mut claims = Claims::default();
    claims.insert("email", vec![format!("user{i}@example.com")]);
    claims.insert("groups", vec!["admins".into(), "dev".into()]);
    Session::new(
        format!("user-{i}"),
        "https://idp.example".into(),
        Some(format!("sid-{i}")),
        claims,
        Tokens {
            access: AccessToken::new("a".repeat(token_len)),
            access_expires_at: Some(now + 300),
            refresh: Some(RefreshToken::new("r".repeat(token_len / 2))),
            id_token: Some(IdToken::new("i".repeat(token_len))),
        },
        now,
        Lifetimes {
            absolute_secs: 86_400,
            idle_secs: 3_600,
        },
    )
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1e6
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn redis_figures(rt: &tokio::runtime::Runtime) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port());
    let Ok(port) = port else { return };
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        println!("redis-server not installed: skipping Redis figures (scripts/test.sh installs it)");
        return;
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    rt.block_on(async {
        let store = RedisStore::connect(RedisConfig::new(format!("redis://127.0.0.1:{port}/0")))
            .await
            .expect("connect");
        let now = session_store::unix_now();
        let ticket = Ticket::generate().expect("ticket");
        const N: usize = 5_000;
        let keys: Vec<StoreKey> = (0..N)
            .map(|i| StoreKey::from_hex(&format!("{i:064x}")).expect("key"))
            .collect();
        let record = encrypt_record(&ticket, &keys[0], &session(0, 900, now)).expect("record");
        let index = [IndexKey::from_text("sid:bench")];
        let mut puts = Vec::with_capacity(N);
        for k in &keys {
            let t = Instant::now();
            store
                .put(k, &record, Duration::from_secs(600), &index)
                .await
                .expect("put");
            puts.push(t.elapsed());
        }
        let mut gets = Vec::with_capacity(N);
        for k in &keys {
            let t = Instant::now();
            assert!(store.get(k).await.expect("get").is_some());
            gets.push(t.elapsed());
        }
        puts.sort();
        gets.sort();
        println!(
            "Redis on loopback, {N} sequential ops, {} B encrypted session:",
            record.len()
        );
        println!(
            "  put (SET PX + index SADD/PEXPIRE, one MULTI):  p50 {:7.1} us   p99 {:7.1} us",
            percentile(&puts, 0.5),
            percentile(&puts, 0.99)
        );
        println!(
            "  get (GET):                                     p50 {:7.1} us   p99 {:7.1} us",
            percentile(&gets, 0.5),
            percentile(&gets, 0.99)
        );
    });
    let _ = child.kill();
    let _ = child.wait();
}

const CACHE_CHILD: &str = "STORE_FIGURES_TOKEN_LEN";
const SESSIONS: usize = 100_000;

/// In a fresh process (so no freed heap is reused): RSS before the sessions exist,
/// after they are built, and after they are all in the cache.
fn cache_memory_child(token_len: usize) {
    let now = session_store::unix_now();
    let r0 = rss_bytes();
    let sessions: Vec<(StoreKey, Arc<Session>)> = (0..SESSIONS)
        .map(|i| {
            (
                StoreKey::from_hex(&format!("{i:064x}")).expect("key"),
                Arc::new(session(i, token_len, now)),
            )
        })
        .collect();
    let r1 = rss_bytes();
    // As the filter builds it by default (the access token not forwarded upstream).
    let cache = SessionCache::new(SESSIONS as u64 * 2, Duration::from_secs(3_600)).keep_access_token(false);
    for (k, s) in &sessions {
        cache.insert(*k, s.clone());
    }
    assert_eq!(cache.len(), SESSIONS as u64);
    println!("{r0} {r1} {}", rss_bytes());
}

fn cache_memory() {
    for (label, token_len) in [("opaque tokens (40 B)", 40usize), ("JWT-sized tokens (900 B)", 900)] {
        let out = Command::new(std::env::current_exe().expect("exe"))
            .env(CACHE_CHILD, token_len.to_string())
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout);
        let r: Vec<f64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        let [r0, r1, r2] = r[..] else {
            println!("cache memory child failed: {text}");
            continue;
        };
        let n = SESSIONS as f64;
        println!(
            "{SESSIONS} cached sessions, {label}: {:.0} B per session in the cache ({:.0} B per decrypted session as loaded, built first)",
            (r2 - r1) / n,
            (r1 - r0) / n
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(len) = std::env::var(CACHE_CHILD).ok().and_then(|v| v.parse().ok()) {
        return cache_memory_child(len);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    redis_figures(&rt);
    cache_memory();
}
