#!/usr/bin/env python3
"""Instructions per request, deterministically: each side's Envoy runs under callgrind
(`--instr-atstart=no`), is warmed up, then instrumented around N keep-alive requests
only (`callgrind_control -z`, `-i on`, requests, `-i off`, `-d`); the dump's total
divided by N is the side's cost. It repeats to about 0.5 % whatever else the machine
does, so it is the figure to optimise against on a noisy machine.

Sides (Envoy 1.40.0, one worker, a direct response so only the filter differs): no
filter, on each request the other sides send (a session cookie or a bearer token costs
Envoy the same to parse with or without a filter, so each side's "added" is over no
filter with the same request bytes); a dynamic module whose hooks return at once (the floor of any module); Envoy's
own `envoy.filters.http.oauth2` with valid cookies; this filter signed in (session cache
hit, memory and Redis store), on a public route, with a bearer JWT, and unauthenticated
(browser 302, API 401), and a login callback whose code the IdP refuses (a login's
work in Envoy without a browser at the IdP). `--annotate` prints the top inclusive
functions of our `.so`.
Usage: scripts/bench_icount.py [--requests 2000] [--annotate] [--sides a,b]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, Envoy, free_port, http_request, login, module_filter, sh, start_idp  # noqa: E402

SESSION_KEY = "YmVuY2gtc2Vzc2lvbi1rZXktb2YtMzItYnl0ZXMhISE"


def hcm(filters, per_route="", extra_static=""):
    """One listener, a direct response for every path; `/public` with `per_route`."""
    public = f"""
              - match: {{prefix: "/public"}}
                direct_response: {{status: 200, body: {{inline_string: ok}}}}
                typed_per_filter_config:
{per_route}""".rstrip("\n") if per_route else ""
    return f"""
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}
static_resources:
  listeners:
  - address: {{socket_address: {{address: 127.0.0.1, port_value: {{PORT}}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:{public}
              - match: {{prefix: "/"}}
                direct_response: {{status: 200, body: {{inline_string: ok}}}}
          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
{extra_static}"""


OIDC_PUBLIC = """                  oidc:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute
                    dynamic_module_config: {name: envoy_oidc, do_not_close: true}
                    filter_name: oidc
                    filter_config: {"@type": type.googleapis.com/google.protobuf.StringValue, value: '{"disabled": true}'}
"""


def oauth2_filters(idp_port, base):
    """Envoy's own OAuth2 filter against the same IdP (Basic client auth, PKCE), and the
    cluster and secrets it needs (to append under `static_resources`)."""
    filters = f"""          - name: envoy.filters.http.oauth2
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.oauth2.v3.OAuth2
              config:
                token_endpoint: {{cluster: idp, uri: "http://127.0.0.1:{idp_port}/token", timeout: 5s}}
                authorization_endpoint: http://127.0.0.1:{idp_port}/auth
                redirect_uri: "{base}/callback"
                redirect_path_matcher: {{path: {{exact: /callback}}}}
                signout_path: {{path: {{exact: /signout}}}}
                auth_type: BASIC_AUTH
                forward_bearer_token: true
                auth_scopes: [openid, email, profile]
                credentials:
                  client_id: bench-oauth2
                  token_secret: {{name: token}}
                  hmac_secret: {{name: hmac}}
"""
    static = f"""  - name: idp
    connect_timeout: 1s
    load_assignment:
      cluster_name: idp
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {idp_port}}}}}}}}}]}}]
  secrets:
  - name: token
    generic_secret: {{secret: {{inline_string: bench-secret}}}}
  - name: hmac
    generic_secret: {{secret: {{inline_string: bench-hmac-secret-of-some-length}}}}
"""
    return filters, static


def oauth2_filter(idp_port, base):
    filters, static = oauth2_filters(idp_port, base)
    return hcm(filters, extra_static="  clusters:\n" + static)


class Requests:
    """N requests on one keep-alive connection."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def send(self, n, path, headers, expect):
        for _ in range(n):
            self.conn.request("GET", path, headers=headers)
            r = self.conn.getresponse()
            r.read()
            if r.status != expect:
                sys.exit(f"{path}: expected {expect}, got {r.status}")
            if r.getheader("connection", "").lower() == "close":
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.conn.host, self.conn.port, timeout=60)


def control(pid, *args):
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)


