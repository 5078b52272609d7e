"""Embedded mode: a Python process hosting a segment (global_segment_size > 0) serves a
pure client in another process; the master has no other store node."""

import textwrap


from conftest import new_store, run_python
from mooncake_rs.store import ErrorCode

HOST = textwrap.dedent(
    """
    import sys
    from mooncake_rs.store import MooncakeDistributedStore
    s = MooncakeDistributedStore()
    rc = s.setup("127.0.0.1", "P2PHANDSHAKE", "64MB", "16MB", "tcp", "", sys.argv[1])
    if rc != 0:
        print("SETUP", rc, s.last_error(), flush=True)
        sys.exit(1)
    assert s.put("from-host", b"hosted bytes" * 1000) == 0
    print("READY", flush=True)
    sys.stdin.readline()          # until the test says stop
    print("GOT", s.get("from-client") == b"client bytes" * 500, flush=True)
    s.close()
    print("CLOSED", flush=True)
    """
)


def test_hosted_segment_serves_another_process(bare_master):
    host = run_python(HOST, bare_master.master_addr)
    try:
        line = host.stdout.readline()
        assert line.startswith("READY"), line + host.stderr.read()
        client = new_store(bare_master.master_addr)
        try:
            assert client.get("from-host") == b"hosted bytes" * 1000
            # the only segment is the hosted one, so this put lands in the other process
            assert client.put("from-client", b"client bytes" * 500) == 0
            descs = client.get_replica_desc("from-client")
            assert len(descs) == 1
            host.stdin.write("stop\n")
            host.stdin.flush()
            assert host.stdout.readline().strip() == "GOT True"
            assert host.stdout.readline().strip() == "CLOSED"
            assert host.wait(timeout=60) == 0
            # the hosted segment left with its process: nothing is readable or placeable
            assert client.get("from-host") == b""
            assert client.put("after", b"x") == ErrorCode.NO_AVAILABLE_HANDLE
            assert bare_master.segments() == []
        finally:
            client.close()
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()


def test_embedded_in_this_process(bare_master):
    s = new_store(bare_master.master_addr, global_segment_size=32 << 20)
    try:
        assert len(bare_master.segments()) == 1
        assert s.put("self", b"v" * 100_000) == 0
        assert s.get("self") == b"v" * 100_000
        assert s.health_check() == 0
        s.remove_all(force=True)
    finally:
        assert s.close() == 0
    assert bare_master.segments() == []


def test_dropping_a_hosting_store_unmounts_its_segment(bare_master):
    import gc

    s = new_store(bare_master.master_addr, global_segment_size=32 << 20)
    assert len(bare_master.segments()) == 1
    del s
    gc.collect()
    assert bare_master.segments() == []


SHARED_ARENA = textwrap.dedent(
    """
    import sys
    from mooncake_rs.store import MooncakeDistributedStore, MooncakeHostMemAllocator
    s = MooncakeDistributedStore()
    rc = s.setup("127.0.0.1", "P2PHANDSHAKE", "32MB", "16MB", "tcp", "", sys.argv[1])
    assert rc == 0, s.last_error()
    r = s.allocate_and_mount_segment(16 << 20)
    assert r["ret"] == 0, s.last_error()
    buf = MooncakeHostMemAllocator().alloc(1 << 20)
    maps = open("/proc/self/maps").read()
    lines = [l for l in maps.splitlines() if "mc-client-arena" in l]
    lo, hi = (int(x, 16) for x in lines[0].split()[0].split("-"))
    print(len(lines), maps.count("memfd:mc-arena "), hi - lo, lo <= buf < hi, flush=True)
    s.close()
    """
)


def test_an_embedded_node_and_host_buffers_share_one_arena(bare_master):
    import os
    import subprocess
    import sys

    env = dict(os.environ, MC_MMAP_ARENA_POOL_SIZE="64mb")
    env.pop("MC_DISABLE_MMAP_ARENA", None)
    out = subprocess.run(
        [sys.executable, "-c", SHARED_ARENA, bare_master.master_addr],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    # One 64 MiB arena (the client's), none of the node's own; the mount and the buffer
    # are slices of it.
    assert out.stdout.split() == ["1", "0", str(64 << 20), "True"]
