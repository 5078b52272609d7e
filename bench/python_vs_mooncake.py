#!/usr/bin/env python3
"""The other yardstick of issue 13: the same put/get loop through the same Python calls,
against mooncake-rs (mooncake_rs.store, one master and one store node) and against
Mooncake's own wheel (mooncake.store from PyPI, its master with the HTTP metadata server,
the Python process holding the segment as Mooncake's clients do), interleaved in one run.

Mooncake's wheel lives in a virtualenv of its own (it installs a package named
``mooncake``); this script runs its side there, as a worker process it talks to over
stdin/stdout, one JSON line per case:

    python3 -m venv /tmp/pymc && /tmp/pymc/bin/pip install numpy mooncake-transfer-engine-non-cuda
    cargo build --release --bins
    target/py/bin/python bench/python_vs_mooncake.py --mooncake-python /tmp/pymc/bin/python

(`mooncake-transfer-engine`, the CUDA build, needs libcuda.so.1 at import.) Set
MC_STORE_MEMCPY=0 to make both clients move bytes over TCP even when the data is local.
"""

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from python_bench import FourCalls, LocalCluster, add_loop_args, compare, free_port, parse_size, run_calls  # noqa: E402


def mooncake_worker(args):
    """Runs in Mooncake's virtualenv: its master, a store set up on it, then one case per
    request line."""
    from mooncake.store import MooncakeDistributedStore

    bin_dir = Path(sys.executable).parent
    rpc, http, metrics = free_port(), free_port(), free_port()
    master = subprocess.Popen(
        [str(bin_dir / "mooncake_master"), f"--rpc_port={rpc}", f"--metrics_port={metrics}",
         "--enable_http_metadata_server=true", f"--http_metadata_server_port={http}",
         "--http_metadata_server_host=127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        store = MooncakeDistributedStore()
        deadline = time.monotonic() + 60
        while True:
            rc = store.setup("127.0.0.1", f"http://127.0.0.1:{http}/metadata",
                             parse_size(args.segment_size), 64 << 20, "tcp", "",
                             f"127.0.0.1:{rpc}")
            if rc == 0:
                break
            if time.monotonic() > deadline:
                sys.exit(f"Mooncake's setup failed: {rc}")
            time.sleep(0.5)
        sys_ = FourCalls(store)
        print("ready", flush=True)
        for line in sys.stdin:
            req = json.loads(line)
            res = run_calls(sys_, req["size"], req["bytes"], req["batch"], req["duration"], req["tag"])
            print(json.dumps(res), flush=True)
        store.close()
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(timeout=20)
        except subprocess.TimeoutExpired:
            master.kill()


class MooncakeSide:
    """The worker process, seen from the driver."""

    def __init__(self, python, segment_size):
        self.p = subprocess.Popen(
            [python, __file__, "--worker", "--segment-size", segment_size],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.p.stdout.readline().strip() != "ready":
            sys.exit("Mooncake's side did not start (see its messages above)")

    def run(self, **req):
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            sys.exit("Mooncake's side stopped")
        return json.loads(line)

    def stop(self):
        self.p.stdin.close()
        try:
            self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_loop_args(ap, "of our store node and of Mooncake's client")
    ap.add_argument("--mooncake-python", default="/tmp/pymc/bin/python",
                    help="the python of the virtualenv Mooncake's wheel is installed in")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return mooncake_worker(args)

    from mooncake_rs.store import MooncakeDistributedStore

    cluster = LocalCluster(args.bin_dir, args.segment_size)
    theirs = MooncakeSide(args.mooncake_python, args.segment_size)
    store = MooncakeDistributedStore()
    try:
        rc = store.setup("127.0.0.1", "P2PHANDSHAKE", 0, 64 << 20, "tcp", "", cluster.master)
        if rc != 0:
            sys.exit(f"setup failed: {rc}")
        ours = FourCalls(store)

        def run(name, size, ws, tag):
            if name == "ours":
                return run_calls(ours, size, ws, args.batch, args.duration, tag)
            return theirs.run(size=size, bytes=ws, batch=args.batch, duration=args.duration, tag=tag)

        compare(args, "wheel", run)
    finally:
        store.close()
        theirs.stop()
        cluster.stop()


if __name__ == "__main__":
    main()
