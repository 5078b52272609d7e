"""The ``*_with_parallelism`` tensor methods against a live cluster: Mooncake's keys
(``<key>_tp_<rank>``, ``<key>__dp_1of2__tp_0of2_sd1``, ``<key>__writer_0of2_sd0``), shard
headers and manifests, decoded here from their C layouts independently of the binding, and
reads of shards, of whole tensors gathered from shards that several processes wrote, and of
shards of another shard count.

Runs on numpy arrays (torch is not installed here; see test_tensors.py).
"""

import struct
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

import mooncake_rs.store as mstore
from mooncake_rs.store import ErrorCode, ParallelAxis, ReadTarget, TensorParallelism

from conftest import run_python
from test_tensors import parse_header, same, sample

INVALID = int(ErrorCode.INVALID_PARAMS)


def axis(kind, rank=0, size=1, split_dim=None, expert_id=None, stage_id=None):
    a = ParallelAxis()
    a.kind, a.rank, a.size = kind, rank, size
    a.split_dim, a.expert_id, a.stage_id = split_dim, expert_id, stage_id
    return a


def par(*axes):
    p = TensorParallelism()
    p.axes = list(axes)
    return p


def target(mode, parallelism=None):
    t = ReadTarget()
    t.mode, t.parallelism = mode, parallelism
    return t


def tp(rank, size, split_dim):
    return par(axis("tp", rank, size, split_dim))


def parse_manifest(raw):
    """Mooncake's WriterShardManifest: u32 magic, u16 version, u16 size, 5 × i32, padding,
    8 × i64 global shape."""
    assert len(raw) == 96
    magic, version, size, dtype, ndim, split_dim, count, reserved = struct.unpack_from(
        "<IHHiiiii", raw, 0
    )
    shape = struct.unpack_from("<8q", raw, 32)
    return dict(
        magic=magic, version=version, size=size, dtype=dtype, ndim=ndim,
        split_dim=split_dim, count=count, reserved=reserved, shape=shape,
    )


def test_helper_types_have_mooncakes_fields():
    a = ParallelAxis()
    assert (a.kind, a.rank, a.size) == ("", 0, 1)
    assert (a.split_dim, a.expert_id, a.stage_id) == (None, None, None)
    assert TensorParallelism().axes == []
    t = ReadTarget()
    assert (t.mode, t.parallelism) == ("as_stored", None)
    t.mode = "FULL"
    assert t.mode == "full"
    with pytest.raises(RuntimeError, match="Unsupported ReadTarget mode"):
        t.mode = "sideways"
    assert t.mode == "full"
    assert {"ParallelAxis", "ReadTarget", "TensorParallelism"} <= set(mstore.__all__)


