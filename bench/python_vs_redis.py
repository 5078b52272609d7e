#!/usr/bin/env python3
"""The yardstick of issue 13: the same put/get loop through Python, against mooncake-rs
(mooncake_rs.store) and against a Redis server (redis-py SET/GET, MSET/MGET for batches),
interleaved in one run on one machine.

Cases per value size: single put / get, and batches of ``--batch`` (put_batch / get_batch
against MSET / MGET). Every value read back is checked; only the store calls are timed.
Prints ops/s per case and system, then ours / Redis.

    target/py/bin/pip install ./python redis    # release build of the extension, redis-py
    cargo build --release --bins
    target/py/bin/python bench/python_vs_redis.py

Both run on loopback: one master and one store node of ours, one redis-server (no
persistence). Redis is a single-threaded server answering in one round trip; ours costs
the round trips described in docs/why-fast-path.md.
"""

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from python_bench import FourCalls, LocalCluster, add_loop_args, compare, free_port, run_calls  # noqa: E402

try:
    import redis
except ImportError:
    sys.exit("redis-py is missing: target/py/bin/pip install redis")

from mooncake_rs.store import MooncakeDistributedStore  # noqa: E402


class RedisServer:
    """A redis-server on a free loopback port, without persistence, stopped on exit."""

    def __init__(self):
        exe = shutil.which("redis-server")
        if not exe:
            sys.exit("redis-server is missing: run scripts/setup.sh")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    sys.exit("redis-server did not start")
                time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Redis:
    """redis-py behind the same four calls."""

    def __init__(self, client):
        self.r = client

    def put(self, k, v):
        assert self.r.set(k, v)

    def get(self, k):
        return self.r.get(k)

    def put_batch(self, ks, vs):
        assert self.r.mset(dict(zip(ks, vs)))

    def get_batch(self, ks):
        return self.r.mget(ks)

    def clear(self):
        self.r.flushall()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_loop_args(ap, "of the local store node")
    args = ap.parse_args()

    cluster = LocalCluster(args.bin_dir, args.segment_size)
    server = RedisServer()
    store = MooncakeDistributedStore()
    try:
        rc = store.setup("127.0.0.1", "P2PHANDSHAKE", 0, 64 << 20, "tcp", "", cluster.master)
        if rc != 0:
            sys.exit(f"setup failed: {rc}")
        systems = {"ours": FourCalls(store), "redis": Redis(server.client)}
        compare(args, "redis", lambda name, size, ws, tag: run_calls(
            systems[name], size, ws, args.batch, args.duration, tag))
    finally:
        store.close()
        server.stop()
        cluster.stop()


if __name__ == "__main__":
    main()
