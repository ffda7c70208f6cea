"""JSON Lines written by ``ipsecstats convert --what records`` as input: detected and read back exactly.

The writer's lines: ``{"record":0,"timestamp":"2024-06-03T00:00:00Z","instance":"ROOT\\\\...",
"ActiveAcquire":17,...}``, no spaces, the same keys in the same order on every line,
integers as decimal (exact up to 2**64 - 1), names as JSON strings (``ensure_ascii``), a
missing time as ``null``; a raw log's ``instance`` is a number, a capture's a string.

Reading takes whole lines a block at a time: one compiled regular expression checks
that every line has exactly the first line's keys in order, each with a value of its
kind (a C loop, no Python object per line); the block is then rewritten as CSV with
``bytes.replace`` (escaped quotes and backslashes become ``\\u0022``/``\\u005c`` so that no
quote is left inside a string; ``":`` becomes ``",``: keys become columns of their own)
and parsed by the compiled CSV kernel like ``export_csv``. A line that does not match is
then decoded with ``json`` alone, to say what is wrong with it.

Sniff: text whose first line starts with ``{"record":``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from .. import _csv_layout as CL
from .._schema import FIELD_NAMES
from ._base import Format, is_text
from ._export_text import KernelTable, TextExportReader, value_message
from ._exported import INPUTS_ARE_RECORDS, ExportFormatError, Plan, Rows

__all__ = ["FORMAT", "JsonlExportReader", "accept"]

_HEAD = '{"record":'
_NUMBER = rb"[0-9]+"
_STRING = rb'"(?:[^"\\\n]|\\.)*"'
_TIME = rb'(?:"[0-9T:.Z+-]*"|null)'


def accept(prefix: bytes) -> bool:
    """Text whose first line starts with ``{"record":``."""
    text = is_text(prefix)
    return text is not None and text.lstrip("\ufeff").startswith(_HEAD)


def _decode(data: npt.NDArray[np.uint8], offset: int, length: int, escaped: int) -> str:
    text = data[offset: offset + length].tobytes().decode("utf-8")
    try:
        value = json.loads('"' + text + '"')
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a JSON string ({exc.msg})") from None
    return value  # type: ignore[no-any-return]


def _to_csv(block: bytes) -> bytes:
    """Whole checked lines as CSV: keys and values in alternate columns, no quote inside a string."""
    out = (block.replace(b"\\\\", b"\\u005c").replace(b'\\"', b"\\u0022").replace(b'":null', b'":""')
           .replace(b'":', b'",').replace(b"}\r\n", b"\r\n").replace(b"}\n", b"\n").replace(b"\n{", b"\n"))
    return out[1:]  # the first line's "{"


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
        kinds = {"time": _TIME, "timestamp": _TIME, "host": _STRING,
                 "instance": _NUMBER if isinstance(obj.get("instance"), int) else _STRING}
        self._keys = keys
        self._line_re = rb"\{" + rb",".join(json.dumps(k).encode() + rb":" + kinds.get(k, _NUMBER) for k in keys) \
            + rb"\}\r?\n"
        self._block_re = re.compile(rb"(?:" + self._line_re + rb")*")
        shape = None
        if "instance" in obj:
            shape = "raw" if isinstance(obj["instance"], int) else "capture"
        return keys, shape

    def _make_table(self, plan: Plan) -> KernelTable:
        n = len(plan.columns)
        return KernelTable(self.name, plan.columns, [2 * j + 1 for j in range(n)], 2 * n, self.chunk_records,
                           _decode, self._max_row)

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
            if self._block_re.fullmatch(block) is None:
                raise self._diagnose(block, line)
            text = np.frombuffer(_to_csv(block), np.uint8)
            at = 0
            while at < len(text):
                consumed, line = table.parse(text[at:], True, line, self._error)
                at += consumed
                if table.full:
                    yield table.take()  # type: ignore[misc]

    def _diagnose(self, block: bytes, line: int) -> ExportFormatError:
        """The error of the first line of ``block`` that does not have the first line's layout."""
        one = re.compile(self._line_re)
        for i, text in enumerate(block.splitlines(keepends=True)):
            if one.fullmatch(text) is not None:
                continue
            where = line + i
            raise_at = _line_error(self.name, text, where, self._keys)
            return raise_at
        return ExportFormatError(f"{self.name}: line {line}: not in the layout of the first line", line=line)

    def _error(self, code: int, line: int, column: int, offset: int, length: int, value: int,
               data: npt.NDArray[np.uint8]) -> ExportFormatError:
        col, field = self._table.column(column) if column else (None, None)
        if code == CL.FIELD_COUNT or col is None:
            return ExportFormatError(f"{self.name}: line {line}: not in the layout of the first line", line=line)
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
