#!/usr/bin/env python3
"""Isolation: do logins stuck at a slow or hanging IdP cost signed-in users anything?

One run, loopback. Envoy 1.40 (--concurrency 1, pinned to one core) with the filter
(memory store) in front of a direct response; the project's IdP (oidc-provider) whose
token endpoint answers after --stall-ms (2 s), or hangs (30 s: the filter's own IdP
timeout answers 504). Signed-in load: about --rate req/s (500; wrk, 8 keep-alive
connections each waiting an exponential gap before each request, a valid session cookie;
scripts/paced.lua) for --seconds, in three phases:

  undisturbed  nothing else;
  control      500 clients stuck on the IdP directly (each looping: discovery, then the
               held token request, given up after the filter's IdP timeout as the filter
               gives up its own), the same client-side work, nothing through Envoy;
  disturbed    500 browsers, each on its own keep-alive connection, looping start-login
               (302 + flow cookie) -> callback (the code exchange held at the IdP), so
               ~500 callbacks are always in flight. A browser shown the busy page (503)
               waits its Retry-After before trying again, as a person would.
The drivers (the browsers' loops, the IdP) run at nice 10 beside wrk on the load core,
and wrk itself SCHED_FIFO, so what wrk times (to the microsecond) is Envoy, not wrk's own
wait for the load core behind its neighbours on the client side. Control and disturbed
swap order every round; the ratio is the median of the rounds' ratios (a p99 of all the
rounds' requests pooled is not: one neighbour's burst of a second on this shared machine
is a few hundred slow requests, enough to set it).

Prints p50/p99 of each phase, disturbed/control p99 (target <= 1.1), login cycles per
second, and the CPU per login cycle of Envoy's worker thread (above the control phase's)
and of the filter's runtime threads, from /proc/<pid>/task/*/stat. Usage:
scripts/bench_isolation.py [--rounds 5] [--seconds 10] [--idp slow,hang]
"""
import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (LOAD_CPU, PROXY_CPU, Envoy, free_port, listener_yaml, login, module_filter, paced,  # noqa: E402
                      percentile, sh, start_idp)

BROWSERS = 500
DRIVER_NICE = 10  # the login driver and the IdP, below the meter on the load core
HANG_MS = 30_000


RUNTIME_THREAD = "oidc-async"  # the filter's runtime threads' name (comm)


