"""Columnar output: records or deltas as 21 contiguous column arrays, in one pass.

Row-major records are transposed once, by the kernel (``transpose_rows``), into one
(21, n) block whose rows are the columns; every later conversion (Arrow, pandas, polars)
wraps those columns without another copy. Each column starts on a 64-byte boundary.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _backend
from ._alloc import STREAMING_THRESHOLD, aligned_empty
from ._decode import as_record_array, decode, record_bytes_2d
from ._deltas import DecreasePolicy, delta_dtype, deltas, resolve_kinds
from ._errors import CounterResetError
from ._schema import FIELD_NAMES, NFIELDS

__all__ = ["Columns", "column_block", "decode_columns", "delta_columns", "input_records", "transpose_records"]

# delta_columns works through the input in runs of this many rows: the row-major deltas
# of one run (1.4 MB) stay in cache between the delta kernel and the transpose.
DELTA_RUN_ROWS = 8192
_LANE = 8  # items per 64-byte line: each column starts on a line


class Columns(Mapping[str, npt.NDArray[Any]]):
    """Field name -> contiguous 1-D column, in record order; all views of ``block``.

    ``block`` is a (fields, n) native uint64 array whose rows are the columns (each row
    contiguous and 64-byte aligned). A column's dtype is its field's, in native byte
    order: uint64 for records and counter deltas, int64 for gauge deltas (a view of the
    same bits).
    """

    __slots__ = ("_arrays", "block")

    def __init__(self, block: npt.NDArray[np.uint64], names: tuple[str, ...], dtypes: tuple[np.dtype[Any], ...]):
        if block.ndim != 2 or block.shape[0] != len(names) or len(dtypes) != len(names):
            raise ValueError(f"block of shape {block.shape} does not hold {len(names)} columns")
        self.block = block
        # the block is native (the transpose reads the little-endian rows): so are the columns,
        # whatever byte order the row dtype (RECORD_DTYPE, deltas: '<u8'/'<i8') states
        self._arrays = {name: block[j].view(dt if dt.isnative else dt.newbyteorder("="))
                        for j, (name, dt) in enumerate(zip(names, dtypes))}

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    @property
    def nrows(self) -> int:
        """The length of every column."""
        return int(self.block.shape[1])

    def __repr__(self) -> str:
        return f"<Columns: {len(self)} columns x {self.nrows} rows>"


def column_block(nrows: int) -> npt.NDArray[np.uint64]:
    """A (21, nrows) uint64 block whose rows each start on a 64-byte boundary."""
    padded = -(-nrows // _LANE) * _LANE
    return aligned_empty((NFIELDS, padded), np.uint64)[:, :nrows]


def input_records(data: Any, allow_partial: bool, what: str) -> npt.NDArray[np.void]:
    """A ``RECORD_DTYPE`` array (a view where possible) from records, (n, 21) or bytes."""
    if isinstance(data, np.ndarray) and data.dtype != np.uint8:
        return as_record_array(data, what)
    return decode(data, allow_partial=allow_partial)


def transpose_records(rows: npt.NDArray[np.void], dtypes: tuple[np.dtype[Any], ...]) -> Columns:
    """Columns of a 1-D array of 168-byte rows (records or deltas), by the kernel."""
    n = rows.shape[0]
    block = column_block(n)
    if n:
        _backend.KERNEL.transpose_rows(record_bytes_2d(rows), block, block.nbytes > STREAMING_THRESHOLD)
    return Columns(block, FIELD_NAMES, dtypes)


_RECORD_COLUMN_DTYPES = (np.dtype(np.uint64),) * NFIELDS


def decode_columns(
    data: Any, *, allow_partial: bool = False, out: npt.NDArray[np.uint64] | None = None
) -> Columns:
    """The 21 fields of ``data`` as contiguous uint64 columns, in one pass.

    ``data``: raw bytes (anything ``decode`` takes, with the same partial-record rule:
    ``TruncatedRecordError``, or a ``PartialRecordWarning`` with ``allow_partial=True``),
    a ``RECORD_DTYPE`` array of any stride or alignment, or an (n, 21) unsigned array.
    Column ``name`` equals ``decode(data)[name]``, exactly. The input is never modified.
    ``out``: a writeable (21, n) uint64 array with contiguous rows to fill instead of a
    fresh block (reusing one spares the page faults of new memory).
    """
    recs = input_records(data, allow_partial, "decode_columns()")
    if out is None:
        return transpose_records(recs, _RECORD_COLUMN_DTYPES)
    n = recs.shape[0]
    if not isinstance(out, np.ndarray) or out.dtype != np.uint64 or out.shape != (NFIELDS, n):
        raise ValueError(f"out must be a uint64 array of shape ({NFIELDS}, {n})")
    if not (out.flags.writeable and out.flags.aligned) or (n > 1 and out.strides[1] != 8) or out.strides[0] % 8:
        raise ValueError("out must be writeable and aligned, with contiguous rows")
    if n and abs(out.strides[0]) < n * 8:  # a row would start inside another (a stride-0 view, say)
        raise ValueError(f"out's rows must not overlap each other: rows {abs(out.strides[0])} bytes apart "
                         f"hold {n * 8} bytes each")
    if np.may_share_memory(out, recs):
        raise ValueError("out must not overlap the input records")
    if n:
        _backend.KERNEL.transpose_rows(record_bytes_2d(recs), out, out.nbytes > STREAMING_THRESHOLD)
    return Columns(out, FIELD_NAMES, _RECORD_COLUMN_DTYPES)


def delta_columns(
    records: Any,
    *,
    stride: int = 1,
    on_decrease: DecreasePolicy = "auto",
    previous: Any = None,
    kinds: Mapping[str, str] | None = None,
) -> Columns:
    """``deltas(records, ...)`` as 21 contiguous columns: counters uint64, gauges int64.

    Same arguments and arithmetic as ``deltas``; column ``name`` equals
    ``deltas(records, ...)[name]`` exactly. The work goes in runs of cache-sized blocks:
    each run's row-major deltas are transposed while they are still in cache, so the
    data crosses main memory once.
    """
    dtype = delta_dtype(resolve_kinds(kinds))
    recs = input_records(records, False, "delta_columns()")
    if previous is None:
        # let deltas() validate everything (policy, stride, kinds) on an empty run first
        deltas(recs[:0], stride=stride, on_decrease=on_decrease, kinds=kinds)
        nout = max(recs.shape[0] - stride, 0)
    else:
        nout = recs.shape[0]
    block = column_block(nout)
    columns = Columns(block, FIELD_NAMES, tuple(dtype[name] for name in FIELD_NAMES))
    if nout == 0:
        if previous is not None:  # validate previous against the (empty) input
            deltas(recs, stride=stride, on_decrease=on_decrease, previous=previous, kinds=kinds)
        return columns

    run_rows = max(DELTA_RUN_ROWS, stride)  # the first run holds every row that needs previous
    scratch = aligned_empty(min(run_rows, nout), dtype)
    streaming = block.nbytes > STREAMING_THRESHOLD
    kernel = _backend.KERNEL
    for start in range(0, nout, run_rows):
        stop = min(start + run_rows, nout)
        out = scratch[: stop - start]
        try:
            if previous is not None and start == 0:
                deltas(recs[:stop], stride=stride, on_decrease=on_decrease, previous=previous, kinds=kinds, out=out)
            elif previous is not None:
                deltas(recs[start - stride : stop], stride=stride, on_decrease=on_decrease, kinds=kinds, out=out)
            else:
                deltas(recs[start : stop + stride], stride=stride, on_decrease=on_decrease, kinds=kinds, out=out)
        except CounterResetError as exc:
            raise exc.shifted(start) from None
        kernel.transpose_rows(record_bytes_2d(out), block[:, start:stop], streaming)
    return columns
