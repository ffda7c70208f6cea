"""Bytes <-> records: ``decode`` and ``encode``.

A record array is a zero-copy view of the caller's bytes wherever possible; copies
move the data as raw bytes (``np.copyto`` on uint8 is a memcpy), never through
numpy's per-field structured copy, which is several times slower.
"""

from __future__ import annotations

import mmap
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from ._alloc import empty
from ._errors import report_partial_record
from ._schema import NFIELDS, RECORD_DTYPE, RECORD_SIZE

__all__ = ["as_record_array", "decode", "encode", "record_bytes_2d", "whole_records"]

BytesLike = Union[bytes, bytearray, memoryview, mmap.mmap, npt.NDArray[Any]]

_ROW_BYTES = np.dtype((np.uint8, (RECORD_SIZE,)))


def _byte_view(data: BytesLike) -> npt.NDArray[np.uint8]:
    """A 1-D uint8 view of ``data`` without copying; read-only when the source is."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise TypeError(
                f"decode() takes a numpy array of dtype uint8, got {data.dtype}; "
                "use .view(np.uint8) on the raw bytes"
            )
        if data.ndim != 1 or not data.flags.c_contiguous:
            raise ValueError("decode() needs a 1-D C-contiguous uint8 array of raw record bytes")
        return data
    if isinstance(data, (str, int, float)) or data is None:
        raise TypeError(f"decode() takes bytes-like data, not {type(data).__name__}")
    _refuse_capture(data, "decode()")
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"decode() takes bytes-like data, not {type(data).__name__}") from None
    if not view.c_contiguous:
        raise ValueError("decode() needs a C-contiguous buffer of raw record bytes")
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return np.frombuffer(view, dtype=np.uint8)


def whole_records(nbytes: int, allow_partial: bool, source: str) -> int:
    """``nbytes // 168``; a remainder raises or warns (``_errors.report_partial_record``)."""
    n, rest = divmod(nbytes, RECORD_SIZE)
    report_partial_record(n, rest, allow_partial, source)
    return n


def decode(
    data: BytesLike,
    *,
    copy: bool = False,
    allow_partial: bool = False,
    out: npt.NDArray[np.void] | None = None,
) -> npt.NDArray[np.void]:
    """Records of ``RECORD_DTYPE`` from raw bytes: 21 little-endian uint64 per 168 bytes.

    ``copy=False`` returns a view of ``data`` (read-only when ``data`` is);
    ``copy=True`` returns an owned, writeable array, copied at memcpy speed.
    A length that is not a multiple of 168 raises ``TruncatedRecordError``; with
    ``allow_partial=True`` the whole records are returned and a
    ``PartialRecordWarning`` reports the leftover bytes. ``out``: copy into this
    preallocated C-contiguous ``RECORD_DTYPE`` array of the right length (implies a copy;
    reusing one buffer spares the page faults of fresh memory).
    """
    raw = _byte_view(data)
    n = whole_records(raw.size, allow_partial, "decode()")
    raw = raw[: n * RECORD_SIZE]
    if out is not None:
        if not isinstance(out, np.ndarray) or out.dtype != RECORD_DTYPE or out.shape != (n,):
            raise ValueError(f"out must be a RECORD_DTYPE array of shape ({n},)")
        if not (out.flags.c_contiguous and out.flags.writeable):
            raise ValueError("out must be C-contiguous and writeable")
    elif not copy:
        return raw.view(RECORD_DTYPE)
    else:
        out = empty(n, RECORD_DTYPE)
    np.copyto(out.view(np.uint8), raw)
    return out


def record_bytes_2d(records: npt.NDArray[np.void]) -> npt.NDArray[np.uint8]:
    """An (n, 168) uint8 view of a 1-D ``RECORD_DTYPE`` array of any stride, no copy."""
    return records.view(_ROW_BYTES)


def _refuse_capture(data: Any, what: str) -> None:
    """A ``Capture`` (told by its attributes: ``_wnode`` imports this module) is a TypeError
    that says what to call instead."""
    if hasattr(data, "instance_codes") and hasattr(data, "instance_names"):
        raise TypeError(
            f"{what}: got a {type(data).__name__} (records with timestamps and instance names): "
            "use its .deltas() / .rates() for the deltas or rates of each instance name, "
            "ipsecstats.to_arrow(capture, what='deltas') (or to_pandas / to_polars) for one table "
            "with timestamp and instance columns, or capture.records for the raw records"
        )


def as_record_array(records: Any, what: str = "records") -> npt.NDArray[np.void]:
    """Coerce ``records`` to a 1-D ``RECORD_DTYPE`` array (a view when possible).

    Accepts a ``RECORD_DTYPE`` array (any stride or alignment), a structured array with
    the same field names (converted), an (n, 21) unsigned integer array, or raw bytes
    (bytes-like, or a 1-D uint8 array such as ``np.fromfile(path, np.uint8)``).
    A ``Capture`` is a TypeError saying what to call instead.
    """
    _refuse_capture(records, what)
    if isinstance(records, np.ndarray) and not (records.dtype == np.uint8 and records.ndim == 1):
        dt = records.dtype
        if dt == RECORD_DTYPE:
            pass
        elif dt.names is not None:
            if dt.names != RECORD_DTYPE.names:
                raise TypeError(
                    f"{what}: a structured array must have the 21 MSiSCSI_MMIPSECStats fields "
                    f"in order; got fields {dt.names}"
                )
            for name in dt.names:
                fdt = dt.fields[name][0]
                if fdt.kind != "u":
                    raise TypeError(f"{what}: field {name} has dtype {fdt}; unsigned integers required")
            records = records.astype(RECORD_DTYPE)
        elif records.ndim == 2 and records.shape[1] == NFIELDS and dt.kind == "u":
            flat = np.ascontiguousarray(records, dtype="<u8")
            return flat.view(RECORD_DTYPE).reshape(-1)
        else:
            raise TypeError(
                f"{what}: expected an array of ipsecstats.RECORD_DTYPE or an (n, 21) uint64 "
                f"array, got dtype {dt} with shape {records.shape}"
            )
        if records.ndim != 1:
            raise ValueError(f"{what}: expected a 1-D record array, got shape {records.shape}")
        return records
    return decode(records)


def encode(records: Any) -> bytes:
    """The raw bytes of ``records``: the exact inverse of ``decode``.

    Accepts what ``as_record_array`` accepts; the output is 168 bytes per record,
    21 little-endian uint64 each.
    """
    arr = as_record_array(records, "encode()")
    if arr.flags.c_contiguous:
        return arr.view(np.uint8).tobytes()
    return np.ascontiguousarray(record_bytes_2d(arr)).tobytes()
