"""One pipeline for every input format: chunks of records in, chunks of paired deltas out.

A ``Reader`` (``formats``) yields ``Capture`` chunks. ``iter_delta_chunks`` pairs each
record with the previous record of its instance, across chunk boundaries, and yields a
``DeltaChunk`` per input chunk:

* a raw log (``reader.stride``): record ``r`` pairs with record ``r - stride`` (the
  stride kernel, carrying the last ``stride`` records into the next chunk);
* a capture (WNODE, CIM CSV): record ``i`` pairs with the previous record of the same
  instance code (the instance-keyed kernel, carrying an ``InstanceState``), so instances
  may appear, disappear and come back, and samples may be missing.

Delta rows come in the order of their later record. Every record also gets a *sample*:
the index of its poll, counted over the whole stream. With timestamps a new poll starts
where the time changes (a WNODE capture: one WNODE per poll); without, at a record whose
instance code is not above the previous record's (a raw log: ``r // stride``).
Concatenating the chunks gives exactly the whole-capture result, whatever the chunk size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._capture import Capture, InstanceLabels, concat
from ._deltas import deltas, divide_counters, rate_dtype, resolve_kinds
from ._errors import CounterResetError
from ._schema import NFIELDS
from ._window import WindowReader, window_ns

__all__ = ["CaptureReader", "DeltaChunk", "TableChunk", "iter_capture", "iter_delta_chunks", "read_capture",
           "record_place"]

_NAT = np.iinfo(np.int64).min
WHAT = ("records", "deltas", "rates")


@dataclass
class DeltaChunk:
    """The deltas of one input chunk.

    ``chunk``: the records (``chunk.start`` is the index of its first record in the
    source). ``sample``: (n,) the poll index of every record of the chunk. ``values``,
    ``resets``: the (m,) deltas and their (m, 21) decrease mask. ``later``: (m,) index in
    the chunk of each row's later record. ``steps``: (m,) seconds between the two records
    (NaN where a time is missing), or None without timestamps. ``earlier_values(rows)``
    gives the (k, 21) uint64 earlier records of delta rows ``rows`` (to tell a restart from
    a wrap). ``first_row``: the index of row 0 among all delta rows of the stream.
    """

    chunk: Capture
    sample: npt.NDArray[np.int64]
    values: npt.NDArray[np.void]
    resets: npt.NDArray[np.bool_] | None
    later: npt.NDArray[np.intp]
    steps: npt.NDArray[np.float64] | None
    earlier_values: Callable[[npt.NDArray[np.intp]], npt.NDArray[np.uint64]]
    first_row: int

    def __len__(self) -> int:
        return int(self.later.shape[0])

    def records(self) -> npt.NDArray[np.intp]:
        """The index in the source of each row's later record."""
        return self.later + self.chunk.start

    def leading_columns(self) -> dict[str, Any]:
        """``record``, ``timestamp`` (when the stream has times) and ``instance`` of each row."""
        return row_columns(self.chunk, self.later)


def row_columns(chunk: Capture, index: npt.NDArray[np.intp]) -> dict[str, Any]:
    """The export's leading columns of records ``index`` of ``chunk``: ``record`` (uint64),
    ``timestamp`` (when the stream has times), ``host`` (when it names hosts) and
    ``instance`` (the source's name; ``InstanceLabels``)."""
    cols: dict[str, Any] = {"record": (index + chunk.start).astype(np.uint64)}
    if chunk.timestamps is not None:
        cols["timestamp"] = chunk.timestamps[index]
    codes = chunk.instance_codes[index]
    if chunk.instance_hosts is not None:
        cols["host"] = InstanceLabels(codes, chunk.instance_hosts)
    cols["instance"] = InstanceLabels(codes, chunk.bare_names())
    return cols


def record_place(chunk: Capture, i: int) -> str:
    """Record ``i`` of ``chunk`` for messages: its index in the source, instance and time."""
    when = ""
    if chunk.timestamps is not None and not np.isnat(chunk.timestamps[i]):
        when = f", {np.datetime_as_string(chunk.timestamps[i], timezone='UTC')}"
    name = chunk.instance_names[int(chunk.instance_codes[i])]
    return f"record {chunk.start + i:,} (instance {name}{when})"


class _Polls:
    """Numbers the polls of a stream: a new poll where the time changes, or without times where the
    instance code does not rise."""

    def __init__(self) -> None:
        self.count = 0  # polls started so far
        self.last_code = -1
        self.last_time = _NAT

    def number(self, chunk: Capture) -> npt.NDArray[np.int64]:
        n = len(chunk)
        if n == 0:
            return np.empty(0, np.int64)
        codes = chunk.instance_codes
        new = np.empty(n, dtype=np.bool_)
        if chunk.timestamps is not None:
            ts = chunk.timestamps.view(np.int64)
            new[0] = ts[0] != self.last_time
            np.not_equal(ts[1:], ts[:-1], out=new[1:])
            self.last_time = int(ts[-1])
        else:
            new[0] = codes[0] <= self.last_code
            np.less_equal(codes[1:], codes[:-1], out=new[1:])
        if self.count == 0:
            new[0] = True  # the first record opens poll 0
        sample = np.cumsum(new, dtype=np.int64)
        sample += self.count - 1
        self.count = int(sample[-1]) + 1
        self.last_code = int(codes[-1])
        return sample


