#!/usr/bin/env python3
"""Authenticated requests through the OIDC filter (memory store, session cache hit), Envoy's
own `envoy.filters.http.oauth2` (valid cookies) and the same Envoy with no filter, in one
run on loopback: requests/s, p50/p99, proxy CPU per request and the ratios.

Each filter side logs in once through the local IdP (oidc-provider) and then sends its
cookies with every request, so each request does the full per-request work (ours: strip
identity headers, open the sealed cookie, look up the cache, inject identity headers,
rewrite the cookie header; Envoy's: check the HMAC of its cookies). The proxies run one
worker pinned to one core; wrk and the upstream (an Envoy direct response) share the
other. Rounds alternate between the sides.
Usage: scripts/bench_gateway.py [--seconds 5] [--rounds 5] [--connections 16]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (  # noqa: E402
    LOAD_CPU, PROXY_CPU, ROOT, Envoy, fixed_rate, free_port, listener_yaml, login, module_filter, print_table, sh,
    start_idp, wrk,
)
from bench_icount import oauth2_filters  # noqa: E402



def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rate", type=int, default=2000, help="req/s of the fixed-rate phase (below saturation)")
    ap.add_argument("--access-log-user", default="filter_state",
                    choices=["dynamic_metadata", "filter_state", "none"])
    args = ap.parse_args()

    tools = "source scripts/tools.sh && ensure_apt wrk && ensure_envoy >&2 && ensure_node_packages >&2"
    envoy_bin, node_bin = sh(f"{tools} && echo $ENVOY_BIN && echo $NODE_BIN").split()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "envoy-oidc"], cwd=ROOT, check=True)

    idp_port, gw_port, peer_port = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{gw_port}"
    peer_base = f"http://127.0.0.1:{peer_port}"
    issuer = f"http://127.0.0.1:{idp_port}"
    clients = [{"client_id": "bench", "client_secret": "bench-secret", "redirect_uri": f"{base}/oauth2/callback"},
               {"client_id": "bench-oauth2", "client_secret": "bench-secret", "redirect_uri": f"{peer_base}/callback"}]
    with tempfile.TemporaryDirectory() as work:
        idp = start_idp(node_bin, idp_port, clients, work)
        procs = []
        try:
            config = json.dumps({
                "issuer": issuer, "client_id": "bench", "client_secret": {"inline": "bench-secret"},
                "redirect_uri": f"{base}/oauth2/callback",
                "session": {"keys": [{"inline": "YmVuY2gtc2Vzc2lvbi1rZXktb2YtMzItYnl0ZXMhISE"}]},
                "access_log_user": args.access_log_user,
            })
            upstream = Envoy(envoy_bin, "upstream", listener_yaml("", 1, direct=True), work, LOAD_CPU)
            procs.append(upstream)
            peer_filters, peer_static = oauth2_filters(idp_port, peer_base)
            sides = {
                "no filter": Envoy(envoy_bin, "plain", listener_yaml("", upstream.port, direct=False), work, PROXY_CPU),
                "oidc filter": Envoy(envoy_bin, "oidc", listener_yaml(module_filter("envoy_oidc", "oidc", config), upstream.port,
                                                                      direct=False, listen_port=gw_port),
                                     work, PROXY_CPU),
                "envoy oauth2": Envoy(envoy_bin, "oauth2",
                                      listener_yaml(peer_filters, upstream.port, direct=False, listen_port=peer_port)
                                      + peer_static, work, PROXY_CPU),
            }
            procs.extend(sides.values())
            time.sleep(1)  # discovery
            cookies = login(f"{base}/", "alice")
            if "__Host-oidc_session" not in cookies:
                sys.exit(f"login failed; cookies: {list(cookies)}")
            peer = login(f"{peer_base}/", "alice")
            if "OauthHMAC" not in peer:
                sys.exit(f"oauth2 filter login failed; cookies: {list(peer)}")
            ours = ["accept: text/html", f"cookie: __Host-oidc_session={cookies['__Host-oidc_session']}; theme=dark"]
            theirs = ["accept: text/html", "cookie: " + "; ".join(f"{k}={v}" for k, v in peer.items()) + "; theme=dark"]
            headers = {"no filter": ours, "oidc filter": ours, "envoy oauth2": theirs}
            for name, e in sides.items():
                wrk(e, 1, args.connections, headers[name])
            results = {name: [] for name in sides}
            steady = {name: [] for name in sides}
            for _ in range(args.rounds):
                for name, e in sides.items():
                    results[name].append(wrk(e, args.seconds, args.connections, headers[name]))
                for name, e in sides.items():
                    steady[name].append(fixed_rate(e, args.rate, args.seconds, headers[name]))
        finally:
            for p in procs:
                p.stop()
            idp.kill()

    med = print_table(results, f"{args.rounds} alternating rounds of {args.seconds}s, wrk -t1 -c{args.connections}, "
                      f"authenticated (memory store, cache hit, access_log_user={args.access_log_user}), "
                      f"Envoy 1.40.0 --concurrency 1 on cpu {PROXY_CPU}")
    print(f"throughput ratio (filter / no filter): {med['oidc filter'][0] / med['no filter'][0]:.3f}  (target >= 0.95)")
    print(f"throughput ratio (filter / Envoy's oauth2 filter): {med['oidc filter'][0] / med['envoy oauth2'][0]:.3f}"
          f"  (target >= 1.2)")
    print(f"CPU per request (saturated, noisy): {med['oidc filter'][3] - med['no filter'][3]:+.1f} us with the filter")
    print(f"\nFixed rate {args.rate} req/s (open loop, hey), {args.rounds} alternating rounds; medians:")
    print(f"{'':16}{'CPU us/req':>12}{'p50 ms':>10}{'p99 ms':>10}")
    fixed = {n: [statistics.median(r[i] for r in runs) for i in range(3)] for n, runs in steady.items()}
    for n, m in fixed.items():
        print(f"{n:16}{m[0]:>12.1f}{m[1]:>10.3f}{m[2]:>10.3f}")
    plain, oidc, peer_cpu = fixed["no filter"][0], fixed["oidc filter"][0], fixed["envoy oauth2"][0]
    print(f"filter CPU per request: {oidc - plain:+.1f} us; CPU-efficiency ratio {plain / oidc:.3f} "
          f"(the throughput share a CPU-bound proxy keeps; target >= 0.95); "
          f"Envoy's oauth2 filter: {peer_cpu - plain:+.1f} us, ratio {plain / peer_cpu:.3f}")


if __name__ == "__main__":
    main()
