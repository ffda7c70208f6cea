"""What ``report``, ``convert``, ``plot`` and ``info`` read: a log in one of three input formats.

* ``raw``: contiguous 168-byte records, ``stride`` instances interleaved, no times in the
  file. Streamed from disk; the record ``r`` belongs to instance ``r % stride`` and sample
  ``r // stride``, and delta row ``r`` pairs record ``r + stride`` with record ``r``.
* ``wnode`` / ``cim-csv``: a ``Capture`` (read whole): every record carries its instance
  name and, from a WNODE always and from a CIM CSV with a timestamp column, its time.
  Delta row ``k`` pairs record ``later[k]`` with ``earlier[k]``, the previous record of the
  same instance name (rows in the order of the later record); its sample is the
  number of earlier records of that instance; rates divide by the real time step.

``Log`` gives both the same interface (``scan`` for the summaries, ``table`` for
exports, ``where`` to name the record behind a delta row), so the commands have one code
path. ``detect_format`` tells the formats apart from the first bytes of a file.
"""

from __future__ import annotations

import codecs
import datetime as dt
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _wnode_layout as L
from ._decode import record_bytes_2d
from ._deltas import deltas, rates
from ._schema import FIELD_NAMES, RECORD_DTYPE, RECORD_SIZE
from ._capture import Capture

__all__ = ["INPUT_FORMATS", "Log", "detect_format", "instance_pairs", "open_log", "scan_log"]

INPUT_FORMATS = ("raw", "wnode", "cim-csv")
FORMAT_NAMES = {"raw": "raw records", "wnode": "WNODE buffers", "cim-csv": "CIM CSV"}
_SNIFF_BYTES = 4096
_WNODE_KNOWN_FLAGS = 0x0001FFFF  # wmistr.h WNODE_FLAG_* bits up to PDO_INSTANCE_NAMES
TABLE_CHUNK_ROWS = 65536
_TEXT_CONTROLS = {c: None for c in [*range(32), 127] if chr(c) not in "\t\n\r\f"}  # binary when present


# --------------------------------------------------------------------------- detection


def _wnode_signature(head: bytes, size: int) -> str | None:
    """"guid" when the first WNODE names MSiSCSI_MMIPSECStats, "flags" when only its header is
    plausible (BufferSize within the file, Flags of an ALL_DATA or SINGLE_INSTANCE node), else None."""
    if len(head) < L.HEADER_SIZE:
        return None
    (buffer_size,) = struct.unpack_from("<I", head, L.BUFFER_SIZE)
    if not L.HEADER_SIZE <= buffer_size <= size:
        return None
    if head[L.GUID: L.GUID + 16] == L.GUID_BYTES:
        return "guid"
    (flags,) = struct.unpack_from("<I", head, L.FLAGS)
    if flags & 0x3 in (L.FLAG_ALL_DATA, L.FLAG_SINGLE_INSTANCE) and not flags & ~_WNODE_KNOWN_FLAGS:
        return "flags"
    return None


def _text_head(head: bytes) -> str | None:
    """The start of the file as text (UTF-8, or UTF-16 with a BOM), or None when it is binary
    (not decodable, or holding control characters other than tab, line ends and form feed)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        decoder = codecs.getincrementaldecoder("utf-16")()
    elif b"\0" in head:
        return None
    else:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        text = decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return None
    return None if text.translate(_TEXT_CONTROLS) != text else text


def _is_cim_header(text: str) -> bool:
    """A ``#TYPE`` line, or a header naming InstanceName and all 21 properties."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return False
    first = lines[0].lstrip()
    return first.startswith("#TYPE") or all(name in first for name in ("InstanceName", *FIELD_NAMES))


