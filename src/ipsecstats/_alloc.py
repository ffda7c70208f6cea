"""Output buffers: aligned for the kernels' non-temporal stores, and recycled when large.

Fresh memory is expensive: the first touch of a new 336 MB array costs about 2.5 times
a memcpy of it (page faults and the kernel zeroing every page), so a loop that returns
a new large array per batch runs at a third of memory speed whatever the kernel does.
Large outputs therefore come from a small cache of anonymous mappings: when the last
array (or view) over one is gone, the mapping goes back to the cache, already faulted
in, and the next output of a similar size reuses it. A mapping idle for
``DECAY_SECONDS`` (1 s) is dropped, so freed results give their memory back to the
system about a second later. The cache holds at most ``IPSECSTATS_BUFFER_CACHE_MB``
megabytes (default 1024; 0 turns it off; always off without the GIL, see ``_COUNTED``);
the memory is private to the process (``MAP_PRIVATE``), so a fork copies it on write
like any other.
``ipsecstats.release_buffers()`` hands the idle cached memory back at once.
"""

from __future__ import annotations

import _thread
import collections
import contextlib
import mmap
import operator
import os
import platform
import sys
import threading
import time
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

#: Seconds a cached mapping stays idle before its memory goes back to the system.
DECAY_SECONDS = 1.0

# The proof that nobody holds a cached mmap object reads CPython reference counts, which is
# exact only under the GIL: a free-threaded build sums a thread-local and a shared count
# without a lock, so a reference handed between two threads can be missed. Without the
# proof (free-threaded CPython, PyPy) no mapping is ever reused and the cache is off.
_COUNTED = platform.python_implementation() == "CPython" and getattr(sys, "_is_gil_enabled", lambda: True)()
_by_size = operator.attrgetter("size")


def _cache_limit() -> int:
    text = os.environ.get("IPSECSTATS_BUFFER_CACHE_MB", "1024").strip()
    try:
        megabytes = int(text)
    except ValueError:
        raise ValueError(f"IPSECSTATS_BUFFER_CACHE_MB must be a whole number of megabytes, got {text!r}") from None
    return max(megabytes, 0) * 1024 * 1024


class _Idle:
    """A cached mapping, its size (a closed mapping has no length) and when it came back."""

    __slots__ = ("mapping", "size", "since")

    def __init__(self, mapping: mmap.mmap, size: int, since: float):
        self.mapping: mmap.mmap | None = mapping
        self.size = size
        self.since = since


