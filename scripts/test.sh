#!/usr/bin/env bash
# Runs every check and test of the project. Installs what it needs on first use.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"

ensure_apt binutils redis-server openssl chromium
ensure_envoy
ensure_node_packages

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Unit, integration (real Envoy, IdP, Redis) and doc tests; builds libenvoy_oidc.so too.
cargo test --workspace --locked
# End to end in a real browser (Debian's Chromium through playwright-core).
OIDC_MODULE_DIR="$ROOT/target/debug/deps" "$NODE_BIN" --test e2e/tests/browser.test.mjs
