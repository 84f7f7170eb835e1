//! One behavioural suite every `SessionStore` must pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store::{IndexKey, Revocation, SessionStore};

use super::key;

pub async fn put_get_delete(store: &dyn SessionStore) {
    let k = key(1);
    assert_eq!(store.get(&k).await.expect("get"), None);
    store
        .put(&k, b"sealed-bytes", Duration::from_secs(60), &[])
        .await
        .expect("put");
    assert_eq!(store.get(&k).await.expect("get").as_deref(), Some(&b"sealed-bytes"[..]));
    store
        .put(&k, b"replaced", Duration::from_secs(60), &[])
        .await
        .expect("overwrite");
    assert_eq!(store.get(&k).await.expect("get").as_deref(), Some(&b"replaced"[..]));
    assert!(store.delete(&k).await.expect("delete"));
    assert!(
        !store.delete(&k).await.expect("second delete"),
        "deleting twice reports absence"
    );
    assert_eq!(store.get(&k).await.expect("get"), None);
}

/// An update replaces a live session and never recreates a deleted one (a sign-out
/// racing an idle-expiry write must win), keeping it findable by its index.
pub async fn update_never_recreates(store: &dyn SessionStore) {
    let k = key(40);
    let sid = IndexKey::from_text("sid:update");
    let one = std::slice::from_ref(&sid);
    assert!(
        !store
            .update(&k, b"ghost", Duration::from_secs(60), one)
            .await
            .expect("update"),
        "nothing to update"
    );
    assert_eq!(store.get(&k).await.expect("get"), None, "an update creates nothing");
    store.put(&k, b"v1", Duration::from_secs(60), one).await.expect("put");
    assert!(store
        .update(&k, b"v2", Duration::from_secs(120), one)
        .await
        .expect("update"));
    assert_eq!(store.get(&k).await.expect("get").as_deref(), Some(&b"v2"[..]));
    assert!(store.delete(&k).await.expect("delete"));
    assert!(
        !store
            .update(&k, b"v3", Duration::from_secs(60), one)
            .await
            .expect("update"),
        "deleted stays deleted"
    );
    assert_eq!(store.get(&k).await.expect("get"), None);
    let k2 = key(41);
    store.put(&k2, b"w1", Duration::from_secs(60), one).await.expect("put");
    store
        .update(&k2, b"w2", Duration::from_secs(60), one)
        .await
        .expect("update");
    assert_eq!(store.delete_indexed(&sid).await.expect("delete by index"), vec![k2]);
    assert_eq!(store.get(&k2).await.expect("get"), None);
}

pub async fn ttl_expiry(store: &dyn SessionStore) {
    let short = key(2);
    let long = key(3);
    store
        .put(&short, b"short", Duration::from_millis(300), &[])
        .await
        .expect("put");
    store
        .put(&long, b"long", Duration::from_secs(60), &[])
        .await
        .expect("put");
    assert!(store.get(&short).await.expect("get").is_some());
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(store.get(&short).await.expect("get"), None, "expired after its TTL");
    assert!(store.get(&long).await.expect("get").is_some(), "others keep theirs");
}

pub async fn index_deletes_exactly_its_members(store: &dyn SessionStore) {
    let sid_a = IndexKey::from_text("sid:aaaa");
    let sid_b = IndexKey::from_text("sid:bbbb");
    let sub = IndexKey::from_text("sub:alice");
    let ttl = Duration::from_secs(60);
    store
        .put(&key(10), b"1", ttl, &[sid_a.clone(), sub.clone()])
        .await
        .expect("put");
    store
        .put(&key(11), b"2", ttl, &[sid_a.clone(), sub.clone()])
        .await
        .expect("put");
    store
        .put(&key(12), b"3", ttl, &[sid_b.clone(), sub.clone()])
        .await
        .expect("put");
    let mut gone = store.delete_indexed(&sid_a).await.expect("delete sid a");
    gone.sort();
    assert_eq!(gone, vec![key(10), key(11)]);
    assert_eq!(store.get(&key(10)).await.expect("get"), None);
    assert_eq!(store.get(&key(11)).await.expect("get"), None);
    assert!(
        store.get(&key(12)).await.expect("get").is_some(),
        "another sid is untouched"
    );
    assert!(store.delete_indexed(&sid_a).await.expect("again").is_empty());
    assert_eq!(
        store.delete_indexed(&sub).await.expect("by subject"),
        vec![key(12)],
        "subject index"
    );
}

