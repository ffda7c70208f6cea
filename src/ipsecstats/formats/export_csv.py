"""CSV written by ``ipsecstats convert --what records`` as input: detected and read back exactly.

The writer's CSV: UTF-8, LF line ends, a header ``record,[instance],[time],<21 fields>``
(a raw log) or ``record,[timestamp],[host],instance,<21 fields>`` (a capture), integers
in decimal, times ISO 8601 UTC, a name quoted when it holds a comma, a quote or a line
end (``""`` for a quote). Rows go through the compiled CSV kernel (see ``_export_text``);
``_exported`` checks them and makes the ``Capture`` chunks.

Sniff: text whose first line is a header that starts with ``record`` and names at least
half of the 21 fields (a rates table too, and one that lacks a column: they are refused
with a message, not left undetected).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _csv_layout as CL
from .._schema import FIELD_NAMES
from ._base import Format, is_text
from .._checks import chunk_rows
from ._export_text import KernelTable, TextExportReader, value_message
from ._exported import ExportFormatError, Plan, Rows

__all__ = ["FORMAT", "CsvExportReader", "accept"]


def accept(prefix: bytes) -> bool:
    """Text whose first line is ``record,...`` naming at least half of the 21 fields."""
    text = is_text(prefix)
    if text is None or "\n" not in text:
        return False
    cells = text.split("\n", 1)[0].rstrip("\r").split(",")
    return cells[0] == "record" and 2 * len(set(FIELD_NAMES) & set(cells)) > len(FIELD_NAMES)


def _decode(data: npt.NDArray[np.uint8], offset: int, length: int, escaped: int) -> str:
    text = data[offset: offset + length].tobytes().decode("utf-8")  # strict: a bad byte is an error
    return text.replace('""', '"') if escaped else text


class CsvExportReader(TextExportReader):
    """Chunks of an ipsecstats CSV export (see the module docstring)."""

    format = "ipsecstats-csv"

    def _columns(self) -> tuple[list[str], str | None]:
        line = self._blocks.first_line(self.name, self._max_row)
        try:
            text = line.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ExportFormatError(f"{self.name}: line 1: not UTF-8 text", line=1) from None
        return next(csv.reader([text])), None

    def _make_table(self, plan: Plan) -> KernelTable:
        n = len(plan.columns)
        rows = chunk_rows(self.source, self.chunk_records, 2 * n)  # a row: a digit and a separator per column
        return KernelTable(self.name, plan.columns, list(range(n)), n, rows, _decode, self._max_row)

    def _parse(self) -> Iterator[Rows]:
        b, table = self._blocks, self._table
        line = 2
        while True:
            consumed, line = table.parse(b.arr[b.pos: b.filled], b.eof, line, self._error)
            b.pos += consumed
            if table.full:
                yield table.take()  # type: ignore[misc]
                continue
            if b.eof:
                rows = table.take()
                if rows is not None:
                    yield rows
                return
            b.fill()

    def _error(self, code: int, line: int, column: int, offset: int, length: int, value: int,
               data: npt.NDArray[np.uint8]) -> ExportFormatError:
        col, field = self._table.column(column) if column else (None, None)
        if code == CL.FIELD_COUNT:
            return ExportFormatError(f"{self.name}: line {line}: {value} field(s), the header has "
                                     f"{len(self.plan.columns)}", line=line)
        malformed = {CL.ROW_TOO_LONG: f"a row longer than {self._max_row:,} bytes",
                     CL.UNCLOSED_QUOTE: "a quoted field is never closed",
                     CL.BAD_QUOTE: f"column {column}: a quote inside an unquoted field, or no comma after a "
                                   "closing quote",
                     CL.BARE_CR: f"column {column}: a carriage return that does not end the line"}
        if code in malformed:
            return ExportFormatError(f"{self.name}: line {line}: malformed CSV ({malformed[code]})", line=line)
        text = _decode_lenient(data, offset, length, value)
        return ExportFormatError(f"{self.name}: line {line}, column {col} ({field}): {value_message(code, text)}",
                                 line=line, column=col, field=field)


def _decode_lenient(data: Any, offset: int, length: int, escaped: int) -> str:
    text = data[offset: offset + length].tobytes().decode("utf-8", "replace")
    return text.replace('""', '"') if escaped else text


FORMAT = Format("ipsecstats-csv", "an ipsecstats CSV export", accept, CsvExportReader)
