"""BufferPool and its leases against a real master and store node: bytes through the
store from and into leases, overflow buffers, limits, blocking, and every refusal."""

import gc
import threading
import time

import numpy as np
import pytest

from conftest import new_store
from mooncake_rs.store import (
    BufferLease,
    BufferPool,
    ErrorCode,
    MooncakeDistributedStore,
    RegisteredBufferLease,
    RegisteredBufferLeaseView,
    RegisteredBufferPool,
    _get_pyclient_from_wrapper,
)

MB = 1 << 20
INVALID = int(ErrorCode.INVALID_PARAMS)


def pattern(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.fixture
def small(cluster):
    """A client with a 1 MiB local buffer."""
    s = new_store(cluster.master_addr, local_buffer_size=MB)
    try:
        yield s
    finally:
        s.remove_all(force=True)
        s.close()


def test_lease_round_trip_through_the_store(store):
    pool = BufferPool(store)
    data = pattern(300_000, 1)
    with pool.buffer(len(data)) as lease:
        view = lease.buffer
        assert len(view) == lease.size == len(data) and not view.readonly
        view[:] = data
        del view
        assert lease.ptr % 64 == 0
        assert store.put_from("bp-a", lease.ptr, lease.size) == 0
    with pool.acquire(len(data) + 10) as dst:
        assert store.get_into("bp-a", dst.ptr, dst.size) == len(data)
        view = dst.buffer
        assert bytes(view[: len(data)]) == data
        del view
    pool.close()
    assert store.get("bp-a") == data


def test_leases_are_registered_for_range_reads(store):
    # get_into_ranges sizes a raw address by its registered range: a lease's address is
    # registered (the local buffer) without a register_buffer call of the caller's.
    data = pattern(5000, 2)
    assert store.put("bp-r", data) == 0
    pool = BufferPool(store)
    lease = pool.acquire(100)
    res = store.get_into_ranges([lease.ptr], [["bp-r"]], [[[0, 50]]], [[[10, 4000]]], [[[50, 50]]])
    assert res == [[[50, 50]]]
    view = lease.buffer
    assert bytes(view) == data[10:60] + data[4000:4050]
    del view
    lease.release()
    pool.close()


def test_overflow_lease_is_registered_then_unregistered(small):
    pool = BufferPool(small, min_size_class=4096, alignment=4096)
    local = pool.acquire(MB)  # the whole local buffer
    over = pool.acquire(5000, block=False)
    assert over.ptr % 4096 == 0
    assert not local.ptr <= over.ptr < local.ptr + MB
    # Registered with the store: an overlapping registration is refused.
    assert small.register_buffer(over.ptr + 8, 8) == INVALID
    data = pattern(5000, 3)
    view = over.buffer
    view[:] = data
    del view
    assert small.put_from("bp-o", over.ptr, over.size) == 0
    over_ptr = over.ptr
    over.release()
    assert small.unregister_buffer(over_ptr) == INVALID  # already unregistered
    local.release()
    assert small.get("bp-o") == data
    pool.close()


def test_capacity_exhaustion_and_timeout(small):
    pool = BufferPool(small)  # max_bytes=0: twice the 1 MiB local buffer
    with pytest.raises(RuntimeError, match="capacity"):
        pool.acquire(2 * MB + 1)
    with pytest.raises(RuntimeError, match="capacity"):
        pool.acquire((1 << 64) - 1)
    a = pool.acquire(MB)
    b = pool.acquire(MB)  # overflow
    with pytest.raises(RuntimeError, match="exhausted"):
        pool.acquire(1, block=False)
    with pytest.raises(RuntimeError, match="timed out"):
        pool.acquire(1, timeout=0.05)
    with pytest.raises(RuntimeError, match="non-negative"):
        pool.acquire(1, timeout=-1)
    b.release()
    c = pool.acquire(1, block=False)
    for lease in (a, c):
        lease.release()
    pool.close()


def test_max_bytes_below_the_local_buffer_is_raised_to_it(small):
    pool = BufferPool(small, 4096)
    lease = pool.acquire(MB)
    with pytest.raises(RuntimeError, match="exhausted"):
        pool.acquire(1, block=False)
    lease.release()
    pool.close()


def test_max_regions_and_blocking_waiters(store):
    pool = BufferPool(store, max_regions=1, block_on_exhaustion=False)
    lease = pool.acquire(1)
    with pytest.raises(RuntimeError, match="exhausted"):
        pool.acquire(1)
    got = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire(1, block=True, timeout=30)))
    waiter.start()
    time.sleep(0.2)  # the waiter blocks with the GIL released: this thread still runs
    assert waiter.is_alive() and not got
    lease.release()
    waiter.join(timeout=30)
    assert not waiter.is_alive() and len(got) == 1
    got[0].release()
    pool.close()


