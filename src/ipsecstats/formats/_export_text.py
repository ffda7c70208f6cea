"""Rows of an export's text (CSV, or JSON Lines rewritten as CSV) through the compiled CSV kernel.

The kernel (``_backend.KERNEL.csv_rows``, the one CIM CSV uses) parses whole rows: it
writes every uint64 column into a row of ``records`` (slot 0 ``record``, slots 1..21 the
fields in ``FIELD_NAMES`` order: bytes 8..176 of a row are then a ``RECORD_DTYPE``
record), the ``time``/``timestamp`` column as int64 ns, and string columns (``instance``,
``host``) as byte ranges, each pointing at an earlier row with the same bytes: a name is
decoded once per distinct value, not once per row. No Python object per number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt

from .. import _backend
from .. import _csv_layout as CL
from .._capture import Capture
from .._checks import check_chunk_records
from .._schema import FIELD_NAMES, NFIELDS, RECORD_DTYPE, RECORD_SIZE
from .._source import ByteSource
from ._base import BlockBuffer
from ._exported import Assembler, ExportFormatError, Plan, Rows, Texts, plan_columns

__all__ = ["Blocks", "KernelTable", "TextExportReader", "value_message"]

#: Rows per chunk: 2.75 MB of records.
CHUNK_RECORDS = 16384
#: Bytes read at a time.
BLOCK_BYTES = 1 << 20
#: The longest row accepted (an export's rows are under 1 KiB but for long instance names).
MAX_ROW_BYTES = 1 << 20

_UINT64_MAX = 2**64 - 1
#: The text of a string field: (data, offset, length, has-"" flag) -> str.
Decode = Callable[[npt.NDArray[np.uint8], int, int, int], str]


class KernelTable:
    """Parse rows of one export into ``Rows`` of at most ``cap`` rows.

    ``kernel_columns``: the kernel's column of each export column (CSV: the same) and
    ``width`` the kernel's column count. ``keys``: (kernel column, bytes) of columns whose
    every value must be those bytes (JSON Lines rewritten: its keys), checked once per
    distinct value like names; ``key_error(line)`` makes the error of a row where one
    differs. ``decode`` turns a string field into its text.
    """

    #: Rows per kernel call: the string outputs (4 int64 per string column) stay small.
    STEP = 1024

    def __init__(self, name: str, columns: tuple[str, ...], kernel_columns: list[int], width: int, cap: int,
                 decode: Decode, max_row: int, keys: list[tuple[int, bytes]] = (),  # type: ignore[assignment]
                 key_error: Callable[[int], ExportFormatError] | None = None):
        self.name = name
        self.columns = columns
        self.cap = cap
        self.decode = decode
        self.max_row = max_row
        self.instance_texts = Texts()
        self.host_texts = Texts() if "host" in columns else None
        self.has_stamps = "time" in columns or "timestamp" in columns
        self.roles = np.full(width, CL.ROLE_IGNORE, np.int64)
        self._export_column: dict[int, str] = {}
        strings = ["instance", "host"]
        self.nnames = sum(1 for s in strings if s in columns)
        for col, k in zip(columns, kernel_columns):
            self._export_column[k + 1] = col
            if col == "record":
                self.roles[k] = 0
            elif col in FIELD_NAMES:
                self.roles[k] = 1 + FIELD_NAMES.index(col)
            elif col in ("time", "timestamp"):
                self.roles[k] = CL.ROLE_TIMESTAMP
            else:
                self.roles[k] = 1 + NFIELDS + strings.index(col)
        self.keys = [want for _, want in keys]
        for j, (k, _) in enumerate(keys):
            self.roles[k] = 1 + NFIELDS + self.nnames + j
        self.key_error = key_error
        self._caches: list[dict[bytes, int]] = [{}, {}]
        step = min(cap, self.STEP)
        self._strs = np.empty((step, self.nnames + len(self.keys), CL.STR_FIELDS), np.int64)
        self._new()

    def column(self, kernel_column: int) -> tuple[int | None, str | None]:
        """The export's 1-based column and name of a 1-based kernel column."""
        col = self._export_column.get(kernel_column)
        return (None, None) if col is None else (self.columns.index(col) + 1, col)

    def _new(self) -> None:
        cap = self.cap
        self._buf = np.empty((cap, RECORD_SIZE + 8), np.uint8)
        self._stamps = np.empty(cap if self.has_stamps else 0, np.int64)
        self._lines = np.empty(cap, np.int64)
        self._ids = np.empty((cap, 2), np.intp)
        self.n = 0

    @property
    def full(self) -> bool:
        return self.n == self.cap

    def parse(self, data: npt.NDArray[np.uint8], final: bool, line: int,
              error: Callable[..., ExportFormatError]) -> tuple[int, int]:
        """Parse whole rows of ``data`` until it ends or the table is full: (bytes consumed, next line).

        ``error(code, line, column, offset, length, value, data)`` makes the exception for a
        kernel error code.
        """
        done = 0
        while True:
            n = self.n
            lim = min(self.cap - n, self._strs.shape[0])
            stamps = self._stamps[n: n + lim] if self.has_stamps else self._stamps
            code, k, consumed, line, column, offset, length, value = _backend.KERNEL.csv_rows(
                data[done:], final, ord(","), self.roles, 1 + NFIELDS, self._buf[n: n + lim], self._strs[:lim],
                stamps, self._lines[n: n + lim], line, self.max_row)
            if k:
                self._strings(data[done:], n, k)
            self.n += k
            if code:
                raise error(code, line, column, offset, length, value, data[done:])
            done += consumed
            if k < lim or self.full:
                return done, line

    def _strings(self, data: npt.NDArray[np.uint8], n: int, k: int) -> None:
        """Text ids of rows ``n .. n + k`` (one decode per distinct value: the kernel points a
        row at an earlier one with the same bytes), and the keys checked the same way."""
        rows = np.arange(k)
        if self.keys:
            keys = self._strs[:k, self.nnames:]
            for r, j in zip(*np.nonzero(keys[:, :, 3] == rows[:, None])):
                off, ln = int(keys[r, j, 0]), int(keys[r, j, 1])
                if data[off: off + ln].tobytes() != self.keys[j]:
                    assert self.key_error is not None
                    raise self.key_error(int(self._lines[n + r]))
        for slot, texts in enumerate([self.instance_texts, self.host_texts][: self.nnames]):
            assert texts is not None
            strs = self._strs[:k, slot]
            refs = strs[:, 3]
            canon = np.flatnonzero(refs == rows)
            cache = self._caches[slot]
            found = np.empty(k, np.intp)
            values = []
            for r, (off, ln, esc, _) in zip(canon.tolist(), strs[canon].tolist()):
                key = data[off: off + ln].tobytes()
                i = cache.get(key)
                if i is None:
                    try:
                        text = self.decode(data, off, ln, esc)
                    except ValueError as exc:
                        line = int(self._lines[n + r])
                        col = "instance" if slot == 0 else "host"
                        c = self.columns.index(col) + 1
                        raise ExportFormatError(f"{self.name}: line {line}, column {c} ({col}): {exc}", line=line,
                                                column=c, field=col) from None
                    i = cache[key] = texts.id(text)
                values.append(i)
            found[canon] = values
            self._ids[n: n + k, slot] = found[refs]

    def take(self) -> Rows | None:
        """The rows parsed so far (None when there are none); the table starts afresh."""
        n = self.n
        if not n:
            return None
        buf = self._buf[:n]
        record = buf[:, :8].copy().view("<u8").reshape(n)
        records = np.ascontiguousarray(buf[:, 8:]).view(RECORD_DTYPE).reshape(n)
        stamps = self._stamps[:n].copy() if self.has_stamps else None
        inst = self._ids[:n, 0].copy() if "instance" in self.columns else None
        hosts = self._ids[:n, 1].copy() if self.host_texts is not None else None
        rows = Rows(record, stamps, inst, hosts, records, self._lines[:n].copy())
        self._new()
        return rows


