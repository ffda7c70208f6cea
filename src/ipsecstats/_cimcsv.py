"""PowerShell CIM exports of ``MSiSCSI_MMIPSECStats``: ``read_cim_csv``.

``Get-CimInstance -Namespace root\\wmi -ClassName MSiSCSI_MMIPSECStats | Export-Csv`` writes
one row per instance per sample: an optional ``#TYPE`` line, a header, every value
double-quoted, columns ``Active``, ``InstanceName``, the 21 properties (uint64 as decimal
text), ``PSComputerName``, ``CimClass``, ``CimInstanceProperties``, ``CimSystemProperties``.
Columns are found by name, in any order; columns other than the properties,
``InstanceName``, ``CimClass`` and the timestamp column are ignored (``Active`` included).
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import os
import re
from typing import Any

import numpy as np

from . import _wnode_layout as L
from ._schema import FIELD_NAMES, NFIELDS, RECORD_DTYPE
from ._capture import Capture

__all__ = ["CimCsvFormatError", "read_cim_csv"]

CLASS_NAME = "MSiSCSI_MMIPSECStats"
_UINT64_MAX = 2**64 - 1
_UINT = re.compile(r"[0-9]{1,20}\Z")
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:?[0-9]{2})?\Z"
)
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_NS_LIMIT = 2**63 - 1  # datetime64[ns] holds [-(2**63 - 1), 2**63 - 1]; -2**63 is NaT
_NAT = -(2**63)


class CimCsvFormatError(ValueError):
    """A CIM CSV value or line that cannot be read; ``line`` and ``column`` are 1-based."""

    def __init__(self, message: str, *, line: int, column: int | None = None, field: str | None = None):
        self.line = line
        self.column = column
        self.field = field
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:  # keyword-only fields: pickle by hand
        return (_rebuild_error, (str(self), self.line, self.column, self.field))


def _rebuild_error(message: str, line: int, column: int | None, field: str | None) -> CimCsvFormatError:
    return CimCsvFormatError(message, line=line, column=column, field=field)


def _text(source: Any) -> tuple[str, str]:
    """The CSV text and a name for messages; bytes are decoded by their BOM, else UTF-8."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            data: Any = f.read()
        what = str(os.fspath(source))
    elif hasattr(source, "read"):
        data = source.read()
        what = str(getattr(source, "name", "file"))
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data, what = bytes(source), "read_cim_csv()"
    else:
        raise TypeError(f"read_cim_csv() takes a path, a file or bytes, not {type(source).__name__}")
    if isinstance(data, str):
        return data, what
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"read_cim_csv(): read() returned {type(data).__name__}, not bytes or str")
    data = bytes(data)
    if data.startswith(b"\xef\xbb\xbf"):
        encoding, body = "utf-8", data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding, body = "utf-16", data
    else:
        encoding, body = "utf-8", data
    try:
        return body.decode(encoding), what
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        raise CimCsvFormatError(
            f"{what}: line {line}: not valid {encoding.upper()} ({exc.reason} at byte offset "
            f"{exc.start}); export with -Encoding UTF8 or Unicode", line=line) from None


def _uint64(text: str, what: str, line: int, column: int, name: str) -> int:
    """Exact decimal uint64: ASCII digits only, at most 2**64 - 1."""
    if _UINT.match(text) is None:
        raise CimCsvFormatError(
            f"{what}: line {line}, column {column} ({name}): {text!r} is not a decimal uint64",
            line=line, column=column, field=name)
    value = int(text)
    if value > _UINT64_MAX:
        raise CimCsvFormatError(
            f"{what}: line {line}, column {column} ({name}): {text} is out of the uint64 range "
            f"(at most {_UINT64_MAX})", line=line, column=column, field=name)
    return value


def _timestamp_ns(text: str, what: str, line: int, column: int, name: str) -> int | None:
    """ns since 1970 UTC, exact: ISO 8601 with a UTC offset or Z, or FILETIME ticks; '' -> None."""
    where = f"{what}: line {line}, column {column} ({name})"
    if text == "":
        return None
    if _UINT.match(text):
        ticks = int(text)
        if not L.TICKS_MIN <= ticks <= L.TICKS_MAX:
            raise CimCsvFormatError(
                f"{where}: {text} read as FILETIME ticks (100 ns since 1601, as from ToFileTimeUtc()) "
                "is outside the datetime64[ns] range 1677..2262", line=line, column=column, field=name)
        return (ticks - L.FILETIME_UNIX_EPOCH) * 100
    m = _ISO.match(text)
    if m is None or m.group(8) is None:
        raise CimCsvFormatError(
            f"{where}: {text!r} is neither ISO 8601 with a UTC offset (Get-Date -Format o) nor "
            "FILETIME ticks ((Get-Date).ToFileTimeUtc())", line=line, column=column, field=name)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction = (m.group(7) or "").ljust(9, "0")
    try:
        days = _dt.date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError as exc:
        raise CimCsvFormatError(f"{where}: {text!r}: {exc}", line=line, column=column, field=name) from None
    if hour > 23 or minute > 59 or second > 59:
        raise CimCsvFormatError(f"{where}: {text!r}: time of day out of range", line=line, column=column,
                                field=name)
    zone = m.group(8)
    offset_min = 0
    if zone != "Z":
        digits = zone[1:].replace(":", "")
        offset_min = int(digits[:2]) * 60 + int(digits[2:])
        if zone[0] == "-":
            offset_min = -offset_min
    ns = (((days * 24 + hour) * 60 + minute - offset_min) * 60 + second) * 10**9 + int(fraction)
    if not -_NS_LIMIT <= ns <= _NS_LIMIT:
        raise CimCsvFormatError(f"{where}: {text!r} is outside the datetime64[ns] range 1677..2262",
                                line=line, column=column, field=name)
    return ns


