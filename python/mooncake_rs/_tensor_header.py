"""Mooncake's tensor object format, byte for byte: a 304-byte ``TensorMetadata`` (header,
then layout) followed by the tensor's bytes, all little-endian.

``TensorObjectHeader`` (40 bytes): magic ``0x4d4f4f4e``, version 1, header size 304, dtype,
ndim, layout kind (0 full, 1 shard), reserved flags, data offset (304), data bytes.
``TensorLayoutMetadata`` (264 bytes): global and local shape (8 × i64 each, unused dims
``-1``), axis count, reserved, 4 layout axes (kind, axis index, shard rank, shard count,
split dim, reserved i32, reserved i64).

This module knows only bytes and shapes; ``_tensors.py`` maps torch / numpy dtypes to the
codes here.
"""

import struct
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

MAGIC = 0x4D4F4F4E
VERSION = 1
MAX_DIMS = 8
MAX_AXES = 4

_HEADER = struct.Struct("<IHHiiIIQQ")
_SHAPE = struct.Struct("<8q")
_AXES_HEAD = struct.Struct("<II")
_AXIS = struct.Struct("<iiiiiiq")
METADATA_SIZE = _HEADER.size + 2 * _SHAPE.size + _AXES_HEAD.size + MAX_AXES * _AXIS.size
assert METADATA_SIZE == 304, METADATA_SIZE

LAYOUT_FULL = 0
LAYOUT_SHARD = 1

#: Layout axis kinds.
AXIS_DP, AXIS_TP, AXIS_EP, AXIS_PP, AXIS_RESERVED = range(5)

#: Mooncake's ``TensorDtype`` codes and element sizes, by name.
DTYPES = {
    "float32": (0, 4),
    "float64": (1, 8),
    "int8": (2, 1),
    "uint8": (3, 1),
    "int16": (4, 2),
    "uint16": (5, 2),
    "int32": (6, 4),
    "uint32": (7, 4),
    "int64": (8, 8),
    "uint64": (9, 8),
    "bool": (10, 1),
    "float16": (11, 2),
    "bfloat16": (12, 2),
    "float8_e4m3fn": (13, 1),
    "float8_e5m2": (14, 1),
}
DTYPE_NAMES = {code: name for name, (code, _) in DTYPES.items()}


@dataclass
class Axis:
    """One layout axis of a shard."""

    kind: int
    axis_index: int
    shard_rank: int
    shard_count: int
    split_dim: int
    reserved0: int = 0
    reserved1: int = 0


@dataclass
class Metadata:
    """A decoded ``TensorMetadata``."""

    dtype: int
    global_shape: Tuple[int, ...]
    local_shape: Tuple[int, ...]
    layout_kind: int = LAYOUT_FULL
    axes: List[Axis] = field(default_factory=list)
    data_bytes: int = 0
    data_offset: int = METADATA_SIZE
    reserved_flags: int = 0

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES[self.dtype]

    def expected_bytes(self) -> int:
        n = DTYPES[self.dtype_name][1]
        for d in self.local_shape:
            n *= d
        return n


def _shape(dims) -> bytes:
    dims = list(dims)
    return _SHAPE.pack(*(dims + [-1] * (MAX_DIMS - len(dims))))


def encode(m: Metadata) -> bytes:
    """The 304 bytes of ``m``."""
    if len(m.global_shape) != len(m.local_shape) or len(m.local_shape) > MAX_DIMS:
        raise ValueError(f"a tensor has at most {MAX_DIMS} dimensions and one rank")
    if len(m.axes) > MAX_AXES:
        raise ValueError(f"at most {MAX_AXES} layout axes")
    out = _HEADER.pack(
        MAGIC,
        VERSION,
        METADATA_SIZE,
        m.dtype,
        len(m.local_shape),
        m.layout_kind,
        m.reserved_flags,
        m.data_offset,
        m.data_bytes,
    )
    out += _shape(m.global_shape) + _shape(m.local_shape)
    out += _AXES_HEAD.pack(len(m.axes), 0)
    axes = [
        _AXIS.pack(
            a.kind, a.axis_index, a.shard_rank, a.shard_count, a.split_dim, a.reserved0, a.reserved1
        )
        for a in m.axes
    ]
    out += b"".join(axes) + bytes(_AXIS.size * (MAX_AXES - len(m.axes)))
    return out


def decode(buf, total_length: int) -> Optional[Metadata]:
    """The metadata at the start of ``buf`` (an object of ``total_length`` bytes), or
    ``None`` when it is not a valid Mooncake tensor header for that length (the checks of
    Mooncake's ``ValidateTensorMetadata``)."""
    if total_length < METADATA_SIZE or len(buf) < METADATA_SIZE:
        return None
    raw = bytes(buf[:METADATA_SIZE])
    magic, version, hsize, dtype, ndim, kind, flags, off, nbytes = _HEADER.unpack_from(raw, 0)
    if (magic, version, hsize) != (MAGIC, VERSION, METADATA_SIZE):
        return None
    if dtype not in DTYPE_NAMES or not 0 <= ndim <= MAX_DIMS or kind > LAYOUT_SHARD:
        return None
    at = _HEADER.size
    gshape = _SHAPE.unpack_from(raw, at)
    lshape = _SHAPE.unpack_from(raw, at + _SHAPE.size)
    count, _ = _AXES_HEAD.unpack_from(raw, at + 2 * _SHAPE.size)
    if count > MAX_AXES:
        return None
    if not METADATA_SIZE <= off <= total_length or nbytes != total_length - off:
        return None
    if any(d < 0 for d in gshape[:ndim] + lshape[:ndim]):
        return None
    if any(d != -1 for d in gshape[ndim:] + lshape[ndim:]):
        return None
    first = at + 2 * _SHAPE.size + _AXES_HEAD.size
    axes = [Axis(*_AXIS.unpack_from(raw, first + i * _AXIS.size)) for i in range(count)]
    for a in axes:
        bad_kind = not AXIS_DP <= a.kind <= AXIS_RESERVED
        bad_rank = a.shard_count <= 0 or not 0 <= a.shard_rank < a.shard_count
        if bad_kind or bad_rank or not -1 <= a.split_dim < ndim:
            return None
    m = Metadata(dtype, gshape[:ndim], lshape[:ndim], kind, axes, nbytes, off, flags)
    return m if m.expected_bytes() == nbytes else None


def full(dtype: int, shape, data_bytes: int) -> Metadata:
    """Metadata of a whole tensor."""
    shape = tuple(int(d) for d in shape)
    return Metadata(dtype, shape, shape, LAYOUT_FULL, [], data_bytes)


def tp_shard(dtype: int, global_shape, local_shape, rank, size, split_dim, data_bytes):
    """Metadata of tensor-parallel shard ``rank`` of ``size`` along ``split_dim``, as
    Mooncake's ``build_tp_shard_metadata`` writes it."""
    local_shape = tuple(int(d) for d in local_shape)
    axis = Axis(AXIS_TP, 0, rank, size, split_dim, 0, local_shape[split_dim])
    return Metadata(
        dtype, tuple(int(d) for d in global_shape), local_shape, LAYOUT_SHARD, [axis], data_bytes
    )


def shard_range(dim_size: int, rank: int, count: int) -> Tuple[int, int]:
    """(start, length) of shard ``rank`` of ``count`` along a dimension of ``dim_size``."""
    if dim_size < 0 or count <= 0 or not 0 <= rank < count:
        return 0, 0
    start = dim_size * rank // count
    return start, dim_size * (rank + 1) // count - start