def detect_format(path: str) -> str:
    """``raw``, ``wnode`` or ``cim-csv`` from the first bytes of ``path``.

    WNODE: a plausible BufferSize and the MSiSCSI_MMIPSECStats GUID at byte 24 (or, when
    the size is not a whole number of records, WNODE-like Flags). CIM CSV: text starting
    with ``#TYPE`` or a header naming the properties. Raw: any other binary file (an empty
    file too). Text that is no CIM CSV, or a file that reads as both a WNODE of another
    GUID and whole records, raises ``ValueError`` asking for ``--input-format``.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(_SNIFF_BYTES)
    if not head:
        return "raw"
    text = _text_head(head)
    if text is not None and _is_cim_header(text):
        return "cim-csv"
    wnode = _wnode_signature(head, size)
    if wnode == "guid":
        return "wnode"
    ask = "pass --input-format raw, wnode or cim-csv"
    if wnode == "flags":
        if size % RECORD_SIZE:
            return "wnode"
        (buffer_size,) = struct.unpack_from("<I", head, 0)
        raise ValueError(f"{path}: cannot tell the input format: it starts like a WNODE (BufferSize {buffer_size}) "
                         "of another GUID, and its size is also a whole number of 168-byte records; " + ask)
    if text is not None:
        first = next((line for line in text.splitlines() if line.strip()), "")[:60]
        raise ValueError(f"{path}: cannot tell the input format: it is text, but its first line {first!r} is neither "
                         "a #TYPE line nor a CSV header naming InstanceName and the 21 MSiSCSI_MMIPSECStats "
                         "properties; " + ask)
    return "raw"


# --------------------------------------------------------------------------- pairing


def instance_pairs(codes: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp],
                                                         npt.NDArray[np.intp]]:
    """``(earlier, later, sample)`` for records with instance ``codes``.

    ``later[k]`` runs over every record that has an earlier record of its instance, in
    source order; ``earlier[k]`` is the previous record of that instance. ``sample[i]``
    is the number of records of record ``i``'s instance before it.
    """
    n = codes.shape[0]
    order = np.argsort(codes, kind="stable")
    same = codes[order[1:]] == codes[order[:-1]]
    group_start = np.maximum.accumulate(np.where(np.r_[True, ~same], np.arange(n), 0)) if n else order
    sample = np.empty(n, dtype=np.intp)
    sample[order] = np.arange(n) - group_start
    earlier, later = order[:-1][same], order[1:][same]
    by_later = np.argsort(later, kind="stable")
    return earlier[by_later], later[by_later], sample


# --------------------------------------------------------------------------- the log


@dataclass
class Log:
    """One input of the commands: a raw file (streamed) or a ``Capture`` (in memory)."""

    path: str
    format: str
    stride: int = 1
    capture: Capture | None = None
    earlier: npt.NDArray[np.intp] = field(default_factory=lambda: np.empty(0, np.intp))
    later: npt.NDArray[np.intp] = field(default_factory=lambda: np.empty(0, np.intp))
    sample: npt.NDArray[np.intp] = field(default_factory=lambda: np.empty(0, np.intp))

    @property
    def has_timestamps(self) -> bool:
        return self.capture is not None and self.capture.timestamps is not None

    def samples(self) -> int:
        """Samples per instance (at most): for a raw file, from its size."""
        if self.capture is None:
            try:
                size = os.stat(self.path).st_size
            except OSError:
                return 0
            return -(-(size // RECORD_SIZE) // self.stride)
        return int(self.sample.max()) + 1 if self.sample.shape[0] else 0

    def where(self, row: int) -> str:
        """The record behind delta row ``row``, for messages."""
        if self.capture is None:
            record = row + self.stride
            return f"record {record:,}" + (f" (instance {record % self.stride})" if self.stride > 1 else "")
        cap, i = self.capture, int(self.later[row])
        when = ""
        if cap.timestamps is not None and not np.isnat(cap.timestamps[i]):
            when = f", {np.datetime_as_string(cap.timestamps[i], timezone='UTC')}"
        return f"record {i:,} (instance {cap.instance_names[int(cap.instance_codes[i])]}{when})"

    def pair_records(self) -> npt.NDArray[np.void]:
        """The earlier records of every pair, then the later ones: ``deltas(..., stride=m)`` of
        this array is the pairs' deltas, row ``k`` = ``records[later[k]] - records[earlier[k]]``."""
        assert self.capture is not None
        rows = record_bytes_2d(self.capture.records)
        return np.concatenate([rows[self.earlier], rows[self.later]]).view(RECORD_DTYPE).reshape(-1)

    def pair_deltas(self, on_decrease: str, return_resets: bool = False) -> Any:
        """``deltas`` of every pair (see ``pair_records``); a CounterResetError's row is the pair's."""
        return deltas(self.pair_records(), stride=max(self.later.shape[0], 1), on_decrease=on_decrease,  # type: ignore[arg-type]
                      return_resets=return_resets)

    def pair_rates(self, on_decrease: str, interval: float | None) -> npt.NDArray[np.void]:
        """Per-second rates of every pair: by the time step between the two records, or ``interval``."""
        assert self.capture is not None
        ts = self.capture.timestamps
        stamps = None if ts is None or interval is not None else np.concatenate([ts[self.earlier], ts[self.later]])
        return rates(self.pair_records(), stride=max(self.later.shape[0], 1), on_decrease=on_decrease,  # type: ignore[arg-type]
                     interval=interval if stamps is None else None, timestamps=stamps)

    def scan(self, *, on_decrease: str, allow_partial: bool = False, bins: int = 0,
             progress: Callable[[int], None] | None = None) -> Any:
        """The ``LogStats`` of one pass (``_report``)."""
        from ._report import scan, scan_capture

        if self.capture is None:
            return scan(self.path, stride=self.stride, on_decrease=on_decrease, allow_partial=allow_partial,
                        bins=bins, progress=progress)
        stats = scan_capture(self, on_decrease=on_decrease, bins=bins)
        if progress is not None:
            progress(stats.bytes_at_start)
        return stats

    def table(self, what: str, *, on_decrease: str, interval: float | None) -> Iterator[tuple[int, npt.NDArray[Any]]]:
        """A capture's records, deltas or rates as ``(first_row, array)`` chunks, rows in source order
        (of the later record for deltas and rates)."""
        assert self.capture is not None
        if what == "records":
            table: npt.NDArray[Any] = self.capture.records
        elif what == "deltas":
            table = self.pair_deltas(on_decrease)
        else:
            table = self.pair_rates(on_decrease, interval)
        for lo in range(0, table.shape[0], TABLE_CHUNK_ROWS):
            yield lo, table[lo: lo + TABLE_CHUNK_ROWS]

    def row_columns(self, what: str) -> dict[str, npt.NDArray[Any]]:
        """A capture's leading export columns: ``record`` (for deltas and rates the later record
        of the pair), ``timestamp`` (when the capture has times), ``instance`` (the name)."""
        assert self.capture is not None
        cap = self.capture
        index = np.arange(len(cap), dtype=np.intp) if what == "records" else self.later
        cols: dict[str, npt.NDArray[Any]] = {"record": index.astype(np.uint64)}
        if cap.timestamps is not None:
            cols["timestamp"] = cap.timestamps[index]
        cols["instance"] = np.array(cap.instance_names, dtype=object)[cap.instance_codes[index]]
        return cols


