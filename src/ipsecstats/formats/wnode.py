"""WNODE buffers (``WmiQueryAllData`` / ``IoWMIQueryAllData``) of ``MSiSCSI_MMIPSECStats``.

Sniff: a WNODE_HEADER whose BufferSize covers at least the header and whose GUID is
the class's. The walk itself (validation, names, times) is ``ipsecstats._wnode``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

from .. import _wnode_layout as L
from .._capture import Capture, NameTable
from .._checks import check_int
from .._schema import RECORD_SIZE
from .._source import ByteSource
from ._base import Format

__all__ = ["FORMAT", "WnodeReader", "accept", "ambiguity"]

CHUNK_RECORDS = 16384
_KNOWN_FLAGS = 0x0001FFFF  # wmistr.h WNODE_FLAG_* bits up to PDO_INSTANCE_NAMES


def _buffer_size(prefix: bytes) -> int | None:
    if len(prefix) < L.HEADER_SIZE:
        return None
    (size,) = struct.unpack_from("<I", prefix, L.BUFFER_SIZE)
    return size if size >= L.HEADER_SIZE else None


def accept(prefix: bytes) -> bool:
    """A WNODE_HEADER naming the MSiSCSI_MMIPSECStats GUID at byte 24."""
    return _buffer_size(prefix) is not None and prefix[L.GUID: L.GUID + 16] == L.GUID_BYTES


def ambiguity(prefix: bytes, size: int | None) -> str | None:
    """For binary data no format accepted: "wnode" when it starts like a WNODE of another GUID
    (plausible BufferSize and Flags) and cannot be whole records; a reason when it could be
    either; None when it is plainly records."""
    buffer_size = _buffer_size(prefix)
    if buffer_size is None or (size is not None and buffer_size > size):
        return None
    (flags,) = struct.unpack_from("<I", prefix, L.FLAGS)
    if flags & 0x3 not in (L.FLAG_ALL_DATA, L.FLAG_SINGLE_INSTANCE) or flags & ~_KNOWN_FLAGS:
        return None
    if size is not None and size % RECORD_SIZE:
        return "wnode"
    whole = "its size is also a whole number of 168-byte records" if size is not None else \
        "it is a stream whose size is unknown, so it could also be raw records"
    return f"it starts like a WNODE (BufferSize {buffer_size}) of another GUID, and {whole}"


class WnodeReader:
    """Chunks of the records of WNODE buffers, stamped and named (see ``read_wnode``)."""

    format = "wnode"
    stride = None
    has_timestamps = True

    def __init__(self, source: ByteSource, *, chunk_records: int | None = None, allow_partial: bool = False):
        self.source = source
        self.name = source.name
        self.chunk_records = check_int("chunk_records", CHUNK_RECORDS if chunk_records is None else chunk_records, 1)
        self.allow_partial = bool(allow_partial)

    def __iter__(self) -> Iterator[Capture]:
        # Interim: the walk runs over the whole input, then the capture is cut in chunks.
        from .._wnode import _read

        src = self.source
        try:
            data = bytearray()
            block = bytearray(1 << 20)
            while True:
                got = src.readinto(block)
                data += block[:got]
                if got < len(block):
                    break
            cap = _read(np.frombuffer(data, dtype=np.uint8), self.allow_partial, self.name)
        finally:
            src.close()
        table = NameTable(cap.instance_names)
        yield from _cut(cap, self.chunk_records, table.names)

    def close(self) -> None:
        self.source.close()


def _cut(cap: Capture, chunk_records: int, names: tuple[str, ...]) -> Iterator[Capture]:
    for lo in range(0, len(cap), chunk_records):
        hi = lo + chunk_records
        ts = None if cap.timestamps is None else cap.timestamps[lo:hi]
        yield Capture(cap.records[lo:hi], ts, cap.instance_codes[lo:hi], names, lo)


FORMAT = Format("wnode", "WNODE buffers", accept, WnodeReader)
