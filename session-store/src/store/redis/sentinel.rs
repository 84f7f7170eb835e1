//! A Sentinel-managed master, followed across failovers: looked up through the
//! sentinels at start, again on any failed call, on a `+switch-master` event and
//! periodically. Only an address that answers `ROLE` as master is ever used, so
//! nothing is written to a replica.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use futures::StreamExt;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, TlsMode};
use tokio::sync::{watch, Mutex, Notify};

use super::config::{RedisTls, SentinelTarget};
use super::link::{addr, certificates, manager, use_ring, Conn, Pair};
use super::{classify, StoreError};

/// Pause between attempts while no sentinel answers.
const RETRY: Duration = Duration::from_millis(250);

struct Current {
    addr: String,
    pair: Pair,
}

/// The master as last found, and the means to find it again.
pub(super) struct Master {
    sentinels: Mutex<SentinelClient>,
    current: RwLock<Option<Current>>,
    clients: watch::Sender<Option<Client>>,
    check: Notify,
    timeout: Duration,
    separate_writer: bool,
    tasks: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

fn sentinel_client(target: &SentinelTarget, tls: Option<&RedisTls>) -> redis::RedisResult<SentinelClient> {
    let addrs = target.sentinels.iter().map(|(h, p)| addr(h, *p, target.tls));
    let mut b = SentinelClientBuilder::new(addrs, &target.master, SentinelServerType::Master)?
        .set_client_to_redis_db(target.db);
    if let Some(u) = &target.auth.username {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(p) = &target.auth.password {
        b = b.set_client_to_redis_password(p.as_str());
    }
    if let Some(u) = &target.sentinel_auth.username {
        b = b.set_client_to_sentinel_username(u);
    }
    if let Some(p) = &target.sentinel_auth.password {
        b = b.set_client_to_sentinel_password(p.as_str());
    }
    if target.tls {
        use_ring();
        b = b
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
        if let Some(t) = tls {
            b = b
                .set_client_to_redis_certificates(certificates(t))
                .set_client_to_sentinel_certificates(certificates(t));
        }
    }
    b.build()
}

impl Master {
    /// Finds the master (failing if no sentinel names a reachable one in time) and
    /// starts following it.
    pub(super) async fn connect(
        target: &SentinelTarget,
        tls: Option<&RedisTls>,
        timeout: Duration,
        separate_writer: bool,
    ) -> Result<Arc<Self>, StoreError> {
        let sentinels = sentinel_client(target, tls).map_err(StoreError::InvalidUrl)?;
        let me = Arc::new(Self {
            sentinels: Mutex::new(sentinels),
            current: RwLock::new(None),
            clients: watch::channel(None).0,
            check: Notify::new(),
            timeout,
            separate_writer,
            tasks: std::sync::Mutex::default(),
        });
        me.resolve().await?;
        let follow = tokio::spawn(follow(Arc::downgrade(&me), target.check_interval));
        let switches = tokio::spawn(switches(Arc::downgrade(&me)));
        if let Ok(mut tasks) = me.tasks.lock() {
            tasks.extend([follow.abort_handle(), switches.abort_handle()]);
        }
        Ok(me)
    }

    /// Stops following (the store is dropped; the tasks hold the master while they wait).
    pub(super) fn stop(&self) {
        if let Ok(tasks) = self.tasks.lock() {
            tasks.iter().for_each(tokio::task::AbortHandle::abort);
        }
    }

    /// The current master's client, for the revocation subscription.
    pub(super) fn clients(&self) -> watch::Receiver<Option<Client>> {
        self.clients.subscribe()
    }

    /// Connections to the current master.
    pub(super) fn pair(&self) -> Result<Pair, StoreError> {
        let current = self.current.read().map_err(|_| StoreError::NoMaster)?;
        current.as_ref().map(|c| c.pair.clone()).ok_or(StoreError::NoMaster)
    }

    /// Asks for a lookup now (a call failed).
    pub(super) fn check_now(&self) {
        self.check.notify_one();
    }

    /// Asks the sentinels for the master; moves to it if it changed.
    async fn resolve(&self) -> Result<(), StoreError> {
        let client = {
            let mut sentinels = self.sentinels.lock().await;
            tokio::time::timeout(self.timeout, sentinels.async_get_client())
                .await
                .map_err(|_| StoreError::Timeout)?
                .map_err(classify)?
        };
        let found = client.get_connection_info().addr().to_string();
        let same = self
            .current
            .read()
            .map(|c| c.as_ref().is_some_and(|c| c.addr == found))
            .unwrap_or(false);
        if same {
            return Ok(());
        }
        let reader = manager(client.clone(), self.timeout).await?;
        let writer = if self.separate_writer {
            manager(client.clone(), self.timeout).await?
        } else {
            reader.clone()
        };
        let pair = Pair {
            reader: Conn::Server(reader),
            writer: Conn::Server(writer),
        };
        if let Ok(mut current) = self.current.write() {
            let before = current.replace(Current {
                addr: found.clone(),
                pair,
            });
            match before {
                Some(b) => tracing::warn!(from = %b.addr, to = %found, "redis master moved"),
                None => tracing::info!(master = %found, "redis master found through the sentinels"),
            }
        }
        self.clients.send_replace(Some(client));
        Ok(())
    }
}

/// Looks the master up whenever asked, and every `interval` anyway.
async fn follow(master: Weak<Master>, interval: Duration) {
    loop {
        let Some(m) = master.upgrade() else { return };
        let checked = tokio::time::timeout(interval, m.check.notified()).await.is_ok();
        if let Err(e) = m.resolve().await {
            tracing::warn!(error = %e, "redis master lookup failed");
            drop(m);
            tokio::time::sleep(RETRY).await;
        } else if checked {
            // A burst of failed calls asks many times: one lookup per pause is enough.
            drop(m);
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// Listens to the sentinels' `+switch-master` events to look the master up at once.
async fn switches(master: Weak<Master>) {
    loop {
        let Some(m) = master.upgrade() else { return };
        let sentinel = {
            let mut sentinels = m.sentinels.lock().await;
            tokio::time::timeout(m.timeout, sentinels.async_get_sentinel_client()).await
        };
        let timeout = m.timeout;
        drop(m);
        if let Ok(Ok(client)) = sentinel {
            if let Ok(Ok(mut pubsub)) = tokio::time::timeout(timeout, client.get_async_pubsub()).await {
                if let Ok(Ok(())) = tokio::time::timeout(timeout, pubsub.subscribe("+switch-master")).await {
                    let mut events = pubsub.on_message();
                    while events.next().await.is_some() {
                        let Some(m) = master.upgrade() else { return };
                        tracing::info!("sentinel announced a new master");
                        m.check_now();
                    }
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}
