#!/usr/bin/env python3
"""Throughput of the dummy client (``setup_dummy``: every call through a local
``mooncake_client``) next to a direct client of the same cluster, measured in the same run.

Cases per value size: put / get, put_batch / get_batch (values travel inline over the Unix
socket) and batch_put_from / batch_get_into from buffers of the shared pool
(``alloc_from_mem_pool``: only offsets travel, the real client moves the bytes). Every value
read back is checked; only the store calls are timed. Prints ops/s and GB/s per case for
both clients and the ratio dummy / direct.

    target/py/bin/pip install ./python          # release build of the extension
    cargo build --release --bins
    target/py/bin/python bench/python_dummy_bench.py
"""

import argparse
import ctypes
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from python_bench import REPO, LocalCluster, call, free_port, human, parse_size, timed  # noqa: E402

from mooncake_rs.store import MooncakeDistributedStore  # noqa: E402


#: Bytes of values one dummy request carries inline at most (its frame limit, less headers).
INLINE_LIMIT_BYTES = (256 << 20) - (1 << 20)


class RealClient:
    """A ``mooncake_client`` on a free port, hosting `segment` bytes, stopped on exit."""

    def __init__(self, bin_dir, master, segment):
        self.port = free_port()
        path = Path(bin_dir) / "mooncake_client"
        if not path.exists():
            sys.exit(f"{path} is missing: run `cargo build --release --bins` first")
        self.proc = subprocess.Popen(
            [str(path), "--host=127.0.0.1", f"--port={self.port}",
             f"--global_segment_size={segment}", f"--master_server_address={master}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    sys.exit(f"mooncake_client exited with {self.proc.returncode}")
                time.sleep(0.1)
        self.stop()
        sys.exit("mooncake_client not ready")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Buffers:
    """`count` buffers of `size` bytes: numpy arrays of their own (a direct client), or
    ranges of the dummy's shared pool."""

    def __init__(self, store, size, count, pooled):
        self.arrays = []
        for _ in range(count):
            if pooled:
                addr = store.alloc_from_mem_pool(size)
                if addr == 0:
                    sys.exit("the dummy's pool is full: raise --pool")
                a = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(addr))
            else:
                a = np.empty(size, dtype=np.uint8)
                assert store.register_buffer(a.ctypes.data, a.nbytes) == 0
            self.arrays.append(a)

    def ptrs(self):
        return [a.ctypes.data for a in self.arrays]


def run_size(store, bufs, size, working_set, batch, budget_s, tag):
    """The cases for one value size; `bufs` = (sources, destinations) kept across rounds."""
    n = max(batch, working_set // size)
    n -= n % batch
    keys = [f"{tag}-{size}-{i:08d}" for i in range(n)]
    srcs, outs = bufs
    distinct = len(srcs.arrays)
    raw = [a.tobytes() for a in srcs.arrays]
    res = {}

    def put1(i):
        rc, dt = call(store.put, keys[i], raw[i % distinct])
        assert rc == 0
        return 1, dt

    def get1(i):
        got, dt = call(store.get, keys[i])
        if got != raw[i % distinct]:
            sys.exit(f"wrong bytes for {keys[i]}")
        return 1, dt

    res["put"] = timed(put1, n, size, budget_s)
    res["get"] = timed(get1, res["put"][2], size, budget_s)
    store.remove_all(force=True)

    def putb(j):
        ks = keys[j * batch:(j + 1) * batch]
        rc, dt = call(store.put_batch, ks, [raw[(j * batch + k) % distinct] for k in range(batch)])
        assert rc == 0
        return batch, dt

    def getb(j):
        ks = keys[j * batch:(j + 1) * batch]
        got, dt = call(store.get_batch, ks)
        if any(g != raw[(j * batch + k) % distinct] for k, g in enumerate(got)):
            sys.exit(f"wrong bytes in batch {j}")
        return batch, dt

    # A dummy's inline values share one frame per request (256 MiB at most).
    if size * batch < INLINE_LIMIT_BYTES:
        res[f"put_batch({batch})"] = timed(putb, n, size, budget_s)
        res[f"get_batch({batch})"] = timed(getb, res[f"put_batch({batch})"][2], size, budget_s)
        store.remove_all(force=True)

    src_ptrs = [srcs.ptrs()[k % distinct] for k in range(batch)]
    out_ptrs = outs.ptrs()
    sizes = [size] * batch

    def put_from(j):
        rc, dt = call(store.batch_put_from, keys[j * batch:(j + 1) * batch], src_ptrs, sizes)
        assert rc == [0] * batch, rc
        return batch, dt

    def get_into(j):
        rc, dt = call(store.batch_get_into, keys[j * batch:(j + 1) * batch], out_ptrs, sizes)
        assert rc == sizes, rc
        for k in range(batch):
            if not np.array_equal(outs.arrays[k], srcs.arrays[k % distinct]):
                sys.exit(f"wrong bytes in batch {j}")
        return batch, dt

    res[f"batch_put_from({batch})"] = timed(put_from, n, size, budget_s)
    res[f"batch_get_into({batch})"] = timed(get_into, res[f"batch_put_from({batch})"][2], size, budget_s)
    store.remove_all(force=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4KB,64KB,1MB,16MB")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--bytes", default="256MB", help="working set per case")
    ap.add_argument("--duration", type=float, default=5, help="cap per phase, seconds (0 = none)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved direct / dummy rounds")
    ap.add_argument("--segment-size", default="2GB", help="of the store node and of the real client")
    ap.add_argument("--pool", default="1GB", help="the dummy's shared pool")
    ap.add_argument("--bin-dir", default=str(REPO / "target/release"))
    args = ap.parse_args()

    cluster = LocalCluster(args.bin_dir, args.segment_size)
    real = None
    stores = []
    try:
        real = RealClient(args.bin_dir, cluster.master, args.segment_size)
        direct = MooncakeDistributedStore()
        stores.append(direct)
        rc = direct.setup("127.0.0.1", "P2PHANDSHAKE", 0, 64 << 20, "tcp", "", cluster.master)
        if rc != 0:
            sys.exit(f"setup failed: {rc} {direct.last_error()}")
        dummy = MooncakeDistributedStore()
        stores.append(dummy)
        rc = dummy.setup_dummy(parse_size(args.pool), 0, f"127.0.0.1:{real.port}")
        if rc != 0:
            sys.exit(f"setup_dummy failed: {rc} {dummy.last_error()}")
        ws = parse_size(args.bytes)
        print(f"{'case':<22} {'size':>8} {'direct ops/s':>13} {'dummy ops/s':>12} {'dummy GB/s':>10} {'ratio':>6}"
              f"   (median of {args.repeat})")
        for size in map(parse_size, args.sizes.split(",")):
            rng = np.random.default_rng(size)
            bufs = {}
            for name, s, pooled in (("direct", direct, False), ("dummy", dummy, True)):
                srcs, outs = Buffers(s, size, 8, pooled), Buffers(s, size, args.batch, pooled)
                for a in srcs.arrays:
                    a[:] = rng.integers(0, 256, size, dtype=np.uint8)
                bufs[name] = (srcs, outs)
            rounds = {"direct": [], "dummy": []}
            for r in range(args.repeat):
                for name, s in (("direct", direct), ("dummy", dummy)):
                    rounds[name].append(run_size(s, bufs[name], size, ws, args.batch, args.duration, f"{name}{r}"))
            for case in rounds["direct"][0]:
                d = statistics.median(x[case][0] for x in rounds["direct"])
                m = statistics.median(x[case][0] for x in rounds["dummy"])
                g = statistics.median(x[case][1] for x in rounds["dummy"])
                print(f"{case:<22} {human(size):>8} {d:>13.0f} {m:>12.0f} {g:>10.3f} {m / d:>6.2f}")
            for a in bufs["direct"][0].arrays + bufs["direct"][1].arrays:
                direct.unregister_buffer(a.ctypes.data)
    finally:
        for s in stores:
            s.close()
        if real:
            real.stop()
        cluster.stop()


if __name__ == "__main__":
    main()