def iter_delta_chunks(reader: Any, *, on_decrease: str = "auto", kinds: Any = None,
                      interval: float | None = None) -> Iterator[DeltaChunk]:
    """``DeltaChunk``s of every chunk ``reader`` yields (see the module docstring).

    ``interval``: seconds per step instead of the timestamps (rates of a raw log, or of a
    capture without times). A ``CounterResetError`` (``on_decrease="raise"``) gets a
    ``place`` attribute naming the record, its instance and time.
    """
    if reader.stride is not None:
        yield from _stride_chunks(reader, reader.stride, on_decrease, kinds, interval)
    else:
        yield from _keyed_chunks(reader, on_decrease, kinds, interval)


def at_least(reader: Any, stride: int) -> Iterator[Capture]:
    """The reader's chunks, joined where needed so that each holds at least ``stride`` records
    (the carry of the next chunk), but the last; a stream of fewer records than ``stride``
    is a ValueError: no instance has two samples."""
    pending: list[Capture] = []
    held = 0
    for chunk in reader:
        pending.append(chunk)
        held += len(chunk)
        if held >= stride:
            yield concat(pending)
            pending, held = [], 0
    if pending:
        if pending[0].start == 0:
            raise ValueError(f"{reader.name}: holds {held:,} records, fewer than the {stride:,} interleaved "
                             f"instances of stride {stride:,}: no instance has a second sample")
        yield concat(pending)


def _stride_chunks(reader: Any, stride: int, on_decrease: str, kinds: Any,
                   interval: float | None) -> Iterator[DeltaChunk]:
    previous: npt.NDArray[np.void] | None = None
    rows = 0
    for chunk in at_least(reader, stride):
        recs = chunk.records
        n = recs.shape[0]
        try:
            values, resets = deltas(recs, stride=stride, on_decrease=on_decrease, previous=previous,  # type: ignore[arg-type]
                                    kinds=kinds, return_resets=True)
        except CounterResetError as exc:
            record = chunk.start + exc.row + (0 if previous is not None else stride)
            exc.place = f"record {record:,}" + (f" (instance {record % stride})" if stride > 1 else "")  # type: ignore[attr-defined]
            raise
        first = 0 if previous is not None else stride
        later = np.arange(first, n, dtype=np.intp)
        carry = previous

        def earlier_values(rows_: npt.NDArray[np.intp], recs: Any = recs, carry: Any = carry,
                           later: Any = later) -> npt.NDArray[np.uint64]:
            j = later[rows_] - stride
            out = np.empty((j.shape[0], NFIELDS), dtype=np.uint64)
            own = j >= 0
            out[own] = recs.view("<u8").reshape(-1, NFIELDS)[j[own]]
            if carry is not None:
                out[~own] = carry.view("<u8").reshape(-1, NFIELDS)[j[~own] + stride]
            return out

        steps = None if interval is None else np.full(later.shape[0], float(interval))
        sample = (np.arange(chunk.start, chunk.start + n, dtype=np.int64)) // stride
        yield DeltaChunk(chunk, sample, values, resets, later, steps, earlier_values, rows)
        rows += later.shape[0]
        previous = recs[n - stride:].copy()


def _keyed_chunks(reader: Any, on_decrease: Any, kinds: Any, interval: float | None) -> Iterator[DeltaChunk]:
    from ._keyed import InstanceState, keyed_deltas

    state = InstanceState()
    polls = _Polls()
    rows = 0
    for chunk in reader:
        sample = polls.number(chunk)
        timestamps = chunk.timestamps if interval is None else None
        try:
            result = keyed_deltas(chunk.records, chunk.instance_codes, state=state, timestamps=timestamps,
                                  on_decrease=on_decrease, kinds=kinds, return_resets=True)
        except CounterResetError as exc:
            exc.place = record_place(chunk, int(exc.later))  # type: ignore[attr-defined]
            raise
        before = result.previous_state

        def earlier_values(rows_: npt.NDArray[np.intp], chunk: Capture = chunk, result: Any = result,
                           before: Any = before) -> npt.NDArray[np.uint64]:
            j = result.earlier[rows_]
            out = np.empty((j.shape[0], NFIELDS), dtype=np.uint64)
            own = j >= 0
            out[own] = chunk.records.view("<u8").reshape(-1, NFIELDS)[j[own]]
            if not own.all():
                codes = chunk.instance_codes[result.later[rows_][~own]]
                out[~own] = before.records.view("<u8").reshape(-1, NFIELDS)[codes]
            return out

        steps = result.steps
        if interval is not None:
            steps = np.full(result.later.shape[0], float(interval))
        yield DeltaChunk(chunk, sample, result.values, result.resets, result.later, steps, earlier_values, rows)
        rows += result.later.shape[0]


