"""Tensor methods in Mooncake's tensor object format.

torch is not installed in the test environment (PyPI's build brings gigabytes of CUDA
libraries), so these run on numpy arrays through the same header code; bfloat16 and the
float8 types come from ml_dtypes. The header is checked field by field against the layout
of Mooncake's ``TensorMetadata`` (integration_utils.h), decoded here independently of the
binding's encoder.
"""

import struct

import ml_dtypes
import numpy as np
import pytest

import mooncake_rs.store as mstore
from mooncake_rs.store import ErrorCode, ReplicateConfig

INVALID = int(ErrorCode.INVALID_PARAMS)

#: Every dtype Mooncake's TensorDtype has, with its code.
DTYPES = [
    ("float32", 0),
    ("float64", 1),
    ("int8", 2),
    ("uint8", 3),
    ("int16", 4),
    ("uint16", 5),
    ("int32", 6),
    ("uint32", 7),
    ("int64", 8),
    ("uint64", 9),
    ("bool", 10),
    ("float16", 11),
    ("bfloat16", 12),
    ("float8_e4m3fn", 13),
    ("float8_e5m2", 14),
]


def np_dtype(name):
    return np.dtype(getattr(ml_dtypes, name)) if hasattr(ml_dtypes, name) else np.dtype(name)


def sample(name, shape, seed=0):
    rng = np.random.default_rng(seed)
    dt = np_dtype(name)
    if name == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
    return rng.standard_normal(shape).astype(np.float32).astype(dt)


def parse_header(raw):
    """Mooncake's TensorMetadata, decoded from its C layout."""
    magic, version, hsize, dtype, ndim, kind, flags, off, nbytes = struct.unpack_from(
        "<IHHiiIIQQ", raw, 0
    )
    gshape = struct.unpack_from("<8q", raw, 40)
    lshape = struct.unpack_from("<8q", raw, 104)
    axis_count, _ = struct.unpack_from("<II", raw, 168)
    axes = [struct.unpack_from("<iiiiiiq", raw, 176 + 32 * i) for i in range(4)]
    return dict(
        magic=magic, version=version, header_size=hsize, dtype=dtype, ndim=ndim,
        layout_kind=kind, flags=flags, data_offset=off, data_bytes=nbytes,
        global_shape=gshape, local_shape=lshape, axis_count=axis_count, axes=axes,
    )


def check_full_header(raw, code, shape, nbytes):
    h = parse_header(raw)
    pad = (-1,) * (8 - len(shape))
    assert h["magic"] == 0x4D4F4F4E and h["version"] == 1 and h["header_size"] == 304
    assert (h["dtype"], h["ndim"], h["layout_kind"], h["flags"]) == (code, len(shape), 0, 0)
    assert (h["data_offset"], h["data_bytes"]) == (304, nbytes)
    assert h["global_shape"] == tuple(shape) + pad == h["local_shape"]
    assert h["axis_count"] == 0 and h["axes"] == [(0,) * 7] * 4


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name,code", DTYPES)
def test_every_dtype_round_trips(store, name, code):
    t = sample(name, (3, 4, 5), seed=code)
    key = f"t-{name}"
    assert store.put_tensor(key, t) == 0
    raw = store.get(key)
    assert len(raw) == 304 + t.nbytes
    check_full_header(raw[:304], code, t.shape, t.nbytes)
    assert raw[304:] == t.tobytes()
    got = store.get_tensor(key)
    assert same(got, t)
    got.flat[0] = got.flat[1]  # an owned, writable copy


@pytest.mark.parametrize("shape", [(0,), (4, 0, 2), ()])
def test_zero_element_and_scalar_tensors(store, shape):
    t = np.full(shape, 1.5, dtype=np.float32)
    key = f"t-shape-{len(shape)}-{t.size}"
    assert store.put_tensor(key, t) == 0
    assert store.get_size(key) == 304 + t.nbytes
    got = store.get_tensor(key)
    assert same(got, t)
    buf = np.zeros(304 + t.nbytes, dtype=np.uint8)
    assert same(store.get_tensor_into(key, buf.ctypes.data, buf.nbytes), t)


