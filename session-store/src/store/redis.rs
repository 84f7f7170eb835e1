//! The shared store on Redis: sessions survive restarts and are seen by every replica.
//!
//! Layout under the configured prefix: `s:<store key>` the encrypted session (PX TTL),
//! `i:<index key>` a set of store keys (TTL ≥ its longest member), `l:<store key>` a lock
//! (`SET NX PX`), and the pub/sub channel `revoked` carrying revoked store keys.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, ClientTlsConfig, ErrorKind, RedisError, TlsCertificates};
use tokio::sync::broadcast;

use super::{new_lock_token, LockToken, Revocation, SessionStore, StoreError};
use crate::ticket::{IndexKey, StoreKey};

/// How to reach Redis. Credentials come with the URL
/// (`redis://[user][:password]@host:port/db`); `rediss://…` turns TLS on.
#[derive(Clone)]
pub struct RedisConfig {
    /// Connection URL.
    pub url: String,
    /// Prefix of every key and of the channel (`oidc:` by default).
    pub prefix: String,
    /// Time to connect, and to wait for any one answer.
    pub timeout: Duration,
    /// TLS trust and client identity for `rediss://` (system roots when `None`).
    pub tls: Option<RedisTls>,
}

/// PEM material for TLS to Redis.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// CA certificate(s) to trust instead of the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key for mutual TLS.
    pub client_cert_pem: Option<Vec<u8>>,
    /// Client private key (PEM) for mutual TLS.
    pub client_key_pem: Option<zeroize::Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisConfig")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisConfig {
    /// A config with the default prefix and a 2 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "oidc:".into(),
            timeout: Duration::from_secs(2),
            tls: None,
        }
    }
}

/// A Redis-backed store; clones share one connection and one subscription.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    prefix: String,
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
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        StoreError::Unavailable(e)
    } else {
        StoreError::Backend(e)
    }
}

const UNLOCK: &str =
    r"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
/// Pause between subscription attempts while Redis is away.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(250);

fn client(config: &RedisConfig) -> Result<Client, StoreError> {
    let Some(tls) = &config.tls else {
        return Client::open(config.url.as_str()).map_err(StoreError::InvalidUrl);
    };
    // rustls needs one process-wide crypto provider; a second install attempt is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client_tls = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: cert.clone(),
            client_key: key.to_vec(),
        }),
        _ => None,
    };
    Client::build_with_tls(
        config.url.as_str(),
        TlsCertificates {
            client_tls,
            root_cert: tls.ca_pem.clone(),
        },
    )
    .map_err(StoreError::InvalidUrl)
}

impl RedisStore {
    /// Connects (failing fast on a bad URL, an unreachable server or refused credentials)
    /// and starts following revocations. Afterwards the connection heals by itself.
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        let client = client(&config)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2);
        let conn = tokio::time::timeout(
            config.timeout * 2,
            ConnectionManager::new_with_config(client.clone(), manager_config),
        )
        .await
        .map_err(|_| StoreError::Timeout)?
        .map_err(classify)?;
        // Prove the credentials now rather than at the first request.
        redis::cmd("PING")
            .query_async::<String>(&mut conn.clone())
            .await
            .map_err(classify)?;
        let (revoked, _) = broadcast::channel(1024);
        let channel = format!("{}revoked", config.prefix);
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let subscriber = tokio::spawn(follow(client, channel, revoked.clone(), config.timeout, first_tx));
        if !matches!(tokio::time::timeout(config.timeout * 2, first_rx).await, Ok(Ok(()))) {
            subscriber.abort();
            return Err(StoreError::Timeout);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                prefix: config.prefix,
                revoked,
                subscriber,
            }),
        })
    }

    /// Round trip to Redis.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.inner.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    fn session_key(&self, key: &StoreKey) -> String {
        format!("{}s:{}", self.inner.prefix, key.to_hex())
    }
    fn index_key(&self, index: &IndexKey) -> String {
        format!("{}i:{}", self.inner.prefix, index.as_str())
    }
    /// `SET key value NX PX ttl`: true if this call set it (nobody held it).
    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut c = self.inner.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut c)
            .await
            .map_err(classify)?;
        Ok(set.is_some())
    }
    fn seen_key(&self, key: &StoreKey) -> String {
        format!("{}seen:{}", self.inner.prefix, key.to_hex())
    }
    fn lock_key(&self, key: &StoreKey) -> String {
        format!("{}l:{}", self.inner.prefix, key.to_hex())
    }
    fn channel(&self) -> String {
        format!("{}revoked", self.inner.prefix)
    }

    async fn announce(&self, keys: &[StoreKey]) -> Result<(), StoreError> {
        let mut c = self.inner.conn.clone();
        for k in keys {
            c.publish::<_, _, i64>(self.channel(), k.to_hex())
                .await
                .map_err(classify)?;
        }
        Ok(())
    }
}

