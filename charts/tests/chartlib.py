"""Renders the envoy-oidc chart offline and runs what it renders: the Envoy bootstrap in
its ConfigMap, with the Secrets it mounts written where the bootstrap reads them (as the
kubelet would), next to the real IdP, echo app and Redis on loopback."""
import base64
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

import helm_python as helm
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "charts", "envoy-oidc")
CI_DIR = os.path.join(CHART, "ci")
SECRET_ROOT = "/etc/envoy-oidc"
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import benchlib  # noqa: E402  (the scripted browser and free ports, shared with the benchmarks)

_chart = None


def chart():
    global _chart
    if _chart is None:
        _chart = helm.Chart.load(CHART)
    return _chart


def ci_files():
    return sorted(f for f in os.listdir(CI_DIR) if f.endswith(".yaml"))


def ci_values(name):
    with open(os.path.join(CI_DIR, name)) as f:
        return yaml.safe_load(f)


def render(values, *, upgrade=False):
    """{template path: text} of a release `gw` in namespace `web`."""
    return chart().render(values, name="gw", namespace="web", is_install=not upgrade, is_upgrade=upgrade)


def manifests(rendered):
    """Every Kubernetes object of a rendering (NOTES.txt left out)."""
    out = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        out.extend(d for d in yaml.safe_load_all(text) if d)
    return out


def find(objs, kind, name=None):
    hits = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    return hits[0] if hits else None


def bootstrap(objs):
    return find(objs, "ConfigMap")["data"]["envoy.yaml"]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca_and_cert(d, name="server"):
    """A private CA and a certificate for 127.0.0.1 / localhost signed by it."""
    if not os.path.exists(os.path.join(d, "ca.crt")):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
                "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
    paths = os.path.join(d, "ca.crt"), os.path.join(d, f"{name}.crt"), os.path.join(d, f"{name}.key")
    if os.path.exists(paths[1]):
        return paths
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)
    return paths


def mount_volumes(objs, dest, outside=None):
    """Writes every Secret/ConfigMap volume the Envoy container mounts under
    /etc/envoy-oidc into `dest`, from the rendered objects; objects the chart does not
    render (existing secrets) come from `outside` {(kind, name): {key: bytes}} or are made
    up here (a random session key, a CA, a key pair). Returns the bootstrap with its paths
    pointed at `dest`."""
    outside = outside or {}
    dep = find(objs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    pki = os.path.join(dest, ".pki")
    os.makedirs(pki, exist_ok=True)
    for m in container["volumeMounts"]:
        if not m["mountPath"].startswith(SECRET_ROOT + "/"):
            continue
        vol = volumes[m["name"]]
        target = os.path.join(dest, m["mountPath"][len(SECRET_ROOT) + 1:])
        os.makedirs(target, exist_ok=True)
        if "secret" in vol:
            kind, name = "Secret", vol["secret"]["secretName"]
        else:
            kind, name = "ConfigMap", vol["configMap"]["name"]
        data = _object_data(objs, kind, name) or outside.get((kind, name)) or {}
        items = vol.get("secret", vol.get("configMap")).get("items")
        pairs = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data] or \
            [("tls.crt", "tls.crt"), ("tls.key", "tls.key")]
        for key, path in pairs:
            value = data.get(key)
            if value is None:
                value = _made_up(key, pki)
            with open(os.path.join(target, path), "wb") as f:
                f.write(value)
    return bootstrap(objs).replace(SECRET_ROOT + "/", dest + "/")


def _object_data(objs, kind, name):
    o = find(objs, kind, name)
    if not o:
        return None
    if kind == "Secret":
        return {k: base64.b64decode(v) for k, v in (o.get("data") or {}).items()}
    return {k: v.encode() for k, v in (o.get("data") or {}).items()}


def _made_up(key, pki):
    """Content for a key of a Secret made outside the chart."""
    if key.endswith((".crt", ".pem")) or key in ("tls.key",):
        ca, crt, k = make_ca_and_cert(pki)
        path = {"tls.crt": crt, "tls.key": k}.get(key, ca)
        with open(path, "rb") as f:
            return f.read()
    if "key" in key:  # a session key: 32 random bytes, base64
        return base64.b64encode(os.urandom(32))
    return b"made-up-" + key.encode()


def envoy_validate(yaml_text, workdir):
    """`envoy --mode validate`: the module loads and its config hook accepts the config."""
    path = os.path.join(workdir, "validate.yaml")
    with open(path, "w") as f:
        f.write(yaml_text)
    return subprocess.run([os.environ["ENVOY_BIN"], "--mode", "validate", "-c", path, "-l", "warning",
                           "--disable-hot-restart"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, ENVOY_DYNAMIC_MODULES_SEARCH_PATH=os.environ["OIDC_MODULE_DIR"]))


def merge(base, overlay):
    """Deep merge of values (lists replaced), like Helm's."""
    out = copy.deepcopy(base)
    for k, v in overlay.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


