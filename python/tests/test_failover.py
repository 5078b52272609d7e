"""Replica fallback: with replica_num=2 on two nodes, reads survive killing one node."""

import pytest

from conftest import Cluster, new_store
from mooncake_rs.store import ReplicateConfig


@pytest.fixture
def two_nodes(tmp_path):
    c = Cluster(tmp_path)
    try:
        c.start_master()
        c.start_node(host="127.0.0.2", size="128MB")
        c.start_node(host="127.0.0.3", size="128MB")
        yield c
    finally:
        c.stop()


def test_reads_fall_back_after_a_node_dies(two_nodes):
    s = new_store(two_nodes.master_addr)
    try:
        cfg = ReplicateConfig(replica_num=2)
        keys = [f"r{i}" for i in range(10)]
        vals = [bytes([i]) * (100_000 + i) for i in range(10)]
        assert s.put_batch(keys, vals, cfg) == 0
        for k in keys:
            descs = s.get_replica_desc(k)
            hosts = {d.get_memory_descriptor().buffer_descriptor.transport_endpoint.split(":")[0] for d in descs}
            assert hosts == {"127.0.0.2", "127.0.0.3"}, hosts
        two_nodes.kill_node(0)
        # every read now has to fall back to the surviving replica for about half the keys
        for _ in range(3):
            assert s.get_batch(keys) == vals
            assert [s.get(k) for k in keys] == vals
            out = bytearray(200_000)
            assert s.get_into(keys[0], out, len(out)) == len(vals[0])
            assert bytes(out[: len(vals[0])]) == vals[0]
    finally:
        s.close()
