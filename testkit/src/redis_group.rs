//! Redis groups on loopback: a master with replicas watched by sentinels, and a
//! Cluster of masters with replicas. Every process is stopped by pid when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, wait_for_port};

/// The master's name the sentinels are given.
pub const MASTER_NAME: &str = "sessions";

/// One `redis-server` process (a data node or a sentinel).
pub struct Node {
    /// Its port.
    pub port: u16,
    args: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Node {
    fn start(args: Vec<String>, config: Option<String>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut port = free_port();
        // A cluster node also binds port + 10000 (the cluster bus).
        while args.iter().any(|a| a == "--cluster-enabled")
            && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_err()
        {
            port = free_port();
        }
        let mut all = Vec::new();
        if let Some(text) = config {
            // Sentinels rewrite their config file: each gets its own copy.
            let path = dir.path().join("node.conf");
            std::fs::write(&path, text.replace("{port}", &port.to_string())).expect("config");
            all.push(path.display().to_string());
        }
        all.extend(["--port".into(), port.to_string(), "--bind".into(), "127.0.0.1".into()]);
        all.extend(args);
        let mut node = Self {
            port,
            args: all,
            dir,
            child: None,
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(&self.args)
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        self.child = Some(cmd.spawn().expect("start redis-server (scripts/test.sh installs it)"));
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "redis-server on {} did not start",
            self.port
        );
    }

    /// Kills it (as a crash would: no chance to hand over).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again with the same arguments (data is gone: no persistence).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// True while its process runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// A synchronous command to it.
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(&mut conn)
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A master, its replicas and the sentinels watching them (quorum 2).
pub struct SentinelGroup {
    /// Data nodes; index 0 started as the master.
    pub nodes: Vec<Node>,
    /// The sentinels.
    pub sentinels: Vec<Node>,
}

impl SentinelGroup {
    /// Starts 1 master, `replicas` replicas and `sentinels` sentinels, and waits until
    /// every sentinel knows every replica and the other sentinels (so a failover can
    /// be agreed). A master is declared down after 1 s without answers.
    pub fn start(replicas: usize, sentinels: usize) -> Self {
        let master = Node::start(Vec::new(), None);
        let mut nodes = vec![master];
        for _ in 0..replicas {
            let of = vec!["--replicaof".into(), "127.0.0.1".into(), nodes[0].port.to_string()];
            nodes.push(Node::start(of, None));
        }
        let conf = format!(
            "port {{port}}\nbind 127.0.0.1\nsentinel monitor {MASTER_NAME} 127.0.0.1 {} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
             sentinel failover-timeout {MASTER_NAME} 4000\n\
             sentinel parallel-syncs {MASTER_NAME} 2\n",
            nodes[0].port
        );
        let sentinels: Vec<Node> = (0..sentinels)
            .map(|_| Node::start(vec!["--sentinel".into()], Some(conf.clone())))
            .collect();
        let online = format!("connected_slaves:{replicas}");
        wait_until("the replicas to be in sync", Duration::from_secs(30), || {
            nodes[0]
                .cmd::<String>(&["INFO", "replication"])
                .is_ok_and(|i| i.contains(&online) && i.matches("state=online").count() == replicas)
        });
        let group = Self { nodes, sentinels };
        let (want_replicas, want_others) = (replicas.to_string(), (group.sentinels.len() - 1).to_string());
        wait_until(
            "the sentinels to see each other and the replicas",
            Duration::from_secs(30),
            || {
                group.sentinels.iter().all(|s| {
                    let fields: Vec<String> = s.cmd(&["SENTINEL", "MASTER", MASTER_NAME]).unwrap_or_default();
                    let get = |k: &str| {
                        fields
                            .iter()
                            .position(|f| f == k)
                            .and_then(|i| fields.get(i + 1))
                            .cloned()
                            .unwrap_or_default()
                    };
                    get("num-slaves") == want_replicas && get("num-other-sentinels") == want_others
                })
            },
        );
        group
    }

    /// `host:port` pairs of the sentinels.
    pub fn sentinel_addrs(&self) -> Vec<(String, u16)> {
        self.sentinels.iter().map(|s| ("127.0.0.1".into(), s.port)).collect()
    }

    /// The master's port as the first answering sentinel says.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let addr: Vec<String> = s.cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME]).ok()?;
            addr.get(1)?.parse().ok()
        })
    }

    /// The data node listening on `port`.
    pub fn node(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of the group")
    }

    /// Waits until the sentinels name a master other than `old` that answers as master.
    pub fn wait_for_new_master(&self, old: u16, limit: Duration) -> u16 {
        let mut found = 0;
        wait_until("a new master", limit, || {
            found = self.master_port().unwrap_or(old);
            found != old
                && self.nodes.iter().any(|n| {
                    n.port == found
                        && n.cmd::<Vec<redis::Value>>(&["ROLE"])
                            .ok()
                            .and_then(|r| r.first().cloned())
                            .is_some_and(|v| redis::from_redis_value::<String>(v).is_ok_and(|s| s == "master"))
                })
        });
        found
    }
}

