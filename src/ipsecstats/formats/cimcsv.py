"""PowerShell ``Export-Csv`` of ``MSiSCSI_MMIPSECStats`` (CIM CSV): sniff, chunk reader, ``read_cim_csv``.

``Get-CimInstance -Namespace root\\wmi -ClassName MSiSCSI_MMIPSECStats | Export-Csv`` writes
one row per instance per sample: an optional ``#TYPE`` line, a header, every value
double-quoted (PowerShell 7 ``-UseQuotes AsNeeded|Never`` quote less), CRLF line ends,
columns ``Active``, ``InstanceName``, the 21 properties (uint64 as decimal text),
``PSComputerName``, ``CimClass``, ``CimInstanceProperties``, ``CimSystemProperties``.
Columns are found by name, in any order; columns other than the properties,
``InstanceName``, ``CimClass`` and the timestamp column are ignored (``Active`` included).

Reading streams: blocks of the source go through the row kernel (``_fast.csv_rows`` or
its twin), which parses whole rows and says where the last one ended; the unfinished
tail moves to the front of the buffer for the next block. Memory stays bounded whatever
the file size: one block, one chunk of records, and one row of at most ``MAX_ROW_BYTES``.
Sniff: text (UTF-8, or UTF-16 with a BOM) whose first line is a ``#TYPE`` line or a
header naming ``InstanceName`` and the 21 properties.
"""

from __future__ import annotations

import codecs
import csv
import datetime as _dt
import io
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _backend
from .. import _csv_layout as CL
from .._capture import Capture, NameTable, concat
from .._checks import check_int
from .._schema import FIELD_NAMES, NFIELDS, RECORD_DTYPE, RECORD_SIZE
from .._source import ByteSource
from ._base import Format, is_text

__all__ = ["FORMAT", "CimCsvFormatError", "CimCsvReader", "accept", "read_cim_csv"]

CLASS_NAME = "MSiSCSI_MMIPSECStats"
#: The only ``CimClass`` value accepted (an empty cell too): ``Get-CimInstance`` writes it so.
CIM_CLASS = "root/wmi:" + CLASS_NAME
#: Rows per chunk: 2.75 MB of records.
CHUNK_RECORDS = 16384
#: Bytes read at a time (the buffer doubles while one unfinished row fills half of it).
BLOCK_BYTES = 1 << 20
#: The longest row accepted: real rows are under 4 KiB; this stops /dev/zero and a quote
#: that is never closed before they take the machine's memory.
MAX_ROW_BYTES = 1 << 20
_UINT64_MAX = 2**64 - 1
_BOM8 = b"\xef\xbb\xbf"
_SNIFF = 4096
_NAME, _CLASS = 0, 1  # string slots of the kernel
_BLANK_LINES = re.compile(rb"(?:\r?\n)+")


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


def accept(prefix: bytes) -> bool:
    """Text starting with a ``#TYPE`` line or a header naming InstanceName and the 21 properties."""
    text = is_text(prefix)
    if text is None:
        return False
    first = next((line for line in text.splitlines() if line.strip()), None)
    if first is None:
        return False
    first = first.lstrip()
    return first.startswith("#TYPE") or all(name in first for name in ("InstanceName", *FIELD_NAMES))


# -- byte streams: UTF-8 as is, UTF-16 and text files re-encoded to UTF-8 ------------------------


class _Recoded:
    """A ``readinto`` stream of UTF-8 made piece by piece by ``_more`` (None at the end)."""

    def __init__(self, name: str):
        self.name = name
        self._pending = b""
        self._at = 0
        self._done = False

    def _more(self) -> bytes | None:
        raise NotImplementedError

    def readinto(self, view: Any) -> int:
        out = memoryview(view).cast("B")
        filled = 0
        while filled < len(out):
            if self._at == len(self._pending):
                piece = None if self._done else self._more()
                if piece is None:
                    self._done = True
                    break
                self._pending, self._at = piece, 0
                continue
            k = min(len(out) - filled, len(self._pending) - self._at)
            out[filled: filled + k] = self._pending[self._at: self._at + k]
            filled += k
            self._at += k
        return filled


