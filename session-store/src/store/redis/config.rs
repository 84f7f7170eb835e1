//! How to reach Redis: one server, a Sentinel-managed master, or a Cluster.

use std::time::Duration;

use zeroize::Zeroizing;

/// How to reach Redis, with the store's key prefix and limits.
#[derive(Clone)]
pub struct RedisConfig {
    /// Which servers.
    pub target: RedisTarget,
    /// Prefix of every key and of the channel (`oidc:` by default).
    pub prefix: String,
    /// Time to connect, and to wait for any one answer.
    pub timeout: Duration,
    /// TLS trust and client identity (system roots when `None`); for a URL target TLS
    /// is on with `rediss://`, for the others with their `tls` flag.
    pub tls: Option<RedisTls>,
    /// Replicas that must acknowledge a session write or delete (`WAIT`) before it
    /// counts as done; 0 skips the wait (replication stays asynchronous).
    pub replicas_to_ack: u32,
    /// Consecutive failures that open the circuit (calls then fail at once).
    pub circuit_failures: u32,
    /// How long an open circuit refuses calls before one probe is let through.
    pub circuit_open_for: Duration,
}

/// Which Redis servers hold the sessions.
#[derive(Clone)]
pub enum RedisTarget {
    /// One server: `redis://[user][:password]@host:port/db`, `rediss://…` for TLS.
    Url(String),
    /// The master of a Sentinel-managed group, found (and followed) through the sentinels.
    Sentinel(SentinelTarget),
    /// A Redis Cluster, found from any of its nodes.
    Cluster(ClusterTarget),
}

/// A username and password for a group of servers.
#[derive(Clone, Default)]
pub struct NodeAuth {
    /// ACL user (`default` when unset).
    pub username: Option<String>,
    /// Password.
    pub password: Option<Zeroizing<String>>,
}

/// A Sentinel-managed master.
#[derive(Clone)]
pub struct SentinelTarget {
    /// The master's name in the sentinels' configuration.
    pub master: String,
    /// Sentinel addresses (`host`, `port`).
    pub sentinels: Vec<(String, u16)>,
    /// Credentials for the sentinels themselves.
    pub sentinel_auth: NodeAuth,
    /// Credentials for the master.
    pub auth: NodeAuth,
    /// Database number on the master.
    pub db: i64,
    /// TLS to the sentinels and the master.
    pub tls: bool,
    /// How often the master is looked up again even when nothing failed.
    pub check_interval: Duration,
}

/// A Redis Cluster.
#[derive(Clone)]
pub struct ClusterTarget {
    /// Some of its nodes (`host`, `port`); the rest are discovered.
    pub nodes: Vec<(String, u16)>,
    /// Credentials for every node.
    pub auth: NodeAuth,
    /// TLS to every node.
    pub tls: bool,
}

/// PEM material for TLS to Redis.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// CA certificate(s) to trust instead of the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key for mutual TLS.
    pub client_cert_pem: Option<Vec<u8>>,
    /// Client private key (PEM) for mutual TLS.
    pub client_key_pem: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs and auth carry passwords: only the shape is shown.
        let target = match &self.target {
            RedisTarget::Url(_) => "url".to_owned(),
            RedisTarget::Sentinel(s) => format!("sentinel {} via {:?}", s.master, s.sentinels),
            RedisTarget::Cluster(c) => format!("cluster via {:?}", c.nodes),
        };
        f.debug_struct("RedisConfig")
            .field("target", &target)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("replicas_to_ack", &self.replicas_to_ack)
            .finish_non_exhaustive()
    }
}

impl RedisConfig {
    /// One server at `url`, with the defaults of [`RedisConfig::with_target`].
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_target(RedisTarget::Url(url.into()))
    }

    /// The default prefix, a 2 s timeout, a circuit opening after 5 failures for 1 s;
    /// writes wait for one replica on Sentinel and Cluster targets, none on a URL.
    pub fn with_target(target: RedisTarget) -> Self {
        let replicas_to_ack = match target {
            RedisTarget::Url(_) => 0,
            RedisTarget::Sentinel(_) | RedisTarget::Cluster(_) => 1,
        };
        Self {
            target,
            prefix: "oidc:".into(),
            timeout: Duration::from_secs(2),
            tls: None,
            replicas_to_ack,
            circuit_failures: 5,
            circuit_open_for: Duration::from_secs(1),
        }
    }
}
