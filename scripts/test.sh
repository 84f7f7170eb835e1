#!/usr/bin/env bash
# Runs every check and test of the project. Installs what it needs on first use.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"

ensure_apt binutils redis-server openssl
ensure_envoy
ensure_node_packages

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