def threads(pid):
    """(tid, name, stat fields after the name) of each live thread of process `pid`."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            raw = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        yield tid, raw[raw.index("(") + 1:raw.rindex(")")], raw.rsplit(")", 1)[1].split()


def runtime_policy(pid, idle):
    """Puts the filter's runtime threads under SCHED_IDLE, or back under SCHED_OTHER (their
    nice value is kept): for an A/B of the two in one run (`--ab-idle`)."""
    for tid, name, _ in threads(pid):
        if name.startswith(RUNTIME_THREAD):
            sh(f"chrt {'-i' if idle else '-o'} -p 0 {tid}")


def thread_cpu(pid):
    """CPU seconds per thread group of the Envoy process: worker, runtime, other."""
    tick = os.sysconf("SC_CLK_TCK")
    groups = {"worker": 0.0, "runtime": 0.0, "other": 0.0}
    for _, name, fields in threads(pid):
        cpu = (int(fields[11]) + int(fields[12])) / tick
        group = "worker" if name.startswith("wrk:") else "runtime" if name.startswith(RUNTIME_THREAD) else "other"
        groups[group] += cpu
    return groups


class Browser:
    """One keep-alive HTTP/1.1 connection, reopened when the server closes it."""

    def __init__(self, port):
        self.port, self.conn = port, None

    async def get(self, path, cookie=None, method="GET", body=b"", extra=""):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = self.conn
            try:
                head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{self.port}\r\naccept: text/html\r\n{extra}"
                if cookie:
                    head += f"cookie: {cookie}\r\n"
                if body:
                    head += f"content-type: application/x-www-form-urlencoded\r\ncontent-length: {len(body)}\r\n"
                writer.write(head.encode() + b"\r\n" + body)
                await writer.drain()
                resp = (await reader.readuntil(b"\r\n\r\n")).decode(errors="replace")
                headers = [(k.strip().lower(), v.strip()) for k, v in
                           (line.split(":", 1) for line in resp.split("\r\n")[1:] if ":" in line)]
                await reader.readexactly(int(dict(headers).get("content-length", "0")))
                if dict(headers).get("connection", "").lower() == "close":
                    self.close()
                return int(resp.split(" ", 2)[1]), headers
            except (OSError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise

    def close(self):
        if self.conn:
            self.conn[1].close()
        self.conn = None


async def login_cycle(b, issuer):
    """Start-login, then the callback with a code the IdP refuses once it answers."""
    status, headers = await b.get("/deep")
    if status != 302:
        return status, headers
    state = urllib.parse.parse_qs(urllib.parse.urlsplit(dict(headers)["location"]).query)["state"][0]
    flow = next(v.split(";")[0] for k, v in headers if k == "set-cookie" and "oidc_flow_" in v)
    q = urllib.parse.urlencode({"code": "not-a-real-code", "state": state, "iss": issuer})
    return await b.get(f"/oauth2/callback?{q}", flow)


async def idp_cycle(b, _issuer, give_up_s):
    """The control: the same client-side work, straight at the IdP (discovery, then the
    held token request, given up after the filter's IdP timeout as the filter gives up its
    own: a browser at a hanging IdP loops every timeout, so its control must too)."""
    await b.get("/.well-known/openid-configuration")
    body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": "x", "redirect_uri": "http://x/"}).encode()
    token = b.get("/token", method="POST", body=body, extra="authorization: Basic YmVuY2g6YmVuY2gtc2VjcmV0\r\n")
    try:
        return await asyncio.wait_for(token, give_up_s)
    except TimeoutError:
        b.close()
        return "gave up", []


async def browsers(port, issuer, cycle, stop, done):
    """BROWSERS loops of `cycle` until `stop` is set; `done` gets (time, status) of each."""
    async def one():
        b = Browser(port)
        while not stop.is_set():
            try:
                status, headers = await cycle(b, issuer)
            except (OSError, asyncio.IncompleteReadError) as e:
                status, headers = f"error {type(e).__name__}", []
            done.append((time.monotonic(), status))
            if status == 503:
                await asyncio.sleep(float(dict(headers).get("retry-after", "1")))
        b.close()

    await asyncio.gather(*(one() for _ in range(BROWSERS)))


def phase(gw, issuer, idp_port, args, headers, kind, warmup):
    """Signed-in load for args.seconds with `kind` of background; returns a dict."""
    stop, done, driver = threading.Event(), [], None
    if kind != "undisturbed":
        target, cycle = (gw.port, login_cycle) if kind == "disturbed" else \
            (idp_port, functools.partial(idp_cycle, give_up_s=args.idp_timeout_s))
        def drive():
            # wrk measures: on the shared load core, the drivers must not delay it.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DRIVER_NICE)
            asyncio.run(browsers(target, issuer, cycle, stop, done))

        driver = threading.Thread(target=drive)
        driver.start()
        time.sleep(warmup)  # every browser in its steady state
    cpu0, t0 = thread_cpu(gw.proc.pid), time.monotonic()
    n, bad, hist = paced(gw.port, args.rate, args.seconds, headers)
    if not hist:
        sys.exit(f"{kind}: no signed-in request was answered ({n} sent)")
    cpu1, t1 = thread_cpu(gw.proc.pid), time.monotonic()
    stop.set()
    if driver:
        driver.join()
    inside = [s for t, s in done if t0 <= t <= t1]
    statuses = {}
    for s in inside:
        statuses[s] = statuses.get(s, 0) + 1
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    return {"p50": percentile(hist, 50) / 1000, "p99": percentile(hist, 99) / 1000, "non200": bad,
            "cycles": len(inside) / (t1 - t0), "cycles_n": len(inside), "cpu": cpu, "statuses": statuses}


def stall(issuer, ms):
    urllib.request.urlopen(urllib.request.Request(f"{issuer}/__test/stall", data=json.dumps({"ms": ms}).encode(),
                                                  method="POST"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--stall-ms", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--idp", default="slow,hang", help="IdP behaviours to run: slow (answers after --stall-ms), hang")
    ap.add_argument("--config", default="{}", help="JSON merged into the filter's config")
    ap.add_argument("--ab-idle", action="store_true",
                    help="each IdP behaviour also with the runtime's threads under SCHED_IDLE (set from outside)")
    ap.add_argument("--module-dir", help="load libenvoy_oidc.so from here (another build, for a before/after)")
    args = ap.parse_args()
    os.sched_setaffinity(0, {int(LOAD_CPU)})  # the drivers stay off the proxy's core

    tools = "source scripts/tools.sh && ensure_apt wrk >&2 && ensure_envoy >&2 && ensure_node_packages >&2 && build_module >&2"
    envoy_bin, node_bin, module_dir = sh(f"{tools} && echo $ENVOY_BIN && echo $NODE_BIN && echo $OIDC_MODULE_DIR").split()
    module_dir = args.module_dir or module_dir
    idp_port, gw_port = free_port(), free_port()
    base, issuer = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{idp_port}"
    clients = [{"client_id": "bench", "client_secret": "bench-secret", "redirect_uri": f"{base}/oauth2/callback"}]
    config = {
        "issuer": issuer, "client_id": "bench", "client_secret": {"inline": "bench-secret"},
        "redirect_uri": f"{base}/oauth2/callback", "cookie": {"max_login_flows": 1000},
        "session": {"keys": [{"inline": "YmVuY2gtc2Vzc2lvbi1rZXktb2YtMzItYnl0ZXMhISE"}]},
    }
    config.update(json.loads(args.config))
    idp_timeout_s = args.idp_timeout_s = config.get("timeouts", {}).get("idp_ms", 5000) / 1000
    behaviours = {"slow": (args.stall_ms, f"answers after {args.stall_ms / 1000:g} s"),
                  "hang": (HANG_MS, f"hangs ({HANG_MS // 1000} s; the filter's {idp_timeout_s:g} s timeout answers)")}
    chosen = [b for b in args.idp.split(",") if b]
    if args.ab_idle:
        for b in list(chosen):
            behaviours[f"{b}-idle"] = (behaviours[b][0], behaviours[b][1] + ", runtime SCHED_IDLE")
            chosen.append(f"{b}-idle")
    runs = {b: {k: [] for k in ("undisturbed", "control", "disturbed")} for b in chosen}
    with tempfile.TemporaryDirectory() as work:
        idp = start_idp(node_bin, idp_port, clients, work, LOAD_CPU)
        os.setpriority(os.PRIO_PROCESS, idp.pid, DRIVER_NICE)
        procs = []
        try:
            # A direct response behind the filter: no upstream process shares the load core.
            gw = Envoy(envoy_bin, "oidc", listener_yaml(module_filter("envoy_oidc", "oidc", json.dumps(config)),
                                                        1, direct=True, listen_port=gw_port),
                       work, PROXY_CPU, module_dir=module_dir)
            procs += [gw]
            cookies = login(f"{base}/", "alice")
            if "__Host-oidc_session" not in cookies:
                sys.exit(f"login failed; cookies: {list(cookies)}")
            headers = ["accept: text/html", f"cookie: __Host-oidc_session={cookies['__Host-oidc_session']}"]
            paced(gw.port, args.rate, 2, headers)  # warm up
            for r in range(args.rounds):
                for b in chosen:
                    ms = behaviours[b][0]
                    if args.ab_idle:
                        runtime_policy(gw.proc.pid, b.endswith("-idle"))
                    stall(issuer, ms)
                    warmup = min(ms / 1000, idp_timeout_s) + 2
                    # Control and disturbed swap places every round: neither always runs
                    # on a machine that has warmed up (or drifted) for longer.
                    order = ("undisturbed", "control", "disturbed") if r % 2 == 0 else \
                        ("undisturbed", "disturbed", "control")
                    for kind in order:
                        runs[b][kind].append(phase(gw, issuer, idp_port, args, headers, kind, warmup))
                    stall(issuer, 0)
        finally:
            for p in procs:
                p.stop()
            idp.kill()

    print(f"signed-in requests at {args.rate} req/s (wrk, 8 connections, exponential gaps) for {args.seconds} s per phase; "
          f"{BROWSERS} browsers or IdP clients; {args.rounds} rounds, medians. Envoy 1.40.0 --concurrency 1 on cpu {PROXY_CPU}")
    print(f"{'IdP token endpoint':44}{'phase':>12}{'p50 ms':>8}{'p99 ms':>8}{'non-200':>8}{'cycles/s':>9}"
          f"{'worker %':>9}{'runtime %':>10}")
    for b in chosen:
        for kind, rs in runs[b].items():
            med = lambda f: statistics.median(f(r) for r in rs)  # noqa: E731
            print(f"{behaviours[b][1]:44}{kind:>12}{med(lambda r: r['p50']):>8.2f}{med(lambda r: r['p99']):>8.2f}"
                  f"{med(lambda r: r['non200']):>8.0f}{med(lambda r: r['cycles']):>9.0f}"
                  f"{med(lambda r: r['cpu']['worker'] / args.seconds):>9.1%}{med(lambda r: r['cpu']['runtime'] / args.seconds):>10.1%}")
        ctl, dis = runs[b]["control"], runs[b]["disturbed"]
        ratio = statistics.median(d["p99"] / c["p99"] for c, d in zip(ctl, dis))
        worker = statistics.median((d["cpu"]["worker"] - c["cpu"]["worker"]) / max(1, d["cycles_n"]) * 1e6
                                   for c, d in zip(ctl, dis))
        runtime = statistics.median(d["cpu"]["runtime"] / max(1, d["cycles_n"]) * 1e6 for d in dis)
        print(f"  disturbed/control p99: {ratio:.2f} (target <= 1.1; per round "
              f"{[round(d['p99'] / c['p99'], 2) for c, d in zip(ctl, dis)]})")
        print(f"  per login cycle: worker {worker:.0f} us "
              f"above control, runtime {runtime:.0f} us; login statuses (last round): {dis[-1]['statuses']}")


if __name__ == "__main__":
    main()
