#!/usr/bin/env python3
"""Throughput of the Python binding (mooncake_rs.store) against store nodes in other
processes, next to mc-bench's figures for the same cases measured in the same run.

Cases per value size: single put / get, put_batch / get_batch, zero-copy
batch_put_from / batch_get_into from registered numpy buffers, and range reads of the
second half of each value (get_into_ranges, and get-session ranged reads timed without
the session's start). Every value read back is
checked; as in mc-bench, only the store calls are timed. Prints ops/s and GB/s per case, then the ratio of Python to mc-bench (Rust client)
for the single put and get cases.

    target/py/bin/pip install ./python          # release build of the extension
    cargo build --release --bins
    target/py/bin/python bench/python_bench.py  # starts a master and a store node itself

``--master host:port`` benchmarks a running cluster instead (no mc-bench comparison then
unless ``--mc-bench`` names the binary).
"""

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
UNITS = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def parse_size(s):
    s = s.strip().upper()
    for u, m in UNITS.items():
        if s.endswith(u):
            return int(float(s[: -len(u)]) * m)
    return int(s)


def human(n):
    for u, m in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= m and n % m == 0:
            return f"{n // m} {u}"
    return f"{n} B"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """A master and one store node from target/release, stopped on exit."""

    def __init__(self, bin_dir, segment_size):
        self.procs = []
        rpc, metrics, rest = free_port(), free_port(), free_port()
        self.master = f"127.0.0.1:{rpc}"
        self._start([f"{bin_dir}/mooncake_master", f"--rpc_port={rpc}", "--rpc_address=127.0.0.1", f"--metrics_port={metrics}"])
        self._wait(f"http://127.0.0.1:{metrics}/health", lambda b: b.get("status") == "ok")
        self._start([
            f"{bin_dir}/mooncake_store", f"--master_server={self.master}", "--local_hostname=127.0.0.1",
            f"--global_segment_size={segment_size}", "--data_port=0", f"--port={rest}",
        ])
        self._wait(f"http://127.0.0.1:{rest}/health", lambda b: b.get("mounted_segments", 0) > 0)

    def _start(self, args):
        if not Path(args[0]).exists():
            sys.exit(f"{args[0]} is missing: run `cargo build --release --bins` first")
        self.procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def _wait(self, url, ok):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if ok(json.loads(r.read())):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        sys.exit(f"{url} not ready")

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def timed(fn, n_keys, nbytes_per_key, budget_s):
    """Runs fn(i) for i in 0.. until n_keys keys are done or the budget is spent. fn returns
    (keys done, seconds spent in the store call); checking the bytes is not timed."""
    t0 = time.perf_counter()
    done, busy, i = 0, 0.0, 0
    while done < n_keys:
        keys, dt = fn(i)
        done += keys
        busy += dt
        i += 1
        if budget_s and time.perf_counter() - t0 > budget_s:
            break
    return done / busy, done * nbytes_per_key / busy / 1e9, done


def call(f, *args):
    """(result of f(*args), seconds it took)."""
    t = time.perf_counter()
    r = f(*args)
    return r, time.perf_counter() - t


