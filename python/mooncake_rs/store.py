"""Mooncake's ``mooncake.store`` API over mooncake-rs.

Switching an inference engine's connector is a change of import::

    from mooncake_rs.store import MooncakeDistributedStore, ReplicateConfig

Methods return ``0`` or a negative :class:`ErrorCode` value (sizes and counts where
Mooncake returns them); ``get`` of a missing key returns ``b''``.
"""

from enum import IntEnum

from . import _tensor_header, _tensors
from ._native import (
    BufferHandle,
    BufferLease,
    BufferLeaseView,
    BufferPool,
    Descriptor,
    DiskDescriptor,
    EngramStore,
    EngramStoreConfig,
    MemoryDescriptor,
    MooncakeDistributedNoFRegister,
    ObjectDataType,
    ReplicaDescriptor,
    ReplicaStatus,
    ReplicateConfig,
    SoftPinAction,
    MooncakeHostMemAllocator,
    QueryTaskResponse,
    TaskStatus,
    TaskType,
    _get_pyclient_from_wrapper,
    bind_to_numa_node,
    error_codes as _error_codes,
    get_alloc_func_addr,
    get_free_func_addr,
)
from ._native import MooncakeDistributedStore as _NativeStore
from ._parallel_store import ParallelismMethods as _ParallelismMethods
from ._parallelism import ParallelAxis, ReadTarget, TensorParallelism
from ._tensor_store import TensorMethods as _TensorMethods

# Mooncake's older names of the buffer pool classes: the same classes.
RegisteredBufferPool = BufferPool
RegisteredBufferLease = BufferLease
RegisteredBufferLeaseView = BufferLeaseView


class MooncakeDistributedStore(_ParallelismMethods, _TensorMethods, _NativeStore):
    """Mooncake's ``MooncakeDistributedStore``: the byte-level methods (native), the
    tensor methods (Mooncake's tensor object format, ``_tensor_store.py``) and their
    ``*_with_parallelism`` forms (``_parallel_store.py``)."""

    def init_all(self, protocol, device_name, mount_segment_size=16 << 20):
        """Mooncake's one-call set-up: this host as ``localhost:12345``, a 1 GiB local
        buffer, ``mount_segment_size`` bytes of hosted segment, the master at
        ``127.0.0.1:50051``. 0 or a negative code, as ``setup``."""
        return self.setup(
            "localhost:12345",
            "P2PHANDSHAKE",
            mount_segment_size,
            1 << 30,
            protocol,
            device_name,
            "127.0.0.1:50051",
        )



def _tensor_metadata_size():
    """Bytes of Mooncake's tensor header (304)."""
    return _tensor_header.METADATA_SIZE


def _serialize_tensor(tensor):
    """``(header bytes, data address, data bytes, owner)`` of a tensor, as Mooncake's
    ``_serialize_tensor``; the owner keeps the data alive."""
    try:
        info = _tensors.tensor_info(tensor)
    except ValueError as e:
        raise ValueError("unsupported tensor for Mooncake tensor serialization") from e
    return _tensor_header.encode(info.full_metadata()), info.ptr, info.nbytes, info.owner


def _deserialize_tensor(payload):
    """The tensor in ``payload`` (header + bytes); ``ValueError`` when it is not one."""
    t = _tensors.from_object_bytes(memoryview(payload), len(payload))
    if t is None:
        raise ValueError("invalid serialized Mooncake tensor payload")
    return t


# Mooncake's binding exports enum members at module level too (pybind11 export_values).
for _enum, _names in (
    (ObjectDataType, "UNKNOWN KVCACHE TENSOR WEIGHT SAMPLE ACTIVATION GRADIENT OPTIMIZER_STATE"
     " METADATA GENERAL"),
    (ReplicaStatus, "UNDEFINED INITIALIZED PROCESSING COMPLETE REMOVED FAILED"),
    (TaskType, "REPLICA_COPY REPLICA_MOVE"),
    # After ReplicaStatus, as in Mooncake's module: PROCESSING and FAILED name the task
    # states at module level.
    (TaskStatus, "PENDING PROCESSING SUCCESS FAILED"),
):
    globals().update({_n: getattr(_enum, _n) for _n in _names.split()})

#: Codes of Mooncake's ``ErrorCode`` this build never returns (its tiers and services
#: have no counterpart here), listed so code that names them keeps working.
_MOONCAKE_ONLY_CODES = {
    "SHARD_INDEX_OUT_OF_RANGE": -100,
    "ETCD_OPERATION_ERROR": -1000,
    "ETCD_KEY_NOT_EXIST": -1001,
    "ETCD_TRANSACTION_FAIL": -1002,
    "ETCD_CTX_CANCELLED": -1003,
    "NOT_SUPPORTED": -1012,
    "FILE_NOT_FOUND": -1100,
    "FILE_OPEN_FAIL": -1101,
    "FILE_READ_FAIL": -1102,
    "FILE_WRITE_FAIL": -1103,
    "FILE_INVALID_BUFFER": -1104,
    "FILE_LOCK_FAIL": -1105,
    "FILE_INVALID_HANDLE": -1106,
    "BUCKET_NOT_FOUND": -1200,
    "BUCKET_ALREADY_EXISTS": -1201,
    "KEYS_EXCEED_BUCKET_LIMIT": -1202,
    "KEYS_ULTRA_LIMIT": -1203,
    "UNABLE_OFFLOAD": -1300,
    "UNABLE_OFFLOADING": -1301,
    "JOB_NOT_FOUND": -1402,
    "SERIALIZE_UNSUPPORTED": -1500,
    "SERIALIZE_FAIL": -1501,
    "DESERIALIZE_FAIL": -1502,
    "PERSISTENT_FAIL": -1503,
    "DFS_NETWORK_TIMEOUT": -1600,
    "DFS_SERVICE_UNAVAILABLE": -1601,
    "DFS_QUOTA_EXCEEDED": -1602,
    "DFS_PERMISSION_DENIED": -1603,
    "DFS_STALE_HANDLE": -1604,
    "DFS_PARTIAL_WRITE": -1605,
    "TENANT_QUOTA_EXCEEDED": -1700,
    "TENANT_NOT_REGISTERED": -1701,
    "TENANT_NOT_EMPTY": -1702,
}

_ALL_CODES = dict(_error_codes(), **_MOONCAKE_ONLY_CODES)

#: Mooncake's error codes, every one of them (``ErrorCode.OBJECT_NOT_FOUND == -704``).
ErrorCode = IntEnum("ErrorCode", _ALL_CODES, module=__name__)

globals().update(_ALL_CODES)

__all__ = [
    "bind_to_numa_node",
    "get_alloc_func_addr",
    "get_free_func_addr",
    "MooncakeHostMemAllocator",
    "BufferHandle",
    "BufferLease",
    "BufferLeaseView",
    "BufferPool",
    "Descriptor",
    "DiskDescriptor",
    "EngramStore",
    "EngramStoreConfig",
    "ErrorCode",
    "MemoryDescriptor",
    "ObjectDataType",
    "MooncakeDistributedStore",
    "MooncakeDistributedNoFRegister",
    "ParallelAxis",
    "RegisteredBufferLease",
    "RegisteredBufferLeaseView",
    "RegisteredBufferPool",
    "ReadTarget",
    "TensorParallelism",
    "ReplicaDescriptor",
    "ReplicaStatus",
    "ReplicateConfig",
    "SoftPinAction",
    "QueryTaskResponse",
    "TaskStatus",
    "TaskType",
] + list(_ALL_CODES)
