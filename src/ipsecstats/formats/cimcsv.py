"""PowerShell ``Export-Csv`` of ``MSiSCSI_MMIPSECStats`` (CIM CSV): sniff, chunk reader, ``read_cim_csv``.

``Get-CimInstance -Namespace root\\wmi -ClassName MSiSCSI_MMIPSECStats | Export-Csv`` writes
one row per instance per sample: an optional ``#TYPE`` line, a header, every value
double-quoted (PowerShell 7 ``-UseQuotes AsNeeded|Never`` quote less), CRLF line ends,
columns ``Active``, ``InstanceName``, the 21 properties (uint64 as decimal text),
``PSComputerName``, ``CimClass``, ``CimInstanceProperties``, ``CimSystemProperties``.
Columns are found by name, in any order; columns other than the properties,
``InstanceName``, ``CimClass``, the host column (``PSComputerName`` or ``__SERVER``) and the
time column are ignored (``Active``, the ``Win32_PerfRawData`` and ``Cim*`` ones, and
``Get-WmiObject``'s ``__GENUS`` ... ``Container``). The delimiter (",", ";" or tab) is told
from the header; the encoding from a BOM, else UTF-8, else cp1252 (``encoding=`` chooses).
The header and the choices made from the first data row (host and time columns, how
times are parsed) happen once, when the reader opens (``_open``); a ``#TYPE`` line plus a
header equal to the first, met again later (per-poll files joined), is skipped.

Reading streams: blocks of the source go through the row kernel (``_fast.csv_rows`` or
its twin), which parses whole rows and says where the last one ended; the unfinished
tail moves to the front of the buffer for the next block. Memory stays bounded whatever
the file size: one block, one chunk of records, and one row of at most ``MAX_ROW_BYTES``.
Sniff: text (UTF-8, UTF-16 with a BOM, or cp1252) whose first line is a ``#TYPE`` line or a
header naming ``InstanceName`` and the 21 properties.
"""

from __future__ import annotations

import codecs
import csv
import datetime as _dt
import io
import re
import warnings
from collections.abc import Iterator
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from .. import _backend
from .. import _csv_layout as CL
from .._capture import Capture, NameTable, concat
from .._checks import check_chunk_records, chunk_rows
from .._schema import FIELD_NAMES, NFIELDS, RECORD_DTYPE, RECORD_SIZE
from .._source import ByteSource
from . import _csvtime
from ._csvtext import BLOCK_BYTES, CimCsvFormatError, _Buffer, _Decoded, _TextSource, _nul_verdict, parse_encoding
from ._base import Format, is_text, option_spelling

__all__ = ["FORMAT", "CimCsvFormatError", "CimCsvReader", "CimCsvWarning", "accept", "read_cim_csv"]

CLASS_NAME = "MSiSCSI_MMIPSECStats"
#: The only ``CimClass`` value accepted (an empty cell too): ``Get-CimInstance`` writes it so.
CIM_CLASS = "root/wmi:" + CLASS_NAME
#: Rows per chunk: 2.75 MB of records.
CHUNK_RECORDS = 16384
#: The longest row accepted: real rows are under 4 KiB; this stops /dev/zero and a quote
#: that is never closed before they take the machine's memory.
MAX_ROW_BYTES = 1 << 20
_UINT64_MAX = 2**64 - 1
_BOM8 = b"\xef\xbb\xbf"
_SNIFF = 4096
_NAME, _CLASS, _HOST, _TIME = 0, 1, 2, 3  # kinds of the kernel's string slots
_BLANK_LINES = re.compile(rb"(?:\r?\n)+")


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

#: Delimiters told from the header line (``Export-Csv`` default, ``-UseCulture`` in much of
#: Europe, and tab); ``delimiter=`` takes any other.
DELIMITERS = (",", ";", "\t")
#: Columns that name the row's computer: ``Get-CimInstance`` and ``Get-WmiObject`` (an alias there).
HOST_COLUMNS = ("PSComputerName", "__SERVER")
#: ``Win32_PerfRawData``'s time of the sample, 100 ns ticks since 1601: the time when filled.
SYS100NS = "Timestamp_Sys100NS"
_TIME_CACHE = 1 << 16  # distinct time strings kept (one poll stamps all its instances alike)