class CaptureReader:
    """A ``Capture`` in memory as a one-chunk reader (no times: ``timestamps`` None)."""

    format = "capture"
    stride = None

    def __init__(self, cap: Capture, name: str = "<Capture>"):
        self.capture = cap
        self.name = name
        self.has_timestamps = cap.timestamps is not None
        self.has_hosts = cap.instance_hosts is not None

    def __iter__(self) -> Iterator[Capture]:
        yield self.capture

    def close(self) -> None:
        pass


def rate_rows(d: DeltaChunk, kinds: Any) -> npt.NDArray[np.void]:
    """Per-second rates of the counters of ``d``: each delta rounded once to float64, divided by
    its step (NaN where the step is missing or not > 0)."""
    kind_tuple = resolve_kinds(kinds)
    m = len(d)
    if d.steps is None:
        raise ValueError("rates need times: this capture has no timestamps; pass interval= (seconds per sample)")
    steps = d.steps.copy()
    steps[~(steps > 0)] = np.nan
    out = np.empty(m, rate_dtype(kind_tuple))
    divide_counters(d.values, kind_tuple, steps, out)
    return out


@dataclass
class TableChunk:
    """One chunk of ``iter_capture``: ``values`` (records, deltas or rates) and, per row, the
    index in the source of its (later) ``record``, its ``timestamps`` (or None) and its instance
    (``instance_codes`` into ``instance_names``; ``instances`` gives the names)."""

    values: npt.NDArray[np.void]
    record: npt.NDArray[np.intp]
    timestamps: npt.NDArray[np.datetime64] | None
    instance_codes: npt.NDArray[np.intp]
    instance_names: tuple[str, ...]

    @property
    def instances(self) -> npt.NDArray[np.object_]:
        return np.array(self.instance_names, dtype=object)[self.instance_codes]

    def __len__(self) -> int:
        return int(self.values.shape[0])


def _open(source: Any, input_format: str, options: dict[str, Any]) -> Any:
    if isinstance(source, Capture):
        return CaptureReader(source)
    from . import formats

    return formats.open_reader(source, input_format, what="iter_capture()", **options)


def iter_capture(source: Any, what: str = "records", *, input_format: str = "auto", on_decrease: str = "auto",
                 interval: float | None = None, kinds: Any = None, window_from: Any = None, window_to: Any = None,
                 **options: Any) -> Iterator[TableChunk]:
    """Stream a capture of any format as ``TableChunk``s of its records, deltas or rates.

    ``source``: a path, a binary file object (a pipe too), bytes, or a ``Capture``.
    ``input_format``: "auto" (told from the first bytes) or a format name (``formats.NAMES``).
    ``options`` go to the format's reader: ``chunk_records``, ``allow_partial``, ``stride``
    (raw), ``timestamp_column`` (CIM CSV), ``timezone`` (CIM CSV, PDH-CSV), ... Deltas pair
    each record with the previous record of its instance (a raw log: ``stride`` records back),
    rows in the order of the later record; rates divide by the time step between the two records, or ``interval``
    seconds. Concatenated, the chunks equal the whole capture's table exactly.
    ``window_from``/``window_to`` (a datetime, ``numpy.datetime64`` or ISO 8601 string; UTC when
    naive): only the records with ``from <= time < to``, numbered from the first of them
    (``_window.WindowReader``); a source without times is a ValueError.
    """
    if what not in WHAT:
        raise ValueError(f"what must be one of {', '.join(WHAT)}, got {what!r}")
    window = window_ns(window_from, window_to)
    reader = _open(source, input_format, options)
    if window is not None:
        try:
            reader = WindowReader(reader, *window)
        except BaseException:
            reader.close()
            raise
    try:
        if what == "records":
            for chunk in reader:
                yield TableChunk(chunk.records, np.arange(chunk.start, chunk.start + len(chunk), dtype=np.intp),
                                 chunk.timestamps, chunk.instance_codes, chunk.instance_names)
            return
        for d in iter_delta_chunks(reader, on_decrease=on_decrease, kinds=kinds,
                                   interval=interval if what == "rates" else None):
            c = d.chunk
            values = d.values if what == "deltas" else rate_rows(d, kinds)
            yield TableChunk(values, d.later + c.start, None if c.timestamps is None else c.timestamps[d.later],
                             c.instance_codes[d.later], c.instance_names)
    finally:
        reader.close()


def read_capture(source: Any, *, input_format: str = "auto", **options: Any) -> Capture:
    """The whole capture of any format (``iter_capture``'s records, concatenated) as one ``Capture``."""

    reader = _open(source, input_format, options)
    try:
        return concat(reader)
    finally:
        reader.close()


def capture_table(cap: Capture, what: str, on_decrease: str, interval: float | None, kinds: Any = None
                  ) -> tuple[npt.NDArray[np.void], npt.NDArray[np.intp]]:
    """The deltas or rates of a whole ``Capture`` and the index of each row's later record."""
    parts = list(iter_delta_chunks(CaptureReader(cap), on_decrease=on_decrease, kinds=kinds,
                                   interval=interval if what == "rates" else None))
    d = parts[0]
    return (d.values if what == "deltas" else rate_rows(d, kinds)), d.later
