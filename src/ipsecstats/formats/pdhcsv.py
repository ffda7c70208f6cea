"""Perfmon logs of ``MSiSCSI_MMIPSECStats`` (PDH-CSV and PDH-TSV): sniff, chunk reader, ``read_pdh_csv``.

WMI's reverse adapter publishes the class as the perf object ``MSiSCSI_MMIPSECStats``, one
counter per property, so ``typeperf -f CSV``, ``logman -f csv`` and ``relog -f csv|tsv``
write it as text logs:

* a header row whose first cell is ``(PDH-CSV 4.0) (<time zone name>)(<bias minutes>)``
  (``PDH-TSV`` with tabs), then one column per counter path
  ``\\\\HOST\\MSiSCSI_MMIPSECStats(INSTANCE)\\Counter``, in any order, other objects mixed in;
* one row per sample: ``MM/DD/YYYY HH:MM:SS.mmm`` local time, then every value quoted and
  printed with ``%.20g`` (a double), ``" "`` for a missing sample;
* the ANSI code page, no BOM, CRLF.

Times become UTC with the header's bias: ``utc = local + bias`` minutes (local = UTC - bias),
the bias in force when the log started. A log that spans a daylight-saving change needs the
zone's rules instead: ``timezone`` (an IANA name such as America/New_York) converts each
wall time with them (``_wallclock.WallClock``: the repeated hour read in time order, a skipped
time an error). Without it, times that go back are counted in a warning.
Values are read exactly from their decimal text: a whole number becomes the uint64 it
names (what rounds to the double 2**64 is 2**64 - 1); a fraction is an error (a formatted
rate, not a raw count). Values above 2**53 were doubles in perfmon, so they may be off by
the double's rounding: a warning counts them. Each row gives one record per (host,
instance) whose 21 counters are all present, labelled ``"HOST INSTANCE"``, in the order
of the instances' first columns; an instance with a missing counter in a row is skipped
there (a warning counts them), and deltas pair across the gap with the real time step.
Columns of other objects are ignored (a warning names them).

Reading streams: blocks of the source go through the row kernel (``_fast.pdh_rows`` or its
twin); the column map is built once from the header. Memory stays bounded whatever the
file size: one block, one chunk of records, and one row of at most ``max_row`` bytes.
The binary log (``.blg``, first bytes ``"(PDH-BIN 4.0)"``) is refused with the ``relog``
command that converts it.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _backend
from .. import _pdh_layout as PL
from .._capture import Capture, NameTable, concat
from .._checks import check_chunk_records, chunk_rows
from .._schema import FIELD_NAMES, NFIELDS, RECORD_DTYPE
from .._source import ByteSource
from . import _csvtime
from ._base import BlockBuffer, Format, FormatError, option_spelling
from ._wallclock import WallClock, WallTimeError

__all__ = ["FORMAT", "OBJECT", "PdhCsvFormatError", "PdhCsvReader", "PdhCsvWarning", "accept", "read_pdh_csv"]

#: The perf object WmiApRpl publishes for the WMI class.
OBJECT = "MSiSCSI_MMIPSECStats"
#: Records per chunk (about): 2.75 MB of records.
CHUNK_RECORDS = 16384
#: Bytes read at a time (the buffer doubles while one unfinished row fills half of it).
BLOCK_BYTES = 1 << 20
#: The longest data row accepted is the larger of this and ``ROW_BYTES_PER_COLUMN`` per column.
MAX_ROW_BYTES = 1 << 20
ROW_BYTES_PER_COLUMN = 256
#: The longest header accepted (a log of every counter of a big server is a few MB; this is 200,000 paths).
MAX_HEADER_BYTES = 16 << 20
#: Biases reach +-14:00 (every zone in use); a larger one is not a time zone.
MAX_BIAS_MINUTES = 14 * 60
_EXACT = np.uint64(1 << 53)
_BOM8 = b"\xef\xbb\xbf"
_SIGNATURES = (b'"(PDH-CSV 4.0)', b'"(PDH-TSV 4.0)', b"(PDH-CSV 4.0)", b"(PDH-TSV 4.0)")
#: The type record that starts a binary log (pdh's log.c writes it quoted, then CRLF).
BLG_SIGNATURES = (b'"(PDH-BIN 4.0)', b"(PDH-BIN 4.0)")
_FIRST_CELL = re.compile(r"\(PDH-(CSV|TSV) 4\.0\)\s*\((.*)\)\s*\(\s*([+-]?[0-9]+)\s*\)\s*\Z", re.DOTALL)
_FIELD_INDEX = {name.lower(): k for k, name in enumerate(FIELD_NAMES)}


class PdhCsvFormatError(ValueError):
    """A perfmon log value or line that cannot be read; ``line`` and ``column`` are 1-based."""

    def __init__(self, message: str, *, line: int, column: int | None = None, counter: str | None = None):
        self.line = line
        self.column = column
        self.counter = counter
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:  # keyword-only fields: pickle by hand
        return (_rebuild_error, (str(self), self.line, self.column, self.counter))


def _rebuild_error(message: str, line: int, column: int | None, counter: str | None) -> PdhCsvFormatError:
    return PdhCsvFormatError(message, line=line, column=column, counter=counter)


class PdhCsvWarning(UserWarning):
    """Something of a perfmon log was left out: other objects' columns, samples with gaps,
    or values above 2**53 that perfmon's doubles could not hold exactly."""


