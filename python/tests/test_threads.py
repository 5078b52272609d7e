"""One store object shared by 8 Python threads doing mixed puts and gets."""

import sys
import threading
import time

import numpy as np


def test_eight_threads_mixed(store):
    errors = []

    def worker(t):
        try:
            rng = np.random.default_rng(t)
            mine = {}
            for i in range(60):
                key = f"t{t}-{i}"
                val = rng.integers(0, 256, int(rng.integers(1, 200_000)), dtype=np.uint8).tobytes()
                if i % 3 == 2:
                    assert store.put_batch([key], [val]) == 0
                else:
                    assert store.put(key, val) == 0
                mine[key] = val
                # read back one of this thread's keys, through a different call each time
                probe = list(mine)[int(rng.integers(0, len(mine)))]
                if i % 2:
                    assert store.get(probe) == mine[probe]
                else:
                    out = bytearray(len(mine[probe]))
                    assert store.get_into(probe, out, len(out)) == len(out)
                    assert bytes(out) == mine[probe]
            got = store.get_batch(list(mine))
            assert got == list(mine.values())
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((t, repr(e)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_gil_is_released_during_calls(store):
    # With a huge switch interval the main thread keeps the GIL unless it lets go itself,
    # so the ticker (which sleeps between ticks) advances during a call only if that call
    # released the GIL.
    value = b"v" * (8 << 20)
    keys = [f"gil{i}" for i in range(8)]
    assert store.put_batch(keys, [value] * 8) == 0
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.0005)

    old = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    th = threading.Thread(target=ticker)
    try:
        th.start()
        time.sleep(0.05)
        before = len(ticks)
        got = store.get_batch(keys)
        after = len(ticks)
    finally:
        stop.set()
        sys.setswitchinterval(old)
        th.join()
    assert got == [value] * 8
    assert after > before
