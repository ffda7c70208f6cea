"""One streaming pass over a log, and the summaries built from it (``report``, ``info``, ``plot``).

``scan`` reads a file chunk by chunk and keeps, exactly:

* per counter: the total increase (the sum of its deltas under the chosen
  ``on_decrease`` policy, an exact Python int), and how often it fell, split into
  restarts (a fall of less than 2**63) and wraps (a fall of 2**63 or more);
* per field: min, max and the exact sum of the raw values (gauge statistics);
* per sample (all instances added together, float64): the peak of each counter's
  increase over one interval, the increases per quarter of the log, and optional
  binned series for plots.

A delta row ``r`` compares record ``r + stride`` with record ``r``: it belongs to
instance ``(r + stride) % stride`` and sample ``(r + stride) // stride``.

``scan_capture`` keeps the same for a ``Capture`` (WNODE or CIM CSV, see ``_log``): its
delta rows pair records of the same instance name, a record's sample is the number of
earlier records of its instance, and when the capture has timestamps every rate divides
by its real time step: the peak is then the highest sum over the instances of one
sample's per-second rates, and the mean divides the increase by the seconds the deltas
span (per instance).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ._alloc import aligned_empty
from ._backend import BACKEND
from ._deltas import delta_dtype, deltas, resolve_kinds
from ._errors import CounterResetError
from ._io import READ_BLOCK_RECORDS, _blocks, _Input, _paired_blocks
from ._log import utc_datetime
from ._schema import COUNTERS, FIELD_NAMES, GAUGES, NFIELDS, RECORD_SIZE

__all__ = ["LogStats", "build_info", "build_report", "format_info", "format_report", "scan", "scan_capture"]

_COUNTER_COLS = [FIELD_NAMES.index(n) for n in COUNTERS]
_GAUGE_COLS = [FIELD_NAMES.index(n) for n in GAUGES]
_HALF = np.uint64(1 << 63)
_LOW32 = np.uint64(0xFFFFFFFF)
_QUARTERS = 4
MAX_EVENTS = 1000  # restart events kept for the report (all are counted)


def _exact_column_sums(u: npt.NDArray[np.uint64]) -> list[int]:
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
    # a capture (WNODE, CIM CSV): stride is then the number of instance names
    input_format: str = "raw"
    instance_names: tuple[str, ...] | None = None
    sample_count: int | None = None  # samples of the instance with the most
    seconds: float | None = None  # with timestamps: seconds the deltas span, per instance
    first_time: dt.datetime | None = None
    last_time: dt.datetime | None = None
    median_step: float | None = None  # seconds between samples of one instance
    bin_seconds: npt.NDArray[np.float64] | None = None  # (bins,): seconds spanned per instance
    bin_times: npt.NDArray[np.datetime64] | None = None  # (bins,): mean time of the records

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


class _SampleSums:
    """Adds delta rows of the same sample (all instances), across chunk boundaries."""

    def __init__(self, stride: int, width: int):
        self.stride = stride
        self.pending_sample = -1
        self.pending = np.zeros(width)

    def feed(self, first_row: int, values: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Completed ``(samples, sums)`` after adding rows starting at global ``first_row``."""
        m = values.shape[0]
        sample = (np.arange(first_row, first_row + m, dtype=np.int64) + self.stride) // self.stride
        if self.stride == 1:
            ids, sums = sample, values
        else:
            starts = np.flatnonzero(np.r_[True, sample[1:] != sample[:-1]])
            ids, sums = sample[starts], np.add.reduceat(values, starts, axis=0)
        if ids[0] == self.pending_sample:
            sums = sums.copy()
            sums[0] += self.pending
        elif self.pending_sample >= 0:
            ids = np.r_[self.pending_sample, ids]
            sums = np.vstack([self.pending, sums])
        if self.stride == 1:
            return ids, sums
        self.pending_sample, self.pending = int(ids[-1]), sums[-1].copy()
        return ids[:-1], sums[:-1]

    def finish(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        if self.stride == 1 or self.pending_sample < 0:
            return np.empty(0, np.int64), np.empty((0, self.pending.shape[0]))
        return np.array([self.pending_sample]), self.pending[None, :]


def scan(
    path: str,
    *,
    stride: int = 1,
    on_decrease: str = "auto",
    allow_partial: bool = False,
    bins: int = 0,
    chunk_records: int = 65536,
    progress: Callable[[int], None] | None = None,
) -> LogStats:
    """One pass over the log at ``path``; ``bins`` > 0 also keeps binned series for a plot."""
    src = _Input(path, "scan()")
    try:
        src.open()
        size = os.fstat(src.file.fileno()).st_size
        stats = LogStats(path=src.name, stride=stride, on_decrease=on_decrease, bytes_at_start=size, bins=bins)
        _init_bins(stats)
        chunk_records = max(chunk_records, stride, READ_BLOCK_RECORDS)
        # readinto, not mmap: a log truncated under a report (logrotate copytruncate) must be
        # an error message, never a SIGBUS; the report is not bound by read speed anyway.
        blocks = _tap_records(_blocks(src, chunk_records, allow_partial, use_mmap=False), stats, progress)
        _scan_deltas(_paired_blocks(blocks, stride, chunk_records), stats, chunk_records)
        return stats
    finally:
        src.close()


def scan_capture(log: Any, *, on_decrease: str = "auto", bins: int = 0) -> LogStats:
    """``scan`` of a ``_log.Log`` holding a ``Capture``: delta rows pair records of one instance name."""
    cap = log.capture
    n, names = len(cap), cap.instance_names
    k = max(len(names), 1)
    try:
        size = os.stat(log.path).st_size
    except OSError:
        size = n * RECORD_SIZE
    stats = LogStats(path=log.path, stride=k, on_decrease=on_decrease, bytes_at_start=size, bins=bins,
                     input_format=log.format, instance_names=names, sample_count=log.samples())
    _init_bins(stats)
    u = np.ascontiguousarray(cap.records).view("<u8").reshape(n, NFIELDS)
    _add_records(stats, u, log.sample)
    earlier, later = log.earlier, log.later
    m = later.shape[0]
    values, resets = log.pair_deltas(on_decrease, return_resets=True)
    counters = values.view("<u8").reshape(m, NFIELDS)[:, _COUNTER_COLS]
    stats.increase = _exact_column_sums(counters)
    stats.rows = m
    ts = cap.timestamps
    if resets.any():
        rows, cols = np.nonzero(resets)

        def event(row: int) -> Event:
            i = int(later[row])
            return Event(i, int(cap.instance_codes[i]), int(log.sample[i]), [], [],
                         None if ts is None else utc_datetime(ts[i]))

        _record_decreases(stats, rows, cols, u[earlier[rows], cols], u[later[rows], cols], event)
    row_sample = log.sample[later].astype(np.int64)
    ids = np.unique(row_sample)
    increases = counters.astype(np.float64)
    sums = _sums_by_sample(row_sample, ids, increases)
    peak_sums = None
    if ts is not None:
        with np.errstate(invalid="ignore"):
            step = (ts[later] - ts[earlier]) / np.timedelta64(1, "s")  # NaT gives NaN
        valid = step > 0
        stats.seconds = float(step[valid].sum()) / k
        stats.median_step = float(np.median(step[valid])) if valid.any() else None
        stamped = ts[~np.isnat(ts)]
        if stamped.shape[0]:
            stats.first_time, stats.last_time = utc_datetime(stamped.min()), utc_datetime(stamped.max())
        peak_sums = _sums_by_sample(row_sample[valid], ids, increases[valid] / step[valid, None])
        if bins:
            b = np.minimum(row_sample[valid] * bins // stats.expected_samples, bins - 1)
            stats.bin_seconds = np.bincount(b, weights=step[valid], minlength=bins) / k
            stats.bin_times = _bin_times(ts, log.sample, stats)
    _add_samples(stats, ids, sums, peak_sums)
    return stats


def _sums_by_sample(row_sample: npt.NDArray[np.int64], ids: npt.NDArray[np.int64],
                    values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Column sums of ``values`` over the rows of each sample in ``ids`` (sorted)."""
    pos = np.searchsorted(ids, row_sample)
    out = np.zeros((ids.shape[0], values.shape[1]))
    for j in range(values.shape[1]):
        out[:, j] = np.bincount(pos, weights=values[:, j], minlength=ids.shape[0])
    return out


def _bin_times(ts: npt.NDArray[np.datetime64], sample: npt.NDArray[np.intp], stats: LogStats
               ) -> npt.NDArray[np.datetime64] | None:
    """The mean time of the stamped records in each plot bin (exact int64 ns offsets); None if a bin has none."""
    stamped = ~np.isnat(ts)
    b = np.minimum(sample[stamped].astype(np.int64) * stats.bins // stats.expected_samples, stats.bins - 1)
    ns = ts[stamped].view(np.int64)
    if ns.shape[0] == 0:
        return None
    base = int(ns.min())
    counts = np.bincount(b, minlength=stats.bins)
    if not counts.all():
        return None
    offsets = np.bincount(b, weights=(ns - base).astype(np.float64), minlength=stats.bins) / counts
    return (np.int64(base) + np.round(offsets).astype(np.int64)).view("datetime64[ns]")


def _init_bins(stats: LogStats) -> None:
    if stats.bins:
        stats.bin_counter_sums = np.zeros((stats.bins, len(COUNTERS)))
        stats.bin_samples = np.zeros(stats.bins)
        stats.bin_gauge_sums = np.zeros((stats.bins, len(GAUGES)))
        stats.bin_gauge_samples = np.zeros(stats.bins)


def _tap_records(blocks: Iterator[npt.NDArray[np.void]], stats: LogStats,
                 progress: Callable[[int], None] | None) -> Iterator[npt.NDArray[np.void]]:
    """Pass the record blocks through, keeping the raw-value statistics."""
    for block in blocks:
        n = block.shape[0]
        u = block.view("<u8").reshape(n, NFIELDS)
        _add_records(stats, u, np.arange(stats.records, stats.records + n, dtype=np.int64) // stats.stride)
        if progress is not None:
            progress(n * RECORD_SIZE)
        yield block
        del block, u


def _add_records(stats: LogStats, u: npt.NDArray[np.uint64], sample: npt.NDArray[Any]) -> None:
    """Raw-value statistics of records ``u`` (m, 21) of the given samples."""
    n = u.shape[0]
    if n == 0:
        return
    lo, hi = u.min(axis=0).tolist(), u.max(axis=0).tolist()
    if stats.records == 0:
        stats.field_min, stats.field_max = lo, hi
    else:
        stats.field_min = [min(a, b) for a, b in zip(stats.field_min, lo)]
        stats.field_max = [max(a, b) for a, b in zip(stats.field_max, hi)]
    stats.field_sum = [a + b for a, b in zip(stats.field_sum, _exact_column_sums(u))]
    if stats.bins:
        assert stats.bin_gauge_sums is not None and stats.bin_gauge_samples is not None
        b = np.minimum(sample * stats.bins // stats.expected_samples, stats.bins - 1)
        gauges = u[:, _GAUGE_COLS].astype(np.float64)
        for j in range(len(GAUGES)):
            stats.bin_gauge_sums[:, j] += np.bincount(b, weights=gauges[:, j], minlength=stats.bins)
        stats.bin_gauge_samples += np.bincount(b, minlength=stats.bins) / stats.stride
    stats.records += n


def _scan_deltas(pairs: Iterator[tuple[npt.NDArray[np.void], npt.NDArray[np.void]]], stats: LogStats,
                 chunk_records: int) -> None:
    stride = stats.stride
    values_buf = aligned_empty(chunk_records, delta_dtype(resolve_kinds(None)))
    resets_buf = aligned_empty((chunk_records, NFIELDS), np.bool_)
    sample_sums = _SampleSums(stride, len(COUNTERS))
    for block, previous in pairs:
        m = block.shape[0]
        first_row = stats.rows
        try:
            values, resets = deltas(block, stride=stride, on_decrease=stats.on_decrease,  # type: ignore[arg-type]
                                    previous=previous, return_resets=True,
                                    out=(values_buf[:m], resets_buf[:m]))
        except CounterResetError as exc:
            raise exc.shifted(first_row) from None
        counters = values.view("<u8").reshape(m, NFIELDS)[:, _COUNTER_COLS]
        stats.increase = [a + b for a, b in zip(stats.increase, _exact_column_sums(counters))]
        if resets.any():
            _count_decreases(block, previous, resets, first_row, stats)
        _add_samples(stats, *sample_sums.feed(first_row, counters.astype(np.float64)))
        stats.rows += m
        del block, previous, values, resets, counters
    _add_samples(stats, *sample_sums.finish())


def _count_decreases(block: npt.NDArray[np.void], previous: npt.NDArray[np.void], resets: npt.NDArray[np.bool_],
                     first_row: int, stats: LogStats) -> None:
    """Split the falls into restarts and wraps, by the size of the fall; keep the events."""
    stride = stats.stride
    cur_u = block.view("<u8").reshape(-1, NFIELDS)
    prev_u = previous.view("<u8").reshape(-1, NFIELDS)
    rows, cols = np.nonzero(resets)
    cur = cur_u[rows, cols]
    prev = np.where(rows < stride, prev_u[np.minimum(rows, stride - 1), cols], cur_u[np.maximum(rows - stride, 0), cols])

    def event(row: int) -> Event:
        record = first_row + row + stride
        return Event(record, record % stride, record // stride, [], [])

    _record_decreases(stats, rows, cols, prev, cur, event)


def _record_decreases(stats: LogStats, rows: npt.NDArray[Any], cols: npt.NDArray[Any], prev: npt.NDArray[np.uint64],
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


def _add_samples(stats: LogStats, ids: npt.NDArray[np.int64], sums: npt.NDArray[np.float64],
                 peak_sums: npt.NDArray[np.float64] | None = None) -> None:
    """Per-sample counter increases (all instances): peak (of ``peak_sums`` when given), quarters, bins."""
    if ids.shape[0] == 0:
        return
    peaks = sums if peak_sums is None else peak_sums
    if peaks.shape[0]:
        np.maximum(stats.peak, peaks.max(axis=0), out=stats.peak)
    total = stats.expected_samples
    q = np.minimum(ids * _QUARTERS // total, _QUARTERS - 1)
    for j in range(len(COUNTERS)):
        stats.quarters[:, j] += np.bincount(q, weights=sums[:, j], minlength=_QUARTERS)
    if stats.bins:
        assert stats.bin_counter_sums is not None and stats.bin_samples is not None
        b = np.minimum(ids * stats.bins // total, stats.bins - 1)
        for j in range(len(COUNTERS)):
            stats.bin_counter_sums[:, j] += np.bincount(b, weights=sums[:, j], minlength=stats.bins)
        stats.bin_samples += np.bincount(b, minlength=stats.bins)


# --------------------------------------------------------------------------- time helpers


def sample_time(start: dt.datetime | None, interval: float | None, sample: int) -> dt.datetime | None:
    if start is None or interval is None:
        return None
    return start + dt.timedelta(seconds=sample * interval)


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _human_time(t: dt.datetime) -> str:
    text = t.strftime("%Y-%m-%d %H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond:06d}".rstrip("0")
    offset = t.utcoffset()
    if offset is None:
        return text
    return text + (" UTC" if not offset else t.strftime(" %z"))


def human_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    minutes = int(round(seconds / 60))
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes and not days:
        parts.append(f"{minutes} min")
    return " ".join(parts) or "0 min"


# --------------------------------------------------------------------------- report


def _rate(value: float, interval: float | None) -> float:
    return value / interval if interval else value


def build_report(stats: LogStats, *, interval: float | None, start: dt.datetime | None,
                 trailing_bytes: int = 0, sample: bool = False) -> dict[str, Any]:
    """The report as plain data (exact ints, floats, strings): what ``--format json`` prints."""
    span = stats.intervals
    real_time = stats.seconds is not None  # a capture with timestamps: rates by real time steps
    counters = {}
    for k, name in enumerate(COUNTERS):
        total = stats.increase[k]
        if real_time:
            mean = total / stats.seconds if stats.seconds else None
            peak = float(stats.peak[k]) if stats.seconds else None
        else:
            mean = _rate(total / span, interval) if span else None
            peak = _rate(float(stats.peak[k]), interval) if span else None
        counters[name] = {
            "increase": total,
            "mean_rate": mean,
            "peak_rate": peak,
            "restarts": stats.restarts[k],
            "wraps": stats.wraps[k],
        }
    gauges = {}
    for name in GAUGES:
        j = FIELD_NAMES.index(name)
        gauges[name] = {
            "min": stats.field_min[j] if stats.records else None,
            "mean": stats.field_sum[j] / stats.records if stats.records else None,
            "max": stats.field_max[j] if stats.records else None,
        }
    report: dict[str, Any] = {
        "file": stats.path,
        "sample_log": sample,
        "input_format": stats.input_format,
        "bytes": _bytes(stats, trailing_bytes),
        "records": stats.records,
        "trailing_bytes": trailing_bytes,
        "instances": stats.stride,
        "instance_names": list(stats.instance_names) if stats.instance_names is not None else None,
        "samples": stats.samples,
        "interval_seconds": interval,
        "median_step_seconds": stats.median_step,
        **_span(stats, interval, start),
        "on_decrease": stats.on_decrease,
        "backend": BACKEND,
        "rate_unit": "per second" if interval or real_time else "per interval",
        "counters": counters,
        "gauges": gauges,
        "restart_events": stats.event_count,
        "restarts": [
            {"record": e.record, "instance": stats.instance_label(e.instance) if stats.instance_names else e.instance,
             "sample": e.sample, "time": _iso(_event_time(e, start, interval)), "counters_restarted": e.restarts,
             "counters_wrapped": e.wraps}
            for e in stats.events
        ],
    }
    report["findings"] = findings(stats, report, interval, start)
    return report


def _bytes(stats: LogStats, trailing_bytes: int) -> int:
    """The input's size: a raw log's records and trailing bytes, a capture's file size."""
    return stats.bytes_at_start if stats.instance_names is not None else stats.records * RECORD_SIZE + trailing_bytes


def _span(stats: LogStats, interval: float | None, start: dt.datetime | None) -> dict[str, Any]:
    """start, end and duration_seconds: from a capture's timestamps, else from ``start``/``interval``."""
    if stats.first_time is not None and stats.last_time is not None:
        return {"start": _iso(stats.first_time), "end": _iso(stats.last_time),
                "duration_seconds": (stats.last_time - stats.first_time).total_seconds()}
    last = stats.samples - 1 if stats.records else 0
    return {
        "start": _iso(sample_time(start, interval, 0)) if stats.records else None,
        "end": _iso(sample_time(start, interval, last)) if stats.records else None,
        "duration_seconds": last * interval if interval is not None and stats.records else None,
    }


def _event_time(e: Event, start: dt.datetime | None, interval: float | None) -> dt.datetime | None:
    return e.time if e.time is not None else sample_time(start, interval, e.sample)


def _per_hour(count: int, stats: LogStats, interval: float | None) -> str:
    seconds = stats.seconds if stats.seconds is not None else (stats.intervals * interval if interval else 0)
    if not seconds:
        return ""
    hours = seconds / 3600
    return f" ({count / hours:.3g} per hour)" if hours else ""


def findings(stats: LogStats, report: dict[str, Any], interval: float | None,
             start: dt.datetime | None) -> list[dict[str, str]]:
    """Plain-language findings, most pressing first: ``{"level": "warning"|"ok"|"info", "text": ...}``."""
    out: list[dict[str, str]] = []
    inc = {name: stats.increase[k] for k, name in enumerate(COUNTERS)}

    def add(level: str, text: str) -> None:
        out.append({"level": level, "text": text})

    if stats.rows == 0:
        add("info", f"Too few records for any interval (need more than {stats.stride}).")
        return out

    auth = inc["AuthenticationFailures"]
    q = stats.quarters[:, COUNTERS.index("AuthenticationFailures")]
    if auth == 0:
        add("ok", "No authentication failures.")
    elif q[-1] >= 5 and q[-1] > 2 * q[0]:
        add("warning", f"Authentication failures are rising: {int(q[-1])} in the last quarter of the log against "
                       f"{int(q[0])} in the first ({auth:,} in all). Check for a peer with a wrong pre-shared key, "
                       "certificate or Kerberos identity, or someone guessing credentials.")
    else:
        add("info", f"{auth:,} authentication failures{_per_hour(auth, stats, interval)}, not rising.")

    soft = inc["SoftAssociations"]
    soft_col = FIELD_NAMES.index("SoftAssociations")
    if soft:
        add("warning", f"{soft:,} negotiations fell back to plaintext (SoftAssociations): that traffic was not "
                       "encrypted. Check whether the IPsec policy allows fallback to clear.")
    elif stats.field_max[soft_col]:
        add("info", f"SoftAssociations stood at {stats.field_max[soft_col]} before the log began and did not grow.")
    else:
        add("ok", "No soft (plaintext) associations.")

    nego, mm = inc["NegotiationFailures"], inc["OakleyMainMode"]
    if mm:
        share = 100.0 * nego / mm
        level = "warning" if share > 5 else "info"
        add(level, f"Negotiation failures were {share:.1f}% of main-mode SAs ({nego:,} failures, {mm:,} main-mode SAs)"
                   + ("; above 5% points at mismatched IKE proposals or unreachable peers." if level == "warning" else "."))
    elif nego:
        add("warning", f"{nego} negotiation failures and no successful main-mode SA.")
    else:
        add("info", "No main-mode SAs and no negotiation failures in the log.")

    recv, send = inc["ReceiveFailures"], inc["SendFailures"]
    if recv or send:
        add("warning", f"The TCP stack failed to receive {recv:,} and to send {send:,} IKE messages: check the network "
                       "path and the HBA.")
    else:
        add("ok", "No receive or send failures.")

    others = [f"{name} {inc[name]:,}" for name in ("AcquireFailures", "GetSPIFailures", "KeyAdditionFailures",
                                                  "KeyUpdateFailures", "InvalidPackets", "InvalidCookiesReceived")
              if inc[name]]
    if others:
        add("info", "Other failures: " + ", ".join(others) + ".")

    restart_events = [e for e in stats.events if e.restarts]
    if restart_events:
        count = stats.restart_event_count
        shown = "; ".join(
            f"instance {stats.instance_label(e.instance)} at {_where(e, start, interval)}, {len(e.restarts)} counters fell"
            for e in restart_events[:5]
        )
        tail = f"; {count - 5:,} more" if count > 5 else ""
        policy = stats.on_decrease
        meaning = ("increases after a restart are counted from zero" if policy in ("auto", "reset") else
                   "a fall counts as 0" if policy == "zero" else "a fall is a modular (wrapped) difference")
        plural = "restart" if count == 1 else "restarts"
        add("warning", f"{count:,} {plural}: {shown}{tail}. The service or the HBA restarted; "
                       f"{meaning} (--on-decrease {policy}).")
        if stats.input_format == "raw" and stats.stride == 1 and count > 2 and 4 * count > stats.rows:
            add("warning", f"Counters fell in {count / stats.rows:.0%} of the intervals: far more than restarts "
                           "explain. If the log interleaves several instances, read it with --stride K.")
    wrap_events = [e for e in stats.events if e.wraps]
    if wrap_events:
        shown = "; ".join(f"{', '.join(e.wraps)} on instance {stats.instance_label(e.instance)} at "
                          f"{_where(e, start, interval)}"
                          for e in wrap_events[:5])
        add("info", f"{sum(stats.wraps)} counter wrap(s) past 2**64: {shown}.")
    return out


def _where(e: Event, start: dt.datetime | None, interval: float | None) -> str:
    when = _event_time(e, start, interval)
    return f"record {e.record:,}" + (f" ({_human_time(when)})" if when else f" (sample {e.sample:,})")


_FORMAT_TEXT = {"raw": "raw records", "wnode": "WNODE buffers", "cim-csv": "a CIM CSV export"}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _fmt_int(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def _fmt_rate(x: float | None) -> str:
    if x is None or math.isnan(x):
        return "-"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def format_report(report: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    lines = []
    name = os.path.basename(report["file"])
    k, samples = report["instances"], report["samples"]
    names = report.get("instance_names")
    if names is not None:  # a capture: instances by name
        head = (f"{name}: {_plural(report['records'], 'record')} from {_FORMAT_TEXT[report['input_format']]} "
                f"({report['bytes']:,} bytes), {_plural(k, 'instance')} x up to {_plural(samples, 'sample')}")
    else:
        head = f"{name}: {_plural(report['records'], 'record')} ({report['bytes']:,} bytes)"
        if k > 1:
            head += f", {k} interleaved instances x {_plural(samples, 'sample')}"
    if report["interval_seconds"] is not None:
        head += f", every {report['interval_seconds']:g} s"
    elif report.get("median_step_seconds") is not None:
        head += f", every {report['median_step_seconds']:g} s (median, from the timestamps)"
    lines.append(head)
    if names:
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        lines.append(f"  instances: {shown}")
    detail = []
    if report["start"] is not None:
        detail.append(f"from {_human_time(dt.datetime.fromisoformat(report['start']))} "
                      f"to {_human_time(dt.datetime.fromisoformat(report['end']))}")
    if report["duration_seconds"] is not None:
        detail.append(f"spanning {human_duration(report['duration_seconds'])}")
    detail.append(f"decreases read with --on-decrease {report['on_decrease']}")
    lines.append("  " + "; ".join(detail))
    if report["trailing_bytes"]:
        lines.append(f"  ignored {report['trailing_bytes']} trailing byte(s) of a partial record at the end")
    lines.append("")

    unit = "/s" if report["rate_unit"] == "per second" else "/interval"
    title = "Counters" + (" (all instances)" if k > 1 else "")
    lines.append(f"{title:<26}{'increase':>16}{'mean' + unit:>14}{'peak' + unit:>14}{'restarts':>10}")
    for cname, c in report["counters"].items():
        restarts = f"{c['restarts']:,}" + (f" +{c['wraps']:,} wrap" if c["wraps"] else "")
        lines.append(f"  {cname:<24}{_fmt_int(c['increase']):>16}{_fmt_rate(c['mean_rate']):>14}"
                     f"{_fmt_rate(c['peak_rate']):>14}{restarts:>10}")
    lines.append("")
    title = "Gauges" + (" (per instance)" if k > 1 else "")
    lines.append(f"{title:<26}{'min':>16}{'mean':>14}{'max':>14}")
    for gname, g in report["gauges"].items():
        lines.append(f"  {gname:<24}{_fmt_int(g['min']):>16}{_fmt_rate(g['mean']):>14}{_fmt_int(g['max']):>14}")
    lines.append("")
    lines.append("Findings")
    marks = {"warning": "!", "info": "-", "ok": "+"}
    for f in report["findings"]:
        lines.append(textwrap.fill(f["text"], width=100, initial_indent=f"  {marks[f['level']]} ",
                                   subsequent_indent="    ", break_on_hyphens=False))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- info


def build_info(stats: LogStats, *, trailing_bytes: int, interval: float | None,
               start: dt.datetime | None, stride_given: bool) -> dict[str, Any]:
    """What ``ipsecstats info`` prints, as plain data."""
    capture = stats.instance_names is not None
    known = stride_given or capture
    return {
        "file": stats.path,
        "input_format": stats.input_format,
        "bytes": _bytes(stats, trailing_bytes),
        "records": stats.records,
        "trailing_bytes": trailing_bytes,
        "instances": stats.stride if known else None,
        "instance_names": list(stats.instance_names) if capture else None,  # type: ignore[arg-type]
        "samples": stats.samples if known else None,
        "incomplete_last_sample": bool(stats.records % stats.stride) if known else None,
        "interval_seconds": interval,
        "median_step_seconds": stats.median_step,
        **_span(stats, interval, start),
        "decreasing_counters": {
            name: {"restarts": stats.restarts[k], "wraps": stats.wraps[k]}
            for k, name in enumerate(COUNTERS) if stats.restarts[k] or stats.wraps[k]
        },
        "decrease_events": stats.event_count,
    }


def format_info(info: dict[str, Any]) -> str:
    lines = [info["file"]]
    lines.append(f"  size        {info['bytes']:,} bytes")
    tail = f", plus {info['trailing_bytes']} trailing byte(s) (a partial record)" if info["trailing_bytes"] else ""
    lines.append(f"  records     {info['records']:,} of {RECORD_SIZE} bytes{tail}")
    if info.get("instance_names") is not None:
        lines.append(f"  format      {_FORMAT_TEXT[info['input_format']]}")
        lines.append(f"  instances   {info['instances']}, up to {info['samples']:,} samples each: "
                     + ", ".join(info["instance_names"][:8]) + (" ..." if len(info["instance_names"]) > 8 else ""))
    elif info["instances"] is not None:
        extra = " (the last one incomplete)" if info["incomplete_last_sample"] else ""
        lines.append(f"  instances   {info['instances']}, {info['samples']:,} samples{extra}")
    if info["duration_seconds"] is not None:
        span = human_duration(info["duration_seconds"])
        if info["start"] is not None:
            span = (f"{_human_time(dt.datetime.fromisoformat(info['start']))} to "
                    f"{_human_time(dt.datetime.fromisoformat(info['end']))} ({span})")
        lines.append(f"  time span   {span}")
    dec = info["decreasing_counters"]
    if dec:
        parts = []
        for name, d in dec.items():
            text = f"{name} ({d['restarts']}" + (f", {d['wraps']} wrap(s)" if d["wraps"] else "") + ")"
            parts.append(text)
        lines.append(f"  decreasing  {len(dec)} counter(s) fell, in {info['decrease_events']} row(s): " + ", ".join(parts))
    else:
        lines.append("  decreasing  no counter ever decreases")
    return "\n".join(lines) + "\n"
