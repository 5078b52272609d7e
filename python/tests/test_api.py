"""Every method of MooncakeDistributedStore against a live master and store node: what it
returns on success and on each error."""

import pytest

from mooncake_rs.store import (
    ErrorCode,
    MooncakeDistributedStore,
    ReplicaStatus,
    ReplicateConfig,
    SoftPinAction,
)

INVALID = int(ErrorCode.INVALID_PARAMS)
NOT_FOUND = int(ErrorCode.OBJECT_NOT_FOUND)


def test_error_codes_match_mooncake():
    assert ErrorCode.OBJECT_NOT_FOUND == -704
    assert ErrorCode.INVALID_PARAMS == -600
    assert ErrorCode.NO_AVAILABLE_HANDLE == -200
    assert ErrorCode.OBJECT_HAS_LEASE == -706
    from mooncake_rs import store

    assert store.OBJECT_ALREADY_EXISTS == -705


def test_put_get_round_trip(store):
    assert store.put("k1", b"hello") == 0
    assert store.get("k1") == b"hello"
    value = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 B
    assert store.put("k2", value) == 0
    assert store.get("k2") == value
    assert store.get_size("k2") == len(value)


def test_get_missing_returns_empty_bytes(store):
    assert store.get("never-put") == b""
    assert store.get_size("never-put") == NOT_FOUND
    assert store.is_exist("never-put") == 0
    assert store.get_buffer("never-put") is None


def test_put_existing_key_keeps_old_value(store):
    assert store.put("dup", b"old") == 0
    assert store.put("dup", b"new") == 0
    assert store.get("dup") == b"old"
    # Mooncake's shape: one code for the whole batch.
    assert store.put_batch(["dup", "fresh"], [b"x", b"y"]) == 0
    assert store.get_batch(["dup", "fresh"]) == [b"old", b"y"]


def test_put_accepts_buffer_objects(store):
    assert store.put("ba", bytearray(b"abc")) == 0
    assert store.put("mv", memoryview(b"0123456789")[2:5]) == 0
    assert store.get("ba") == b"abc"
    assert store.get("mv") == b"234"
    with pytest.raises(TypeError):
        store.put("bad", "a str is not bytes")


def test_invalid_puts(store):
    assert store.put("empty", b"") == INVALID
    assert store.put("x" * 5000, b"v") == INVALID
    assert store.put("", b"v") == INVALID
    assert store.put("rz", b"v", ReplicateConfig(replica_num=0)) == INVALID
    cfg = ReplicateConfig()
    cfg.replica_num = 17
    assert store.put("r17", b"v", cfg) == INVALID
    assert store.is_exist("rz") == 0
    assert store.put_batch(["a", "b"], [b"1"]) == INVALID
    # One bad key fails the batch with its code; the others are written.
    assert store.put_batch(["pb-ok", ""], [b"1", b"2"]) == INVALID
    assert store.get("pb-ok") == b"1"


def test_put_parts_concatenates(store):
    assert store.put_parts("parts", b"ab", bytearray(b"cd"), memoryview(b"ef")) == 0
    assert store.get("parts") == b"abcdef"
    assert store.upsert_parts("parts", b"x", b"y") == 0
    assert store.get("parts") == b"xy"


def test_batch_calls(store):
    keys = [f"b{i}" for i in range(20)]
    vals = [bytes([i]) * (i * 1000 + 1) for i in range(20)]
    assert store.put_batch(keys, vals) == 0
    assert store.get_batch(keys) == vals
    assert store.batch_is_exist(keys + ["nope"]) == [1] * 20 + [0]
    bufs = store.batch_get_buffer(keys[:3] + ["nope"])
    assert [bytes(b) for b in bufs[:3]] == vals[:3]
    assert bufs[3] is None
    assert store.batch_remove(keys[:2] + ["nope"], force=True) == [0, 0, NOT_FOUND]
    assert store.get_batch(keys[:3]) == [b"", b"", vals[2]]


def test_get_buffer_exposes_bytes_without_copy(store):
    store.put("buf", b"0123456789")
    h = store.get_buffer("buf")
    assert len(h) == 10 and h.size() == 10 and h.ptr() != 0
    mv = memoryview(h)
    assert mv.readonly and bytes(mv) == b"0123456789"


