//! A store that becomes available later: the Envoy config hook must not wait for Redis,
//! so the real store connects in the background and callers wait for it, bounded.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, OnceCell};
use tokio::task::AbortHandle;

use super::{LockToken, Revocation, SessionStore, StoreError};
use crate::ticket::{IndexKey, StoreKey};

/// Forwards to a store once `connect` has produced it; until then calls wait up to
/// `wait` and fail with [`StoreError::Timeout`].
#[derive(Clone)]
pub struct DeferredStore {
    inner: Arc<OnceCell<Arc<dyn SessionStore>>>,
    ready: Arc<tokio::sync::Notify>,
    revoked: broadcast::Sender<Revocation>,
    wait: Duration,
}

impl std::fmt::Debug for DeferredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredStore")
            .field("ready", &self.inner.initialized())
            .finish()
    }
}

impl DeferredStore {
    /// Starts connecting on `runtime` with `connect`, retried with backoff until it
    /// succeeds; revocations of the real store are forwarded once it is up. The caller
    /// owns the returned handle of that task and aborts it when the store is done with
    /// (a config reload), else its connection and subscription outlive the config.
    pub fn spawn<F, Fut>(runtime: &tokio::runtime::Handle, wait: Duration, connect: F) -> (Self, AbortHandle)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Arc<dyn SessionStore>, StoreError>> + Send,
    {
        let (revoked, _) = broadcast::channel(1024);
        let me = Self {
            inner: Arc::new(OnceCell::new()),
            ready: Arc::default(),
            revoked,
            wait,
        };
        let task = me.clone();
        let handle = runtime.spawn(async move {
            let mut delay = Duration::from_millis(200);
            let store = loop {
                match connect().await {
                    Ok(s) => break s,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_ms = delay.as_millis() as u64, "session store not ready");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            };
            let mut rx = store.revocations();
            let _ = task.inner.set(store);
            task.ready.notify_waiters();
            tracing::info!("session store connected");
            loop {
                match rx.recv().await {
                    Ok(r) => {
                        let _ = task.revoked.send(r);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = task.revoked.send(Revocation::All);
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        (me, handle.abort_handle())
    }

    /// True once the real store is connected.
    pub fn is_ready(&self) -> bool {
        self.inner.initialized()
    }

    async fn store(&self) -> Result<&Arc<dyn SessionStore>, StoreError> {
        if let Some(s) = self.inner.get() {
            return Ok(s);
        }
        let notified = self.ready.notified();
        if let Some(s) = self.inner.get() {
            return Ok(s);
        }
        tokio::time::timeout(self.wait, notified)
            .await
            .map_err(|_| StoreError::Timeout)?;
        self.inner.get().ok_or(StoreError::Timeout)
    }
}

#[async_trait]
impl SessionStore for DeferredStore {
    async fn get(&self, key: &StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.store().await?.get(key).await
    }
    async fn put(&self, key: &StoreKey, value: &[u8], ttl: Duration, index: &[IndexKey]) -> Result<(), StoreError> {
        self.store().await?.put(key, value, ttl, index).await
    }
    async fn update(
        &self,
        key: &StoreKey,
        value: &[u8],
        ttl: Duration,
        index: &[IndexKey],
    ) -> Result<bool, StoreError> {
        self.store().await?.update(key, value, ttl, index).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        self.store().await?.delete(key).await
    }
    async fn delete_indexed(&self, index: &IndexKey) -> Result<Vec<StoreKey>, StoreError> {
        self.store().await?.delete_indexed(index).await
    }
    async fn try_lock(&self, key: &StoreKey, ttl: Duration) -> Result<Option<LockToken>, StoreError> {
        self.store().await?.try_lock(key, ttl).await
    }
    async fn unlock(&self, key: &StoreKey, token: &LockToken) -> Result<(), StoreError> {
        self.store().await?.unlock(key, token).await
    }
    async fn first_sighting(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        self.store().await?.first_sighting(key, ttl).await
    }
    fn revocations(&self) -> broadcast::Receiver<Revocation> {
        self.revoked.subscribe()
    }
}
