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
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

# Two cores: the proxy under test gets one, the load generator and the upstream the other.
PROXY_CPU, LOAD_CPU = ("1", "0") if os.cpu_count() >= 2 else ("0", "0")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd):
    return subprocess.run(["bash", "-c", cmd], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def listener_yaml(filters, cluster_port, direct):
    route = "direct_response: {status: 200, body: {inline_string: ok}}" if direct else "route: {cluster: upstream}"
    return f"""
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}
static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config: {{virtual_hosts: [{{name: all, domains: ["*"], routes: [{{match: {{prefix: "/"}}, {route}}}]}}]}}
          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: upstream
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {cluster_port}}}}}}}}}]}}]
"""


PROBE = """          - name: probe
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config: {name: test_module, do_not_close: true}
              filter_name: probe
              filter_config: {"@type": type.googleapis.com/google.protobuf.StringValue, value: 'CONFIG'}
"""


class Envoy:
    def __init__(self, envoy_bin, name, yaml, workdir, cpu):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        cfg = os.path.join(self.dir, "envoy.yaml")
        with open(cfg, "w") as f:
            f.write(yaml)
        env = dict(os.environ, ENVOY_DYNAMIC_MODULES_SEARCH_PATH=os.path.join(ROOT, "target/release"))
        self.log = open(os.path.join(self.dir, "envoy.log"), "w")
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpu, envoy_bin, "-c", cfg, "--concurrency", "1", "--disable-hot-restart", "-l", "warning",
             "--admin-address-path", os.path.join(self.dir, "admin")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env, start_new_session=True)
        self.port = self._wait_port()

    def _wait_port(self):
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"envoy exited: see {self.log.name}")
            try:
                admin = open(os.path.join(self.dir, "admin")).read().strip()
                data = json.load(urllib.request.urlopen(f"http://{admin}/listeners?format=json", timeout=1))
                port = data["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
                if port:
                    return port
            except (OSError, ValueError, KeyError, IndexError):
                pass
            time.sleep(0.05)
        sys.exit("envoy did not become ready")

    def cpu_seconds(self):
        """User + system CPU time the proxy process has used so far."""
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(envoy, seconds, connections):
    cpu_before = envoy.cpu_seconds()
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                          f"http://127.0.0.1:{envoy.port}/"], check=True, capture_output=True, text=True).stdout
    cpu = envoy.cpu_seconds() - cpu_before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    lat = {p: to_ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"wrk saw {errors.group(1)} non-2xx responses")
    return rps, lat["50"], lat["99"], cpu / total * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()

    envoy_bin = sh("source scripts/tools.sh && ensure_apt wrk && ensure_envoy >&2 && echo $ENVOY_BIN").strip()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "test-module"], cwd=ROOT, check=True)

    with tempfile.TemporaryDirectory() as work:
        upstream = Envoy(envoy_bin, "upstream", listener_yaml("", 1, direct=True), work, LOAD_CPU)
        sides = {
            "no filter": Envoy(envoy_bin, "plain", listener_yaml("", upstream.port, direct=False), work, PROXY_CPU),
            "module no-op": Envoy(envoy_bin, "noop", listener_yaml(PROBE.replace("CONFIG", '{"passthrough":true}'),
                                                                   upstream.port, direct=False), work, PROXY_CPU),
            "test module": Envoy(envoy_bin, "module", listener_yaml(PROBE.replace("CONFIG", "{}"), upstream.port,
                                                                  direct=False), work, PROXY_CPU),
        }
        try:
            for e in sides.values():  # warm-up: connections, caches
                wrk(e, 1, args.connections)
            results = {name: [] for name in sides}
            for _ in range(args.rounds):
                for name, e in sides.items():
                    results[name].append(wrk(e, args.seconds, args.connections))
        finally:
            for e in [upstream, *sides.values()]:
                e.stop()

    print(f"\n{args.rounds} alternating rounds of {args.seconds}s, wrk -t1 -c{args.connections}, "
          f"Envoy 1.40.0 --concurrency 1 pinned to cpu {PROXY_CPU}, wrk + upstream on cpu {LOAD_CPU}; medians:")
    print(f"{'':14}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'proxy CPU us/req':>18}")
    med = {}
    for name, runs in results.items():
        med[name] = [statistics.median(r[i] for r in runs) for i in range(4)]
        m = med[name]
        print(f"{name:14}{m[0]:>10.0f}{m[1]:>10.3f}{m[2]:>10.3f}{m[3]:>18.1f}")
    ratio = med["test module"][0] / med["no filter"][0]
    cpu_ratio = med["no filter"][3] / med["test module"][3]
    print(f"throughput ratio (module / no filter): {ratio:.3f}  (target >= 0.95)")
    print(f"CPU-efficiency ratio (no-filter CPU per request / module CPU per request): {cpu_ratio:.3f}"
          f" = the throughput share a CPU-bound proxy would keep")
    plumbing = med["module no-op"][3] - med["no filter"][3]
    ours = med["test module"][3] - med["module no-op"][3]
    print(f"of the module's extra CPU per request: {plumbing:.1f} us is Envoy calling a module that does nothing, "
          f"{ours:.1f} us the header read + write")
    print("per-round req/s:", {n: [round(r[0]) for r in runs] for n, runs in results.items()})


if __name__ == "__main__":
    main()
