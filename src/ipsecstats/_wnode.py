"""Raw WMI buffers of ``MSiSCSI_MMIPSECStats``: ``read_wnode``, ``write_wnode``, ``Capture``.

``WmiQueryAllData`` / ``IoWMIQueryAllData`` return WNODEs (wmistr.h, offsets in
``_wnode_layout``). A capture file holds such buffers back to back, each starting with its
``BufferSize``; a buffer may chain further WNODEs through ``Linkage`` (offset from the
current WNODE, 0 = last), and the next buffer starts right after the last WNODE of the
chain. Every data block becomes one record, stamped with its WNODE's ``TimeStamp`` and
named by its instance name.

The walk over the headers and the copy of the data blocks run in the kernel
(``wnode_count`` then ``wnode_fill``, Cython or the pure twin); this module validates the
arguments, turns the kernel's (code, offset, value, bound) into one message and decodes
the few distinct instance names.
"""

from __future__ import annotations

import mmap
import os
import struct
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _backend
from . import _wnode_layout as L
from ._capture import Capture, as_datetime_ns
from ._decode import as_record_array, record_bytes_2d
from ._schema import RECORD_DTYPE, RECORD_SIZE

__all__ = ["Capture", "WnodeFormatError", "WnodeWarning", "read_wnode", "write_wnode"]

_NAT = np.iinfo(np.int64).min
_GUID = np.frombuffer(L.GUID_BYTES, dtype=np.uint8)
_FIRST_NAME_TABLE = 256  # distinct names expected; a capture with more is walked again


class WnodeFormatError(ValueError):
    """A WNODE buffer is corrupt, truncated or not ``MSiSCSI_MMIPSECStats`` data.

    ``offset``: byte offset in the input of the field at fault; ``field``: its wmistr.h name.
    """

    def __init__(self, message: str, *, offset: int, field: str):
        self.offset = offset
        self.field = field
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:  # keyword-only fields: pickle (e.g. from workers) by hand
        return (_rebuild_error, (type(self), str(self), self.offset, self.field))


def _rebuild_error(cls: type[WnodeFormatError], message: str, offset: int, field: str) -> WnodeFormatError:
    return cls(message, offset=offset, field=field)


class WnodeWarning(UserWarning):
    """WNODEs were skipped: other GUIDs, WNODE_TOO_SMALL nodes, or a truncated tail."""