def measure(envoy, out_dir, label, n, warmup, path, headers, expect):
    """Instructions per request of `n` requests (after `warmup` uninstrumented ones)."""
    req = Requests(envoy.port)
    req.send(warmup, path, headers, expect)
    pid = envoy.proc.pid
    control(pid, "-z")
    control(pid, "-i", "on")
    req.send(n, path, headers, expect)
    control(pid, "-i", "off")
    before = set(os.listdir(out_dir))
    # Valgrind handles a command when a guest thread runs: requests (not counted now) wake
    # the worker until the dump is written.
    dumper = subprocess.Popen(["callgrind_control", "-d", label, str(pid)], stdout=subprocess.DEVNULL)
    dumps = []
    for _ in range(600):
        dumps = sorted(d for d in set(os.listdir(out_dir)) - before if os.path.getsize(os.path.join(out_dir, d)) > 0)
        if dumps and dumper.poll() is not None:
            break
        req.send(1, path, headers, expect)
        time.sleep(0.05)
    dumper.wait(30)
    total = 0
    for d in dumps:
        text = open(os.path.join(out_dir, d), errors="replace").read()
        # `totals:` is the dump's sum of every event (the `summary:` line may read 0).
        m = re.search(r"^totals:\s+(\d+)", text, re.M) or re.search(r"^summary:\s+(\d+)", text, re.M)
        total += int(m.group(1)) if m else 0
    if not total:
        sys.exit(f"{label}: no instructions in {dumps} (files: {os.listdir(out_dir)})")
    return total / n, [os.path.join(out_dir, d) for d in dumps]


def annotate(dumps, lib="envoy_oidc", top=15):
    """Our functions with the most inclusive instructions in the dump(s)."""
    for d in dumps:
        out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", d],
                             capture_output=True, text=True).stdout
        rows = [line for line in out.splitlines() if lib in line or "envoy_oidc" in line]
        for line in rows[:top]:
            print("   ", line.strip()[:160])


