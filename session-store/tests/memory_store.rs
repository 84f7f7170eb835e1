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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_store_waits_for_a_late_connection_and_forwards_revocations() {
    use session_store::DeferredStore;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let attempts = Arc::new(AtomicUsize::new(0));
    let real = MemoryStore::new(100);
    let (a, r) = (attempts.clone(), real.clone());
    let (deferred, _task) =
        DeferredStore::spawn(&tokio::runtime::Handle::current(), Duration::from_secs(5), move || {
            let (a, r) = (a.clone(), r.clone());
            async move {
                // Fails twice (backend away), then connects.
                if a.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(session_store::StoreError::Timeout)
                } else {
                    Ok(Arc::new(r) as Arc<dyn SessionStore>)
                }
            }
        });
    let mut rx = deferred.revocations();
    deferred
        .put(&key(1), b"v", Duration::from_secs(60), &[])
        .await
        .expect("waits, then succeeds");
    assert!(deferred.is_ready());
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    real.delete(&key(1)).await.expect("delete on the real store");
    assert_eq!(
        conformance::wait_for_session_revocation(&mut rx, Duration::from_secs(2)).await,
        Some(key(1))
    );

    let tries = Arc::new(AtomicUsize::new(0));
    let t = tries.clone();
    let (never, task) = DeferredStore::spawn(
        &tokio::runtime::Handle::current(),
        Duration::from_millis(200),
        move || {
            t.fetch_add(1, Ordering::SeqCst);
            async { Err::<Arc<dyn SessionStore>, _>(session_store::StoreError::Timeout) }
        },
    );
    assert!(
        matches!(never.get(&key(1)).await, Err(session_store::StoreError::Timeout)),
        "bounded wait"
    );
    // Its owner stops the connecting task (a config reload): no retries after that.
    task.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped_at = tries.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(tries.load(Ordering::SeqCst), stopped_at, "no attempt after abort");
}
