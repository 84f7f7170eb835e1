#!/usr/bin/env python3
"""Envoy with no filter vs Envoy with the test module doing a synchronous header read +
write per request: requests/s and p50/p99 latency, in one run, on loopback. A third
proxy loads the module in pass-through mode, to split Envoy's cost of calling a module
from the cost of what the module does.

Both proxies are the same pinned Envoy binary with one worker (on its own core), in front of the same
upstream (a third Envoy answering with a direct response). Runs alternate (plain, module,
plain, module, ...) so drift on a noisy machine hits both sides alike; medians are printed
with the ratio. Usage: scripts/bench_overhead.py [--seconds 5] [--rounds 3] [--connections 16]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (  # noqa: E402
    LOAD_CPU, PROXY_CPU, ROOT, Envoy, fixed_rate, listener_yaml, module_filter, print_table, sh, wrk,
)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rate", type=int, default=2000, help="req/s of the fixed-rate phase (below saturation)")
    args = ap.parse_args()

    envoy_bin = sh("source scripts/tools.sh && ensure_apt wrk && ensure_envoy >&2 && echo $ENVOY_BIN").strip()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "test-module"], cwd=ROOT, check=True)

    with tempfile.TemporaryDirectory() as work:
        upstream = Envoy(envoy_bin, "upstream", listener_yaml("", 1, direct=True), work, LOAD_CPU)
        sides = {
            "no filter": Envoy(envoy_bin, "plain", listener_yaml("", upstream.port, direct=False), work, PROXY_CPU),
            "module no-op": Envoy(envoy_bin, "noop",
                                  listener_yaml(module_filter("test_module", "probe", '{"passthrough":true}'),
                                                upstream.port, direct=False), work, PROXY_CPU),
            "test module": Envoy(envoy_bin, "module",
                                 listener_yaml(module_filter("test_module", "probe", "{}"), upstream.port, direct=False),
                                 work, PROXY_CPU),
        }
        try:
            for e in sides.values():  # warm-up: connections, caches
                wrk(e, 1, args.connections)
            results = {name: [] for name in sides}
            steady = {name: [] for name in sides}
            for _ in range(args.rounds):
                for name, e in sides.items():
                    results[name].append(wrk(e, args.seconds, args.connections))
                for name, e in sides.items():
                    steady[name].append(fixed_rate(e, args.rate, args.seconds))
        finally:
            for e in [upstream, *sides.values()]:
                e.stop()

    med = print_table(results, f"{args.rounds} alternating rounds of {args.seconds}s, wrk -t1 -c{args.connections}, "
                      f"Envoy 1.40.0 --concurrency 1 pinned to cpu {PROXY_CPU}, wrk + upstream on cpu {LOAD_CPU}")
    ratio = med["test module"][0] / med["no filter"][0]
    cpu_ratio = med["no filter"][3] / med["test module"][3]
    print(f"throughput ratio (module / no filter): {ratio:.3f}  (target >= 0.95)")
    print(f"CPU-efficiency ratio (no-filter CPU per request / module CPU per request): {cpu_ratio:.3f}"
          f" = the throughput share a CPU-bound proxy would keep")
    print(f"\nFixed rate {args.rate} req/s (open loop, hey), {args.rounds} alternating rounds; medians:")
    fixed = {n: [statistics.median(r[i] for r in runs) for i in range(3)] for n, runs in steady.items()}
    print(f"{'':16}{'CPU us/req':>12}{'p50 ms':>10}{'p99 ms':>10}")
    for n, m in fixed.items():
        print(f"{n:16}{m[0]:>12.1f}{m[1]:>10.3f}{m[2]:>10.3f}")
    plumbing = fixed["module no-op"][0] - fixed["no filter"][0]
    ours = fixed["test module"][0] - fixed["module no-op"][0]
    print(f"of the module's extra CPU per request: {plumbing:+.1f} us is Envoy calling a module that does nothing, "
          f"{ours:+.1f} us the header read + write; CPU-efficiency ratio "
          f"{fixed['no filter'][0] / fixed['test module'][0]:.3f}")


if __name__ == "__main__":
    main()
