//! Sessions end to end over the memory store: two "replicas" sharing one store.

mod support;

use std::sync::Arc;
use std::time::Duration;

use session_store::{Check, MemoryStore, OpenError, SessionCache, SessionStore, Sessions};
use support::{contains, ring, session, SECRET_TOKENS};

const NOW: u64 = 1_700_000_000;

fn replica(store: &MemoryStore) -> Sessions {
    let store: Arc<dyn SessionStore> = Arc::new(store.clone());
    Sessions::new(
        ring(),
        store,
        SessionCache::new(1_000, Duration::from_secs(60)),
        "__Host-oidc".into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_hit_then_miss_and_load_on_another_replica() {
    let store = MemoryStore::new(1_000);
    let (a, b) = (replica(&store), replica(&store));
    let (cookie, _, created) = a.create(session("alice", "sid-1", NOW), NOW).await.expect("create");
    assert!(
        !cookie.contains("alice") && cookie.len() < 200,
        "the cookie holds a ticket, not the session"
    );

    match a.check(&cookie, NOW + 1) {
        Check::Hit(s, _) => assert_eq!(s.subject, "alice"),
        other => panic!("expected a hit, got {other:?}"),
    }
    let ticket = match b.check(&cookie, NOW + 1) {
        Check::Miss(t) => t,
        other => panic!("another replica has no cache entry yet: {other:?}"),
    };
    let loaded = b.load(&ticket, NOW + 1).await.expect("load").expect("present");
    assert_eq!(*loaded, *created);
    assert!(
        matches!(b.check(&cookie, NOW + 2), Check::Hit(..)),
        "loaded sessions are cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cookies_are_invalid_without_io() {
    let store = MemoryStore::new(1_000);
    let a = replica(&store);
    let (cookie, _, _) = a.create(session("alice", "sid-1", NOW), NOW).await.expect("create");
    let mut tampered = cookie.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    assert!(matches!(
        a.check(&tampered, NOW),
        Check::Invalid(OpenError::Tampered | OpenError::Malformed)
    ));
    assert!(
        matches!(a.check(&cookie, NOW + 3_600), Check::Invalid(OpenError::Expired)),
        "absolute expiry"
    );
    let foreign = Sessions::new(
        Arc::new(session_store::KeyRing::from_secrets(&[[1u8; 32]]).expect("ring")),
        Arc::new(store.clone()),
        SessionCache::new(10, Duration::from_secs(60)),
        "__Host-oidc".into(),
    );
    assert!(matches!(
        foreign.check(&cookie, NOW),
        Check::Invalid(OpenError::UnknownKey)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_end_and_touch_extends_them() {
    let store = MemoryStore::new(1_000);
    let a = replica(&store);
    let (cookie, ticket, created) = a.create(session("alice", "sid-1", NOW), NOW).await.expect("create");
    let idle_end = created.idle_expires_at;
    assert!(
        matches!(a.check(&cookie, idle_end), Check::Miss(_)),
        "an idle session is not a hit"
    );
    assert!(a.load(&ticket, idle_end).await.expect("load").is_none(), "nor loadable");

    let mut touched = (*created).clone();
    touched.touch(
        NOW + 1_000,
        session_store::Lifetimes {
            absolute_secs: 3_600,
            idle_secs: 1_800,
        },
    );
    a.save(&ticket, touched, NOW + 1_000).await.expect("save");
    assert!(
        matches!(a.check(&cookie, idle_end), Check::Hit(..)),
        "touch pushed the idle expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_write_of_an_older_use_never_moves_the_cache_back() {
    let store = MemoryStore::new(1_000);
    let a = replica(&store);
    let (cookie, ticket, created) = a.create(session("alice", "sid-1", NOW), NOW).await.expect("create");
    let life = session_store::Lifetimes {
        absolute_secs: 3_600,
        idle_secs: 1_800,
    };
    let (mut older, mut newer) = ((*created).clone(), (*created).clone());
    older.touch(NOW + 100, life);
    newer.touch(NOW + 200, life);
    a.save(&ticket, newer.clone(), NOW + 200).await.expect("newer");
    // The write of the earlier use finishes last.
    let kept = a.save(&ticket, older, NOW + 100).await.expect("older");
    assert_eq!(kept.expect("still there").last_used_at, NOW + 200);
    match a.check(&cookie, NOW + 200 + 1_750) {
        Check::Hit(s, _) => assert_eq!(s.idle_expires_at, newer.idle_expires_at),
        other => panic!("the later use is what the cache keeps: {other:?}"),
    }
}

/// Cached copies hold only what requests read (memory per session); a copy marked used
/// is written back as the stored session with new use times, never without its tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_copies_leave_tokens_in_the_store_and_touches_keep_them() {
    let store = MemoryStore::new(1_000);
    let a = replica(&store);
    let (cookie, ticket, _) = a.create(session("alice", "sid-1", NOW), NOW).await.expect("create");
    let Check::Hit(cached, _) = a.check(&cookie, NOW + 1) else {
        panic!("cached after create")
    };
    assert!(cached.tokens.refresh.is_none() && cached.tokens.id_token.is_none());
    assert!(cached.left_in_store.refresh && cached.left_in_store.id_token && cached.has_refresh());
    assert_eq!(
        cached.tokens.access.secret(),
        SECRET_TOKENS[0],
        "kept by default (forwarding)"
    );
    let life = session_store::Lifetimes {
        absolute_secs: 3_600,
        idle_secs: 1_800,
    };
    let mut touched = (*cached).clone();
    touched.touch(NOW + 500, life);
    a.save(&ticket, touched, NOW + 500).await.expect("save").expect("live");
    // Another replica (empty cache) reads the store: every token is still there.
    let b = replica(&store);
    let Check::Miss(t) = b.check(&cookie, NOW + 501) else {
        panic!("b has nothing cached")
    };
    let full = b.load(&t, NOW + 501).await.expect("load").expect("live");
    assert_eq!(full.tokens.refresh.as_ref().map(|r| r.secret()), Some(SECRET_TOKENS[1]));
    assert_eq!(
        full.tokens.id_token.as_ref().map(|r| r.secret()),
        Some(SECRET_TOKENS[2])
    );
    assert_eq!(full.last_used_at, NOW + 500, "the touch landed");
    assert!(!full.is_partial());

    // Without forwarding, the access token stays in the store too.
    let slim = Sessions::new(
        ring(),
        Arc::new(store.clone()) as Arc<dyn SessionStore>,
        SessionCache::new(1_000, Duration::from_secs(60)).keep_access_token(false),
        "__Host-oidc".into(),
    );
    let Check::Miss(t) = slim.check(&cookie, NOW + 502) else {
        panic!("nothing cached yet")
    };
    assert!(
        slim.load(&t, NOW + 502)
            .await
            .expect("load")
            .is_some_and(|s| !s.is_partial()),
        "load returns it whole"
    );
    let Check::Hit(cached, _) = slim.check(&cookie, NOW + 503) else {
        panic!("cached by the load")
    };
    assert!(cached.left_in_store.access && cached.tokens.access.secret().is_empty());
}

/// Found by the soak benchmark: an idle-expiry update in flight when the session was
/// signed out wrote it back to the store, and another replica kept admitting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_racing_a_sign_out_never_brings_the_session_back() {
    let store = MemoryStore::new(1_000);
    let (a, b) = (replica(&store), replica(&store));
    let (cookie, ticket, created) = a.create(session("alice", "sid-1", NOW), NOW).await.expect("create");
    let life = session_store::Lifetimes {
        absolute_secs: 3_600,
        idle_secs: 1_800,
    };
    let mut touched = (*created).clone();
    touched.touch(NOW + 100, life);
    // The sign-out lands first; the touch read before it is written after it.
    a.delete(&ticket).await.expect("sign out");
    assert!(
        a.save(&ticket, touched, NOW + 100).await.expect("save").is_none(),
        "an ended session is not written again"
    );
    assert!(store.is_empty(), "nothing in the store");
    for (name, r) in [("a", &a), ("b", &b)] {
        match r.check(&cookie, NOW + 101) {
            Check::Miss(t) => assert!(
                r.load(&t, NOW + 101).await.expect("load").is_none(),
                "{name} loads nothing"
            ),
            other => panic!("{name} still admits a signed-out session: {other:?}"),
        }
    }
}

/// A store read that began before a revocation arrived must not put the session back
/// into the cache after it (the other half of the race).
#[test]
fn a_read_finishing_after_a_revocation_is_not_cached() {
    use session_store::Revocation;
    let cache = SessionCache::new(100, std::time::Duration::from_secs(60));
    let s = Arc::new(session("alice", "sid-1", NOW));
    let k = support::key(1);
    let start = cache.read_start();
    cache.apply(Revocation::Session(k));
    assert!(!cache.insert_read(k, s.clone(), start), "revoked while being read");
    assert!(cache.get(&k).is_none());
    assert!(!cache.insert(k, s.clone()), "and not by a later write either");
    let other = support::key(2);
    let start = cache.read_start();
    cache.apply(Revocation::All);
    assert!(
        !cache.insert_read(other, s.clone(), start),
        "everything dropped while it was read"
    );
    assert!(cache.get(&other).is_none());
    assert!(
        cache.insert_read(other, s, cache.read_start()),
        "a read begun afterwards is cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_channel_logout_by_sid_evicts_every_replica_cache() {
    let store = MemoryStore::new(1_000);
    let (a, b) = (replica(&store), replica(&store));
    tokio::spawn(a.follow_revocations());
    tokio::spawn(b.follow_revocations());
    let (c1, _, _) = a.create(session("alice", "sid-1", NOW), NOW).await.expect("create");
    let (c2, _, _) = a
        .create(session("alice", "sid-1", NOW), NOW)
        .await
        .expect("second tab, same IdP session");
    let (c3, _, _) = a
        .create(session("alice", "sid-2", NOW), NOW)
        .await
        .expect("other IdP session");
    for c in [&c1, &c2, &c3] {
        if let Check::Miss(t) = b.check(c, NOW) {
            b.load(&t, NOW).await.expect("load");
        }
        assert!(matches!(b.check(c, NOW), Check::Hit(..)));
    }

    assert_eq!(
        a.delete_by_sid("https://idp.example", "sid-1").await.expect("logout"),
        2
    );
    let evicted =
        support_wait(|| matches!(b.check(&c1, NOW), Check::Miss(_)) && matches!(b.check(&c2, NOW), Check::Miss(_)))
            .await;
    assert!(evicted, "replica b dropped both sessions of sid-1");
    assert!(matches!(b.check(&c3, NOW), Check::Hit(..)), "sid-2 is untouched");
    if let Check::Miss(t) = b.check(&c1, NOW) {
        assert!(
            b.load(&t, NOW).await.expect("load").is_none(),
            "gone from the store too"
        );
    }

    assert_eq!(
        b.delete_by_subject("https://idp.example", "alice")
            .await
            .expect("by subject"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_bytes_and_debug_output_hold_no_tokens() {
    let store = MemoryStore::new(1_000);
    let a = replica(&store);
    let (cookie, ticket, s) = a.create(session("alice", "sid-1", NOW), NOW).await.expect("create");
    for raw in store.raw_values() {
        for t in SECRET_TOKENS {
            assert!(!contains(&raw, t), "store holds {t} in clear");
        }
    }
    let shown = format!("{:?} {:?} {:?} {:?} {:?}", a, ticket, s, a.check(&cookie, NOW), store);
    for t in SECRET_TOKENS {
        assert!(!shown.contains(t), "Debug shows {t}: {shown}");
    }
}

async fn support_wait(cond: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotated_in_place_keep_sessions_the_new_ring_still_holds() {
    let store = MemoryStore::new(1_000);
    let a = replica(&store);
    let old = [7u8; 32];
    let new = [9u8; 32];
    a.sealer()
        .replace_ring(Arc::new(session_store::KeyRing::from_secrets(&[old]).expect("ring")));
    let (before, _, _) = a.create(session("alice", "sid-1", NOW), NOW).await.expect("create");

    // The new key first, the old one kept: old cookies open, new ones use the new key.
    a.sealer().replace_ring(Arc::new(
        session_store::KeyRing::from_secrets(&[new, old]).expect("ring"),
    ));
    assert!(
        matches!(a.check(&before, NOW + 1), Check::Hit(..)),
        "sealed under a kept key"
    );
    let (after, _, _) = a.create(session("bob", "sid-2", NOW), NOW).await.expect("create");

    // The old key dropped: its sessions end, the new key's stay.
    a.sealer()
        .replace_ring(Arc::new(session_store::KeyRing::from_secrets(&[new]).expect("ring")));
    assert!(matches!(
        a.check(&before, NOW + 2),
        Check::Invalid(OpenError::UnknownKey)
    ));
    match a.check(&after, NOW + 2) {
        Check::Hit(s, _) => assert_eq!(s.subject, "bob"),
        other => panic!("sealed under the new key: {other:?}"),
    }
}
