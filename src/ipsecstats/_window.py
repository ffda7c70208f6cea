"""``--from`` / ``--to``: the records of a stream whose time ``t`` has ``begin <= t < end``.

``WindowReader`` wraps a ``formats.Reader`` and yields its ``Capture`` chunks cut to the
window, so every command downstream (statistics, deltas, exports, plots) sees only the
records inside it: deltas then pair records inside the window only.

* A capture with timestamps (WNODE, CIM CSV with a time column, PDH-CSV, ipsecstats
  exports): each record by its own time, compared in int64 nanoseconds; a record without a
  time (NaT) is outside every window.
* A raw log: sample ``k`` is at ``start_ns + k * step_ns`` (``--start``, ``--interval``), so
  the window is the samples ``first <= k < stop`` with ``first = ceil((begin - start) / step)``
  and ``stop = ceil((end - start) / step)`` (exact integers, clamped at 0): whole samples,
  records ``first * stride`` to ``stop * stride``, read no further than that.

Chunks are renumbered: ``start`` counts the records yielded so far, so record numbers (in
reports and the ``record`` column of exports) count from the window's first record, and a
raw window is a raw log of its own beginning at sample ``first``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._capture import Capture

__all__ = ["WindowReader", "first_sample", "time_ns", "to_ns", "window_ns"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_NAT = np.iinfo(np.int64).min


def to_ns(t: dt.datetime) -> int:
    """An aware datetime as int64 nanoseconds since 1970 (UTC), exactly."""
    return (t - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def time_ns(value: Any, what: str) -> int:
    """A time as int64 nanoseconds since 1970 (UTC), exactly: an aware ``datetime`` (a naive one
    is UTC), a ``numpy.datetime64`` or an ISO 8601 string (``2024-06-03T08:00:00Z``)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{what}: expected an ISO 8601 time such as 2024-06-03T08:00:00Z, got {value!r}") from None
    if isinstance(value, dt.datetime):
        return to_ns(value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc))
    if isinstance(value, np.datetime64) and not np.isnat(value):
        try:
            return int(value.astype("datetime64[ns]").astype(np.int64))
        except OverflowError:
            raise ValueError(f"{what}: {value} is outside the datetime64[ns] range 1677..2262") from None
    raise TypeError(f"{what}: expected a datetime, numpy.datetime64 or ISO 8601 string, got {value!r}")


def window_ns(begin: Any, end: Any) -> tuple[int | None, int | None] | None:
    """``(begin_ns, end_ns)`` of the window ``begin <= t < end`` (``time_ns``; either may be None),
    or None when both are; ValueError unless begin is before end."""
    if begin is None and end is None:
        return None
    lo = None if begin is None else time_ns(begin, "window_from")
    hi = None if end is None else time_ns(end, "window_to")
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(f"window_from {begin!r} is not before window_to {end!r}: the window holds the records "
                         "with from <= time < to")
    return lo, hi


def first_sample(t_ns: int, start_ns: int, step_ns: int) -> int:
    """The first sample ``k >= 0`` with ``start_ns + k * step_ns >= t_ns``: ``ceil((t - start) / step)``."""
    return max(0, -((start_ns - t_ns) // step_ns))


class WindowReader:
    """``reader``'s chunks cut to ``begin_ns <= t < end_ns`` (either may be None: unbounded).

    A raw reader (``reader.stride`` set, no timestamps) needs ``start_ns`` and ``step_ns``.
    Other attributes (``format``, ``name``, ``stride``, ``source``, ``notes`` ...) are the reader's.
    """

    def __init__(self, reader: Any, begin_ns: int | None, end_ns: int | None, *,
                 start_ns: int | None = None, step_ns: int | None = None):
        self._reader = reader
        self.begin_ns, self.end_ns = begin_ns, end_ns
        self._raw = not reader.has_timestamps
        if self._raw:
            if reader.stride is None or start_ns is None or not step_ns:
                raise ValueError(f"{reader.name}: a time window needs times, and this input has none")
            stride = reader.stride
            self.first = 0 if begin_ns is None else first_sample(begin_ns, start_ns, step_ns)
            stop = None if end_ns is None else first_sample(end_ns, start_ns, step_ns)
            self._records = (self.first * stride, None if stop is None else max(stop, self.first) * stride)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    def close(self) -> None:
        self._reader.close()

    def __iter__(self) -> Iterator[Capture]:
        it = iter(self._reader)
        try:
            yield from (self._raw_chunks(it) if self._raw else self._timed_chunks(it))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def _raw_chunks(self, chunks: Iterator[Capture]) -> Iterator[Capture]:
        lo, hi = self._records
        done = 0
        for chunk in chunks:
            first, n = chunk.start, len(chunk)
            a, b = max(lo - first, 0), n if hi is None else min(hi - first, n)
            if a < b:
                yield Capture(chunk.records[a:b], None if chunk.timestamps is None else chunk.timestamps[a:b],
                              chunk.instance_codes[a:b], chunk.instance_names, done, chunk.instance_hosts)
                done += b - a
            if hi is not None and first + n >= hi:
                return  # past the window: read no further

    def _timed_chunks(self, chunks: Iterator[Capture]) -> Iterator[Capture]:
        done = 0
        for chunk in chunks:
            assert chunk.timestamps is not None
            ns = chunk.timestamps.view(np.int64)
            keep = ns != _NAT
            if self.begin_ns is not None:
                keep &= ns >= self.begin_ns
            if self.end_ns is not None:
                keep &= ns < self.end_ns
            if keep.all():
                part = chunk.records, chunk.timestamps, chunk.instance_codes
            else:
                index = np.flatnonzero(keep)
                part = chunk.records[index], chunk.timestamps[index], chunk.instance_codes[index]
            if part[0].shape[0]:
                yield Capture(*part, chunk.instance_names, done, chunk.instance_hosts)
                done += part[0].shape[0]
