"""The dummy client: ``mooncake_client`` (a real client hosting a segment) serving
processes that called ``setup_dummy``, as Mooncake's test_dummy_client.py and
test_multi_dummy_clients.py use it.

A real master runs with one real ``mooncake_client`` per test (its own port, chosen at run
time); dummies run in this process and in child interpreters.
"""

import ctypes
import signal
import socket
import subprocess
import textwrap
import time

import numpy as np
import pytest

from conftest import Cluster, binary, free_port, new_store, run_python
from mooncake_rs.store import MooncakeDistributedStore

READY_TIMEOUT_S = 90
POOL = 64 << 20


class RealClient:
    """One ``mooncake_client`` process with Mooncake's flags; restartable on its port."""

    def __init__(self, master_addr, logdir):
        self.master_addr = master_addr
        self.logdir = logdir
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        log = open(self.logdir / f"mooncake_client{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            [
                binary("mooncake_client"),
                "--host=127.0.0.1",
                f"--port={self.port}",
                "--global_segment_size=32MB",
                "--local_buffer_size=16MB",
                f"--master_server_address={self.master_addr}",
                "--metadata_server=P2PHANDSHAKE",
                "--protocol=tcp",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mooncake_client exited with {self.proc.returncode}")
            try:
                # The service is bound only once the segment is mounted and the master
                # answers.
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("mooncake_client not ready")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("dummy"))
    try:
        c.start_master()
        yield c
    finally:
        c.stop()


@pytest.fixture
def real(master, tmp_path):
    r = RealClient(master.master_addr, tmp_path)
    try:
        r.start()
        yield r
    finally:
        r.stop()


def dummy(real, pool=POOL):
    s = MooncakeDistributedStore()
    rc = s.setup_dummy(pool, 16 << 20, real.addr)
    assert rc == 0, s.last_error()
    return s


def view(addr, size):
    """A numpy view of ``size`` bytes at ``addr`` (memory of the pool)."""
    return np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(addr))


def test_put_get_through_the_real_client(real, master):
    s = dummy(real)
    try:
        assert s.health_check() == 0
        assert s.put("d-k", b"hello dummy") == 0
        assert s.is_exist("d-k") == 1
        assert s.get_size("d-k") == len(b"hello dummy")
        assert s.get("d-k") == b"hello dummy"
        assert s.get_batch(["d-k", "d-missing"]) == [b"hello dummy", b""]
        assert bytes(s.get_buffer("d-k")) == b"hello dummy"
        assert s.put_parts("d-parts", b"ab", b"cd") == 0
        assert s.get("d-parts") == b"abcd"
        assert s.batch_is_exist(["d-k", "d-missing"]) == [1, 0]
        # A client of its own sees what the dummy wrote, and the dummy what it writes.
        other = new_store(master.master_addr)
        try:
            assert other.get("d-k") == b"hello dummy"
            assert other.put("d-from-other", b"other") == 0
            assert s.get("d-from-other") == b"other"
        finally:
            other.close()
        assert s.get_hostname() != ""
        assert s.remove("d-k", force=True) == 0  # the gets hold a read lease
        assert s.is_exist("d-k") == 0
        assert s.remove_all(force=True) >= 2
    finally:
        s.close()


def test_alloc_register_and_zero_copy_put_get(real):
    s = dummy(real)
    try:
        size = 1 << 20
        src = s.alloc_from_mem_pool(size)
        dst = s.alloc_from_mem_pool(size)
        assert src != 0 and dst != 0 and dst >= src + size
        assert s.register_buffer(src, size) == 0
        assert s.register_buffer(dst, size) == 0
        data = np.random.default_rng(7).integers(0, 256, size, dtype=np.uint8)
        view(src, size)[:] = data
        assert s.put_from("zc", src, size) == 0
        assert s.get_into("zc", dst, size) == size
        assert np.array_equal(view(dst, size), data)
        # Batches, and buffers outside the pool (their bytes travel inline).
        outside = np.zeros(size, dtype=np.uint8)
        assert s.batch_put_from(["zc1", "zc2"], [src, src + 4096], [4096, 4096]) == [0, 0]
        got = s.batch_get_into(["zc1", "zc2"], [dst, outside.ctypes.data], [4096, size])
        assert got == [4096, 4096]
        assert np.array_equal(view(dst, 4096), data[:4096])
        assert np.array_equal(outside[:4096], data[4096:8192])
        # A buffer smaller than the object is refused and left alone.
        assert s.get_into("zc", dst, 100) < 0
        assert s.unregister_buffer(src) == 0
    finally:
        s.remove_all(force=True)
        s.close()