class _Utf16(_Recoded):
    """UTF-16 with a BOM (``ConvertTo-Csv > file``, ``-Encoding Unicode``) as UTF-8, block by block."""

    def __init__(self, source: ByteSource, block: int):
        super().__init__(source.name)
        self._source = source
        self._raw = bytearray(block)
        self._decoder = codecs.getincrementaldecoder("utf-16")()
        self._lines = 1

    def _more(self) -> bytes | None:
        while True:
            at = self._source.offset
            got = self._source.readinto(self._raw)
            final = got < len(self._raw)
            try:
                text = self._decoder.decode(self._raw[:got], final=final)
            except UnicodeDecodeError as exc:
                line = self._lines
                raise CimCsvFormatError(
                    f"{self.name}: line {line} or after: not valid UTF-16 ({exc.reason} near byte offset {at + exc.start}); "
                    "export with -Encoding UTF8 or Unicode", line=line) from None
            self._lines += text.count("\n")
            if text or final:
                return text.encode("utf-8", "surrogatepass") if text else None


class _TextSource(_Recoded):
    """A text-mode file object (``read()`` gives str) as UTF-8; a leading U+FEFF goes with the BOM rule."""

    def __init__(self, file: Any, block: int = BLOCK_BYTES):
        name = getattr(file, "name", None)
        super().__init__(name if isinstance(name, str) else f"<{type(file).__name__}>")
        self._file = file
        self._block = block
        self.offset = 0

    def _more(self) -> bytes | None:
        text = self._file.read(self._block)
        if not isinstance(text, str):
            raise TypeError(f"{self.name}: read() returned {type(text).__name__}, not str")
        self.offset += len(text)
        return text.encode("utf-8", "surrogatepass") if text else None

    def close(self) -> None:
        pass


def _nul_verdict(prefix: bytes, name: str) -> None:
    """Refuse input that is not UTF-8 text: UTF-16 without a BOM, or binary (NUL-heavy) data."""
    if prefix.count(0) * 8 <= len(prefix):
        return  # a few NULs (in an instance name, say): the rows say where
    even, odd = prefix[0::2], prefix[1::2]
    for zeros, other, order in ((odd, even, "LE"), (even, odd, "BE")):
        if zeros and zeros.count(0) >= 0.9 * len(zeros) and other.count(0) < 0.5 * len(other):
            raise CimCsvFormatError(
                f"{name}: UTF-16{order} text without a byte order mark (NUL bytes at every other position); "
                "export with -Encoding UTF8, or keep the BOM that -Encoding Unicode writes", line=1)
    raise CimCsvFormatError(f"{name}: binary data ({prefix.count(0)} NUL bytes in the first {len(prefix)}), "
                            "not CSV text", line=1)


class _Buffer:
    """The block buffer: ``arr[pos:filled]`` is read and not yet parsed; ``base`` is the
    stream offset of ``arr[0]``. ``fill`` keeps the unparsed tail and reads after it, doubling
    the buffer while the tail fills half of it, so every read is at least half a buffer and
    re-parsing an unfinished row costs linear time in all."""

    def __init__(self, stream: Any, block: int):
        self.stream = stream
        self.arr = np.empty(block, np.uint8)
        self.pos = self.filled = self.base = 0
        self.eof = False

    def fill(self) -> None:
        tail = self.filled - self.pos
        if 2 * tail > len(self.arr):
            grown = np.empty(2 * len(self.arr), np.uint8)
            grown[:tail] = self.arr[self.pos: self.filled]
            self.arr = grown
        elif self.pos:
            self.arr[:tail] = self.arr[self.pos: self.filled].copy()
        self.base += self.pos
        self.pos, self.filled = 0, tail
        want = len(self.arr) - tail
        got = self.stream.readinto(self.arr[tail:])
        self.filled += got
        self.eof = got < want


# -- messages --------------------------------------------------------------------------------


def _field_text(data: npt.NDArray[np.uint8], offset: int, length: int, escaped: int) -> str:
    text = data[offset: offset + length].tobytes().decode("utf-8", "replace")
    return text.replace('""', '"') if escaped else text