class CimCsvWarning(UserWarning):
    """Something the reader assumed about a CIM CSV (its encoding, its time zone)."""


class CimCsvReader:
    """Chunks of at most ``chunk_records`` rows of a CIM CSV (see ``read_cim_csv`` for the options).

    ``source``: a ``ByteSource``. ``option_style``: "keyword" (messages name ``delimiter=``
    etc.) or "flag" (they name ``--delimiter``: the command line). The header is read when
    ``has_timestamps`` or ``has_hosts`` is first asked, or when iteration starts.
    """

    format: str = "cim-csv"
    stride: int | None = None

    def __init__(self, source: ByteSource, *, timestamp_column: str | None = None, delimiter: str | None = None,
                 encoding: str | None = None, timestamp_format: str | None = None, timezone: str | None = None,
                 chunk_records: int | None = None, option_style: str | None = None):
        self.source = source
        self.name = source.name
        spell = self._spell = option_spelling(option_style)
        self.timestamp_column = timestamp_column
        if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1
                                      or delimiter in '"\r\n' or not delimiter.isascii()):
            raise ValueError(f"{spell('delimiter')} must be one ASCII character other than '\"', CR and LF, "
                             f"got {delimiter!r}")
        self.delimiter = delimiter
        self.encoding = parse_encoding(encoding, spell)
        if timestamp_format is not None and (not isinstance(timestamp_format, str) or "%" not in timestamp_format):
            raise ValueError(f"{spell('timestamp_format')} must be a strptime format such as "
                             f"'%m/%d/%Y %I:%M:%S %p', got {timestamp_format!r}")
        self.timestamp_format = timestamp_format
        self._zone = _csvtime.parse_zone(timezone, spell)
        self.chunk_records = check_chunk_records(CHUNK_RECORDS if chunk_records is None else chunk_records)
        # private knobs (tests): bytes per read, longest row
        self._block = BLOCK_BYTES
        self._max_row = MAX_ROW_BYTES
        self._opened: tuple[_Buffer, int] | None = None
        self._notes: list[str] = []
        self._time_col: str | None = None
        self._host_col: str | None = None
        self._seen_type = False
        self._naive_said = False
        self._repeated_said = False

    @property
    def has_timestamps(self) -> bool:
        self._open()
        return self._time_col is not None

    @property
    def has_hosts(self) -> bool:
        self._open()
        return self._host_col is not None

    @property
    def notes(self) -> list[str]:
        """What the reader chose by itself (the time column), for the command line to print."""
        self._open()
        return self._notes

    def close(self) -> None:
        self.source.close()

    def __iter__(self) -> Iterator[Capture]:
        try:
            yield from self._chunks()
        finally:
            self.source.close()

    def _warn(self, message: str) -> None:
        warnings.warn(f"{self.name}: {message}", CimCsvWarning, stacklevel=4)

    # -- encoding ------------------------------------------------------------------------

    def _stream(self) -> Any:
        """The source as UTF-8 bytes: as is (UTF-8, with or without a BOM), or decoded from
        UTF-16 (a BOM) or a code page (``encoding=``, or cp1252 when the bytes are not UTF-8)."""
        src = self.source
        if isinstance(src, _TextSource):
            return src
        prefix = src.peek(_SNIFF)
        block = max(self._block, 4)
        enc = self.encoding
        if enc is None:
            if prefix.startswith((b"\xff\xfe", b"\xfe\xff")):
                return _Decoded(src, block, "utf-16", self._spell)
            if 0 in prefix:
                _nul_verdict(prefix, self.name)
            try:
                codecs.getincrementaldecoder("utf-8")().decode(prefix, final=False)
                return src
            except UnicodeDecodeError as exc:
                self._warn(f"not UTF-8 (byte 0x{prefix[exc.start]:02x} at offset {exc.start}): read as cp1252, "
                           f"the Windows ANSI code page of Western Europe; pass {self._spell('encoding')} for "
                           "another code page")
                enc = "cp1252"
        if enc in ("utf-8", "utf-8-sig"):
            return src
        if enc == "utf-16" and not prefix.startswith((b"\xff\xfe", b"\xfe\xff")):
            enc = "utf-16-le"  # PowerShell's "Unicode" without its BOM
        return _Decoded(src, block, enc, self._spell)

    def _utf8_hint(self) -> str:
        return f"pass {self._spell('encoding')} with the file's encoding (e.g. cp1252)"

    # -- header --------------------------------------------------------------------------

    def _fail(self, message: str, line: int, column: int | None = None, field: str | None = None) -> NoReturn:
        raise CimCsvFormatError(f"{self.name}: line {line}" + (f", column {column} ({field})" if column else "")
                                + f": {message}", line=line, column=column, field=field)

    def _malformed(self, line: int, detail: str) -> CimCsvFormatError:
        how = "given" if self.delimiter is not None else "told from the header"
        return CimCsvFormatError(
            f"{self.name}: line {line}: malformed CSV ({detail}) with delimiter {self._delim!r} ({how}); "
            f"pass {self._spell('delimiter')} for exports made with -Delimiter", line=line)

    def _line(self, buf: _Buffer, line: int) -> str | None:
        """The next line of ``buf`` (without its line end) decoded, or None at the end of the data."""
        while True:
            stop = min(buf.filled, buf.pos + self._max_row + 1)
            window = buf.arr[buf.pos: min(stop, buf.pos + _SNIFF)].tobytes()
            blank = _BLANK_LINES.match(window)
            if blank is not None:  # many blank lines at a time
                self._blank += window.count(b"\n", 0, blank.end())
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
                    return None
                nl = buf.filled - buf.pos
            raw = buf.arr[buf.pos: buf.pos + nl].tobytes()
            at = buf.base + buf.pos
            buf.pos = min(buf.pos + nl + 1, buf.filled)
            raw = raw[:-1] if raw.endswith(b"\r") else raw
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CimCsvFormatError(f"{self.name}: line {line}: not valid UTF-8 ({exc.reason} at byte offset "
                                        f"{at + exc.start}); {self._utf8_hint()}", line=line) from None
            if "\0" in text:
                raise CimCsvFormatError(f"{self.name}: line {line}: NUL bytes in the header: binary data or UTF-16 "
                                        "without a byte order mark, not a CIM CSV", line=line)
            return text

    def _header(self, buf: _Buffer) -> tuple[list[str], int]:
        """The header row (a ``#TYPE`` line before it checked and skipped) and the line after it."""
        line = 1
        while True:
            self._blank = 0
            text = self._line(buf, line)
            line += self._blank
            if text is None:
                raise CimCsvFormatError(f"{self.name}: no header row (an empty file)", line=line)
            if not text.strip("\r"):
                line += 1
                continue
            if text.startswith("#TYPE"):
                if line > 1 and self._seen_type:
                    raise CimCsvFormatError(f"{self.name}: line {line}: a second #TYPE line before the header",
                                            line=line)
                self._check_type_line(text, line)
                self._seen_type = True
                line += 1
                continue
            return self._split_header(text, line), line + 1

    def _split_header(self, text: str, line: int) -> list[str]:
        """The header's column names, the delimiter told from them when not given."""
        def split(delim: str) -> list[str]:
            try:
                return next(csv.reader([text], delimiter=delim, doublequote=True, strict=True))
            except csv.Error as exc:
                raise self._malformed(line, str(exc)) from None

        if self.delimiter is not None:
            self._delim = self.delimiter
            return split(self._delim)
        best: list[str] | None = None
        for delim in DELIMITERS:
            self._delim = delim
            try:
                cells = split(delim)
            except CimCsvFormatError:
                continue
            if "InstanceName" in cells:
                return cells
            if best is None or len(cells) > len(best):
                best, chosen = cells, delim
        if best is None:
            self._delim = ","
            return split(",")
        self._delim = chosen
        return best

    def _check_type_line(self, text: str, line: int) -> None:
        """``#TYPE <type>``: a class path (``/`` or ``\\``) after ``#`` must name MSiSCSI_MMIPSECStats."""
        type_name = text[len("#TYPE"):].strip()
        if "#" in type_name:
            class_name = type_name.rsplit("#", 1)[1].replace("\\", "/").rsplit("/", 1)[-1]
            if class_name and class_name != CLASS_NAME:
                raise CimCsvFormatError(f"{self.name}: line {line}: the #TYPE line names class {class_name}, "
                                        f"not {CLASS_NAME}", line=line)

    def _first_row(self, buf: _Buffer) -> list[str] | None:
        """The first data row's cells (for the choices made from its values), without consuming it."""
        while True:
            data = buf.arr[buf.pos: buf.filled].tobytes()
            start = len(data) - len(data.lstrip(b"\r\n"))
            end, quotes = -1, 0
            at = start
            while True:
                nl = data.find(b"\n", at)
                if nl < 0:
                    break
                quotes += data.count(b'"', at, nl)
                if quotes % 2 == 0:
                    end = nl
                    break
                at = nl + 1
            if end >= 0 or buf.eof or len(data) > self._max_row:
                break
            buf.fill()
        row = data[start: end if end >= 0 else len(data)].rstrip(b"\r").decode("utf-8", "replace")
        if not row:
            return None
        try:
            return next(csv.reader([row], delimiter=self._delim, doublequote=True))
        except (csv.Error, StopIteration):
            return None

    def _roles(self, header: list[str], line: int, first: list[str] | None) -> npt.NDArray[np.int64]:
        """What the kernel does with each column: -1 ignore, -2 timestamp, else a slot; chooses
        the host and time columns, and the string slots (``self._slots``)."""
        position: dict[str, int] = {}
        for i, name in enumerate(header):
            if name in position:
                raise CimCsvFormatError(f"{self.name}: line {line}: column {name!r} appears twice "
                                        f"(columns {position[name] + 1} and {i + 1})", line=line, column=i + 1)
            position[name] = i
        wanted = ["InstanceName", *FIELD_NAMES]
        missing = [name for name in wanted if name not in position]
        if missing:
            how = "given" if self.delimiter is not None else f"told from the header; pass {self._spell('delimiter')}"
            raise CimCsvFormatError(
                f"{self.name}: line {line}: the header lacks column(s) {', '.join(missing)}; is this an "
                f"Export-Csv of {CLASS_NAME} with delimiter {self._delim!r} ({how})?", line=line)

        def cell(name: str) -> str:
            j = position[name]
            return first[j] if first is not None and j < len(first) else ""

        host = next((h for h in HOST_COLUMNS if h in position), None)
        # a host column keys instances by (host, name) in every row, even where it is empty (a
        # local query's PSComputerName): a host named only later is then still kept apart
        self._host_col = host
        ts = self.timestamp_column
        if ts is not None:
            if ts in wanted or ts == "CimClass" or ts == self._host_col:
                raise ValueError(f"{self._spell('timestamp_column')} {ts!r} is a column read for another purpose")
            if ts not in position:
                raise CimCsvFormatError(f"{self.name}: line {line}: the header lacks column(s) {ts} (given by "
                                        f"{self._spell('timestamp_column')})", line=line)
        elif SYS100NS in position and cell(SYS100NS) not in ("", "0"):
            ts = SYS100NS
            self._notes.append(f"{self.name}: times from column {SYS100NS} (FILETIME ticks, UTC)")
        else:
            named = [name for name in header if name.lower() == "timestamp"]
            if len(named) == 1:
                ts = named[0]
                self._notes.append(f"{self.name}: times from column {ts!r} (pass {self._spell('timestamp_column')} "
                                  "to choose another)")
        self._time_col = ts
        self._kernel_time = ts is not None and self.timestamp_format is None and (
            ts == SYS100NS or _csvtime.is_kernel_time(cell(ts)))
        roles = np.full(len(header), CL.ROLE_IGNORE, np.int64)
        for k, name in enumerate(FIELD_NAMES):
            roles[position[name]] = k
        self._slots = [_NAME]
        if "CimClass" in position:
            self._slots.append(_CLASS)
        if self._host_col is not None:
            self._slots.append(_HOST)
        if ts is not None and not self._kernel_time:
            self._slots.append(_TIME)
        columns = {_NAME: "InstanceName", _CLASS: "CimClass", _HOST: self._host_col, _TIME: ts}
        self._slot_cols = []
        for slot, kind in enumerate(self._slots):
            col = columns[kind]
            assert col is not None
            roles[position[col]] = NFIELDS + slot
            self._slot_cols.append(position[col])
        if ts is not None and self._kernel_time:
            roles[position[ts]] = CL.ROLE_TIMESTAMP
        return roles

    def _open(self) -> tuple[_Buffer, int]:
        """Read the header (once): the buffer positioned after it, and the next line number."""
        if self._opened is not None:
            return self._opened
        try:
            buf = _Buffer(self._stream(), max(self._block, 4))
            buf.fill()
            if buf.arr[:3].tobytes() == _BOM8 and buf.filled >= 3:
                buf.pos = 3
            header, line = self._header(buf)
            self._header_names = header
            self._header_line = line - 1
            self._roles_arr = self._roles(header, line - 1, self._first_row(buf))
        except BaseException:
            self.source.close()
            raise
        self._times = _csvtime.TimeParser(self.timestamp_format, self._zone, self._spell)
        self._opened = (buf, line)
        return self._opened

    # -- rows ----------------------------------------------------------------------------

    def _chunks(self) -> Iterator[Capture]:
        buf, line = self._open()
        roles = self._roles_arr
        header = self._header_names
        nstrs = len(self._slots)
        cap = chunk_rows(self.source, self.chunk_records, 2 * 21)  # a row: 21 values, 21 separators
        table = NameTable()
        self._ids: dict[int, dict[bytes, tuple[int, str]]] = {_NAME: {}, _HOST: {}}
        self._pairs: dict[int, int] = {}
        self._texts: dict[int, list[str]] = {_NAME: [], _HOST: []}
        self._name_codes: dict[bytes, int] = {}
        self._time_cache: dict[bytes, int] = {}
        self._class_ok: set[bytes] = {b"", CIM_CLASS.encode()}
        kernel = _backend.KERNEL
        delim = ord(self._delim)
        timed = self._time_col is not None
        first = 0
        while True:
            records = np.empty((cap, RECORD_SIZE), np.uint8)
            strs = np.empty((cap, nstrs, CL.STR_FIELDS), np.int64)
            stamps = np.empty(cap if timed else 0, np.int64)
            lines = np.empty(cap, np.int64)
            codes = np.empty(cap, np.intp)
            n = 0
            while n < cap:
                data = buf.arr[buf.pos: buf.filled]
                code, k, consumed, next_line, column, offset, length, value = kernel.csv_rows(
                    data, buf.eof, delim, roles, NFIELDS, records[n:], strs[n:], stamps[n:], lines[n:], line,
                    self._max_row)
                bad_utf8 = self._utf8_error(buf, consumed, line)
                bad_row = self._strings(data, strs[n: n + k], lines[n: n + k], codes[n: n + k],
                                        stamps[n: n + k], table) if k else None
                if bad_utf8 is not None and (bad_row is None or bad_utf8.line <= bad_row.line):
                    raise bad_utf8
                if bad_row is not None:
                    raise bad_row
                n += k
                buf.pos += consumed
                line = next_line
                if code:
                    skip = self._repeated_header(data[consumed:], line, code)
                    if skip is None:
                        self._kernel_error(code, next_line, column, offset, length, value, data, len(header))
                    buf.pos += skip
                    line += 1
                    continue
                if n == cap or buf.eof:
                    break
                buf.fill()
            if self._times.naive_seen and not self._naive_said:
                self._naive_said = True
                self._warn(f"times in column {self._time_col!r} carry no UTC offset: read as UTC; pass "
                           f"{self._spell('timezone')} with the zone they were written in")
            if self._times.repeated and not self._repeated_said:
                self._repeated_said = True
                self._warn(f"times in column {self._time_col!r} such as {self._times.repeated!r} occur twice in "
                           f"time zone {self._zone} (the clocks go back) and are read as their first occurrence: "
                           "rates across the repeated hour are off; times with a UTC offset (Get-Date -Format o) "
                           "are never ambiguous")
            if n:
                keep = (lambda a: a[:n].copy()) if 2 * n < cap else (lambda a: a[:n])
                recs = keep(records).view(RECORD_DTYPE).reshape(n)
                ts = keep(stamps).view("datetime64[ns]") if timed else None
                yield Capture(recs, ts, keep(codes), table.names, first, table.hosts)
                first += n
            if n < cap:
                return

    def _repeated_header(self, data: npt.NDArray[np.uint8], line: int, code: int) -> int | None:
        """Bytes to skip when the row at ``data`` (which the kernel refused) is a ``#TYPE`` line
        or a header equal to the first (files concatenated per poll); None otherwise. A
        different header is an error naming its line."""
        if code in (CL.ROW_TOO_LONG, CL.UNCLOSED_QUOTE):
            return None
        head = data[: self._max_row + 1].tobytes()
        nl = head.find(b"\n")
        end = len(head) if nl < 0 else nl + 1
        raw = head[:end].rstrip(b"\r\n")
        if raw.startswith(_BOM8):  # files joined byte for byte: each one's BOM
            raw = raw[3:]
        text = raw.decode("utf-8", "replace")
        if text.startswith("#TYPE"):
            self._check_type_line(text, line)
            return end
        try:
            cells = next(csv.reader([text], delimiter=self._delim, doublequote=True))
        except (csv.Error, StopIteration):
            return None
        if cells == self._header_names:
            return end
        if "InstanceName" in cells and all(name in cells for name in FIELD_NAMES):
            raise CimCsvFormatError(f"{self.name}: line {line}: a header different from the first one (line "
                                    f"{self._header_line}): files of different exports joined together", line=line)
        return None

    def _utf8_error(self, buf: _Buffer, consumed: int, line: int) -> CimCsvFormatError | None:
        """The error for the first invalid UTF-8 in the ``consumed`` bytes just parsed, if any."""
        part = buf.arr[buf.pos: buf.pos + consumed]
        try:
            codecs.utf_8_decode(part, "strict", True)  # type: ignore[arg-type]
        except UnicodeDecodeError as exc:
            bad = line + part[: exc.start].tobytes().count(b"\n")
            return CimCsvFormatError(
                f"{self.name}: line {bad}: not valid UTF-8 ({exc.reason} at byte offset "
                f"{buf.base + buf.pos + exc.start}); {self._utf8_hint()}", line=bad)
        return None

    def _strings(self, data: npt.NDArray[np.uint8], strs: npt.NDArray[np.int64], lines: npt.NDArray[np.int64],
                 codes: npt.NDArray[np.intp], stamps: npt.NDArray[np.int64], table: NameTable
                 ) -> CimCsvFormatError | None:
        """Instance codes, string-parsed times and the CimClass check of the rows: one lookup per
        distinct value (the kernel points every row at an earlier row with the same bytes).
        Returns the error of the first bad row, if any."""
        k = strs.shape[0]
        rows = np.arange(k)
        errors: list[tuple[int, int, str, str]] = []  # (row, column, field, message)
        ids: dict[int, npt.NDArray[np.int64]] = {}
        name_order: list[int] = []
        for slot, kind in enumerate(self._slots):
            refs = strs[:, slot, 3]
            canon = np.flatnonzero(refs == rows)
            column = self._slot_cols[slot] + 1
            field = self._header_names[column - 1]
            got = strs[canon, slot].tolist()
            if kind == _CLASS:
                for r, (off, ln, esc, _) in zip(canon.tolist(), got):
                    if data[off: off + ln].tobytes() not in self._class_ok:
                        errors.append((r, column, field, f"{_field_text(data, off, ln, esc)!r} is not {CIM_CLASS}"))
                        break
                continue
            found = np.empty(k, np.int64)
            values = []
            if kind == _TIME:
                cache = self._time_cache
                if len(cache) > _TIME_CACHE:
                    cache.clear()
                for r, (off, ln, esc, _) in zip(canon.tolist(), got):
                    key = data[off: off + ln].tobytes()
                    v = cache.get(key)
                    if v is None:
                        try:
                            v = CL.NAT if not ln else self._times.parse(_field_text(data, off, ln, esc))
                        except _csvtime.TimeError as exc:
                            errors.append((r, column, field, str(exc)))
                            break
                        cache[key] = v
                    values.append(v)
                if len(values) == len(canon):
                    found[canon] = values
                    stamps[:] = found[refs]
                continue
            known = self._ids[kind]
            for r, (off, ln, esc, _) in zip(canon.tolist(), got):
                key = data[off: off + ln].tobytes()
                hit = known.get(key)
                if hit is None:
                    text = _field_text(data, off, ln, esc)
                    if kind == _NAME and self._host_col is None:  # no hosts: the code itself
                        text = text.rstrip("\0")
                        if "\0" in text:
                            errors.append((r, column, field, f"{text!r}: a NUL character inside the instance name"))
                            break
                        hit = known[key] = (table.code(text), text)
                    elif kind == _NAME:
                        text = text.rstrip("\0")
                        if "\0" in text:
                            errors.append((r, column, field, f"{text!r}: a NUL character inside the instance name"))
                            break
                        hit = known[key] = (len(known), text)
                        self._texts[kind].append(text)
                    else:
                        hit = known[key] = (len(known), text)
                        self._texts[kind].append(text)
                values.append(hit[0])
            if len(values) == len(canon):
                found[canon] = values
                ids[kind] = found[refs]
                if kind == _NAME:
                    name_order = values
        if errors:
            r, column, field, message = min(errors)
            line = int(lines[r])
            return CimCsvFormatError(f"{self.name}: line {line}, column {column} ({field}): {message}", line=line,
                                     column=column, field=field)
        if self._host_col is None:
            codes[:] = ids[_NAME]
            return None
        self._host_codes(ids[_NAME], ids[_HOST], name_order, codes, table)
        return None

    def _host_codes(self, names: npt.NDArray[np.int64], hosts: npt.NDArray[np.int64], name_order: list[int],
                    codes: npt.NDArray[np.intp], table: NameTable) -> None:
        """``codes`` of rows with name ids ``names`` and host ids ``hosts``: one label per
        (host, name) pair, new ones added in order of first appearance (``name_order``: the
        name ids of the rows where a new name value starts, in row order)."""
        def pair_code(name: int, host: int) -> int:
            c = self._pairs.get((name << 32) | host)
            if c is None:
                c = self._pairs[(name << 32) | host] = table.code(self._texts[_NAME][name],
                                                                  self._texts[_HOST][host])
            return c

        if hosts.size and bool((hosts == hosts[0]).all()):  # one host in these rows: a lookup per name id
            host = int(hosts[0])
            firsts = dict.fromkeys(name_order)
            lut = np.empty(max(firsts) + 1, np.intp)
            for name in firsts:
                lut[name] = pair_code(name, host)
            codes[:] = lut[names]
            return
        pairs, where, inverse = np.unique((names << 32) | hosts, return_index=True, return_inverse=True)
        found = np.empty(len(pairs), np.intp)
        for j in np.argsort(where).tolist():  # new labels in order of first appearance
            pair = int(pairs[j])
            found[j] = pair_code(pair >> 32, pair & 0xFFFFFFFF)
        codes[:] = found[inverse.reshape(-1)]

    def _kernel_error(self, code: int, line: int, column: int, offset: int, length: int, value: int,
                      data: npt.NDArray[np.uint8], width: int) -> NoReturn:
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
            hint = (f" (an unquoted value holding the delimiter {self._delim!r}? Export-Csv -UseQuotes Never writes "
                    "such rows: select the needed columns, or quote AsNeeded)") if value > width else ""
            raise CimCsvFormatError(f"{self.name}: line {line}: {value} field(s), the header has {width}{hint}",
                                    line=line)
        text = _field_text(data, offset, length, value)
        if code == CL.NOT_UINT64:
            self._fail(f"{text!r} is not a decimal uint64", line, column, field)
        if code == CL.UINT64_RANGE:
            self._fail(f"{text} is out of the uint64 range (at most {_UINT64_MAX})", line, column, field)
        message = _timestamp_message(code, text)
        if code == CL.TS_SYNTAX:
            message += (f" (the column's first value was; times of other forms need {self._spell('timestamp_format')}"
                        f" or {self._spell('timezone')})")
        self._fail(message, line, column, field)


