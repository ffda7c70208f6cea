"""What the readers of ipsecstats' own exports share: the table's columns, and rows to ``Capture``.

``ipsecstats convert --what records`` writes one row per record (``_export.Layout``):

* a raw log: ``record``, ``instance`` (``record % stride``, when stride > 1), ``time``
  (``start + (record // stride) * interval``, when both were given), the 21 fields;
* a capture (WNODE, CIM CSV): ``record``, ``timestamp`` (when it has times), ``host`` (when
  it names hosts), ``instance`` (the source's name), the 21 fields.

``record`` numbers every record from 0, so a records table has ``record == row``; a deltas
table's first row is the later record of the first pair (never record 0), and a rates
table lacks the gauge columns: both are refused, since inputs are records.

A format module parses its file into ``Rows`` (numbers as arrays; instance and host names
as ids into a growing list of distinct texts); ``Assembler`` checks them and makes the
``Capture`` chunks: a raw log's export reads back as the raw log (``stride`` from the
``instance`` column: the first row where it is 0 again; its ``time`` column is checked
against ``start + sample * interval`` and given as ``start``/``interval``, not as
timestamps, so ``report`` takes ``--interval``/``--start`` as for the raw log), a
capture's as the capture (labels ``"HOST NAME"`` through ``NameTable.code(name, host)``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._capture import Capture, NameTable
from .._schema import FIELD_NAMES, GAUGES

__all__ = ["INPUTS_ARE_RECORDS", "LEADING", "MAX_STRIDE", "Assembler", "ExportFormatError", "Plan", "Rows", "Texts",
           "plan_columns"]

#: The leading columns an export can have, in the order the writer puts them.
LEADING = ("record", "instance", "time", "timestamp", "host")
INPUTS_ARE_RECORDS = "inputs are records: export them with ipsecstats convert --what records"
#: The most instances a raw log's export may interleave: opening holds its rows until instance
#: 0 comes round again, so this bounds that memory (a CSV ``instance`` column that counts
#: up further holds names, not instance numbers).
MAX_STRIDE = 1 << 16


class ExportFormatError(ValueError):
    """A malformed export; ``line`` (text) or row (Parquet) and ``column`` are 1-based."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None,
                 field: str | None = None):
        self.line = line
        self.column = column
        self.field = field
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:  # keyword-only fields: pickle by hand
        return (_rebuild, (str(self), self.line, self.column, self.field))


def _rebuild(message: str, line: int | None, column: int | None, field: str | None) -> ExportFormatError:
    return ExportFormatError(message, line=line, column=column, field=field)


@dataclass(frozen=True)
class Plan:
    """The columns of an export: ``shape`` "raw", "capture", or None (an ``instance`` column
    alone: raw when its values are ``record % stride``, told from the rows)."""

    columns: tuple[str, ...]
    shape: str | None
    time: str | None  # "time" (raw), "timestamp" (capture) or None

    def has(self, name: str) -> bool:
        return name in self.columns


def plan_columns(columns: list[str], name: str, where: str = "line 1") -> Plan:
    """Check an export's column names; refuse rates and foreign tables with a message."""
    seen: dict[str, int] = {}
    for i, col in enumerate(columns):
        if col in seen:
            raise ExportFormatError(f"{name}: {where}: column {col!r} appears twice (columns {seen[col] + 1} "
                                    f"and {i + 1})", line=1, column=i + 1, field=col)
        seen[col] = i
    missing = [f for f in ("record", *FIELD_NAMES) if f not in seen]
    if missing:
        if set(missing) == set(GAUGES):
            raise ExportFormatError(f"{name}: a rates table (no gauge columns {', '.join(GAUGES)}): "
                                    f"{INPUTS_ARE_RECORDS}", line=1)
        raise ExportFormatError(f"{name}: {where}: the export lacks column(s) {', '.join(missing)}", line=1)
    extra = [c for c in columns if c not in FIELD_NAMES and c not in LEADING]
    if extra == ["file"]:
        raise ExportFormatError(f"{name}: a part of a Parquet dataset (convert of several files or --scheduler, "
                                "with a 'file' column): not an input; read the logs it came from, or convert one "
                                "FILE at a time", line=1)
    if extra:
        raise ExportFormatError(f"{name}: {where}: unexpected column {extra[0]!r} (an ipsecstats export has "
                                f"{', '.join(LEADING)} and the 21 fields)", line=1, column=seen[extra[0]] + 1)
    if "time" in seen and ("timestamp" in seen or "host" in seen):
        raise ExportFormatError(f"{name}: {where}: both 'time' (a raw log's export) and 'timestamp'/'host' "
                                "(a capture's)", line=1)
    if ("timestamp" in seen or "host" in seen) and "instance" not in seen:
        raise ExportFormatError(f"{name}: {where}: a capture's export lacks the 'instance' column", line=1)
    shape: str | None = "raw"
    if "timestamp" in seen or "host" in seen:
        shape = "capture"
    elif "instance" in seen and "time" not in seen:
        shape = None
    time = "time" if "time" in seen else "timestamp" if "timestamp" in seen else None
    return Plan(tuple(columns), shape, time)


