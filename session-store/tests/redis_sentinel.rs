//! The Redis store on a Sentinel-managed master (1 master, 2 replicas, 3 sentinels, real
//! processes): conformance, and a master killed under load.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store::{
    NodeAuth, RedisConfig, RedisStore, RedisTarget, Revocation, SentinelTarget, SessionStore, StoreError,
};
use support::load::Load;
use support::{conformance, key, RELAXED, TIMEOUT};
use testkit::redis_group::{SentinelGroup, MASTER_NAME};

fn config(group: &SentinelGroup, timeout: Duration) -> RedisConfig {
    let mut c = RedisConfig::with_target(RedisTarget::Sentinel(SentinelTarget {
        master: MASTER_NAME.into(),
        sentinels: group.sentinel_addrs(),
        sentinel_auth: NodeAuth::default(),
        auth: NodeAuth::default(),
        db: 0,
        tls: false,
        check_interval: Duration::from_secs(5),
    }));
    c.timeout = timeout;
    c
}

async fn connect(group: &SentinelGroup, timeout: Duration) -> RedisStore {
    RedisStore::connect(config(group, timeout))
        .await
        .expect("connect through the sentinels")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_store_passes_the_conformance_suite() {
    let group = tokio::task::block_in_place(|| SentinelGroup::start(2, 3));
    let a = connect(&group, RELAXED).await;
    let b = connect(&group, RELAXED).await;
    conformance::run(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_loses_no_acknowledged_session() {
    let mut group = tokio::task::block_in_place(|| SentinelGroup::start(2, 3));
    let old = group.master_port().expect("a master");
    let store = Arc::new(connect(&group, TIMEOUT).await);
    let other = connect(&group, TIMEOUT).await;
    let mut revocations = other.revocations();

    // Sessions written before the failover: each put returned only after a replica held it
    // (under the relaxed bound: they set the stage; the calls timed are the load's).
    let writer = connect(&group, RELAXED).await;
    for n in 0..200 {
        writer
            .put(
                &key(n),
                format!("session {n}").as_bytes(),
                Duration::from_secs(300),
                &[],
            )
            .await
            .expect("put (acknowledged by a replica)");
    }

    // Load: puts and gets in a loop, timing each call and counting failures.
    let load = Load::start(store.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    group.node(old).kill();
    let new = tokio::task::block_in_place(|| group.wait_for_new_master(old, Duration::from_secs(30)));
    let promoted = killed.elapsed();
    // Load keeps running until calls have succeeded for 2 s in a row.
    let seen = load.until_recovered(killed, promoted).await;
    let slowest = seen.slowest_ms;
    println!(
        "sentinel failover: master {old} -> {new} promoted after {:.1} s; store calls failed {} times, \
         last failure {:.1} s after the kill; slowest call {slowest} ms",
        promoted.as_secs_f64(),
        seen.failed,
        seen.last_failure.as_secs_f64()
    );
    // Each call is bounded by the timeout (500 ms; a put also waits up to 250 ms for its replica).
    assert!(slowest <= 1_000, "a call hung for {slowest} ms");

    for n in 0..200 {
        assert_eq!(
            store.get(&key(n)).await.expect("get after failover").as_deref(),
            Some(format!("session {n}").as_bytes()),
            "session {n} was acknowledged before the failover and must survive it"
        );
    }

    // The old master comes back as a replica: writes still go to the new master only.
    tokio::task::block_in_place(|| group.node(old).restart());
    tokio::time::sleep(Duration::from_secs(3)).await;
    store
        .put(&key(5_000), b"after", Duration::from_secs(300), &[])
        .await
        .expect("put after the old master came back");
    let on_new: Option<Vec<u8>> = group
        .node(new)
        .cmd(&["GET", &format!("oidc:s:{{{:064x}}}", 5_000)])
        .expect("read the new master");
    assert_eq!(on_new.as_deref(), Some(&b"after"[..]));

    // Revocations follow the master: a delete on one instance reaches the other.
    let mut saw = None;
    let start = Instant::now();
    while saw.is_none() && start.elapsed() < Duration::from_secs(10) {
        store.delete(&key(7)).await.ok();
        store.put(&key(7), b"again", Duration::from_secs(300), &[]).await.ok();
        store.delete(&key(7)).await.ok();
        let until = Instant::now() + Duration::from_millis(500);
        while let Ok(Ok(r)) = tokio::time::timeout_at(until.into(), revocations.recv()).await {
            if r == Revocation::Session(key(7)) {
                saw = Some(r);
                break;
            }
        }
    }
    assert_eq!(
        saw,
        Some(Revocation::Session(key(7))),
        "revocations reach the other instance after the failover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_replica_left_writes_fail_clearly_and_reads_go_on() {
    let mut group = tokio::task::block_in_place(|| SentinelGroup::start(1, 3));
    let store = connect(&group, TIMEOUT).await;
    connect(&group, RELAXED)
        .await
        .put(&key(1), b"kept", Duration::from_secs(300), &[])
        .await
        .expect("put with a replica");
    let replica = group.nodes[1].port;
    group.node(replica).kill();
    let started = Instant::now();
    match store.put(&key(2), b"unsafe", Duration::from_secs(300), &[]).await {
        Err(StoreError::NotReplicated { acked: 0, wanted: 1 }) => {}
        other => panic!("a write no replica holds must fail, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(600), "bounded by the timeout");
    assert_eq!(
        store.get(&key(1)).await.expect("reads go on").as_deref(),
        Some(&b"kept"[..])
    );
}
