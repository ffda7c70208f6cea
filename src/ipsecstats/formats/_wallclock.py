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

import numpy as np
import numpy.typing as npt

__all__ = ["WallClock", "WallTimeError"]

_NS = 1_000_000_000
_HOUR_NS = 3600 * _NS
_NS_MAX = 2**63 - 1   # -2**63 is NaT
_EPOCH = _dt.datetime(1970, 1, 1)
_LAST_SECOND = _dt.timedelta(seconds=3599)


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
    return (off.days * 86400 + off.seconds) * _NS + off.microseconds * 1000


class WallClock:
    """Local wall times of ``zone`` to UTC ns, in order, chunk after chunk (see the module)."""

    def __init__(self, zone: _dt.tzinfo, start_offset: _dt.timedelta | None = None):
        self.zone = zone
        self._start = None if start_offset is None else int(start_offset / _dt.timedelta(microseconds=1)) * 1000
        self.last: int | None = None  # the previous row's instant, ns UTC
        self._fixed = _offset_ns(_EPOCH, zone, 0) if isinstance(zone, _dt.timezone) else None

    def to_utc(self, local: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """ns UTC of each wall time in ``local`` (int64 ns), the rows taken in order."""
        out = np.empty(local.shape, np.int64)
        if not local.size:
            return out
        if self._fixed is not None:
            self._uniform(local, out, 0, self._fixed)
        else:
            hours = local // _HOUR_NS
            cuts = np.flatnonzero(hours[1:] != hours[:-1]) + 1
            starts = [0, *cuts.tolist()]
            ends = [*starts[1:], local.size]
            for start, end, hour in zip(starts, ends, hours[starts].tolist()):
                first = _EPOCH + _dt.timedelta(hours=hour)
                last = first + _LAST_SECOND
                offsets = {_offset_ns(first, self.zone, 0), _offset_ns(first, self.zone, 1),
                           _offset_ns(last, self.zone, 0), _offset_ns(last, self.zone, 1)}
                if len(offsets) == 1:
                    self._uniform(local[start:end], out[start:end], start, offsets.pop())
                else:
                    self._row_by_row(local, out, start, end)
        self.last = int(out[-1])
        return out

    def _uniform(self, local: npt.NDArray[np.int64], out: npt.NDArray[np.int64], base: int, offset: int) -> None:
        """``out = local - offset``, refusing a result past the datetime64[ns] range."""
        lo, hi = max(-_NS_MAX + offset, -_NS_MAX - 1), min(_NS_MAX + offset, _NS_MAX)
        if int(local.min()) < lo or int(local.max()) > hi:
            bad = int(np.flatnonzero((local < lo) | (local > hi))[0])
            raise WallTimeError("the time in UTC is outside the datetime64[ns] range 1677..2262", base + bad)
        np.subtract(local, np.int64(offset), out=out)

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