RANK_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mooncake_rs.store import MooncakeDistributedStore, ParallelAxis, TensorParallelism
    master, rank = sys.argv[1], int(sys.argv[2])
    s = MooncakeDistributedStore()
    assert s.setup("127.0.0.1", "P2PHANDSHAKE", 0, 16 << 20, "tcp", "", master) == 0
    t = np.arange(48, dtype=np.float32).reshape(8, 6)
    a = ParallelAxis()
    a.kind, a.rank, a.size, a.split_dim = "tp", rank, 4, 0
    p = TensorParallelism()
    p.axes = [a]
    print(s.put_tensor_with_parallelism("w", np.ascontiguousarray(t[2 * rank : 2 * rank + 2]), p))
    s.close()
    """
)


def test_tp_ranks_in_other_processes_write_shards_a_reader_joins(store, cluster):
    t = np.arange(48, dtype=np.float32).reshape(8, 6)
    # Ranks 1 and 3 are other processes; 0 and 2 this one. Each holds only its shard.
    procs = [run_python(RANK_WRITER, cluster.master_addr, r) for r in (1, 3)]
    for r in (0, 2):
        assert store.put_tensor_with_parallelism("w", np.ascontiguousarray(t[2 * r : 2 * r + 2]), tp(r, 4, 0)) == 0
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == "0", err
    assert store.is_exist("w") == 0
    for r in range(4):
        h = parse_header(store.get(f"w_tp_{r}")[:304])
        assert (h["layout_kind"], h["axis_count"]) == (1, 1)
        assert h["global_shape"][:2] == (8, 6) and h["local_shape"][:2] == (2, 6)
        # kind TP (1), axis index 0, rank, count, split dim, reserved, local extent
        assert h["axes"][0] == (1, 0, r, 4, 0, 0, 2)
    m = parse_manifest(store.get("w__parallelism_manifest"))
    assert (m["magic"], m["version"], m["size"]) == (0x574D414E, 1, 96)
    assert (m["dtype"], m["ndim"], m["split_dim"], m["count"], m["reserved"]) == (0, 2, 0, 4, 0)
    assert m["shape"] == (8, 6) + (-1,) * 6

    for r in range(4):
        got = store.get_tensor_with_parallelism("w", target("shard", tp(r, 4, 0)))
        assert same(got, t[2 * r : 2 * r + 2])
        # The same shards through the *_with_tp reads.
        assert same(store.get_tensor_with_tp("w", tp_rank=r, tp_size=4), t[2 * r : 2 * r + 2])
    assert same(store.get_tensor_with_parallelism("w", target("full", tp(0, 4, 0))), t)
    # A rank of a TP group of another size gets its slice of the whole.
    assert same(store.get_tensor_with_parallelism("w", target("shard", tp(1, 2, 0))), t[4:])
    assert store.get_tensor_with_parallelism("w", target("shard", tp(1, 3, 0))) is None  # 8 % 3
    assert store.get_tensor_with_parallelism("w", target("full", tp(0, 4, 1))) is None  # split dim

    buf = np.zeros(304 + t.nbytes + 16, dtype=np.uint8)
    got = store.get_tensor_with_parallelism_into("w", buf.ctypes.data, buf.nbytes, target("full", tp(2, 4, 0)))
    assert same(got, t)
    h = parse_header(buf[:304].tobytes())
    assert (h["layout_kind"], h["data_bytes"], h["global_shape"][:2]) == (0, t.nbytes, (8, 6))
    got[0, 0] = -1.0  # a view of the caller's buffer
    assert buf[304:308].view(np.float32)[0] == -1.0
    small = np.zeros(304 + 10, dtype=np.uint8)
    assert store.get_tensor_with_parallelism_into("w", small, small.nbytes, target("full", tp(0, 4, 0))) is None
    assert store.get_tensor_with_parallelism_into("w", 0, 100, target("full", tp(0, 4, 0))) is None

    # A missing shard makes the whole unreadable, not short.
    assert store.remove("w_tp_3", force=True) == 0
    assert store.get_tensor_with_parallelism("w", target("full", tp(0, 4, 0))) is None


def test_tp_with_other_axes_stores_the_ranks_slice_under_canonical_keys(store):
    t = sample("bfloat16", (4, 6), seed=7)
    # The caller lists TP first; keys put DP first, the header keeps the caller's order.
    for r in range(2):
        p = par(axis("tp", r, 2, 1), axis("dp", 1, 2))
        assert store.put_tensor_with_parallelism("m", t, p) == 0
        raw = store.get(f"m__dp_1of2__tp_{r}of2_sd1")
        h = parse_header(raw[:304])
        assert h["global_shape"][:2] == (4, 6) and h["local_shape"][:2] == (4, 3)
        assert h["axis_count"] == 2
        assert h["axes"][0] == (1, 0, r, 2, 1, 0, 3)
        assert h["axes"][1] == (0, 1, 1, 2, -1, 0, 0)
        assert raw[304:] == np.ascontiguousarray(t[:, 3 * r : 3 * r + 3]).tobytes()
    want = par(axis("dp", 1, 2), axis("tp", 1, 2, 1))
    assert same(store.get_tensor_with_parallelism("m", target("shard", want)), t[:, 3:])
    assert same(store.get_tensor_with_parallelism("m", target("full", want)), t)
    # Another DP rank was never written.
    other = par(axis("dp", 0, 2), axis("tp", 1, 2, 1))
    assert store.get_tensor_with_parallelism("m", target("shard", other)) is None
    # A multi-axis TP write needs an evenly divisible dimension.
    assert store.put_tensor_with_parallelism("m-odd", t, par(axis("tp", 0, 4, 1), axis("dp", 0, 2))) == INVALID


def test_axes_without_tp_store_the_tensor_as_given(store):
    t = sample("int16", (3, 5), seed=2)
    p = par(axis("pp", 0, 2, stage_id=1), axis("ep", 1, 4, expert_id=9))
    assert store.put_tensor_with_parallelism("e", t, p) == 0
    raw = store.get("e__ep_1of4_eid9__pp_0of2_sid1")
    h = parse_header(raw[:304])
    assert h["global_shape"][:2] == (3, 5) == h["local_shape"][:2]
    assert h["axes"][0] == (3, 0, 0, 2, -1, 1, 0)  # PP, its stage id in the reserved field
    assert h["axes"][1] == (2, 1, 1, 4, -1, 9, 0)  # EP, its expert id
    assert store.is_exist("e__parallelism_manifest") == 0
    assert same(store.get_tensor_with_parallelism("e", target("shard", p)), t)
    wrong = par(axis("pp", 0, 2, stage_id=1), axis("ep", 1, 4, expert_id=8))
    assert store.get_tensor_with_parallelism("e", target("shard", wrong)) is None
    assert store.get_tensor_with_parallelism("e", target("full", p)) is None  # needs TP


def test_writer_partitions_and_whole_tensors(store):
    t = sample("uint8", (6, 4), seed=5)
    for r in range(2):
        w = SimpleNamespace(rank=r, size=2, split_dim=0)
        assert store.put_tensor_with_parallelism("k", t, writer_partition=w) == 0
        assert store.get(f"k__writer_{r}of2_sd0")[304:] == t[3 * r : 3 * r + 3].tobytes()
    m = parse_manifest(store.get("k__writer_manifest"))
    assert (m["dtype"], m["split_dim"], m["count"], m["shape"][:2]) == (3, 0, 2, (6, 4))
    assert same(store.get_tensor_with_parallelism("k", target("full")), t)
    # A single-TP shard read finds a writer partition's shard.
    assert same(store.get_tensor_with_parallelism("k", target("shard", tp(1, 2, 0))), t[3:])
    w = SimpleNamespace(rank=0, size=2, split_dim=0)
    assert store.put_tensor_with_parallelism("k2", t, tp(0, 2, 0), writer_partition=w) == INVALID
    bad = SimpleNamespace(rank=2, size=2, split_dim=0)
    assert store.put_tensor_with_parallelism("k2", t, writer_partition=bad) == INVALID
    # Neither: the whole tensor under the key, read as stored or as "full".
    assert store.put_tensor_with_parallelism("whole", t) == 0
    assert same(store.get_tensor("whole"), t)
    assert same(store.get_tensor_with_parallelism("whole"), t)
    assert same(store.get_tensor_with_parallelism("whole", target("full")), t)
    assert store.get_tensor_with_parallelism("nothing") is None


@pytest.mark.parametrize(
    "p",
    [
        par(),
        par(axis("tp", 0, 2)),  # TP without split_dim
        par(axis("tp", 2, 2, 0)),  # rank outside the size
        par(axis("tp", 0, 0, 0)),
        par(axis("dp", 0, 2, split_dim=0)),
        par(axis("ep", 0, 2)),  # EP without expert_id
        par(axis("pp", 0, 2)),  # PP without stage_id
        par(axis("xp", 0, 2)),
        par(axis("dp", 0, 2), axis("dp", 1, 2)),
        par(axis("tp", 0, 2, 5)),  # split dim past the tensor's
        "not a parallelism",
    ],
)
def test_invalid_parallelism_is_refused(store, p):
    t = sample("float32", (4, 4))
    assert store.put_tensor_with_parallelism("bad", t, p) == INVALID
    assert store.is_exist("bad") == 0
    assert store.get_tensor_with_parallelism("bad", target("shard", p)) is None


def test_batches_upserts_and_buffers(store):
    a, b = sample("float64", (4, 2), seed=1), sample("int32", (2, 2), seed=2)
    assert store.batch_put_tensor_with_parallelism(["ba", "bb"], [a, b], [tp(0, 1, 0), None]) == [0, 0]
    assert same(store.get_tensor("ba_tp_0"), a) and same(store.get_tensor("bb"), b)
    got = store.batch_get_tensor_with_parallelism(
        ["ba", "bb", "bx"], [target("full", tp(0, 1, 0)), None, None]
    )
    assert same(got[0], a) and same(got[1], b) and got[2] is None
    assert same(store.batch_get_tensor_with_parallelism(["bb"])[0], b)
    assert store.batch_get_tensor_with_parallelism(["ba", "bb"], [None]) == [None, None]
    assert store.batch_put_tensor_with_parallelism(["ba", "bb"], [a]) == [INVALID, INVALID]
    assert store.batch_put_tensor_with_parallelism(["ba"], [a], [None, None]) == [INVALID]
    assert store.batch_put_tensor_with_parallelism(["bz", "by"], ["x", b]) == [INVALID, 0]

    # put keeps an existing value; upsert replaces shard and manifest.
    a2 = a * 2
    assert store.put_tensor_with_parallelism("ba", a2, tp(0, 1, 0)) == 0
    assert same(store.get_tensor("ba_tp_0"), a)
    c = sample("float64", (3, 2), seed=3)
    assert store.upsert_tensor_with_parallelism("ba", c, tp(0, 1, 0)) == 0
    assert same(store.get_tensor_with_parallelism("ba", target("full", tp(0, 1, 0))), c)
    assert parse_manifest(store.get("ba__parallelism_manifest"))["shape"][:2] == (3, 2)
    assert store.batch_upsert_tensor_with_parallelism(["bb"], [c]) == [0]
    assert same(store.get_tensor("bb"), c)

    # *_from: a [header][bytes] tensor object in a buffer.
    header, _, _, _ = mstore._serialize_tensor(a)
    obj = np.frombuffer(header + a.tobytes(), dtype=np.uint8).copy()
    assert store.put_tensor_with_parallelism_from("fa", obj.ctypes.data, obj.nbytes, tp(1, 2, 0)) == 0
    assert same(store.get_tensor("fa_tp_1"), a)
    h = parse_header(store.get("fa_tp_1")[:304])
    assert h["global_shape"][:2] == (8, 2) and h["axes"][0] == (1, 0, 1, 2, 0, 0, 4)
    assert store.put_tensor_with_parallelism_from("fb", obj.ctypes.data, 100) == INVALID
    assert store.batch_put_tensor_with_parallelism_from(["fc", "fd"], [obj, obj], [obj.nbytes, 50]) == [0, INVALID]
    assert store.upsert_tensor_with_parallelism_from("fc", obj, obj.nbytes, tp(0, 1, 0)) == 0
    assert store.batch_upsert_tensor_with_parallelism_from(["fc"], [obj], [obj.nbytes]) == [0]
    assert same(store.get_tensor("fc"), a)

    # *_into for several keys; one buffer too small gets None alone.
    bufs = [np.zeros(304 + a.nbytes, dtype=np.uint8), np.zeros(8, dtype=np.uint8)]
    got = store.batch_get_tensor_with_parallelism_into(
        ["fc", "fc"], [x.ctypes.data for x in bufs], [x.nbytes for x in bufs]
    )
    assert same(got[0], a) and got[1] is None
    assert store.batch_get_tensor_with_parallelism_into(["fc"], [], []) == [None]
