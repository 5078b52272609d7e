#!/usr/bin/env bash
# Installs the system packages mooncake-rs needs to build and test, when they are missing.
# Idempotent and quiet when everything is there. Needs root (or sudo) only to install.
set -euo pipefail

need=()
command -v cmake  >/dev/null 2>&1 || need+=(cmake)        # flatc (flatbuffers compiler) is built from source
command -v c++    >/dev/null 2>&1 || need+=(g++)          # ... with a C++ compiler
command -v cc     >/dev/null 2>&1 || need+=(gcc)          # glommio's liburing
command -v make   >/dev/null 2>&1 || need+=(make)
command -v git    >/dev/null 2>&1 || need+=(git)          # glommio's build script
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v curl   >/dev/null 2>&1 || need+=(curl)         # quick-start health checks
command -v promtool >/dev/null 2>&1 || need+=(prometheus) # promtool checks docs/prometheus.yml
command -v prometheus >/dev/null 2>&1 || need+=(prometheus) # ... and mc-cluster --prometheus runs it
command -v chromium >/dev/null 2>&1 || need+=(chromium)     # the /dashboard test loads it headless
command -v etcd     >/dev/null 2>&1 || need+=(etcd-server)      # mc-coord tests elect on a real etcd
command -v redis-server >/dev/null 2>&1 || need+=(redis-server) # ... and on a real Redis
command -v protoc   >/dev/null 2>&1 || need+=(protobuf-compiler) # etcd-client's build script
[ -d /usr/include/google/protobuf ] || need+=(libprotobuf-dev)  # ... and the well-known .proto files
command -v fio      >/dev/null 2>&1 || need+=(fio)          # mc-bench --scenario ssd: the raw O_DIRECT read ceiling

if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root to install ${need[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true

# Python binding (python/): a virtualenv under target/py with maturin (builds the extension),
# numpy and pytest (its tests), and moto's S3-compatible server (`target/py/bin/moto_server`,
# which the master's S3 snapshot tests write to). Uses python3 from PATH; Debian's python3
# needs python3-venv.
PYENV_DIR="$(cd "$(dirname "$0")/.." && pwd)/target/py"
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "setup: installing python3 python3-venv python3-pip" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-venv python3-pip >/dev/null
fi
if [ ! -x "$PYENV_DIR/bin/python" ]; then
  python3 -m venv "$PYENV_DIR"
fi
if ! "$PYENV_DIR/bin/python" -c 'import numpy, pytest, maturin' >/dev/null 2>&1; then
  echo "setup: installing maturin, numpy, pytest into $PYENV_DIR" >&2
  "$PYENV_DIR/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.9,<2" numpy pytest
fi
# Tensor tests: bfloat16/float8 numpy arrays (ml_dtypes) and safetensors files. torch is
# not installed: PyPI's build brings gigabytes of CUDA libraries; the tensor methods run on
# numpy arrays through the same header code when torch is absent.
if ! "$PYENV_DIR/bin/python" -c 'import ml_dtypes, safetensors' >/dev/null 2>&1; then
  echo "setup: installing ml_dtypes, safetensors into $PYENV_DIR" >&2
  "$PYENV_DIR/bin/python" -m pip install -q --disable-pip-version-check ml_dtypes safetensors
fi
if [ ! -x "$PYENV_DIR/bin/moto_server" ]; then
  echo "setup: installing moto[server] into $PYENV_DIR" >&2
  "$PYENV_DIR/bin/python" -m pip install -q --disable-pip-version-check "moto[server]>=5,<6"
fi
