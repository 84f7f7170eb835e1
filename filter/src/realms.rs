//! Several identity providers in one filter config: which one serves a request. Each is a
//! whole [`Gateway`] (discovery, keys, sessions, cookies); the route's `idp` wins, then
//! the request's host, then the default. An IdP's own endpoints (callback, sign-out, back
//! channel) reach it from any route, since the IdP and the browser come back to them.

use std::sync::Arc;

use envoy_module::DefineMetrics;

use crate::clock::{Clock, SystemClock};
use crate::config::{own_paths, parse_all, CookieSettings, IdpConfig, Settings};
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::oidc::transport::{IdpTransport, ReqwestTransport};

/// One IdP of the config.
pub struct Realm {
    /// Its name (`default` for the base config).
    pub name: String,
    /// Hosts it serves (`host[:port]`, lower case).
    hosts: Vec<String>,
    /// Its gateway.
    pub gw: Arc<Gateway>,
    /// The other IdPs' cookies: never passed upstream, never read as ours.
    pub foreign_cookies: Vec<CookieSettings>,
}

impl Realm {
    fn serves_host(&self, authority: &[u8]) -> bool {
        self.hosts.iter().any(|h| h.as_bytes().eq_ignore_ascii_case(authority))
    }

    fn owns(&self, bare_path: &str) -> bool {
        own_paths(&self.gw.settings).contains(&bare_path)
    }
}

/// Every IdP of one filter config; the first is the default.
pub struct Realms {
    all: Vec<Realm>,
}

/// A route names an IdP the filter config does not have (a deployment mistake).
#[derive(Debug, thiserror::Error)]
#[error("the route's idp {0:?} is not in the filter config's idps")]
pub struct UnknownIdp(pub String);

impl Realms {
    /// Builds the IdPs Envoy loads: real HTTP to each IdP, the system clock.
    pub fn build(metrics: &mut dyn DefineMetrics, json: &[u8]) -> Result<Arc<Self>, String> {
        let configs = parse_all(json).map_err(|e| e.to_string())?;
        Self::new(
            configs,
            metrics,
            |s: &Settings| {
                ReqwestTransport::new(s.provider.timeout, &s.provider.tls)
                    .map(|t| Arc::new(t) as Arc<dyn IdpTransport>)
                    .map_err(|e| e.to_string())
            },
            Arc::new(SystemClock),
        )
    }

    /// Builds each IdP's gateway on the transport `connect` gives it (tests give fakes),
    /// sharing one set of stats.
    pub fn new(
        configs: Vec<IdpConfig>,
        metrics: &mut dyn DefineMetrics,
        connect: impl Fn(&Settings) -> Result<Arc<dyn IdpTransport>, String>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, String> {
        let metrics = Metrics::define(metrics).map_err(|e| e.to_string())?;
        let cookies: Vec<CookieSettings> = configs.iter().map(|c| c.settings.cookie.clone()).collect();
        let mut all = Vec::with_capacity(configs.len());
        for (i, c) in configs.into_iter().enumerate() {
            let transport = connect(&c.settings).map_err(|e| format!("idp {:?}: {e}", c.name))?;
            let gw = Gateway::with_metrics(c.settings, metrics.clone(), transport, clock.clone())?;
            let foreign_cookies = cookies
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, c)| c.clone())
                .collect();
            all.push(Realm {
                name: c.name,
                hosts: c.hosts,
                gw,
                foreign_cookies,
            });
        }
        Ok(Arc::new(Self { all }))
    }

    /// The default IdP.
    pub fn default_realm(&self) -> &Realm {
        &self.all[0]
    }

    /// Every IdP, the default first.
    pub fn all(&self) -> &[Realm] {
        &self.all
    }

    /// The index (in [`Realms::all`]) of a request's IdP: its route's, else its host's, else the default; any IdP's
    /// own endpoint path goes to that IdP (the host's first).
    pub fn select(
        &self,
        authority: Option<&[u8]>,
        route_idp: Option<&str>,
        bare_path: &str,
    ) -> Result<usize, UnknownIdp> {
        let by_host = authority.and_then(|a| self.all.iter().position(|r| r.serves_host(a)));
        let chosen = match route_idp {
            Some(name) => self
                .all
                .iter()
                .position(|r| r.name == name)
                .ok_or_else(|| UnknownIdp(name.to_owned()))?,
            None => by_host.unwrap_or(0),
        };
        if self.all[chosen].owns(bare_path) {
            return Ok(chosen);
        }
        let owner = by_host
            .filter(|&i| self.all[i].owns(bare_path))
            .or_else(|| self.all.iter().position(|r| r.hosts.is_empty() && r.owns(bare_path)));
        Ok(owner.unwrap_or(chosen))
    }
}
