"""Wall times of a time zone to UTC, chunk after chunk, for logs stamped in local time (PDH-CSV).

``WallClock(zone).to_utc(local)`` maps int64 ns of wall time (as if it were UTC) to ns
since 1970 UTC: ``utc = local - offset``, ``offset = zone.utcoffset(wall)``. The zone is
asked once per hour of wall time: an hour whose first and last second give one offset,
with ``fold`` 0 and 1 alike, takes it for all its rows (tzdata has no zone whose offset
changes and changes back within an hour). The rows of an hour that holds a transition
are converted one at a time:

* a wall time that never occurs (the clocks skip forward over it) is a ``WallTimeError``
  naming the row: the log was not written in that zone;
* a wall time that occurs twice (the clocks go back) is its first occurrence, unless that
  instant is not after the previous row's; then it is its second (``fold=1``). A log written
  through the change is in time order, and this keeps it so. ``last`` carries the previous
  row's instant from one chunk to the next. The first row, with no previous one, takes the
  occurrence whose offset is ``start_offset`` (a perfmon header's bias: the offset when the
  log started), else the first. This is exact for samples at most the change (usually an
  hour) apart; wider apart, a repeated time after a sample taken before the change cannot be
  told from its first occurrence, and is read as that.

A fixed offset (``datetime.timezone``) is one subtraction. Results outside the
datetime64[ns] range (1677..2262) are a ``WallTimeError``.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["WallClock", "WallTimeError"]

_NS = 1_000_000_000
_HOUR_NS = 3600 * _NS
_NS_MAX = 2**63 - 1   # -2**63 is NaT
_EPOCH = _dt.datetime(1970, 1, 1)
_LAST_SECOND = _dt.timedelta(seconds=3599)
_NEAR = 2**47  # ns (39 hours): more than any UTC offset


class WallTimeError(ValueError):
    """A wall time that cannot become UTC; ``index`` is its row in the array given."""

    def __init__(self, message: str, index: int):
        self.index = index
        super().__init__(message)


def _wall(ns: int) -> _dt.datetime:
    """The naive datetime of whole second ``ns // 10**9`` (the fraction is kept apart)."""
    return _EPOCH + _dt.timedelta(seconds=ns // _NS)


def _offset_ns(wall: _dt.datetime, zone: _dt.tzinfo, fold: int) -> int:
    off = wall.replace(tzinfo=zone, fold=fold).utcoffset()
    assert off is not None
    return _delta_ns(off)


def _delta_ns(delta: _dt.timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000


class WallClock:
    """Local wall times of ``zone`` to UTC ns, in order, chunk after chunk (see the module)."""

    def __init__(self, zone: _dt.tzinfo, start_offset: _dt.timedelta | None = None):
        self.zone = zone
        self._start = None if start_offset is None else _delta_ns(start_offset)
        self.last: int | None = None  # the previous row's instant, ns UTC
        self._fixed = _offset_ns(_EPOCH, zone, 0) if isinstance(zone, _dt.timezone) else None

    def to_utc(self, local: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """ns UTC of each wall time in ``local`` (int64 ns), the rows taken in order."""
        out = np.empty(local.shape, np.int64)
        if not local.size:
            return out
        if self._fixed is not None:
            self._subtract(local, np.int64(self._fixed), out)
        else:
            hours = local // _HOUR_NS
            starts = np.concatenate(([0], np.flatnonzero(hours[1:] != hours[:-1]) + 1))
            ends = np.append(starts[1:], local.size)
            offsets = np.zeros(starts.size, np.int64)
            mixed = []  # the runs of rows in an hour that holds a transition
            zone = self.zone
            for j, hour in enumerate(hours[starts].tolist()):
                first = _EPOCH + _dt.timedelta(hours=hour)
                last = first + _LAST_SECOND
                offset = _offset_ns(first, zone, 0)
                if offset == _offset_ns(first, zone, 1) == _offset_ns(last, zone, 0) == _offset_ns(last, zone, 1):
                    offsets[j] = offset
                else:
                    mixed.append(j)
            self._subtract(local, np.repeat(offsets, ends - starts), out)
            for j in mixed:  # in order: each may need the instant of the row before it
                self._row_by_row(local, out, int(starts[j]), int(ends[j]))
        self.last = int(out[-1])
        return out

    @staticmethod
    def _subtract(local: npt.NDArray[np.int64], offset: Any, out: npt.NDArray[np.int64]) -> None:
        """``out = local - offset`` (each offset under 2**47 ns, 39 hours), refusing a result past
        the datetime64[ns] range."""
        if int(local.min()) < -_NS_MAX + _NEAR or int(local.max()) > _NS_MAX - _NEAR:
            offset = np.broadcast_to(offset, local.shape)
            low = (offset > 0) & (local < offset - np.int64(_NS_MAX))   # no overflow: offset > 0
            high = (offset < 0) & (local > offset + np.int64(_NS_MAX))  # no overflow: offset < 0
            bad = np.flatnonzero(low | high)
            if bad.size:
                raise WallTimeError("the time in UTC is outside the datetime64[ns] range 1677..2262", int(bad[0]))
        np.subtract(local, offset, out=out)

    def _row_by_row(self, local: npt.NDArray[np.int64], out: npt.NDArray[np.int64], start: int, end: int) -> None:
        """The rows of an hour that holds a transition: a skipped time is an error; a repeated
        one is the later instant when the earlier is not after the previous row's."""
        zone = self.zone
        previous = self.last if start == 0 else int(out[start - 1])
        for i in range(start, end):
            ns = int(local[i])
            wall = _wall(ns)
            before, after = _offset_ns(wall, zone, 0), _offset_ns(wall, zone, 1)  # the offsets either side
            if before < after:
                raise WallTimeError(f"{wall:%Y-%m-%d %H:%M:%S} does not exist in time zone {zone} (the clocks "
                                    "skip over it)", i)
            utc = ns - before
            if before > after and (utc <= previous if previous is not None else after == self._start):
                utc = ns - after  # the second occurrence: later by before - after
            if not -_NS_MAX <= utc <= _NS_MAX:
                raise WallTimeError("the time in UTC is outside the datetime64[ns] range 1677..2262", i)
            out[i] = previous = utc