def test_get_tensor_into_views_the_buffer(store):
    t = sample("int32", (16, 8))
    assert store.put_tensor("t-into", t) == 0
    buf = np.zeros(304 + t.nbytes + 64, dtype=np.uint8)
    got = store.get_tensor_into("t-into", buf.ctypes.data, buf.nbytes)
    assert same(got, t)
    got[0, 0] = 12345  # writes land in the caller's buffer
    assert buf[304:308].view(np.int32)[0] == 12345
    assert store.get_tensor_into("t-into", buf.ctypes.data, 100) is None  # too small
    assert store.get_tensor_into("t-nothing", buf.ctypes.data, buf.nbytes) is None
    assert store.get_tensor_into("t-into", 0, 10) is None


def test_batch_forms_and_upserts(store):
    ts = [sample("float16", (8, i + 1), seed=i) for i in range(3)]
    keys = [f"tb-{i}" for i in range(3)]
    assert store.batch_put_tensor(keys, ts) == [0, 0, 0]
    assert all(same(a, b) for a, b in zip(store.batch_get_tensor(keys + ["tb-x"]), ts + [None]) if b is not None)
    assert store.batch_get_tensor(["tb-x"]) == [None]
    bufs = [np.zeros(304 + t.nbytes, dtype=np.uint8) for t in ts]
    got = store.batch_get_tensor_into(keys, [b.ctypes.data for b in bufs], [b.nbytes for b in bufs])
    assert all(same(g, t) for g, t in zip(got, ts))
    assert store.batch_get_tensor_into(keys, [0, 0, 0], [1, 1, 1]) == [INVALID] * 3
    assert store.batch_put_tensor(keys, ts[:2]) == [INVALID] * 3
    assert store.batch_put_tensor(["tb-bad"], ["not a tensor"]) == [INVALID]
    new = sample("float16", (2, 2), seed=9)
    assert store.upsert_tensor("tb-0", new) == 0
    assert same(store.get_tensor("tb-0"), new)
    assert store.batch_upsert_tensor(keys[1:], [new, new]) == [0, 0]
    assert all(same(g, new) for g in store.batch_get_tensor(keys[1:]))


def test_tensor_parallel_shards(store):
    t = sample("bfloat16", (6, 8), seed=3)
    assert store.put_tensor_with_tp("tp", t, tp_size=4, split_dim=1) == 0
    assert store.is_exist("tp") == 0  # only the shards are stored
    for rank in range(4):
        raw = store.get(f"tp_tp_{rank}")
        h = parse_header(raw[:304])
        assert h["layout_kind"] == 1 and h["axis_count"] == 1
        assert h["global_shape"][:2] == (6, 8) and h["local_shape"][:2] == (6, 2)
        # kind TP (1), axis 0, rank, count, split dim, reserved, local extent of split dim
        assert h["axes"][0] == (1, 0, rank, 4, 1, 0, 2)
        shard = store.get_tensor_with_tp("tp", tp_rank=rank, tp_size=4)
        assert same(shard, np.ascontiguousarray(t[:, 2 * rank : 2 * rank + 2]))
    got = store.batch_get_tensor_with_tp(["tp"], tp_rank=3, tp_size=4)
    assert same(got[0], np.ascontiguousarray(t[:, 6:8]))
    buf = np.zeros(304 + 6 * 2 * 2, dtype=np.uint8)
    into = store.get_tensor_with_tp_into("tp", buf.ctypes.data, buf.nbytes, tp_rank=1, tp_size=4)
    assert same(into, np.ascontiguousarray(t[:, 2:4]))
    # Uneven split: refused, as Mooncake (uniform sharding only).
    assert store.put_tensor_with_tp("tp-odd", t, tp_size=4, split_dim=0) == INVALID
    assert store.batch_put_tensor_with_tp(["tpb-0", "tpb-odd"], [t, t[:5]], tp_size=2) == [0, INVALID]
    assert same(store.get_tensor_with_tp("tpb-0", tp_rank=1, tp_size=2), t[3:])
    # tp_size 1: the whole tensor under the key itself.
    assert store.put_tensor_with_tp("tp1", t) == 0
    assert same(store.get_tensor_with_tp("tp1"), t)


