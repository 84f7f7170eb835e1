//! The shared store on Redis: sessions survive restarts and are seen by every replica.
//!
//! Layout under the configured prefix: `s:{<store key>}` the encrypted session (PX TTL),
//! `i:{<index key>}` a set of store keys (TTL ≥ its longest member), `l:{<store key>}` a
//! lock (`SET NX PX`), `seen:{<store key>}` one-time marks, and the pub/sub channel
//! `revoked` carrying revoked store keys. The braces are Cluster hash tags: every key of
//! one session lands in one slot. Redis is one server, a Sentinel-managed master
//! ([`RedisTarget::Sentinel`]) or a Cluster ([`RedisTarget::Cluster`]).

mod circuit;
mod config;
mod link;
mod sentinel;
mod subscription;
mod writes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::{AsyncCommands, ErrorKind, RedisError, RedisResult};
use tokio::sync::broadcast;

pub use config::{ClusterTarget, NodeAuth, RedisConfig, RedisTarget, RedisTls, SentinelTarget};

use super::{new_lock_token, LockToken, Revocation, SessionStore, StoreError};
use crate::ticket::{IndexKey, StoreKey};
use circuit::{Admission, Circuit};
use link::{Conn, Link};

/// A Redis-backed store; clones share one connection and one subscription.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    prefix: String,
    timeout: Duration,
    replicas_to_ack: u32,
    cluster: bool,
    circuit: Circuit,
    revoked: broadcast::Sender<Revocation>,
    subscriber: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

fn classify(e: RedisError) -> StoreError {
    if e.is_timeout() {
        StoreError::Timeout
    } else if e.kind() == ErrorKind::AuthenticationFailed || matches!(e.code(), Some("WRONGPASS" | "NOAUTH")) {
        // The server's error code (the reply's first word), not a search of the message.
        StoreError::Auth(e)
    } else if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        // A replica (the old master after a failover), or a cluster mid-failover.
        || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "CLUSTERDOWN" | "TRYAGAIN" | "LOADING"))
    {
        StoreError::Unavailable(e)
    } else {
        StoreError::Backend(e)
    }
}

/// Failures that say Redis (or its master) is away, as opposed to one command failing.
fn means_away(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Unavailable(_) | StoreError::Timeout | StoreError::NoMaster
    )
}

const UNLOCK: &str =
    r"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

impl RedisStore {
    /// Connects (failing fast on a bad address, an unreachable server or refused
    /// credentials) and starts following revocations. Afterwards the connections heal
    /// by themselves, and a Sentinel master is followed across failovers.
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let (link, source) = link::connect(&config).await?;
        // Prove the credentials now rather than at the first request.
        let mut probe = link.pair()?.reader;
        tokio::time::timeout(config.timeout, redis::cmd("PING").query_async::<String>(&mut probe))
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(classify)?;
        let (revoked, _) = broadcast::channel(1024);
        let channel = format!("{}revoked", config.prefix);
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let subscriber = tokio::spawn(subscription::follow(
            source,
            channel,
            revoked.clone(),
            config.timeout,
            first_tx,
        ));
        if !matches!(tokio::time::timeout(config.timeout * 2, first_rx).await, Ok(Ok(()))) {
            subscriber.abort();
            return Err(StoreError::Timeout);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                cluster: matches!(config.target, RedisTarget::Cluster(_)),
                link,
                prefix: config.prefix,
                timeout: config.timeout,
                replicas_to_ack: config.replicas_to_ack,
                circuit: Circuit::new(config.circuit_failures, config.circuit_open_for),
                revoked,
                subscriber,
            }),
        })
    }

    /// Round trip to Redis.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(Use::Read, |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await.map(|_| ())
        })
        .await
    }

    /// Runs `op` on a connection unless the circuit is open, bounded by the timeout;
    /// failures that mean Redis is away count towards opening the circuit and (for
    /// Sentinel) send the master lookup off at once.
    async fn call<T, F, Fut>(&self, how: Use, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let admission = self.inner.circuit.admit();
        if admission == Admission::Refuse {
            return Err(StoreError::CircuitOpen);
        }
        let result = match self.inner.link.pair() {
            Ok(pair) => {
                let conn = match how {
                    Use::Read => pair.reader,
                    Use::Write => pair.writer,
                };
                match tokio::time::timeout(self.inner.timeout, op(conn)).await {
                    Ok(r) => r.map_err(classify),
                    Err(_) => Err(StoreError::Timeout),
                }
            }
            Err(e) => Err(e),
        };
        let away = result.as_ref().is_err_and(means_away);
        self.inner.circuit.report(admission, !away);
        if away {
            self.inner.link.failed();
        }
        result
    }

    fn session_key(&self, key: &StoreKey) -> String {
        format!("{}s:{{{}}}", self.inner.prefix, key.to_hex())
    }
    fn index_key(&self, index: &IndexKey) -> String {
        format!("{}i:{{{}}}", self.inner.prefix, index.as_str())
    }
    fn seen_key(&self, key: &StoreKey) -> String {
        format!("{}seen:{{{}}}", self.inner.prefix, key.to_hex())
    }
    fn lock_key(&self, key: &StoreKey) -> String {
        format!("{}l:{{{}}}", self.inner.prefix, key.to_hex())
    }
    fn channel(&self) -> String {
        format!("{}revoked", self.inner.prefix)
    }

    /// `SET key value NX PX ttl`: true if this call set it (nobody held it).
    async fn set_if_absent(&self, key: String, value: String, ttl: Duration) -> Result<bool, StoreError> {
        self.call(Use::Read, |mut c| async move {
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .query_async(&mut c)
                .await?;
            Ok(set.is_some())
        })
        .await
    }
}