class Processes:
    """Children started by a test, stopped by pid."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.workdir, f"{name}.log"), "w")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             env=dict(os.environ, **(env or {})), start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)

    def log(self, name):
        with open(os.path.join(self.workdir, f"{name}.log")) as f:
            return f.read()


def wait_until(check, what, seconds=20):
    end = time.time() + seconds
    while time.time() < end:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Gateway:
    """The chart's rendering, running: Envoy started with the Deployment's own command
    line and the ConfigMap's bootstrap, the mounted secrets in a temporary directory."""

    def __init__(self, values, procs, resolve, outside=None):
        self.values = values
        self.procs = procs
        self.resolve = resolve
        self.objs = manifests(render(values))
        self.mounts = os.path.join(procs.workdir, "mounts")
        os.makedirs(self.mounts, exist_ok=True)
        self.yaml = mount_volumes(self.objs, self.mounts, outside)
        e = values["envoy"]
        self.bind, self.port, self.probe_port, self.admin_port = \
            e["bindAddress"], e["listenPort"], e["probePort"], e["adminPort"]
        self.start()

    def command(self):
        container = find(self.objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        argv = [os.environ["ENVOY_BIN"] if a == "envoy" else a for a in container["command"] + container["args"]]
        cfg = os.path.join(self.procs.workdir, "envoy.yaml")
        with open(cfg, "w") as f:
            f.write(self.yaml)
        assert "/etc/envoy/envoy.yaml" in argv, argv
        return [cfg if a == "/etc/envoy/envoy.yaml" else a for a in argv] + ["--concurrency", "2"]

    def start(self):
        self.proc = self.procs.start("envoy", self.command(),
                                     {"ENVOY_DYNAMIC_MODULES_SEARCH_PATH": os.environ["OIDC_MODULE_DIR"]})
        wait_until(lambda: self.probe("/ready")[0] == 200, "Envoy ready on the probe listener")

    def restart(self):
        self.procs.stop(self.proc)
        self.start()

    def probe(self, path, method="GET"):
        status, _, body, _ = benchlib.http_request(f"http://{self.bind}:{self.probe_port}{path}", method)
        return status, body

    def url(self, host):
        h = next(h for h in self.values["hosts"] if h["host"] == host)
        return h.get("url") or f"https://{host}"

    def get(self, host, path, cookies=None, headers=None, method="GET"):
        hdrs = {"accept": "text/html"}
        hdrs.update(headers or {})
        if cookies:
            hdrs["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        status, h, body, _ = benchlib.http_request(self.url(host) + path, method, None, hdrs, self.resolve)
        return status, h, body

    def follow(self, host, path, cookies=None, headers=None, hops=5):
        """Follows same-host redirects (Envoy's own path normalisation answers with some)."""
        for _ in range(hops):
            status, h, body = self.get(host, path, cookies, headers)
            loc = h.get("location", "")
            if status in (301, 302, 307, 308) and (loc.startswith("/") or loc.startswith(self.url(host))):
                path = loc[len(self.url(host)):] if loc.startswith(self.url(host)) else loc
                continue
            return status, h, body
        raise AssertionError(f"redirect loop on {host}{path}")

    def login(self, host, user, path="/"):
        cookies = benchlib.login(self.url(host) + path, user, self.resolve)
        assert any(k.endswith("oidc_session") for k in cookies), f"{user} got no session cookie on {host}: {cookies}"
        return cookies

    def wait_for_discovery(self, host):
        wait_until(lambda: self.get(host, "/")[0] == 302, f"the filter on {host} to discover the IdP")


def echoed(body):
    data = json.loads(body)
    return data["path"], {k: v for k, v in data["headers"]}


def start_echo(procs):
    port = benchlib.free_port()
    procs.start("echo", [sys.executable, os.path.join(ROOT, "e2e/echo/server.py"), str(port)])
    wait_until(lambda: benchlib.http_request(f"http://127.0.0.1:{port}/")[0] == 200, "the echo app")
    return port


def start_idp(procs, port, issuer, clients):
    procs.start("idp", [os.environ["NODE_BIN"], os.path.join(ROOT, "e2e/idp/server.mjs")],
                {"IDP_PORT": str(port), "IDP_ISSUER": issuer, "IDP_CLIENTS": json.dumps(clients)})
    wait_until(lambda: benchlib.http_request(f"http://127.0.0.1:{port}/.well-known/openid-configuration")[0] == 200,
               "the IdP")


def start_redis_tls(procs, password):
    """redis-server on loopback with TLS only and a password; returns (port, CA PEM path)."""
    d = os.path.join(procs.workdir, "redis-pki")
    os.makedirs(d)
    ca, crt, key = make_ca_and_cert(d, "redis")
    port = benchlib.free_port()
    conf = os.path.join(d, "redis.conf")
    with open(conf, "w") as f:
        f.write(f"port 0\ntls-port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\n"
                f"tls-cert-file {crt}\ntls-key-file {key}\ntls-ca-cert-file {ca}\ntls-auth-clients no\n"
                f"requirepass \"{password}\"\n")
    procs.start("redis", ["redis-server", conf])
    wait_until(lambda: redis_cli(port, ca, password, "PING") == "PONG", "Redis")
    return port, ca


def redis_cli(port, ca, password, *cmd):
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--tls", "--cacert", ca,
                          "--no-auth-warning", "-a", password, *cmd], capture_output=True, text=True, timeout=10)
    return out.stdout.strip()


def helm_test_pod(objs):
    """The `helm test` pod's script and environment."""
    pod = next(o for o in objs if o["kind"] == "Pod"
               and o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test")
    c = pod["spec"]["containers"][0]
    return c["command"] + c["args"], {e["name"]: e["value"] for e in c["env"]}


def tmpdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


def rmtree(d):
    shutil.rmtree(d, ignore_errors=True)


def query(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