def read_cim_csv(source: Any, *, timestamp_column: str | None = None, delimiter: str | None = None,
                 encoding: str | None = None, timestamp_format: str | None = None,
                 timezone: str | None = None) -> Capture:
    """A ``Capture`` from PowerShell's ``Export-Csv`` (or ``ConvertTo-Csv``) of ``MSiSCSI_MMIPSECStats`` instances.

    ``source``: a path, a file (binary or text), or the bytes of the CSV. The ``#TYPE`` line
    is optional; a repeated ``#TYPE`` line and header (per-poll files joined) are skipped.
    Each of the 21 properties is parsed as an exact decimal uint64; anything else (a sign,
    spaces, a fraction, an empty value, more than 2**64 - 1) raises ``CimCsvFormatError``
    naming the line and column. Other columns are ignored. With a non-empty
    ``PSComputerName`` (or ``__SERVER``) column, instances are keyed by (host, InstanceName)
    and labelled ``"HOST NAME"`` (``Capture.instance_hosts``).

    ``delimiter``: told from the header among ",", ";" and tab when None.
    ``encoding``: None reads a BOM (UTF-8, UTF-16), else UTF-8, else cp1252 (with a
    ``CimCsvWarning``); or a codec name (``cp1250``, ``utf-16``, ...).

    Times: ``timestamp_column`` names the column; else a filled ``Timestamp_Sys100NS``
    (FILETIME ticks, UTC), else a column named ``Timestamp`` (any case) (the reader's
    ``notes`` say which). Cells are ISO 8601 (``Get-Date -Format o``; up to 9 fraction digits,
    exact to 1 ns) or FILETIME ticks; other forms (culture dates such as ``6/3/2024 2:00:00
    AM``) need ``timestamp_format`` (strptime syntax): day and month are never guessed. An
    empty cell is NaT. Times without an offset are local times of ``timezone`` (an IANA name
    such as ``Europe/Berlin``, or ``+02:00``): the repeated hour when clocks go back reads
    as its first occurrence (fold=0), a time in the skipped hour is an error. Without
    ``timezone`` they are read as UTC, with a ``CimCsvWarning``.

    Instance names lose trailing NUL characters; a NUL inside one is an error. Rows are
    limited to ``MAX_ROW_BYTES``. The file is read in blocks (``CimCsvReader``), never whole.
    """
    src: Any
    if isinstance(source, io.TextIOBase):
        src = _TextSource(source)  # duck-types the ByteSource calls the reader makes
    else:
        src = ByteSource(source, "read_cim_csv()")
    reader = CimCsvReader(src, timestamp_column=timestamp_column, delimiter=delimiter, encoding=encoding,
                          timestamp_format=timestamp_format, timezone=timezone)
    chunks = list(reader)
    if not chunks:
        ts = np.empty(0, "datetime64[ns]") if reader.has_timestamps else None
        hosts = () if reader.has_hosts else None
        return Capture(np.empty(0, RECORD_DTYPE), ts, np.empty(0, np.intp), (), 0, hosts)
    return concat(chunks)


FORMAT = Format("cim-csv", "CIM CSV", accept, CimCsvReader)
