"""Mooncake's parallelism descriptions of a tensor (``ParallelAxis``, ``TensorParallelism``,
``ReadTarget``, writer partitions) and the key and manifest conventions of its
``*_with_parallelism`` methods, so shards written by one implementation are found by the
other:

- a single TP axis stores rank ``r``'s shard under ``<key>_tp_<r>`` (the ``*_with_tp`` key);
- any other axis set stores under ``<key>`` followed by ``__<kind>_<rank>of<size>``
  (``_sd<split_dim>``, ``_eid<expert_id>``, ``_sid<stage_id>`` when set) per axis, axes in
  the order DP, TP, EP, PP;
- a writer partition stores under ``<key>__writer_<rank>of<size>_sd<split_dim>``;
- a TP write also puts a manifest (global shape, dtype, split dim, shard count) under
  ``<key>__parallelism_manifest`` (``<key>__writer_manifest`` for writer partitions), which
  full reads use to find every shard.
"""

import struct
from typing import List, Optional

from . import _tensor_header as th

_KINDS = {"DP": th.AXIS_DP, "TP": th.AXIS_TP, "EP": th.AXIS_EP, "PP": th.AXIS_PP}
_KIND_NAMES = {v: k.lower() for k, v in _KINDS.items()}
#: Axis order of keys and comparisons (Mooncake's canonical order).
_ORDER = {th.AXIS_DP: 0, th.AXIS_TP: 1, th.AXIS_EP: 2, th.AXIS_PP: 3}

MODES = ("as_stored", "shard", "full")

MANIFEST_MAGIC = 0x574D414E
MANIFEST_VERSION = 1
_MANIFEST_HEAD = struct.Struct("<IHHiiiii4x")  # padded: the shape that follows is 8-aligned
MANIFEST_SIZE = _MANIFEST_HEAD.size + 8 * th.MAX_DIMS


class ParallelAxis:
    """One axis of a tensor's parallel layout: ``kind`` (``"tp"``, ``"dp"``, ``"ep"``,
    ``"pp"``), this holder's ``rank`` of ``size``, and ``split_dim`` (TP), ``expert_id``
    (EP) or ``stage_id`` (PP)."""

    def __init__(self, kind="", rank=0, size=1, split_dim=None, expert_id=None, stage_id=None):
        self.kind, self.rank, self.size = kind, rank, size
        self.split_dim, self.expert_id, self.stage_id = split_dim, expert_id, stage_id

    def __repr__(self):
        return (
            f"ParallelAxis(kind={self.kind!r}, rank={self.rank}, size={self.size}, "
            f"split_dim={self.split_dim}, expert_id={self.expert_id}, stage_id={self.stage_id})"
        )


class TensorParallelism:
    """The axes (``list[ParallelAxis]``) a tensor is split or replicated over."""

    def __init__(self, axes=None):
        self.axes = list(axes) if axes is not None else []

    def __repr__(self):
        return f"TensorParallelism(axes={self.axes!r})"


class ReadTarget:
    """What a ``get_tensor_with_parallelism`` call wants: ``mode`` ``"as_stored"`` (the
    object under the key), ``"shard"`` (the shard ``parallelism`` names) or ``"full"``
    (the whole tensor, gathered from its shards)."""

    def __init__(self, mode="as_stored", parallelism=None):
        self.mode = mode
        self.parallelism = parallelism

    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, value):
        m = str(value).lower()
        if m not in MODES:
            raise RuntimeError("Unsupported ReadTarget mode")
        self._mode = m

    def __repr__(self):
        return f"ReadTarget(mode={self._mode!r}, parallelism={self.parallelism!r})"


class Axis:
    """A checked axis: kind code, rank, size and the optional fields."""

    __slots__ = ("kind", "rank", "size", "split_dim", "expert_id", "stage_id")

    def __init__(self, kind, rank, size, split_dim=None, expert_id=None, stage_id=None):
        self.kind, self.rank, self.size = kind, rank, size
        self.split_dim, self.expert_id, self.stage_id = split_dim, expert_id, stage_id

    def fields(self):
        return (self.kind, self.rank, self.size, self.split_dim, self.expert_id, self.stage_id)

    def with_rank(self, rank, size=None):
        size = self.size if size is None else size
        return Axis(self.kind, rank, size, self.split_dim, self.expert_id, self.stage_id)


def _opt_int(v):
    return None if v is None else int(v)


def parse(obj) -> Optional[List[Axis]]:
    """The checked axes of a ``TensorParallelism`` (any object with ``axes`` of objects
    with ``kind``, ``rank``, ``size``, ``split_dim``, ``expert_id``, ``stage_id``), or
    ``None`` when Mooncake refuses it: no axes, more than four, an unknown or repeated kind,
    a rank outside ``0..size``, TP without ``split_dim``, DP/EP/PP with one, EP without
    ``expert_id``, PP without ``stage_id``."""
    try:
        raw = list(obj.axes)
        axes = []
        for a in raw:
            kind = _KINDS.get(str(a.kind).upper())
            if kind is None:
                return None
            axes.append(
                Axis(
                    kind,
                    int(a.rank),
                    int(a.size),
                    _opt_int(getattr(a, "split_dim", None)),
                    _opt_int(getattr(a, "expert_id", None)),
                    _opt_int(getattr(a, "stage_id", None)),
                )
            )
    except (AttributeError, TypeError, ValueError):
        return None
    if not axes or len(axes) > th.MAX_AXES:
        return None
    if len({a.kind for a in axes}) != len(axes):
        return None
    for a in axes:
        if a.size <= 0 or not 0 <= a.rank < a.size:
            return None
        if (a.kind == th.AXIS_TP) != (a.split_dim is not None):
            return None
        if a.kind == th.AXIS_EP and a.expert_id is None:
            return None
        if a.kind == th.AXIS_PP and a.stage_id is None:
            return None
    return axes


