"""The output-buffer cache under threads, and without the GIL (free-threaded CPython).

Reuse rests on a reference-count proof that only the GIL makes exact, so without it no
mapping is reused and the process-wide cache is off; with it, outputs handed between
threads and dropped there (their finalizers run on the dropping thread, during other
threads' ``take``) never share memory with a live output.
"""

from __future__ import annotations

import gc
import os
import queue
import subprocess
import sys
import threading

import numpy as np
import pytest

from ipsecstats import _alloc
from ipsecstats._alloc import MappingCache

MB = 2**20


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_without_the_reference_count_proof_nothing_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = MappingCache(limit=64 * MB, decay=None)
    first = cache.take(4 * MB)
    first[:] = 0xAB
    del first
    gc.collect()
    assert cache.cached_bytes() == 4 * MB
    again = cache.take(4 * MB)
    assert np.all(again == 0xAB)  # with the proof: the same, already faulted-in memory
    del again
    gc.collect()
    monkeypatch.setattr(_alloc, "_COUNTED", False)
    fresh = cache.take(4 * MB)  # the cached mapping cannot be proven unreachable: a new one
    assert np.all(fresh == 0) and cache.cached_bytes() == 0  # zero-filled; the old one dropped
    cache.clear()


def test_a_build_without_the_gil_turns_the_cache_off() -> None:
    code = (
        "import sys; sys._is_gil_enabled = lambda: False\n"  # what a free-threaded build reports
        "import numpy as np\n"
        "from ipsecstats import _alloc\n"
        "a = _alloc.aligned_empty(_alloc.CACHED_MIN_BYTES // 8, np.uint64)\n"
        "print(_alloc._COUNTED, _alloc.CACHE.limit, a.base is not None and a.base.base is not None "
        "and isinstance(a.base.base, memoryview))\n"
    )
    env = dict(os.environ, IPSECSTATS_BUFFER_CACHE_MB="1024")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "0", "False"]  # a plain numpy array, no mapping


def test_outputs_handed_between_threads_never_share_memory() -> None:
    """Producers take buffers and fill them; consumers check and drop them, so finalizers give
    mappings back on the consumer threads while producers are inside ``take``."""
    cache = MappingCache(limit=48 * MB, decay=0.001)  # the decay thread drops mappings all the time
    handoff: queue.Queue[tuple[np.ndarray, int] | None] = queue.Queue(maxsize=6)
    errors: list[str] = []
    live: dict[int, int] = {}  # address -> tag of each output not yet dropped
    guard = threading.Lock()  # guards the test's bookkeeping only
    producers, consumers, per_producer = 3, 3, 40
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads as often as CPython allows

    def produce(seed: int) -> None:
        for k in range(per_producer):
            a = cache.take(MB * (2 + k % 3)).view(np.uint64)
            tag = seed * 1000 + k
            with guard:
                if _address(a) in live:
                    errors.append(f"{tag} got the live memory of {live[_address(a)]}")
                live[_address(a)] = tag
            a[:] = tag
            handoff.put((a, tag))
            del a

    def consume() -> None:
        while (item := handoff.get()) is not None:
            a, tag = item
            if not np.all(a == tag):
                errors.append(f"{tag} was overwritten")
            with guard:
                live.pop(_address(a), None)
            del a, item
            if tag % 7 == 0:
                gc.collect()

    try:
        threads = [threading.Thread(target=produce, args=(s,)) for s in range(producers)]
        workers = [threading.Thread(target=consume) for _ in range(consumers)]
        for t in threads + workers:
            t.start()
        for t in threads:
            t.join()
        for _ in workers:
            handoff.put(None)
        for t in workers:
            t.join()
    finally:
        sys.setswitchinterval(old_interval)
        cache.clear()
    assert errors == []