def accept(prefix: bytes) -> bool:
    """A PDH-CSV/TSV header (``"(PDH-CSV 4.0)``), or the type record of a binary log (refused when read)."""
    head = prefix[3:] if prefix.startswith(_BOM8) else prefix
    return head.startswith(_SIGNATURES) or head.startswith(BLG_SIGNATURES)


def blg_error(name: str) -> FormatError:
    """The one-line error for a binary perfmon log: no open specification or parser exists."""
    stem = os.path.splitext(os.path.basename(name))[0] if name.lower().endswith(".blg") else "FILE"
    stem = stem if stem and " " not in stem else "FILE"
    return FormatError(f"{name}: perfmon binary log: convert it with `relog {stem}.blg -f csv -o {stem}.csv`")


def is_blg(name: str, prefix: bytes) -> bool:
    """A binary perfmon log, by its type record or, failing that, by its ``.blg`` suffix."""
    head = prefix[3:] if prefix.startswith(_BOM8) else prefix
    return head.startswith(BLG_SIGNATURES) or (name.lower().endswith(".blg") and not head.startswith(_SIGNATURES))


def _cell_text(raw: bytes) -> str:
    """A header cell: UTF-8 when it is valid UTF-8, else the ANSI code page read as cp1252
    (bytes cp1252 leaves undefined keep their Latin-1 meaning)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(raw[i: i + 1].decode("cp1252", "strict") if raw[i] not in b"\x81\x8d\x8f\x90\x9d"
                       else chr(raw[i]) for i in range(len(raw)))


@dataclass(frozen=True)
class _Path:
    """One counter path ``\\\\host\\object(instance)\\counter``; ``instance`` None when it has none."""

    host: str
    object: str
    instance: str | None
    counter: str


def _parse_path(text: str) -> _Path | None:
    if not text.startswith("\\\\"):
        return None
    host, sep, rest = text[2:].partition("\\")
    objinst, sep2, counter = rest.rpartition("\\")
    if not sep or not sep2 or not objinst:
        return None
    if objinst.lower() == OBJECT.lower():
        return _Path(host, OBJECT, None, counter)
    if objinst.lower().startswith(OBJECT.lower() + "(") and objinst.endswith(")"):
        return _Path(host, OBJECT, objinst[len(OBJECT) + 1: -1], counter)
    return _Path(host, objinst.split("(", 1)[0], None, counter)


@dataclass
class _Layout:
    """What the header says: delimiter, bias, the kernel's column roles, the instances."""

    delimiter: str
    zone: str
    bias: int
    roles: npt.NDArray[np.int64]
    instances: list[tuple[str, str]]   # (host, instance) in order of first column
    columns: list[str]                 # the header cells, for messages
    ignored: dict[str, int]            # other object -> columns


