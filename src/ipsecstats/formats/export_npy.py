"""``.npy`` written by ``ipsecstats convert --format npy``: recognised, and refused with a way out.

A ``.npy`` holds the array alone: the 21 fields of each record (or the deltas, or the
rates), without ``record``, ``instance`` or time. A capture's records then cannot be
told apart by instance (deltas would pair records of different instances: false
restarts, silently wrong numbers), and a raw log's would need its stride and times given
again, which is what the raw log itself is read with. So a ``.npy`` is not an input:
without this format its binary bytes would be taken for a raw log, header and all.
The message says how to get a raw log back (``numpy.load(...).tofile(...)``) or which
export keeps every column (CSV, JSON Lines, Parquet).
"""

from __future__ import annotations

import io

import numpy as np

from .._schema import RECORD_DTYPE
from .._source import ByteSource
from ._base import SNIFF_BYTES, Format
from ._exported import INPUTS_ARE_RECORDS, ExportFormatError

__all__ = ["FORMAT", "accept", "refuse"]

MAGIC = b"\x93NUMPY"


def accept(prefix: bytes) -> bool:
    """The NumPy magic ``\\x93NUMPY``."""
    return prefix.startswith(MAGIC)


def refuse(source: ByteSource) -> None:
    """Raise the ``ExportFormatError`` that says what the ``.npy`` holds and what to do instead."""
    from numpy.lib import format as npy_format

    name = source.name
    try:
        head = io.BytesIO(source.peek(SNIFF_BYTES))
        version = npy_format.read_magic(head)
        read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        dtype = read(head)[2]
    except (ValueError, OSError, SyntaxError, TypeError):
        dtype = None
    finally:
        source.close()
    if dtype is not None and np.dtype(dtype) != RECORD_DTYPE:
        raise ExportFormatError(f"{name}: a NumPy .npy array of {len(np.dtype(dtype).names or ())} columns, not "
                                f"records (deltas or rates): {INPUTS_ARE_RECORDS}")
    raise ExportFormatError(
        f"{name}: a NumPy .npy array holds the 21 fields only, without record, instance and time, so it is not an "
        "input; read the raw log or capture it came from, or convert to .csv, .jsonl or .parquet (they keep every "
        "column); a raw log's .npy becomes the raw log again with: python -c \"import numpy, sys; "
        "numpy.load(sys.argv[1]).tofile(sys.argv[2])\" FILE.npy FILE.bin")


def _reader(source: ByteSource) -> None:
    refuse(source)


FORMAT = Format("npy", "a NumPy .npy array", accept, _reader)
