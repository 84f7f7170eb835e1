//! The Redis store on a Redis Cluster (3 masters with a replica each, real processes):
//! conformance, sessions spread over the masters, and a master killed under load.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store::{ClusterTarget, IndexKey, NodeAuth, RedisConfig, RedisStore, RedisTarget, SessionStore};
use support::load::Load;
use support::{conformance, key, RELAXED, TIMEOUT};
use testkit::redis_group::RedisCluster;

fn config(cluster: &RedisCluster, timeout: Duration) -> RedisConfig {
    let mut c = RedisConfig::with_target(RedisTarget::Cluster(ClusterTarget {
        nodes: cluster.addrs()[..2].to_vec(),
        auth: NodeAuth::default(),
        tls: false,
    }));
    c.timeout = timeout;
    c
}

async fn connect(cluster: &RedisCluster, timeout: Duration) -> RedisStore {
    RedisStore::connect(config(cluster, timeout))
        .await
        .expect("connect to the cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_store_passes_the_conformance_suite() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(3));
    let a = connect(&cluster, RELAXED).await;
    let b = connect(&cluster, RELAXED).await;
    conformance::run(Arc::new(a), Arc::new(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_loses_no_acknowledged_session() {
    let mut cluster = tokio::task::block_in_place(|| RedisCluster::start(3));
    let store = Arc::new(connect(&cluster, TIMEOUT).await);

    // Sessions written before the failover, each with its sid index, each acknowledged
    // by the replica of every master it touched (under the relaxed bound: they set the
    // stage; the calls timed are the load's, through `store`).
    let writer = connect(&cluster, RELAXED).await;
    for n in 0..300 {
        let sid = [IndexKey::from_text(format!("sid:{n}"))];
        writer
            .put(
                &key(n),
                format!("session {n}").as_bytes(),
                Duration::from_secs(300),
                &sid,
            )
            .await
            .expect("put (acknowledged by a replica)");
    }
    let spread = cluster.keys_per_master();
    println!("keys per master: {spread:?}");
    assert_eq!(spread.len(), 3);
    assert!(
        spread.iter().all(|&n| n > 100),
        "sessions spread over every master: {spread:?}"
    );

    let load = Load::start(store.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let victim = cluster.masters()[0];
    let killed = Instant::now();
    cluster.node(victim).kill();
    tokio::task::block_in_place(|| cluster.wait_for_failover(3, Duration::from_secs(30)));
    let promoted = killed.elapsed();
    // Its shard has no replica left, so its writes are refused (replicas_to_ack 1)
    // until the node is back (as an orchestrator restarts it) and has synced as a replica.
    tokio::task::block_in_place(|| cluster.node(victim).restart());
    let seen = load.until_recovered(killed, promoted).await;
    let slowest = seen.slowest_ms;
    println!(
        "cluster failover: master {victim} killed, cluster ok again after {:.1} s; store calls failed {} times, \
         last failure {:.1} s after the kill; slowest call {slowest} ms",
        promoted.as_secs_f64(),
        seen.failed,
        seen.last_failure.as_secs_f64()
    );
    // A put is several bounded calls' worth: the index set and the session, each waited for.
    assert!(slowest <= 1_500, "a call hung for {slowest} ms");

    for n in 0..300 {
        assert_eq!(
            store.get(&key(n)).await.expect("get after failover").as_deref(),
            Some(format!("session {n}").as_bytes()),
            "session {n} was acknowledged before the failover and must survive it"
        );
    }
    // Index entries survived too: deleting by sid finds the session.
    let gone = store
        .delete_indexed(&IndexKey::from_text("sid:42"))
        .await
        .expect("delete by sid");
    assert_eq!(gone, vec![key(42)]);
}
