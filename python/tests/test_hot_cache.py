"""The local hot cache seen from Python: ``hot_cache_stats()`` counts what the cache did,
and a value it serves is the value stored."""

import json
import textwrap

import pytest

from conftest import run_python
from mooncake_rs.store import MooncakeDistributedStore

# A client with the cache on (set before setup, which reads the variables) and TCP reads
# (same-host copies are never cached); prints its stats after a put and three gets.
READER = textwrap.dedent(
    """
    import json, os, sys
    os.environ.update({
        "MC_STORE_LOCAL_HOT_CACHE_SIZE": "8MB",
        "MC_STORE_LOCAL_HOT_BLOCK_SIZE": "64KB",
        "MC_STORE_LOCAL_HOT_ADMISSION_THRESHOLD": "1",
        "MC_STORE_MEMCPY": "0",
    })
    from mooncake_rs.store import MooncakeDistributedStore
    s = MooncakeDistributedStore()
    rc = s.setup("127.0.0.1", "P2PHANDSHAKE", 0, "16MB", "tcp", "", sys.argv[1])
    assert rc == 0, s.last_error()
    value = bytes(range(256)) * 1000
    assert s.put("hot-py", value) == 0
    same = all(s.get("hot-py") == value for _ in range(3))
    print(json.dumps({"same": same, "stats": s.hot_cache_stats()}), flush=True)
    s.remove("hot-py")
    s.close()
    """
)


def test_repeated_gets_are_served_from_the_cache_and_counted(cluster):
    p = run_python(READER, cluster.master_addr)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    s = got["stats"]
    assert got["same"], "a get returned other bytes"
    assert s["capacity_bytes"] == 8 << 20
    assert s["admitted"] == 1, s
    # The first get read over TCP and admitted the value; the next two were hits.
    assert s["hits"] == 2, s
    assert s["entries"] == 1 and s["used_bytes"] == 4 * 65536, s  # 256000 bytes in 64 KiB blocks
    assert s["corrupt"] == 0


def test_stats_are_zero_when_the_cache_is_off(store):
    assert store.put("cold-py", b"x" * 5000) == 0
    assert store.get("cold-py") == b"x" * 5000
    s = store.hot_cache_stats()
    assert set(s) == {
        "hits", "misses", "admitted", "evicted", "stale", "corrupt",
        "invalidated", "entries", "used_bytes", "capacity_bytes",
    }
    assert all(v == 0 for v in s.values()), s


def test_stats_before_setup_raise():
    with pytest.raises(RuntimeError, match="hot_cache_stats"):
        MooncakeDistributedStore().hot_cache_stats()
