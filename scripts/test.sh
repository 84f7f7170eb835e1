#!/usr/bin/env bash
# Runs every check and test of the project. Installs what it needs on first use.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"

ensure_apt binutils redis-server redis-tools openssl curl buildah shellcheck
ensure_browser
ensure_envoy
ensure_node_packages
ensure_python_tools

cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --check
cargo clippy --workspace --all-targets --locked -- -D warnings
(cd fuzz && cargo clippy --locked --bins --target-dir target/clippy -- -D warnings)
# GitHub workflows: actionlint with shellcheck on every `run:` block, shown to fail on
# broken copies; the Keycloak job's realm and suite checked against each other.
"$PYTHON_BIN" -m pytest -q -p no:cacheprovider .github/tests
# Unit, integration (real Envoy, IdP, Redis) and doc tests; builds libenvoy_oidc.so too.
cargo test --workspace --locked
# The module as it ships (release, stripped): the Helm chart rendered, linted, validated
# for Kubernetes 1.25 and 1.37 and its Envoy bootstrap run for real; the module-only image
# built with buildah.
build_module
"$PYTHON_BIN" -m pytest -q -p no:cacheprovider charts/tests
# Every parser that sees attacker input, fuzzed 30 s each (libFuzzer on stable: see
# scripts/fuzz.sh; 10-minute runs are `scripts/fuzz.sh 600`).
scripts/fuzz.sh 30
# End to end in a real browser (Debian's Chromium through playwright-core), with sessions
# in memory, then in Redis.
OIDC_MODULE_DIR="$ROOT/target/debug/deps" "$NODE_BIN" --test e2e/tests/browser.test.mjs
E2E_STORE=redis OIDC_MODULE_DIR="$ROOT/target/debug/deps" "$NODE_BIN" --test e2e/tests/browser.test.mjs
