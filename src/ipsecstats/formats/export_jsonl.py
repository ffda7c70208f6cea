"""JSON Lines written by ``ipsecstats convert --what records`` as input: detected and read back exactly.

The writer's lines: ``{"record":0,"timestamp":"2024-06-03T00:00:00Z","instance":"ROOT\\\\...",
"ActiveAcquire":17,...}``, no spaces, the same keys in the same order on every line,
integers as decimal (exact up to 2**64 - 1), names as JSON strings (``ensure_ascii``), a
missing time as ``null``; a raw log's ``instance`` is a number, a capture's a string.

Reading takes whole lines a block at a time and rewrites them as CSV in place, with
numpy masks (same length, no Python object per line): each line's ``{`` and ``}`` become
commas (empty first and last columns) and every ``":`` a ``",`` (keys become columns of
their own). A quote can only end a key or a string, since quotes inside strings are
escaped; first escaped backslashes and quotes become ``\x01\x01`` and ``\x02\x02``
(control characters, which JSON strings cannot hold), so no quote is left inside a
string. The compiled CSV kernel then parses the block like ``export_csv``, and checks
every key against the first line's, once per distinct value, like the names. A line
that fails is then decoded with ``json`` alone, to say what is wrong with it.

Sniff: text whose first line starts with ``{"record":``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from .. import _csv_layout as CL
from .._schema import FIELD_NAMES
from ._base import Format, is_text
from .._checks import chunk_rows
from ._export_text import KernelTable, TextExportReader, value_message
from ._exported import INPUTS_ARE_RECORDS, ExportFormatError, Plan, Rows

__all__ = ["FORMAT", "JsonlExportReader", "accept"]

_HEAD = '{"record":'
_BACKSLASH, _QUOTE = b"\x01\x01", b"\x02\x02"


def accept(prefix: bytes) -> bool:
    """Text whose first line starts with ``{"record":``."""
    text = is_text(prefix)
    return text is not None and text.lstrip("\ufeff").startswith(_HEAD)


def _decode(data: npt.NDArray[np.uint8], offset: int, length: int, escaped: int) -> str:
    text = data[offset: offset + length].tobytes().replace(_BACKSLASH, b"\\\\").replace(_QUOTE, b'\\"')
    try:
        value = json.loads(b'"' + text + b'"')
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON string ({exc})") from None
    return value  # type: ignore[no-any-return]


def _to_csv(block: bytes, quotes: int) -> tuple[npt.NDArray[np.uint8], int]:
    """Whole lines (each ending with LF) as CSV (see the module docstring), and the index of the
    first line that does not start with ``{``, end with ``}`` and hold ``quotes`` quotes (its
    keys' and strings': a number in quotes or a name without them) (-1: none)."""
    for control in (b"\x01", b"\x02"):  # not in JSON text: the placeholders are free
        if control in block:
            return np.empty(0, np.uint8), block.count(b"\n", 0, block.find(control))
    if b'\\"' in block:  # an escaped quote (or a string ending in an escaped backslash)
        block = block.replace(b"\\\\", _BACKSLASH).replace(b'\\"', _QUOTE)
    if b'":null' in block:
        block = block.replace(b'":null', b'":""')
    arr = np.frombuffer(block, np.uint8).copy()
    ends = np.flatnonzero(arr == 0x0A)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    last = ends - 1
    last -= (last >= starts) & (arr[np.maximum(last, 0)] == 0x0D)  # CRLF
    ok = (last > starts) & (arr[starts] == 0x7B) & (arr[np.maximum(last, 0)] == 0x7D)
    quote = np.flatnonzero(arr == 0x22)
    ok &= np.diff(np.searchsorted(quote, ends), prepend=0) == quotes  # the quotes of each line
    if not ok.all():
        return arr, int(np.argmin(ok))
    arr[starts] = arr[last] = 0x2C
    after = quote + 1  # a quote is never last: "}" ends the line
    arr[after[arr[after] == 0x3A]] = 0x2C
    return arr, -1


class JsonlExportReader(TextExportReader):
    """Chunks of an ipsecstats JSON Lines export (see the module docstring)."""

    format = "ipsecstats-jsonl"

    def _columns(self) -> tuple[list[str], str | None]:
        b = self._blocks
        if b.arr[b.pos: b.pos + 3].tobytes() == b"\xef\xbb\xbf":
            b.pos += 3
        first = self._blocks.first_line(self.name, self._max_row, keep=True)
        try:
            obj = json.loads(first.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ExportFormatError(f"{self.name}: line 1: not a JSON object ({exc})", line=1) from None
        if not isinstance(obj, dict):
            raise ExportFormatError(f"{self.name}: line 1: not a JSON object", line=1)
        keys = list(obj)
        self._keys = keys
        strings = [k for k in ("time", "timestamp", "host", "instance") if isinstance(obj.get(k), str)
                   or (k in ("time", "timestamp") and k in obj)]
        self._quotes = 2 * len(keys) + 2 * len(strings)
        shape = None
        if "instance" in obj:
            shape = "raw" if isinstance(obj["instance"], int) else "capture"
        return keys, shape

    def _make_table(self, plan: Plan) -> KernelTable:
        n = len(plan.columns)
        keys = [(1 + 2 * j, k.encode()) for j, k in enumerate(plan.columns)]
        rows = chunk_rows(self.source, self.chunk_records, 4 * n)  # a row: "key":digit, per column
        return KernelTable(self.name, plan.columns, [2 + 2 * j for j in range(n)], 2 * n + 2, rows,
                           _decode, self._max_row, keys, self._line_error)

    def _parse(self) -> Iterator[Rows]:
        b, table = self._blocks, self._table
        line = 1
        while True:
            data = b.arr[b.pos: b.filled]
            end = data.tobytes().rfind(b"\n") + 1
            if b.eof and end < len(data):
                block = data.tobytes() + b"\n"
            elif end == 0:
                if len(data) > self._max_row:
                    raise ExportFormatError(f"{self.name}: line {line}: longer than {self._max_row:,} bytes",
                                            line=line)
                if b.eof:
                    rows = table.take()
                    if rows is not None:
                        yield rows
                    return
                b.fill()
                continue
            else:
                block = data[:end].tobytes()
            b.pos += len(data) if b.eof else end
            self._block, self._block_line = block, line
            text, bad = _to_csv(block, self._quotes)
            if bad >= 0:
                raise self._line_error(line + bad)
            at = 0
            while at < len(text):
                consumed, line = table.parse(text[at:], True, line, self._error)
                at += consumed
                if table.full:
                    yield table.take()  # type: ignore[misc]

    def _line_error(self, line: int) -> ExportFormatError:
        """The error of ``line`` (in the block being parsed): what ``json`` says is wrong with it."""
        text = self._block.split(b"\n")[line - self._block_line]
        return _line_error(self.name, text, line, self._keys)

    def _error(self, code: int, line: int, column: int, offset: int, length: int, value: int,
               data: npt.NDArray[np.uint8]) -> ExportFormatError:
        col, field = self._table.column(column) if column else (None, None)
        if code != CL.UINT64_RANGE and code < CL.TS_SYNTAX or col is None:
            return self._line_error(line)
        text = data[offset: offset + length].tobytes().decode("utf-8", "replace")
        return ExportFormatError(f"{self.name}: line {line}, key {field!r} (column {col}): "
                                 f"{value_message(code, text)}", line=line, column=col, field=field)


def _line_error(name: str, text: bytes, line: int, keys: list[str]) -> ExportFormatError:
    """What is wrong with one line: JSON, its keys, or a value."""
    try:
        obj = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return ExportFormatError(f"{name}: line {line}: not a JSON object ({exc})", line=line)
    if not isinstance(obj, dict):
        return ExportFormatError(f"{name}: line {line}: not a JSON object", line=line)
    if list(obj) != keys:
        missing = [k for k in keys if k not in obj]
        detail = f"lacks {', '.join(missing)}" if missing else "has other keys, or another order"
        return ExportFormatError(f"{name}: line {line}: its keys differ from line 1's ({detail})", line=line)
    for j, (key, value) in enumerate(obj.items()):
        if key in FIELD_NAMES or key == "record" or (key == "instance" and isinstance(value, int)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64:
                if isinstance(value, int) and value < 0:
                    why = (f"{value} is negative: records are unsigned (a deltas table, from convert --what "
                           f"deltas, has signed gauges; {INPUTS_ARE_RECORDS})")
                else:
                    why = f"{json.dumps(value)} is not a uint64"
                return ExportFormatError(f"{name}: line {line}, key {key!r} (column {j + 1}): {why}", line=line,
                                         column=j + 1, field=key)
        elif key in ("time", "timestamp") and not (value is None or isinstance(value, str)):
            return ExportFormatError(f"{name}: line {line}, key {key!r} (column {j + 1}): {json.dumps(value)} is "
                                     "not a time", line=line, column=j + 1, field=key)
        elif key in ("host", "instance") and not isinstance(value, str):
            return ExportFormatError(f"{name}: line {line}, key {key!r} (column {j + 1}): {json.dumps(value)} is "
                                     "not a name (a string)", line=line, column=j + 1, field=key)
    return ExportFormatError(f"{name}: line {line}: not in the layout ipsecstats writes (no spaces, the keys of "
                             "line 1 in order)", line=line)


FORMAT = Format("ipsecstats-jsonl", "an ipsecstats JSON Lines export", accept, JsonlExportReader)
