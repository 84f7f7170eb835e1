//! Session stores. A store sees only opaque, already-encrypted bytes under HMAC keys;
//! tickets and encryption live above it (`crate::Sessions`).

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::ticket::{IndexKey, StoreKey};

pub mod deferred;
pub mod memory;
pub mod redis;

/// What other holders of cached sessions must drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// One session ended.
    Session(StoreKey),
    /// Revocations may have been missed (e.g. the subscription reconnected): drop all.
    All,
}

/// A held lock; give it back with [`SessionStore::unlock`] (it also expires by itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken(pub(crate) String);

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached.
    #[error("session store unreachable: {0}")]
    Unavailable(#[source] ::redis::RedisError),
    /// The backend refused our credentials.
    #[error("session store refused the credentials: {0}")]
    Auth(#[source] ::redis::RedisError),
    /// The backend did not answer in time.
    #[error("session store timed out")]
    Timeout,
    /// The backend answered with an error.
    #[error("session store error: {0}")]
    Backend(#[source] ::redis::RedisError),
    /// No master is known right now (a failover is under way).
    #[error("session store has no master to write to (failover under way)")]
    NoMaster,
    /// Recent calls failed, so calls are refused for a moment instead of each timing out.
    #[error("session store failing: calls refused for a moment")]
    CircuitOpen,
    /// A write reached fewer replicas than required before the timeout.
    #[error("session write reached {acked} of {wanted} replicas in time")]
    NotReplicated {
        /// Replicas that acknowledged.
        acked: u32,
        /// Replicas required.
        wanted: u32,
    },
    /// The store URL does not parse.
    #[error("invalid session store URL: {0}")]
    InvalidUrl(#[source] ::redis::RedisError),
    /// The OS random source failed (lock tokens).
    #[error("no randomness: {0}")]
    Random(#[from] getrandom::Error),
}

/// A session store: opaque values with TTLs, secondary indexes, short locks, revocations.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` under `key` for `ttl`, and adds `key` to each index.
    async fn put(&self, key: &StoreKey, value: &[u8], ttl: Duration, index: &[IndexKey]) -> Result<(), StoreError>;
    /// Replaces `key` only if it still exists, so a session ended meanwhile stays ended;
    /// true if it was replaced.
    async fn update(&self, key: &StoreKey, value: &[u8], ttl: Duration, index: &[IndexKey])
        -> Result<bool, StoreError>;
    /// Deletes `key` and announces its revocation. True if it existed.
    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError>;
    /// Deletes every session listed under `index`, announcing each; returns them.
    async fn delete_indexed(&self, index: &IndexKey) -> Result<Vec<StoreKey>, StoreError>;
    /// Takes the lock of `key` for at most `ttl` if nobody holds it.
    async fn try_lock(&self, key: &StoreKey, ttl: Duration) -> Result<Option<LockToken>, StoreError>;
    /// Releases a lock taken with `try_lock`, if still held by this token.
    async fn unlock(&self, key: &StoreKey, token: &LockToken) -> Result<(), StoreError>;
    /// Marks `key` as seen for `ttl`; true only the first time (replay detection of
    /// one-time tokens, shared by every instance using the store).
    async fn first_sighting(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError>;
    /// Revocations from this and (for shared stores) every other instance.
    fn revocations(&self) -> broadcast::Receiver<Revocation>;
}

pub(crate) fn new_lock_token() -> Result<LockToken, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    Ok(LockToken(b.iter().map(|x| format!("{x:02x}")).collect()))
}
