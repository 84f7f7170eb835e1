#!/usr/bin/env python3
"""Authenticated traffic while the IdP stalls: the p99 of signed-in requests (session
cache hits) undisturbed, then with 500 logins held in flight by an IdP whose token
endpoint answers after 2 s, in one run. The filter's I/O runs on its own runtime, so the
stalled logins should cost the signed-in traffic nothing (target: p99 ratio <= 1.1).

The logins are real callbacks through Envoy: each gets a flow cookie and state from the
filter, then presents a code at the callback; the filter's code exchange waits at the
stalled token endpoint (the code is refused after the stall: the filter answers 400).
Load: hey at a fixed rate (open loop) on one core, Envoy (--concurrency 1) on the other,
the login driver (asyncio) beside hey. Usage: scripts/bench_faults.py [--seconds 10]
"""
import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import LOAD_CPU, PROXY_CPU, Envoy, free_port, listener_yaml, login, module_filter, sh, start_idp  # noqa: E402


def hey(port, rate, seconds, headers, workers=8):
    """Fixed-rate load on the signed-in path: (p50 ms, p99 ms, requests, non-200)."""
    args = [a for h in headers for a in ("-H", h)]
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "hey", "-disable-redirects", "-z", f"{seconds}s", "-c", str(workers),
                          "-q", str(max(1, rate // workers)), *args, f"http://127.0.0.1:{port}/"],
                         check=True, capture_output=True, text=True).stdout
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    lat = dict(re.findall(r"\s(50|99)% in ([\d.]+) secs", out))
    return float(lat["50"]) * 1000, float(lat["99"]) * 1000, sum(codes.values()), sum(n for c, n in codes.items() if c != 200)


class Pool:
    """Keep-alive HTTP/1.1 connections to Envoy, as browsers hold them."""

    def __init__(self, port, size):
        self.port, self.size, self.free = port, size, asyncio.Queue()

    async def open(self):
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))

    async def get(self, path, cookie=None):
        """One GET: (status, lower-case headers). A connection the server closed is
        replaced and the request sent again, as browsers do."""
        for attempt in (1, 2):
            reader, writer = await self.free.get()
            try:
                extra = f"cookie: {cookie}\r\n" if cookie else ""
                writer.write(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{self.port}\r\naccept: text/html\r\n{extra}\r\n".encode())
                await writer.drain()
                head = (await reader.readuntil(b"\r\n\r\n")).decode(errors="replace")
                headers = [(k.strip().lower(), v.strip()) for k, v in
                           (line.split(":", 1) for line in head.split("\r\n")[1:] if ":" in line)]
                await reader.readexactly(int(dict(headers).get("content-length", "0")))
                if dict(headers).get("connection", "").lower() == "close":
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                self.free.put_nowait((reader, writer))
                return int(head.split(" ", 2)[1]), headers
            except (OSError, asyncio.IncompleteReadError):
                writer.close()
                self.free.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))
                if attempt == 2:
                    raise


async def one_login(pool, issuer):
    """A login start, then its callback with a made-up code (held at the IdP when it
    stalls, refused by it after)."""
    _, headers = await pool.get("/deep")
    location = dict(headers)["location"]
    state = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["state"][0]
    flow = next(v.split(";")[0] for k, v in headers if k == "set-cookie" and "oidc_flow_" in v)
    q = urllib.parse.urlencode({"code": "not-a-real-code", "state": state, "iss": issuer})
    status, _ = await pool.get(f"/oauth2/callback?{q}", flow)
    return status


async def logins(port, issuer, rate, seconds):
    """Starts logins at a steady `rate` per second (as users arrive) for `seconds`, over
    keep-alive connections; with the IdP stalled S ms, rate*S/1000 are held at once.
    Returns their statuses."""
    pool = Pool(port, 600)
    await pool.open()
    statuses, tasks = {}, set()

    def done(t):
        tasks.discard(t)
        key = f"error: {type(t.exception()).__name__} {t.exception()}"[:80] if t.exception() else t.result()
        statuses[key] = statuses.get(key, 0) + 1

    start, n = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        n += 1
        t = asyncio.ensure_future(one_login(pool, issuer))
        tasks.add(t)
        t.add_done_callback(done)
        await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
    await asyncio.gather(*tasks, return_exceptions=True)
    return statuses


def stall(issuer, ms):
    urllib.request.urlopen(urllib.request.Request(f"{issuer}/__test/stall", data=json.dumps({"ms": ms}).encode(),
                                                  method="POST"))


