"""Tensors in and out of the store, in Mooncake's tensor object format
(``_tensor_header.py``), so a tensor written by one implementation reads back through the
other.

Tensors are torch tensors when torch is importable. Without torch, numpy arrays take their
place through the same header code (bfloat16 and float8 through ``ml_dtypes``); a method
handed neither says so. Methods ending in ``_cuda`` need CUDA, which this build has not.
"""

import ctypes
import importlib

from . import _tensor_header as th

INVALID_PARAMS = -600

_STORAGE = {  # numpy storage of each dtype for torch.from_numpy (Mooncake's choice)
    "float16": "uint16",
    "bfloat16": "uint16",
    "float8_e4m3fn": "uint8",
    "float8_e5m2": "uint8",
}


def _module(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _torch():
    return _module("torch")


def _numpy():
    np = _module("numpy")
    if np is None:
        raise ImportError("tensor methods need torch or numpy; install one of them")
    return np


def _np_dtype(name):
    np = _numpy()
    if name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        ml = _module("ml_dtypes")
        if ml is None:
            raise ImportError(f"{name} arrays without torch need ml_dtypes (pip install ml_dtypes)")
        return np.dtype(getattr(ml, name))
    return np.dtype(name)


class TensorInfo:
    """A tensor made contiguous: its header fields, its bytes' address and length, and the
    object that keeps those bytes alive."""

    def __init__(self, owner, ptr, nbytes, dtype_name, shape):
        if dtype_name not in th.DTYPES:
            raise ValueError(f"unsupported tensor dtype {dtype_name}")
        if len(shape) > th.MAX_DIMS:
            raise ValueError(f"a tensor has at most {th.MAX_DIMS} dimensions")
        self.owner, self.ptr, self.nbytes = owner, ptr, nbytes
        self.dtype = th.DTYPES[dtype_name][0]
        self.dtype_name, self.shape = dtype_name, tuple(int(d) for d in shape)

    def full_metadata(self):
        return th.full(self.dtype, self.shape, self.nbytes)


def is_torch(obj):
    return hasattr(obj, "data_ptr") and hasattr(obj, "element_size") and hasattr(obj, "numel")


def tensor_info(obj):
    """The ``TensorInfo`` of a torch tensor or a numpy array; ``ValueError`` otherwise."""
    if is_torch(obj):
        t = obj.contiguous()
        if t.device.type != "cpu":
            # No device transfers in this build: the bytes go through host memory.
            t = t.cpu()
        name = str(t.dtype).removeprefix("torch.")
        return TensorInfo(t, t.data_ptr(), t.numel() * t.element_size(), name, tuple(t.shape))
    np = _module("numpy")
    if np is not None and isinstance(obj, np.ndarray):
        # ascontiguousarray would turn a 0-d array into a 1-d one
        a = obj if obj.flags.c_contiguous else np.ascontiguousarray(obj)
        return TensorInfo(a, a.ctypes.data, a.nbytes, a.dtype.name, a.shape)
    raise ValueError(f"not a tensor: {type(obj).__name__} (pass a torch tensor or a numpy array)")


def narrow(obj, dim, start, length):
    """A contiguous copy of ``obj[..., start:start+length, ...]`` along ``dim``."""
    if is_torch(obj):
        return obj.narrow(dim, start, length).contiguous()
    np = _numpy()
    index = [slice(None)] * obj.ndim
    index[dim] = slice(start, start + length)
    return np.ascontiguousarray(obj[tuple(index)])


def make_tensor(meta, data):
    """A tensor (torch when available, else numpy) of ``meta``'s dtype and local shape over
    ``data`` (a writable buffer of exactly ``meta.data_bytes`` bytes, which it keeps)."""
    torch = _torch()
    name, shape = meta.dtype_name, tuple(meta.local_shape)
    np = _numpy()
    if torch is not None:
        tdtype = getattr(torch, name)
        if meta.data_bytes == 0:
            return torch.empty(shape, dtype=tdtype)
        arr = np.frombuffer(data, dtype=_STORAGE.get(name, name)).reshape(shape)
        t = torch.from_numpy(arr)
        return t.view(tdtype) if name in _STORAGE else t
    return np.frombuffer(data, dtype=_np_dtype(name)).reshape(shape)


def from_object_bytes(buf, total_length):
    """The tensor in a whole stored object (copied out of ``buf``), or ``None`` when the
    bytes are not a valid tensor object."""
    meta = th.decode(buf, total_length)
    if meta is None:
        return None
    data = bytearray(memoryview(buf)[meta.data_offset : meta.data_offset + meta.data_bytes])
    return make_tensor(meta, data)


def view_at(addr, total_length):
    """The tensor in an object just read to ``addr``, as a view of that memory."""
    if total_length < th.METADATA_SIZE:
        return None
    raw = (ctypes.c_uint8 * total_length).from_address(addr)
    meta = th.decode(memoryview(raw).cast("B"), total_length)
    if meta is None:
        return None
    if meta.data_bytes == 0:
        return make_tensor(meta, bytearray())
    data = (ctypes.c_uint8 * meta.data_bytes).from_address(addr + meta.data_offset)
    return make_tensor(meta, data)


def address(buf):
    """The address of a buffer argument: an integer as given, else the start of the object's
    buffer (kept by the caller for the call)."""
    if isinstance(buf, int):
        return buf
    np = _numpy()
    return np.frombuffer(buf, dtype="uint8").ctypes.data


def save_file(key, tensor, file_name):
    """Writes ``{key: tensor}`` to a safetensors file (torch or numpy flavour)."""
    if is_torch(tensor):
        importlib.import_module("safetensors.torch").save_file({key: tensor}, file_name)
    else:
        importlib.import_module("safetensors.numpy").save_file({key: tensor}, file_name)


def load_file(file_name):
    """The tensors of a safetensors file, as torch tensors when torch is there."""
    flavour = "safetensors.torch" if _torch() is not None else "safetensors.numpy"
    return importlib.import_module(flavour).load_file(file_name)


def no_cuda(name):
    return RuntimeError(f"{name}: no CUDA in this build of mooncake-rs (CPU tensors only)")


def concat(tensors, dim):
    """The tensors joined along ``dim`` (contiguous)."""
    if all(is_torch(t) for t in tensors):
        return _torch().cat(list(tensors), dim=dim).contiguous()
    np = _numpy()
    return np.ascontiguousarray(np.concatenate(list(tensors), axis=dim))


def raw_bytes(info):
    """A copy of a ``TensorInfo``'s bytes."""
    return ctypes.string_at(info.ptr, info.nbytes) if info.nbytes else b""
