//! The embedded store against the conformance suite, plus its bound.

mod support;

use std::sync::Arc;
use std::time::Duration;

use session_store::{MemoryStore, SessionStore};
use support::{conformance, key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_conformance_suite() {
    let store = MemoryStore::new(10_000);
    conformance::run(Arc::new(store.clone()), Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_is_bounded() {
    let store = MemoryStore::new(100);
    for i in 0..1_000 {
        store
            .put(&key(i), b"v", Duration::from_secs(60), &[])
            .await
            .expect("put");
    }
    assert!(store.len() <= 100, "holds {} sessions with a bound of 100", store.len());
    assert!(
        store.get(&key(999)).await.expect("get").is_some(),
        "recent sessions stay"
    );
}