def parse_writer(obj):
    """(rank, size, split_dim) of a writer partition, or ``None`` when it is invalid."""
    try:
        rank, size, split_dim = int(obj.rank), int(obj.size), int(obj.split_dim)
    except (AttributeError, TypeError, ValueError):
        return None
    if size <= 0 or not 0 <= rank < size or split_dim < 0:
        return None
    return rank, size, split_dim


def canonical(axes):
    return sorted(axes, key=lambda a: _ORDER[a.kind])


def tp_index(axes):
    for i, a in enumerate(axes):
        if a.kind == th.AXIS_TP:
            return i
    return None


def is_single_tp(axes):
    return len(axes) == 1 and axes[0].kind == th.AXIS_TP


def _suffix(a):
    s = f"{_KIND_NAMES[a.kind]}_{a.rank}of{a.size}"
    if a.split_dim is not None:
        s += f"_sd{a.split_dim}"
    if a.expert_id is not None:
        s += f"_eid{a.expert_id}"
    if a.stage_id is not None:
        s += f"_sid{a.stage_id}"
    return s


def shard_key(key, axes):
    """Where the shard ``axes`` describe is stored."""
    if is_single_tp(axes):
        return f"{key}_tp_{axes[0].rank}"
    return key + "".join("__" + _suffix(a) for a in canonical(axes))


def with_tp(axes, rank, size=None):
    """``axes`` with the TP axis at ``rank`` (of ``size``, when given)."""
    i = tp_index(axes)
    return [a.with_rank(rank, size) if j == i else a for j, a in enumerate(axes)]


def writer_key(key, rank, size, split_dim):
    return f"{key}__writer_{rank}of{size}_sd{split_dim}"


def parallelism_manifest_key(key):
    return key + "__parallelism_manifest"


def writer_manifest_key(key):
    return key + "__writer_manifest"


def shard_metadata(dtype, global_shape, local_shape, axes, data_bytes):
    """SHARD metadata with one layout axis per entry of ``axes`` (in the caller's order),
    as Mooncake's ``build_shard_metadata_from_shapes`` writes it."""
    local_shape = tuple(int(d) for d in local_shape)
    out = []
    for i, a in enumerate(axes):
        extra = a.expert_id if a.kind == th.AXIS_EP else a.stage_id if a.kind == th.AXIS_PP else 0
        extent = local_shape[a.split_dim] if a.split_dim is not None else 0
        split = -1 if a.split_dim is None else a.split_dim
        out.append(th.Axis(a.kind, i, a.rank, a.size, split, extra or 0, extent))
    return th.Metadata(
        dtype, tuple(int(d) for d in global_shape), local_shape, th.LAYOUT_SHARD, out, data_bytes
    )


def axes_of(meta) -> Optional[List[Axis]]:
    """The axes a stored shard's metadata records (canonical order), ``None`` for a whole
    tensor."""
    if meta.layout_kind != th.LAYOUT_SHARD:
        return None
    out = []
    for a in meta.axes:
        if a.kind not in _KIND_NAMES:
            return None
        out.append(
            Axis(
                a.kind,
                a.shard_rank,
                a.shard_count,
                a.split_dim if a.split_dim >= 0 else None,
                a.reserved0 if a.kind == th.AXIS_EP else None,
                a.reserved0 if a.kind == th.AXIS_PP else None,
            )
        )
    return canonical(out)


def matches(axes, meta):
    """Whether ``meta`` records exactly the shard ``axes`` asks for."""
    stored = axes_of(meta)
    if stored is None or len(stored) != len(axes):
        return False
    return all(x.fields() == y.fields() for x, y in zip(canonical(axes), stored))


def encode_manifest(dtype, global_shape, split_dim, shard_count):
    """Mooncake's ``WriterShardManifest``: header, then the global shape (8 × i64)."""
    shape = list(global_shape)
    head = _MANIFEST_HEAD.pack(
        MANIFEST_MAGIC, MANIFEST_VERSION, MANIFEST_SIZE, dtype, len(shape), split_dim,
        shard_count, 0,
    )
    return head + struct.pack("<8q", *(shape + [-1] * (th.MAX_DIMS - len(shape))))


def decode_manifest(raw):
    """(dtype, global shape, split dim, shard count) of a manifest, or ``None``."""
    if raw is None or len(raw) != MANIFEST_SIZE:
        return None
    magic, version, size, dtype, ndim, split_dim, count, _ = _MANIFEST_HEAD.unpack_from(raw)
    if (magic, version, size) != (MANIFEST_MAGIC, MANIFEST_VERSION, MANIFEST_SIZE):
        return None
    if not 0 <= ndim <= th.MAX_DIMS or count <= 0 or not 0 <= split_dim < ndim:
        return None
    shape = struct.unpack_from("<8q", raw, _MANIFEST_HEAD.size)[:ndim]
    if any(d < 0 for d in shape) or dtype not in th.DTYPE_NAMES:
        return None
    return dtype, tuple(shape), split_dim, count