def _timestamp_message(code: int, text: str) -> str:
    if code == CL.TS_TICKS_RANGE:
        return (f"{text} read as FILETIME ticks (100 ns since 1601, as from ToFileTimeUtc()) is outside the "
                "datetime64[ns] range 1677..2262")
    if code == CL.TS_DATE:
        try:
            _dt.date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
            reason = "no such date"
        except ValueError as exc:
            reason = str(exc)
        return f"{text!r}: {reason}"
    if code == CL.TS_TIME:
        return f"{text!r}: time of day out of range"
    if code == CL.TS_OFFSET:
        return f"{text!r}: UTC offset out of range (at most 14:00 either way, minutes below 60)"
    if code == CL.TS_RANGE:
        return f"{text!r} is outside the datetime64[ns] range 1677..2262"
    return (f"{text!r} is neither ISO 8601 with a UTC offset (Get-Date -Format o) nor FILETIME ticks "
            "((Get-Date).ToFileTimeUtc())")


# -- the reader ------------------------------------------------------------------------------


class CimCsvReader:
    """Chunks of at most ``chunk_records`` rows of a CIM CSV (see ``read_cim_csv``).

    ``source``: a ``ByteSource`` (UTF-8 with or without a BOM, or UTF-16 with a BOM).
    ``delimiter``: "," by default. ``timestamp_column``: see ``read_cim_csv``.
    """

    format: str = "cim-csv"
    stride: int | None = None

    def __init__(self, source: ByteSource, *, timestamp_column: str | None = None, delimiter: str | None = None,
                 chunk_records: int | None = None):
        self.source = source
        self.name = source.name
        self.timestamp_column = timestamp_column
        self.delimiter = "," if delimiter is None else delimiter
        if not isinstance(self.delimiter, str) or len(self.delimiter) != 1 or self.delimiter in '"\r\n' \
                or not self.delimiter.isascii():
            raise ValueError(f"delimiter must be one ASCII character other than '\"', CR and LF, "
                             f"got {self.delimiter!r}")
        self.chunk_records = check_int("chunk_records", CHUNK_RECORDS if chunk_records is None else chunk_records, 1)
        self.has_timestamps = timestamp_column is not None
        self.has_hosts = False
        # private knobs (tests): bytes per read, longest row
        self._block = BLOCK_BYTES
        self._max_row = MAX_ROW_BYTES

    def close(self) -> None:
        self.source.close()

    def __iter__(self) -> Iterator[Capture]:
        try:
            yield from self._chunks()
        finally:
            self.source.close()

    # -- header --------------------------------------------------------------------------

    def _stream(self) -> Any:
        src = self.source
        if isinstance(src, _TextSource):
            return src
        prefix = src.peek(_SNIFF)
        if prefix.startswith((b"\xff\xfe", b"\xfe\xff")):
            return _Utf16(src, max(self._block, 4))
        if 0 in prefix:
            _nul_verdict(prefix, self.name)
        return src

    def _fail(self, message: str, line: int, column: int | None = None, field: str | None = None) -> None:
        raise CimCsvFormatError(f"{self.name}: line {line}" + (f", column {column} ({field})" if column else "")
                                + f": {message}", line=line, column=column, field=field)

    def _malformed(self, line: int, detail: str) -> CimCsvFormatError:
        return CimCsvFormatError(
            f"{self.name}: line {line}: malformed CSV ({detail}) with delimiter {self.delimiter!r}; "
            "exports made with -UseCulture or -Delimiter need delimiter=", line=line)

    def _header(self, buf: _Buffer) -> tuple[list[str], int]:
        """The header row (a ``#TYPE`` line before it checked and skipped) and the line after it."""
        line = 1
        while True:
            stop = min(buf.filled, buf.pos + self._max_row + 1)
            window = buf.arr[buf.pos: min(stop, buf.pos + _SNIFF)].tobytes()
            blank = _BLANK_LINES.match(window)
            if blank is not None:  # many blank lines at a time
                line += window.count(b"\n", 0, blank.end())
                buf.pos += blank.end()
                continue
            nl = window.find(b"\n")
            if nl < 0 and stop - buf.pos > len(window):
                nl = buf.arr[buf.pos: stop].tobytes().find(b"\n")
            if nl < 0:
                if buf.filled - buf.pos > self._max_row:
                    raise CimCsvFormatError(f"{self.name}: line {line}: a line longer than {self._max_row:,} bytes "
                                            "before the header ended: not a CIM CSV", line=line)
                if not buf.eof:
                    buf.fill()
                    continue
                if buf.pos == buf.filled:
                    raise CimCsvFormatError(f"{self.name}: no header row (an empty file)", line=line)
                nl = buf.filled - buf.pos
            raw = buf.arr[buf.pos: buf.pos + nl].tobytes()
            buf.pos = min(buf.pos + nl + 1, buf.filled)
            raw = raw[:-1] if raw.endswith(b"\r") else raw
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CimCsvFormatError(f"{self.name}: line {line}: not valid UTF-8 ({exc.reason} at byte offset "
                                        f"{buf.base + buf.pos - nl - 1 + exc.start}); export with -Encoding UTF8 or "
                                        "Unicode", line=line) from None
            if "\0" in text:
                raise CimCsvFormatError(f"{self.name}: line {line}: NUL bytes in the header: binary data or UTF-16 "
                                        "without a byte order mark, not a CIM CSV", line=line)
            if not text:
                line += 1
                continue
            if line == 1 and text.startswith("#TYPE"):
                self._check_type_line(text)
                line += 1
                continue
            try:
                header = next(csv.reader([text], delimiter=self.delimiter, doublequote=True, strict=True))
            except csv.Error as exc:
                raise self._malformed(line, str(exc)) from None
            return header, line + 1

    def _check_type_line(self, text: str) -> None:
        """``#TYPE ...CimInstance#root/wmi/MSiSCSI_MMIPSECStats``: refuse another class (exactly)."""
        type_name = text[len("#TYPE"):].strip()
        if "#" in type_name:
            class_name = type_name.rsplit("#", 1)[1].replace("\\", "/").rsplit("/", 1)[-1]
            if class_name and class_name != CLASS_NAME:
                raise CimCsvFormatError(f"{self.name}: line 1: the #TYPE line names class {class_name}, "
                                        f"not {CLASS_NAME}", line=1)

    def _roles(self, header: list[str], line: int) -> npt.NDArray[np.int64]:
        """What the kernel does with each column: -1 ignore, -2 timestamp, else a slot."""
        position: dict[str, int] = {}
        for i, name in enumerate(header):
            if name in position:
                raise CimCsvFormatError(f"{self.name}: line {line}: column {name!r} appears twice "
                                        f"(columns {position[name] + 1} and {i + 1})", line=line, column=i + 1)
            position[name] = i
        wanted = ["InstanceName", *FIELD_NAMES]
        ts = self.timestamp_column
        if ts is not None:
            if ts in wanted or ts == "CimClass":
                raise ValueError(f"timestamp_column {ts!r} is a column read for another purpose")
            wanted.append(ts)
        missing = [name for name in wanted if name not in position]
        if missing:
            raise CimCsvFormatError(
                f"{self.name}: line {line}: the header lacks column(s) {', '.join(missing)}; is this an "
                f"Export-Csv of {CLASS_NAME} with delimiter {self.delimiter!r}?", line=line)
        roles = np.full(len(header), CL.ROLE_IGNORE, np.int64)
        for k, name in enumerate(FIELD_NAMES):
            roles[position[name]] = k
        roles[position["InstanceName"]] = NFIELDS + _NAME
        if "CimClass" in position:
            roles[position["CimClass"]] = NFIELDS + _CLASS
        if ts is not None:
            roles[position[ts]] = CL.ROLE_TIMESTAMP
        return roles

    # -- rows ----------------------------------------------------------------------------

    def _chunks(self) -> Iterator[Capture]:
        buf = _Buffer(self._stream(), max(self._block, 4))
        buf.fill()
        if buf.arr[:3].tobytes() == _BOM8 and buf.filled >= 3:
            buf.pos = 3
        header, line = self._header(buf)
        roles = self._roles(header, line - 1)
        self._header_names = header
        nstrs = 2 if "CimClass" in header else 1
        cap = self.chunk_records
        table = NameTable()
        self._name_codes: dict[bytes, int] = {}
        self._class_ok: set[bytes] = {b"", CIM_CLASS.encode()}
        kernel = _backend.KERNEL
        delim = ord(self.delimiter)
        first = 0
        while True:
            records = np.empty((cap, RECORD_SIZE), np.uint8)
            strs = np.empty((cap, nstrs, CL.STR_FIELDS), np.int64)
            stamps = np.empty(cap if self.has_timestamps else 0, np.int64)
            lines = np.empty(cap, np.int64)
            codes = np.empty(cap, np.intp)
            n = 0
            while n < cap:
                data = buf.arr[buf.pos: buf.filled]
                code, k, consumed, next_line, column, offset, length, value = kernel.csv_rows(
                    data, buf.eof, delim, roles, NFIELDS, records[n:], strs[n:], stamps[n:], lines[n:], line,
                    self._max_row)
                bad_utf8 = self._utf8_error(buf, consumed, line)
                bad_row = self._strings(data, strs[n: n + k], lines[n: n + k], codes[n: n + k], roles, table) \
                    if k else None
                if bad_utf8 is not None and (bad_row is None or bad_utf8.line <= bad_row.line):
                    raise bad_utf8
                if bad_row is not None:
                    raise bad_row
                n += k
                buf.pos += consumed
                if code:
                    self._kernel_error(code, next_line, column, offset, length, value, data, len(header))
                line = next_line
                if n == cap:
                    break
                if buf.eof:
                    break
                buf.fill()
            if n:
                keep = (lambda a: a[:n].copy()) if 2 * n < cap else (lambda a: a[:n])
                recs = keep(records).view(RECORD_DTYPE).reshape(n)
                ts = keep(stamps).view("datetime64[ns]") if self.has_timestamps else None
                yield Capture(recs, ts, keep(codes), table.names, first)
                first += n
            if n < cap:
                return

    def _utf8_error(self, buf: _Buffer, consumed: int, line: int) -> CimCsvFormatError | None:
        """The error for the first invalid UTF-8 in the ``consumed`` bytes just parsed, if any."""
        part = buf.arr[buf.pos: buf.pos + consumed]
        try:
            codecs.utf_8_decode(part, "strict", True)  # type: ignore[arg-type]
        except UnicodeDecodeError as exc:
            bad = line + part[: exc.start].tobytes().count(b"\n")
            return CimCsvFormatError(
                f"{self.name}: line {bad}: not valid UTF-8 ({exc.reason} at byte offset "
                f"{buf.base + buf.pos + exc.start}); export with -Encoding UTF8 or Unicode", line=bad)
        return None

    def _strings(self, data: npt.NDArray[np.uint8], strs: npt.NDArray[np.int64], lines: npt.NDArray[np.int64],
                 codes: npt.NDArray[np.intp], roles: npt.NDArray[np.int64], table: NameTable
                 ) -> CimCsvFormatError | None:
        """Instance codes of the rows, and the CimClass check: one lookup per distinct value
        (the kernel points every row at an earlier row with the same bytes). Returns the
        error of the first bad row, if any."""
        k = strs.shape[0]
        rows = np.arange(k)
        errors: list[tuple[int, int, str, str]] = []  # (row, column, field, message)
        for slot in range(strs.shape[1]):
            refs = strs[:, slot, 3]
            canon = np.flatnonzero(refs == rows)
            column = int(np.flatnonzero(roles == NFIELDS + slot)[0]) + 1
            got = strs[canon, slot].tolist()
            if slot == _NAME:
                found = np.empty(k, np.intp)
                values = []
                cache = self._name_codes
                for r, (off, ln, esc, _) in zip(canon.tolist(), got):
                    key = data[off: off + ln].tobytes()
                    c = cache.get(key)
                    if c is None:
                        name = _field_text(data, off, ln, esc).rstrip("\0")
                        if "\0" in name:
                            errors.append((r, column, "InstanceName", f"{name!r}: a NUL character inside the "
                                           "instance name"))
                            break
                        c = cache[key] = table.code(name)
                    values.append(c)
                if not errors:
                    found[canon] = values
                    codes[:] = found[refs]
            else:
                for r, (off, ln, esc, _) in zip(canon.tolist(), got):
                    if data[off: off + ln].tobytes() not in self._class_ok:
                        errors.append((r, column, "CimClass",
                                       f"{_field_text(data, off, ln, esc)!r} is not {CIM_CLASS}"))
                        break
        if not errors:
            return None
        r, column, field, message = min(errors)
        line = int(lines[r])
        return CimCsvFormatError(f"{self.name}: line {line}, column {column} ({field}): {message}", line=line,
                                 column=column, field=field)

    def _kernel_error(self, code: int, line: int, column: int, offset: int, length: int, value: int,
                      data: npt.NDArray[np.uint8], width: int) -> None:
        field = self._header_names[column - 1] if column else None
        if code == CL.ROW_TOO_LONG:
            raise CimCsvFormatError(
                f"{self.name}: line {line}: a row longer than {self._max_row:,} bytes (CIM CSV rows are a few KiB): "
                "binary data, or a quote that is never closed", line=line)
        if code == CL.UNCLOSED_QUOTE:
            raise self._malformed(line, "a quoted field is never closed")
        if code == CL.BAD_QUOTE:
            raise self._malformed(line, f"column {column}: a quote inside an unquoted field, or no delimiter "
                                        "after a closing quote")
        if code == CL.BARE_CR:
            raise self._malformed(line, f"column {column}: a carriage return that does not end the line")
        if code == CL.FIELD_COUNT:
            raise CimCsvFormatError(f"{self.name}: line {line}: {value} field(s), the header has {width}", line=line)
        text = _field_text(data, offset, length, value)
        if code == CL.NOT_UINT64:
            self._fail(f"{text!r} is not a decimal uint64", line, column, field)
        if code == CL.UINT64_RANGE:
            self._fail(f"{text} is out of the uint64 range (at most {_UINT64_MAX})", line, column, field)
        self._fail(_timestamp_message(code, text), line, column, field)


