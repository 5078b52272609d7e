"""Live clusters for the binding's tests: a real mooncake_master and real mooncake_store
processes on ports chosen at run time, all killed at the end.

The binaries come from ``$MC_BIN_DIR`` (default ``<repo>/target/debug``); ``scripts/test.sh``
builds them before running pytest.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("MC_BIN_DIR", REPO / "target" / "debug"))
READY_TIMEOUT_S = 90


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


def binary(name):
    path = BIN_DIR / name
    if not path.exists():
        pytest.fail(f"{path} is missing: build it first (cargo build --workspace --bins)")
    return str(path)


class Cluster:
    """A master and any number of store nodes, each logging to a file under ``logdir``."""

    def __init__(self, logdir):
        self.logdir = Path(logdir)
        self.procs = []
        self.nodes = []
        self.master_addr = None
        self.metrics_port = None

    def _spawn(self, name, args):
        log = open(self.logdir / f"{name}.log", "wb")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def _wait(self, what, ready, proc):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}; see {self.logdir}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{what} not ready after {READY_TIMEOUT_S}s; see {self.logdir}")

    def start_master(self, *extra):
        rpc, metrics = free_port(), free_port()
        p = self._spawn(
            "master",
            [
                binary("mooncake_master"),
                f"--rpc_port={rpc}",
                "--rpc_address=127.0.0.1",
                f"--metrics_port={metrics}",
                *extra,
            ],
        )
        self.master_addr = f"127.0.0.1:{rpc}"
        self.metrics_port = metrics
        self._wait(
            "master",
            lambda: http_json(f"http://127.0.0.1:{metrics}/health").get("status") == "ok",
            p,
        )

    def start_node(self, host="127.0.0.1", size="256MB"):
        rest = free_port()
        p = self._spawn(
            f"node{len(self.nodes)}",
            [
                binary("mooncake_store"),
                f"--master_server={self.master_addr}",
                f"--local_hostname={host}",
                f"--global_segment_size={size}",
                "--data_port=0",
                f"--port={rest}",
            ],
        )
        self.nodes.append(p)
        self._wait(
            f"node {host}",
            lambda: http_json(f"http://127.0.0.1:{rest}/health").get("mounted_segments", 0) > 0,
            p,
        )
        return len(self.nodes) - 1

    def segments(self):
        """Segment names the master knows."""
        url = f"http://127.0.0.1:{self.metrics_port}/get_all_segments"
        with urllib.request.urlopen(url, timeout=2.0) as r:
            return [line for line in r.read().decode().splitlines() if line]

    def kill_node(self, i):
        self.nodes[i].send_signal(signal.SIGKILL)
        self.nodes[i].wait(timeout=30)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A master with one 256 MB store node."""
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start_master()
        c.start_node()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def bare_master(tmp_path_factory):
    """A master without store nodes."""
    c = Cluster(tmp_path_factory.mktemp("bare"))
    try:
        c.start_master()
        yield c
    finally:
        c.stop()


def new_store(master_addr, **kw):
    from mooncake_rs.store import MooncakeDistributedStore

    s = MooncakeDistributedStore()
    args = dict(
        local_hostname="127.0.0.1",
        metadata_server="P2PHANDSHAKE",
        global_segment_size=0,
        local_buffer_size=16 << 20,
        protocol="tcp",
        rdma_devices="",
        master_server_addr=master_addr,
    )
    args.update(kw)
    rc = s.setup(**args)
    assert rc == 0, s.last_error()
    return s


@pytest.fixture
def store(cluster):
    """A pure client of ``cluster``; every object is removed afterwards."""
    s = new_store(cluster.master_addr)
    try:
        yield s
    finally:
        s.remove_all(force=True)
        s.close()


def run_python(code, *args, timeout=120):
    """Runs ``code`` in a fresh interpreter (another process) and returns it."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
