"""Raw logs: contiguous 168-byte records, ``stride`` instances interleaved, no times in the file.

Record ``r`` belongs to instance ``r % stride`` (named ``"0"``, ``"1"``, ...) and sample
``r // stride``; with ``start`` and ``interval`` its time is
``start + (r // stride) * interval``, exact in nanoseconds. Any binary prefix is accepted:
raw is what detection falls back to.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from .._capture import Capture
from .._checks import check_int
from .._errors import report_partial_record
from .._schema import RECORD_DTYPE, RECORD_SIZE
from .._source import ByteSource
from ._base import Format, is_text

__all__ = ["FORMAT", "RawReader"]

#: Records per chunk: 2.75 MB, cache-sized between the read and the kernels.
CHUNK_RECORDS = 16384


def accept(prefix: bytes) -> bool:
    """Any binary data (an empty file too)."""
    return not prefix or is_text(prefix) is None


class RawReader:
    """Chunks of ``chunk_records`` records, read with ``readinto`` into fresh arrays."""

    format = "raw"

    def __init__(self, source: ByteSource, *, stride: int | None = None, start: Any = None,
                 interval: float | None = None, chunk_records: int | None = None, allow_partial: bool = False):
        self.source = source
        self.name = source.name
        self.stride = check_int("stride", 1 if stride is None else stride, 1)
        self.chunk_records = check_int("chunk_records", CHUNK_RECORDS if chunk_records is None else chunk_records, 1)
        self.allow_partial = bool(allow_partial)
        self.names: tuple[str, ...] = ()  # "0", "1", ...: as many as instances seen so far
        self._start_ns: int | None = None
        self._step_ns = 0
        if start is not None and interval is not None:
            self._start_ns = int(np.datetime64(start, "ns").astype(np.int64))
            self._step_ns = round(float(interval) * 1e9)
        self.has_timestamps = self._start_ns is not None
        self.has_hosts = False

    def __iter__(self) -> Iterator[Capture]:
        src = self.source
        first = 0
        try:
            while True:
                records = np.empty(self.chunk_records, dtype=RECORD_DTYPE)
                got = src.readinto(records.view(np.uint8))
                n = got // RECORD_SIZE
                if n:
                    seen = min(self.stride, first + n)
                    if len(self.names) < seen:
                        self.names += tuple(str(i) for i in range(len(self.names), seen))
                    yield Capture(records[:n], self._times(first, n), self._codes(first, n), self.names, first)
                    first += n
                if got < self.chunk_records * RECORD_SIZE:
                    report_partial_record(first, got - n * RECORD_SIZE, self.allow_partial, self.name,
                                          src.start)
                    return
        finally:
            src.close()

    def _codes(self, first: int, n: int) -> npt.NDArray[np.intp]:
        if self.stride == 1:
            return np.zeros(n, dtype=np.intp)
        return np.arange(first, first + n, dtype=np.intp) % self.stride

    def _times(self, first: int, n: int) -> npt.NDArray[np.datetime64] | None:
        if self._start_ns is None:
            return None
        last = self._start_ns + (first + n - 1) // self.stride * self._step_ns
        if not -(2**63) < last < 2**63:
            raise ValueError(f"{self.name}: the time of record {first + n - 1:,} from start and interval is "
                             "outside the datetime64[ns] range 1677..2262")
        sample = np.arange(first, first + n, dtype=np.int64) // self.stride
        return (self._start_ns + sample * self._step_ns).view("datetime64[ns]")

    def close(self) -> None:
        self.source.close()


FORMAT = Format("raw", "raw records", accept, RawReader)
