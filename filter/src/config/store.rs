//! The session store section: memory, or Redis as one server, a Sentinel-managed
//! master or a Cluster.

use std::time::Duration;

use serde::Deserialize;
use session_store::{ClusterTarget, NodeAuth, RedisConfig, RedisTarget, SentinelTarget};
use url::Url;
use zeroize::Zeroizing;

use super::fields::read_file;
use super::secret::SecretSource;
use super::types::StoreSettings;
use super::{err, ConfigError};

pub(super) fn default_cache_capacity() -> u64 {
    100_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum RawStore {
    Memory {
        #[serde(default = "default_cache_capacity")]
        capacity: u64,
    },
    Redis(Box<RawRedis>),
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore::Memory {
            capacity: default_cache_capacity(),
        }
    }
}

/// `session.store.redis`: exactly one of `url`, `sentinel`, `cluster`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    #[serde(default)]
    url: Option<SecretSource>,
    #[serde(default)]
    sentinel: Option<RawSentinel>,
    #[serde(default)]
    cluster: Option<RawCluster>,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    replicas_to_ack: Option<u32>,
    #[serde(default)]
    circuit_failures: Option<u32>,
    #[serde(default)]
    circuit_open_ms: Option<u64>,
    #[serde(default)]
    username: Option<SecretSource>,
    #[serde(default)]
    password: Option<SecretSource>,
    #[serde(default = "default_prefix")]
    pub(super) prefix: String,
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    client_cert_file: Option<String>,
    #[serde(default)]
    client_key_file: Option<String>,
}

/// A Sentinel-managed master.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSentinel {
    master: String,
    nodes: Vec<String>,
    #[serde(default)]
    username: Option<SecretSource>,
    #[serde(default)]
    password: Option<SecretSource>,
    #[serde(default)]
    db: i64,
    #[serde(default = "default_sentinel_check_secs")]
    check_interval_secs: u64,
}

/// A Redis Cluster.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    nodes: Vec<String>,
}

fn default_sentinel_check_secs() -> u64 {
    5
}
pub(super) fn default_prefix() -> String {
    "oidc:".into()
}

const FIELD: &str = "session.store.redis";

/// `host:port` entries, at least one.
fn nodes(field: &str, raw: &[String]) -> Result<Vec<(String, u16)>, ConfigError> {
    if raw.is_empty() {
        return Err(err(field, "needs at least one host:port"));
    }
    raw.iter()
        .enumerate()
        .map(|(i, n)| {
            let bad = || err(format!("{field}[{i}]"), format!("{n:?} is not host:port"));
            let (host, port) = n.rsplit_once(':').ok_or_else(bad)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port: u16 = port.parse().map_err(|_| bad())?;
            if host.is_empty() || port == 0 {
                return Err(bad());
            }
            Ok((host.to_owned(), port))
        })
        .collect()
}

fn auth(field: &str, username: Option<SecretSource>, password: Option<SecretSource>) -> Result<NodeAuth, ConfigError> {
    Ok(NodeAuth {
        username: username
            .map(|u| {
                u.load()
                    .map(|u| u.to_string())
                    .map_err(|e| err(format!("{field}.username"), e))
            })
            .transpose()?,
        password: password
            .map(|p| p.load().map_err(|e| err(format!("{field}.password"), e)))
            .transpose()?,
    })
}

/// The URL with credentials from their own sources percent-encoded into it, so a
/// password with `@`, `:` or `/` needs no escaping by hand.
fn url_target(url: SecretSource, auth: NodeAuth, tls: bool) -> Result<RedisTarget, ConfigError> {
    let url = url.load().map_err(|e| err(format!("{FIELD}.url"), e))?;
    let mut parsed = Url::parse(&url).map_err(|e| err(format!("{FIELD}.url"), e.to_string()))?;
    if !matches!(parsed.scheme(), "redis" | "rediss") {
        return Err(err(format!("{FIELD}.url"), "must be redis:// or rediss://"));
    }
    if tls {
        return Err(err(format!("{FIELD}.tls"), "with url, rediss:// turns TLS on"));
    }
    if let Some(user) = &auth.username {
        parsed
            .set_username(user)
            .map_err(|()| err(format!("{FIELD}.username"), "cannot be set on this URL"))?;
    }
    if let Some(password) = &auth.password {
        parsed
            .set_password(Some(password))
            .map_err(|()| err(format!("{FIELD}.password"), "cannot be set on this URL"))?;
    }
    Ok(RedisTarget::Url(String::from(parsed)))
}

impl TryFrom<RawStore> for StoreSettings {
    type Error = ConfigError;

    fn try_from(s: RawStore) -> Result<Self, ConfigError> {
        let r = match s {
            RawStore::Memory { capacity } => return Ok(StoreSettings::Memory { capacity }),
            RawStore::Redis(r) => r,
        };
        let data_auth = auth(FIELD, r.username, r.password)?;
        let target = match (r.url, r.sentinel, r.cluster) {
            (Some(url), None, None) => url_target(url, data_auth, r.tls)?,
            (None, Some(s), None) => {
                let field = format!("{FIELD}.sentinel");
                if s.master.is_empty() {
                    return Err(err(format!("{field}.master"), "names the master the sentinels watch"));
                }
                if s.check_interval_secs == 0 {
                    return Err(err(format!("{field}.check_interval_secs"), "must be at least 1"));
                }
                RedisTarget::Sentinel(SentinelTarget {
                    sentinels: nodes(&format!("{field}.nodes"), &s.nodes)?,
                    sentinel_auth: auth(&field, s.username, s.password)?,
                    master: s.master,
                    auth: data_auth,
                    db: s.db,
                    tls: r.tls,
                    check_interval: Duration::from_secs(s.check_interval_secs),
                })
            }
            (None, None, Some(c)) => RedisTarget::Cluster(ClusterTarget {
                nodes: nodes(&format!("{FIELD}.cluster.nodes"), &c.nodes)?,
                auth: data_auth,
                tls: r.tls,
            }),
            _ => return Err(err(FIELD, "needs exactly one of url, sentinel, cluster")),
        };
        let tls = if r.ca_file.is_some() || r.client_cert_file.is_some() {
            Some(session_store::RedisTls {
                ca_pem: read_file(&format!("{FIELD}.ca_file"), &r.ca_file)?,
                client_cert_pem: read_file(&format!("{FIELD}.client_cert_file"), &r.client_cert_file)?,
                client_key_pem: read_file(&format!("{FIELD}.client_key_file"), &r.client_key_file)?.map(Zeroizing::new),
            })
        } else {
            None
        };
        let mut cfg = RedisConfig::with_target(target);
        cfg.prefix = r.prefix;
        cfg.tls = tls;
        if let Some(n) = r.replicas_to_ack {
            if n > 8 {
                return Err(err(format!("{FIELD}.replicas_to_ack"), "at most 8"));
            }
            cfg.replicas_to_ack = n;
        }
        // Unset: the store's own defaults.
        if let Some(n) = r.circuit_failures {
            cfg.circuit_failures = n;
        }
        if let Some(ms) = r.circuit_open_ms {
            cfg.circuit_open_for = Duration::from_millis(ms.max(1));
        }
        Ok(StoreSettings::Redis(Box::new(cfg)))
    }
}
