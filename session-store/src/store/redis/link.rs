//! Connections to whichever Redis is configured, behind one type the commands use.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Client, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisConnectionInfo,
    RedisFuture, RedisResult, TlsCertificates, Value,
};
use tokio::sync::watch;

use super::config::{ClusterTarget, NodeAuth, RedisConfig, RedisTarget, RedisTls};
use super::sentinel::Master;
use super::{classify, StoreError};

/// One connection, multiplexed: to a single server or the current master, or to a cluster.
#[derive(Clone)]
pub(super) enum Conn {
    /// A server (reconnects to the same address by itself).
    Server(ConnectionManager),
    /// A cluster (follows slots and failovers by itself).
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Server(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Conn::Server(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Reads and locks go over `reader`; session writes and deletes over `writer`, which
/// is a connection of its own when they wait for replicas (`WAIT` blocks its connection).
#[derive(Clone)]
pub(super) struct Pair {
    pub(super) reader: Conn,
    pub(super) writer: Conn,
}

/// Where the pub/sub subscription for revocations goes.
pub(super) enum Subscribe {
    /// The current master; move when it changes.
    Master(watch::Receiver<Option<Client>>),
    /// Any of these servers, in turn: the one server, or cluster nodes (cluster pub/sub
    /// reaches every node).
    AnyOf(Vec<Client>),
}

/// The configured Redis.
pub(super) enum Link {
    /// A fixed server or a cluster.
    Fixed(Pair),
    /// A master that moves on failover.
    Sentinel(Arc<Master>),
}

impl Drop for Link {
    fn drop(&mut self) {
        // The master's tasks hold it while they wait: they end with the link, however
        // the link ends (the store dropped, or `connect` failing after finding the master).
        if let Link::Sentinel(m) = self {
            m.stop();
        }
    }
}

impl Link {
    /// The connections to use now.
    pub(super) fn pair(&self) -> Result<Pair, StoreError> {
        match self {
            Link::Fixed(p) => Ok(p.clone()),
            Link::Sentinel(m) => m.pair(),
        }
    }

    /// Told about a failed call: a Sentinel master is looked up again at once.
    pub(super) fn failed(&self) {
        if let Link::Sentinel(m) = self {
            m.check_now();
        }
    }
}

/// The TLS material in the form the client wants.
pub(super) fn certificates(tls: &RedisTls) -> TlsCertificates {
    let client_tls = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: cert.clone(),
            client_key: key.to_vec(),
        }),
        _ => None,
    };
    TlsCertificates {
        client_tls,
        root_cert: tls.ca_pem.clone(),
    }
}

/// Makes ring rustls' process-wide crypto provider (a second install attempt is a no-op);
/// needed before any TLS connection to Redis.
pub(super) fn use_ring() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client for one server given by `info`, with TLS material when configured.
pub(super) fn client(info: impl IntoConnectionInfo, tls: Option<&RedisTls>) -> Result<Client, StoreError> {
    let Some(tls) = tls else {
        return Client::open(info).map_err(StoreError::InvalidUrl);
    };
    use_ring();
    Client::build_with_tls(info, certificates(tls)).map_err(StoreError::InvalidUrl)
}

/// The address of `host:port` (TLS or not).
pub(super) fn addr(host: &str, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_owned(), port)
    }
}

/// Connection info for one node with credentials.
pub(super) fn node_info(host: &str, port: u16, tls: bool, auth: &NodeAuth, db: i64) -> RedisResult<ConnectionInfo> {
    let mut settings = RedisConnectionInfo::default().set_db(db);
    if let Some(u) = &auth.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &auth.password {
        settings = settings.set_password(p.as_str());
    }
    Ok(addr(host, port, tls)
        .into_connection_info()?
        .set_redis_settings(settings))
}

/// How server connections behave: bounded connect and answer times, two retries.
pub(super) fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(2)
}

/// A connection manager for `client`, bounded in time.
pub(super) async fn manager(client: Client, timeout: Duration) -> Result<ConnectionManager, StoreError> {
    tokio::time::timeout(
        timeout * 2,
        ConnectionManager::new_with_config(client, manager_config(timeout)),
    )
    .await
    .map_err(|_| StoreError::Timeout)?
    .map_err(classify)
}

/// Connects to the configured Redis; returns the link and where to subscribe.
pub(super) async fn connect(config: &RedisConfig) -> Result<(Link, Subscribe), StoreError> {
    let separate_writer = config.replicas_to_ack > 0;
    match &config.target {
        RedisTarget::Url(url) => {
            let tls = config.tls.as_ref().filter(|_| url.starts_with("rediss:"));
            let client = client(url.as_str(), tls)?;
            let reader = manager(client.clone(), config.timeout).await?;
            let writer = if separate_writer {
                manager(client.clone(), config.timeout).await?
            } else {
                reader.clone()
            };
            let pair = Pair {
                reader: Conn::Server(reader),
                writer: Conn::Server(writer),
            };
            Ok((Link::Fixed(pair), Subscribe::AnyOf(vec![client])))
        }
        RedisTarget::Sentinel(target) => {
            let master = Master::connect(target, config.tls.as_ref(), config.timeout, separate_writer).await?;
            let clients = master.clients();
            Ok((Link::Sentinel(master), Subscribe::Master(clients)))
        }
        RedisTarget::Cluster(target) => cluster(target, config, separate_writer).await,
    }
}

async fn cluster(
    target: &ClusterTarget,
    config: &RedisConfig,
    separate_writer: bool,
) -> Result<(Link, Subscribe), StoreError> {
    let tls = config.tls.as_ref().filter(|_| target.tls);
    let infos = target
        .nodes
        .iter()
        .map(|(h, p)| node_info(h, p.to_owned(), target.tls, &target.auth, 0))
        .collect::<RedisResult<Vec<_>>>()
        .map_err(StoreError::InvalidUrl)?;
    let mut builder = ClusterClientBuilder::new(infos.clone())
        .connection_timeout(config.timeout)
        .response_timeout(config.timeout)
        .retries(3);
    if let Some(u) = &target.auth.username {
        builder = builder.username(u);
    }
    if let Some(p) = &target.auth.password {
        builder = builder.password(p.as_str());
    }
    if target.tls {
        use_ring();
        builder = builder.tls(redis::TlsMode::Secure);
        if let Some(t) = tls {
            builder = builder.certs(certificates(t));
        }
    }
    let cluster = builder.build().map_err(StoreError::InvalidUrl)?;
    let connect = || async {
        tokio::time::timeout(config.timeout * 2, cluster.get_async_connection())
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(classify)
    };
    let reader = connect().await?;
    let writer = if separate_writer {
        connect().await?
    } else {
        reader.clone()
    };
    let subscribers = infos
        .into_iter()
        .map(|info| client(info, tls))
        .collect::<Result<Vec<_>, _>>()?;
    let pair = Pair {
        reader: Conn::Cluster(reader),
        writer: Conn::Cluster(writer),
    };
    Ok((Link::Fixed(pair), Subscribe::AnyOf(subscribers)))
}