/// A Redis Cluster: `masters` masters with one replica each.
pub struct RedisCluster {
    /// Every node; the first `masters` started as masters.
    pub nodes: Vec<Node>,
}

impl RedisCluster {
    /// Starts the nodes, joins them with `redis-cli --cluster create` and waits until
    /// every node says the cluster is ok. A node is failed after 1 s without answers.
    pub fn start(masters: usize) -> Self {
        let masters_wanted = masters;
        let args = || {
            ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"]
                .map(String::from)
                .to_vec()
        };
        let nodes: Vec<Node> = (0..masters * 2).map(|_| Node::start(args(), None)).collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .current_dir(nodes[0].dir())
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli (scripts/test.sh installs redis-tools)");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes };
        cluster.wait_ok(Duration::from_secs(30));
        wait_until("every master's replica to be in sync", Duration::from_secs(30), || {
            let masters = cluster.masters();
            masters.len() == masters_wanted
                && cluster.nodes.iter().filter(|n| masters.contains(&n.port)).all(|n| {
                    n.cmd::<String>(&["INFO", "replication"])
                        .is_ok_and(|i| i.matches("state=online").count() == 1)
                })
        });
        cluster
    }

    /// Waits until every running node reports `cluster_state:ok` with all slots served.
    pub fn wait_ok(&self, limit: Duration) {
        wait_until("the cluster to be ok", limit, || {
            self.nodes.iter().filter(|n| n.running()).all(|n| {
                n.cmd::<String>(&["CLUSTER", "INFO"])
                    .is_ok_and(|i| i.contains("cluster_state:ok") && i.contains("cluster_slots_ok:16384"))
            })
        });
    }

    /// Waits until `masters` running nodes are masters again and the cluster is ok (a
    /// replica took over from a killed master).
    pub fn wait_for_failover(&self, masters: usize, limit: Duration) {
        wait_until("a replica to take over", limit, || self.masters().len() == masters);
        self.wait_ok(limit);
    }

    /// `host:port` pairs of every node.
    pub fn addrs(&self) -> Vec<(String, u16)> {
        self.nodes.iter().map(|n| ("127.0.0.1".into(), n.port)).collect()
    }

    /// Ports of the nodes that are masters now.
    pub fn masters(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.running())
            .filter(|n| {
                n.cmd::<String>(&["INFO", "replication"])
                    .is_ok_and(|i| i.contains("role:master"))
            })
            .map(|n| n.port)
            .collect()
    }

    /// How many keys each running master holds.
    pub fn keys_per_master(&self) -> Vec<u64> {
        let masters = self.masters();
        self.nodes
            .iter()
            .filter(|n| masters.contains(&n.port))
            .map(|n| n.cmd::<u64>(&["DBSIZE"]).unwrap_or(0))
            .collect()
    }

    /// The node listening on `port`.
    pub fn node(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of the cluster")
    }
}