def phase(gw, issuer, args, headers, login_rate):
    """Signed-in load for args.seconds, with logins arriving at `login_rate`/s meanwhile:
    (p50, p99, requests, non-200, proxy CPU share, login statuses)."""
    result = {}
    driver = None
    if login_rate:
        driver = threading.Thread(target=lambda: result.update(
            asyncio.run(logins(gw.port, issuer, login_rate, args.seconds + 3))))
        driver.start()
        time.sleep(2.5)  # in flight up to the steady state
    cpu0 = gw.cpu_seconds()
    p50, p99, n, bad = hey(gw.port, args.rate, args.seconds, headers)
    cpu = (gw.cpu_seconds() - cpu0) / args.seconds
    if driver:
        driver.join()
    return p50, p99, n, bad, cpu, result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--in-flight", type=int, default=500)
    ap.add_argument("--stall-ms", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    tools = "source scripts/tools.sh && ensure_apt wrk hey >&2 && ensure_envoy >&2 && ensure_node_packages >&2 && build_module >&2"
    envoy_bin, node_bin, module_dir = sh(f"{tools} && echo $ENVOY_BIN && echo $NODE_BIN && echo $OIDC_MODULE_DIR").split()
    idp_port, gw_port = free_port(), free_port()
    base, issuer = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{idp_port}"
    clients = [{"client_id": "bench", "client_secret": "bench-secret", "redirect_uri": f"{base}/oauth2/callback"}]
    with tempfile.TemporaryDirectory() as work:
        idp = start_idp(node_bin, idp_port, clients, work, LOAD_CPU)
        procs = []
        try:
            config = json.dumps({
                "issuer": issuer, "client_id": "bench", "client_secret": {"inline": "bench-secret"},
                "redirect_uri": f"{base}/oauth2/callback", "cookie": {"max_login_flows": 1000},
                "session": {"keys": [{"inline": "YmVuY2gtc2Vzc2lvbi1rZXktb2YtMzItYnl0ZXMhISE"}]},
                "timeouts": {"idp_ms": 10000},
            })
            upstream = Envoy(envoy_bin, "upstream", listener_yaml("", 1, direct=True), work, LOAD_CPU)
            gw = Envoy(envoy_bin, "oidc", listener_yaml(module_filter("envoy_oidc", "oidc", config), upstream.port,
                                                        direct=False, listen_port=gw_port),
                       work, PROXY_CPU, module_dir=module_dir)
            procs += [upstream, gw]
            time.sleep(1)
            cookies = login(f"{base}/", "alice")
            if "__Host-oidc_session" not in cookies:
                sys.exit(f"login failed; cookies: {list(cookies)}")
            headers = ["accept: text/html", f"cookie: __Host-oidc_session={cookies['__Host-oidc_session']}"]
            hey(gw.port, args.rate, 2, headers)  # warm up
            login_rate = args.in_flight * 1000 // args.stall_ms
            labels = ["no logins", f"{login_rate} logins/s, IdP answers at once",
                      f"{login_rate} logins/s, IdP holds {args.stall_ms} ms ({args.in_flight} in flight)"]
            runs = {label: [] for label in labels}
            for _ in range(args.rounds):
                stall(issuer, 0)
                runs[labels[0]].append(phase(gw, issuer, args, headers, 0))
                runs[labels[1]].append(phase(gw, issuer, args, headers, login_rate))
                stall(issuer, args.stall_ms)
                runs[labels[2]].append(phase(gw, issuer, args, headers, login_rate))
        finally:
            for p in procs:
                p.stop()
            idp.kill()

    print(f"signed-in requests at {args.rate} req/s for {args.seconds}s per phase (hey, open loop), {args.rounds} rounds "
          f"of the three phases in turn; medians. Envoy 1.40.0 --concurrency 1 on cpu {PROXY_CPU}")
    print(f"{'':52}{'p50 ms':>8}{'p99 ms':>8}{'requests':>10}{'non-200':>9}{'proxy CPU':>11}  logins (status: count), last round")
    med = {}
    for label, rs in runs.items():
        med[label] = [statistics.median(r[i] for r in rs) for i in range(5)]
        p50, p99, n, bad, cpu = med[label]
        print(f"{label:52}{p50:>8.3f}{p99:>8.3f}{n:>10.0f}{bad:>9.0f}{cpu:>10.0%}  {rs[-1][5]}")
    print("p99 per round:", {label: [round(r[1], 2) for r in rs] for label, rs in runs.items()})
    quiet, fast, held = (med[label][1] for label in labels)
    print(f"p99 ratio, IdP holding {args.in_flight} logins vs answering at once (same login traffic): "
          f"{held / fast:.2f}  (target <= 1.1)")
    print(f"p99 ratio, with login traffic vs none: {fast / quiet:.2f} (the logins' own cost on the one worker)")

if __name__ == "__main__":
    main()