# code -> (field, message); the message is formatted with offset, value, bound (ints).
_MESSAGES: dict[int, tuple[str, str]] = {
    L.HEADER_TRUNCATED: ("WNODE_HEADER", "only {value} byte(s) left at byte offset {offset}, "
                         "fewer than the {bound}-byte WNODE_HEADER"),
    L.BUFFER_SIZE_PAST_END: ("BufferSize", "the WNODE at byte offset {offset} has BufferSize {value} "
                             "but only {bound} byte(s) remain"),
    L.LINKAGE_PAST_END: ("Linkage", "Linkage {value} at byte offset {offset} points past the end "
                         "of the data ({bound} byte(s) from its WNODE to the end)"),
    L.BUFFER_SIZE_SMALL: ("BufferSize", "the WNODE at byte offset {offset} has BufferSize {value}, "
                          "less than the {bound}-byte WNODE_HEADER"),
    L.NODE_TOO_SHORT: ("BufferSize", "the WNODE at byte offset {offset} has BufferSize {value}, "
                       "less than the {bound} bytes of its fixed fields"),
    L.LINKAGE_OVERLAP: ("Linkage", "Linkage {value} at byte offset {offset} points inside its own "
                        "WNODE (BufferSize {bound}): the chain would overlap or loop"),
    L.LINKAGE_GAP: ("Linkage", "Linkage {value} at byte offset {offset} skips more than the "
                    "8-byte alignment padding after its WNODE (at most {bound}): the bytes in "
                    "between would be dropped unread"),
    L.FLAGS_KIND: ("Flags", "Flags 0x{value:08x} at byte offset {offset} mark neither a "
                   "WNODE_ALL_DATA nor a WNODE_SINGLE_INSTANCE"),
    L.TOO_SMALL: ("SizeNeeded", "a WNODE_TOO_SMALL (SizeNeeded {value} at byte offset {offset}): the "
                  "query buffer was too small and this sample is missing; pass allow_partial=True "
                  "to skip such WNODEs with a warning"),
    L.TIMESTAMP_RANGE: ("TimeStamp", "TimeStamp {value} at byte offset {offset} (100 ns ticks since "
                        "1601) is outside the datetime64[ns] range 1677-09-21..2262-04-11"),
    L.FIXED_SIZE: ("FixedInstanceSize", "FixedInstanceSize {value} at byte offset {offset}; an "
                   "MSiSCSI_MMIPSECStats data block is {bound} bytes"),
    L.INSTANCE_LENGTH: ("LengthInstanceData", "LengthInstanceData {value} at byte offset {offset}; an "
                        "MSiSCSI_MMIPSECStats data block is {bound} bytes"),
    L.SIZE_DATA_BLOCK: ("SizeDataBlock", "SizeDataBlock {value} at byte offset {offset}; an "
                        "MSiSCSI_MMIPSECStats data block is {bound} bytes"),
    L.INSTANCE_COUNT_RANGE: ("InstanceCount", "InstanceCount {value} at byte offset {offset} does not "
                             "fit in its WNODE (at most {bound})"),
    L.DATA_OFFSET_RANGE: ("DataBlockOffset", "DataBlockOffset {value} at byte offset {offset} puts the "
                          "data outside its WNODE (BufferSize {bound}) or inside its header"),
    L.DATA_MISALIGNED: ("DataBlockOffset", "DataBlockOffset {value} at byte offset {offset} is not "
                        "{bound}-byte aligned"),
    L.INSTANCE_DATA_RANGE: ("OffsetInstanceData", "OffsetInstanceData {value} at byte offset {offset} "
                            "puts the data outside its WNODE (BufferSize {bound}) or inside its header"),
    L.INSTANCE_DATA_MISALIGNED: ("OffsetInstanceData", "OffsetInstanceData {value} at byte offset "
                                 "{offset} is not {bound}-byte aligned"),
    L.NAME_OFFSETS_RANGE: ("OffsetInstanceNameOffsets", "OffsetInstanceNameOffsets {value} at byte "
                           "offset {offset} puts the name offsets outside its WNODE (BufferSize "
                           "{bound}) or inside its header"),
    L.INSTANCE_NAME_OFFSET_RANGE: ("OffsetInstanceNameOffsets", "the instance name offset {value} at "
                                   "byte offset {offset} (an entry of OffsetInstanceNameOffsets) is "
                                   "outside its WNODE (BufferSize {bound}) or inside its header"),
    L.NAME_OFFSET_RANGE: ("OffsetInstanceName", "OffsetInstanceName {value} at byte offset {offset} "
                          "is outside its WNODE (BufferSize {bound}) or inside its header"),
    L.NAME_LENGTH_RANGE: ("InstanceName", "the instance name at byte offset {offset} counts {value} "
                          "bytes but only {bound} remain in its WNODE"),
    L.NAME_ODD_LENGTH: ("InstanceName", "the UTF-16 instance name at byte offset {offset} counts an "
                        "odd number of bytes ({value})"),
    L.NODE_LIMIT: ("Linkage", "more WNODEs ({value}) than {bound} at byte offset {offset}: a Linkage loop"),
    L.CAPACITY: ("InstanceCount", "more records than counted ({bound}) at byte offset {offset}: "
                 "the data changed while it was read"),
    L.NAMES_FULL: ("InstanceName", "more distinct instance names than {bound} at byte offset {offset}"),
}


def _error(result: L.WalkResult, what: str) -> WnodeFormatError:
    field, text = _MESSAGES[result.status]
    value = result.err_value
    if result.status == L.TIMESTAMP_RANGE:
        value &= 2**64 - 1  # shown as the unsigned FILETIME
    message = text.format(offset=result.err_offset, value=value, bound=result.err_bound)
    return WnodeFormatError(f"{what}: {message} [field {field}]", offset=result.err_offset, field=field)


# --- reading -------------------------------------------------------------------------------