class PdhCsvReader:
    """Chunks of a perfmon PDH-CSV/TSV log of ``MSiSCSI_MMIPSECStats`` (see ``read_pdh_csv``).

    ``timezone``: the zone the log was written in (IANA name or offset), for its rules
    instead of the header's bias. ``chunk_records``: about this many records per chunk
    (whole rows: rows of ``chunk_records // instances``, at least one). ``option_style``:
    messages name ``timezone=`` ("keyword") or ``--timezone`` ("flag").
    """

    format: str = "pdh-csv"
    stride: int | None = None
    has_timestamps = True
    has_hosts = True

    def __init__(self, source: ByteSource, *, timezone: str | None = None, chunk_records: int | None = None,
                 option_style: str | None = None):
        self.source = source
        self.name = source.name
        self._spell = option_spelling(option_style)
        self.timezone = timezone
        self._zone = _csvtime.parse_zone(timezone, self._spell)
        self.chunk_records = check_chunk_records(CHUNK_RECORDS if chunk_records is None else chunk_records)
        # private knobs (tests): bytes per read, longest row
        self._block = BLOCK_BYTES
        self._max_row: int | None = None
        prefix = source.peek(64)
        if is_blg(self.name, prefix):
            raise blg_error(self.name)

    def close(self) -> None:
        self.source.close()

    def __iter__(self) -> Iterator[Capture]:
        try:
            yield from self._chunks()
        finally:
            self.source.close()

    # -- header --------------------------------------------------------------------------

    def _header_line(self, buf: BlockBuffer) -> bytes:
        if buf.arr[:3].tobytes() == _BOM8 and buf.filled >= 3:
            buf.pos = 3
        while True:
            nl = buf.arr[buf.pos: buf.filled].tobytes().find(b"\n")
            if nl >= 0 or buf.eof:
                end = buf.pos + nl if nl >= 0 else buf.filled
                raw = buf.arr[buf.pos: end].tobytes()
                buf.pos = min(end + 1, buf.filled)
                return raw[:-1] if raw.endswith(b"\r") else raw
            if buf.filled - buf.pos > MAX_HEADER_BYTES:
                raise PdhCsvFormatError(f"{self.name}: line 1: a header longer than {MAX_HEADER_BYTES:,} bytes: "
                                        "not a perfmon log", line=1)
            buf.fill()  # at least half a buffer more each time: linear in all

    def _layout(self, raw: bytes) -> _Layout:
        if b"\0" in raw:
            raise PdhCsvFormatError(f"{self.name}: line 1: NUL bytes in the header: binary data or UTF-16, "
                                    "not a perfmon text log", line=1)
        delimiter = "\t" if raw.lstrip(b'"').startswith(b"(PDH-TSV") else ","
        try:  # Latin-1 maps bytes 1:1, so each cell can be decoded on its own afterwards
            cells = next(csv.reader([raw.decode("latin-1")], delimiter=delimiter, strict=True))
        except (csv.Error, StopIteration) as exc:
            raise PdhCsvFormatError(f"{self.name}: line 1: malformed header ({exc})", line=1) from None
        first = _FIRST_CELL.match(cells[0]) if cells else None
        if first is None:
            raise PdhCsvFormatError(
                f"{self.name}: line 1: the first cell {cells[0][:60] if cells else ''!r} is not "
                "'(PDH-CSV 4.0) (<time zone>)(<bias minutes>)': not a perfmon log", line=1, column=1)
        zone = _cell_text(first.group(2).encode("latin-1"))
        bias = int(first.group(3))
        if abs(bias) > MAX_BIAS_MINUTES:
            raise PdhCsvFormatError(f"{self.name}: line 1, column 1: time zone bias {bias} minutes is beyond "
                                    f"+-{MAX_BIAS_MINUTES}", line=1, column=1)
        columns = [cells[0]] + [_cell_text(c.encode("latin-1")) for c in cells[1:]]
        roles = np.full(len(columns), PL.ROLE_IGNORE, np.int64)
        roles[0] = PL.ROLE_TIMESTAMP
        index: dict[tuple[str, str], int] = {}
        where: dict[tuple[int, int], int] = {}
        ignored: dict[str, int] = {}
        for j, text in enumerate(columns[1:], 1):
            path = _parse_path(text)
            if path is None:
                ignored["(not counter paths)"] = ignored.get("(not counter paths)", 0) + 1
                continue
            if path.object != OBJECT:
                ignored[path.object] = ignored.get(path.object, 0) + 1
                continue
            k = _FIELD_INDEX.get(path.counter.lower())
            if k is None:
                ignored[f"{OBJECT}\\{path.counter}"] = ignored.get(f"{OBJECT}\\{path.counter}", 0) + 1
                continue
            key = (path.host, "" if path.instance is None else path.instance)
            i = index.setdefault(key, len(index))
            if (i, k) in where:
                raise PdhCsvFormatError(f"{self.name}: line 1: counter {text!r} appears twice (columns "
                                        f"{where[i, k] + 1} and {j + 1})", line=1, column=j + 1, counter=text)
            where[i, k] = j
            roles[j] = i * NFIELDS + k
        if not index:
            held = ", ".join(f"{obj} ({n} column{'s' if n > 1 else ''})" for obj, n in ignored.items()) or "no counters"
            raise PdhCsvFormatError(f"{self.name}: a perfmon log without {OBJECT} counters; it holds {held}", line=1)
        for (host, inst), i in index.items():
            lacking = [name for k, name in enumerate(FIELD_NAMES) if (i, k) not in where]
            if lacking:
                raise PdhCsvFormatError(
                    f"{self.name}: line 1: {OBJECT} instance {inst!r} of \\\\{host} lacks counter(s) "
                    f"{', '.join(lacking)}: log all 21 counters of the object", line=1)
        return _Layout(delimiter, zone, bias, roles, list(index), columns, ignored)

    # -- rows ----------------------------------------------------------------------------

    def _chunks(self) -> Iterator[Capture]:
        buf = BlockBuffer(self.source, max(self._block, 4))
        buf.fill()
        if buf.filled == 0:
            raise PdhCsvFormatError(f"{self.name}: no header row (an empty file)", line=1)
        lay = self._layout(self._header_line(buf))
        self.layout = lay
        if lay.ignored:
            what = ", ".join(f"{obj} ({n})" for obj, n in lay.ignored.items())
            warnings.warn(PdhCsvWarning(f"{self.name}: ignored {sum(lay.ignored.values()):,} column(s) that are not "
                                        f"{OBJECT} counters: {what}"), stacklevel=2)
        ninst = len(lay.instances)
        nslots = ninst * NFIELDS
        # rows: each holds at least ninst * 21 cells of 2 bytes (a digit or blank and a separator)
        cap = chunk_rows(self.source, max(1, self.chunk_records // ninst), 2 * NFIELDS * ninst)
        max_row = self._max_row or max(MAX_ROW_BYTES, ROW_BYTES_PER_COLUMN * len(lay.columns))
        bias = _dt.timedelta(minutes=-lay.bias)  # the offset when the log started: local - UTC
        clock = WallClock(self._zone, bias) if self._zone is not None else WallClock(_dt.timezone(bias))
        back = _Setbacks()
        table = NameTable()
        inst_codes = np.full(ninst, -1, np.intp)
        kernel = _backend.KERNEL
        delim = ord(lay.delimiter)
        line = 2
        first = 0
        gaps = partial = inexact = 0
        while True:
            values = np.empty((cap, nslots), np.uint64)
            missing = np.empty((cap, nslots), np.uint8)
            stamps = np.empty(cap, np.int64)
            lines = np.empty(cap, np.int64)
            n = 0
            while n < cap:
                data = buf.arr[buf.pos: buf.filled]
                code, k, consumed, next_line, column, offset, length = kernel.pdh_rows(
                    data, buf.eof, delim, lay.roles, values[n:], missing[n:], stamps[n:], lines[n:], line, max_row)
                n += k
                if code:
                    self._kernel_error(code, next_line, column, buf.base + buf.pos + offset, data[offset: offset + length]
                                       if length and code != PL.FIELD_COUNT else None, length, lay, max_row)
                buf.pos += consumed
                line = next_line
                if n == cap or buf.eof:
                    break
                buf.fill()
            if n:
                if self._zone is None:
                    back.see(stamps[:n], lines[:n])
                utc = self._to_utc(clock, stamps[:n], lines[:n], lay)
                vals = values[:n]
                inexact += int(np.count_nonzero(vals > _EXACT))
                miss = missing[:n].reshape(n, ninst, NFIELDS)
                present: npt.NDArray[np.bool_]
                if miss.any():
                    some = miss.any(axis=2)
                    gaps += int(np.count_nonzero(some))
                    partial += int(np.count_nonzero(some & ~miss.all(axis=2)))
                    present = np.logical_not(some)
                else:
                    present = np.ones((n, ninst), bool)
                self._register(present, inst_codes, lay, table)
                keep = present.ravel()
                recs = vals.reshape(n * ninst, NFIELDS)
                codes = np.broadcast_to(inst_codes, (n, ninst)).ravel()
                times = np.broadcast_to(utc[:, None], (n, ninst)).ravel()
                if not keep.all():
                    recs, codes, times = recs[keep], codes[keep], times[keep]
                elif 2 * n < cap:
                    recs = recs.copy()
                m = recs.shape[0]
                if m:
                    # the kernel's values are native uint64; records are little-endian rows
                    yield Capture(np.ascontiguousarray(recs, dtype="<u8").view(RECORD_DTYPE).reshape(m),
                                  np.ascontiguousarray(times).view("datetime64[ns]"), np.ascontiguousarray(codes),
                                  table.names, first, table.hosts)
                    first += m
            if n < cap:
                break
        self._report(gaps, partial, inexact)
        if back.count:
            warnings.warn(PdhCsvWarning(
                f"{self.name}: the time goes back {back.count:,} time(s), first at line {back.line} (by "
                f"{_duration(back.by)}): a daylight-saving change or a clock set back. The header's bias "
                f"({lay.bias} minutes) is applied throughout, and the intervals ending there have no rate; "
                f"pass {self._spell('timezone')} with the zone the log was written in (e.g. America/New_York) "
                "for a log that spans a daylight-saving change"), stacklevel=2)

    def _register(self, present: npt.NDArray[np.bool_], inst_codes: npt.NDArray[np.intp], lay: _Layout,
                  table: NameTable) -> None:
        """Codes for the instances seeing their first record: by row, then by column order."""
        new = np.flatnonzero((inst_codes < 0) & present.any(axis=0))
        if not new.size:
            return
        first_rows = present[:, new].argmax(axis=0)
        for i in new[np.lexsort((new, first_rows))].tolist():
            host, inst = lay.instances[i]
            inst_codes[i] = table.code(inst, host)

    def _to_utc(self, clock: WallClock, stamps: npt.NDArray[np.int64], lines: npt.NDArray[np.int64],
                lay: _Layout) -> npt.NDArray[np.int64]:
        """UTC by the header's bias (a fixed offset) or the zone's rules; with a zone, at the
        first row, a warning when its offset disagrees with the header's bias."""
        first = clock.last is None
        try:
            utc = clock.to_utc(stamps)
        except WallTimeError as exc:
            line = int(lines[exc.index])
            if self._zone is None:  # a fixed offset fails only past the range
                raise PdhCsvFormatError(f"{self.name}: line {line}, column 1: the time plus the bias is outside the "
                                        "datetime64[ns] range 1677..2262", line=line, column=1) from None
            raise PdhCsvFormatError(f"{self.name}: line {line}, column 1: {exc}; is {self._spell('timezone')} "
                                    f"{self.timezone} the zone the log was written in?", line=line, column=1) from None
        if first and self._zone is not None:
            offset = int(stamps[0] - utc[0]) // 10**9  # seconds: zones' offsets are whole seconds
            if offset != -60 * lay.bias:
                warnings.warn(PdhCsvWarning(
                    f"{self.name}: the header's time zone {lay.zone!r} is UTC{_hhmm(-60 * lay.bias)} (bias "
                    f"{lay.bias} minutes), but {self.timezone} is UTC{_hhmm(offset)} at line {int(lines[0])}: "
                    f"times follow {self._spell('timezone')}"), stacklevel=3)
        return utc

    def _report(self, gaps: int, partial: int, inexact: int) -> None:
        if gaps:
            how = f" ({partial:,} of them with some counters present)" if partial else ""
            warnings.warn(PdhCsvWarning(
                f"{self.name}: skipped {gaps:,} (instance, sample) pair(s) with missing counters{how}; deltas pair "
                "each record with the previous one of its instance across the gap"), stacklevel=3)
        if inexact:
            warnings.warn(PdhCsvWarning(
                f"{self.name}: {inexact:,} value(s) above 2**53 may be inexact: perfmon prints counters as doubles "
                "(kept as the nearest integer)"), stacklevel=3)

    def _kernel_error(self, code: int, line: int, column: int, offset: int, text: Any, count: int, lay: _Layout,
                      max_row: int) -> None:
        counter = lay.columns[column - 1] if 0 < column <= len(lay.columns) else None
        where = f"{self.name}: line {line}" + (f", column {column}" if column else "")
        what = f" ({counter})" if counter and column > 1 else ""
        shown = repr(bytes(text).decode("latin-1")[:60]) if text is not None else "''"

        def fail(message: str) -> None:
            raise PdhCsvFormatError(f"{where}{what}: {message}", line=line, column=column or None,
                                    counter=counter if column > 1 else None)

        if code == PL.ROW_TOO_LONG:
            fail(f"a row longer than {max_row:,} bytes: binary data, or not a perfmon log")
        if code == PL.UNCLOSED_QUOTE:
            fail("a quoted field is not closed before the end of the line (a truncated row?)")
        if code == PL.BAD_QUOTE:
            fail(f"malformed (a quote inside an unquoted field, or no delimiter after a closing quote at byte "
                 f"offset {offset}); delimiter {lay.delimiter!r}")
        if code == PL.BARE_CR:
            fail(f"a carriage return that does not end the line, at byte offset {offset}")
        if code == PL.NUL_BYTE:
            fail(f"a NUL byte at byte offset {offset}: binary data, not a perfmon text log")
        if code == PL.FIELD_COUNT:
            fail(f"{count} field(s), the header has {len(lay.columns)} (a truncated or damaged row)")
        if code == PL.NOT_NUMBER:
            fail(f"{shown} is not a number")
        if code == PL.NOT_WHOLE:
            fail(f"{shown} is not a whole number: the log holds formatted rates or averages, not the raw "
                 f"counts of {OBJECT}")
        if code == PL.NEGATIVE:
            fail(f"{shown} is negative: counters are unsigned")
        if code == PL.RANGE:
            fail(f"{shown} is beyond the uint64 range (at most 2**64 - 1)")
        if code == PL.TIME_SYNTAX:
            fail(f"{shown} is not a perfmon time MM/DD/YYYY HH:MM:SS.mmm")
        if code == PL.TIME_DATE:
            fail(f"{shown}: no such date")
        if code == PL.TIME_TIME:
            fail(f"{shown}: time of day out of range")
        fail(f"{shown} is outside the datetime64[ns] range 1677..2262")


def read_pdh_csv(source: Any, *, timezone: str | None = None) -> Capture:
    """A ``Capture`` from a perfmon PDH-CSV or PDH-TSV log of ``MSiSCSI_MMIPSECStats``.

    ``source``: a path, a binary file, or the bytes of the log. Times are UTC: local time
    plus the header's bias, or, with ``timezone`` (an IANA name such as America/New_York,
    for a log that spans a daylight-saving change), by that zone's rules. Records are
    labelled ``"HOST INSTANCE"`` (``instance_hosts`` gives the host). Warnings
    (``PdhCsvWarning``) count ignored columns, skipped samples with missing counters, values
    above 2**53 and, without ``timezone``, times that go back; errors (``PdhCsvFormatError``)
    name the line, column and counter. A binary ``.blg`` log is a ``FormatError`` with the ``relog``
    command that converts it. The file is read in blocks (``PdhCsvReader``), never whole.
    """
    if isinstance(source, io.TextIOBase):
        raise TypeError("read_pdh_csv() needs a binary file object (perfmon logs are ANSI bytes): open it with 'rb'")
    src = ByteSource(source, "read_pdh_csv()")
    try:
        reader = PdhCsvReader(src, timezone=timezone)
    except BaseException:
        src.close()
        raise
    chunks = list(reader)
    if not chunks:
        return Capture(np.empty(0, RECORD_DTYPE), np.empty(0, "datetime64[ns]"), np.empty(0, np.intp), (), 0, ())
    return concat(chunks)


class _Setbacks:
    """Rows whose local time is earlier than the previous row's, across chunks: how many,
    the first one's line, and by how much (ns)."""

    def __init__(self) -> None:
        self.count = 0
        self.line = 0
        self.by = 0
        self._last: int | None = None

    def see(self, stamps: npt.NDArray[np.int64], lines: npt.NDArray[np.int64]) -> None:
        back = np.flatnonzero(stamps[1:] < stamps[:-1]) + 1
        if self._last is not None and int(stamps[0]) < self._last:
            back = np.concatenate([[0], back])
        if back.size:
            if not self.count:
                i = int(back[0])
                self.line = int(lines[i])
                previous = self._last if i == 0 else int(stamps[i - 1])
                assert previous is not None
                self.by = previous - int(stamps[i])
            self.count += int(back.size)
        self._last = int(stamps[-1])


def _duration(ns: int) -> str:
    secs = ns // 10**9
    return f"{secs // 3600}:{secs // 60 % 60:02}:{secs % 60:02}" + (f".{ns % 10**9 // 10**6:03}" if ns % 10**9 else "")


def _hhmm(seconds: int) -> str:
    """An offset as +HH:MM, or +HH:MM:SS when it has seconds (local mean time before 1900)."""
    sign, s = "-" if seconds < 0 else "+", abs(seconds)
    return f"{sign}{s // 3600:02}:{s // 60 % 60:02}" + (f":{s % 60:02}" if s % 60 else "")


FORMAT = Format("pdh-csv", "perfmon PDH-CSV/TSV", accept, PdhCsvReader)