/// Forwards revocations from Redis pub/sub, resubscribing after any loss; after a gap
/// it sends [`Revocation::All`] since messages published meanwhile are lost.
async fn follow(
    client: Client,
    channel: String,
    tx: broadcast::Sender<Revocation>,
    timeout: Duration,
    first: tokio::sync::oneshot::Sender<()>,
) {
    let mut first = Some(first);
    loop {
        // Bounded: a connection made while Redis restarts can otherwise hang forever.
        match tokio::time::timeout(timeout, client.get_async_pubsub()).await {
            Ok(Ok(mut pubsub)) => match tokio::time::timeout(timeout, pubsub.subscribe(&channel)).await {
                Ok(Ok(())) => {
                    match first.take() {
                        // `connect` waits for this, so nothing is published unheard before it returns.
                        Some(ready) => {
                            let _ = ready.send(());
                        }
                        None => {
                            tracing::info!("revocation subscription restored; dropping cached sessions");
                            let _ = tx.send(Revocation::All);
                        }
                    }
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(text) = msg.get_payload::<String>() else {
                            continue;
                        };
                        if let Some(key) = StoreKey::from_hex(&text) {
                            let _ = tx.send(Revocation::Session(key));
                        }
                    }
                    tracing::warn!("revocation subscription lost; reconnecting");
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "revocation subscribe failed"),
                Err(_) => tracing::warn!("revocation subscribe timed out"),
            },
            Ok(Err(e)) => tracing::debug!(error = %e, "revocation subscription: redis unreachable"),
            Err(_) => tracing::debug!("revocation subscription: connect timed out"),
        }
        tokio::time::sleep(RESUBSCRIBE_DELAY).await;
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn get(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.inner.conn.clone();
        c.get::<_, Option<Vec<u8>>>(self.session_key(key))
            .await
            .map_err(classify)
    }

    async fn put(&self, key: &StoreKey, value: &[u8], ttl: Duration, index: &[IndexKey]) -> Result<(), StoreError> {
        let ms = ttl.as_millis().max(1) as u64;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(self.session_key(key))
            .arg(value)
            .arg("PX")
            .arg(ms)
            .ignore();
        for i in index {
            let ik = self.index_key(i);
            pipe.cmd("SADD").arg(&ik).arg(key.to_hex()).ignore();
            // A new set gets the TTL (NX); an existing one only ever grows it (GT).
            pipe.cmd("PEXPIRE").arg(&ik).arg(ms).arg("NX").ignore();
            pipe.cmd("PEXPIRE").arg(&ik).arg(ms).arg("GT").ignore();
        }
        let mut c = self.inner.conn.clone();
        pipe.query_async::<()>(&mut c).await.map_err(classify)
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let mut c = self.inner.conn.clone();
        let n: i64 = c.del(self.session_key(key)).await.map_err(classify)?;
        if n > 0 {
            self.announce(&[*key]).await?;
        }
        Ok(n > 0)
    }

    async fn delete_indexed(&self, index: &IndexKey) -> Result<Vec<StoreKey>, StoreError> {
        let mut c = self.inner.conn.clone();
        let ik = self.index_key(index);
        let members: Vec<String> = c.smembers(&ik).await.map_err(classify)?;
        let keys: Vec<StoreKey> = members.iter().filter_map(|m| StoreKey::from_hex(m)).collect();
        let mut deleted = Vec::with_capacity(keys.len());
        for k in &keys {
            let n: i64 = c.del(self.session_key(k)).await.map_err(classify)?;
            if n > 0 {
                deleted.push(*k);
            }
        }
        c.del::<_, i64>(&ik).await.map_err(classify)?;
        self.announce(&deleted).await?;
        Ok(deleted)
    }

    async fn try_lock(&self, key: &StoreKey, ttl: Duration) -> Result<Option<LockToken>, StoreError> {
        let token = new_lock_token()?;
        let set = self.set_if_absent(&self.lock_key(key), &token.0, ttl).await?;
        Ok(set.then_some(token))
    }

    async fn first_sighting(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        self.set_if_absent(&self.seen_key(key), "1", ttl).await
    }

    async fn unlock(&self, key: &StoreKey, token: &LockToken) -> Result<(), StoreError> {
        let mut c = self.inner.conn.clone();
        redis::Script::new(UNLOCK)
            .key(self.lock_key(key))
            .arg(&token.0)
            .invoke_async::<i64>(&mut c)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    fn revocations(&self) -> broadcast::Receiver<Revocation> {
        self.inner.revoked.subscribe()
    }
}