class MappingCache:
    """Anonymous mappings handed out as uint8 arrays and taken back when no array uses them.

    ``take(nbytes)`` returns a writeable uint8 array of ``nbytes`` over a mapping (a cached
    one of at most twice the size, else a new one). Every view or buffer made from that
    array keeps it alive (numpy stops its base chain at an array whose base is not an
    array), so a finalizer on it gives the mapping back when that array is gone.

    A cached mapping is reused only with proof that nothing else can reach its memory:
    no other reference to the ``mmap`` object itself (CPython reference count), and no
    buffer export left on it (``resize`` to its own size raises ``BufferError`` otherwise,
    e.g. for a memoryview taken from an output's ``base``). A mapping that fails either
    test, or that is unusable (closed by whoever held it), is dropped, never reused and
    never an error. The oldest mappings are dropped once the cache holds more than
    ``limit`` bytes.

    Idle mappings decay: a daemon thread, started by the first ``take``, drops every
    mapping that has sat in the cache for ``decay`` seconds, so the memory of freed
    results goes back to the system about ``decay`` seconds after the last one is gone
    (jemalloc's ``dirty_decay_ms`` in spirit). A loop that reuses its buffers at once
    never sees it; the thread sleeps until the oldest idle mapping is due and, with the
    cache empty, until a mapping comes back.

    Finalizers run inside garbage collection, on any thread and in the middle of any
    statement, so there is no lock: the free list is a deque, whose appends, pops and
    removes are atomic (under the GIL, and by the deque's own lock on a free-threaded
    build), a race at worst drops a mapping a little early, and a finalizer wakes the
    decay thread by releasing a plain lock (never blocking). Reuse needs the reference
    count proof, so without the GIL (``_COUNTED`` false) nothing is ever reused.
    """

    def __init__(self, limit: int, decay: float | None = DECAY_SECONDS):
        self.limit = limit
        self.decay = decay
        self._free: collections.deque[_Idle] = collections.deque()
        self._thread: threading.Thread | None = None
        self._wake = _thread.allocate_lock()
        self._waiting = False  # the decay thread waits for a mapping to come back
        self._starting = _thread.allocate_lock()  # one starter at a time (never waited for)

    def take(self, nbytes: int) -> npt.NDArray[np.uint8]:
        size = -(-max(nbytes, 1) // _GRANULE) * _GRANULE
        mapping = self._reuse(size) or self._new(size)
        owner = np.frombuffer(mapping, dtype=np.uint8, count=nbytes)
        weakref.finalize(owner, self._give_back, mapping, size).atexit = False
        if self.decay is not None and (self._thread is None or not self._thread.is_alive()):
            self._start_decay()  # here, never in a finalizer; again in a forked child
        return owner

    def _reuse(self, size: int) -> mmap.mmap | None:
        for idle in sorted((i for i in list(self._free) if size <= i.size <= 2 * size), key=_by_size):
            try:
                self._free.remove(idle)
            except ValueError:  # taken or dropped meanwhile
                continue
            mapping, idle.mapping = idle.mapping, None
            if mapping is None or not _COUNTED or sys.getrefcount(mapping) > 2:
                continue  # someone holds the mmap object (2: ``mapping`` and the argument), or no proof
            try:
                mapping.resize(len(mapping))  # BufferError while any export is left
            except (BufferError, OSError, SystemError, ValueError):
                continue  # reachable, closed, or not provable here: never reuse it
            return mapping
        return None

    def _new(self, size: int) -> mmap.mmap:
        try:
            mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        except OSError:
            self.clear()  # the idle cache may be what stands in the way
            try:
                mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            except OSError as exc:
                raise MemoryError(f"cannot map {size} bytes for an output array: {exc}") from exc
        if hasattr(mmap, "MADV_HUGEPAGE"):
            with contextlib.suppress(OSError):  # a hint; kernels without THP refuse it
                mapping.madvise(mmap.MADV_HUGEPAGE)
        return mapping

    def _give_back(self, mapping: mmap.mmap, size: int) -> None:
        self._free.append(_Idle(mapping, size, time.monotonic()))
        del mapping
        while self.cached_bytes() > self.limit:
            try:
                self._free.popleft()  # dropped: unmapped once nothing refers to it
            except IndexError:
                break
        if self._waiting:
            with contextlib.suppress(RuntimeError):  # already released: the thread is awake
                self._wake.release()

    def _start_decay(self) -> None:
        if not self._starting.acquire(blocking=False):
            return  # another thread (or a finalizer's caller up this stack) is starting it
        try:
            if self._thread is not None and self._thread.is_alive():
                return
            wake = _thread.allocate_lock()
            wake.acquire()
            self._wake = wake
            self._waiting = False
            thread = threading.Thread(target=self._decay_loop, args=(wake,), name="ipsecstats-buffer-decay",
                                      daemon=True)
            thread.start()
            self._thread = thread
        finally:
            self._starting.release()

    def _decay_loop(self, wake: Any) -> None:
        """Drop mappings idle for ``decay`` seconds; sleep until the next one is due."""
        assert self.decay is not None
        while wake is self._wake:
            now = time.monotonic()
            due: float | None = None
            idle: _Idle | None
            for idle in list(self._free):
                if now - idle.since >= self.decay:
                    with contextlib.suppress(ValueError):  # taken meanwhile
                        self._free.remove(idle)
                elif due is None or idle.since + self.decay < due:
                    due = idle.since + self.decay
            idle = None  # type: ignore[assignment]  # hold no dropped mapping while asleep
            if due is not None:
                wake.acquire(timeout=max(due - now, 0.0) + 0.001)
                continue
            self._waiting = True
            if not self._free:  # checked after the flag: a mapping given back now wakes us
                wake.acquire()
            self._waiting = False

    def _after_fork(self) -> None:
        """In a forked child: no decay thread exists, and no lock may stay held by one of the parent's."""
        self._thread = None
        self._starting = _thread.allocate_lock()
        self._wake = _thread.allocate_lock()
        self._waiting = False

    def cached_bytes(self) -> int:
        return sum(idle.size for idle in list(self._free))

    def clear(self) -> None:
        """Drop every cached mapping (the memory returns to the system)."""
        self._free.clear()


CACHE = MappingCache(_cache_limit() if _COUNTED else 0)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=CACHE._after_fork)


def release_buffers() -> int:
    """Return the memory of idle cached output buffers to the system; the bytes released."""
    released = CACHE.cached_bytes()
    CACHE.clear()
    return released


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