def value_message(code: int, text: str) -> str:
    """What is wrong with a number or time the kernel refused."""
    if code == CL.NOT_UINT64:
        if text.startswith("-") and text[1:].isdigit():
            return (f"{text} is negative: records are unsigned (a deltas table, from convert --what deltas, "
                    "has signed gauges; inputs are records)")
        return f"{text!r} is not a decimal uint64"
    if code == CL.UINT64_RANGE:
        return f"{text} is out of the uint64 range (at most {_UINT64_MAX})"
    return f"{text!r} is not an ISO 8601 UTC time (as ipsecstats writes: 2024-06-03T00:00:10Z)"


class Blocks(BlockBuffer):
    """The export read block by block (``BlockBuffer``), with its header line."""

    def first_line(self, name: str, max_row: int, keep: bool = False) -> bytes:
        """The bytes of the first line (without its line end), consumed unless ``keep``; refuses
        an empty source."""
        while True:
            nl = self.arr[self.pos: self.filled].tobytes().find(b"\n")
            if nl >= 0:
                line = self.arr[self.pos: self.pos + nl].tobytes()
                self.pos += 0 if keep else nl + 1
                return line.rstrip(b"\r")
            if self.filled - self.pos > max_row:
                raise ExportFormatError(f"{name}: line 1: longer than {max_row:,} bytes: not an ipsecstats export",
                                        line=1)
            if self.eof:
                line = self.arr[self.pos: self.filled].tobytes()
                self.pos = self.pos if keep else self.filled
                if not line:
                    raise ExportFormatError(f"{name}: an empty file (no header)", line=1)
                return line.rstrip(b"\r")
            self.fill()