def _check_type_line(row: list[str], what: str) -> None:
    """``#TYPE ...CimInstance#root/wmi/MSiSCSI_MMIPSECStats``: refuse another CIM class."""
    type_name = ",".join(row)[len("#TYPE"):].strip()
    if "#" in type_name:
        class_name = type_name.rsplit("#", 1)[1].rsplit("/", 1)[-1]
        if class_name and class_name != CLASS_NAME:
            raise CimCsvFormatError(f"{what}: line 1: the #TYPE line names class {class_name}, "
                                    f"not {CLASS_NAME}", line=1)


def read_cim_csv(source: Any, *, timestamp_column: str | None = None, delimiter: str = ",") -> Capture:
    """A ``Capture`` from PowerShell's ``Export-Csv`` of ``MSiSCSI_MMIPSECStats`` instances.

    ``source``: a path, a file (binary or text), or the bytes of the CSV (UTF-8, or UTF-16
    with a BOM). The ``#TYPE`` line is optional. Each of the 21 properties is parsed as an
    exact decimal uint64; anything else (a sign, spaces, a fraction, an empty value, more
    than 2**64 - 1) raises ``CimCsvFormatError`` naming the line and column.
    ``timestamp_column``: the column holding each row's time, ISO 8601 with a UTC offset
    (``Get-Date -Format o``) or FILETIME ticks (``ToFileTimeUtc()``), exact to 1 ns; an
    empty cell is NaT. Without it the Capture has no timestamps.
    ``delimiter``: "," (``Export-Csv`` default), or ";" etc. for ``-UseCulture``/``-Delimiter``.
    """
    text, what = _text(source)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, doublequote=True, strict=True)
    try:
        header = _header(reader, what)
        columns = _columns(header, timestamp_column, delimiter, what, reader.line_num)
        stamp_col = None if timestamp_column is None else columns[timestamp_column]
        values, names, stamps = _rows(reader, header, columns, stamp_col, what)
    except csv.Error as exc:
        raise CimCsvFormatError(
            f"{what}: line {reader.line_num}: malformed CSV ({exc}) with delimiter {delimiter!r}; "
            "exports made with -UseCulture or -Delimiter need delimiter=", line=reader.line_num) from None
    n = len(names)
    table = np.array(values, dtype=np.uint64).reshape(n, NFIELDS)
    records = np.ascontiguousarray(table).view(RECORD_DTYPE).reshape(n)
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(s, len(index)) for s in names), dtype=np.intp, count=n)
    timestamps = None
    if timestamp_column is not None:
        ns = np.array([_NAT if v is None else v for v in stamps], dtype=np.int64)
        timestamps = ns.view("datetime64[ns]")
    return Capture(records, timestamps, codes, tuple(index))


def _header(reader: Any, what: str) -> list[str]:
    for row in reader:
        if not row:
            continue
        if reader.line_num == 1 and row[0].startswith("#TYPE"):
            _check_type_line(row, what)
            continue
        return list(row)
    raise CimCsvFormatError(f"{what}: no header row (an empty file)", line=reader.line_num or 1)


def _columns(header: list[str], timestamp_column: str | None, delimiter: str, what: str,
             line: int) -> dict[str, int]:
    """Column index of InstanceName, each property, CimClass and the timestamp column."""
    position: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in position:
            raise CimCsvFormatError(f"{what}: line {line}: column {name!r} appears twice "
                                    f"(columns {position[name] + 1} and {i + 1})", line=line, column=i + 1)
        position[name] = i
    wanted = ["InstanceName", *FIELD_NAMES]
    if timestamp_column is not None:
        wanted.append(timestamp_column)
    missing = [name for name in wanted if name not in position]
    if missing:
        raise CimCsvFormatError(
            f"{what}: line {line}: the header lacks column(s) {', '.join(missing)}; is this an "
            f"Export-Csv of {CLASS_NAME} with delimiter {delimiter!r}?", line=line)
    return {name: position[name] for name in [*wanted, "CimClass"] if name in position}


def _rows(reader: Any, header: list[str], columns: dict[str, int], stamp_col: int | None, what: str
          ) -> tuple[list[int], list[str], list[int | None]]:
    width = len(header)
    prop_cols = [columns[name] for name in FIELD_NAMES]
    name_col = columns["InstanceName"]
    class_col = columns.get("CimClass")
    values: list[int] = []
    names: list[str] = []
    stamps: list[int | None] = []
    for row in reader:
        if not row:
            continue
        line = reader.line_num
        if len(row) != width:
            raise CimCsvFormatError(f"{what}: line {line}: {len(row)} field(s), the header has {width}",
                                    line=line)
        if class_col is not None and row[class_col] and not row[class_col].endswith(CLASS_NAME):
            raise CimCsvFormatError(f"{what}: line {line}, column {class_col + 1} (CimClass): "
                                    f"{row[class_col]!r} is not {CLASS_NAME}", line=line,
                                    column=class_col + 1, field="CimClass")
        for j, name in zip(prop_cols, FIELD_NAMES):
            values.append(_uint64(row[j], what, line, j + 1, name))
        names.append(row[name_col])
        if stamp_col is not None:
            stamps.append(_timestamp_ns(row[stamp_col], what, line, stamp_col + 1, header[stamp_col]))
    return values, names, stamps
