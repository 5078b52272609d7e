"""The SSD tier through the binding: a process that hosts a segment with
``enable_ssd_offload=True`` keeps SSD copies of its objects (the master runs with
``--enable_offload``), and ``get_replica_desc`` tells the kinds apart."""

import os
import shutil
import time

import pytest

from conftest import REPO, Cluster, new_store


@pytest.fixture
def offload_master(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("ssd"))
    try:
        c.start_master("--enable_offload")
        yield c
    finally:
        c.stop()


def ssd_dir(name):
    # Under the repository's target dir, on the disk: tmpfs refuses O_DIRECT.
    d = REPO / "target" / "tmp" / f"py-ssd-{name}-{os.getpid()}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def test_a_hosted_node_keeps_ssd_copies(offload_master):
    d = ssd_dir("hosted")
    s = new_store(
        offload_master.master_addr,
        global_segment_size=32 << 20,
        enable_ssd_offload=True,
        ssd_offload_path=str(d),
    )
    try:
        value = bytes(range(256)) * 1024
        assert s.put("on-ssd", value) == 0
        deadline = time.monotonic() + 30
        while not any(r.is_local_disk_replica() for r in s.get_replica_desc("on-ssd")):
            assert time.monotonic() < deadline, s.get_replica_desc("on-ssd")
            time.sleep(0.05)
        kinds = [(r.is_memory_replica(), r.is_local_disk_replica()) for r in s.get_replica_desc("on-ssd")]
        assert sorted(kinds) == [(False, True), (True, False)]
        assert not any(r.is_disk_replica() for r in s.get_replica_desc("on-ssd"))
        assert s.get("on-ssd") == value
        assert s.get_offload_rpc_read_count() == 0, "served from memory"
        assert any(p.name.endswith(".rec") for p in (d / "shard-0").iterdir())
        assert any(n.endswith("#ssd") for n in offload_master.segments())
        assert s.unmount_local_disk_segment() == 0
        assert not any(n.endswith("#ssd") for n in offload_master.segments())
        kinds = [r.is_local_disk_replica() for r in s.get_replica_desc("on-ssd")]
        assert kinds == [False], "the master forgot the SSD copy"
        assert s.get("on-ssd") == value
        assert s.unmount_local_disk_segment() == 0, "nothing left to unmount"
        s.remove_all(force=True)
    finally:
        assert s.close() == 0
        shutil.rmtree(d, ignore_errors=True)


def test_ssd_offload_needs_a_hosted_segment_and_a_path(offload_master):
    from mooncake_rs.store import MooncakeDistributedStore

    s = MooncakeDistributedStore()
    args = dict(
        local_hostname="127.0.0.1",
        metadata_server="P2PHANDSHAKE",
        local_buffer_size=16 << 20,
        protocol="tcp",
        rdma_devices="",
        master_server_addr=offload_master.master_addr,
        enable_ssd_offload=True,
    )
    assert s.setup(global_segment_size=0, ssd_offload_path="/x", **args) != 0
    assert "global_segment_size" in s.last_error()
    os.environ.pop("MOONCAKE_OFFLOAD_FILE_STORAGE_PATH", None)
    assert s.setup(global_segment_size=32 << 20, **args) != 0
    assert "ssd_offload_path" in s.last_error()
