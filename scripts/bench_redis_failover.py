#!/usr/bin/env python3
"""Redis failover under load: two Envoys sharing a Sentinel-managed master or a Cluster.

One run, loopback, real processes. Sentinel: 1 master + 2 replicas + 3 sentinels (master
down after 1 s). Cluster: 3 masters + 3 replicas (node timeout 1 s). Two Envoys 1.40
with the filter (store on that Redis, cache_ttl_secs 1 so signed-in requests keep
reading Redis, timeouts.store_ms --store-ms) in front of a direct response; the
project's IdP. Before the load, --sessions users log in (alternating Envoys). Load:
  signed-in  4 threads, keep-alive, each request a random session at a random Envoy;
  logins     2 threads looping whole logins (start -> IdP form -> callback -> session
             written, waiting for a replica).
After --before seconds the master (Sentinel) or one master (Cluster) is killed; with
Cluster the killed node is started again once the cluster is ok (as an orchestrator
would: its shard has no replica left, and writes wait for one). Load goes on for
--after seconds. Prints, per kind: requests, failures (by status), the last failure
after the kill, the slowest request; the failover time Redis itself took; then checks
every session made before the kill at both Envoys (0 lost is the promise for writes a
replica acknowledged). Usage: scripts/bench_redis_failover.py [--mode sentinel,cluster]
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Envoy, free_port, http_request, listener_yaml, login, module_filter, sh, start_idp  # noqa: E402
from redislib import Cluster, SentinelGroup  # noqa: E402

class Recorder:
    def __init__(self):
        self.lock, self.rows = threading.Lock(), []

    def add(self, kind, ok, status, seconds):
        with self.lock:
            self.rows.append((time.time(), kind, ok, status, seconds))


def signed_in(gws, sessions, rec, stop):
    import http.client
    conns = {}
    while not stop.is_set():
        gw, cookie = random.choice(gws), random.choice(sessions)
        t = time.time()
        try:
            c = conns.get(gw) or http.client.HTTPConnection("127.0.0.1", gw, timeout=10)
            conns[gw] = c
            c.request("GET", "/", headers={"accept": "text/html", "cookie": f"__Host-oidc_session={cookie}"})
            r = c.getresponse()
            r.read()
            status = r.status
            if r.getheader("connection", "").lower() == "close":
                c.close()
                conns.pop(gw, None)
        except OSError as e:
            status = type(e).__name__
            conns.pop(gw, None)
        rec.add("signed-in", status == 200, status, time.time() - t)


def logins(gws, rec, stop):
    n = 0
    while not stop.is_set():
        n += 1
        gw = gws[n % len(gws)]
        t = time.time()
        try:
            cookies = login(f"http://127.0.0.1:{gw}/", f"user{n}")
            ok = "__Host-oidc_session" in cookies
            status = "session" if ok else "no session"
        except OSError as e:
            ok, status = False, type(e).__name__
        rec.add("login", ok, status, time.time() - t)
        if not ok:
            time.sleep(0.05)


def run(mode, args, tools, work):
    envoy_bin, node_bin, module_dir = tools
    redis = SentinelGroup(work) if mode == "sentinel" else Cluster(work)
    idp_port, ports = free_port(), [free_port(), free_port()]
    clients = [{"client_id": "bench", "client_secret": "bench-secret",
                "redirect_uri": [f"http://127.0.0.1:{p}/oauth2/callback" for p in ports]}]
    idp = start_idp(node_bin, idp_port, clients, work)
    envoys = []
    try:
        for i, port in enumerate(ports):
            config = {
                "issuer": f"http://127.0.0.1:{idp_port}", "client_id": "bench",
                "client_secret": {"inline": "bench-secret"}, "redirect_uri": f"http://127.0.0.1:{port}/oauth2/callback",
                "session": {"keys": [{"inline": "YmVuY2gtc2Vzc2lvbi1rZXktb2YtMzItYnl0ZXMhISE"}], "cache_ttl_secs": 1,
                            "store": {"redis": redis.store()}},
                "timeouts": {"store_ms": args.store_ms},
            }
            envoys.append(Envoy(envoy_bin, f"{mode}-{i}", listener_yaml(
                module_filter("envoy_oidc", "oidc", json.dumps(config)), 1, direct=True, listen_port=port),
                work, "0,1", module_dir=module_dir))
        sessions = []
        for n in range(args.sessions):
            cookies = login(f"http://127.0.0.1:{ports[n % 2]}/", f"before{n}")
            if "__Host-oidc_session" not in cookies:
                sys.exit(f"login {n} failed before the failover: see {work}/{mode}-*/envoy.log")
            sessions.append(cookies["__Host-oidc_session"])
        rec, stop = Recorder(), threading.Event()
        threads = [threading.Thread(target=signed_in, args=(ports, sessions, rec, stop)) for _ in range(4)]
        threads += [threading.Thread(target=logins, args=(ports, rec, stop)) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(args.before)
        killed = time.time()
        failover = redis.fail()
        time.sleep(max(0.0, args.after - (time.time() - killed)))
        stop.set()
        for t in threads:
            t.join()
        lost = 0
        for cookie in sessions:
            for port in ports:
                status, _, _, _ = http_request(f"http://127.0.0.1:{port}/", headers={
                    "accept": "text/html", "cookie": f"__Host-oidc_session={cookie}"})
                lost += status != 200
    finally:
        for e in envoys:
            e.stop()
        idp.kill()
        redis.stop()
    return report(mode, rec.rows, killed, failover, lost, args)


def report(mode, rows, killed, failover, lost, args):
    print(f"\n{mode}: Redis failover took {failover:.1f} s (kill to a replica answering as master"
          f"{', cluster ok' if mode == 'cluster' else ''}); store timeout {args.store_ms} ms")
    print(f"{'kind':10}{'requests':>10}{'failed':>8}{'last failure after kill':>25}{'slowest ms':>12}  failures by status")
    for kind in ("signed-in", "login"):
        mine = [r for r in rows if r[1] == kind]
        bad = [r for r in mine if not r[2]]
        by = {}
        for r in bad:
            by[r[3]] = by.get(r[3], 0) + 1
        last = max((r[0] for r in bad), default=None)
        last_txt = f"{last - killed:.1f} s" if last else "-"
        slowest = max((r[4] for r in mine), default=0) * 1000
        print(f"{kind:10}{len(mine):>10}{len(bad):>8}{last_txt:>25}{slowest:>12.0f}  {by}")
    print(f"sessions made before the kill, checked at both Envoys afterwards: {args.sessions * 2 - lost} of "
          f"{args.sessions * 2} answered 200 ({lost} lost)")
    return lost


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", default="sentinel,cluster")
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--before", type=float, default=5)
    ap.add_argument("--after", type=float, default=20)
    ap.add_argument("--store-ms", type=int, default=1000)
    ap.add_argument("--module-dir")
    args = ap.parse_args()
    for tool in ("redis-server", "redis-cli"):
        if not shutil.which(tool):
            sys.exit(f"{tool} missing: scripts/test.sh installs it")
    tools = ("source scripts/tools.sh && ensure_envoy >&2 && ensure_node_packages >&2 && build_module >&2")
    envoy_bin, node_bin, module_dir = sh(f"{tools} && echo $ENVOY_BIN && echo $NODE_BIN && echo $OIDC_MODULE_DIR").split()
    lost = 0
    with tempfile.TemporaryDirectory() as work:
        for mode in args.mode.split(","):
            lost += run(mode, args, (envoy_bin, node_bin, args.module_dir or module_dir), work)
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