@contextmanager
def _input_bytes(source: Any) -> Iterator[tuple[npt.NDArray[np.uint8], str]]:
    """A 1-D uint8 view of the source's bytes (a file is memory-mapped) and its name."""
    if isinstance(source, (str, os.PathLike)):
        what = os.fspath(source)
        with open(source, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                yield np.empty(0, dtype=np.uint8), str(what)
                return
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield np.frombuffer(mm, dtype=np.uint8), str(what)
        finally:
            try:
                mm.close()
            except BufferError:  # a view is still referenced (e.g. by a traceback): GC closes it
                pass
        return
    if hasattr(source, "read") and not isinstance(source, mmap.mmap):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("read_wnode() needs a binary file (its read() returned "
                            f"{type(data).__name__})")
        yield np.frombuffer(data, dtype=np.uint8), getattr(source, "name", "file")
        return
    yield _byte_view(source), "read_wnode()"


def _byte_view(data: Any) -> npt.NDArray[np.uint8]:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1 or not data.flags.c_contiguous:
            raise TypeError("read_wnode() takes a 1-D C-contiguous uint8 array, bytes, a path or a file")
        return data
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"read_wnode() takes bytes-like data, a path or a binary file, "
                        f"not {type(data).__name__}") from None
    if not view.c_contiguous:
        raise ValueError("read_wnode() needs a C-contiguous buffer")
    return np.frombuffer(view.cast("B") if view.format != "B" or view.ndim != 1 else view, dtype=np.uint8)


def read_wnode(source: Any, *, allow_partial: bool = False) -> Capture:
    """A ``Capture`` from raw WMI buffers of ``MSiSCSI_MMIPSECStats``.

    ``source``: bytes-like, a path, or a binary file: WNODE buffers back to back, each a
    chain of ``WNODE_ALL_DATA`` (fixed instance size or offset/length pairs) or
    ``WNODE_SINGLE_INSTANCE`` linked by ``Linkage``. A ``Linkage`` may only skip the padding
    that aligns the next WNODE to 8 bytes: ``BufferSize <= Linkage <= align8(BufferSize)``
    (``write_wnode`` writes ``Linkage = BufferSize``, a multiple of 8; WMI pads chained
    WNODEs to 8 bytes); a larger one would drop the bytes in between unread, so it is an
    error (the padding, at most 7 bytes, cannot hold a WNODE and is not read). Data blocks must be
    168 bytes, 8-byte aligned, located by ``DataBlockOffset``/``OffsetInstanceData``. WNODEs
    of another GUID are skipped with a ``WnodeWarning`` giving their count.

    Timestamps: ``ns = (TimeStamp - 116444736000000000) * 100`` as datetime64[ns] (UTC), exact;
    a TimeStamp of 0 ("not stamped") reads as NaT; one outside 1677..2262 is an error.
    Names: counted UTF-16LE, or 8-bit (decoded as Latin-1) under ANSI_INSTANCENAMES,
    trailing NULs stripped.

    Corrupt data raises ``WnodeFormatError`` naming the byte offset and the field. A
    ``WNODE_TOO_SMALL`` (the query buffer was too small: the sample is missing) is an error;
    ``allow_partial=True`` skips such nodes, and a truncated last buffer, with a ``WnodeWarning``.
    """
    with _input_bytes(source) as (buf, what):
        return _read(buf, bool(allow_partial), what)


def _read(buf: npt.NDArray[np.uint8], allow_partial: bool, what: str) -> Capture:
    kernel = _backend.KERNEL
    first = L.WalkResult(*kernel.wnode_count(buf, _GUID, allow_partial))
    if first.status:
        if not (allow_partial and first.status in L.TRUNCATION):
            raise _error(first, what)
        reason = str(_error(first, what)).split(": ", 1)[1]
        warnings.warn(WnodeWarning(
            f"{what}: ignored the last {buf.shape[0] - first.good_end} byte(s), from byte offset "
            f"{first.good_end}, a truncated buffer ({reason})"), stacklevel=3)
        buf = buf[: first.good_end]
    n = first.nrecords
    records = np.empty(n, dtype=RECORD_DTYPE)
    ticks = np.empty(n, dtype=np.int64)
    ids = np.empty(n, dtype=np.int64)
    table = min(n, _FIRST_NAME_TABLE)
    while True:
        names = np.empty((table, 3), dtype=np.int64)
        slots = np.empty(1 << (2 * table).bit_length(), dtype=np.int64)
        result = L.WalkResult(*kernel.wnode_fill(buf, _GUID, allow_partial, records.view(np.uint8).reshape(n, RECORD_SIZE),
                                                 ticks, ids, names, slots))
        if result.status == L.NAMES_FULL and table < n:
            table = n
            continue
        break
    if result.status or result.nrecords != n:
        raise _error(result, what) if result.status else WnodeFormatError(
            f"{what}: the data changed while it was read", offset=0, field="BufferSize")
    codes, instance_names = _instance_names(buf, names[: result.nnames], ids, what)
    _warn_skipped(result, what)
    return Capture(records, _datetimes(ticks), codes, instance_names)


