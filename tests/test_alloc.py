"""The output-buffer cache: large outputs reuse memory only once nothing refers to it."""

from __future__ import annotations

import gc
import mmap
import os
import subprocess
import sys
import threading
import weakref
from typing import Any

import numpy as np
import pytest

import ipsecstats
from ipsecstats import _alloc
from ipsecstats._alloc import CACHED_MIN_BYTES, MappingCache, aligned_empty

BIG = CACHED_MIN_BYTES // 168 + 1  # records: just over the cached size

pytestmark = pytest.mark.skipif(not _alloc.CACHE.limit, reason="IPSECSTATS_BUFFER_CACHE_MB=0")


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _mapping(a: np.ndarray) -> mmap.mmap:
    """The ``mmap`` object under a cache-backed array (array -> owner -> memoryview -> mmap).

    Reuse is proven by this object's identity, not by the data address: the reuse proof's
    same-size ``resize`` is an ``mremap`` that may move the memory (qemu-user does).
    """
    obj: Any = a
    while isinstance(obj, np.ndarray):
        obj = obj.base
    assert isinstance(obj, memoryview) and isinstance(obj.obj, mmap.mmap), type(obj)
    return obj.obj


def test_large_outputs_are_aligned_writeable_and_reused(monkeypatch):
    # a cache of its own without decay: under emulation, more than the decay's second may pass
    # before the next output (the decay has tests of its own in test_buffers_hardening)
    monkeypatch.setattr(_alloc, "CACHE", MappingCache(_alloc.CACHE.limit, decay=None))
    first = aligned_empty(BIG, ipsecstats.RECORD_DTYPE)
    assert first.flags.writeable and first.flags.c_contiguous
    assert _address(first) % _alloc.ALIGNMENT == 0
    first.view(np.uint8)[-8:] = 0xA5  # fresh anonymous memory reads zeros
    mapping = weakref.ref(_mapping(first))  # no strong reference: it would forbid the reuse
    del first
    gc.collect()
    again = aligned_empty(BIG, ipsecstats.RECORD_DTYPE)
    assert _mapping(again) is mapping()  # the same mapping, already faulted in
    assert _address(again) % _alloc.ALIGNMENT == 0 and np.all(again.view(np.uint8)[-8:] == 0xA5)


def test_a_view_keeps_its_memory_from_being_reused():
    owner = aligned_empty(CACHED_MIN_BYTES // 8, np.uint64)
    owner[:] = 7
    view = owner[100:200]
    del owner
    gc.collect()
    other = aligned_empty(CACHED_MIN_BYTES // 8, np.uint64)  # not on memory the view still uses
    other[:] = 9
    assert np.all(view == 7)
    assert not np.shares_memory(view, other)


def test_results_that_are_kept_are_never_overwritten():
    data = np.arange(BIG * 21, dtype=np.uint64).view(np.uint8)
    kept = [ipsecstats.decode(data, copy=True) for _ in range(3)]
    for r in kept:
        assert r.view(np.uint8).tobytes() == data.tobytes()
    assert not any(np.shares_memory(a, b) for i, a in enumerate(kept) for b in kept[i + 1:])


def test_the_cache_stays_within_its_limit():
    cache = MappingCache(limit=3 * 2 * 1024 * 1024, decay=None)  # no second's decay between the steps
    views = [cache.take(2 * 1024 * 1024) for _ in range(5)]
    assert cache.cached_bytes() == 0
    del views
    gc.collect()
    assert cache.cached_bytes() == 3 * 2 * 1024 * 1024
    cache.clear()
    assert cache.cached_bytes() == 0


def test_a_mapping_more_than_twice_too_big_is_not_reused():
    cache = MappingCache(limit=1 << 30, decay=None)
    big = cache.take(8 * 1024 * 1024)
    del big
    gc.collect()
    small = cache.take(2 * 1024 * 1024)
    assert small.nbytes == 2 * 1024 * 1024 and not np.shares_memory(small, np.zeros(1))
    assert cache.cached_bytes() == 8 * 1024 * 1024


def test_concurrent_allocations_do_not_share_memory():
    errors = []

    def work(seed: int) -> None:
        for k in range(6):
            a = aligned_empty(CACHED_MIN_BYTES // 8, np.uint64)
            a[:] = seed * 100 + k
            gc.collect() if k % 3 == 0 else None
            if not np.all(a == seed * 100 + k):
                errors.append((seed, k))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize(("value", "expect"), [("0", "numpy"), ("64", "cache")])
def test_the_environment_variable_sets_the_limit(value, expect):
    code = (
        "import numpy as np; from ipsecstats._alloc import aligned_empty, CACHE; "
        "a = aligned_empty(20 * 2**20, np.uint8); "
        "print(CACHE.limit, type(a.base.base if a.base is not None else None).__name__)"
    )
    env = {**os.environ, "IPSECSTATS_BUFFER_CACHE_MB": value}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    limit, base = out.stdout.split()
    assert int(limit) == int(value) * 2**20
    assert (base == "memoryview") == (expect == "cache")


def test_a_malformed_environment_variable_is_a_clear_error():
    env = {**os.environ, "IPSECSTATS_BUFFER_CACHE_MB": "lots"}
    out = subprocess.run([sys.executable, "-c", "import ipsecstats"], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "IPSECSTATS_BUFFER_CACHE_MB must be a whole number of megabytes" in out.stderr


def test_memory_reached_around_the_owner_is_not_reused():
    words = CACHED_MIN_BYTES // 8
    owner_view = aligned_empty(words, np.uint64)
    owner_view[:] = 7
    around = np.frombuffer(owner_view.base.base, np.uint64)  # skips the tracked owner array
    del owner_view
    gc.collect()
    other = aligned_empty(words, np.uint64)
    other[:] = 99
    assert np.all(around[:words] == 7)
    assert not np.shares_memory(around, other)


def test_release_buffers_empties_the_cache():
    a = aligned_empty(BIG, ipsecstats.RECORD_DTYPE)
    del a
    gc.collect()
    assert _alloc.CACHE.cached_bytes() > 0
    assert ipsecstats.release_buffers() > 0
    assert _alloc.CACHE.cached_bytes() == 0
    assert ipsecstats.release_buffers() == 0
