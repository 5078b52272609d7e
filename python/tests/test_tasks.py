"""Copy and move tasks through Mooncake's API (create_copy_task, create_move_task,
query_task) against a live master and two store nodes: the node holding the source runs
the task, and the replica lands on the named segment."""

import time

import pytest

from conftest import Cluster, new_store
from mooncake_rs import store as mstore
from mooncake_rs.store import (
    ErrorCode,
    QueryTaskResponse,
    ReplicateConfig,
    TaskStatus,
    TaskType,
)


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("tasks"))
    try:
        c.start_master()
        c.start_node(size="64MB")
        c.start_node(size="64MB")
        yield c
    finally:
        c.stop()


@pytest.fixture
def client(two_nodes):
    s = new_store(two_nodes.master_addr)
    try:
        yield s
    finally:
        s.remove_all(force=True)
        s.close()


def put_on(s, key, value, segment):
    cfg = ReplicateConfig()
    cfg.preferred_segments = [segment]
    assert s.put(key, value, cfg) == 0
    assert replica_segments(s, key) == [segment]


def replica_segments(s, key):
    descs = s.get_replica_desc(key)
    return sorted(d.get_memory_descriptor().buffer_descriptor.transport_endpoint for d in descs)


def wait_finished(s, task_id):
    deadline = time.monotonic() + 60
    while True:
        resp, rc = s.query_task(task_id)
        assert rc == 0
        if resp.status in (TaskStatus.SUCCESS, TaskStatus.FAILED):
            return resp
        assert time.monotonic() < deadline, repr(resp)
        time.sleep(0.1)


def test_enums_and_module_names_are_mooncakes():
    assert int(TaskType.REPLICA_COPY) == 0 and int(TaskType.REPLICA_MOVE) == 1
    assert [int(x) for x in (TaskStatus.PENDING, TaskStatus.PROCESSING,
                             TaskStatus.FAILED, TaskStatus.SUCCESS)] == [0, 1, 2, 3]
    assert mstore.REPLICA_MOVE == TaskType.REPLICA_MOVE
    assert mstore.PENDING == TaskStatus.PENDING and mstore.SUCCESS == TaskStatus.SUCCESS
    assert ErrorCode.TASK_NOT_FOUND == -1400
    assert ErrorCode.TASK_PENDING_LIMIT_EXCEEDED == -1401


def test_a_copy_task_adds_a_replica_on_the_target(two_nodes, client):
    a, b = sorted(two_nodes.segments())
    value = bytes(range(256)) * 4096
    put_on(client, "copy-me", value, a)
    task_id, rc = client.create_copy_task("copy-me", [b])
    assert rc == 0 and isinstance(task_id, tuple) and len(task_id) == 2
    resp = wait_finished(client, task_id)
    assert isinstance(resp, QueryTaskResponse)
    assert resp.status == TaskStatus.SUCCESS, repr(resp)
    assert resp.type == TaskType.REPLICA_COPY and resp.id == task_id
    assert resp.created_at_ms_epoch <= resp.last_updated_at_ms_epoch
    assert resp.created_at_ms_epoch > 1_600_000_000_000
    assert "QueryTaskResponse(id=" in repr(resp)
    assert replica_segments(client, "copy-me") == [a, b]
    assert client.get("copy-me") == value


def test_a_move_task_leaves_the_source_empty(two_nodes, client):
    a, b = sorted(two_nodes.segments())
    value = b"m" * (3 << 20)
    put_on(client, "move-me", value, b)
    task_id, rc = client.create_move_task("move-me", b, a)
    assert rc == 0
    resp = wait_finished(client, task_id)
    assert resp.status == TaskStatus.SUCCESS, repr(resp)
    assert resp.type == TaskType.REPLICA_MOVE
    assert replica_segments(client, "move-me") == [a]
    assert client.get("move-me") == value


def test_bad_tasks_return_mooncakes_codes(two_nodes, client):
    a, b = sorted(two_nodes.segments())
    put_on(client, "k", b"v", a)
    assert client.create_copy_task("missing", [b]) == ((0, 0), ErrorCode.OBJECT_NOT_FOUND)
    assert client.create_copy_task("k", ["nowhere:1"])[1] == ErrorCode.INVALID_PARAMS
    assert client.create_copy_task("k", [])[1] == ErrorCode.INVALID_PARAMS
    assert client.create_move_task("k", a, a)[1] == ErrorCode.INVALID_PARAMS
    assert client.create_move_task("k", b, a)[1] == ErrorCode.INVALID_PARAMS
    assert client.query_task((1, 2)) == (None, ErrorCode.TASK_NOT_FOUND)


def test_batch_replica_clear_takes_only_the_callers_unleased_objects(two_nodes, client):
    a, b = sorted(two_nodes.segments())
    other = new_store(two_nodes.master_addr)
    try:
        for k in ("c1", "c2", "c3", "leased"):
            put_on(client, k, b"x" * 100, a)  # put_on reads the replica list: a lease
        time.sleep(5.5)  # the default 5 s read lease runs out
        assert other.batch_replica_clear(["c1"]) == [], "another client's object stays"
        # A fresh lease (asked of the master; a get served from the client's location cache
        # reaches the master only with the node's next hit report).
        assert replica_segments(client, "leased") == [a]
        assert client.batch_replica_clear(["c1", "leased", "nope"]) == ["c1"]
        assert client.batch_replica_clear(["c2"], b) == [], "no replica on that segment"
        assert client.batch_replica_clear(["c2", "c3"], a) == ["c2", "c3"]
        for k in ("c1", "c2", "c3"):
            assert client.get(k) == b""
        assert client.get("leased") == b"x" * 100
    finally:
        other.close()