def read_cim_csv(source: Any, *, timestamp_column: str | None = None, delimiter: str = ",") -> Capture:
    """A ``Capture`` from PowerShell's ``Export-Csv`` of ``MSiSCSI_MMIPSECStats`` instances.

    ``source``: a path, a file (binary or text), or the bytes of the CSV (UTF-8, or UTF-16
    with a BOM). The ``#TYPE`` line is optional. Each of the 21 properties is parsed as an
    exact decimal uint64; anything else (a sign, spaces, a fraction, an empty value, more
    than 2**64 - 1) raises ``CimCsvFormatError`` naming the line and column.
    ``timestamp_column``: the column holding each row's time, ISO 8601 with a UTC offset
    (``Get-Date -Format o``; up to 9 fraction digits, offsets up to 14:00) or FILETIME ticks
    (``ToFileTimeUtc()``), exact to 1 ns; an empty cell is NaT. Without it the Capture has
    no timestamps.
    ``delimiter``: "," (``Export-Csv`` default), or ";" etc. for ``-UseCulture``/``-Delimiter``.
    Instance names lose trailing NUL characters; a NUL inside one is an error. Rows are
    limited to ``MAX_ROW_BYTES``. The file is read in blocks (``CimCsvReader``), never whole.
    """
    src: Any
    if isinstance(source, io.TextIOBase):
        src = _TextSource(source)  # duck-types the ByteSource calls the reader makes
    else:
        src = ByteSource(source, "read_cim_csv()")
    reader = CimCsvReader(src, timestamp_column=timestamp_column, delimiter=delimiter)
    chunks = list(reader)
    if not chunks:
        ts = np.empty(0, "datetime64[ns]") if timestamp_column is not None else None
        return Capture(np.empty(0, RECORD_DTYPE), ts, np.empty(0, np.intp), ())
    return concat(chunks)


FORMAT = Format("cim-csv", "CIM CSV", accept, CimCsvReader)
