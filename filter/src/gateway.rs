//! Everything one filter config shares across workers and async tasks.

use std::sync::Arc;
use std::time::Duration;

use async_filter::{AsyncCore, Limits};
use envoy_module::ConfigContext;
use session_store::{DeferredStore, MemoryStore, RedisStore, SessionCache, SessionStore, Sessions, StoreKey};

use crate::config::{Settings, StoreSettings};
use crate::metrics::Metrics;
use crate::oidc::provider::ProviderHandle;
use crate::oidc::refresh::Shared;

/// The shared state of one filter config.
pub struct Gateway {
    /// Validated settings.
    pub settings: Settings,
    /// The IdP.
    pub provider: Arc<ProviderHandle>,
    /// Sessions (cookie codec, cache, store).
    pub sessions: Sessions,
    /// The async core (bounded in-flight work).
    pub core: AsyncCore,
    /// Stats.
    pub metrics: Metrics,
    /// In-flight refreshes, so concurrent requests of one session share one.
    pub refreshing: moka::future::Cache<StoreKey, Arc<Shared>>,
    background: Vec<tokio::task::AbortHandle>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Config replaced or removed: stop its discovery and revocation loops.
        for task in &self.background {
            task.abort();
        }
    }
}

impl Gateway {
    /// Builds the gateway from the filter config and starts its background work
    /// (discovery, store connection, revocation following) on the async core.
    pub fn build(ctx: &mut ConfigContext, json: &[u8]) -> Result<Arc<Self>, String> {
        let settings = Settings::parse(json).map_err(|e| e.to_string())?;
        let metrics = Metrics::define(ctx).map_err(|e| e.to_string())?;
        let rt = async_filter::runtime().map_err(|e| e.to_string())?;
        let provider = ProviderHandle::new(settings.provider.clone()).map_err(|e| e.to_string())?;
        let mut background = vec![rt.spawn(provider.clone().maintain()).abort_handle()];

        let store: Arc<dyn SessionStore> = match &settings.session.store {
            StoreSettings::Memory { capacity } => Arc::new(MemoryStore::new(*capacity)),
            StoreSettings::Redis(cfg) => {
                let cfg = cfg.clone();
                Arc::new(DeferredStore::spawn(
                    rt.handle(),
                    settings.timeouts.startup_wait,
                    move || {
                        let cfg = cfg.clone();
                        async move {
                            RedisStore::connect(cfg)
                                .await
                                .map(|s| Arc::new(s) as Arc<dyn SessionStore>)
                        }
                    },
                ))
            }
        };
        let cache = SessionCache::new(settings.session.cache_capacity, settings.session.cache_ttl);
        let sessions = Sessions::new(
            settings.session.keys.clone(),
            store,
            cache,
            settings.cookie.name.clone(),
        );
        background.push(rt.spawn(sessions.follow_revocations()).abort_handle());
        let core = AsyncCore::new(Limits {
            max_in_flight: settings.max_in_flight,
            deadline: settings.timeouts.request,
        });
        let refreshing = moka::future::Cache::builder()
            .time_to_live(Duration::from_secs(1))
            .max_capacity(100_000)
            .build();
        Ok(Arc::new(Self {
            settings,
            provider,
            sessions,
            core,
            metrics,
            refreshing,
            background,
        }))
    }
}