pub async fn lock_is_exclusive_under_50_contenders(store: Arc<dyn SessionStore>) {
    let k = key(20);
    let ttl = Duration::from_secs(5);
    let contenders: Vec<_> = (0..50)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.try_lock(&k, ttl).await.expect("try_lock") })
        })
        .collect();
    let mut winners = Vec::new();
    for c in contenders {
        if let Some(token) = c.await.expect("join") {
            winners.push(token);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of 50 contenders holds the lock");
    let winner = winners.remove(0);

    let stranger = store.try_lock(&key(21), ttl).await.expect("other key").expect("free");
    store.unlock(&k, &stranger).await.expect("unlock with a foreign token");
    assert!(
        store.try_lock(&k, ttl).await.expect("try").is_none(),
        "a foreign token does not release it"
    );

    store.unlock(&k, &winner).await.expect("unlock");
    assert!(
        store
            .try_lock(&k, Duration::from_millis(200))
            .await
            .expect("try")
            .is_some(),
        "free after unlock"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        store.try_lock(&k, ttl).await.expect("try").is_some(),
        "a lock expires by itself"
    );
}

/// A deletion on `a` reaches subscribers of `b` (another instance on the same data).
pub async fn revocation_reaches_another_instance(a: &dyn SessionStore, b: &dyn SessionStore) {
    let mut rx = b.revocations();
    let k = key(30);
    a.put(&k, b"x", Duration::from_secs(60), &[IndexKey::from_text("sid:rev")])
        .await
        .expect("put");
    a.delete(&k).await.expect("delete");
    let got = wait_for_session_revocation(&mut rx, Duration::from_secs(5)).await;
    assert_eq!(got, Some(k));
    a.put(
        &key(31),
        b"y",
        Duration::from_secs(60),
        &[IndexKey::from_text("sid:rev2")],
    )
    .await
    .expect("put");
    a.delete_indexed(&IndexKey::from_text("sid:rev2"))
        .await
        .expect("delete indexed");
    assert_eq!(
        wait_for_session_revocation(&mut rx, Duration::from_secs(5)).await,
        Some(key(31))
    );
}

pub async fn wait_for_session_revocation(
    rx: &mut tokio::sync::broadcast::Receiver<Revocation>,
    limit: Duration,
) -> Option<session_store::StoreKey> {
    let start = Instant::now();
    while start.elapsed() < limit {
        match tokio::time::timeout(limit - start.elapsed(), rx.recv()).await {
            Ok(Ok(Revocation::Session(k))) => return Some(k),
            Ok(Ok(Revocation::All)) => continue,
            _ => return None,
        }
    }
    None
}

/// A one-time id is new exactly once, on every instance, until its time is up.
pub async fn first_sighting_is_once_across_instances(a: Arc<dyn SessionStore>, b: Arc<dyn SessionStore>) {
    let k = key(31);
    let ttl = Duration::from_millis(400);
    let contenders: Vec<_> = (0..20)
        .map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { s.first_sighting(&k, ttl).await.expect("first_sighting") })
        })
        .collect();
    let mut firsts = 0;
    for c in contenders {
        firsts += usize::from(c.await.expect("join"));
    }
    assert_eq!(firsts, 1, "exactly one of 20 sightings is the first");
    assert!(
        a.first_sighting(&key(32), ttl).await.expect("other id"),
        "ids are independent"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        b.first_sighting(&k, ttl).await.expect("again"),
        "forgotten after its ttl"
    );
}

/// Runs the whole suite; `second` is another instance over the same data.
pub async fn run(store: Arc<dyn SessionStore>, second: Arc<dyn SessionStore>) {
    put_get_delete(store.as_ref()).await;
    update_never_recreates(store.as_ref()).await;
    ttl_expiry(store.as_ref()).await;
    index_deletes_exactly_its_members(store.as_ref()).await;
    lock_is_exclusive_under_50_contenders(store.clone()).await;
    revocation_reaches_another_instance(store.as_ref(), second.as_ref()).await;
    first_sighting_is_once_across_instances(store, second).await;
}
