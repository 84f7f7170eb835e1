#!/usr/bin/env python3
"""Soak: three Envoys sharing Redis, many sessions made and used for many minutes, with
sign-outs and back-channel logouts interleaved.

One run, loopback, real processes: Redis as --mode (sentinel: 1 master + 2 replicas + 3
sentinels; cluster: 3 masters + 3 replicas; single), three Envoys 1.40 (--concurrency 1)
with the filter (memory cache in front of that Redis) before a direct response that
echoes the identity header; the second OP (npm oauth2-mock-server, auto-approving) giving
every login its own subject and sid. An asyncio driver:
  logins     --sessions over --minutes, paced: start at one Envoy, the IdP, the callback,
             then the new session's first use at another Envoy;
  use        random live sessions at random Envoys, the echoed user checked;
  revoke     every --revoke-every'th login, a live session is ended: a sign-out at one
             Envoy, or (alternately) a back-channel logout token from the IdP posted to
             one Envoy; 50 ms later all three Envoys must refuse it; revoked sessions are
             tried again at random afterwards.
Envoy RSS and Redis memory are sampled every 30 s. At the end every live session is
checked once. Prints: logins/s reached, requests, wrong admits after revocation (target
0), lost sessions (target 0), Envoy RSS over time, Redis memory per live session.
Usage: scripts/bench_soak.py [--mode sentinel] [--sessions 100000] [--minutes 10]
"""
import argparse
import asyncio
import json
import os
import random
import re
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Envoy, free_port, listener_yaml, module_filter, sh, start_idp  # noqa: E402
from redislib import Cluster, Redis, SentinelGroup  # noqa: E402

COOKIE = "__Host-oidc_session"
KEY = "YmVuY2gtc2Vzc2lvbi1rZXktb2YtMzItYnl0ZXMhISE"
GRACE = 0.05  # revocation reaches the other Envoys' caches over Redis pub/sub


class Single:
    def __init__(self, work):
        self.nodes = [Redis(work, [])]

    def store(self):
        return {"url": {"inline": f"redis://127.0.0.1:{self.nodes[0].port}/0"}}

    def masters(self):
        return self.nodes

    def stop(self):
        for n in self.nodes:
            n.kill()


class Conn:
    """One keep-alive HTTP/1.1 connection, reopened when the server closes it."""

    def __init__(self, port):
        self.port, self.rw = port, None

    async def request(self, method, target, headers=None, body=b""):
        for attempt in (1, 2):
            try:
                if self.rw is None:
                    self.rw = await asyncio.open_connection("127.0.0.1", self.port)
                reader, writer = self.rw
                head = f"{method} {target} HTTP/1.1\r\nhost: 127.0.0.1:{self.port}\r\n"
                for k, v in (headers or {}).items():
                    head += f"{k}: {v}\r\n"
                if body:
                    head += f"content-length: {len(body)}\r\n"
                writer.write(head.encode() + b"\r\n" + body)
                await writer.drain()
                status_line = await reader.readline()
                if not status_line:
                    raise ConnectionResetError("closed")
                status = int(status_line.split()[1])
                hdrs, cookies = {}, []
                while True:
                    line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
                    if not line:
                        break
                    k, v = line.split(":", 1)
                    k, v = k.lower(), v.strip()
                    if k == "set-cookie":
                        cookies.append(v)
                    hdrs[k] = v
                if "content-length" in hdrs:
                    data = await reader.readexactly(int(hdrs["content-length"]))
                elif hdrs.get("transfer-encoding") == "chunked":
                    data = b""
                    while True:
                        size = int((await reader.readline()).strip(), 16)
                        data += (await reader.readexactly(size + 2))[:-2]
                        if size == 0:
                            break
                else:
                    data = await reader.read()
                    self.close()
                if hdrs.get("connection", "").lower() == "close":
                    self.close()
                return status, hdrs, cookies, data
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.rw:
            self.rw[1].close()
        self.rw = None


def cookie_of(cookies, prefix):
    for c in cookies:
        name, value = c.split(";")[0].split("=", 1)
        if name.startswith(prefix) and "Max-Age=0" not in c:
            return name, value
    return None