def _instance_names(buf: npt.NDArray[np.uint8], table: npt.NDArray[np.int64], ids: npt.NDArray[np.int64],
                    what: str) -> tuple[npt.NDArray[np.intp], tuple[str, ...]]:
    """Decode each distinct name once; equal texts (e.g. ANSI and UTF-16) share one code."""
    index: dict[str, int] = {}
    lut = np.empty(table.shape[0], dtype=np.intp)
    for k, (off, length, ansi) in enumerate(table.tolist()):
        raw = buf[off: off + length].tobytes()
        try:
            text = raw.decode("latin-1" if ansi else "utf-16-le")
        except UnicodeDecodeError as exc:
            raise WnodeFormatError(
                f"{what}: the instance name at byte offset {off - 2} is not valid UTF-16LE "
                f"({exc.reason} at byte offset {off + exc.start}) [field InstanceName]",
                offset=off - 2, field="InstanceName") from None
        lut[k] = index.setdefault(text, len(index))
    return lut[ids], tuple(index)


def _datetimes(ticks: npt.NDArray[np.int64]) -> npt.NDArray[np.datetime64]:
    """FILETIME ticks (already range-checked by the walker; 0 = unset) as datetime64[ns]."""
    unset = ticks == L.TICKS_UNSET
    ns = np.where(unset, L.FILETIME_UNIX_EPOCH, ticks)
    ns -= L.FILETIME_UNIX_EPOCH
    ns *= 100
    ns[unset] = _NAT
    return ns.view("datetime64[ns]")


def _warn_skipped(result: L.WalkResult, what: str) -> None:
    if result.nforeign:
        warnings.warn(WnodeWarning(
            f"{what}: skipped {result.nforeign} WNODE(s) of other GUIDs (the first at byte offset "
            f"{result.foreign_first}); MSiSCSI_MMIPSECStats is {L.CLASS_GUID}"), stacklevel=4)
    if result.ntoo_small:
        warnings.warn(WnodeWarning(
            f"{what}: skipped {result.ntoo_small} WNODE_TOO_SMALL node(s) (the first at byte offset "
            f"{result.too_small_first}): those samples are missing; the query buffer needed up to "
            f"{result.too_small_needed} bytes"), stacklevel=4)


# --- writing -------------------------------------------------------------------------------

_HEADER = struct.Struct("<IIII")  # BufferSize, ProviderId, Version, Linkage
_TIMESTAMP = struct.Struct("<q")
_LINKAGE = struct.Struct("<I")
_VERSION = 1


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def _encode_name(name: str, ansi: bool) -> bytes:
    if name.endswith("\0"):
        raise ValueError(f"instance name {name!r} ends with NUL, which readers strip")
    try:
        raw = name.encode("latin-1" if ansi else "utf-16-le")
    except UnicodeEncodeError as exc:
        raise ValueError(f"instance name {name!r} cannot be encoded "
                         f"{'as 8-bit ANSI (Latin-1)' if ansi else 'as UTF-16LE'}: {exc.reason}") from None
    if len(raw) > 0xFFFF:
        raise ValueError(f"instance name {name[:20]!r}... is {len(raw)} bytes; the count is a uint16")
    return raw


def _node_template(names: tuple[str, ...], fixed: bool, ansi: bool) -> tuple[bytearray, int]:
    """One WNODE_ALL_DATA without TimeStamp, Linkage and data; and its DataBlockOffset."""
    k = len(names)
    encoded = [_encode_name(s, ansi) for s in names]
    header_end = L.ALL_DATA_MIN_SIZE if fixed else L.ALL_DATA_AND_LENGTH + 8 * k
    offsets_at = _align(header_end, 4)
    pos = offsets_at + 4 * k
    name_at = []
    for raw in encoded:
        pos = _align(pos, 2)
        name_at.append(pos)
        pos += 2 + len(raw)
    block = _align(pos, L.DATA_ALIGNMENT)
    size = block + RECORD_SIZE * k
    node = bytearray(size)
    flags = L.FLAG_ALL_DATA | (L.FLAG_FIXED_INSTANCE_SIZE if fixed else 0) | \
        (L.FLAG_ANSI_INSTANCENAMES if ansi else 0)
    _HEADER.pack_into(node, 0, size, 0, _VERSION, 0)
    node[L.GUID: L.GUID + 16] = L.GUID_BYTES
    struct.pack_into("<I", node, L.FLAGS, flags)
    struct.pack_into("<III", node, L.ALL_DATA_BLOCK_OFFSET, block, k, offsets_at)
    if fixed:
        struct.pack_into("<I", node, L.ALL_FIXED_INSTANCE_SIZE, RECORD_SIZE)
    else:
        for i in range(k):
            struct.pack_into("<II", node, L.ALL_DATA_AND_LENGTH + 8 * i, block + RECORD_SIZE * i, RECORD_SIZE)
    for i, (at, raw) in enumerate(zip(name_at, encoded)):
        struct.pack_into("<I", node, offsets_at + 4 * i, at)
        struct.pack_into("<H", node, at, len(raw))
        node[at + 2: at + 2 + len(raw)] = raw
    return node, block


