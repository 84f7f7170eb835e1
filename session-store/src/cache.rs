//! The in-process session cache every request consults synchronously (shared by all
//! Envoy workers): bounded, with a TTL, and evicted by revocations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use rustc_hash::FxBuildHasher;
use tokio::sync::broadcast;

use crate::session::Session;
use crate::store::Revocation;
use crate::ticket::StoreKey;

/// Decrypted sessions by store key, and what was revoked lately: a session read from
/// the store (or updated) just before its revocation arrived must not be cached after it.
#[derive(Clone)]
pub struct SessionCache {
    entries: Cache<StoreKey, Arc<Session>, FxBuildHasher>,
    /// Keys revoked within the last `ttl`: never cached again.
    revoked: Cache<StoreKey, (), FxBuildHasher>,
    /// Counts `Revocation::All`: a read begun before one is not cached.
    epoch: Arc<AtomicU64>,
    /// Whether cached copies keep the access token (it is forwarded upstream).
    keep_access: bool,
}

/// When a store read began, for [`SessionCache::insert_read`].
#[derive(Clone, Copy, Debug)]
pub struct ReadStart(u64);

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl SessionCache {
    /// At most `capacity` sessions, each kept at most `ttl` (the bound on how long a
    /// revocation missed by pub/sub can go unnoticed).
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        // LRU, not TinyLFU: a session just created or loaded must be admitted. Fx, not
        // SipHash: a key is an HMAC (uniform, and only a sealed ticket that opened reaches
        // the cache, so no client picks keys); SipHash cost every hit 0.3k instructions.
        let entries = Cache::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            .eviction_policy(EvictionPolicy::lru())
            .build_with_hasher(FxBuildHasher);
        // A read or write in flight when its session is revoked ends within the store's
        // timeout, far below the cache's TTL; a tombstone outlives it.
        let revoked = Cache::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            .build_with_hasher(FxBuildHasher);
        Self {
            entries,
            revoked,
            epoch: Arc::default(),
            keep_access: true,
        }
    }

    /// Whether cached copies keep the access token: only needed when requests forward
    /// it. Without it (and always without the refresh and ID tokens, which only the
    /// refresh and sign-out paths read, from the store) a cached session takes about a
    /// third of the memory of the stored one with JWT-sized tokens.
    pub fn keep_access_token(mut self, keep: bool) -> Self {
        self.keep_access = keep;
        self
    }

    /// The cached session, if any. Lock-free read, no I/O.
    pub fn get(&self, key: &StoreKey) -> Option<Arc<Session>> {
        self.entries.get(key)
    }

    /// Caches a session unless it was revoked lately; false if refused.
    pub fn insert(&self, key: StoreKey, session: Arc<Session>) -> bool {
        let session = if session.tokens.refresh.is_some()
            || session.tokens.id_token.is_some()
            || (!self.keep_access && !session.left_in_store.access)
        {
            Arc::new(session.for_cache(self.keep_access))
        } else {
            session
        };
        // Insert first, then look for a tombstone: a revocation applied at any point
        // either leaves its tombstone for this check or invalidates after the insert.
        self.entries.insert(key, session);
        if self.revoked.contains_key(&key) {
            self.entries.invalidate(&key);
            return false;
        }
        true
    }

    /// Marks the start of a store read whose result may be cached.
    pub fn read_start(&self) -> ReadStart {
        ReadStart(self.epoch.load(Ordering::SeqCst))
    }

    /// Caches a session read from the store since `start`, unless it was revoked
    /// lately or everything was dropped meanwhile; false if refused.
    pub fn insert_read(&self, key: StoreKey, session: Arc<Session>, start: ReadStart) -> bool {
        if !self.insert(key, session) {
            return false;
        }
        if self.epoch.load(Ordering::SeqCst) != start.0 {
            self.entries.invalidate(&key);
            return false;
        }
        true
    }

    /// True if `key` was revoked within the TTL.
    pub fn was_revoked(&self, key: &StoreKey) -> bool {
        self.revoked.contains_key(key)
    }

    /// Drops what a revocation names, and keeps it from coming back.
    pub fn apply(&self, revocation: Revocation) {
        match revocation {
            Revocation::Session(key) => {
                self.revoked.insert(key, ());
                self.entries.invalidate(&key);
            }
            Revocation::All => {
                self.epoch.fetch_add(1, Ordering::SeqCst);
                self.entries.invalidate_all();
            }
        }
    }

    /// Number of cached sessions (approximate; for metrics and tests).
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// True if nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies revocations until the store goes away; if this listener falls behind, it
    /// drops everything rather than keep a session that may have been revoked.
    pub async fn follow(self, mut revocations: broadcast::Receiver<Revocation>) {
        loop {
            match revocations.recv().await {
                Ok(r) => self.apply(r),
                Err(broadcast::error::RecvError::Lagged(_)) => self.apply(Revocation::All),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
