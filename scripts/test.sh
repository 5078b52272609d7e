#!/usr/bin/env bash
# Quick start, step 2: every test. Integration tests start real masters and store nodes on
# ports chosen at run time, so the binaries are built first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --bins
cargo test --workspace "$@"
