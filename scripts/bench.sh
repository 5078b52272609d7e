#!/usr/bin/env bash
# Quick start, step 1: build, start a local master and store node, run mc-bench's default
# workload (put then get of 4 KiB, 64 KiB, 1 MiB and 16 MiB values at batch 1 and 16, every
# value checked), stop them.
# Extra arguments go to mc-bench (e.g. --json, --sizes 64KB).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --bins
exec ./target/release/mc-bench "$@"
