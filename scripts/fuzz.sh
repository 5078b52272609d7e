#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), then fuzzed HTTP requests against a
# live master and node. The harness is stable Rust (no nightly, no libFuzzer): `fuzz/` is
# its own workspace, built into the root's target/ (its lock file and dev profile match the
# root's, so compiled dependencies are shared). Crashing inputs land in
# fuzz/crashes/<target>/; `target/debug/mc-fuzz replay FILE` shows the panic. Once fixed, copy the input to
# fuzz/regressions/<target>/: the normal test suite replays that directory.
#
# With --release, the master and node the `http` target sends its requests to are release
# builds (about 3x the requests per second of debug ones; the decoders themselves stay in
# the debug harness, with overflow checks).
#
# With --inputs N, every target stops once it has tried N inputs and SECONDS is only a cap
# (the run exits 3 if a target hit it first): `scripts/fuzz.sh --release --inputs 10000000
# 3600` is the issue's "10M inputs per target", on a loaded machine too.
#
#   scripts/fuzz.sh [--release] [--inputs N] [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=debug
if [[ "${1:-}" == "--release" ]]; then
  profile=release
  shift
fi
inputs=()
if [[ "${1:-}" == "--inputs" ]]; then
  inputs=(--inputs "$2")
  shift 2
fi
seconds=${1:-60}
shift || true
if [[ $profile == release ]]; then
  cargo build -q --release -p mc-agent -p mc-master --bins >&2
else
  cargo build -q -p mc-agent -p mc-master --bins >&2
fi
(cd fuzz && CARGO_TARGET_DIR=../target cargo build -q >&2)
cd fuzz
MC_BIN_DIR="$PWD/../target/$profile" ../target/debug/mc-fuzz "${inputs[@]}" "$seconds" "$@"
