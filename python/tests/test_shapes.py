"""Shapes as Mooncake's: ReplicateConfig's fields and text, enums' name/value, replica
descriptors, segments mounted at run time, init_all and bind_to_numa_node."""

import os

import pytest

from conftest import new_store, run_python
from mooncake_rs import store as mstore
from mooncake_rs.store import (
    ErrorCode,
    MooncakeDistributedStore,
    ObjectDataType,
    ReplicateConfig,
    SoftPinAction,
)

INVALID = int(ErrorCode.INVALID_PARAMS)


def test_replicate_config_fields_and_text():
    c = ReplicateConfig()
    # Mooncake 0.3.13's defaults and its str() text, field for field.
    assert str(c) == (
        "ReplicateConfig: { replica_num: 1, nof_replica_num: 0, dfs_replica_num: 0, "
        "soft_pin_action: PRESERVE, soft_pin_ttl_ms: default, with_hard_pin: 0, "
        "preferred_segments: [], preferred_nof_segments: [], prefer_alloc_in_same_node: 0, "
        "data_type: UNKNOWN }"
    )
    assert (c.nof_replica_num, c.dfs_replica_num, c.preferred_nof_segments) == (0, 0, [])
    assert c.data_type == ObjectDataType.UNKNOWN and c.group_ids is None
    assert c.soft_pin_ttl_ms is None  # unset: the master's default
    c.soft_pin_action = SoftPinAction.ENABLE
    c.soft_pin_ttl_ms = 2500
    c.preferred_segments = ["h:1", "h:2"]
    c.preferred_segment = "h:3"
    c.data_type = ObjectDataType.KVCACHE
    c.group_ids = ["g1"]
    assert str(c) == (
        "ReplicateConfig: { replica_num: 1, nof_replica_num: 0, dfs_replica_num: 0, "
        "soft_pin_action: ENABLE, soft_pin_ttl_ms: 2500, with_hard_pin: 0, "
        "preferred_segments: [h:1, h:2], preferred_segment (deprecated): h:3, "
        "preferred_nof_segments: [], prefer_alloc_in_same_node: 0, data_type: KVCACHE, "
        "group_ids: [g1] }"
    )
    c.soft_pin_ttl_ms = None
    assert "soft_pin_ttl_ms: default" in str(c)
    with pytest.raises(OverflowError):
        c.soft_pin_ttl_ms = -1


def test_enums_have_name_and_value():
    assert (SoftPinAction.ENABLE.name, SoftPinAction.ENABLE.value) == ("ENABLE", 1)
    assert (ObjectDataType.GENERAL.name, int(ObjectDataType.GENERAL.value)) == ("GENERAL", 9)
    assert mstore.COMPLETE == mstore.ReplicaStatus.COMPLETE and mstore.KVCACHE.value == 1


def test_tiers_this_build_lacks_are_refused(store):
    c = ReplicateConfig()
    c.nof_replica_num = 1
    assert store.put("nof", b"v", c) == INVALID
    assert "NVMe-oF" in store.last_error()
    c = ReplicateConfig(preferred_nof_segments=["nof:1"])
    assert store.put("nof", b"v", c) == INVALID
    c = ReplicateConfig(data_type=ObjectDataType.TENSOR)
    assert store.put("typed", b"v", c) == 0


def test_disk_descriptor_of_a_memory_replica(store):
    assert store.put("mem", b"v") == 0
    (r,) = store.get_replica_desc("mem")
    assert r.is_memory_replica() and not r.is_disk_replica()
    with pytest.raises(RuntimeError, match="not a disk replica"):
        r.get_disk_descriptor()
    d = mstore.DiskDescriptor()
    d.file_path, d.object_size = "/x", 3
    assert (d.file_path, d.object_size) == ("/x", 3)


def test_segments_mounted_at_run_time(cluster, tmp_path):
    s = new_store(cluster.master_addr, global_segment_size=16 << 20)
    try:
        before = set(cluster.segments())
        r = s.allocate_and_mount_segment(16 << 20)
        assert r["ret"] == 0 and r["allocated_size"] >= 16 << 20, s.last_error()
        (seg,) = r["segment_ids"]
        added = set(cluster.segments()) - before
        assert len(added) == 1
        # The new segment takes puts that prefer it.
        cfg = ReplicateConfig(preferred_segment=added.pop())
        assert s.put("on-new-seg", b"x" * 1000, cfg) == 0
        assert s.unmount_and_free_segment([seg]) == 0
        assert set(cluster.segments()) == before
        assert s.unmount_and_free_segment([seg]) < 0  # already gone
        assert s.unmount_and_free_segment(["not-an-id"]) == INVALID
        # A shared-memory file the caller made.
        name = f"mc-test-{os.getpid()}"
        path = f"/dev/shm/{name}"
        with open(path, "wb") as f:
            f.truncate(32 << 20)
        try:
            r = s.mount_segment(path, 16 << 20, offset=0)
            assert r["ret"] == 0, s.last_error()
            assert len(cluster.segments()) == len(before) + 1
            assert s.unmount_segment(r["segment_ids"]) == 0
        finally:
            os.unlink(path)
        bad = s.mount_segment(str(tmp_path / "file"), 16 << 20)
        assert bad["ret"] == INVALID and bad["segment_ids"] == []
        assert s.allocate_and_mount_segment(16 << 20, protocol="rdma")["ret"] == INVALID
    finally:
        s.remove_all(force=True)
        s.close()


