"""Redis groups on loopback for the benchmarks and chart tests: a Sentinel-managed master
with replicas, and a Cluster. Every process runs in its own directory and is killed by pid."""
import atexit
import os
import subprocess
import sys
import tempfile
import time

from benchlib import free_port

# Every process started, killed (by pid) at exit whatever path the script leaves by.
_STARTED = []


@atexit.register
def _kill_started():
    for p in _STARTED:
        if p.poll() is None:
            p.kill()
            p.wait()


def bindable(port):
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False

MASTER = "sessions"


class Redis:
    """One redis-server (data node or sentinel) in its own directory; killed by pid."""

    def __init__(self, work, args, conf=None, password=None):
        self.port, self.password = free_port(), password
        # A cluster node also listens on its port + 10000 (the cluster bus).
        while "--cluster-enabled" in args and (self.port > 55_000 or not bindable(self.port + 10_000)):
            self.port = free_port()
        self.dir = tempfile.mkdtemp(dir=work)
        self.args = ["--port", str(self.port), "--bind", "127.0.0.1", *args,
                     "--save", "", "--appendonly", "no", "--dir", self.dir]
        if conf is not None:
            path = os.path.join(self.dir, "node.conf")
            with open(path, "w") as f:
                f.write(conf)
            self.args.insert(0, path)
        self.proc = None
        self.start()

    def start(self):
        log = open(os.path.join(self.dir, "log"), "a")
        self.proc = subprocess.Popen(["redis-server", *self.args], cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, start_new_session=True)
        _STARTED.append(self.proc)
        wait(lambda: self.cli("PING") == "PONG", 10, f"redis-server on {self.port}")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def cli(self, *args):
        auth = ["--no-auth-warning", "-a", self.password] if self.password else []
        r = subprocess.run(["redis-cli", "-p", str(self.port), *auth, *args], capture_output=True, text=True, timeout=5)
        return r.stdout.strip()


def wait(ok, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if ok():
                return
        except (OSError, subprocess.SubprocessError):
            pass
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {what}")


class SentinelGroup:
    """1 master + 2 replicas + 3 sentinels (quorum 2, master down after 1 s); the data
    nodes and the sentinels each optionally behind a password."""

    def __init__(self, work, password=None, sentinel_password=None):
        auth = ["--requirepass", password, "--masterauth", password] if password else []
        self.nodes = [Redis(work, auth, password=password)]
        self.nodes += [Redis(work, ["--replicaof", "127.0.0.1", str(self.nodes[0].port), *auth], password=password)
                       for _ in range(2)]
        conf = (f"sentinel monitor {MASTER} 127.0.0.1 {self.nodes[0].port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 4000\n"
                f"sentinel parallel-syncs {MASTER} 2\n")
        if password:
            conf += f"sentinel auth-pass {MASTER} {password}\n"
        if sentinel_password:
            conf += f"requirepass {sentinel_password}\nsentinel sentinel-pass {sentinel_password}\n"
        self.sentinels = [Redis(work, ["--sentinel"], conf, password=sentinel_password) for _ in range(3)]
        wait(lambda: self.nodes[0].cli("INFO", "replication").count("state=online") == 2, 30, "replicas in sync")
        wait(lambda: all("num-other-sentinels\n2" in s.cli("SENTINEL", "MASTER", MASTER) for s in self.sentinels),
             30, "sentinels to see each other")

    def store(self):
        return {"sentinel": {"master": MASTER, "nodes": [f"127.0.0.1:{s.port}" for s in self.sentinels]}}

    def masters(self):
        return [n for n in self.nodes if n.port == self.master_port()]

    def master_port(self):
        out = self.sentinels[0].cli("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER).split()
        return int(out[1]) if len(out) == 2 else None

    def fail(self):
        """Kills the master; returns seconds until a replica answers as master."""
        old = self.master_port()
        victim = next(n for n in self.nodes if n.port == old)
        t = time.time()
        victim.kill()

        def promoted():
            new = self.master_port()
            return new not in (None, old) and any(n.port == new and n.cli("ROLE").startswith("master")
                                                  for n in self.nodes)
        wait(promoted, 30, "a new master")
        return time.time() - t

    def stop(self):
        for n in self.nodes + self.sentinels:
            if n.proc.poll() is None:
                n.kill()


class Cluster:
    """3 masters + 3 replicas (node timeout 1 s)."""

    def __init__(self, work):
        self.nodes = [Redis(work, ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"]) for _ in range(6)]
        out = subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
                              "--cluster-replicas", "1", "--cluster-yes"], capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"cluster create failed: {out.stdout}")
        self.wait_ok()
        wait(lambda: all(n.cli("INFO", "replication").count("state=online") == 1 for n in self.masters()),
             30, "replicas in sync")

    def masters(self):
        return [n for n in self.nodes if n.proc.poll() is None and "role:master" in n.cli("INFO", "replication")]

    def wait_ok(self):
        wait(lambda: all("cluster_state:ok" in n.cli("CLUSTER", "INFO") for n in self.nodes if n.proc.poll() is None),
             30, "the cluster to be ok")

    def store(self):
        return {"cluster": {"nodes": [f"127.0.0.1:{n.port}" for n in self.nodes[:2]]}}

    def fail(self):
        """Kills a master; returns seconds until its replica took over; then starts the
        killed node again (it rejoins as a replica)."""
        victim = self.masters()[0]
        t = time.time()
        victim.kill()
        wait(lambda: len(self.masters()) == 3, 30, "a replica to take over")
        self.wait_ok()
        took = time.time() - t
        victim.start()
        return took

    def stop(self):
        for n in self.nodes:
            if n.proc.poll() is None:
                n.kill()