def callgrind_envoy(envoy_bin, name, yaml, work, module_dir=None):
    out_dir = os.path.join(work, f"cg-{name}")
    os.makedirs(out_dir)
    port = free_port()
    wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=no",
               f"--callgrind-out-file={out_dir}/callgrind.out.%p"]
    e = Envoy(envoy_bin, name, yaml.replace("{PORT}", str(port)), work, "0-1", module_dir=module_dir,
              wrapper=wrapper, ready_within=180)
    return e, out_dir


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--annotate", action="store_true")
    ap.add_argument("--sides", default="", help="comma-separated subset: plain,noop,oauth2,oidc,redis")
    ap.add_argument("--keep", default="", help="copy the callgrind dumps into this folder")
    args = ap.parse_args()
    want = set(filter(None, args.sides.split(","))) or {"plain", "noop", "oauth2", "oidc", "redis"}

    tools = ("source scripts/tools.sh && ensure_apt valgrind redis-server >&2 && ensure_envoy >&2 "
             "&& ensure_node_packages >&2")
    envoy_bin, node_bin = sh(f"{tools} && echo $ENVOY_BIN && echo $NODE_BIN").split()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "envoy-oidc", "-p", "test-module"], cwd=ROOT, check=True)

    rows = []
    shapes = {}  # request shape -> the headers a side sent with it
    n, warm = args.requests, args.warmup
    with tempfile.TemporaryDirectory() as work:
        idp_port = free_port()
        gw_ports = {k: free_port() for k in ("oidc", "redis", "oauth2")}
        clients = [{"client_id": "bench", "client_secret": "bench-secret",
                    "redirect_uri": [f"http://127.0.0.1:{gw_ports[k]}/oauth2/callback" for k in ("oidc", "redis")]},
                   {"client_id": "bench-oauth2", "client_secret": "bench-secret",
                    "redirect_uri": f"http://127.0.0.1:{gw_ports['oauth2']}/callback"}]
        idp = start_idp(node_bin, idp_port, clients, work)
        redis = None
        try:
            def run(name, yaml, sides, module_dir=None, prepare=None):
                e, out_dir = callgrind_envoy(envoy_bin, name, yaml, work, module_dir)
                try:
                    ctx = prepare(e) if prepare else {}
                    for label, path, headers, expect, shape in sides(ctx):
                        per_req, dumps = measure(e, out_dir, re.sub(r"[^a-z0-9]+", "_", label.lower()), n, warm, path, headers, expect)
                        rows.append((label, per_req, shape))
                        if shape not in shapes:
                            shapes[shape] = headers
                        print(f"{label:40}{per_req:>12,.0f}", flush=True)
                        if args.annotate and "oidc" in label:
                            annotate(dumps)
                        if args.keep:
                            os.makedirs(args.keep, exist_ok=True)
                            for d in dumps:
                                shutil.copy(d, os.path.join(args.keep, os.path.basename(d)))
                finally:
                    e.stop()

            html = {"accept": "text/html"}
            shapes["plain"] = html
            if "noop" in want:
                run("noop", hcm(module_filter("test_module", "probe", '{"passthrough":true}')),
                    lambda _: [("module no-op (floor)", "/", html, 200, "plain")])
            if "oauth2" in want:
                base = f"http://127.0.0.1:{gw_ports['oauth2']}"

                def oauth2_login(e):
                    e.port = gw_ports["oauth2"]
                    cookies = login(f"{base}/", "alice")
                    if "BearerToken" not in cookies and "OauthHMAC" not in cookies:
                        sys.exit(f"oauth2 login failed: {list(cookies)}")
                    return {"cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}

                run("oauth2", oauth2_filter(idp_port, base).replace("{PORT}", str(gw_ports["oauth2"])),
                    lambda c: [("envoy oauth2 filter, valid cookies", "/", {**html, "cookie": c["cookie"]}, 200,
                                "oauth2 cookies")],
                    prepare=oauth2_login)

            def oidc_side(name, store):
                base = f"http://127.0.0.1:{gw_ports[name]}"
                config = json.dumps({
                    "issuer": f"http://127.0.0.1:{idp_port}", "client_id": "bench",
                    "client_secret": {"inline": "bench-secret"}, "redirect_uri": f"{base}/oauth2/callback",
                    "session": {"keys": [{"inline": SESSION_KEY}], "store": store},
                    "bearer": {"enabled": True},
                })

                def prepare(e):
                    e.port = gw_ports[name]
                    for _ in range(600):
                        try:
                            urllib.request.urlopen(f"{base}/oauth2/ready", timeout=5)
                            break
                        except OSError:
                            time.sleep(0.2)
                    cookies = login(f"{base}/", "alice")
                    if "__Host-oidc_session" not in cookies:
                        sys.exit(f"login failed: {list(cookies)}")
                    token = urllib.request.urlopen(urllib.request.Request(
                        f"http://127.0.0.1:{idp_port}/__test/mint", method="POST", data=json.dumps({
                            "__typ": "at+jwt", "iss": f"http://127.0.0.1:{idp_port}", "aud": "bench",
                            "client_id": "bench", "sub": "svc", "iat": int(time.time()),
                            "exp": int(time.time()) + 3600}).encode())).read().decode()
                    # A login start's flow cookie and state, for callbacks whose code the IdP
                    # refuses (a login cycle's worker work without a browser at the IdP).
                    _, headers, _, set_cookies = http_request(f"{base}/deep", headers={"accept": "text/html"})
                    query = urllib.parse.urlsplit(headers["location"]).query
                    state = urllib.parse.parse_qs(query)["state"][0]
                    flow = next(v.split(";")[0] for v in set_cookies if "oidc_flow_" in v)
                    callback = "/oauth2/callback?" + urllib.parse.urlencode(
                        {"code": "refused", "state": state, "iss": f"http://127.0.0.1:{idp_port}"})
                    return {"session": f"__Host-oidc_session={cookies['__Host-oidc_session']}; theme=dark",
                            "token": token, "flow": flow, "callback": callback}

                yaml = hcm(module_filter("envoy_oidc", "oidc", config), per_route=OIDC_PUBLIC)
                return yaml.replace("{PORT}", str(gw_ports[name])), prepare

            if "oidc" in want:
                yaml, prepare = oidc_side("oidc", {"memory": {}})
                run("oidc", yaml, lambda c: [
                    ("oidc: session hit (memory store)", "/", {**html, "cookie": c["session"]}, 200, "session cookie"),
                    ("oidc: public route", "/public", html, 200, "plain"),
                    ("oidc: bearer JWT", "/", {"accept": "application/json",
                                                "authorization": f"Bearer {c['token']}"}, 200, "bearer token"),
                    ("oidc: browser, no session (302)", "/", html, 302, "plain"),
                    ("oidc: API, no session (401)", "/", {"accept": "application/json"}, 401, "plain"),
                    ("oidc: callback, code refused (400)", c["callback"], {**html, "cookie": c["flow"]}, 400,
                     "flow cookie"),
                ], prepare=prepare)
            if "redis" in want:
                rport = free_port()
                redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                          "--appendonly", "no"], stdout=subprocess.DEVNULL, start_new_session=True)
                time.sleep(0.5)
                yaml, prepare = oidc_side("redis", {"redis": {"url": {"inline": f"redis://127.0.0.1:{rport}"}}})
                run("redis", yaml, lambda c: [
                    ("oidc: session hit (Redis store)", "/", {**html, "cookie": c["session"]}, 200, "session cookie"),
                ], prepare=prepare)
            # Last: no filter on every request the sides sent (their bytes cost Envoy the
            # same with or without a filter: a session cookie or a bearer token is parsed
            # either way), so each side is compared with its own request.
            if "plain" in want:
                run("plain", hcm(""), lambda _: [(f"no filter ({shape})", "/", headers, 200, shape)
                                                 for shape, headers in shapes.items()])
        finally:
            idp.kill()
            if redis:
                redis.kill()

    base = {shape: v for label, v, shape in rows if label == f"no filter ({shape})"}
    print(f"\nInstructions per request (callgrind, {n} keep-alive requests after {warm} warm-up; "
          f"Envoy 1.40.0 --concurrency 1, direct response). 'added' is over no filter with the same request:")
    print(f"{'side':44}{'request':>16}{'instr/req':>12}{'added':>10}{'ratio':>8}")
    for label, v, shape in rows:
        floor = base.get(shape)
        added = f"{v - floor:+,.0f}" if floor else ""
        ratio = f"{v / floor:.3f}" if floor else ""
        print(f"{label:44}{shape:>16}{v:>12,.0f}{added:>10}{ratio:>8}")


if __name__ == "__main__":
    main()
