//! Everything one filter config shares across workers and async tasks.

use std::sync::Arc;

use async_filter::{AsyncCore, Limits};
use session_store::{DeferredStore, MemoryStore, RedisStore, SessionCache, SessionStore, Sessions};

use crate::clock::Clock;
use crate::config::{ProviderSettings, Renewed, SecretFiles, Settings, StoreSettings};
use crate::metrics::Metrics;
use crate::oidc::introspect::Introspector;
use crate::oidc::provider::ProviderHandle;
use crate::oidc::refresh::{RefreshContext, Refresher};
use crate::oidc::transport::IdpTransport;

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
    /// Single-flight token refreshes.
    pub refresher: Refresher,
    /// Opaque bearer tokens' introspection answers, when enabled.
    pub introspector: Option<Introspector>,
    /// Code exchanges in flight (the login bound).
    pub logins: crate::oidc::login::LoginsInFlight,
    /// JWT bearer tokens verified lately.
    pub verified_tokens: crate::bearer::VerifiedTokens,
    /// The claims kept from tokens and userinfo.
    pub claim_names: Arc<crate::oidc::claims::ClaimNames>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// This app's origin (`scheme://host[:port]` of the redirect URI), for same-origin
    /// checks.
    pub origin: String,
    /// Each of `redirect_hosts` with its own redirect URI (built once, at load).
    redirect_uris: Vec<(String, url::Url)>,
    /// Every background task of this config: stopped when the config goes.
    background: Vec<tokio::task::AbortHandle>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Config replaced or removed: stop its discovery, store and revocation loops.
        for task in &self.background {
            task.abort();
        }
    }
}

/// Reads the secret files every `interval` and puts what changed in force: the next token
/// call uses the new client secret or key; new cookies are sealed under the new first
/// session key, and cookies under any key still listed keep opening.
async fn follow_secret_files(files: Arc<SecretFiles>, provider: Arc<ProviderSettings>, sessions: Sessions) {
    let mut tick = tokio::time::interval(files.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let reading = files.clone();
        let Ok(renewed) = tokio::task::spawn_blocking(move || reading.poll()).await else {
            continue;
        };
        for r in renewed {
            match r {
                Ok(secret) => {
                    let field = secret.field();
                    match secret {
                        Renewed::ClientSecret(s) => {
                            if let Some(live) = &provider.client_secret {
                                live.set(s);
                            }
                        }
                        Renewed::ClientKey(k) => {
                            if let Some(live) = &provider.client_key {
                                live.set(k);
                            }
                        }
                        Renewed::SessionKeys(ring) => sessions.sealer().replace_ring(Arc::new(ring)),
                    }
                    tracing::info!(field, issuer = %provider.issuer, "secret file changed: the new value is in force");
                }
                Err(e) => tracing::warn!(
                    field = %e.field,
                    error = %e.reason,
                    "secret file changed but cannot be used; keeping the previous value"
                ),
            }
        }
    }
}

impl Gateway {
    /// Builds a gateway from its parts (unit tests give a fake IdP and a manual clock)
    /// and starts its background work (discovery, store connection, revocations).
    pub fn with_metrics(
        settings: Settings,
        metrics: Metrics,
        transport: Arc<dyn IdpTransport>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, String> {
        async_filter::configure_runtime(settings.runtime);
        let rt = async_filter::runtime().map_err(|e| e.to_string())?;
        let provider = ProviderHandle::new(settings.provider.clone(), transport);
        let mut background = vec![rt.spawn(provider.clone().maintain()).abort_handle()];

        let store: Arc<dyn SessionStore> = match &settings.session.store {
            StoreSettings::Memory { capacity } => Arc::new(MemoryStore::new(*capacity)),
            StoreSettings::Redis(cfg) => {
                let cfg = cfg.clone();
                let (store, task) = DeferredStore::spawn(rt.handle(), settings.timeouts.startup_wait, move || {
                    let cfg = cfg.clone();
                    async move {
                        RedisStore::connect(*cfg)
                            .await
                            .map(|s| Arc::new(s) as Arc<dyn SessionStore>)
                    }
                });
                background.push(task);
                Arc::new(store)
            }
        };
        let cache = SessionCache::new(settings.session.cache_capacity, settings.session.cache_ttl)
            .keep_access_token(settings.headers.access_token);
        let sessions = Sessions::new(
            settings.session.keys.clone(),
            store,
            cache,
            settings.cookie.name.clone(),
        );
        background.push(rt.spawn(sessions.follow_revocations()).abort_handle());
        if settings.secret_files.any() {
            let task = follow_secret_files(
                settings.secret_files.clone(),
                settings.provider.clone(),
                sessions.clone(),
            );
            background.push(rt.spawn(task).abort_handle());
        }
        let core = AsyncCore::new(Limits {
            max_in_flight: settings.max_in_flight,
            deadline: settings.timeouts.request,
        });
        let origin = settings.provider.redirect_uri.origin().ascii_serialization();
        let redirect_uris = settings
            .redirect_hosts
            .iter()
            .map(|host| {
                let scheme = settings.provider.redirect_uri.scheme();
                url::Url::parse(&format!("{scheme}://{host}{}", settings.paths.callback))
                    .map(|url| (host.clone(), url))
                    .map_err(|e| format!("redirect_hosts: {host:?}: {e}"))
            })
            .collect::<Result<_, String>>()?;
        let introspector = settings.bearer.introspection.as_ref().map(Introspector::new);
        let claim_names = crate::oidc::claims::wanted(&settings);
        Ok(Arc::new(Self {
            origin,
            redirect_uris,
            settings,
            provider,
            sessions,
            core,
            metrics,
            refresher: Refresher::default(),
            introspector,
            logins: Default::default(),
            verified_tokens: Default::default(),
            claim_names,
            clock,
            background,
        }))
    }

    /// The redirect URI of a login started at `authority` (the request's host): its own
    /// when the host is in `redirect_hosts`, else `None` (the configured one). The request's
    /// host is never trusted beyond that list.
    pub fn redirect_uri_for(&self, authority: Option<&[u8]>) -> Option<&url::Url> {
        let authority = authority?;
        self.redirect_uris
            .iter()
            .find(|(host, _)| host.as_bytes().eq_ignore_ascii_case(authority))
            .map(|(_, url)| url)
    }

    /// What a refresh needs from this gateway.
    pub fn refresh_context(&self) -> RefreshContext {
        RefreshContext {
            sessions: self.sessions.clone(),
            provider: self.provider.clone(),
            policy: self.settings.refresh,
            lifetimes: self.settings.session.lifetimes,
            startup_wait: self.settings.timeouts.startup_wait,
            clock: self.clock.clone(),
            claim_names: self.claim_names.clone(),
            authz: self.settings.authz.clone(),
        }
    }
}
