"""Range reads, multi-buffer ranges, put_from_with_metadata and put/get sessions, with
Mooncake's shapes and per-range error codes."""

import numpy as np

from mooncake_rs.store import ErrorCode, ReplicateConfig

INVALID = int(ErrorCode.INVALID_PARAMS)
NOT_FOUND = int(ErrorCode.OBJECT_NOT_FOUND)
EXISTS = int(ErrorCode.OBJECT_ALREADY_EXISTS)
MB = 1 << 20


def pattern(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


def test_get_into_ranges_with_error_codes(store):
    a, b = pattern(40 * MB, 1), pattern(1000, 2)  # a spans three 16 MiB slices
    assert store.put("rg-a", a.tobytes()) == 0
    assert store.put("rg-b", b.tobytes()) == 0
    dst = np.zeros(4096, dtype=np.uint8)
    assert store.register_buffer(dst.ctypes.data, dst.nbytes) == 0
    other = bytearray(64)  # a buffer object brings its own size
    res = store.get_into_ranges(
        [dst.ctypes.data, other],
        [["rg-a", "rg-b", "rg-missing"], ["rg-b"]],
        [[[0, 100, 3000], [200, 4090], [500]], [[0, 56]]],
        [[[16 * MB - 10, 0, 40 * MB - 5], [10, 900], [0]], [[990, 0]]],
        [[[20, 50, 5], [30, 200], [8]], [[10, 8]]],
    )
    # [16M-10, +20) crosses a slice edge; [4090, +200) runs past dst's 4096 bytes; a
    # missing key; the second buffer's [56, +8) just fits its 64 bytes.
    assert res == [[[20, 50, 5], [30, INVALID], [NOT_FOUND]], [[10, 8]]]
    assert np.array_equal(dst[0:20], a[16 * MB - 10 : 16 * MB + 10])
    assert np.array_equal(dst[100:150], a[0:50])
    assert np.array_equal(dst[3000:3005], a[40 * MB - 5 :])
    assert np.array_equal(dst[200:230], b[10:40])
    assert bytes(other[0:10]) == b[990:].tobytes() and bytes(other[56:64]) == b[:8].tobytes()
    res = store.get_into_ranges([other], [["rg-b"]], [[[57]]], [[[0]]], [[[8]]])
    assert res == [[[INVALID]]]  # one byte past the buffer
    # Two destinations sharing a byte: refused before anything is read.
    res = store.get_into_ranges([dst.ctypes.data], [["rg-b"]], [[[0, 5]]], [[[0, 0]]], [[[10, 10]]])
    assert res == [[[INVALID, INVALID]]] and "overlap" in store.last_error()
    # Past the object's end: that range alone fails.
    res = store.get_into_ranges([dst.ctypes.data], [["rg-b"]], [[[0, 10]]], [[[995, 0]]], [[[10, 5]]])
    assert res == [[[INVALID, 5]]]
    store.unregister_buffer(dst.ctypes.data)
    # An address nobody registered: Mooncake cannot size it either.
    res = store.get_into_ranges([dst.ctypes.data], [["rg-b"]], [[[0]]], [[[0]]], [[[5]]])
    assert res == [[[INVALID]]]
    # Mismatched top-level lists: every range INVALID.
    assert store.get_into_ranges([other], [["rg-b"]], [[[0]]], [], [[[1]]]) == [[[INVALID]]]


def test_put_from_with_metadata(store):
    meta, data = np.arange(16, dtype=np.uint8), pattern(5000, 3)
    rc = store.put_from_with_metadata("pfm", data.ctypes.data, meta.ctypes.data, 5000, 16)
    assert rc == 0
    assert store.get("pfm") == meta.tobytes() + data.tobytes()
    cfg = ReplicateConfig()
    assert store.put_from_with_metadata("pfm2", data, meta, 100, 0, cfg) == 0
    assert store.get("pfm2") == data[:100].tobytes()
    # size 0: nothing written, 0 returned (Mooncake's behaviour).
    assert store.put_from_with_metadata("pfm3", data, meta, 0, 16) == 0
    assert store.is_exist("pfm3") == 0


def test_get_session_ranges(store):
    v = pattern(20 * MB, 4)
    assert store.put("gs", v.tobytes()) == 0
    assert store.batch_get_session_start(["gs", "gs-missing"]) == [0, NOT_FOUND]
    out1, out2 = np.zeros(100, dtype=np.uint8), np.zeros(MB, dtype=np.uint8)
    res = store.batch_get_into_multi_buffer_ranges(
        ["gs", "gs-missing", "gs"],
        [[out1.ctypes.data, out2], [out1], [out1]],
        [[100, MB], [10], [50]],
        [[16 * MB - 50, 3], [0], [20 * MB - 10]],
    )
    # third entry overflows the object; the missing key has no session
    assert res == [100 + MB, INVALID, INVALID]
    assert np.array_equal(out1, v[16 * MB - 50 : 16 * MB + 50])
    assert np.array_equal(out2, v[3 : 3 + MB])
    # Ending the session forgets the key.
    assert store.batch_get_session_end(["gs"]) == 0
    res = store.batch_get_into_multi_buffer_ranges(["gs"], [[out1]], [[10]], [[0]])
    assert res == [INVALID]


def test_put_session(store):
    keys = ["ps-1", "ps-2"]
    assert store.batch_put_session_start(keys, [3 * MB, 100]) == [0, 0]
    # Reserved but not readable; a second session for the key is refused.
    assert store.is_exist("ps-1") == 0
    assert store.batch_put_session_start(["ps-1"], [10]) == [INVALID]
    head, tail = pattern(MB, 5), pattern(2 * MB, 6)
    small = pattern(100, 7)
    res = store.batch_put_from_multi_buffer_ranges(
        keys + ["ps-none"],
        [[head.ctypes.data, tail], [small], [small]],
        [[MB, 2 * MB], [100], [100]],
        [[0, MB], [0], [0]],
    )
    assert res == [3 * MB, 100, INVALID]
    # A range past the reserved size is refused and writes nothing.
    assert store.batch_put_from_multi_buffer_ranges(["ps-2"], [[small]], [[100]], [[50]]) == [
        INVALID
    ]
    assert store.batch_put_session_end(keys + ["ps-none"]) == [0, 0, INVALID]
    assert store.get("ps-1") == head.tobytes() + tail.tobytes()
    assert store.get("ps-2") == small.tobytes()
    assert store.batch_put_session_end(keys) == [INVALID, INVALID]  # already ended


def test_put_session_revoke_frees_the_key(store):
    assert store.put("ps-exists", b"old") == 0
    assert store.batch_put_session_start(["ps-r", "ps-exists"], [1000, 10]) == [0, EXISTS]
    assert store.batch_put_session_revoke(["ps-r", "ps-r2"]) == [0, INVALID]
    assert store.is_exist("ps-r") == 0
    # The key is free again: a new session and a plain put both work.
    assert store.batch_put_session_start(["ps-r"], [3]) == [0]
    assert store.batch_put_from_multi_buffer_ranges(["ps-r"], [[b"xyz"]], [[3]], [[0]]) == [3]
    assert store.batch_put_session_end(["ps-r"]) == [0]
    assert store.get("ps-r") == b"xyz"


def test_close_revokes_open_put_sessions(cluster):
    from conftest import new_store

    s = new_store(cluster.master_addr)
    assert s.batch_put_session_start(["ps-open"], [100]) == [0]
    s.close()
    # The reservation is gone: another client can write the key at once.
    t = new_store(cluster.master_addr)
    try:
        assert t.put("ps-open", b"free") == 0
        assert t.get("ps-open") == b"free"
    finally:
        t.remove_all(force=True)
        t.close()


def test_ranged_reads_survive_a_dead_replica(tmp_path):
    from conftest import Cluster, new_store

    c = Cluster(tmp_path)
    try:
        c.start_master()
        c.start_node(host="127.0.0.1", size="64MB")
        c.start_node(host="127.0.0.2", size="64MB")
        s = new_store(c.master_addr)
        v = pattern(3 * MB, 8)
        n = 8  # a broken fallback passes only if all 8 first pick the live replica: 1/256
        keys = [f"dr-{i}" for i in range(n)]
        assert s.put_batch(keys, [v.tobytes()] * n, ReplicateConfig(replica_num=2)) == 0
        assert all(len(s.get_replica_desc(k)) == 2 for k in keys)
        assert s.batch_get_session_start(keys) == [0] * n
        c.kill_node(0)
        # Whichever replica each key tries first, every read lands, from the live node.
        outs = [np.zeros(1000, dtype=np.uint8) for _ in keys]
        res = s.batch_get_into_multi_buffer_ranges(
            keys, [[o] for o in outs], [[1000]] * n, [[MB + 7]] * n
        )
        assert res == [1000] * n
        assert all(np.array_equal(o, v[MB + 7 : MB + 1007]) for o in outs)
        dst = bytearray(1000 * n)
        res = s.get_into_ranges(
            [dst], [keys], [[[i * 1000] for i in range(n)]], [[[5]] * n], [[[1000]] * n]
        )
        assert res == [[[1000]] * n]
        assert bytes(dst) == v[5:1005].tobytes() * n
        s.close()
    finally:
        c.stop()