def run_size(store, size, working_set, batch, budget_s, tag):
    n = max(batch, working_set // size)
    n -= n % batch
    keys = [f"{tag}-{size}-{i:08d}" for i in range(n)]
    rng = np.random.default_rng(size)
    distinct = 8
    vals = [rng.integers(0, 256, size, dtype=np.uint8) for _ in range(distinct)]
    raw = [v.tobytes() for v in vals]
    res = {}

    def check(i, got):
        if got != raw[i % distinct]:
            raise SystemExit(f"wrong bytes for key {keys[i]}")

    def put1(i):
        rc, dt = call(store.put, keys[i], raw[i % distinct])
        assert rc == 0
        return 1, dt

    def get1(i):
        got, dt = call(store.get, keys[i])
        check(i, got)
        return 1, dt

    res["put"] = timed(put1, n, size, budget_s)
    res["get"] = timed(get1, res["put"][2], size, budget_s)
    store.remove_all(force=True)

    def putb(j):
        ks = keys[j * batch:(j + 1) * batch]
        vs = [raw[(j * batch + k) % distinct] for k in range(batch)]
        rc, dt = call(store.put_batch, ks, vs)
        assert rc == 0  # Mooncake's shape: one code for the batch
        return batch, dt

    def getb(j):
        got, dt = call(store.get_batch, keys[j * batch:(j + 1) * batch])
        for k, g in enumerate(got):
            check(j * batch + k, g)
        return batch, dt

    res[f"put_batch({batch})"] = timed(putb, n, size, budget_s)
    res[f"get_batch({batch})"] = timed(getb, res[f"put_batch({batch})"][2], size, budget_s)
    store.remove_all(force=True)

    # Destination buffers are reused across calls, as a connector's KV blocks are; touch
    # them first so the first call does not pay their page faults.
    outs = [np.zeros(size, dtype=np.uint8) for _ in range(batch)]
    for o in outs:
        o.fill(1)
    for a in vals + outs:
        store.register_buffer(a.ctypes.data, a.nbytes)
    src_ptrs = [vals[k % distinct].ctypes.data for k in range(batch)]
    out_ptrs = [o.ctypes.data for o in outs]
    sizes = [size] * batch

    def put_from(j):
        ks = keys[j * batch:(j + 1) * batch]
        rc, dt = call(store.batch_put_from, ks, src_ptrs, sizes)
        assert rc == [0] * batch
        return batch, dt

    def get_into(j):
        ks = keys[j * batch:(j + 1) * batch]
        rc, dt = call(store.batch_get_into, ks, out_ptrs, sizes)
        assert rc == sizes
        for k in range(batch):
            if not np.array_equal(outs[k], vals[k % distinct]):
                raise SystemExit(f"wrong bytes for key {ks[k]}")
        return batch, dt

    res[f"batch_put_from({batch})"] = timed(put_from, n, size, budget_s)
    written = res[f"batch_put_from({batch})"][2]
    res[f"batch_get_into({batch})"] = timed(get_into, written, size, budget_s)

    # Range reads: the second half of each object into the start of its buffer.
    half = size // 2

    def ranges(j):
        ks = keys[j * batch:(j + 1) * batch]
        rc, dt = call(store.get_into_ranges, out_ptrs, [[k] for k in ks],
                      [[[0]]] * batch, [[[half]]] * batch, [[[size - half]]] * batch)
        assert rc == [[[size - half]]] * batch, rc
        for k in range(batch):
            if not np.array_equal(outs[k][:size - half], vals[k % distinct][half:]):
                raise SystemExit(f"wrong bytes for key {ks[k]}")
        return batch, dt

    res[f"get_into_ranges({batch})"] = timed(ranges, written, size - half, budget_s)

    # A get session: one lookup per batch, then ranged reads with no master round trip.
    def session(j):
        ks = keys[j * batch:(j + 1) * batch]
        assert store.batch_get_session_start(ks) == [0] * batch
        rc, dt = call(store.batch_get_into_multi_buffer_ranges, ks,
                      [[p] for p in out_ptrs], [[size - half]] * batch, [[half]] * batch)
        store.batch_get_session_end(ks)
        assert rc == [size - half] * batch, rc
        return batch, dt

    res[f"session_ranges({batch})"] = timed(session, written, size - half, budget_s)
    store.remove_all(force=True)
    for a in vals + outs:
        store.unregister_buffer(a.ctypes.data)
    return res


class FourCalls:
    """A MooncakeDistributedStore (ours or Mooncake's: the same calls) behind the loop of
    run_calls."""

    def __init__(self, store):
        self.s = store

    def put(self, k, v):
        assert self.s.put(k, v) == 0

    def get(self, k):
        return self.s.get(k)

    def put_batch(self, ks, vs):
        assert self.s.put_batch(ks, vs) == 0

    def get_batch(self, ks):
        return self.s.get_batch(ks)

    def clear(self):
        self.s.remove_all(force=True)


def run_calls(sys_, size, working_set, batch, budget_s, tag):
    """ops/s of single put / get and batch put / get of one size against one system (an
    object with put, get, put_batch, get_batch and clear). Every value read back is
    checked, outside the timed calls."""
    n = max(batch, working_set // size)
    n -= n % batch
    keys = [f"{tag}-{size}-{i:08d}" for i in range(n)]
    rng = np.random.default_rng(size)
    raw = [rng.integers(0, 256, size, dtype=np.uint8).tobytes() for _ in range(8)]

    def check(i, got):
        if got != raw[i % 8]:
            raise SystemExit(f"wrong bytes for key {keys[i]}")

    def put1(i):
        return 1, call(sys_.put, keys[i], raw[i % 8])[1]

    def get1(i):
        got, dt = call(sys_.get, keys[i])
        check(i, got)
        return 1, dt

    def putb(j):
        ks = keys[j * batch:(j + 1) * batch]
        return batch, call(sys_.put_batch, ks, [raw[(j * batch + k) % 8] for k in range(batch)])[1]

    def getb(j):
        got, dt = call(sys_.get_batch, keys[j * batch:(j + 1) * batch])
        for k, g in enumerate(got):
            check(j * batch + k, g)
        return batch, dt

    res = {"put": timed(put1, n, size, budget_s)}
    res["get"] = timed(get1, res["put"][2], size, budget_s)
    sys_.clear()
    res[f"put_batch({batch})"] = timed(putb, n, size, budget_s)
    res[f"get_batch({batch})"] = timed(getb, res[f"put_batch({batch})"][2], size, budget_s)
    sys_.clear()
    return {case: r[0] for case, r in res.items()}


def add_loop_args(ap, segment_help):
    """The options every "ours against X" loop takes."""
    ap.add_argument("--sizes", default="4KB,64KB,1MB,16MB")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--bytes", default="256MB", help="working set per case")
    ap.add_argument("--duration", type=float, default=5, help="cap per phase, seconds (0 = none)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--segment-size", default="2GB", help=segment_help)
    ap.add_argument("--bin-dir", default=str(REPO / "target/release"))


def compare(args, other, run):
    """Runs every size's cases `args.repeat` times, ours and `other` in turn (run(name,
    size, tag) returns one run_calls result), and prints the medians and their ratio."""
    ws = parse_size(args.bytes)
    print(f"{'case':<16} {'size':>8} {'ours ops/s':>12} {other + ' ops/s':>12} {'ours/' + other:>11}"
          f"   (median of {args.repeat}, interleaved)")
    for size in map(parse_size, args.sizes.split(",")):
        rounds = {"ours": [], other: []}
        for r in range(args.repeat):
            for name in rounds:
                rounds[name].append(run(name, size, ws, f"r{r}"))
        for case in rounds["ours"][0]:
            a = statistics.median(x[case] for x in rounds["ours"])
            b = statistics.median(x[case] for x in rounds[other])
            print(f"{case:<16} {human(size):>8} {a:>12.0f} {b:>12.0f} {a / b:>10.2f}x")


def mc_bench(binary, master, size, working_set, budget_s):
    """mc-bench's put and get ops/s for this size at batch 1 (no ceiling)."""
    out = subprocess.run(
        [binary, "--master", master, "--sizes", str(size), "--batch", "1", "--repeat", "1",
         "--bytes", str(working_set), "--no-ceiling", "--json", "--duration", str(budget_s or 0)],
        check=True, capture_output=True, text=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["op"]: r["ops_per_s"] for r in rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--master", help="a running cluster's master host:port")
    ap.add_argument("--sizes", default="4KB,64KB,1MB,16MB")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--bytes", default="512MB", help="working set per case")
    ap.add_argument("--duration", type=float, default=10, help="cap per phase, seconds (0 = none)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved Python / mc-bench rounds")
    ap.add_argument("--segment-size", default="2GB", help="of the local store node")
    ap.add_argument("--mc-bench", default=str(REPO / "target/release/mc-bench"))
    ap.add_argument("--bin-dir", default=str(REPO / "target/release"))
    args = ap.parse_args()

    cluster = None if args.master else LocalCluster(args.bin_dir, args.segment_size)
    master = args.master or cluster.master
    compare = Path(args.mc_bench).exists()
    from mooncake_rs.store import MooncakeDistributedStore

    store = MooncakeDistributedStore()
    rc = store.setup("127.0.0.1", "P2PHANDSHAKE", 0, 64 << 20, "tcp", "", master)
    if rc != 0:
        sys.exit(f"setup failed: {rc} {store.last_error()}")
    ws = parse_size(args.bytes)
    try:
        print(f"{'case':<22} {'size':>8} {'ops/s':>12} {'GB/s':>8}   (median of {args.repeat})")
        for size in map(parse_size, args.sizes.split(",")):
            rounds, rust = [], []
            for r in range(args.repeat):
                rounds.append(run_size(store, size, ws, args.batch, args.duration, f"r{r}"))
                if compare:
                    rust.append(mc_bench(args.mc_bench, master, size, ws, args.duration))
            for case in rounds[0]:
                ops = statistics.median(x[case][0] for x in rounds)
                gbps = statistics.median(x[case][1] for x in rounds)
                print(f"{case:<22} {human(size):>8} {ops:>12.0f} {gbps:>8.3f}")
            for op in ("put", "get") if compare else ():
                py = statistics.median(x[op][0] for x in rounds)
                rs = statistics.median(x[op] for x in rust)
                print(f"  python/{op} vs mc-bench {op} (batch 1, {human(size)}): "
                      f"{py:.0f} vs {rs:.0f} ops/s = {py / rs:.2f}x")
    finally:
        store.close()
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    main()
