"""The GitHub workflows: actionlint (with shellcheck on every `run:` block) passes on each,
fails on broken copies, and the Keycloak job's realm and suite agree with each other."""
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKFLOWS = os.path.join(ROOT, ".github", "workflows")
ACTIONLINT = os.path.join(ROOT, ".tools", "venv", "bin", "actionlint")


def actionlint(*files, cwd=ROOT):
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck must be installed, or run: blocks go unchecked"
    return subprocess.run([ACTIONLINT, f"-shellcheck={shellcheck}", "-pyflakes=", *files],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def workflow_files():
    return sorted(f for f in os.listdir(WORKFLOWS) if f.endswith(".yml"))


@pytest.mark.parametrize("name", workflow_files())
def test_workflow_is_clean(name):
    out = actionlint(os.path.join(".github", "workflows", name))
    assert out.returncode == 0, out.stdout + out.stderr


def lint_broken(name, breakage):
    """actionlint on a copy of workflow `name` changed by `breakage(text)`."""
    with open(os.path.join(WORKFLOWS, name)) as f:
        text = f.read()
    broken = breakage(text)
    assert broken != text, "the breakage changed nothing"
    d = tempfile.mkdtemp(prefix="workflow-")
    try:
        os.makedirs(os.path.join(d, ".github", "workflows"))
        with open(os.path.join(d, ".github", "workflows", name), "w") as f:
            f.write(broken)
        return actionlint(os.path.join(".github", "workflows", name), cwd=d)
    finally:
        shutil.rmtree(d)


def test_lint_fails_on_a_workflow_that_does_not_parse():
    # The bug that kept the first Keycloak workflow from ever running: a quoted scalar
    # followed by more text.
    out = lint_broken("keycloak-e2e.yml", lambda t: t.replace(
        'run: |\n          "$NODE_BIN" --test', 'run: "$NODE_BIN" --test e2e/tests/browser.test.mjs and more\n        x: |\n          "$NODE_BIN" --test', 1))
    assert out.returncode != 0
    assert "could not parse as YAML" in out.stdout or "syntax" in out.stdout.lower(), out.stdout


def test_lint_fails_on_a_script_shellcheck_flags():
    out = lint_broken("ci.yml", lambda t: t.replace("run: bash .ci/run", "run: cd $HOME/src; bash .ci/run"))
    assert out.returncode != 0 and "shellcheck" in out.stdout, out.stdout


def test_lint_fails_on_an_unknown_expression():
    out = lint_broken("keycloak-e2e.yml", lambda t: t.replace("${{ matrix.store }}", "${{ matrix.stores }}", 1))
    assert out.returncode != 0 and "stores" in out.stdout, out.stdout


def test_keycloak_job_realm_and_suite_agree():
    with open(os.path.join(WORKFLOWS, "keycloak-e2e.yml")) as f:
        wf = yaml.safe_load(f)
    job = wf["jobs"]["keycloak"]
    version = job["env"]["KEYCLOAK_VERSION"]
    assert re.fullmatch(r"26\.\d+\.\d+", version), f"Keycloak pinned to a 26.x patch release, not {version!r}"
    assert job["strategy"]["matrix"]["store"] == ["memory", "redis"]
    steps = {s.get("name", s.get("uses")): s for s in job["steps"]}
    e2e = steps["Browser e2e against Keycloak"]
    assert "e2e/tests/browser.test.mjs" in e2e["run"], "the same suite that runs locally"
    assert e2e["env"]["E2E_IDP"] == "keycloak"
    # Keycloak refuses (invalid_scope) any scope its client lacks: only built-in ones.
    assert set(e2e["env"]["E2E_SCOPES"].split()) <= {"openid", "email", "profile", "offline_access", "roles", "acr"}

    with open(os.path.join(ROOT, "e2e", "keycloak", "demo-realm.json")) as f:
        realm = json.load(f)
    issuer = e2e["env"]["OIDC_ISSUER"]
    assert issuer.endswith(f"/realms/{realm['realm']}")
    for user in realm["users"]:
        # Users imported from JSON get no default roles: without this, offline_access
        # (refresh tokens past the SSO session) is refused at login.
        assert "offline_access" in user.get("realmRoles", []), user["username"]
    client = next(c for c in realm["clients"] if c["clientId"] == e2e["env"]["OIDC_CLIENT_ID"])
    assert client["secret"] == e2e["env"]["OIDC_CLIENT_SECRET"]
    base = f"http://127.0.0.1:{e2e['env']['E2E_LISTEN_PORT']}"
    assert client["redirectUris"] == [f"{base}/oauth2/callback"]
    attrs = client["attributes"]
    assert attrs["backchannel.logout.url"] == f"{base}/oauth2/backchannel_logout"
    assert attrs["post.logout.redirect.uris"] == f"{base}/oauth2/signed_out"
    mapper = next(m for m in client["protocolMappers"] if m["protocolMapper"] == "oidc-group-membership-mapper")
    assert mapper["config"]["claim.name"] == "groups" and mapper["config"]["full.path"] == "false"
    assert any("/admins" in u.get("groups", []) for u in realm["users"])

    with open(os.path.join(ROOT, "e2e", "tests", "stack.mjs")) as f:
        stack = f.read()
    ttl = int(re.search(r"export const ACCESS_TTL_SECS = (\d+);", stack).group(1))
    leeway = int(re.search(r"export const REFRESH_LEEWAY_SECS = (\d+);", stack).group(1))
    assert int(attrs["access.token.lifespan"]) == ttl, "the refresh test waits for the realm's access-token lifetime"
    assert leeway < ttl
    with open(os.path.join(ROOT, "e2e", "tests", "browser.test.mjs")) as f:
        suite = f.read()
    for case in ["refreshed at the IdP", "back-channel logout", "at Keycloak ends them here", "refused where admins",
                 "sign-out ends the session"]:
        assert case in suite, f"the suite the Keycloak job runs has no test for: {case}"


def test_release_workflow_builds_both_architectures_and_pushes_only_on_tags():
    with open(os.path.join(WORKFLOWS, "release.yml")) as f:
        wf = yaml.safe_load(f)
    builds = [s for s in wf["jobs"]["images"]["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action")]
    assert {s["with"]["target"] for s in builds} == {"runtime", "module"}
    for s in builds:
        assert s["with"]["platforms"] == "linux/amd64,linux/arm64"
        assert s["with"]["push"] == "${{ needs.version.outputs.push == 'true' }}"
        assert s["with"]["sbom"] is True and s["with"]["provenance"] == "mode=max"
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in on and on["push"]["tags"] == ["v*"]