def test_release_rules(store):
    pool = BufferPool(store)
    lease = pool.acquire(4)
    view = lease.buffer
    view[:] = b"abcd"
    part = view[1:3]
    del view
    with pytest.raises(RuntimeError, match="exported views"):
        lease.release()  # the slice still holds the export
    assert bytes(part) == b"bc"
    del part
    gc.collect()
    lease.release()
    lease.release()  # a second release does nothing
    with pytest.raises(RuntimeError, match="closed"):
        lease.ptr
    with pytest.raises(RuntimeError, match="closed"):
        lease.buffer
    assert lease.size == 4
    with pytest.raises(RuntimeError, match="exported views"):
        with pool.acquire(8) as held:
            kept = held.buffer  # alive at __exit__
    del kept
    gc.collect()
    held.release()
    pool.close()


@pytest.mark.parametrize("size", [0, 1, 65, 128 * 1024 + 1])
def test_any_size(store, size):
    pool = BufferPool(store, max_size_class=128 * 1024, alignment=4096)
    lease = pool.acquire(size)
    assert lease.size == size
    view = lease.buffer
    assert len(view) == size
    del view
    lease.release()
    pool.close()


def test_garbage_collected_lease_goes_back(small):
    pool = BufferPool(small, max_regions=1)
    lease = pool.acquire(MB)
    del lease
    gc.collect()
    again = pool.acquire(MB, block=False)
    again.release()
    pool.close()


def test_close_rules(store):
    pool = BufferPool(store, prewarm_size=4096, prewarm_count=4)
    lease = pool.acquire(1)
    with pytest.raises(RuntimeError, match="active leases"):
        pool.close()
    other = pool.acquire(1)  # still open after the failed close
    other.release()
    lease.release()
    pool.close()
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.acquire(1)
    pool.prewarm(4096, 2)


def test_bad_construction(store, cluster):
    with pytest.raises(RuntimeError, match="alignment"):
        BufferPool(store, alignment=12345)
    with pytest.raises(RuntimeError, match="alignment"):
        BufferPool(store, alignment=4)
    with pytest.raises(RuntimeError, match="positive"):
        BufferPool(store, min_size_class=0)
    with pytest.raises(RuntimeError, match="not initialized"):
        BufferPool(MooncakeDistributedStore())
    with pytest.raises(RuntimeError, match="not initialized"):
        BufferPool(None)
    with pytest.raises(RuntimeError, match="_get_pyclient_capsule"):
        BufferPool(object())
    s = new_store(cluster.master_addr, local_buffer_size=0)
    try:
        with pytest.raises(RuntimeError, match="local buffer"):
            BufferPool(s)
    finally:
        s.close()
    closed = new_store(cluster.master_addr)
    closed.close()
    with pytest.raises(RuntimeError, match="not initialized"):
        BufferPool(closed)


class Wrapper:
    """A store wrapper of the kind Mooncake's pool accepts: it hands over the store through
    ``_get_pyclient_capsule()`` and gets the overflow (un)registrations."""

    def __init__(self, store):
        self.store = store
        self.calls = []

    def _get_pyclient_capsule(self):
        return self.store._get_pyclient_capsule()

    def register_buffer(self, ptr, size):
        self.calls.append(("register", ptr, size))
        return self.store.register_buffer(ptr, size)

    def unregister_buffer(self, ptr):
        self.calls.append(("unregister", ptr))
        return self.store.unregister_buffer(ptr)


def test_store_wrapper_and_capsules(small):
    w = Wrapper(small)
    pool = BufferPool(w)
    local = pool.acquire(MB)
    over = pool.acquire(10)
    ptr = over.ptr
    over.release()
    local.release()
    pool.close()
    assert w.calls == [("register", ptr, 10), ("unregister", ptr)]
    assert type(_get_pyclient_from_wrapper(small)).__name__ == "PyCapsule"
    assert _get_pyclient_from_wrapper(MooncakeDistributedStore()) is None
    assert MooncakeDistributedStore()._get_pyclient_capsule() is None
    with pytest.raises(TypeError):
        _get_pyclient_from_wrapper(object())
    with pytest.raises(RuntimeError, match="not initialized"):
        BufferPool(Wrapper(MooncakeDistributedStore()))


def test_old_names_are_the_same_classes():
    from mooncake_rs import buffer_pool

    assert RegisteredBufferPool is BufferPool is buffer_pool.BufferPool
    assert buffer_pool.RegisteredBufferPool is BufferPool
    assert RegisteredBufferLease is BufferLease
    assert RegisteredBufferLeaseView.__name__ == "BufferLeaseView"


def test_constructor_defaults_are_mooncakes():
    import inspect

    params = inspect.signature(BufferPool).parameters
    assert {n: p.default for n, p in params.items() if n != "store"} == {
        "max_bytes": 0,
        "min_size_class": 64 * 1024,
        "max_size_class": None,
        "alignment": 8 * 1024 * 1024,
        "block_on_exhaustion": True,
        "default_timeout": None,
        "max_regions": None,
        "prewarm_size": None,
        "prewarm_count": 0,
    }
