//! The in-process session cache every request consults synchronously (shared by all
//! Envoy workers): bounded, with a TTL, and evicted by revocations.

use std::sync::Arc;
use std::time::Duration;

use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use tokio::sync::broadcast;

use crate::session::Session;
use crate::store::Revocation;
use crate::ticket::StoreKey;

/// Decrypted sessions by store key.
#[derive(Clone)]
pub struct SessionCache {
    entries: Cache<StoreKey, Arc<Session>>,
}

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
        // LRU, not TinyLFU: a session just created or loaded must be admitted.
        let entries = Cache::builder()
            .max_capacity(capacity)
            .time_to_live(ttl)
            .eviction_policy(EvictionPolicy::lru())
            .build();
        Self { entries }
    }

    /// The cached session, if any. Lock-free read, no I/O.
    pub fn get(&self, key: &StoreKey) -> Option<Arc<Session>> {
        self.entries.get(key)
    }

    /// Caches a session.
    pub fn insert(&self, key: StoreKey, session: Arc<Session>) {
        self.entries.insert(key, session);
    }

    /// Drops what a revocation names.
    pub fn apply(&self, revocation: Revocation) {
        match revocation {
            Revocation::Session(key) => self.entries.invalidate(&key),
            Revocation::All => self.entries.invalidate_all(),
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