class Texts:
    """Distinct texts of a column in order of first appearance: ``id(text)``, ``items``."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._ids: dict[str, int] = {}

    def id(self, text: str) -> int:
        i = self._ids.get(text)
        if i is None:
            i = self._ids[text] = len(self.items)
            self.items.append(text)
        return i


@dataclass
class Rows:
    """Parsed rows: ``record`` uint64, ``stamps`` int64 ns (NaT = min int64) or None, ``records``,
    ``instances``/``hosts`` ids into the reader's ``Texts`` (or, for a raw log's Parquet, the
    ``instance`` numbers as uint64), ``places`` the line (text) or row (Parquet) of each."""

    record: npt.NDArray[np.uint64]
    stamps: npt.NDArray[np.int64] | None
    instances: npt.NDArray[Any] | None
    hosts: npt.NDArray[np.intp] | None
    records: npt.NDArray[np.void]
    places: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.record.shape[0])


def _concat_rows(parts: list[Rows]) -> Rows:
    if len(parts) == 1:
        return parts[0]

    def cat(name: str) -> Any:
        got = [getattr(p, name) for p in parts]
        # dtype=: numpy's promotion would make little-endian rows native on a big-endian host
        return None if got[0] is None else np.concatenate(got, dtype=got[0].dtype)

    return Rows(cat("record"), cat("stamps"), cat("instances"), cat("hosts"), cat("records"), cat("places"))


def _decimal(text: str) -> int | None:
    """``text`` as an int when it is canonical decimal digits ("0", "17"; not "007", "+1")."""
    if text.isascii() and text.isdigit() and (text == "0" or text[0] != "0"):
        return int(text)
    return None


class Assembler:
    """Rows to ``Capture`` chunks: checks, the raw log's stride and times, instance labels.

    ``place``: "line" or "row" (Parquet), for messages. ``instance_texts``/``host_texts``:
    the reader's ``Texts`` (None when instances come as numbers). ``shape``: from the
    plan, or from Parquet metadata; None decides from the first rows.
    """

    def __init__(self, name: str, plan: Plan, place: str, instance_texts: Texts | None,
                 host_texts: Texts | None, shape: str | None = None):
        self.name = name
        self.plan = plan
        self.place = place
        self.instance_texts = instance_texts
        self.host_texts = host_texts
        self.shape = shape or plan.shape
        self.stride: int | None = None
        self.start: np.datetime64 | None = None  # a raw log's start and interval, from its time column
        self.interval: float | None = None
        self._step_ns: int | None = None
        self._start_ns = 0
        self._next_record = 0
        self._table = NameTable()
        self._codes: dict[tuple[int, int], int] = {}
        self._numbers: list[int | None] = []  # instance text id -> its decimal value (raw shape)

    # -- opening: the shape and the stride ------------------------------------------------

    def open(self, rows: Iterator[Rows]) -> Iterator[Rows]:
        """Read as many rows as it takes to know the shape and a raw log's stride (at most one
        sample beyond the first chunk); returns the rows again, from the first."""
        first = next(rows, None)
        if first is None:
            if self.shape is None:
                self.shape = "capture"
            if self.shape == "raw":
                self.stride = 1
            return iter(())
        self._check_records(first)
        if self.shape is None:
            self.shape = "raw" if self._raw_instances(first) else "capture"
        if self.shape == "capture":
            return _chain([first], self._checked(rows))
        if not self.plan.has("instance"):
            self.stride = 1
            if first.stamps is not None:
                self._time_base(first, first.record.astype(np.int64))
            return _chain([first], self._checked(rows))
        held, count = [first], len(first)
        stride = self._stride_in(first)
        more: Rows | None = first
        while stride is None and more is not None and count <= MAX_STRIDE:
            more = next(rows, None)
            if more is None:
                break
            self._check_records(more)
            held.append(more)
            count += len(more)
            if self.plan.shape is None and self._instance_numbers(more, strict=False) is None:
                self.shape = "capture"  # names, after all: not a raw log's instance numbers
                return _chain(held, self._checked(rows))
            stride = self._stride_in(more)
        whole = _concat_rows(held)
        if stride is None and more is not None:  # no instance 0 again in MAX_STRIDE records
            if self.plan.shape is None:
                self.shape = "capture"
                return _chain([whole], self._checked(rows))
            self._fail(whole, len(whole) - 1, "instance", f"instance 0 does not come round again in "
                       f"{MAX_STRIDE:,} records: not a raw log's export")
        if stride is None:  # no sample came round again: the file holds less than two samples
            stride = len(whole)
        self.stride = stride
        if whole.stamps is not None:
            self._time_base(whole, whole.record.astype(np.int64) // stride)
        return _chain([whole], self._checked(rows))

    def _checked(self, rows: Iterator[Rows]) -> Iterator[Rows]:
        for part in rows:
            self._check_records(part)
            yield part

    def _raw_instances(self, rows: Rows) -> bool:
        """Whether an ``instance`` column (no times, no hosts) holds ``record % stride``: canonical
        decimals that start at 0 and count up by one until they come back to 0."""
        assert self.instance_texts is not None and rows.instances is not None
        values = self._instance_numbers(rows, strict=False)
        if values is None:
            return False
        back = np.flatnonzero(values[1:] == 0)
        k = int(back[0]) + 1 if back.shape[0] else len(rows)
        return bool((values == np.arange(len(rows)) % k).all())

    def _instance_numbers(self, rows: Rows, strict: bool) -> npt.NDArray[np.int64] | None:
        if self.instance_texts is None:  # Parquet: numbers already
            return rows.instances.astype(np.int64)  # type: ignore[union-attr]
        texts = self.instance_texts.items
        while len(self._numbers) < len(texts):
            self._numbers.append(_decimal(texts[len(self._numbers)]))
        numbers = np.array([-1 if v is None or v >= 2**62 else v for v in self._numbers], np.int64)
        values = numbers[rows.instances]
        if (values < 0).any():
            if not strict:
                return None
            i = int(np.argmax(values < 0))
            self._fail(rows, i, "instance", f"{texts[int(rows.instances[i])]!r} is not an instance number "  # type: ignore[index]
                       "(the rows before read as a raw log's export: instance = record % stride)")
        return values

    def _stride_in(self, rows: Rows) -> int | None:
        """The record where instance 0 comes round again (the stride), if in ``rows``."""
        values = self._instance_numbers(rows, strict=True)
        assert values is not None
        back = np.flatnonzero((values == 0) & (rows.record.astype(np.int64) > 0))
        return int(rows.record[back[0]]) if back.shape[0] else None

    # -- every chunk -------------------------------------------------------------------------

    def _check_records(self, rows: Rows) -> None:
        """``record`` numbers every record from 0: a deltas table (first row: record >= 1) or a
        gap fails here."""
        n = len(rows)
        want = np.arange(self._next_record, self._next_record + n, dtype=np.uint64)
        bad = np.flatnonzero(rows.record != want)
        if bad.shape[0]:
            i = int(bad[0])
            got, expected = int(rows.record[i]), int(want[i])
            if expected == 0:
                why = ("a records export starts at record 0; a deltas table (convert --what deltas) starts at "
                       f"the later record of the first pair: {INPUTS_ARE_RECORDS}")
            else:
                why = f"{expected} expected: a records export numbers every record in order"
            self._fail(rows, i, "record", f"record {got}, but {why}")
        self._next_record += n

    def capture(self, rows: Rows) -> Capture:
        """The ``Capture`` chunk of ``rows`` (checked)."""
        start = int(rows.record[0]) if len(rows) else self._next_record
        if self.shape == "raw":
            stride = self.stride or 1
            sample = rows.record.astype(np.int64) // stride
            if self.plan.has("instance"):
                values = self._instance_numbers(rows, strict=True)
                want = rows.record.astype(np.int64) % stride
                self._first_mismatch(rows, values, want, "instance",  # type: ignore[arg-type]
                                     lambda g, w: f"instance {g}, but record % stride ({stride}) is {w}")
            if rows.stamps is not None:
                self._check_times(rows, sample)
            codes = (rows.record % np.uint64(stride)).astype(np.intp)
            return Capture(rows.records, None, codes, tuple(str(i) for i in range(stride)), start)
        codes = self._labels(rows)
        ts = None if rows.stamps is None else rows.stamps.view("datetime64[ns]")
        return Capture(rows.records, ts, codes, self._table.names, start, self._table.hosts)

    def _labels(self, rows: Rows) -> npt.NDArray[np.intp]:
        """Instance codes: one ``NameTable.code(name, host)`` per distinct (host, name) pair."""
        assert rows.instances is not None and self.instance_texts is not None
        inst = rows.instances.astype(np.int64)
        hosts = rows.hosts.astype(np.int64) if rows.hosts is not None else np.zeros_like(inst)
        width = max(len(self.instance_texts.items), 1)
        pairs = hosts * width + inst
        uniq, back = np.unique(pairs, return_inverse=True)
        out = np.empty(uniq.shape[0], np.intp)
        for j, key in enumerate(uniq.tolist()):
            h, i = divmod(key, width)
            code = self._codes.get((h, i))
            if code is None:
                name = self.instance_texts.items[i]
                host = self.host_texts.items[h] if self.host_texts is not None and rows.hosts is not None else None
                if host and " " in host:
                    k = int(np.argmax(pairs == key))
                    self._fail(rows, k, "host", f"{host!r}: a host name holds no space")
                code = self._codes[(h, i)] = self._table.code(name, host)
            out[j] = code
        return out[back.reshape(-1)]

    def _check_times(self, rows: Rows, sample: npt.NDArray[np.int64]) -> None:
        """A raw log's ``time``: ``start + sample * step``, exact in ns; sets ``start``/``interval``."""
        assert rows.stamps is not None
        stamps = rows.stamps
        nat = stamps == np.iinfo(np.int64).min
        if nat.any():
            self._fail(rows, int(np.argmax(nat)), "time", "an empty time (a raw log's export has a time for every "
                       "record, or none)")
        self._time_base(rows, sample)
        step = self._step_ns or 0
        want = self._start_ns + sample * step
        self._first_mismatch(rows, stamps, want, "time",
                             lambda g, w: f"{_iso(g)}, but the first samples' times give {_iso(w)} "
                                          "(a raw log's export has evenly spaced times)")

    def _time_base(self, rows: Rows, sample: npt.NDArray[np.int64]) -> None:
        """``start`` (the time of record 0) and ``interval`` (from the first later sample's time)."""
        assert rows.stamps is not None
        if self.start is None and len(rows):
            self._start_ns = int(rows.stamps[0])
            self.start = np.datetime64(self._start_ns, "ns")
        if self._step_ns is None:
            later = np.flatnonzero(sample > 0)
            if later.shape[0]:
                j = int(later[0])
                self._step_ns = (int(rows.stamps[j]) - self._start_ns) // int(sample[j])
                self.interval = self._step_ns / 1e9

    def _first_mismatch(self, rows: Rows, got: npt.NDArray[Any], want: npt.NDArray[Any], column: str,
                        say: Any) -> None:
        bad = np.flatnonzero(got != want)
        if bad.shape[0]:
            i = int(bad[0])
            self._fail(rows, i, column, say(int(got[i]), int(want[i])))

    def _fail(self, rows: Rows, i: int, column: str, message: str) -> None:
        place = int(rows.places[i])
        col = self.plan.columns.index(column) + 1 if column in self.plan.columns else None
        raise ExportFormatError(f"{self.name}: {self.place} {place}, column {col} ({column}): {message}",
                                line=place, column=col, field=column)


def _iso(ns: int) -> str:
    return str(np.datetime_as_string(np.datetime64(ns, "ns"), unit="auto", timezone="UTC"))


def _chain(head: list[Rows], tail: Iterator[Rows]) -> Iterator[Rows]:
    yield from head
    yield from tail