/// Which connection a call needs.
#[derive(Clone, Copy)]
enum Use {
    /// Reads, locks and marks.
    Read,
    /// Session writes and deletes (they wait for replicas).
    Write,
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn get(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        let name = self.session_key(key);
        self.call(
            Use::Read,
            |mut c| async move { c.get::<_, Option<Vec<u8>>>(name).await },
        )
        .await
    }

    async fn put(&self, key: &StoreKey, value: &[u8], ttl: Duration, index: &[IndexKey]) -> Result<(), StoreError> {
        let ms = ttl.as_millis().max(1) as u64;
        let name = self.session_key(key);
        let member = key.to_hex();
        let indexes: Vec<String> = index.iter().map(|i| self.index_key(i)).collect();
        let cluster = self.inner.cluster;
        self.call(Use::Write, |mut c| async move {
            // A new set gets the TTL (NX); an existing one only ever grows it (GT).
            let add = |pipe: &mut redis::Pipeline, ik: &str| {
                pipe.cmd("SADD").arg(ik).arg(&member).ignore();
                pipe.cmd("PEXPIRE").arg(ik).arg(ms).arg("NX").ignore();
                pipe.cmd("PEXPIRE").arg(ik).arg(ms).arg("GT").ignore();
            };
            if cluster {
                // Index sets live in other slots: each is written first, on its own,
                // so a session never exists without its index entries.
                for ik in &indexes {
                    let mut pipe = redis::pipe();
                    pipe.atomic();
                    add(&mut pipe, ik);
                    pipe.query_async::<()>(&mut c).await?;
                }
                redis::cmd("SET")
                    .arg(&name)
                    .arg(value)
                    .arg("PX")
                    .arg(ms)
                    .query_async::<()>(&mut c)
                    .await?;
            } else {
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("SET")
                    .arg(&name)
                    .arg(value)
                    .arg("PX")
                    .arg(ms)
                    .ignore();
                for ik in &indexes {
                    add(&mut pipe, ik);
                }
                pipe.query_async::<()>(&mut c).await?;
            }
            let mut touched: Vec<&str> = indexes.iter().map(String::as_str).collect();
            touched.push(&name);
            self.replicated(&mut c, &touched).await
        })
        .await?
    }

    async fn update(
        &self,
        key: &StoreKey,
        value: &[u8],
        ttl: Duration,
        index: &[IndexKey],
    ) -> Result<bool, StoreError> {
        let ms = ttl.as_millis().max(1) as u64;
        let name = self.session_key(key);
        let member = key.to_hex();
        let indexes: Vec<String> = index.iter().map(|i| self.index_key(i)).collect();
        self.call(Use::Write, |mut c| async move {
            // XX: only while the session exists; a delete that came first wins.
            let set: Option<String> = redis::cmd("SET")
                .arg(&name)
                .arg(value)
                .arg("PX")
                .arg(ms)
                .arg("XX")
                .query_async(&mut c)
                .await?;
            if set.is_none() {
                return Ok(Ok(false));
            }
            // The index sets live as long as their longest session. A delete landing
            // between the two steps leaves at most a member naming a gone session.
            for ik in &indexes {
                let mut pipe = redis::pipe();
                pipe.cmd("SADD").arg(ik).arg(&member).ignore();
                pipe.cmd("PEXPIRE").arg(ik).arg(ms).arg("NX").ignore();
                pipe.cmd("PEXPIRE").arg(ik).arg(ms).arg("GT").ignore();
                pipe.query_async::<()>(&mut c).await?;
            }
            let mut touched: Vec<&str> = indexes.iter().map(String::as_str).collect();
            touched.push(&name);
            Ok(self.replicated(&mut c, &touched).await?.map(|()| true))
        })
        .await?
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        Ok(!self.delete_keys(vec![*key], None).await?.is_empty())
    }

    async fn delete_indexed(&self, index: &IndexKey) -> Result<Vec<StoreKey>, StoreError> {
        let ik = self.index_key(index);
        let members: Vec<String> = {
            let ik = ik.clone();
            self.call(Use::Read, |mut c| async move { c.smembers(ik).await })
                .await?
        };
        let keys: Vec<StoreKey> = members.iter().filter_map(|m| StoreKey::from_hex(m)).collect();
        self.delete_keys(keys, Some(ik)).await
    }

    async fn try_lock(&self, key: &StoreKey, ttl: Duration) -> Result<Option<LockToken>, StoreError> {
        let token = new_lock_token()?;
        let set = self.set_if_absent(self.lock_key(key), token.0.clone(), ttl).await?;
        Ok(set.then_some(token))
    }

    async fn first_sighting(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        self.set_if_absent(self.seen_key(key), "1".into(), ttl).await
    }

    async fn unlock(&self, key: &StoreKey, token: &LockToken) -> Result<(), StoreError> {
        let name = self.lock_key(key);
        let token = token.0.clone();
        self.call(Use::Read, |mut c| async move {
            redis::Script::new(UNLOCK)
                .key(name)
                .arg(token)
                .invoke_async::<i64>(&mut c)
                .await
                .map(|_| ())
        })
        .await
    }

    fn revocations(&self) -> broadcast::Receiver<Revocation> {
        self.inner.revoked.subscribe()
    }
}
