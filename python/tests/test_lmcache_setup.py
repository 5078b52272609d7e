"""setup() as LMCache's Mooncake connector drives it.

LMCache (torch, vLLM) is too heavy to install here, so the dicts its connector passes to
``store.setup(dict)`` are replayed: ``fixtures/lmcache_setup_dicts.json`` holds what
LMCache's own ``MooncakeStoreConfig._build_setup_dict`` made of typical ``extra_config``
sections (``fixtures/gen_lmcache_setup_dicts.py`` says how, and which LMCache version).
After setup the connector's calls follow: ``get_hostname()`` as the preferred segment,
``register_buffer``, ``batch_put_from``, ``batch_get_into``, ``is_exist``.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from mooncake_rs.store import ErrorCode, MooncakeDistributedStore, ReplicateConfig

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "lmcache_setup_dicts.json").read_text())
INVALID = int(ErrorCode.INVALID_PARAMS)


def setup_dict(name, master):
    d = FIXTURE["setup_dicts"][name]
    return {k: v.replace("{master}", master) for k, v in d.items()}


def connector_round_trip(store, prefer_local):
    """What LMCache's connector does after setup: a ReplicateConfig with the local segment
    preferred, a registered CPU buffer, zero-copy batch put and get."""
    cfg = ReplicateConfig()
    cfg.replica_num = 1
    if prefer_local:
        cfg.preferred_segment = store.get_hostname()
    pool = np.zeros(4 << 20, dtype=np.uint8)
    assert store.register_buffer(pool.ctypes.data, pool.nbytes) == 0
    chunk = 256 << 10
    keys = [f"lmc-chunk-{i}" for i in range(4)]
    for i in range(4):
        pool[i * chunk : (i + 1) * chunk] = i + 1
    ptrs = [pool.ctypes.data + i * chunk for i in range(4)]
    assert store.batch_put_from(keys, ptrs, [chunk] * 4, cfg) == [0] * 4
    assert all(store.is_exist(k) == 1 for k in keys)
    out = np.zeros(4 * chunk, dtype=np.uint8)
    outs = [out.ctypes.data + i * chunk for i in range(4)]
    assert store.batch_get_into(keys, outs, [chunk] * 4) == [chunk] * 4
    assert np.array_equal(out, pool[: 4 * chunk])
    assert store.unregister_buffer(pool.ctypes.data) == 0
    return keys


def test_fixture_comes_from_lmcache():
    assert FIXTURE["lmcache_version"].startswith("0.")
    both = FIXTURE["setup_dicts"]["prefixed_and_legacy"]
    # The case of the issue: both spellings of the master address and of the devices.
    assert {"master_server_addr", "master_server_address", "rdma_devices", "device_name"} <= set(
        both
    )


@pytest.mark.parametrize("name", ["legacy_keys", "prefixed_only"])
def test_pure_client_dicts(cluster, name):
    s = MooncakeDistributedStore()
    assert s.setup(setup_dict(name, cluster.master_addr)) == 0, s.last_error()
    try:
        keys = connector_round_trip(s, prefer_local=False)
        assert s.batch_remove(keys, force=True) == [0] * len(keys)
    finally:
        s.close()


def test_both_spellings_and_unknown_key(cluster, capfd):
    s = MooncakeDistributedStore()
    d = setup_dict("prefixed_and_legacy", cluster.master_addr)
    d["lmcache_extra_knob"] = "1"  # a key nobody reads: accepted, with a warning
    assert s.setup(d) == 0, s.last_error()
    try:
        assert "lmcache_extra_knob" in capfd.readouterr().err
        # The dict asks for a hosted segment: get_hostname() names it, and a put that
        # prefers it lands there.
        host = s.get_hostname()
        assert host.startswith("127.0.0.1:") and host in cluster.segments()
        keys = connector_round_trip(s, prefer_local=True)
        ends = [
            r.get_memory_descriptor().buffer_descriptor.transport_endpoint
            for k in keys
            for r in s.get_replica_desc(k)
        ]
        assert ends == [host] * len(keys)
        s.batch_remove(keys, force=True)
    finally:
        s.close()


def test_conflicting_spellings_fail_loudly(cluster, capfd):
    s = MooncakeDistributedStore()
    rc = s.setup(setup_dict("conflicting_master", cluster.master_addr))
    assert rc == INVALID
    err = capfd.readouterr().err
    assert "ERROR" in err and "master_server_address" in err and "127.0.0.1:1" in err
    # LMCache ignores the code: every later call must say that setup failed, and why.
    assert s.put("after-failed-setup", b"v") == INVALID
    assert "setup() failed" in s.last_error() and "master_server_address" in s.last_error()
    # Fixing the dict makes the object usable.
    good = setup_dict("conflicting_master", cluster.master_addr)
    del good["master_server_address"]
    assert s.setup(good) == 0
    assert s.put("after-failed-setup", b"v") == 0
    assert s.last_error() == ""
    s.remove_all(force=True)
    s.close()


def test_string_bools_and_sizes(cluster):
    s = MooncakeDistributedStore()
    d = setup_dict("prefixed_only", cluster.master_addr)
    assert d["enable_ssd_offload"] == "False"
    assert s.setup(d) == 0, s.last_error()
    s.close()
    assert s.setup(dict(d, enable_ssd_offload="true")) == INVALID
    assert "ssd" in s.last_error()
    assert s.setup(dict(d, enable_ssd_offload="maybe")) == INVALID