class TextExportReader:
    """A text export's reader: the header, then ``Capture`` chunks of ``chunk_records`` rows.

    Subclasses give ``format``, ``_columns()`` (the column names from the first line, and
    the shape when the text tells it) and ``_parse()`` (``Rows`` from ``self._table``).
    Opening reads the first chunk (or, for a raw log's export, up to the first record of
    the second sample) to know the shape and the stride. A raw log's export has
    ``stride`` and, with a ``time`` column, ``start`` and ``interval``; a capture's has
    ``stride`` None.
    """

    format = ""
    stride: int | None

    def __init__(self, source: ByteSource, *, chunk_records: int | None = None):
        self.source = source
        self.name = source.name
        self.chunk_records = check_chunk_records(CHUNK_RECORDS if chunk_records is None else chunk_records)
        self._max_row = MAX_ROW_BYTES
        try:
            self._blocks = Blocks(source, BLOCK_BYTES)
            self._blocks.fill()
            columns, shape = self._columns()
            self.plan = plan_columns(columns, self.name)
            self._table = self._make_table(self.plan)
            self._asm = Assembler(self.name, self.plan, "line", self._table.instance_texts,
                                  self._table.host_texts, shape)
            self._rows = self._asm.open(self._parse())
        except BaseException:
            source.close()
            raise
        raw = self._asm.shape == "raw"
        self.stride = self._asm.stride if raw else None
        self.has_timestamps = not raw and self.plan.time is not None
        self.has_hosts = self.plan.has("host")

    @property
    def start(self) -> np.datetime64 | None:
        """A raw log's export with a ``time`` column: the time of record 0."""
        return self._asm.start

    @property
    def interval(self) -> float | None:
        """A raw log's export with a ``time`` column: seconds between samples (known from the second)."""
        return self._asm.interval

    def _columns(self) -> tuple[list[str], str | None]:
        raise NotImplementedError

    def _make_table(self, plan: Plan) -> KernelTable:
        raise NotImplementedError

    def _parse(self) -> Iterator[Rows]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Capture]:
        try:
            for rows in self._rows:
                yield self._asm.capture(rows)
        finally:
            self.source.close()

    def close(self) -> None:
        self.source.close()
