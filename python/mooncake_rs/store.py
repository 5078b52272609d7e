"""Mooncake's ``mooncake.store`` API over mooncake-rs.

Switching an inference engine's connector is a change of import::

    from mooncake_rs.store import MooncakeDistributedStore, ReplicateConfig

Methods return ``0`` or a negative :class:`ErrorCode` value (sizes and counts where
Mooncake returns them); ``get`` of a missing key returns ``b''``.
"""

from enum import IntEnum

from ._native import (
    BufferHandle,
    Descriptor,
    MemoryDescriptor,
    MooncakeDistributedStore,
    ReplicaDescriptor,
    ReplicaStatus,
    ReplicateConfig,
    SoftPinAction,
    error_codes as _error_codes,
)

#: Mooncake's error codes (``ErrorCode.OBJECT_NOT_FOUND == -704``).
ErrorCode = IntEnum("ErrorCode", dict(_error_codes()), module=__name__)

globals().update({name: code for name, code in _error_codes()})

__all__ = [
    "BufferHandle",
    "Descriptor",
    "ErrorCode",
    "MemoryDescriptor",
    "MooncakeDistributedStore",
    "ReplicaDescriptor",
    "ReplicaStatus",
    "ReplicateConfig",
    "SoftPinAction",
] + [name for name, _ in _error_codes()]