def test_upsert_replaces(store):
    assert store.upsert("u", b"one") == 0
    assert store.upsert("u", b"two-two") == 0
    assert store.get("u") == b"two-two"
    assert store.upsert_batch(["u", "u2"], [b"3", b"4"]) == 0
    assert store.get_batch(["u", "u2"]) == [b"3", b"4"]


def test_remove_and_leases(store):
    store.put("leased", b"v")
    assert store.get("leased") == b"v"  # grants a read lease
    assert store.remove("leased") == ErrorCode.OBJECT_HAS_LEASE
    assert store.remove("leased", force=True) == 0
    assert store.remove("leased", force=True) == NOT_FOUND


def test_remove_by_regex_and_all(store):
    store.put_batch(["re-1", "re-2", "other"], [b"1", b"2", b"3"])
    assert store.remove_by_regex("^re-", force=True) == 2
    assert store.is_exist("other") == 1
    assert store.remove_by_regex("(", force=True) == INVALID
    assert store.remove_all(force=True) >= 1
    assert store.is_exist("other") == 0


def test_replica_desc(store):
    store.put("rd", b"x" * 5000)
    descs = store.get_replica_desc("rd")
    assert len(descs) == 1
    d = descs[0]
    assert d.status == ReplicaStatus.COMPLETE
    assert d.is_memory_replica() and not d.is_disk_replica()
    m = d.get_memory_descriptor()
    assert m.buffer_descriptor.size == 5000
    assert ":" in m.buffer_descriptor.transport_endpoint
    assert store.get_replica_desc("missing") == []
    both = store.batch_get_replica_desc(["rd", "missing"])
    assert list(both) == ["rd"] and len(both["rd"]) == 1


def test_replicate_config_fields_and_types():
    c = ReplicateConfig()
    assert c.replica_num == 1 and c.soft_pin_action == SoftPinAction.PRESERVE
    assert c.soft_pin_ttl_ms is None and not c.with_hard_pin
    c.preferred_segments = ["127.0.0.1"]
    c.soft_pin_action = SoftPinAction.ENABLE
    c.soft_pin_ttl_ms = 1000
    assert c.preferred_segments == ["127.0.0.1"]
    with pytest.raises(OverflowError):
        c.replica_num = -1
    with pytest.raises(TypeError):
        c.with_hard_pin = "yes"
    with pytest.raises(TypeError):
        c.soft_pin_action = 1
    assert "replica_num: 1" in str(ReplicateConfig())  # Mooncake's text form


def test_pins_and_preferences_are_accepted(store):
    cfg = ReplicateConfig()
    cfg.with_hard_pin = True
    cfg.prefer_alloc_in_same_node = True
    assert store.put("pinned", b"v", cfg) == 0
    soft = ReplicateConfig(soft_pin_action=SoftPinAction.ENABLE, soft_pin_ttl_ms=60_000)
    assert store.put("soft", b"v", soft) == 0
    bad = ReplicateConfig(preferred_segments=["no-such-host:1"])
    # An unknown preference is a hint: placement falls back to any segment.
    assert store.put("pref", b"v", bad) == 0
    assert store.get_batch(["pinned", "soft", "pref"]) == [b"v"] * 3


def test_health_hostname_and_close(cluster):
    from conftest import new_store

    s = new_store(cluster.master_addr, local_hostname="127.0.0.1:12345")
    assert s.health_check() == 0
    # As Mooncake: a local_hostname that names a port is this client's host:port.
    assert s.get_hostname() == "127.0.0.1:12345"
    assert s.close() == 0
    assert s.health_check() == 1
    assert s.put("k", b"v") == INVALID
    assert s.get("k") == b""
    assert s.close() == 0


def test_calls_before_setup():
    s = MooncakeDistributedStore()
    assert s.health_check() == 1
    assert s.get_hostname() == ""
    assert s.put("k", b"v") == INVALID
    assert s.get("k") == b""
    assert s.get_batch(["a"]) == [b""]
    assert s.is_exist("k") == INVALID
    assert s.get_size("k") == INVALID
    assert s.remove("k") == INVALID
    assert s.remove_all() == INVALID
    assert s.batch_remove(["a", "b"]) == [INVALID, INVALID]
    assert s.get_replica_desc("k") == []
    assert "setup" in s.last_error()
