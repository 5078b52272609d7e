#!/usr/bin/env bash
# The fault suite (docs/reliability.md): builds the binaries with failpoints, copies them to
# target/faults/bin (the ordinary target/debug binaries are rebuilt without failpoints right
# after, so no ordinary or release build ever carries them), runs the failpoint tests
# (client/tests/failpoints.rs), then every scenario against real processes, printing one row
# each: runs, acknowledged objects lost, wrong bytes returned, time to recover, pass/fail.
#
#   scripts/faults.sh [--json] [--quick] [--runs N] [--only NAME,...]
#
# --json prints one JSON object per row; --quick runs one small run of each (CI).
# Exits non-zero if a failpoint test or any row fails.
#
# The build shares target/ with the ordinary one: the failpoint features change only this
# workspace's crates, so every third-party dependency is compiled once (a separate target
# directory compiled all of them twice and cost CI several minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
features=mc-agent/failpoints,mc-master/failpoints,mc-faults/failpoints
pkgs=(-p mc-agent -p mc-master -p mc-faults)
bin_dir="$PWD/target/faults/bin"
restore() { cargo build -q "${pkgs[@]}" --bins >&2; }
trap restore EXIT
cargo build -q "${pkgs[@]}" --bins --features "$features" >&2
rm -rf "$bin_dir" && mkdir -p "$bin_dir"
cp target/debug/mooncake_master target/debug/mooncake_store target/debug/mc-faults "$bin_dir/"
restore
cargo test -q -p mc-ring --features failpoints >&2
MC_BIN_DIR="$bin_dir" cargo test -q -p mooncake-rs --features failpoints --test failpoints >&2
MC_BIN_DIR="$bin_dir" "$bin_dir/mc-faults" "$@"
