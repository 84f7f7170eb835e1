#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ on the stable toolchain and runs each for a
# bounded time.  Usage: scripts/fuzz.sh [seconds-per-target] [target...]
#
# Why not `cargo fuzz`: it asks for nightly (-Zsanitizer); libFuzzer itself only needs
# the SanitizerCoverage pass, which stable rustc runs with the codegen flags below (the
# ones cargo-fuzz passes, minus the sanitizer). libfuzzer-sys builds libFuzzer with g++.
# Memory errors cannot happen in our code (no unsafe outside envoy-module, which is not
# fuzzed here); what the targets find is panics, failed invariants, hangs and OOMs.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${1:-30}"
shift || true
ALL=(cookie_split sealed_open record_decrypt path callback_query trace_id bearer logout_token config)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")

export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks \
-Cforce-frame-pointers=yes"
# With an explicit --target the flags reach only the fuzzed code, not build scripts
# and proc macros (which would not link without libFuzzer).
HOST="$(rustc -vV | sed -n 's/^host: //p')"
(cd fuzz && cargo build --release --locked --bins --target "$HOST" --target-dir target)
BIN="fuzz/target/$HOST/release"

mkdir -p fuzz/target/artifacts fuzz/target/logs
for t in "${TARGETS[@]}"; do
  work="fuzz/target/corpus/$t"
  mkdir -p "$work" "fuzz/target/artifacts/$t"
  seeds="fuzz/corpus/$t"
  echo "fuzz: $t for ${SECS}s"
  # New inputs go to the work corpus (ignored); the committed seeds are only read.
  if ! "$BIN/$t" "$work" "$seeds" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
      -max_len=8192 -print_final_stats=1 -artifact_prefix="fuzz/target/artifacts/$t/" \
      >"fuzz/target/logs/$t.log" 2>&1; then
    tail -n 40 "fuzz/target/logs/$t.log"
    echo "fuzz: $t FAILED (artifact in fuzz/target/artifacts/$t/)" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^#[0-9]+ *DONE' "fuzz/target/logs/$t.log" | tr '\n' ' '
  echo
done
