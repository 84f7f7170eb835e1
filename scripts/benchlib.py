"""Shared pieces of the load benchmarks: Envoy processes pinned to a core, wrk runs."""
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

# Two cores: the proxy under test gets one, the load generator and the upstream the other.
PROXY_CPU, LOAD_CPU = ("1", "0") if os.cpu_count() >= 2 else ("0", "0")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd):
    return subprocess.run(["bash", "-c", cmd], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def listener_yaml(filters, cluster_port, direct, listen_port=0, echo_user=False):
    """A listener with `filters` before a direct response or the upstream cluster; with
    `echo_user` the response carries the identity the filter added (`x-user`)."""
    route = "direct_response: {status: 200, body: {inline_string: ok}}" if direct else "route: {cluster: upstream}"
    if echo_user:
        route += ', response_headers_to_add: [{header: {key: x-user, value: "%REQ(x-auth-request-user)%"}}]'
    return f"""
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}
static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: {listen_port}}}}}
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


def module_filter(lib, filter_name, config):
    """The `http_filters` entry loading dynamic module `lib` with a JSON config."""
    return f"""          - name: {filter_name}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config: {{name: {lib}, do_not_close: true}}
              filter_name: {filter_name}
              filter_config: {{"@type": type.googleapis.com/google.protobuf.StringValue, value: '{config}'}}
"""


class Envoy:
    def __init__(self, envoy_bin, name, yaml, workdir, cpu, module_dir=None, env=None, wrapper=(), ready_within=20):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        cfg = os.path.join(self.dir, "envoy.yaml")
        with open(cfg, "w") as f:
            f.write(yaml)
        env = dict(os.environ, **(env or {}),
                   ENVOY_DYNAMIC_MODULES_SEARCH_PATH=module_dir or os.path.join(ROOT, "target/release"))
        self.log = open(os.path.join(self.dir, "envoy.log"), "w")
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpu, *wrapper, envoy_bin, "-c", cfg, "--concurrency", "1", "--disable-hot-restart", "-l", os.environ.get("BENCH_ENVOY_LOG", "warning"),
             "--admin-address-path", os.path.join(self.dir, "admin")],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env, start_new_session=True)
        self.port = self._wait_port(ready_within)

    def _wait_port(self, ready_within):
        deadline = time.time() + ready_within
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


def header_flags(headers):
    """`-H` options of wrk and hey for `headers` ("name: value" strings)."""
    return [a for h in headers for a in ("-H", h)]


def run_wrk(port, seconds, connections, headers, options=(), realtime=False, env=None):
    """wrk's output for one thread and `connections` connections on the load core;
    `realtime`: SCHED_FIFO, so what it times is the proxy, not its own wait for the core."""
    rt = ["chrt", "-f", "20"] if realtime else []
    return subprocess.run([*rt, "taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
                           *options, *header_flags(headers), f"http://127.0.0.1:{port}/"],
                          env=env, check=True, capture_output=True, text=True).stdout


def wrk(envoy, seconds, connections, headers=()):
    cpu_before = envoy.cpu_seconds()
    out = run_wrk(envoy.port, seconds, connections, headers, ["--latency"])
    cpu = envoy.cpu_seconds() - cpu_before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    lat = {p: to_ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"wrk saw {errors.group(1)} non-2xx responses")
    return rps, lat["50"], lat["99"], cpu / total * 1e6



def medians(results):
    """Median of each column of each side's rounds."""
    return {name: [statistics.median(r[i] for r in runs) for i in range(4)] for name, runs in results.items()}


def print_table(results, title):
    print(f"\n{title}; medians:")
    print(f"{'':16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'proxy CPU us/req':>18}")
    med = medians(results)
    for name, m in med.items():
        print(f"{name:16}{m[0]:>10.0f}{m[1]:>10.3f}{m[2]:>10.3f}{m[3]:>18.1f}")
    print("per-round req/s:", {n: [round(r[0]) for r in runs] for n, runs in results.items()})
    return med


def http_request(url, method="GET", body=None, headers=None, resolve=None):
    """One request, no redirect following: (status, lower-case headers, body text, raw
    Set-Cookie values). `resolve` maps host names to the address to connect to (like
    curl --resolve), so a test can use real-looking host names on loopback."""
    import http.client
    import urllib.parse

    u = urllib.parse.urlsplit(url)
    headers = dict(headers or {})
    headers.setdefault("host", u.netloc)
    c = http.client.HTTPConnection((resolve or {}).get(u.hostname, u.hostname), u.port, timeout=10)
    try:
        c.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=headers)
        r = c.getresponse()
        data = r.read().decode(errors="replace")
        cookies = [v for k, v in r.getheaders() if k.lower() == "set-cookie"]
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data, cookies
    finally:
        c.close()


