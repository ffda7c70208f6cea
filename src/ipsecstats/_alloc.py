"""Output buffers: aligned for the kernels' non-temporal stores, and recycled when large.

Fresh memory is expensive: the first touch of a new 336 MB array costs about 2.5 times
a memcpy of it (page faults and the kernel zeroing every page), so a loop that returns
a new large array per batch runs at a third of memory speed whatever the kernel does.
Large outputs therefore come from a small cache of anonymous mappings: when the last
array (or view) over one is gone, the mapping goes back to the cache, already faulted
in, and the next output of a similar size reuses it. The cache holds at most
``IPSECSTATS_BUFFER_CACHE_MB`` megabytes (default 1024; 0 turns it off); the memory is
private to the process (``MAP_PRIVATE``), so a fork copies it on write like any other.
"""

from __future__ import annotations

import mmap
import os
import threading
import weakref
from typing import Any

import numpy as np
import numpy.typing as npt

ALIGNMENT = 64  # one cache line; the kernels stream only to 16-byte aligned outputs

# Outputs larger than this (about the last-level cache) go out with non-temporal stores;
# below it, regular stores are faster (the output is read again while still cached).
STREAMING_THRESHOLD = 8 * 1024 * 1024

# Outputs from this size on come from the mapping cache; smaller ones from numpy, whose
# allocator reuses freed memory by itself.
CACHED_MIN_BYTES = 16 * 1024 * 1024
_GRANULE = 2 * 1024 * 1024  # a transparent huge page


def _cache_limit() -> int:
    text = os.environ.get("IPSECSTATS_BUFFER_CACHE_MB", "1024").strip()
    try:
        megabytes = int(text)
    except ValueError:
        raise ValueError(f"IPSECSTATS_BUFFER_CACHE_MB must be a whole number of megabytes, got {text!r}") from None
    return max(megabytes, 0) * 1024 * 1024


class MappingCache:
    """Anonymous mappings handed out as uint8 arrays and taken back when no array uses them.

    ``take(nbytes)`` returns a writeable uint8 array of ``nbytes`` over a mapping (a cached
    one of at most twice the size, else a new one). Every view or buffer made from that
    array keeps it alive (numpy stops its base chain at an array whose base is not an
    array), so a finalizer on it gives the mapping back only when nothing can reach the
    memory. The oldest mappings are dropped once the cache holds more than ``limit``
    bytes. Finalizers run inside garbage collection on any thread: hence the reentrant lock.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self._free: list[mmap.mmap] = []
        self._lock = threading.RLock()

    def take(self, nbytes: int) -> npt.NDArray[np.uint8]:
        size = -(-max(nbytes, 1) // _GRANULE) * _GRANULE
        with self._lock:
            fitting = [m for m in self._free if size <= len(m) <= 2 * size]
            mapping = min(fitting, key=len) if fitting else None
            if mapping is not None:
                self._free.remove(mapping)
        if mapping is None:
            mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            if hasattr(mmap, "MADV_HUGEPAGE"):
                mapping.madvise(mmap.MADV_HUGEPAGE)
        owner = np.frombuffer(mapping, dtype=np.uint8, count=nbytes)
        weakref.finalize(owner, self._give_back, mapping).atexit = False
        return owner

    def _give_back(self, mapping: mmap.mmap) -> None:
        with self._lock:
            self._free.append(mapping)
            while self._free and sum(len(m) for m in self._free) > self.limit:
                self._free.pop(0)  # dropped: unmapped once nothing refers to it

    def cached_bytes(self) -> int:
        with self._lock:
            return sum(len(m) for m in self._free)

    def clear(self) -> None:
        """Drop every cached mapping (the memory returns to the system)."""
        with self._lock:
            self._free.clear()


CACHE = MappingCache(_cache_limit())


def _cached(shape: int | tuple[int, ...], dtype: Any) -> tuple[npt.NDArray[Any] | None, tuple[int, ...], int]:
    """A cache-backed array when the output is large and the cache is on, else None."""
    dt = np.dtype(dtype)
    shape_t = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = int(np.prod(shape_t, dtype=np.int64)) * dt.itemsize
    if nbytes >= CACHED_MIN_BYTES and CACHE.limit and hasattr(mmap, "MAP_ANONYMOUS"):
        return CACHE.take(nbytes).view(dt).reshape(shape_t), shape_t, nbytes
    return None, shape_t, nbytes


def empty(shape: int | tuple[int, ...], dtype: Any) -> npt.NDArray[Any]:
    """``np.empty(shape, dtype)``, or from ``CACHED_MIN_BYTES`` on an array over ``CACHE``."""
    arr, _, _ = _cached(shape, dtype)
    return np.empty(shape, dtype) if arr is None else arr


def aligned_empty(shape: int | tuple[int, ...], dtype: Any) -> npt.NDArray[Any]:
    """``empty(shape, dtype)`` whose data starts on a 64-byte boundary.

    Cache-backed memory is page-aligned and may hold an earlier output's bytes, as
    ``np.empty`` may.
    """
    arr, shape_t, nbytes = _cached(shape, dtype)
    if arr is not None:
        return arr
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGNMENT
    return raw[start : start + nbytes].view(dtype).reshape(shape_t)
