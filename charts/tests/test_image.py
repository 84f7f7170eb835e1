"""The module-only OCI image (the Dockerfile's `module` target), built here with
buildah from the stripped .so the chart tests load; the full image (official Envoy base)
is built by the release workflow, where that base can be pulled."""
import hashlib
import json
import os
import subprocess
import tarfile

import pytest

import chartlib as cl

MODULE_PATH = "usr/local/lib/envoy/dynamic_modules/libenvoy_oidc.so"
LICENSE_PATH = "usr/share/licenses/envoy-oidc/LICENSE"


def open_readable(path):
    """A file buildah wrote (as root where we are not)."""
    import io
    return io.BytesIO(subprocess.run([*SUDO, "cat", path], check=True, capture_output=True).stdout)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# buildah keeps its store as root; CI on GitHub runs as a user with passwordless sudo.
SUDO = [] if os.geteuid() == 0 else ["sudo", "-n"]


@pytest.fixture(scope="module")
def image_files():
    d = cl.tmpdir("image-")
    store = [*SUDO, "buildah", "--root", os.path.join(d, "root"), "--runroot", os.path.join(d, "run"),
             "--storage-driver", "vfs"]
    try:
        subprocess.run([*store, "bud", "--quiet", "--build-arg", "MODULE_SOURCE=prebuilt",
                        "--target", "module", "-t", "envoy-oidc-module:test", "-f", "Dockerfile", "."],
                       cwd=cl.ROOT, check=True, capture_output=True, timeout=300)
        oci = os.path.join(d, "oci")
        subprocess.run([*store, "push", "--quiet", "envoy-oidc-module:test", f"oci:{oci}"],
                       check=True, capture_output=True, timeout=300)
        index = json.load(open_readable(os.path.join(oci, "index.json")))
        digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(open_readable(os.path.join(oci, "blobs", "sha256", digest)))
        files = {}
        for layer in manifest["layers"]:
            blob = os.path.join(oci, "blobs", "sha256", layer["digest"].split(":")[1])
            with tarfile.open(fileobj=open_readable(blob)) as t:
                for m in t.getmembers():
                    name = m.name.lstrip("./")
                    if m.isfile():
                        files[name] = hashlib.sha256(t.extractfile(m).read()).hexdigest()
                    elif not m.isdir():
                        files[name] = f"not a regular file ({m.type!r})"
        yield files
    finally:
        subprocess.run([*store, "rmi", "--all", "--force"], capture_output=True)
        subprocess.run([*SUDO, "rm", "-rf", d], capture_output=True)


def test_module_image_holds_exactly_the_stripped_module_and_the_license(image_files):
    assert set(image_files) == {MODULE_PATH, LICENSE_PATH}, image_files
    module = os.path.join(os.environ["OIDC_MODULE_DIR"], "libenvoy_oidc.so")
    assert image_files[MODULE_PATH] == sha256(module), "the image holds the .so the chart tests load"
    assert image_files[LICENSE_PATH] == sha256(os.path.join(cl.ROOT, "LICENSE"))


def test_the_shipped_module_is_stripped():
    module = os.path.join(os.environ["OIDC_MODULE_DIR"], "libenvoy_oidc.so")
    sections = subprocess.run(["objdump", "-h", module], check=True, capture_output=True, text=True).stdout
    assert ".debug_info" not in sections and ".symtab" not in sections
    # Still a module Envoy can load: the ABI entry point is exported.
    dynsyms = subprocess.run(["nm", "-D", "--defined-only", module], check=True, capture_output=True, text=True).stdout
    assert "envoy_dynamic_module_on_program_init" in dynsyms


def test_glibc_the_module_needs_is_what_the_readme_says():
    """Released modules are built on Debian 12 (the Dockerfile's rust:*-bookworm); a module
    built against another glibc may need other symbol versions."""
    libc = subprocess.run(["ldd", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    if not libc.endswith(" 2.36"):
        pytest.skip(f"built against {libc}, not Debian 12's glibc 2.36 the release builds with")
    module = os.path.join(os.environ["OIDC_MODULE_DIR"], "libenvoy_oidc.so")
    out = subprocess.run(["objdump", "-T", module], check=True, capture_output=True, text=True).stdout
    versions = {tuple(int(x) for x in v.split(".")) for v in __import__("re").findall(r"GLIBC_([0-9.]+)", out)}
    newest = ".".join(map(str, max(versions)))
    with open(os.path.join(cl.ROOT, "README.md")) as f:
        assert f"glibc {newest}" in f.read(), f"README must say the module needs glibc {newest} or newer"
