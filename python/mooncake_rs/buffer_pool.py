"""Mooncake's ``mooncake.buffer_pool`` module: the buffer pool classes of
:mod:`mooncake_rs.store`, for code that imports them from here
(``from mooncake_rs.buffer_pool import BufferPool``)."""

from .store import BufferPool, RegisteredBufferPool

__all__ = ["BufferPool", "RegisteredBufferPool"]
