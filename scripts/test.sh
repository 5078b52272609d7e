#!/usr/bin/env bash
# Quick start, step 2: every test. Integration tests start real masters and store nodes on
# ports chosen at run time, so the binaries are built first. Then the Python binding is
# built into the virtualenv scripts/setup.sh made (target/py) and its pytest suite runs
# against the same binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --bins
cargo test --workspace "$@"
PY=target/py/bin/python
# `pip install --no-build-isolation` runs the `maturin` executable from PATH: use the venv's.
PATH="$PWD/target/py/bin:$PATH" MATURIN_PEP517_ARGS="--profile dev" "$PY" -m pip install -q --disable-pip-version-check \
  --no-build-isolation --force-reinstall --no-deps ./python
MC_BIN_DIR=target/debug "$PY" -m pytest -q python/tests