def test_tensor_from_buffers_and_serialization(store):
    assert mstore._tensor_metadata_size() == 304
    t = sample("uint16", (5, 7))
    header, ptr, nbytes, owner = mstore._serialize_tensor(t)
    check_full_header(header, 5, t.shape, t.nbytes)
    assert (ptr, nbytes) == (owner.ctypes.data, t.nbytes)
    whole = np.frombuffer(header + t.tobytes(), dtype=np.uint8).copy()
    assert same(mstore._deserialize_tensor(whole.tobytes()), t)
    with pytest.raises(ValueError):
        mstore._deserialize_tensor(b"\0" * 400)
    assert store.put_tensor_from("tf", whole.ctypes.data, whole.nbytes) == 0
    assert same(store.get_tensor("tf"), t)
    assert store.put_tensor_from("tf-short", whole.ctypes.data, 100) == INVALID
    assert store.put_tensor_from("tf-trunc", whole.ctypes.data, whole.nbytes - 2) == INVALID
    assert store.batch_put_tensor_from(["tf2", "tf3"], [whole, whole], [whole.nbytes] * 2) == [0, 0]
    assert store.upsert_tensor_from("tf", whole.ctypes.data, whole.nbytes) == 0
    assert store.batch_upsert_tensor_from(["tf2"], [whole], [whole.nbytes]) == [0]
    # A whole tensor buffer split into TP shards.
    assert store.put_tensor_with_tp_from("tft", whole, whole.nbytes, tp_size=5, split_dim=0) == 0
    assert same(store.get_tensor_with_tp("tft", tp_rank=4, tp_size=5), t[4:5])


def test_pub_forms_check_preferred_segments(store):
    t = sample("int8", (4, 4))
    assert store.pub_tensor("pub", t, ReplicateConfig()) == 0
    bad = ReplicateConfig(replica_num=1, preferred_segments=["a:1", "b:2"])
    assert store.pub_tensor("pub-bad", t, bad) == INVALID
    assert store.batch_pub_tensor(["pb"], [t], bad) == [INVALID]
    assert store.pub_tensor_with_tp("pubtp", t, ReplicateConfig(), tp_size=2) == 0
    assert store.batch_pub_tensor_with_tp(["pubtp2"], [t], ReplicateConfig(), tp_size=2) == [0]
    assert store.upsert_pub_tensor("pub", t * 2, ReplicateConfig()) == 0
    assert same(store.get_tensor("pub"), t * 2)
    assert store.batch_upsert_pub_tensor(["pub"], [t], ReplicateConfig()) == [0]


def test_safetensors_round_trip(store, tmp_path):
    t = sample("float32", (3, 3))
    assert store.put_tensor("st", t) == 0
    path = str(tmp_path / "st.safetensors")
    assert store.save_tensor_to_safetensor("st", path) == 0
    assert store.save_tensor_to_safetensor("st-missing", path) == -1100  # FILE_NOT_FOUND
    got = store.load_tensor_from_safetensor("st-copy", path)  # not in the file: first entry
    assert same(got, t)
    assert same(store.get_tensor("st-copy"), t)
    assert store.load_tensor_from_safetensor("x", str(tmp_path / "nope")) is None


def test_cuda_methods_say_no_cuda(store):
    with pytest.raises(RuntimeError, match="no CUDA"):
        store.get_tensor_into_cuda("k", None)
    with pytest.raises(RuntimeError, match="no CUDA"):
        store.batch_get_tensor_into_cuda(["k"], [None])
