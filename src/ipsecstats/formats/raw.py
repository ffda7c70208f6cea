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
from .._checks import check_chunk_records
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
    """Chunks of ``chunk_records`` records, read with ``readinto`` into fresh arrays.

    A chunk's array is sized by what the source holds: the records left when the size is
    known (a regular file opened here, bytes), else ``CHUNK_RECORDS`` or the records read
    so far, whichever is more; it doubles (with a copy) while more data arrives, up to
    ``chunk_records``. A huge ``chunk_records`` therefore costs no more than the data.
    """

    format = "raw"

    def __init__(self, source: ByteSource, *, stride: int | None = None, start: Any = None,
                 interval: float | None = None, chunk_records: int | None = None, allow_partial: bool = False):
        self.source = source
        self.name = source.name
        self.stride = check_int("stride", 1 if stride is None else stride, 1)
        self.chunk_records = check_chunk_records(CHUNK_RECORDS if chunk_records is None else chunk_records)
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
                records, got = self._fill(first)
                n = got // RECORD_SIZE
                if n:
                    seen = min(self.stride, first + n)
                    if len(self.names) < seen:
                        self.names += tuple(str(i) for i in range(len(self.names), seen))
                    yield Capture(records[:n], self._times(first, n), self._codes(first, n), self.names, first)
                    first += n
                if got < records.shape[0] * RECORD_SIZE:
                    report_partial_record(first, got - n * RECORD_SIZE, self.allow_partial, self.name,
                                          src.start)
                    return
        finally:
            src.close()

    def _fill(self, first: int) -> tuple[npt.NDArray[np.void], int]:
        """A fresh array of records read from the source, and the bytes read into it.

        Fewer bytes than the array holds means that the source ended.
        """
        src = self.source
        left = None if src.size is None else -(-(src.size - src.consumed) // RECORD_SIZE)  # a partial one too
        cap = min(self.chunk_records, max(1, max(CHUNK_RECORDS, first) if left is None else left))
        records = np.empty(cap, dtype=RECORD_DTYPE)
        got = src.readinto(records.view(np.uint8))
        while got == cap * RECORD_SIZE and cap < self.chunk_records and src.peek(1):  # more is coming
            grown = np.empty(min(self.chunk_records, 2 * cap), dtype=RECORD_DTYPE)
            grown[:cap] = records
            records = grown
            got += src.readinto(records.view(np.uint8)[got:])
            cap = records.shape[0]
        return records, got

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
