//! The embedded store: one Envoy, nothing to install. Bounded, with per-entry TTLs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::notification::RemovalCause;
use moka::ops::compute::{CompResult, Op};
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use moka::Expiry;
use tokio::sync::broadcast;

use super::{new_lock_token, LockToken, Revocation, SessionStore, StoreError};
use crate::ticket::{IndexKey, StoreKey};

#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    index: Arc<[IndexKey]>,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<StoreKey, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &StoreKey, e: &Entry, _: Instant) -> Option<Duration> {
        Some(e.ttl)
    }
    fn expire_after_update(&self, _: &StoreKey, e: &Entry, _: Instant, _: Option<Duration>) -> Option<Duration> {
        Some(e.ttl)
    }
}

struct SeenTtl;

impl Expiry<StoreKey, Duration> for SeenTtl {
    fn expire_after_create(&self, _: &StoreKey, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

type Index = Arc<Mutex<HashMap<IndexKey, HashSet<StoreKey>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// In-process store; clones share the same data.
#[derive(Clone)]
pub struct MemoryStore {
    entries: Cache<StoreKey, Entry>,
    index: Index,
    locks: Arc<Mutex<HashMap<StoreKey, (LockToken, Instant)>>>,
    seen: Cache<StoreKey, Duration>,
    revoked: broadcast::Sender<Revocation>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl MemoryStore {
    /// A store holding at most `capacity` sessions (least recently used go first).
    pub fn new(capacity: u64) -> Self {
        let index: Index = Arc::default();
        let listener_index = index.clone();
        let entries = Cache::builder()
            .max_capacity(capacity)
            // LRU, not TinyLFU: a fresh login must never be refused admission.
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(PerEntryTtl)
            .eviction_listener(move |key: Arc<StoreKey>, entry: Entry, cause| {
                // Replaced entries keep their index; everything else leaves it.
                if cause != RemovalCause::Replaced {
                    let mut idx = lock(&listener_index);
                    for i in entry.index.iter() {
                        if let Some(set) = idx.get_mut(i) {
                            set.remove(&key);
                            if set.is_empty() {
                                idx.remove(i);
                            }
                        }
                    }
                }
            })
            .build();
        let (revoked, _) = broadcast::channel(1024);
        Self {
            entries,
            index,
            locks: Arc::default(),
            // Bounded like the sessions: a flood of one-time ids cannot grow it further.
            seen: Cache::builder().max_capacity(capacity).expire_after(SeenTtl).build(),
            revoked,
        }
    }

    /// Number of stored sessions (after pending evictions are applied).
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// True if no session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Raw stored values, for tests that check nothing is kept in plaintext.
    pub fn raw_values(&self) -> Vec<Arc<[u8]>> {
        self.entries.iter().map(|(_, e)| e.value.clone()).collect()
    }

    fn announce(&self, key: StoreKey) {
        // No receiver is fine: nobody caches yet.
        let _ = self.revoked.send(Revocation::Session(key));
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.entries.get(key).map(|e| e.value.to_vec()))
    }

    async fn put(&self, key: &StoreKey, value: &[u8], ttl: Duration, index: &[IndexKey]) -> Result<(), StoreError> {
        {
            let mut idx = lock(&self.index);
            for i in index {
                idx.entry(i.clone()).or_default().insert(*key);
            }
        }
        self.entries.insert(
            *key,
            Entry {
                value: value.into(),
                index: index.into(),
                ttl,
            },
        );
        Ok(())
    }

    async fn update(
        &self,
        key: &StoreKey,
        value: &[u8],
        ttl: Duration,
        index: &[IndexKey],
    ) -> Result<bool, StoreError> {
        let entry = Entry {
            value: value.into(),
            index: index.into(),
            ttl,
        };
        // One atomic step: a delete cannot fall between the check and the write.
        let done = self.entries.entry(*key).and_compute_with(|current| match current {
            Some(_) => Op::Put(entry),
            None => Op::Nop,
        });
        Ok(matches!(done, CompResult::ReplacedWith(_)))
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let existed = self.entries.remove(key).is_some();
        if existed {
            self.announce(*key);
        }
        Ok(existed)
    }

    async fn delete_indexed(&self, index: &IndexKey) -> Result<Vec<StoreKey>, StoreError> {
        let keys: Vec<StoreKey> = lock(&self.index)
            .remove(index)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        let mut deleted = Vec::with_capacity(keys.len());
        for k in keys {
            if self.entries.remove(&k).is_some() {
                self.announce(k);
                deleted.push(k);
            }
        }
        Ok(deleted)
    }

    async fn try_lock(&self, key: &StoreKey, ttl: Duration) -> Result<Option<LockToken>, StoreError> {
        let mut locks = lock(&self.locks);
        let now = Instant::now();
        if locks.get(key).is_some_and(|(_, until)| *until > now) {
            return Ok(None);
        }
        let token = new_lock_token()?;
        locks.insert(*key, (token.clone(), now + ttl));
        locks.retain(|_, (_, until)| *until > now);
        Ok(Some(token))
    }

    async fn unlock(&self, key: &StoreKey, token: &LockToken) -> Result<(), StoreError> {
        let mut locks = lock(&self.locks);
        if locks.get(key).is_some_and(|(t, _)| t == token) {
            locks.remove(key);
        }
        Ok(())
    }

    async fn first_sighting(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.seen.entry(*key).or_insert_with(|| ttl).is_fresh())
    }

    fn revocations(&self) -> broadcast::Receiver<Revocation> {
        self.revoked.subscribe()
    }
}