def login(start_url, user, resolve=None):
    """Logs `user` in through the test IdP's form; returns the cookies set on the start
    URL's origin. Cookies are kept per host and port; `resolve` as in http_request."""
    import urllib.parse

    jars = {}

    def request(url, method="GET", body=None):
        u = urllib.parse.urlsplit(url)
        jar = jars.setdefault((u.hostname, u.port), {})
        headers = {"accept": "text/html"}
        if jar:
            headers["cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        if body is not None:
            headers["content-type"] = "application/x-www-form-urlencoded"
        status, resp_headers, data, cookies = http_request(url, method, body, headers, resolve)
        for v in cookies:
            name, value = v.split(";")[0].split("=", 1)
            if "Max-Age=0" in v:
                jar.pop(name, None)
            else:
                jar[name] = value
        return status, resp_headers, data

    url, body, method = start_url, None, "GET"
    for _ in range(15):
        status, headers, data = request(url, method, body)
        body, method = None, "GET"
        if status in (301, 302, 303):
            url = urllib.parse.urljoin(url, headers["location"])
            continue
        form = re.search(r'<form[^>]*action="([^"]+)"', data)
        if status == 200 and form and 'name="login"' in data:
            fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', data))
            fields.update({"login": user, "password": "any"})
            url = urllib.parse.urljoin(url, form.group(1).replace("&amp;", "&"))
            body, method = urllib.parse.urlencode(fields), "POST"
            continue
        break
    start = urllib.parse.urlsplit(start_url)
    return jars.get((start.hostname, start.port), {})


def start_idp(node_bin, port, clients, workdir, cpu=None, script="e2e/idp/server.mjs"):
    """The test IdP (`script`: e2e/idp/server.mjs, or the second OP vendor-op.mjs, which
    takes no clients) on `port` with these clients, once it answers discovery; stop it
    with `.kill()`."""
    log = open(os.path.join(workdir, "idp.log"), "w")
    cmd = [node_bin, os.path.join(ROOT, script)]
    idp = subprocess.Popen((["taskset", "-c", cpu] if cpu else []) + cmd, stdout=log, stderr=log,
                           start_new_session=True,
                           env=dict(os.environ, IDP_PORT=str(port), IDP_CLIENTS=json.dumps(clients)))
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=1)
            return idp
        except OSError:
            time.sleep(0.1)
    idp.kill()
    sys.exit(f"the IdP did not start: see {log.name}")


_GIVEN_PORTS = set()


def free_port():
    """A free loopback port never handed out before by this process (the kernel may give
    a just-closed port again: two servers told the same port leave one unbound)."""
    import socket

    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def hey(port, rate, seconds, headers=(), workers=8):
    """Open-loop load at `rate` req/s (hey -q) on the load core: ({status: count}, p50 ms, p99 ms)."""
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "hey", "-disable-redirects", "-z", f"{seconds}s",
                          "-c", str(workers), "-q", str(max(1, rate // workers)), *header_flags(headers),
                          f"http://127.0.0.1:{port}/"], check=True, capture_output=True, text=True).stdout
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    lat = dict(re.findall(r"\s(50|99)% in ([\d.]+) secs", out))
    return codes, float(lat["50"]) * 1000, float(lat["99"]) * 1000


def paced(port, rate, seconds, headers=(), connections=8):
    """About `rate` req/s for `seconds` to measure the latency tail (scripts/paced.lua): wrk,
    one thread, `connections` keep-alive connections each waiting an exponential gap before
    each request, SCHED_FIFO on the load core. wrk times each request to the microsecond
    from its write (hey adds ~0.5 ms of its own and reports 0.1 ms steps). Returns
    (requests, non-200 answers, {latency us: count})."""
    out = run_wrk(port, seconds, connections, headers,
                  ["--timeout", "5s", "-s", os.path.join(ROOT, "scripts", "paced.lua")], realtime=True,
                  env={**os.environ, "PACED_GAP_MS": str(connections * 1000 / rate)})
    total = re.search(r"^paced requests (\d+) not_200 (\d+) socket_errors (\d+)$", out, re.M)
    if not total:
        sys.exit(f"wrk printed no summary:\n{out}")
    hist = {int(us): int(n) for us, n in re.findall(r"^paced latency (\d+) (\d+)$", out, re.M)}
    return int(total[1]), int(total[2]) + int(total[3]), hist


def percentile(hist, p):
    """The `p`-th percentile (0-100) of a {value: count} histogram, in its unit."""
    total, seen = sum(hist.values()), 0
    for value in sorted(hist):
        seen += hist[value]
        if seen >= total * p / 100:
            return value
    return 0


def fixed_rate(envoy, rate, seconds, headers=(), workers=8):
    """Open-loop load at `rate` req/s (hey -q), below saturation, so both sides of a
    comparison do the same work per second: returns (proxy CPU us per request, p50 ms, p99 ms)."""
    cpu_before = envoy.cpu_seconds()
    codes, p50, p99 = hey(envoy.port, rate, seconds, headers, workers)
    cpu = envoy.cpu_seconds() - cpu_before
    if set(codes) - {200}:
        sys.exit(f"hey saw non-200 responses: {codes}")
    return cpu / max(1, codes.get(200, 0)) * 1e6, p50, p99