def _filetime_ticks(timestamps: Any, n: int) -> npt.NDArray[np.int64]:
    """datetime64 -> FILETIME ticks, exact: ``ns // 100 + 116444736000000000``; NaT -> 0."""
    if timestamps is None:
        return np.zeros(n, dtype=np.int64)
    ns = as_datetime_ns(timestamps, n, "timestamps")
    nat = np.isnat(ns)
    i = ns.view(np.int64)
    bad = (i % 100 != 0) & ~nat
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"timestamps[{k}] = {ns[k]} is not a whole number of 100 ns (FILETIME) ticks")
    ticks = i // 100 + L.FILETIME_UNIX_EPOCH
    ticks[nat] = L.TICKS_UNSET
    return ticks


def write_wnode(
    records: Any,
    timestamps: Any,
    instances: Sequence[str] | str,
    *,
    fixed_instance_size: bool = True,
    ansi_names: bool = False,
    nodes_per_buffer: int = 1,
) -> bytes:
    """WNODE_ALL_DATA buffers (wmistr.h) holding ``records``, the inverse of ``read_wnode``.

    Consecutive records with the same timestamp (datetime64, a multiple of 100 ns; NaT or
    ``timestamps=None`` write TimeStamp 0) and distinct ``instances`` form one WNODE, one
    data block per record. ``fixed_instance_size``: FIXED_INSTANCE_SIZE, else offset/length
    pairs. ``ansi_names``: 8-bit (Latin-1) names, else UTF-16LE. ``nodes_per_buffer``: WNODEs
    chained through ``Linkage`` per buffer; buffers follow each other back to back.
    """
    recs = as_record_array(records, "write_wnode()")
    n = recs.shape[0]
    names = [instances] * n if isinstance(instances, str) else list(instances)
    if len(names) != n or not all(isinstance(s, str) for s in names):
        raise ValueError(f"instances must hold one str per record ({n})")
    if isinstance(nodes_per_buffer, bool) or not isinstance(nodes_per_buffer, int) or nodes_per_buffer < 1:
        raise ValueError(f"nodes_per_buffer must be an int >= 1, got {nodes_per_buffer!r}")
    ticks = _filetime_ticks(timestamps, n).tolist()
    data = np.ascontiguousarray(record_bytes_2d(recs)).reshape(-1)

    nodes: list[tuple[int, int]] = []  # (first record, record count)
    start, seen = 0, set[str]()
    for i, name in enumerate(names):
        if i > start and (ticks[i] != ticks[start] or name in seen):
            nodes.append((start, i - start))
            start, seen = i, set[str]()
        seen.add(name)
    if n:
        nodes.append((start, n - start))

    templates: dict[tuple[str, ...], tuple[bytearray, int]] = {}
    layout = []
    total = 0
    for first, count in nodes:
        key = tuple(names[first: first + count])
        if key not in templates:
            templates[key] = _node_template(key, bool(fixed_instance_size), bool(ansi_names))
        layout.append((total, templates[key]))
        total += len(templates[key][0])
    out = bytearray(total)
    view = np.frombuffer(out, dtype=np.uint8)
    for j, ((first, count), (pos, (template, block))) in enumerate(zip(nodes, layout)):
        size = len(template)
        out[pos: pos + size] = template
        _TIMESTAMP.pack_into(out, pos + L.TIMESTAMP, ticks[first])
        if (j + 1) % nodes_per_buffer and j + 1 < len(nodes):
            _LINKAGE.pack_into(out, pos + L.LINKAGE, size)
        view[pos + block: pos + block + count * RECORD_SIZE] = \
            data[first * RECORD_SIZE: (first + count) * RECORD_SIZE]
    del view
    return bytes(out)
