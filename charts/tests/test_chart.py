"""The envoy-oidc chart: lint, schema, Kubernetes validation, and its rendered Envoy
bootstrap run for real (Envoy 1.40 + the stripped module + the test IdP + Redis)."""
import copy
import json
import os
import re
import subprocess

import kubernetes_validate
import pytest
import yaml

import chartlib as cl
from chartlib import benchlib

KUBE_VERSIONS = ["1.25.0", "1.37.0"]
CRD_KINDS = {"ServiceMonitor", "HTTPRoute"}


# ------------------------------------------------------------------ static checks

@pytest.mark.parametrize("ci", cl.ci_files())
def test_lint_is_clean_in_strict_mode(ci):
    for kube in KUBE_VERSIONS:
        report = cl.helm.lint(cl.CHART, cl.ci_values(ci), strict=True, kube_version=f"v{kube}")
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not problems, problems


@pytest.mark.parametrize("ci", cl.ci_files())
def test_every_manifest_validates_strictly_on_the_oldest_and_newest_kubernetes(ci):
    objs = cl.manifests(cl.render(cl.ci_values(ci)))
    assert {"Deployment", "Service", "ConfigMap", "Secret"} <= {o["kind"] for o in objs} | {"Secret"}
    for o in objs:
        if o["kind"] in CRD_KINDS:
            continue
        for kube in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(o, kube, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{o['kind']}/{o['metadata']['name']} on {kube}: {e.message} at {list(e.path)}")


def check_shape(obj, shape, where=""):
    """`shape`: a dict of required keys to sub-shapes, a list [item shape], or a type."""
    if isinstance(shape, dict):
        assert isinstance(obj, dict), f"{where}: not an object"
        for k, sub in shape.items():
            assert k in obj, f"{where}.{k} missing"
            check_shape(obj[k], sub, f"{where}.{k}")
    elif isinstance(shape, list):
        assert isinstance(obj, list) and obj, f"{where}: not a non-empty list"
        for i, item in enumerate(obj):
            check_shape(item, shape[0], f"{where}[{i}]")
    else:
        assert isinstance(obj, shape), f"{where}: {type(obj).__name__} is not {shape.__name__}"


def test_crd_kinds_have_the_shape_their_operators_read():
    objs = cl.manifests(cl.render(cl.ci_values("ha-values.yaml")))
    sm = cl.find(objs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    check_shape(sm, {"metadata": {"name": str, "labels": {"release": str}},
                     "spec": {"selector": {"matchLabels": dict}, "endpoints": [{"port": str, "path": str}]}})
    svc = cl.find(objs, "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert sm["spec"]["endpoints"][0]["path"] == "/stats/prometheus"

    objs = cl.manifests(cl.render(cl.ci_values("two-hosts-values.yaml")))
    route = cl.find(objs, "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    check_shape(route, {"spec": {"parentRefs": [{"name": str}], "hostnames": [str],
                                 "rules": [{"matches": [{"path": {"type": str, "value": str}}],
                                            "backendRefs": [{"name": str, "port": int}]}]}})
    assert route["spec"]["hostnames"] == ["wiki.example.com", "ops.example.com", "sso.example.com"]
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == cl.find(objs, "Service")["metadata"]["name"]


@pytest.mark.parametrize("ci", cl.ci_files())
def test_rendered_bootstrap_is_accepted_by_envoy_and_the_module(ci):
    d = cl.tmpdir("chart-validate-")
    try:
        objs = cl.manifests(cl.render(cl.ci_values(ci)))
        out = cl.envoy_validate(cl.mount_volumes(objs, d), d)
        assert out.returncode == 0, out.stdout + out.stderr
    finally:
        cl.rmtree(d)


def test_a_bootstrap_the_module_refuses_fails_validation():
    """The validate check can fail: a filter config the module rejects is caught."""
    d = cl.tmpdir("chart-validate-")
    try:
        values = cl.merge(cl.ci_values("memory-values.yaml"), {"filter": {"extraConfig": {"cookie": {"secure": False}}}})
        out = cl.envoy_validate(cl.mount_volumes(cl.manifests(cl.render(values)), d), d)
        assert out.returncode != 0
        assert "cookie.secure" in out.stdout + out.stderr
    finally:
        cl.rmtree(d)


def schema_error(values, upgrade=False):
    """The error a rendering (an install, or an upgrade) fails with."""
    with pytest.raises(cl.helm.HelmError) as e:
        cl.render(values, upgrade=upgrade)
    return str(e.value)


def test_wrong_values_get_a_schema_error_naming_the_field():
    ok = cl.ci_values("memory-values.yaml")
    v = copy.deepcopy(ok)
    del v["oidc"]["issuer"]
    assert "/oidc/issuer" in schema_error(v)
    v = copy.deepcopy(ok)
    v["oidc"]["clientSecret"]["existingSecret"] = "mine"
    assert "/oidc/clientSecret/existingSecret" in schema_error(v)
    v = copy.deepcopy(ok)
    del v["oidc"]["clientSecret"]
    assert "/oidc/clientSecret" in schema_error(v)
    v = cl.merge(ok, {"session": {"store": "redis"}})
    err = schema_error(v)
    assert "/redis/url" in err and "/redis/host" in err
    v = cl.merge(ok, {"session": {"store": "redis"}, "redis": {"mode": "sentinel"}})
    assert "/redis/sentinel/nodes" in schema_error(v)
    v = cl.merge(ok, {"session": {"store": "redis"}, "redis": {"mode": "cluster", "cluster": {"nodes": ["no-port"]}}})
    assert "/redis/cluster/nodes/0" in schema_error(v)
    v = cl.merge(ok, {"session": {"store": "redis"}, "redis": {"mode": "replicated", "host": "r"}})
    assert "/redis/mode" in schema_error(v)
    v = cl.merge(ok, {"sesion": {"store": "redis"}})
    assert "additional properties 'sesion' not allowed" in schema_error(v)
    v = cl.merge(ok, {"hosts": [{"host": "a.example.com", "upstream": {"service": "a", "port": 80},
                                 "routes": [{"prefix": "/x", "requireGroup": ["admins"]}]}]})
    assert "/hosts/0/routes/0" in schema_error(v) and "requireGroup" in schema_error(v)
    v = cl.merge(ok, {"envoy": {"pathWithEscapedSlashesAction": "KEEP_UNCHANGED"}})
    assert "/envoy/pathWithEscapedSlashesAction" in schema_error(v)
    v = cl.merge(ok, {"replicaCount": 3})
    assert "session.store is memory but more than one pod" in schema_error(v)
    cl.render(ok)  # and the untouched values render


def test_session_key_is_never_regenerated_silently_on_upgrade():
    values = cl.ci_values("memory-values.yaml")
    err = schema_error(values, upgrade=True)
    assert "gw-envoy-oidc-session" in err and "sign every user out" in err
    # With an existing Secret named, an upgrade renders.
    cl.render(cl.merge(values, {"session": {"existingSecret": "keys"}}), upgrade=True)


def test_generated_session_key_is_32_random_bytes_and_kept_on_uninstall():
    objs = cl.manifests(cl.render(cl.ci_values("memory-values.yaml")))
    secret = cl.find(objs, "Secret", "gw-envoy-oidc-session")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    key = cl.base64.b64decode(cl.base64.b64decode(secret["data"]["session-key"]))
    assert len(key) == 32


def test_config_and_secret_changes_roll_the_pods():
    base = cl.ci_values("memory-values.yaml")
    a = cl.find(cl.manifests(cl.render(base)), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    b = cl.find(cl.manifests(cl.render(cl.merge(base, {"oidc": {"scopes": ["openid"]}}))),
                "Deployment")["spec"]["template"]["metadata"]["annotations"]
    c = cl.find(cl.manifests(cl.render(cl.merge(base, {"oidc": {"clientSecret": {"value": "other"}}}))),
                "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert a["checksum/config"] != b["checksum/config"]
    assert a["checksum/secret"] != c["checksum/secret"]


def test_pod_is_hardened():
    for ci in cl.ci_files():
        objs = cl.manifests(cl.render(cl.ci_values(ci)))
        pod = cl.find(objs, "Deployment")["spec"]["template"]["spec"]
        c = pod["containers"][0]["securityContext"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert c["readOnlyRootFilesystem"] and c["allowPrivilegeEscalation"] is False
        assert c["capabilities"]["drop"] == ["ALL"]
        assert pod["automountServiceAccountToken"] is False
        boot = yaml.safe_load(cl.bootstrap(objs))
        assert boot["admin"]["address"]["socket_address"]["address"] == "127.0.0.1", ci
        hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        assert hcm["normalize_path"] and hcm["merge_slashes"]
        assert hcm["path_with_escaped_slashes_action"] in ("UNESCAPE_AND_REDIRECT", "REJECT_REQUEST")
        assert hcm["common_http_protocol_options"]["headers_with_underscores_action"] == "REJECT_REQUEST"
        for f in hcm["http_filters"][:-1]:
            # The filter config is YAML (a google.protobuf.Struct), not JSON in a string.
            assert f["typed_config"]["filter_config"]["@type"] == "type.googleapis.com/google.protobuf.Struct"
            assert isinstance(f["typed_config"]["filter_config"]["value"], dict)


def test_ha_values_create_hpa_pdb_networkpolicy():
    objs = cl.manifests(cl.render(cl.ci_values("ha-values.yaml")))
    kinds = {o["kind"] for o in objs}
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "Ingress"} <= kinds
    assert cl.find(objs, "ConfigMap", "gw-extra")["data"]["note"] == "rendered through tpl"
    assert cl.find(objs, "PodDisruptionBudget", "gw-extra-pdb")["spec"]["minAvailable"] == 1
    np = cl.find(objs, "NetworkPolicy")
    egress_ports = {p["port"] for rule in np["spec"]["egress"] for p in rule["ports"]}
    assert {53, 443, 6379, 8080, 8443} <= egress_ports, egress_ports
    # Two replicas of a memory-store chart are refused, one gets no PDB.
    assert "PodDisruptionBudget" not in {o["kind"] for o in cl.manifests(cl.render(cl.ci_values("memory-values.yaml")))}


def leaf_keys(d, prefix=""):
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v and k not in ("podSecurityContext", "securityContext", "readiness", "liveness", "startup"):
            yield from leaf_keys(v, path + ".")
        else:
            yield path


def test_every_value_is_documented_in_the_chart_readme():
    with open(os.path.join(cl.CHART, "values.yaml")) as f:
        values = yaml.safe_load(f)
    with open(os.path.join(cl.CHART, "README.md")) as f:
        readme = f.read()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
    missing = [k for k in leaf_keys(values) if k not in documented]
    assert not missing, f"values without a row in charts/envoy-oidc/README.md: {missing}"
    extra = [k for k in documented if k not in set(leaf_keys(values))]
    assert not extra, f"README rows for values that do not exist: {extra}"


def test_chart_and_crate_versions_agree():
    with open(os.path.join(cl.ROOT, "Cargo.toml")) as f:
        version = re.search(r'^\[workspace\.package\][^\[]*?^version = "([^"]+)"', f.read(), re.M | re.S).group(1)
    meta = cl.chart().metadata
    assert meta["version"] == version and meta["appVersion"] == version


def test_example_values_render_and_validate():
    for name in sorted(os.listdir(os.path.join(cl.CHART, "examples"))):
        with open(os.path.join(cl.CHART, "examples", name)) as f:
            values = yaml.safe_load(f)
        objs = cl.manifests(cl.render(values))
        d = cl.tmpdir("chart-example-")
        try:
            out = cl.envoy_validate(cl.mount_volumes(objs, d), d)
            assert out.returncode == 0, f"{name}: {out.stdout}{out.stderr}"
        finally:
            cl.rmtree(d)


# ------------------------------------------------------------------ the chart, running

POD = "127.0.0.2"  # the "pod address": listeners bind it, admin only 127.0.0.1
APP = "app.example.com"


@pytest.fixture
def procs():
    d = cl.tmpdir("chart-run-")
    p = cl.Processes(d)
    yield p
    p.stop_all()
    cl.rmtree(d)


def run_values(values, bind, hosts_url_port, upstream_port, overlay):
    """Values (a ci file's) pointed at loopback: listeners on `bind`, hosts' URLs on the
    gateway's port, authenticated hosts' upstreams at the echo app."""
    values = cl.merge(values, overlay)
    # The test IdP releases `groups` for the scope of that name (Keycloak uses a mapper).
    values["oidc"]["scopes"] = values["oidc"].get("scopes", ["openid", "email", "profile"]) + ["groups"]
    values["envoy"] = cl.merge(values.get("envoy", {}), {
        "bindAddress": bind, "listenPort": hosts_url_port, "probePort": benchlib.free_port(),
        "adminPort": benchlib.free_port(), "logLevel": "info"})
    for h in values["hosts"]:
        h.setdefault("url", f"http://{h['host']}:{hosts_url_port}")
        if h.get("authenticate", True):
            h["upstream"] = {"address": "127.0.0.1", "port": upstream_port}
        for r in h.get("routes", []):
            r.pop("upstream", None)
    return values


def idp_client(values, host):
    url = f"http://{host}:{values['envoy']['listenPort']}"
    return {"client_id": values["oidc"]["clientId"], "client_secret": values["oidc"]["clientSecret"]["value"],
            "redirect_uri": f"{url}/oauth2/callback", "post_logout_redirect_uri": f"{url}/"}


def check_login_rules_and_hygiene(gw, user_header="x-auth-request-user"):
    """What every running variant must show on host APP: login and identity headers,
    the per-route refusal, bypass attempts, spoofed headers."""
    alice = gw.login(APP, "alice", "/reports?q=1")
    status, _, body = gw.get(APP, "/reports?q=1", alice)
    path, headers = cl.echoed(body)
    assert status == 200 and path == "/reports?q=1"
    assert headers[user_header] == "alice" and headers["x-auth-request-groups"] == "admins"
    assert "oidc_session" not in headers.get("cookie", "")
    assert gw.get(APP, "/admin/panel", alice)[0] == 200

    bob = gw.login(APP, "bob")
    assert cl.echoed(gw.get(APP, "/", bob)[2])[1][user_header] == "bob"
    # The per-route rule, and what tries to walk around it.
    for attempt in ["/admin", "/admin/panel", "/ADMIN/panel", "/Admin", "/admin%2fpanel", "/%2fadmin",
                    "/public%2f..%2fadmin", "/public/../admin", "//admin", "/public/%2e%2e/admin",
                    "/public%5c..%5cadmin", "/public\\..\\admin", "/admin%5cpanel"]:
        status, _, body = gw.follow(APP, attempt, bob)
        assert status == 403, f"bob reached {attempt}: {status} {body[:200]}"
    # Public routes are public, look-alikes are not; the app sees the path the rules saw.
    assert gw.get(APP, "/public/page")[0] == 200
    assert gw.get(APP, "/publicXYZ")[0] == 302
    assert gw.get(APP, "/PUBLIC/page")[0] == 302
    status, _, body = gw.get(APP, "/public\\x")
    assert status == 200 and cl.echoed(body)[0] == "/public/x"
    # Spoofed identity headers never reach the app, whatever their family.
    spoof = {"x-auth-request-user": "mallory", "x-forwarded-user": "mallory", "x-forwarded-email": "m@evil",
             "remote-user": "mallory", "x-remote-user": "mallory", "x-forwarded-groups": "admins"}
    for path, cookies in (("/public/page", None), ("/", bob)):
        status, _, body = gw.get(APP, path, cookies, spoof)
        seen = cl.echoed(body)[1]
        assert status == 200 and "mallory" not in str(seen) and "m@evil" not in str(seen), seen
    assert gw.get(APP, "/public/page", None, {"x_auth_request_user": "mallory"})[0] == 400


def check_probes_admin_and_helm_test(gw, idp_origin):
    status, body = gw.probe("/ready")
    assert status == 200 and "LIVE" in body
    # The readiness probe asks the first authenticated host's filter whether it has
    # discovered the IdP (Envoy's own /ready says only that Envoy is up): run it.
    probe = cl.find(gw.objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert probe["port"] == "http" and probe["scheme"] == "HTTP", probe
    host = probe["httpHeaders"][0]["value"]
    status, _, body = gw.get(host, probe["path"])
    assert status == 200 and json.loads(body)["ready"] is True, body
    status, body = gw.probe("/stats/prometheus")
    assert status == 200 and "envoy_dynamicmodulescustom_oidc_login_started" in body
    for path, method in [("/config_dump", "GET"), ("/clusters", "GET"), ("/quitquitquit", "POST"),
                         ("/ready", "POST"), ("/logging?level=trace", "POST"), ("/stats", "GET")]:
        assert gw.probe(path, method)[0] == 404, path
    # Admin listens on the pod's loopback, never on the pod address.
    with pytest.raises(ConnectionRefusedError):
        benchlib.http_request(f"http://{POD}:{gw.admin_port}/ready")
    assert benchlib.http_request(f"http://127.0.0.1:{gw.admin_port}/ready")[0] == 200
    # The `helm test` pod's own script, run here against this gateway.
    argv, env = cl.helm_test_pod(gw.objs)
    env.update(GATEWAY_URL=f"http://{POD}:{gw.port}", PROBE_URL=f"http://{POD}:{gw.probe_port}", IDP_ORIGIN=idp_origin)
    out = subprocess.run(argv, env=dict(os.environ, **env), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "redirects to the IdP" in out.stdout
    # ... and it can fail: pointed at the wrong IdP, it does.
    env["IDP_ORIGIN"] = "https://elsewhere.example"
    out = subprocess.run(argv, env=dict(os.environ, **env), capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "FAIL" in out.stdout


def test_chart_gateway_runs_with_memory_sessions(procs):
    echo = cl.start_echo(procs)
    idp_port, port = benchlib.free_port(), benchlib.free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    values = run_values(cl.ci_values("memory-values.yaml"), POD, port, echo, {"oidc": {"issuer": issuer}})
    cl.start_idp(procs, idp_port, issuer, [idp_client(values, APP)])
    gw = cl.Gateway(values, procs, {APP: POD})
    gw.wait_for_discovery(APP)
    status, h, _ = gw.get(APP, "/")
    assert status == 302 and h["location"].startswith(f"{issuer}/auth?")
    q = cl.query(h["location"])
    assert q["ui_locales"] == "en" and q["code_challenge_method"] == "S256"
    assert q["redirect_uri"] == f"http://{APP}:{port}/oauth2/callback"
    check_login_rules_and_hygiene(gw)
    check_probes_admin_and_helm_test(gw, issuer)


def test_chart_gateway_runs_with_redis_over_tls_with_a_password(procs):
    password = "p@ss:w/rd with spaces"
    redis_port, ca = cl.start_redis_tls(procs, password)
    echo = cl.start_echo(procs)
    idp_port, port = benchlib.free_port(), benchlib.free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    values = run_values(cl.ci_values("redis-tls-values.yaml"), POD, port, echo,
                        {"oidc": {"issuer": issuer}, "redis": {"host": "127.0.0.1", "port": redis_port}})
    assert values["redis"]["password"]["value"] == password  # the ci file's, with reserved characters
    cl.start_idp(procs, idp_port, issuer, [idp_client(values, APP)])
    with open(ca, "rb") as f:
        # The CA comes from Secret redis-ca, made outside the chart: "mount" ours.
        gw = cl.Gateway(values, procs, {APP: POD}, outside={("Secret", "redis-ca"): {"ca.crt": f.read()}})
    gw.wait_for_discovery(APP)
    check_login_rules_and_hygiene(gw)
    keys = cl.redis_cli(redis_port, ca, password, "--scan", "--pattern", "oidc:*")
    assert len(keys.split()) >= 2, f"sessions are in Redis: {keys!r}"
    # A fresh Envoy (empty cache) admits the same cookie: the session came from Redis.
    alice = gw.login(APP, "alice")
    gw.restart()
    status, _, body = gw.get(APP, "/after-restart", alice)
    assert status == 200 and cl.echoed(body)[1]["x-auth-request-user"] == "alice"


def test_chart_gateway_runs_with_redis_sentinel_and_keeps_sessions_across_a_failover(procs):
    from redislib import SentinelGroup

    ci = cl.ci_values("redis-sentinel-values.yaml")
    group = SentinelGroup(procs.workdir, ci["redis"]["password"]["value"], ci["redis"]["sentinel"]["password"]["value"])
    try:
        echo = cl.start_echo(procs)
        idp_port, port = benchlib.free_port(), benchlib.free_port()
        issuer = f"http://127.0.0.1:{idp_port}"
        nodes = [f"127.0.0.1:{s.port}" for s in group.sentinels]
        values = run_values(ci, POD, port, echo, {"oidc": {"issuer": issuer}, "redis": {"sentinel": {"nodes": nodes}},
                                                  "replicaCount": 1})
        cl.start_idp(procs, idp_port, issuer, [idp_client(values, APP)])
        gw = cl.Gateway(values, procs, {APP: POD})
        gw.wait_for_discovery(APP)
        check_login_rules_and_hygiene(gw)
        alice = gw.login(APP, "alice")
        master = next(n for n in group.nodes if n.port == group.master_port())
        assert master.cli("--scan", "--pattern", "oidc:s:*").split(), "sessions are on the master"
        # The master dies; a replica takes over; a fresh Envoy (empty cache) still admits
        # alice: her session was on a replica before her login returned.
        group.fail()
        gw.restart()
        cl.wait_until(lambda: gw.get(APP, "/after-failover", alice)[0] == 200, "the gateway to use the new master")
        status, _, body = gw.get(APP, "/after-failover", alice)
        assert status == 200 and cl.echoed(body)[1]["x-auth-request-user"] == "alice"
        assert gw.login(APP, "carol"), "new logins work on the new master"
    finally:
        group.stop()


def test_chart_gateway_serves_two_hosts_and_the_idp_through_itself(procs):
    """The IdP on its own host behind the same gateway (filter off there): the filter's
    discovery, key and token calls leave through Envoy's listener and come back in."""
    echo = cl.start_echo(procs)
    idp_port, port = benchlib.free_port(), benchlib.free_port()
    issuer = f"http://127.0.0.1:{port}"  # the IdP's public URL is the gateway's
    values = cl.ci_values("two-hosts-values.yaml")
    values["hosts"][2] = {"host": "127.0.0.1", "authenticate": False, "upstream": {"address": "127.0.0.1", "port": idp_port}}
    values = run_values(values, "127.0.0.1", port, echo, {"oidc": {"issuer": issuer}})
    wiki, ops = "wiki.example.com", "ops.example.com"
    cl.start_idp(procs, idp_port, issuer, [{**idp_client(values, wiki), "redirect_uri": [
        f"http://{wiki}:{port}/oauth2/callback", f"http://{ops}:{port}/oauth2/callback"]}])
    resolve = {wiki: "127.0.0.1", ops: "127.0.0.1"}
    gw = cl.Gateway(values, procs, resolve)
    gw.wait_for_discovery(wiki)
    gw.wait_for_discovery(ops)
    # Each host logs in with its own redirect URI and cookie.
    for host in (wiki, ops):
        status, h, _ = gw.get(host, "/")
        assert status == 302 and cl.query(h["location"])["redirect_uri"] == f"http://{host}:{port}/oauth2/callback"
    alice_wiki = gw.login(wiki, "alice")
    status, _, body = gw.get(wiki, "/page", alice_wiki)
    assert status == 200 and cl.echoed(body)[1]["x-forwarded-user"] == "alice"
    assert gw.get(wiki, "/assets/app.css")[0] == 200
    # A session of one host is not one of the other.
    assert gw.get(ops, "/", alice_wiki)[0] == 302
    alice_ops = gw.login(ops, "alice")
    assert gw.get(ops, "/dashboards", alice_ops)[0] == 200
    assert gw.get(ops, "/api/x", None, {"accept": "text/html"})[0] == 401  # ops-only API prefix
    bob_ops = gw.login(ops, "bob")
    assert gw.get(ops, "/dashboards", bob_ops)[0] == 403
    bob_wiki = gw.login(wiki, "bob")
    assert gw.get(wiki, "/page", bob_wiki)[0] == 200
    # The filter reached the IdP through the gateway's own listener, without looping.
    log = procs.log("envoy")
    assert re.search(r'"GET /\.well-known/openid-configuration HTTP/1\.1" 200 .* host=127\.0\.0\.1:\d+ user=-', log), \
        "\n".join(line for line in log.splitlines() if "openid-configuration" in line or "discover" in line)
    # Every endpoint the IdP advertises is the gateway's, so the filter's code exchanges
    # (one per login above) went through it too.
    status, _, body, _ = benchlib.http_request(f"{issuer}/.well-known/openid-configuration")
    assert status == 200 and json.loads(body)["token_endpoint"] == f"{issuer}/token"
    status, _, body, _ = benchlib.http_request(f"http://127.0.0.1:{idp_port}/__test/stats")
    assert json.loads(body)["code_grants"] == 4
    # A host nobody configured gets no route.
    assert benchlib.http_request(f"http://127.0.0.1:{port}/", headers={"host": "other.example.com"})[0] == 404

