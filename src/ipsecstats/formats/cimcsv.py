"""PowerShell ``Export-Csv`` of ``MSiSCSI_MMIPSECStats`` (CIM CSV).

Sniff: text (UTF-8, or UTF-16 with a BOM) whose first line is a ``#TYPE`` line or a
header naming ``InstanceName`` and the 21 properties. Parsing is ``ipsecstats._cimcsv``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from .._capture import Capture
from .._checks import check_int
from .._schema import FIELD_NAMES
from .._source import ByteSource
from ._base import Format, is_text

__all__ = ["FORMAT", "CimCsvReader", "accept"]

CHUNK_RECORDS = 16384


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


class CimCsvReader:
    """Chunks of the rows of a CIM CSV (see ``read_cim_csv``)."""

    format = "cim-csv"
    stride = None

    def __init__(self, source: ByteSource, *, timestamp_column: str | None = None, delimiter: str | None = None,
                 chunk_records: int | None = None):
        self.source = source
        self.name = source.name
        self.timestamp_column = timestamp_column
        self.delimiter = "," if delimiter is None else delimiter
        self.chunk_records = check_int("chunk_records", CHUNK_RECORDS if chunk_records is None else chunk_records, 1)
        self.has_timestamps = timestamp_column is not None

    def __iter__(self) -> Iterator[Capture]:
        # Interim: the file is parsed whole, then the capture is cut in chunks.
        from .._cimcsv import read_cim_csv
        from .wnode import _cut

        src = self.source
        try:
            data = bytearray()
            block = bytearray(1 << 20)
            while True:
                got = src.readinto(block)
                data += block[:got]
                if got < len(block):
                    break
            stream = io.BytesIO(data)
            stream.name = self.name  # type: ignore[misc]  # for messages
            cap = read_cim_csv(stream, timestamp_column=self.timestamp_column, delimiter=self.delimiter)
        finally:
            src.close()
        yield from _cut(cap, self.chunk_records, cap.instance_names)

    def close(self) -> None:
        self.source.close()


FORMAT = Format("cim-csv", "CIM CSV", accept, CimCsvReader)