def open_log(path: str, input_format: str = "auto", *, stride: int = 1, allow_partial: bool = False,
             timestamp_column: str | None = None) -> Log:
    """The ``Log`` of ``path``: detects the format when ``input_format`` is "auto", reads a capture whole."""
    fmt = detect_format(path) if input_format == "auto" else input_format
    if fmt not in INPUT_FORMATS:
        raise ValueError(f"unknown input format {fmt!r}; choose one of {', '.join(INPUT_FORMATS)}")
    if fmt == "raw":
        return Log(path, fmt, stride=stride)
    if fmt == "wnode":
        from ._wnode import read_wnode

        capture = read_wnode(path, allow_partial=allow_partial)
    else:
        from ._cimcsv import read_cim_csv

        capture = read_cim_csv(path, timestamp_column=timestamp_column)
    earlier, later, sample = instance_pairs(capture.instance_codes)
    return Log(path, fmt, stride=max(len(capture.instance_names), 1), capture=capture, earlier=earlier,
               later=later, sample=sample)


def scan_log(path: str, *, input_format: str = "auto", stride: int = 1, on_decrease: str = "auto",
             allow_partial: bool = False, timestamp_column: str | None = None) -> Any:
    """``open_log(...).scan(...)``: a module-level function, so Dask workers can run it."""
    log = open_log(path, input_format, stride=stride, allow_partial=allow_partial, timestamp_column=timestamp_column)
    return log.scan(on_decrease=on_decrease, allow_partial=allow_partial)


def utc_datetime(value: np.datetime64) -> dt.datetime | None:
    """A datetime64[ns] as an aware UTC datetime (microseconds: what ``datetime`` holds); NaT -> None."""
    if np.isnat(value):
        return None
    ns = int(value.astype("datetime64[ns]").astype(np.int64))
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=ns // 1000)
