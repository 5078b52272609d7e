"""Zero-copy calls with numpy arrays, bytearray / memoryview and raw addresses."""

import numpy as np
import pytest

from mooncake_rs.store import ErrorCode

INVALID = int(ErrorCode.INVALID_PARAMS)


def pattern(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


def test_register_and_unregister(store):
    a = np.zeros(1 << 20, dtype=np.uint8)
    ptr = a.ctypes.data
    assert store.register_buffer(ptr, a.nbytes) == 0
    assert store.register_buffer(ptr, a.nbytes) == 0  # same range again: fine
    assert store.register_buffer(ptr + 10, 100) == INVALID  # overlaps
    assert store.register_buffer(0, 10) == INVALID
    assert store.unregister_buffer(ptr) == 0
    assert store.unregister_buffer(ptr) == INVALID
    assert store.register_buffer(a, a.nbytes) == 0  # the array itself names the range
    assert store.unregister_buffer(a) == 0


def test_put_from_get_into_raw_pointers(store):
    src = pattern(1 << 20, 1)
    dst = np.zeros_like(src)
    store.register_buffer(src.ctypes.data, src.nbytes)
    store.register_buffer(dst.ctypes.data, dst.nbytes)
    assert store.put_from("zc", src.ctypes.data, src.nbytes) == 0
    assert store.get_into("zc", dst.ctypes.data, dst.nbytes) == src.nbytes
    assert np.array_equal(src, dst)
    store.unregister_buffer(src.ctypes.data)
    store.unregister_buffer(dst.ctypes.data)


def test_put_from_get_into_buffer_objects(store):
    src = pattern(3000, 2).astype(np.float32)  # any dtype: bytes are bytes
    assert store.put_from("f32", src, src.nbytes) == 0
    out = np.empty_like(src)
    assert store.get_into("f32", out, out.nbytes) == src.nbytes
    assert np.array_equal(src, out)
    ba = bytearray(src.nbytes + 7)
    assert store.get_into("f32", ba, len(ba)) == src.nbytes
    assert bytes(ba[: src.nbytes]) == src.tobytes()
    mv = memoryview(bytearray(src.nbytes))
    assert store.get_into("f32", mv, len(mv)) == src.nbytes
    assert bytes(mv) == src.tobytes()


def test_get_into_errors_leave_buffer_untouched(store):
    store.put("big", b"z" * 1000)
    small = np.full(999, 7, dtype=np.uint8)
    assert store.get_into("big", small.ctypes.data, small.nbytes) == INVALID
    assert (small == 7).all()
    assert store.get_into("missing", small, small.nbytes) == ErrorCode.OBJECT_NOT_FOUND
    assert store.get_into("big", b"read-only bytes" * 100, 1000) == INVALID
    assert store.get_into("big", small, small.nbytes + 1) == INVALID  # size beyond buffer
    assert store.get_into("big", True, 1000) == INVALID  # a bool is an int, not an address
    assert "address" in store.last_error(), store.last_error()
    assert store.get_into("big", 2**64 - 10, 1000) == INVALID  # past the address space
    assert "address space" in store.last_error(), store.last_error()
    assert store.put_from("x", small, 0) == INVALID  # empty value


def test_batch_put_from_and_get_into(store):
    n = 16
    srcs = [pattern(4096 * (i + 1), 10 + i) for i in range(n)]
    keys = [f"bz{i}" for i in range(n)]
    assert store.batch_put_from(keys, [s.ctypes.data for s in srcs], [s.nbytes for s in srcs]) == [0] * n
    dsts = [np.zeros_like(s) for s in srcs]
    spare = np.zeros(4096, dtype=np.uint8)
    got = store.batch_get_into(keys + ["nope"], [d.ctypes.data for d in dsts] + [spare.ctypes.data], [d.nbytes for d in dsts] + [spare.nbytes])
    assert got[:n] == [s.nbytes for s in srcs]
    assert got[n] == ErrorCode.OBJECT_NOT_FOUND
    for s, d in zip(srcs, dsts):
        assert np.array_equal(s, d)
    assert store.batch_put_from(keys, [0], [1]) == [INVALID] * n
    # an existing key is a success that keeps the old value
    assert store.batch_put_from(keys[:1], [dsts[1]], [dsts[1].nbytes]) == [0]
    assert store.get(keys[0]) == srcs[0].tobytes()


def test_multi_buffers(store):
    # Each key is the concatenation of several layer blocks, as KV-cache connectors send.
    layers = [[pattern(1024 * (j + 1), 100 * i + j) for j in range(4)] for i in range(3)]
    keys = [f"mb{i}" for i in range(3)]
    ptrs = [[b.ctypes.data for b in ls] for ls in layers]
    sizes = [[b.nbytes for b in ls] for ls in layers]
    assert store.batch_put_from_multi_buffers(keys, ptrs, sizes) == [0, 0, 0]
    for k, ls in zip(keys, layers):
        assert store.get(k) == b"".join(b.tobytes() for b in ls)
    outs = [[np.zeros_like(b) for b in ls] for ls in layers]
    got = store.batch_get_into_multi_buffers(
        keys, [[o.ctypes.data for o in os_] for os_ in outs], sizes
    )
    assert got == [sum(s) for s in sizes]
    for ls, os_ in zip(layers, outs):
        for b, o in zip(ls, os_):
            assert np.array_equal(b, o)
    # buffers too small for the object
    short = [[o.ctypes.data for o in outs[0][:2]]]
    assert store.batch_get_into_multi_buffers(keys[:1], short, [sizes[0][:2]]) == [INVALID]
    assert store.batch_get_into_multi_buffers(keys, ptrs, sizes[:1]) == [INVALID] * 3


def test_upsert_from(store):
    a, b = pattern(5000, 1), pattern(7000, 2)
    assert store.upsert_from("uf", a, a.nbytes) == 0
    assert store.upsert_from("uf", b.ctypes.data, b.nbytes) == 0
    assert store.get("uf") == b.tobytes()
    assert store.batch_upsert_from(["uf"], [a], [a.nbytes]) == [0]
    assert store.get("uf") == a.tobytes()


def test_overlapping_destinations_are_refused(store):
    a, b = pattern(4096, 20), pattern(4096, 21)
    assert store.batch_put_from(["ov-a", "ov-b"], [a, b], [a.nbytes, b.nbytes]) == [0, 0]
    mem = np.full(3 * 4096, 7, dtype=np.uint8)
    # two numpy views of the same memory, sharing bytes 2048..4096
    views = [mem[:4096], mem[2048 : 2048 + 4096]]
    assert store.batch_get_into(["ov-a", "ov-b"], views, [4096, 4096]) == [INVALID, INVALID]
    assert "overlap" in store.last_error(), store.last_error()
    assert "#0 and #1" in store.last_error(), store.last_error()
    # the same raw address twice, and a range inside another one
    ptr = mem.ctypes.data
    assert store.batch_get_into(["ov-a", "ov-b"], [ptr, ptr], [4096, 4096]) == [INVALID, INVALID]
    assert store.batch_get_into(["ov-a", "ov-b"], [ptr, ptr + 100], [8192, 10]) == [INVALID, INVALID]
    assert "overlap" in store.last_error(), store.last_error()
    assert (mem == 7).all()  # nothing was written
    # adjacent ranges share no byte: accepted
    assert store.batch_get_into(["ov-a", "ov-b"], [mem[:4096], mem[4096:8192]], [4096, 4096]) == [4096, 4096]
    assert np.array_equal(mem[:4096], a) and np.array_equal(mem[4096:8192], b)


def test_overlapping_multi_buffer_destinations_are_refused(store):
    parts = [pattern(1024, 30 + j) for j in range(4)]
    assert store.batch_put_from_multi_buffers(["ovm"], [parts], [[1024] * 4]) == [0]
    mem = np.full(8192, 7, dtype=np.uint8)
    ptr = mem.ctypes.data
    # within one key
    within = [[ptr, ptr + 1024, ptr + 1024, ptr + 3072]]
    assert store.batch_get_into_multi_buffers(["ovm"], within, [[1024] * 4]) == [INVALID]
    assert "overlap" in store.last_error(), store.last_error()
    # across keys: the second key's buffer falls inside the first key's
    across = [[ptr, ptr + 1024, ptr + 2048, ptr + 3072], [ptr + 512]]
    assert store.batch_get_into_multi_buffers(["ovm", "ovm"], across, [[1024] * 4, [4096]]) == [INVALID, INVALID]
    assert "#0 and #4" in store.last_error(), store.last_error()
    assert (mem == 7).all()
    disjoint = [[ptr, ptr + 1024, ptr + 2048, ptr + 3072]]
    assert store.batch_get_into_multi_buffers(["ovm"], disjoint, [[1024] * 4]) == [4096]
    assert mem[:4096].tobytes() == b"".join(p.tobytes() for p in parts)


def test_overlapping_sources_are_fine(store):
    src = pattern(8192, 40)
    view = src[1000:5000]
    assert store.batch_put_from(["os-a", "os-b"], [src, view], [8192, 4000]) == [0, 0]
    assert store.get("os-a") == src.tobytes()
    assert store.get("os-b") == view.tobytes()
    ptr = src.ctypes.data
    assert store.batch_put_from_multi_buffers(["os-m"], [[ptr, ptr]], [[100, 200]]) == [0]
    assert store.get("os-m") == src[:100].tobytes() + src[:200].tobytes()


def test_raw_address_needs_a_size(store):
    with pytest.raises(TypeError, match="needs a size"):
        store.put("int-value", 12345)
