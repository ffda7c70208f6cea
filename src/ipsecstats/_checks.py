"""Argument checks shared by the public functions."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MAX_CHUNK_RECORDS", "check_chunk_records", "check_int", "chunk_rows"]

#: The largest ``chunk_records`` accepted (721 GB of records: a bound no buffer reaches,
#: since buffers are sized by the source, and far from any integer overflow).
MAX_CHUNK_RECORDS = 2**32
#: Rows a chunk buffer of a source of unknown size starts with (a pipe, standard input).
STREAM_ROWS = 65536


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as a Python int: a Python or numpy integer (not a bool) that is ``>= minimum``.

    Raises ``TypeError`` for any other type and ``ValueError`` below ``minimum``, naming ``name``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_chunk_records(value: Any) -> int:
    """``chunk_records`` as an int in ``1 .. MAX_CHUNK_RECORDS``: ``TypeError`` / ``ValueError`` otherwise."""
    chunk_records = check_int("chunk_records", value, 1)
    if chunk_records > MAX_CHUNK_RECORDS:
        raise ValueError(f"chunk_records must be at most {MAX_CHUNK_RECORDS:,} records, got {chunk_records:,}")
    return chunk_records


def chunk_rows(source: Any, chunk_records: int, row_bytes: int) -> int:
    """Rows to allocate for a chunk of a text reader: ``chunk_records``, but no more than the
    rest of ``source`` can hold when its size is known (a row takes at least ``row_bytes``
    bytes), and at most ``STREAM_ROWS`` when it is not: a huge ``chunk_records`` on a small
    file costs no more than the file."""
    size = getattr(source, "size", None)
    if size is None:
        return max(1, min(chunk_records, STREAM_ROWS))
    left = max(size - getattr(source, "offset", 0), 0)
    return max(1, min(chunk_records, left // max(row_bytes, 1) + 1))