def test_segments_need_a_hosted_node(store):
    r = store.allocate_and_mount_segment(16 << 20)
    assert r["ret"] == INVALID and "global_segment_size" in store.last_error()


def test_init_all_uses_mooncakes_defaults():
    s = MooncakeDistributedStore()
    # Mooncake's init_all talks to the master at 127.0.0.1:50051; with none there it fails
    # like setup() does, naming that address.
    rc = s.init_all("tcp", "", 16 << 20)
    if rc == 0:
        s.close()
        pytest.skip("a master is listening on 127.0.0.1:50051")
    assert rc < 0 and "127.0.0.1:50051" in s.last_error()
    assert s.init_all("carrier-pigeon", "") == INVALID


def test_bind_to_numa_node():
    code = (
        "import os; from mooncake_rs.store import bind_to_numa_node\n"
        "os.sched_setaffinity(0, {0})\n"
        "bind_to_numa_node(0)\n"
        "print(sorted(os.sched_getaffinity(0)))\n"
        "bind_to_numa_node(999)\n"
    )
    if not os.path.exists("/sys/devices/system/node/node0/cpulist"):
        pytest.skip("no NUMA information in sysfs")
    p = run_python(code)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    want = []
    for part in open("/sys/devices/system/node/node0/cpulist").read().strip().split(","):
        a, _, b = part.partition("-")
        want.extend(range(int(a), int(b or a) + 1))
    assert out.strip() == str(sorted(want))
    assert "999" in err  # an unknown node warns, as Mooncake


def test_host_memory_allocator(store):
    import ctypes

    a = mstore.MooncakeHostMemAllocator()
    ptr = a.alloc(1 << 20)
    assert ptr != 0
    ctypes.memset(ptr, 0x5A, 1 << 20)
    assert store.put_from("host-mem", ptr, 1 << 20) == 0
    assert store.get("host-mem") == b"\x5a" * (1 << 20)
    assert a.free(ptr) == 0
    assert a.free(ptr) == -1  # freed once only
    # The C functions Mooncake hands out by address.
    c_alloc = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t)(mstore.get_alloc_func_addr())
    c_free = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(mstore.get_free_func_addr())
    p = c_alloc(8192)
    assert p
    ctypes.memset(p, 1, 8192)
    assert ctypes.string_at(p, 4) == b"\x01" * 4
    c_free(p)
    assert a.free(p) == -1  # c_free released it


def _arena_child(env_changes, code):
    import subprocess
    import sys

    env = dict(os.environ)
    for k in ("MC_MMAP_ARENA_POOL_SIZE", "MC_DISABLE_MMAP_ARENA", "MC_STORE_USE_HUGEPAGE"):
        env.pop(k, None)
    env.update(env_changes)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


ARENA_PROBE = (
    "from mooncake_rs.store import MooncakeHostMemAllocator\n"
    "a = MooncakeHostMemAllocator()\n"
    "p, q = a.alloc(1 << 20), a.alloc(1 << 20)\n"
    "maps = [l for l in open('/proc/self/maps') if 'mc-client-arena' in l]\n"
    "print(len(maps))\n"
    "if maps:\n"
    "    lo, hi = (int(x, 16) for x in maps[0].split()[0].split('-'))\n"
    "    print(hi - lo, lo <= p < hi and lo <= q < hi, abs(q - p))\n"
    "    a.free(p)\n"
    "    print(a.alloc(1 << 20) == p)\n"
)


def test_host_memory_comes_from_the_mmap_arena():
    # MC_MMAP_ARENA_POOL_SIZE: one 8 MiB arena; buffers are adjacent slices of it, and a
    # freed slice is handed out again.
    got = _arena_child({"MC_MMAP_ARENA_POOL_SIZE": "8mb"}, ARENA_PROBE)
    assert got == ["1", str(8 << 20), "True", str(1 << 20), "True"]
    # MC_DISABLE_MMAP_ARENA=1: no arena, each buffer maps its own memory.
    got = _arena_child(
        {"MC_MMAP_ARENA_POOL_SIZE": "8mb", "MC_DISABLE_MMAP_ARENA": "1"}, ARENA_PROBE
    )
    assert got == ["0"]


def test_every_mooncake_error_code_has_its_name():
    E = ErrorCode
    # Codes this build returns, and codes of tiers it has not, all under Mooncake's values.
    assert (E.OBJECT_NOT_FOUND, E.INVALID_PARAMS, E.RPC_TIMEOUT) == (-704, -600, -901)
    assert (E.FILE_NOT_FOUND, E.TASK_NOT_FOUND, E.REPLICA_NOT_FOUND) == (-1100, -1400, -710)
    assert (E.NOT_SUPPORTED, E.ETCD_OPERATION_ERROR, E.TENANT_QUOTA_EXCEEDED) == (
        -1012, -1000, -1700,
    )
    assert mstore.FILE_NOT_FOUND == -1100
    # No two names share a value (IntEnum would make one an alias of the other).
    assert len({m.value for m in E.__members__.values()}) == len(E.__members__)
