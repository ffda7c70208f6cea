"""The statistics of one streaming pass over a capture: ``scan`` accumulates ``LogStats``.

``scan`` consumes the ``DeltaChunk``s of ``_pipeline`` (any input format) and keeps,
exactly and in memory that does not grow with the capture:

* per counter: the total increase (the sum of its deltas under the chosen
  ``on_decrease`` policy, an exact Python int), and how often it fell, split into
  restarts (a fall of less than 2**63) and wraps (a fall of 2**63 or more);
* per field: min, max and the exact sum of the raw values (gauge statistics);
* per poll (``_pipeline``'s sample, all instances added, float64): the peak of each
  counter's increase over one interval (or, with timestamps, of its per-second rate),
  the increases per quarter of the log and binned series for plots.

Quarters and plot bins need the number of polls, which a stream only knows at its end:
per-poll sums go into ``_Bins``, at most 4096 bins of ``width`` polls each, the width
doubling as the stream grows. With up to 4096 polls every bin is one poll and quarters
and plot bins are exact; beyond, a quarter boundary falls on a bin edge, at most
1/2048 of the log away from the exact one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ._schema import COUNTERS, FIELD_NAMES, GAUGES, NFIELDS, RECORD_SIZE

__all__ = ["Event", "LogStats", "scan", "utc_datetime"]

_COUNTER_COLS = [FIELD_NAMES.index(n) for n in COUNTERS]
_GAUGE_COLS = [FIELD_NAMES.index(n) for n in GAUGES]
_COUNTER_LANES = np.array(_COUNTER_COLS, dtype=np.uint8)  # the rate kernel's columns

_ONE_SECOND = np.ones(1)


def _counters_as_float(d: Any, out: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``out`` ((m, 16) C-contiguous float64): each counter's uint64 increase rounded once to
    float64 (the rate kernel with one interval of 1 s: numpy's conversion, in the vector unit)."""
    from ._backend import KERNEL
    from ._deltas import native_values

    KERNEL.rate_rows(native_values(d.values), _COUNTER_LANES, _ONE_SECOND, out)
    return out


class _Scratch:
    """Float arrays reused from chunk to chunk (a fresh array per chunk costs its page faults)."""

    def __init__(self) -> None:
        self.arrays: dict[str, npt.NDArray[np.float64]] = {}

    def get(self, name: str, rows: int, columns: int) -> npt.NDArray[np.float64]:
        """A C-contiguous (rows, columns) view of the array ``name``, grown as needed."""
        a = self.arrays.get(name)
        if a is None or a.shape[0] < rows or a.shape[1] != columns:
            a = self.arrays[name] = np.empty((max(rows, 1), columns))
        return a[:rows]

_HALF = np.uint64(1 << 63)
_U64_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)
_LOW32 = np.uint64(0xFFFFFFFF)
_QUARTERS = 4
_ONE_BIN = 1 << 62  # polls per bin: every record in bin 0
_NO_ROWS = np.zeros((0, RECORD_SIZE), np.uint8)
_NO_COUNTERS = np.zeros(NFIELDS, np.uint8)
_NO_EVENTS = np.zeros((0, 3), np.int64)
MAX_EVENTS = 1000  # restart events kept for the report (all are counted)
FINE_BINS = 4096
_STEP_KEYS = 50_000  # distinct step values kept for the median before rounding coarser


def utc_datetime(value: np.datetime64) -> dt.datetime | None:
    """A datetime64[ns] as an aware UTC datetime (microseconds: what ``datetime`` holds); NaT -> None."""
    if np.isnat(value):
        return None
    ns = int(value.astype("datetime64[ns]").astype(np.int64))
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=ns // 1000)


def column_stats(rows: npt.NDArray[Any]) -> tuple[list[int], list[int], list[int]]:
    """Exact sums, min and max of each of the 21 uint64 items of ``rows`` (n records or deltas,
    (n, 168) bytes of them, or (n, 21) uint64 in any byte order), as Python ints: one compiled
    pass (``stats_rows`` record statistics into one bin)."""
    from ._backend import KERNEL

    if rows.dtype.kind in "ui" and rows.dtype.itemsize == 8:
        rows = rows.astype(rows.dtype.newbyteorder("<"), copy=False)  # the kernel reads little-endian rows
    data = np.ascontiguousarray(rows).view(np.uint8).reshape(-1, RECORD_SIZE)
    bins = _empty_bins(1)
    KERNEL.stats_rows(data, _NO_ROWS, _NO_COUNTERS, "wrap", 1, 0, _ONE_BIN, False,
                      np.zeros(KERNEL.STATS_ACC, np.uint64), bins, _NO_EVENTS, 1)
    row = bins[0].tolist()
    sums = [lo + (hi << 64) for lo, hi in zip(row[_FLO:_FHI], row[_FHI:_MIN])]
    return sums, row[_MIN:_MAX], row[_MAX:_POLLS]


def exact_column_sums(u: npt.NDArray[np.uint64]) -> list[int]:
    """Exact sums of the columns of an (m, k) uint64 array, m < 2**32, as Python ints."""
    hi = (u >> np.uint64(32)).sum(axis=0, dtype=np.uint64)
    lo = (u & _LOW32).sum(axis=0, dtype=np.uint64)
    return [(int(h) << 32) + int(v) for h, v in zip(hi.tolist(), lo.tolist())]


@dataclass
class Event:
    """A delta row in which at least one counter fell."""

    record: int
    instance: int
    sample: int
    restarts: list[str]
    wraps: list[str]
    time: dt.datetime | None = None  # from a capture's timestamps