def test_multi_buffers_and_tensors_through_the_dummy(real):
    s = dummy(real)
    try:
        a, b = np.arange(100, dtype=np.uint8), np.arange(50, dtype=np.uint8)[::-1].copy()
        keys = ["mb"]
        assert s.batch_put_from_multi_buffers(keys, [[a, b]], [[100, 50]]) == [0]
        out1, out2 = np.zeros(120, dtype=np.uint8), np.zeros(30, dtype=np.uint8)
        assert s.batch_get_into_multi_buffers(keys, [[out1, out2]], [[120, 30]]) == [150]
        assert np.array_equal(np.concatenate([out1, out2]), np.concatenate([a, b]))
        t = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        assert s.put_tensor("tensor", t) == 0
        got = s.get_tensor("tensor")
        assert got.dtype == t.dtype and got.shape == t.shape and np.array_equal(got, t)
        buf = s.alloc_from_mem_pool(1 << 16)
        assert s.register_buffer(buf, 1 << 16) == 0
        into = s.get_tensor_into("tensor", buf, 1 << 16)
        assert np.array_equal(np.asarray(into), t)
    finally:
        s.remove_all(force=True)
        s.close()


HANDOFF = textwrap.dedent(
    """
    import sys
    from mooncake_rs.store import MooncakeDistributedStore
    s = MooncakeDistributedStore()
    rc = s.setup_dummy(32 << 20, 1 << 20, sys.argv[1])
    print("SETUP", rc, s.get_hostname(), flush=True)
    mine, theirs = sys.argv[2], sys.argv[3]
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "put":
            print("PUT", s.put(mine, mine.encode() * 1000), flush=True)
        elif cmd == "get":
            print("GOT", s.get(theirs) == theirs.encode() * 1000, s.get_size(theirs), flush=True)
        elif cmd == "remove":
            print("REMOVED", s.remove(theirs, force=True), flush=True)
        else:
            break
    s.close()
    """
)


def ask(p, cmd):
    p.stdin.write(cmd + "\n")
    p.stdin.flush()
    line = p.stdout.readline()
    assert line, p.stderr.read()
    return line.split()


def test_two_dummies_hand_keys_to_each_other(real):
    a = run_python(HANDOFF, real.addr, "from-a", "from-b")
    b = run_python(HANDOFF, real.addr, "from-b", "from-a")
    try:
        names = []
        for p in (a, b):
            line = p.stdout.readline().split()
            assert line[:2] == ["SETUP", "0"], line + [p.stderr.read()]
            names.append(line[2])
        # Both share the one real client.
        assert names[0] == names[1]
        assert ask(a, "put") == ["PUT", "0"]
        assert ask(b, "get") == ["GOT", "True", str(len(b"from-a") * 1000)]
        assert ask(b, "put") == ["PUT", "0"]
        assert ask(a, "get") == ["GOT", "True", str(len(b"from-b") * 1000)]
        assert ask(a, "remove") == ["REMOVED", "0"]
        assert ask(b, "remove") == ["REMOVED", "0"]
        for p in (a, b):
            p.stdin.write("quit\n")
            p.stdin.flush()
            assert p.wait(timeout=60) == 0
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_dummy_registers_again_after_the_real_client_restarts(real):
    s = dummy(real)
    try:
        size = 64 << 10
        buf = s.alloc_from_mem_pool(size)
        assert s.register_buffer(buf, size) == 0
        view(buf, size)[:] = 0x5A
        assert s.put_from("before-restart", buf, size) == 0
        real.stop()
        real.start()
        # The first call finds the old connection broken, reconnects and hands the pool
        # over again; the pool's bytes never left this process.
        assert s.put_from("after-restart", buf, size) == 0
        out = s.alloc_from_mem_pool(size)
        assert s.get_into("after-restart", out, size) == size
        assert bytes(view(out, size)) == b"\x5a" * size
        assert s.health_check() == 0
    finally:
        s.remove_all(force=True)
        s.close()


def test_a_real_client_that_stays_down_gives_rpc_fail(real):
    s = dummy(real)
    try:
        real.stop()
        # Each call keeps trying for the reconnect window, then gives up with RPC_FAIL.
        assert s.put("k", b"v") == -900
        assert "mooncake_client" in s.last_error()
        assert s.health_check() == 2
    finally:
        s.close()


def test_bad_input(real):
    s = MooncakeDistributedStore()
    # Nobody serves this port: a clear -1 at once, not a hang.
    assert s.setup_dummy(POOL, 0, f"127.0.0.1:{free_port()}") == -1
    assert "mooncake_client" in s.last_error()
    assert s.setup_dummy(POOL, 0, "no-port-here") == -1
    assert s.alloc_from_mem_pool(4096) == 0  # not a dummy
    s = dummy(real, pool=1 << 20)
    try:
        outside = np.zeros(4096, dtype=np.uint8)
        assert s.register_buffer(outside.ctypes.data, 4096) == -1
        assert "pool" in s.last_error()
        inside = s.alloc_from_mem_pool(4096)
        assert s.register_buffer(inside, 1 << 21) == -1  # runs past the pool's end
        assert s.alloc_from_mem_pool(2 << 20) == 0  # more than the pool holds
        assert s.alloc_from_mem_pool(0) == 0
        assert s.setup_dummy(POOL, 0, real.addr) != 0  # already set up
        # A method the dummy does not forward says so instead of failing silently.
        assert s.get_replica_desc("ok-after-bad-input") == []
        assert "dummy client" in s.last_error()
        assert s.put("ok-after-bad-input", b"x") == 0
    finally:
        s.remove_all(force=True)
        s.close()