class Soak:
    def __init__(self, gws, idp, issuer, args):
        self.gws, self.idp, self.issuer, self.args = gws, idp, issuer, args
        self.live = {}  # cookie -> subject
        self.live_list = []
        self.revoked = []
        self.n = {"logins": 0, "login_failed": 0, "uses": 0, "use_failed": 0, "signouts": 0, "backchannel": 0,
                  "revoke_failed": 0, "wrong_admits": 0, "wrong_admits_immediate": 0, "revoked_rechecks": 0,
                  "lost": 0, "errors": 0}
        self.failures = []

    def note(self, what, detail):
        if len(self.failures) < 20:
            self.failures.append(f"{what}: {detail}")

    async def login(self, c_start, c_idp, c_use):
        status, h, cookies, _ = await c_start.request("GET", "/", {"accept": "text/html"})
        flow = cookie_of(cookies, "__Host-oidc_flow_")
        if status != 302 or not flow:
            raise RuntimeError(f"start {status}")
        loc = urllib.parse.urlsplit(h["location"])
        status, h, _, _ = await c_idp.request("GET", f"{loc.path}?{loc.query}")
        if status != 302:
            raise RuntimeError(f"authorize {status}")
        back = urllib.parse.urlsplit(h["location"])
        status, h, cookies, _ = await c_start.request("GET", f"{back.path}?{back.query}", {
            "accept": "text/html", "cookie": f"{flow[0]}={flow[1]}"})
        session = cookie_of(cookies, COOKIE)
        if status != 302 or not session:
            raise RuntimeError(f"callback {status}")
        status, h, _, _ = await c_use.request("GET", "/", {"accept": "text/html", "cookie": f"{COOKIE}={session[1]}"})
        if status != 200 or not h.get("x-user", "").startswith("soak-"):
            raise RuntimeError(f"first use {status} {h.get('x-user')}")
        return session[1], h["x-user"]

    async def refused_everywhere(self, conns, cookie, subject):
        wrong = 0
        for c in conns:
            status, h, _, _ = await c.request("GET", "/", {"accept": "text/html", "cookie": f"{COOKIE}={cookie}"})
            if status == 200 and h.get("x-user") == subject:
                wrong += 1
        return wrong

    async def revoke(self, conns, idp):
        if not self.live_list:
            return
        i = random.randrange(len(self.live_list))
        cookie = self.live_list[i]
        self.live_list[i] = self.live_list[-1]
        self.live_list.pop()
        subject = self.live.pop(cookie)
        gw = random.randrange(len(conns))
        if (self.n["signouts"] + self.n["backchannel"]) % 2 == 0:
            status, _, _, _ = await conns[gw].request("POST", "/oauth2/sign_out", {
                "accept": "text/html", "cookie": f"{COOKIE}={cookie}", "sec-fetch-site": "same-origin"})
            ok, kind = status in (200, 302), "signouts"
        else:
            claims = {"iss": self.issuer, "aud": "soak", "iat": int(time.time()), "jti": os.urandom(12).hex(),
                      "sid": "sid-" + subject.split("-", 1)[1],
                      "events": {"http://schemas.openid.net/event/backchannel-logout": {}}, "__typ": "logout+jwt"}
            body = json.dumps(claims).encode()
            status, _, _, token = await idp.request("POST", "/__test/mint", {"content-type": "application/json"}, body)
            form = urllib.parse.urlencode({"logout_token": token.decode()}).encode()
            status, _, _, answer = await conns[gw].request("POST", "/oauth2/backchannel_logout", {
                "content-type": "application/x-www-form-urlencoded"}, form)
            ok, kind = status == 200, "backchannel"
            status = f"{status} {answer[:200]!r}"
        self.n[kind] += 1
        if not ok:
            self.n["revoke_failed"] += 1
            self.note(kind, f"status {status}")
            return
        self.n["wrong_admits_immediate"] += await self.refused_everywhere(conns, cookie, subject)
        await asyncio.sleep(GRACE)
        wrong = await self.refused_everywhere(conns, cookie, subject)
        if wrong:
            self.note("wrong admit", f"{subject} after {kind}")
        self.n["wrong_admits"] += wrong
        self.revoked.append((cookie, subject))

    async def login_worker(self, schedule, deadline):
        conns = [Conn(g) for g in self.gws]
        idp = Conn(self.idp)
        while True:
            try:
                k = next(schedule)
            except StopIteration:
                return
            due = self.start + k / self.rate
            if due > deadline:
                return
            await asyncio.sleep(max(0.0, due - time.time()))
            a, b = random.sample(range(len(conns)), 2)
            try:
                cookie, subject = await self.login(conns[a], idp, conns[b])
                self.live[cookie] = subject
                self.live_list.append(cookie)
                self.n["logins"] += 1
                if self.n["logins"] % self.args.revoke_every == 0:
                    await self.revoke(conns, idp)
            except (RuntimeError, OSError, asyncio.IncompleteReadError) as e:
                self.n["login_failed"] += 1
                self.note("login", e)

    async def use_worker(self, deadline):
        conns = [Conn(g) for g in self.gws]
        while time.time() < deadline:
            if random.random() < 0.05 and self.revoked:
                cookie, subject = random.choice(self.revoked)
                self.n["revoked_rechecks"] += 1
                wrong = await self.refused_everywhere([random.choice(conns)], cookie, subject)
                if wrong:
                    self.note("wrong admit", f"{subject} on a later try")
                self.n["wrong_admits"] += wrong
                continue
            if not self.live_list:
                await asyncio.sleep(0.05)
                continue
            cookie = random.choice(self.live_list)
            subject = self.live.get(cookie)
            try:
                status, h, _, _ = await random.choice(conns).request(
                    "GET", "/", {"accept": "text/html", "cookie": f"{COOKIE}={cookie}"})
            except (OSError, asyncio.IncompleteReadError) as e:
                self.n["errors"] += 1
                self.note("use", e)
                continue
            self.n["uses"] += 1
            if cookie in self.live and not (status == 200 and h.get("x-user") == subject):
                self.n["use_failed"] += 1
                self.note("use", f"{subject}: {status}")
            await asyncio.sleep(self.args.use_pause)

    async def run(self, sampler):
        self.rate = self.args.sessions / (self.args.minutes * 60)
        self.start = time.time()
        deadline = self.start + self.args.minutes * 60
        schedule = iter(range(self.args.sessions))
        tasks = [self.login_worker(schedule, deadline + 1) for _ in range(self.args.login_workers)]
        tasks += [self.use_worker(deadline) for _ in range(self.args.use_workers)]
        tasks.append(sampler(deadline))
        await asyncio.gather(*tasks)
        self.elapsed = time.time() - self.start
        # Every live session once, at a random Envoy.
        conns = [Conn(g) for g in self.gws]
        for cookie, subject in list(self.live.items()):
            status, h, _, _ = await random.choice(conns).request(
                "GET", "/", {"accept": "text/html", "cookie": f"{COOKIE}={cookie}"})
            if not (status == 200 and h.get("x-user") == subject):
                self.n["lost"] += 1
                self.note("lost", f"{subject}: {status}")
        for cookie, subject in self.revoked:
            self.n["wrong_admits"] += await self.refused_everywhere([random.choice(conns)], cookie, subject)


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def redis_used(redis):
    total = 0
    for n in redis.masters():
        m = re.search(r"used_memory:(\d+)", n.cli("INFO", "memory"))
        total += int(m.group(1)) if m else 0
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", default="sentinel", choices=["single", "sentinel", "cluster"])
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--revoke-every", type=int, default=10)
    ap.add_argument("--login-workers", type=int, default=48)
    ap.add_argument("--use-workers", type=int, default=8)
    ap.add_argument("--use-pause", type=float, default=0.002)
    ap.add_argument("--cache-capacity", type=int, default=20_000,
                    help="sessions cached per Envoy: below the live count, so RSS must level off when it is full")
    ap.add_argument("--module-dir")
    args = ap.parse_args()
    tools = "source scripts/tools.sh && ensure_envoy >&2 && ensure_node_packages >&2 && build_module >&2"
    envoy_bin, node_bin, module_dir = sh(f"{tools} && echo $ENVOY_BIN && echo $NODE_BIN && echo $OIDC_MODULE_DIR").split()
    module_dir = args.module_dir or module_dir

    with tempfile.TemporaryDirectory() as work:
        redis = {"single": Single, "sentinel": SentinelGroup, "cluster": Cluster}[args.mode](work)
        idp_port = free_port()
        issuer = f"http://127.0.0.1:{idp_port}"
        idp = start_idp(node_bin, idp_port, [], work, script="e2e/idp/vendor-op.mjs")
        envoys = []
        try:
            urllib.request.urlopen(urllib.request.Request(f"{issuer}/__test/profile", method="POST",
                                                          data=json.dumps({"unique_subjects": True, "discovery": {"userinfo_endpoint": None}}).encode(),
                                                          headers={"content-type": "application/json"}))
            ports = [free_port() for _ in range(3)]
            for i, port in enumerate(ports):
                config = {"issuer": issuer, "client_id": "soak", "client_secret": {"inline": "soak-secret"},
                          "redirect_uri": f"http://127.0.0.1:{port}/oauth2/callback",
                          "cookie": {"max_login_flows": 1000},
                          "session": {"keys": [{"inline": KEY}], "store": {"redis": redis.store()},
                                      "cache_capacity": args.cache_capacity}}
                yaml = listener_yaml(module_filter("envoy_oidc", "oidc", json.dumps(config)), 1, direct=True,
                                     listen_port=port, echo_user=True)
                envoys.append(Envoy(envoy_bin, f"soak-{i}", yaml, work, "0,1", module_dir=module_dir))
            redis_before = redis_used(redis)
            samples = []

            async def sampler(deadline):
                while True:
                    samples.append((time.time(), [rss_mib(e.proc.pid) for e in envoys], redis_used(redis),
                                    len(soak.live), soak.n["logins"]))
                    if time.time() >= deadline:
                        return
                    await asyncio.sleep(min(30, max(0.1, deadline - time.time())))

            soak = Soak(ports, idp_port, issuer, args)
            asyncio.run(soak.run(sampler))
            redis_after = redis_used(redis)
            if soak.failures:
                for e in envoys:
                    with open(e.log.name) as f:
                        print(f"{e.dir}: last log lines:\n" + "".join(
                            [line for line in f if "request failed" in line or "error" in line][-3:]))
        finally:
            for e in envoys:
                e.stop()
            idp.kill()
            redis.stop()

    n = soak.n
    print(f"soak: {args.mode} Redis, 3 Envoys 1.40 (--concurrency 1), {args.minutes:g} min planned, "
          f"{soak.elapsed / 60:.1f} min run")
    print(f"  logins: {n['logins']} made ({n['logins'] / soak.elapsed:.0f}/s), {n['login_failed']} failed; "
          f"uses: {n['uses']}, {n['use_failed']} failed, {n['errors']} connection errors")
    print(f"  revocations: {n['signouts']} sign-outs, {n['backchannel']} back-channel logouts, "
          f"{n['revoke_failed']} failed; revoked sessions re-tried {n['revoked_rechecks']} times")
    print(f"  wrong admits after revocation: {n['wrong_admits']} (checked {GRACE * 1000:.0f} ms after the answer "
          f"and later); at once, before pub/sub reached the other caches: {n['wrong_admits_immediate']}")
    print(f"  lost sessions: {n['lost']} of {len(soak.live)} live at the end")
    print("  Envoy RSS MiB over time (each Envoy; live sessions):")
    for t, rss, _, live, _ in samples:
        print(f"    {(t - soak.start) / 60:5.1f} min  {' '.join(f'{r:7.1f}' for r in rss)}   {live:>7}")
    live = max(1, len(soak.live))
    print(f"  Redis used_memory: {redis_before / 2**20:.1f} MiB before, {redis_after / 2**20:.1f} MiB after "
          f"({(redis_after - redis_before) / live:.0f} B per live session: the encrypted session and its "
          f"sid and subject index sets, on the masters)")
    for f in soak.failures:
        print("  e.g.", f)
    sys.exit(1 if n["wrong_admits"] or n["lost"] else 0)


if __name__ == "__main__":
    main()
