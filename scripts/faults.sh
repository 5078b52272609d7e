#!/usr/bin/env bash
# The fault suite (docs/reliability.md): builds the binaries with failpoints into their own
# target directory (target/faults, so no ordinary or release build ever carries them), runs
# the failpoint tests (client/tests/failpoints.rs), then every scenario against real
# processes, printing one row each: runs, acknowledged objects lost, wrong bytes returned,
# time to recover, pass/fail.
#
#   scripts/faults.sh [--json] [--quick] [--runs N] [--only NAME,...]
#
# --json prints one JSON object per row; --quick runs one small run of each (CI).
# Exits non-zero if a failpoint test or any row fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=target/faults
features=mc-agent/failpoints,mc-master/failpoints,mc-faults/failpoints
cargo build -q -p mc-agent -p mc-master -p mc-faults --bins --features "$features" >&2
cargo test -q -p mooncake-rs --features failpoints --test failpoints >&2
MC_BIN_DIR="$CARGO_TARGET_DIR/debug" "$CARGO_TARGET_DIR/debug/mc-faults" "$@"