@dataclass
class LogStats:
    """What one pass over a log found (see the module docstring)."""

    path: str
    stride: int
    on_decrease: str
    bytes_at_start: int
    records: int = 0
    rows: int = 0
    field_min: list[int] = field(default_factory=lambda: [0] * NFIELDS)
    field_max: list[int] = field(default_factory=lambda: [0] * NFIELDS)
    field_sum: list[int] = field(default_factory=lambda: [0] * NFIELDS)
    increase: list[int] = field(default_factory=lambda: [0] * len(COUNTERS))
    restarts: list[int] = field(default_factory=lambda: [0] * len(COUNTERS))
    wraps: list[int] = field(default_factory=lambda: [0] * len(COUNTERS))
    events: list[Event] = field(default_factory=list)
    event_count: int = 0
    restart_event_count: int = 0  # intervals in which at least one counter restarted (all, not only kept)
    peak: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(len(COUNTERS)))
    quarters: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((_QUARTERS, len(COUNTERS))))
    bins: int = 0
    bin_counter_sums: npt.NDArray[np.float64] | None = None  # (bins, 16): counter increases
    bin_samples: npt.NDArray[np.float64] | None = None  # (bins,): delta samples per bin
    bin_gauge_sums: npt.NDArray[np.float64] | None = None  # (bins, 5): gauge values, all instances
    bin_gauge_samples: npt.NDArray[np.float64] | None = None  # (bins,): record samples per bin
    bin_gauge_min: npt.NDArray[Any] | None = None  # (bins, 5): least gauge value of one instance
    bin_gauge_max: npt.NDArray[Any] | None = None  # (bins, 5): greatest gauge value of one instance
    bin_counter_peak: npt.NDArray[np.float64] | None = None  # (bins, 16): peak poll (or per-second rate)
    # a capture (WNODE, CIM CSV): stride is then the number of instance names
    input_format: str = "raw"
    instance_names: tuple[str, ...] | None = None
    sample_count: int | None = None  # polls in the log
    seconds: float | None = None  # with timestamps: seconds the deltas span, per instance
    first_time: dt.datetime | None = None
    last_time: dt.datetime | None = None
    median_step: float | None = None  # seconds between samples of one instance
    bin_seconds: npt.NDArray[np.float64] | None = None  # (bins,): seconds spanned per instance
    bin_times: npt.NDArray[np.datetime64] | None = None  # (bins,): mean time of the records
    instances: list[LogStats] | None = None  # by instance (``scan(by_instance=True)``)
    instance: int | None = None  # the instance these statistics are of, alone

    @property
    def expected_samples(self) -> int:
        if self.sample_count is not None:
            return max(self.sample_count, 1)
        return max(-(-(self.bytes_at_start // RECORD_SIZE) // self.stride), 1)

    @property
    def samples(self) -> int:
        if self.sample_count is not None:
            return self.sample_count
        return -(-self.records // self.stride)

    def instance_label(self, instance: int) -> str:
        return self.instance_names[instance] if self.instance_names is not None else str(instance)

    @property
    def intervals(self) -> float:
        """Sampling intervals covered by the deltas (per instance)."""
        return self.rows / self.stride


class _Bins:
    """Column sums per poll, in at most ``fine`` (``FINE_BINS``) bins of ``width`` polls (a power of 2)."""

    def __init__(self, columns: int, fine: int = FINE_BINS):
        self.width = 1
        self.fine = fine
        self.sums = np.zeros((fine, columns))

    def add(self, polls: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> None:
        if polls.shape[0] == 0:
            return
        fine = self.fine
        while int(polls[-1]) >= fine * self.width:  # polls ascend: the last is the largest
            half = self.sums.reshape(fine // 2, 2, -1).sum(axis=1)
            self.sums[: fine // 2] = half
            self.sums[fine // 2:] = 0
            self.width *= 2
        b = polls // self.width
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])  # polls ascend: each bin's rows are a run
        self.sums[b[starts]] += np.add.reduceat(values, starts, axis=0)  # float sums: numpy's order of adds

    def rebin(self, polls: int, bins: int) -> npt.NDArray[np.float64]:
        """Sums over ``bins`` equal parts of ``polls`` polls: bin ``j`` goes to part
        ``first_poll(j) * bins // polls``."""
        out = np.zeros((bins, self.sums.shape[1]))
        first = np.arange(self.fine, dtype=np.int64) * self.width
        used = first < max(polls, 1)
        part = np.minimum(first[used] * bins // max(polls, 1), bins - 1)
        np.add.at(out, part, self.sums[used])
        return out


class _ExtremeBins:
    """Min (``np.minimum``) or max (``np.maximum``) per poll, in ``fine`` bins of ``width`` polls
    (the width doubling as ``_Bins``'s)."""

    def __init__(self, columns: int, ufunc: Any, initial: Any, dtype: Any, fine: int = FINE_BINS):
        self.width = 1
        self.fine = fine
        self.ufunc, self.initial = ufunc, initial
        self.values = np.full((fine, columns), initial, dtype=dtype)

    def add(self, polls: npt.NDArray[np.int64], values: npt.NDArray[Any]) -> None:
        if polls.shape[0] == 0:
            return
        fine = self.fine
        while int(polls[-1]) >= fine * self.width:
            half = self.ufunc(self.values[0::2], self.values[1::2])
            self.values[: fine // 2] = half
            self.values[fine // 2:] = self.initial
            self.width *= 2
        self.ufunc.at(self.values, polls // self.width, values)

    def rebin(self, polls: int, bins: int) -> npt.NDArray[Any]:
        """The extremes over ``bins`` equal parts of ``polls`` polls (as ``_Bins.rebin``)."""
        out = np.full((bins, self.values.shape[1]), self.initial, dtype=self.values.dtype)
        first = np.arange(self.fine, dtype=np.int64) * self.width
        used = first < max(polls, 1)
        part = np.minimum(first[used] * bins // max(polls, 1), bins - 1)
        self.ufunc.at(out, part, self.values[used])
        return out


def _group_sums(values: npt.NDArray[np.float64], starts: npt.NDArray[np.intp],
                scratch: _Scratch | None = None) -> npt.NDArray[np.float64]:
    """The sums of the row groups of ``values`` beginning at ``starts`` (ascending, the first 0),
    each added left to right (plain float adds): row p of every group at once, p = 0, 1, ...,
    the groups ordered by size so that those still going are a prefix. O(rows) work. With
    ``scratch``, groups of one size are summed into its array ``"groups"``."""
    m = values.shape[0]
    sizes = np.diff(np.r_[starts, m])
    r = int(sizes[0])
    if (sizes == r).all():  # every poll with the same instances: strided views, no gathers
        if scratch is None:
            sums = values[0::r].copy()
        else:
            sums = scratch.get("groups", starts.shape[0], values.shape[1])
            np.copyto(sums, values[0::r])
        for p in range(1, r):
            sums += values[p::r]
        return sums
    order = np.argsort(-sizes, kind="stable")
    first, size = starts[order], sizes[order]
    sums = values[first]
    for p in range(1, int(size[0])):
        going = int(np.searchsorted(-size, -p, side="left"))  # groups with more than p rows
        sums[:going] += values[first[:going] + p]
    out = np.empty_like(sums)
    out[order] = sums
    return out


class _PollSums:
    """Adds rows of the same poll (ascending), across chunk boundaries; yields completed polls."""

    def __init__(self, width: int):
        self.pending_poll = -1
        self.pending = np.zeros(width)
        self.scratch = _Scratch()

    def feed(self, polls: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
             ) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
        """The polls completed by these rows: a list of ``(ids, sums)`` parts (no copy of the sums
        to put the pending poll in front), valid until the next ``feed``."""
        if polls.shape[0] == 0:
            return []
        starts = np.flatnonzero(np.r_[True, polls[1:] != polls[:-1]])
        ids, sums = polls[starts], _group_sums(values, starts, self.scratch)
        done = []
        if ids[0] == self.pending_poll:
            sums[0] += self.pending
        elif self.pending_poll >= 0:
            done.append((np.array([self.pending_poll]), self.pending[None, :]))
        self.pending_poll, self.pending = int(ids[-1]), sums[-1].copy()
        done.append((ids[:-1], sums[:-1]))
        return done

    def finish(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        if self.pending_poll < 0:
            return np.empty(0, np.int64), np.empty((0, self.pending.shape[0]))
        return np.array([self.pending_poll]), self.pending[None, :]


class _Steps:
    """Counts of the time steps between the samples of one instance, for their median."""

    def __init__(self) -> None:
        self.decimals = 6
        self.counts: dict[float, int] = {}

    def add(self, steps: npt.NDArray[np.float64]) -> None:
        if steps.shape[0] == 0:
            return
        keys, counts = np.unique(np.round(steps, self.decimals), return_counts=True)
        for k, c in zip(keys.tolist(), counts.tolist()):
            self.counts[k] = self.counts.get(k, 0) + c
        while len(self.counts) > _STEP_KEYS:
            self.decimals -= 3
            merged: dict[float, int] = {}
            for k, c in self.counts.items():
                key = round(k, self.decimals)
                merged[key] = merged.get(key, 0) + c
            self.counts = merged

    def median(self) -> float | None:
        """The median step (of ``np.median``: the mean of the two middle values for an even count)."""
        if not self.counts:
            return None
        keys = sorted(self.counts)
        total = sum(self.counts.values())
        cum = np.cumsum([self.counts[k] for k in keys])
        lo = keys[int(np.searchsorted(cum, (total - 1) // 2, side="right"))]
        hi = keys[int(np.searchsorted(cum, total // 2, side="right"))]
        return (lo + hi) / 2


class _Scan:
    """The accumulators of one pass; ``finish`` writes them into the ``LogStats``."""

    def __init__(self, stats: LogStats, timed: bool, fine: int = FINE_BINS):
        self.stats = stats
        self.timed = timed
        self.poll_sums = _PollSums(2 * len(COUNTERS) if timed else len(COUNTERS))
        self.counter_bins = _Bins(len(COUNTERS) + 1, fine)  # increases, then the polls counted
        self.gauge_bins = _Bins(len(GAUGES) + 1, fine)  # gauge sums, then the records counted
        self.time_bins = _Bins(2, fine)  # ns past the first time, stamped records
        self.gauge_min = _ExtremeBins(len(GAUGES), np.minimum, _U64_MAX, np.uint64, fine)
        self.gauge_max = _ExtremeBins(len(GAUGES), np.maximum, 0, np.uint64, fine)
        self.peak_bins = _ExtremeBins(len(COUNTERS), np.maximum, 0.0, np.float64, fine)
        self.second_bins = _Bins(1, fine)
        self.steps = _Steps()
        self.scratch = _Scratch()
        self.seconds = 0.0
        self.first_ns: int | None = None
        self.min_ns: int | None = None
        self.max_ns: int | None = None

    def records(self, u: npt.NDArray[np.uint64], polls: npt.NDArray[np.int64],
                timestamps: npt.NDArray[np.datetime64] | None) -> None:
        stats = self.stats
        n = u.shape[0]
        if n == 0:
            return
        sums, lo, hi = column_stats(u)
        if stats.records == 0:
            stats.field_min, stats.field_max = lo, hi
        else:
            stats.field_min = [min(a, b) for a, b in zip(stats.field_min, lo)]
            stats.field_max = [max(a, b) for a, b in zip(stats.field_max, hi)]
        stats.field_sum = [a + b for a, b in zip(stats.field_sum, sums)]
        if stats.bins:
            gauges = np.empty((n, len(GAUGES) + 1))
            gauges[:, :-1] = u[:, _GAUGE_COLS]
            gauges[:, -1] = 1.0
            self.gauge_bins.add(polls, gauges)
            self.gauge_min.add(polls, u[:, _GAUGE_COLS])
            self.gauge_max.add(polls, u[:, _GAUGE_COLS])
        if timestamps is not None:
            ns = timestamps.view(np.int64)
            stamped = ns != np.iinfo(np.int64).min
            if stamped.any():
                s = ns[stamped]
                lo_ns, hi_ns = int(s.min()), int(s.max())
                self.min_ns = lo_ns if self.min_ns is None else min(self.min_ns, lo_ns)
                self.max_ns = hi_ns if self.max_ns is None else max(self.max_ns, hi_ns)
                if stats.bins:
                    if self.first_ns is None:
                        self.first_ns = int(s[0])
                    offsets = np.empty((s.shape[0], 2))
                    offsets[:, 0] = s - self.first_ns
                    offsets[:, 1] = 1.0
                    self.time_bins.add(polls[stamped], offsets)
        stats.records += n

    def deltas(self, d: Any) -> None:
        stats = self.stats
        m = len(d)
        if m == 0:
            return
        u = d.values.view("<u8").reshape(m, NFIELDS)
        totals = column_stats(d.values)[0]
        stats.increase = [a + totals[c] for a, c in zip(stats.increase, _COUNTER_COLS)]
        if d.resets is not None and d.resets.any():
            self._decreases(d, u)
        polls = d.sample[d.later]
        k = len(COUNTERS)
        if self.timed:  # increases, then rates: one (m, 2k) array
            steps = d.steps
            valid = steps > 0
            self.seconds += float(steps[valid].sum())
            self.steps.add(steps[valid])
            values = self.scratch.get("values", m, 2 * k)  # not kept past this call (poll sums copy)
            increases = _counters_as_float(d, self.scratch.get("increases", m, k))
            values[:, :k] = increases
            with np.errstate(divide="ignore", invalid="ignore"):
                np.divide(increases, steps[:, None], out=values[:, k:])
            if not valid.all():
                values[~valid, k:] = 0.0
            if stats.bins:
                self.second_bins.add(polls[valid], steps[valid, None])
        else:
            values = _counters_as_float(d, self.scratch.get("increases", m, k))
        for ids, sums in self.poll_sums.feed(polls, values):
            self._polls(ids, sums)
        stats.rows += m

    def _polls(self, ids: npt.NDArray[np.int64], sums: npt.NDArray[np.float64]) -> None:
        if ids.shape[0] == 0:
            return
        k = len(COUNTERS)
        peaks = sums[:, k:] if self.timed else sums
        np.maximum(self.stats.peak, peaks.max(axis=0), out=self.stats.peak)
        if self.stats.bins:
            self.peak_bins.add(ids, peaks)
        binned = self.scratch.get("binned", ids.shape[0], k + 1)
        binned[:, :k] = sums[:, :k]
        binned[:, k] = 1.0
        self.counter_bins.add(ids, binned)

    def _decreases(self, d: Any, u: npt.NDArray[np.uint64]) -> None:
        rows, cols = np.nonzero(d.resets)
        chunk = d.chunk
        cur = chunk.records.view("<u8").reshape(-1, NFIELDS)[d.later[rows], cols]
        prev = d.earlier_values(rows)[np.arange(rows.shape[0]), cols]
        ts = chunk.timestamps

        def event(row: int) -> Event:
            i = int(d.later[row])
            return Event(chunk.start + i, int(chunk.instance_codes[i]), int(d.sample[i]), [], [],
                         None if ts is None else utc_datetime(ts[i]))

        record_decreases(self.stats, rows, cols, prev, cur, event)

    def finish(self, polls: int, instances: int) -> None:
        stats = self.stats
        self._polls(*self.poll_sums.finish())
        if stats.bins:
            stats.bins = max(1, min(stats.bins, polls))
        stats.sample_count = polls
        k = max(instances, 1)
        stats.stride = k
        q = self.counter_bins.rebin(polls, _QUARTERS)
        stats.quarters = q[:, :-1]
        if self.timed:
            stats.seconds = self.seconds / k
            stats.median_step = self.steps.median()
        if self.min_ns is not None and self.max_ns is not None:
            stats.first_time = utc_datetime(np.datetime64(self.min_ns, "ns"))
            stats.last_time = utc_datetime(np.datetime64(self.max_ns, "ns"))
        if stats.bins:
            c = self.counter_bins.rebin(polls, stats.bins)
            stats.bin_counter_sums, stats.bin_samples = c[:, :-1], c[:, -1]
            g = self.gauge_bins.rebin(polls, stats.bins)
            stats.bin_gauge_sums, stats.bin_gauge_samples = g[:, :-1], g[:, -1] / k
            stats.bin_gauge_min = self.gauge_min.rebin(polls, stats.bins)
            stats.bin_gauge_max = self.gauge_max.rebin(polls, stats.bins)
            stats.bin_counter_peak = self.peak_bins.rebin(polls, stats.bins)
            if self.timed:
                stats.bin_seconds = self.second_bins.rebin(polls, stats.bins)[:, 0] / k
            if self.first_ns is not None:
                t = self.time_bins.rebin(polls, stats.bins)
                if t[:, 1].all():
                    offsets = np.round(t[:, 0] / t[:, 1]).astype(np.int64)
                    stats.bin_times = (np.int64(self.first_ns) + offsets).view("datetime64[ns]")


# column blocks of a ``stats_rows`` bin row (``_kernel.h``: IPS_SB_*)
_CLO, _CHI, _FLO, _FHI, _MIN, _MAX, _POLLS, _RECS, _PLO, _PHI = 0, 21, 42, 63, 84, 105, 126, 127, 128, 149
_RESTARTS, _WRAPS, _EVENTS, _RESTART_EVENTS, _ROWS = 0, 21, 84, 85, 87


def _exact(lo: npt.NDArray[np.uint64], hi: npt.NDArray[np.uint64]) -> list[int]:
    """Column sums of the 128-bit values ``hi * 2**64 + lo`` of (m, k) arrays, as Python ints."""
    return [a + (b << 64) for a, b in zip(exact_column_sums(lo), exact_column_sums(hi))]


def _empty_bins(rows: int) -> npt.NDArray[np.uint64]:
    bins = np.zeros((rows, _PHI + 21), np.uint64)
    bins[:, _MIN:_MAX] = _U64_MAX
    return bins


class _Fused:
    """The compiled pass (``stats_rows``) over a raw log: record and delta statistics in one read.

    Per fine bin of ``width`` polls (the width doubling as the log grows, as ``_Bins``): the
    exact (128-bit) sums of the counter increases and of the raw values, min and max of every
    field, the polls and records counted, and each counter's peak poll."""

    def __init__(self, stats: LogStats, policy: str):
        from ._backend import KERNEL

        self.kernel = KERNEL
        self.stats = stats
        self.policy = policy
        self.width = 1
        self.acc = np.zeros(KERNEL.STATS_ACC, np.uint64)
        self.bins = _empty_bins(FINE_BINS)
        self.events = np.zeros((MAX_EVENTS, 3), np.int64)
        self.counters = np.zeros(NFIELDS, np.uint8)
        self.counters[_COUNTER_COLS] = 1
        self.prev = np.zeros((0, RECORD_SIZE), np.uint8)

    def _widen(self, last_poll: int) -> None:
        self.bins, self.width = _widened(self.bins, self.width, last_poll)

    def chunk(self, rows: npt.NDArray[np.uint8], start: int, stride: int, parts: int = 3) -> None:
        """Records ``rows`` ((n, 168) uint8), the first being record ``start`` of the log.
        ``parts`` 2: the increases only, the record statistics coming from a ``_RecordPass``
        (``finish(records=...)``)."""
        n = rows.shape[0]
        if n:
            self._widen((start + n - 1) // stride)
        self.kernel.stats_rows(np.ascontiguousarray(rows), self.prev, self.counters, self.policy, stride,
                               start if n else 0, self.width, False, self.acc, self.bins, self.events, parts)
        if n >= stride:
            self.prev = rows[n - stride:].copy()
        self.stats.records += n

    def take_records(self, records: _RecordPass) -> None:
        """The record statistics (sums, min, max, records per bin) of ``records`` into these bins."""
        last = max(self.width, records.width) * FINE_BINS - 1  # both at the wider of the two widths
        self._widen(last)
        bins, _ = _widened(records.bins, records.width, last)
        self.bins[:, _FLO:_POLLS] = bins[:, _FLO:_POLLS]
        self.bins[:, _RECS] = bins[:, _RECS]

    def finish(self, stride: int, records: _RecordPass | None = None) -> None:
        stats = self.stats
        if records is not None:
            self.take_records(records)
        self.kernel.stats_rows(np.zeros((0, RECORD_SIZE), np.uint8), self.prev, self.counters, self.policy,
                               stride, 0, self.width, True, self.acc, self.bins, self.events)
        bins, acc = self.bins, self.acc
        used = bins[:, _RECS] > 0
        if used.any():
            stats.field_min = bins[used, _MIN:_MAX].min(axis=0).tolist()
            stats.field_max = bins[used, _MAX:_POLLS].max(axis=0).tolist()
        stats.field_sum = _exact(bins[:, _FLO:_FHI], bins[:, _FHI:_MIN])
        increase = _exact(bins[:, _CLO:_CHI], bins[:, _CHI:_FLO])
        stats.increase = [increase[c] for c in _COUNTER_COLS]
        stats.restarts = [int(acc[_RESTARTS + c]) for c in _COUNTER_COLS]
        stats.wraps = [int(acc[_WRAPS + c]) for c in _COUNTER_COLS]
        stats.rows = int(acc[_ROWS])
        stats.event_count = int(acc[_EVENTS])
        stats.restart_event_count = int(acc[_RESTART_EVENTS])
        kept = min(stats.event_count, MAX_EVENTS)
        stats.events = [self._event(int(g), int(r), int(w), stride) for g, r, w in self.events[:kept].tolist()]
        peaks = self._peaks()
        stats.peak = peaks[used].max(axis=0) if used.any() else np.zeros(len(COUNTERS))
        polls = -(-stats.records // stride)
        stats.sample_count = polls
        stats.quarters = self.rebin(polls, _QUARTERS, _CLO, _CHI, _COUNTER_COLS)
        if stats.bins:
            stats.bins = max(1, min(stats.bins, polls))
            stats.bin_counter_sums = self.rebin(polls, stats.bins, _CLO, _CHI, _COUNTER_COLS)
            stats.bin_samples = self._parts(polls, stats.bins, bins[:, _POLLS].astype(np.float64), np.add)
            stats.bin_gauge_sums = self.rebin(polls, stats.bins, _FLO, _FHI, _GAUGE_COLS)
            stats.bin_gauge_samples = self._parts(polls, stats.bins, bins[:, _RECS].astype(np.float64), np.add) / stride
            g = [_MIN + c for c in _GAUGE_COLS]
            stats.bin_gauge_min = self._parts(polls, stats.bins, np.where(used[:, None], bins[:, g], _U64_MAX),
                                              np.minimum, _U64_MAX)
            stats.bin_gauge_max = self._parts(polls, stats.bins, bins[:, [_MAX + c for c in _GAUGE_COLS]], np.maximum)
            stats.bin_counter_peak = self._parts(polls, stats.bins, peaks, np.maximum)

    def _peaks(self) -> npt.NDArray[np.float64]:
        """(FINE_BINS, 16): each bin's peak poll of each counter, exact ints rounded once to float64."""
        lo = self.bins[:, [_PLO + c for c in _COUNTER_COLS]]
        hi = self.bins[:, [_PHI + c for c in _COUNTER_COLS]]
        out = lo.astype(np.float64)
        big = hi != 0
        out[big] = [float(int(h) << 64 | int(v)) for h, v in zip(hi[big].tolist(), lo[big].tolist())]
        return out

    @staticmethod
    def _event(g: int, rbits: int, wbits: int, stride: int) -> Event:
        restarts = [FIELD_NAMES[c] for c in range(NFIELDS) if rbits >> c & 1]
        wraps = [FIELD_NAMES[c] for c in range(NFIELDS) if wbits >> c & 1]
        return Event(g, g % stride, g // stride, restarts, wraps)

    def _part_of(self, polls: int, parts: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
        """Fine bin ``j`` goes to part ``first_poll(j) * parts // polls`` (as ``_Bins.rebin``)."""
        first = np.arange(FINE_BINS, dtype=np.int64) * self.width
        used = first < max(polls, 1)
        return used, np.minimum(first[used] * parts // max(polls, 1), parts - 1)

    def _parts(self, polls: int, parts: int, values: Any, ufunc: Any, initial: Any = 0) -> Any:
        used, part = self._part_of(polls, parts)
        out = np.full((parts,) + values.shape[1:], initial, dtype=values.dtype)
        ufunc.at(out, part, values[used])
        return out

    def rebin(self, polls: int, parts: int, lo: int, hi: int, cols: list[int]) -> npt.NDArray[np.float64]:
        """Exact sums of 128-bit bin columns over ``parts`` parts of the log, rounded once to float64."""
        used, part = self._part_of(polls, parts)
        out = np.zeros((parts, len(cols)))
        sel = self.bins[used]
        for j in range(parts):
            rows = sel[part == j]
            sums = _exact(rows[:, [lo + c for c in cols]], rows[:, [hi + c for c in cols]])
            out[j] = [float(v) for v in sums]
        return out


def _widened(bins: npt.NDArray[np.uint64], width: int, last_poll: int) -> tuple[npt.NDArray[np.uint64], int]:
    """``bins`` of ``width`` polls each, merged in pairs (the width doubling) until poll
    ``last_poll`` falls in one of the ``FINE_BINS``: sums added (128-bit), min and max kept,
    counts added, the higher peak kept (128-bit compares)."""
    while last_poll // width >= FINE_BINS:
        a, b = bins[0::2], bins[1::2]
        m = _empty_bins(FINE_BINS)
        h = m[: FINE_BINS // 2]
        for lo, hi in ((_CLO, _CHI), (_FLO, _FHI)):
            s = a[:, lo:hi] + b[:, lo:hi]
            h[:, hi:hi + 21] = a[:, hi:hi + 21] + b[:, hi:hi + 21] + (s < a[:, lo:hi])
            h[:, lo:hi] = s
        h[:, _MIN:_MAX] = np.minimum(a[:, _MIN:_MAX], b[:, _MIN:_MAX])
        h[:, _MAX:_POLLS] = np.maximum(a[:, _MAX:_POLLS], b[:, _MAX:_POLLS])
        h[:, _POLLS:_PLO] = a[:, _POLLS:_PLO] + b[:, _POLLS:_PLO]
        pa, pb = a[:, _PLO:], b[:, _PLO:]
        above = (pb[:, 21:] > pa[:, 21:]) | ((pb[:, 21:] == pa[:, 21:]) & (pb[:, :21] > pa[:, :21]))
        h[:, _PLO:] = np.where(np.concatenate([above, above], axis=1), pb, pa)
        bins, width = m, width * 2
    return bins, width


class _RecordPass:
    """The record statistics of the fused pass alone (``stats_rows`` parts 1: per bin the exact
    sums, min and max of every field and the records counted), run by the reading thread on
    each chunk as it is read, while the main thread adds up the increases (parts 2)."""

    def __init__(self) -> None:
        from ._backend import KERNEL

        self.kernel = KERNEL
        self.width = 1
        self.bins = _empty_bins(FINE_BINS)
        self.acc = np.zeros(KERNEL.STATS_ACC, np.uint64)
        self.events = np.zeros((0, 3), np.int64)
        self.counters = np.zeros(NFIELDS, np.uint8)
        self.prev = np.zeros((0, RECORD_SIZE), np.uint8)

    def chunk(self, rows: npt.NDArray[np.uint8], start: int, stride: int) -> None:
        n = rows.shape[0]
        if n:
            self.bins, self.width = _widened(self.bins, self.width, (start + n - 1) // stride)
            self.kernel.stats_rows(np.ascontiguousarray(rows), self.prev, self.counters, "wrap", stride, start,
                                   self.width, False, self.acc, self.bins, self.events, 1)

    def merge(self, other: _RecordPass) -> None:
        """Add ``other``'s statistics (of other chunks of the same log) into these: both bin rows at
        the wider of the two widths, the sums added (128-bit), min and max kept, the records added."""
        last = max(self.width, other.width) * FINE_BINS - 1
        self.bins, self.width = _widened(self.bins, self.width, last)
        theirs, _ = _widened(other.bins, other.width, last)
        mine = self.bins
        lo = mine[:, _FLO:_FHI] + theirs[:, _FLO:_FHI]
        mine[:, _FHI:_MIN] += theirs[:, _FHI:_MIN] + (lo < theirs[:, _FLO:_FHI])
        mine[:, _FLO:_FHI] = lo
        np.minimum(mine[:, _MIN:_MAX], theirs[:, _MIN:_MAX], out=mine[:, _MIN:_MAX])
        np.maximum(mine[:, _MAX:_POLLS], theirs[:, _MAX:_POLLS], out=mine[:, _MAX:_POLLS])
        mine[:, _RECS] += theirs[:, _RECS]


def record_decreases(stats: LogStats, rows: npt.NDArray[Any], cols: npt.NDArray[Any], prev: npt.NDArray[np.uint64],
                     cur: npt.NDArray[np.uint64], event_of: Callable[[int], Event]) -> None:
    """Count the falls ``prev -> cur`` at (row, column) as restarts or wraps, and keep one event per row."""
    is_wrap = (prev - cur) >= _HALF
    names = [FIELD_NAMES[c] for c in cols.tolist()]
    by_row: dict[int, Event] = {}
    for row, name, wrap in zip(rows.tolist(), names, is_wrap.tolist()):
        k = COUNTERS.index(name)
        if wrap:
            stats.wraps[k] += 1
        else:
            stats.restarts[k] += 1
        event = by_row.get(row)
        if event is None:
            event = by_row[row] = event_of(row)
        (event.wraps if wrap else event.restarts).append(name)
    stats.event_count += len(by_row)
    stats.restart_event_count += sum(1 for e in by_row.values() if e.restarts)
    room = MAX_EVENTS - len(stats.events)
    stats.events.extend(list(by_row.values())[: max(room, 0)])


def scan(reader: Any, *, on_decrease: str = "auto", bins: int = 0,
         progress: Callable[[int], None] | None = None, by_instance: bool = False) -> LogStats:
    """One pass over ``reader`` (a ``formats.Reader``); ``bins`` > 0 also keeps series for a plot.

    ``by_instance``: also the statistics of each instance alone (``stats.instances``): each
    interleaved instance of a raw log, each instance name (with its host) of a capture.

    ``progress`` is called with the bytes read since its last call.
    """
    from ._pipeline import iter_delta_chunks

    src = reader.source
    capture = reader.stride is None
    stats = LogStats(path=reader.name, stride=reader.stride or 1, on_decrease=on_decrease,
                     bytes_at_start=src.size or 0, bins=bins, input_format=reader.format)
    timed = capture and reader.has_timestamps
    if by_instance and on_decrease == "raise":
        raise ValueError("--by-instance needs an --on-decrease other than raise")
    if not capture and on_decrease != "raise":
        return _scan_fused(reader, stats, progress, by_instance)
    acc = _Scan(stats, timed)
    alone = _InstanceScans(stats, timed) if by_instance else None
    done = src.offset
    polls = 0
    names: tuple[str, ...] = ()
    for d in iter_delta_chunks(reader, on_decrease=on_decrease):
        chunk = d.chunk
        n = len(chunk)
        if n:
            acc.records(chunk.records.view("<u8").reshape(n, NFIELDS), d.sample, chunk.timestamps)
            polls = int(d.sample[-1]) + 1
        acc.deltas(d)
        if alone is not None:
            alone.feed(d)
        names = chunk.instance_names
        if progress is not None:
            progress(src.offset - done)
            done = src.offset
    if src.size is None:
        stats.bytes_at_start = src.offset - src.start
    acc.finish(polls, len(names) if capture else stats.stride)
    if capture:
        stats.instance_names = names
    if alone is not None:
        stats.instances = alone.finish(polls, names)
    return stats


_INSTANCE_BINS = 512  # fine bins of each instance's own statistics: about 0.2 MB an instance


def _groups(codes: npt.NDArray[np.intp]) -> Iterator[tuple[int, npt.NDArray[np.intp]]]:
    """``(code, index)`` for each distinct code, ``index`` ascending: one stable sort, O(n log n)."""
    if codes.shape[0] == 0:
        return
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    cuts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    for a, b in zip(np.r_[0, cuts].tolist(), np.r_[cuts, ordered.shape[0]].tolist()):
        yield int(ordered[a]), order[a:b]


def _delta_rows(d: Any, rows: npt.NDArray[np.intp]) -> Any:
    """The ``DeltaChunk`` ``d`` restricted to its delta rows ``rows``."""
    from ._pipeline import DeltaChunk

    return DeltaChunk(d.chunk, d.sample, d.values[rows], None if d.resets is None else d.resets[rows], d.later[rows],
                      None if d.steps is None else d.steps[rows], lambda r: d.earlier_values(rows[r]), d.first_row)


class _InstanceScans:
    """One ``_Scan`` per instance of a capture, fed the records and delta rows of that instance only.

    Each instance's polls are the capture's (so its bins line up with the total's), and each of
    its records is one of its samples. Memory: ``_INSTANCE_BINS`` fine bins an instance."""

    def __init__(self, stats: LogStats, timed: bool):
        self.stats = stats
        self.timed = timed
        self.scans: dict[int, _Scan] = {}

    def _scan(self, code: int) -> _Scan:
        scan = self.scans.get(code)
        if scan is None:
            total = self.stats
            one = LogStats(path=total.path, stride=1, on_decrease=total.on_decrease, bytes_at_start=0, bins=total.bins,
                           input_format=total.input_format)
            scan = self.scans[code] = _Scan(one, self.timed, _INSTANCE_BINS)
        return scan

    def feed(self, d: Any) -> None:
        chunk = d.chunk
        n = len(chunk)
        u = chunk.records.view("<u8").reshape(n, NFIELDS)
        ts = chunk.timestamps
        for code, index in _groups(chunk.instance_codes):
            self._scan(code).records(u[index], d.sample[index], None if ts is None else ts[index])
        if len(d):
            for code, rows in _groups(chunk.instance_codes[d.later]):
                self._scan(code).deltas(_delta_rows(d, rows))

    def finish(self, polls: int, names: tuple[str, ...]) -> list[LogStats]:
        out = []
        for code in sorted(self.scans):
            scan = self.scans[code]
            scan.finish(polls, 1)
            one = scan.stats
            one.sample_count = one.records  # one record of an instance per poll it appears in
            one.instance = code
            one.instance_names = (names[code],)
            one.path = f"{self.stats.path} [{names[code]}]"
            one.bytes_at_start = self.stats.bytes_at_start
            for e in one.events:
                e.instance = 0
            out.append(one)
        return out


_READ_AHEAD = 3  # chunks a reading thread may hold ready


def read_ahead(chunks: Any, depth: int = _READ_AHEAD) -> Iterator[Any]:
    """The items of the iterator ``chunks``, produced by a thread at most ``depth`` items ahead.

    The read of the next chunk (``readinto`` drops the GIL) overlaps the compiled pass over
    this one (which drops it too), so a pass costs about the larger of the two, not their sum.
    An exception of the iterator is raised here; when the consumer stops early (an error,
    Ctrl-C), the thread stops and closes the iterator."""
    import queue
    import threading

    items: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[int, Any]) -> bool:
        while not stop.is_set():
            try:
                items.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in chunks:
                if not put((0, item)):
                    return
            put((1, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put((2, exc))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="ipsecstats-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == 1:
                return
            if kind == 2:
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def _scan_fused(reader: Any, stats: LogStats, progress: Callable[[int], None] | None,
                by_instance: bool = False) -> LogStats:
    """``scan`` of a raw log: one compiled pass over each chunk of records (``_Fused``), split in
    two so that it runs on two cores: this thread adds up every chunk's increases, and the
    record statistics (``_RecordPass``) of the chunks alternate between the reading thread
    (which also reads them) and this one, each into its own bins, merged at the end.

    ``by_instance``: also one ``LogStats`` per interleaved instance (``stats.instances``), each
    from the same pass over that instance's records alone (stride 1)."""
    from ._pipeline import at_least

    src = reader.source
    stride = stats.stride
    acc = _Fused(stats, stats.on_decrease)
    parts = [_Fused(LogStats(path=stats.path, stride=1, on_decrease=stats.on_decrease,
                             bytes_at_start=stats.bytes_at_start // stride, bins=stats.bins,
                             input_format=stats.input_format), stats.on_decrease)
             for _ in range(stride if by_instance else 0)]
    records, mine = _RecordPass(), _RecordPass()  # the reading thread's chunks, this thread's

    def read(chunks: Iterator[Any]) -> Iterator[Any]:  # runs in the reading thread
        for k, chunk in enumerate(chunks):
            n = len(chunk)
            rows = chunk.records.view(np.uint8).reshape(n, RECORD_SIZE)
            if k % 2 == 0:
                records.chunk(rows, chunk.start, stride)
            yield k, chunk, rows

    done = src.offset
    for k, chunk, rows in read_ahead(read(at_least(reader, stride))):
        if k % 2:
            mine.chunk(rows, chunk.start, stride)
        acc.chunk(rows, chunk.start, stride, parts=2)
        for j, part in enumerate(parts):  # instance j holds records j, j + stride, ...
            first = (j - chunk.start) % stride
            part.chunk(rows[first::stride], (chunk.start + first) // stride, 1)
        if progress is not None:
            progress(src.offset - done)
            done = src.offset
    if src.size is None:
        stats.bytes_at_start = src.offset - src.start
    records.merge(mine)
    acc.finish(stride, records)
    if by_instance:
        stats.instances = []
        for k, part in enumerate(parts):
            part.finish(1)
            one = part.stats
            one.instance = k
            one.path = f"{stats.path} [instance {k}]"
            one.bytes_at_start = one.records * RECORD_SIZE
            for e in one.events:  # back to the log's record numbers
                e.record, e.instance = e.record * stride + k, k
            stats.instances.append(one)
    return stats


def scan_path(path: str, *, input_format: str = "auto", stride: int | None = None, on_decrease: str = "auto",
              allow_partial: bool = False, by_instance: bool = False,
              window: tuple[int | None, int | None] | None = None, clock: tuple[int, int] | None = None,
              **csv_options: Any) -> LogStats:
    """``scan`` of the file at ``path``: a module-level function, so Dask workers can run it.

    ``window``: ``(begin_ns, end_ns)``, the records with ``begin <= t < end`` only (``WindowReader``;
    either may be None); a raw log's times are ``start_ns + k * step_ns`` from ``clock``
    ``(start_ns, step_ns)``. ``csv_options`` (``timestamp_column``, ``timestamp_format``,
    ``timezone``, ``delimiter``, ``encoding``) go to a CIM CSV file's reader (``timezone`` also
    to a PDH-CSV file's); set for another format, they are a ``FormatOptionError``."""
    from . import formats
    from ._window import WindowReader

    reader = formats.open_reader(path, input_format, stride=stride, allow_partial=allow_partial, **csv_options)
    if window is not None:
        start_ns, step_ns = clock if clock is not None else (None, None)
        try:
            reader = WindowReader(reader, *window, start_ns=start_ns, step_ns=step_ns)
        except BaseException:
            reader.close()
            raise
    return scan(reader, on_decrease=on_decrease, by_instance=by_instance)
