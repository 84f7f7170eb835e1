//! The Redis store against a real `redis-server`: conformance, restart, auth, plaintext.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store::{RedisConfig, RedisStore, Revocation, SessionCache, SessionStore, Sessions, StoreError};
use support::redis_server::RedisServer;
use support::{conformance, contains, key, ring, session, SECRET_TOKENS};

async fn connect(url: String) -> RedisStore {
    RedisStore::connect(RedisConfig::new(url)).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_the_conformance_suite() {
    let server = RedisServer::start(None);
    let a = connect(server.url()).await;
    let b = connect(server.url()).await;
    conformance::run(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_survives_a_redis_restart() {
    let mut server = RedisServer::start(None);
    let store = connect(server.url()).await;
    let other = connect(server.url()).await;
    let mut rx = other.revocations();
    store
        .put(&key(1), b"before", Duration::from_secs(60), &[])
        .await
        .expect("put");

    server.restart();

    // Same process, same store objects: operations work again once Redis is back.
    let start = Instant::now();
    loop {
        match store.put(&key(2), b"after", Duration::from_secs(60), &[]).await {
            Ok(()) => break,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(15),
                "store did not reconnect: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.get(&key(2)).await.expect("get").as_deref(), Some(&b"after"[..]));
    assert_eq!(
        store.get(&key(1)).await.expect("get"),
        None,
        "the restart lost the data (no persistence)"
    );

    // The subscription comes back too, and says that it may have missed revocations.
    let mut saw_all = false;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && !saw_all {
        if let Ok(Ok(Revocation::All)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            saw_all = true;
        }
    }
    assert!(saw_all, "a resubscription announces Revocation::All");
    store.delete(&key(2)).await.expect("delete");
    assert_eq!(
        conformance::wait_for_session_revocation(&mut rx, Duration::from_secs(5)).await,
        Some(key(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_password_is_a_clear_auth_error() {
    let server = RedisServer::start(Some("right-password"));
    let wrong = server.url().replace("right-password", "wrong-password");
    match RedisStore::connect(RedisConfig::new(wrong)).await {
        Err(e @ StoreError::Auth(_)) => assert!(e.to_string().contains("refused the credentials"), "{e}"),
        other => panic!("expected an auth error, got {other:?}"),
    }
    let none = format!("redis://127.0.0.1:{}/0", server.port);
    assert!(matches!(
        RedisStore::connect(RedisConfig::new(none)).await,
        Err(StoreError::Auth(_))
    ));
    connect(server.url())
        .await
        .ping()
        .await
        .expect("the right password works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_fails_fast() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let start = Instant::now();
    let err = RedisStore::connect(RedisConfig::new(format!("redis://127.0.0.1:{port}/0")))
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(err, StoreError::Unavailable(_) | StoreError::Timeout),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        RedisStore::connect(RedisConfig::new("not a url")).await,
        Err(StoreError::InvalidUrl(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_plaintext_tokens_or_identities() {
    let server = RedisServer::start(None);
    let store: Arc<dyn SessionStore> = Arc::new(connect(server.url()).await);
    let sessions = Sessions::new(
        ring(),
        store,
        SessionCache::new(100, Duration::from_secs(60)),
        "__Host-s".into(),
    );
    let now = session_store::unix_now();
    for (who, sid) in [("alice", "sid-alice-1"), ("bob", "sid-bob-1")] {
        sessions.create(session(who, sid, now), now).await.expect("create");
    }
    let raw = server.raw_values().await;
    assert!(raw.len() >= 6, "sessions and index entries are there: {}", raw.len());
    for value in &raw {
        for needle in SECRET_TOKENS
            .iter()
            .chain(&["alice", "bob", "sid-alice-1", "example.com", "admins"])
        {
            assert!(!contains(value, needle), "Redis holds {needle:?} in clear");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_and_mutual_tls() {
    use session_store::RedisTls;
    let (server, pem) = RedisServer::start_tls(false);
    let mut config = RedisConfig::new(server.url());
    assert!(
        RedisStore::connect(config.clone()).await.is_err(),
        "a server cert from an unknown CA is refused"
    );
    config.tls = Some(RedisTls {
        ca_pem: Some(pem.ca_pem.clone()),
        ..RedisTls::default()
    });
    let store = RedisStore::connect(config).await.expect("TLS with the private CA");
    store
        .put(&key(1), b"over tls", Duration::from_secs(60), &[])
        .await
        .expect("put");
    assert_eq!(
        store.get(&key(1)).await.expect("get").as_deref(),
        Some(&b"over tls"[..])
    );

    let (mutual, pem) = RedisServer::start_tls(true);
    let mut config = RedisConfig::new(mutual.url());
    config.tls = Some(RedisTls {
        ca_pem: Some(pem.ca_pem.clone()),
        ..RedisTls::default()
    });
    assert!(
        RedisStore::connect(config.clone()).await.is_err(),
        "mutual TLS without a client cert is refused"
    );
    config.tls = Some(RedisTls {
        ca_pem: Some(pem.ca_pem),
        client_cert_pem: Some(pem.client_cert_pem),
        client_key_pem: Some(pem.client_key_pem.into()),
    });
    RedisStore::connect(config)
        .await
        .expect("mutual TLS with a client cert")
        .ping()
        .await
        .expect("ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_opens_the_circuit_and_calls_fail_fast_until_it_is_back() {
    let mut server = RedisServer::start(None);
    let mut config = RedisConfig::new(server.url());
    config.timeout = Duration::from_millis(300);
    config.circuit_failures = 3;
    config.circuit_open_for = Duration::from_millis(500);
    let store = RedisStore::connect(config).await.expect("connect");
    server.stop();
    for _ in 0..3 {
        let err = store.get(&key(1)).await.expect_err("redis is gone");
        assert!(
            matches!(err, StoreError::Unavailable(_) | StoreError::Timeout),
            "{err:?}"
        );
    }
    let started = Instant::now();
    for _ in 0..100 {
        assert!(matches!(store.get(&key(1)).await, Err(StoreError::CircuitOpen)));
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "an open circuit answers at once: 100 calls took {:?}",
        started.elapsed()
    );
    server.restart();
    let start = Instant::now();
    while store.put(&key(1), b"back", Duration::from_secs(60), &[]).await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(15), "the circuit never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.get(&key(1)).await.expect("get").as_deref(), Some(&b"back"[..]));
}
