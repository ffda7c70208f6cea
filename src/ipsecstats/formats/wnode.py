"""WNODE buffers (``WmiQueryAllData`` / ``IoWMIQueryAllData``) of ``MSiSCSI_MMIPSECStats``.

The whole format in one module: the sniff (``accept``, ``ambiguity``), the streaming
``WnodeReader``, ``read_wnode`` (the stream's chunks in one ``Capture``), ``write_wnode``,
and the errors and warnings.

A capture file holds WNODE buffers (wmistr.h, offsets in ``_wnode_layout``) back to back,
each starting with its ``BufferSize``; a buffer may chain further WNODEs through
``Linkage`` (offset from the current WNODE, 0 = last), and the next buffer starts right
after the last WNODE of the chain. Every data block becomes one record, stamped with its
WNODE's ``TimeStamp`` and named by its instance name.

The walk over the headers and the copy of the data blocks run in the kernel
(``wnode_fill``, Cython or the pure twin); this module reads the source through a reused
window, turns the kernel's (code, offset, value, bound) into one message with an absolute
byte offset and decodes the few distinct instance names of each window.
"""

from __future__ import annotations

import os
import secrets
import struct
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _backend
from .. import _wnode_layout as L
from .._capture import Capture, NameTable, as_datetime_ns
from .._checks import check_chunk_records
from .._decode import as_record_array, record_bytes_2d
from .._schema import RECORD_DTYPE, RECORD_SIZE
from .._source import ByteSource
from ._base import Format

__all__ = ["FORMAT", "WnodeFormatError", "WnodeReader", "WnodeWarning", "accept", "ambiguity", "read_wnode",
           "write_wnode"]

#: Records per chunk (2.75 MB), at most.
CHUNK_RECORDS = 16384
#: The window the walk reads into (reused): grown only while one buffer chain does not fit.
WINDOW_BYTES = 4 << 20
_KNOWN_FLAGS = 0x0001FFFF  # wmistr.h WNODE_FLAG_* bits up to PDO_INSTANCE_NAMES
_NAT = np.iinfo(np.int64).min
_GUID = np.frombuffer(L.GUID_BYTES, dtype=np.uint8)
_FIRST_NAME_TABLE = 256  # distinct names per window expected; more grow the table
_SEED_TRIES = 3  # fresh hash keys for a name-table lookup that probed too long, then the twin


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
    L.NAMES_OVERLAP: ("InstanceName", "the instance name at byte offset {offset} brings the name bytes read "
                      "in its WNODE to {value}, more than its BufferSize {bound}: the names overlap"),
    L.NAMES_PROBES: ("InstanceName", "the instance name at byte offset {offset} took {value} probes of the "
                     "name table (at most {bound})"),
}


def _error(result: L.WalkResult, what: str, shift: int) -> WnodeFormatError:
    """The error of a walk over bytes that start at byte offset ``shift`` of the source."""
    field, text = _MESSAGES[result.status]
    value = result.err_value
    if result.status == L.TIMESTAMP_RANGE:
        value &= 2**64 - 1  # shown as the unsigned FILETIME
    offset = shift + result.err_offset
    message = text.format(offset=offset, value=value, bound=result.err_bound)
    return WnodeFormatError(f"{what}: {message} [field {field}]", offset=offset, field=field)



# --- sniffing --------------------------------------------------------------------------------


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


# --- reading ---------------------------------------------------------------------------------


class _Skipped:
    """WNODEs skipped over the whole stream: other GUIDs and WNODE_TOO_SMALL (absolute offsets)."""

    def __init__(self) -> None:
        self.foreign = self.too_small = self.needed = 0
        self.foreign_first = self.too_small_first = -1

    def add(self, result: L.WalkResult, shift: int) -> None:
        if result.nforeign:
            if self.foreign_first < 0:
                self.foreign_first = shift + result.foreign_first
            self.foreign += result.nforeign
        if result.ntoo_small:
            if self.too_small_first < 0:
                self.too_small_first = shift + result.too_small_first
            self.too_small += result.ntoo_small
            self.needed = max(self.needed, result.too_small_needed)

    def warn(self, what: str, stacklevel: int) -> None:
        if self.foreign:
            warnings.warn(WnodeWarning(
                f"{what}: skipped {self.foreign} WNODE(s) of other GUIDs (the first at byte offset "
                f"{self.foreign_first}); MSiSCSI_MMIPSECStats is {L.CLASS_GUID}"), stacklevel=stacklevel + 1)
        if self.too_small:
            warnings.warn(WnodeWarning(
                f"{what}: skipped {self.too_small} WNODE_TOO_SMALL node(s) (the first at byte offset "
                f"{self.too_small_first}): those samples are missing; the query buffer needed up to "
                f"{self.needed} bytes"), stacklevel=stacklevel + 1)


class WnodeReader:
    """Chunks of the records of WNODE buffers, stamped and named (see ``read_wnode``).

    The source is read into one reused window (``WINDOW_BYTES``); the kernel walks the
    complete buffers in it, the unconsumed tail moves to the front and the window is
    refilled. A buffer chain larger than the window grows it (doubling, never past what
    a regular file still holds) until the chain fits; the window shrinks back after. So
    memory depends on the largest buffer chain, never on the size of the input. Names
    get codes from one ``NameTable``: stable across chunks, and every chunk carries the
    table as it stood. Error offsets are positions in the source.
    """

    format = "wnode"
    stride = None
    has_timestamps = True
    has_hosts = False

    def __init__(self, source: ByteSource, *, chunk_records: int | None = None, allow_partial: bool = False):
        self.source = source
        self.name = source.name
        self.chunk_records = check_chunk_records(CHUNK_RECORDS if chunk_records is None else chunk_records)
        self.allow_partial = bool(allow_partial)
        self.table = NameTable()
        self._window = WINDOW_BYTES  # private knob: tests use tiny windows to split buffers everywhere
        self._stacklevel = 2  # of the warnings, from __iter__: its consumer

    def __iter__(self) -> Iterator[Capture]:
        src, what, kernel = self.source, self.name, _backend.KERNEL
        window = np.empty(max(int(self._window), 1), dtype=np.uint8)
        base = src.start  # the source position of window[0]
        fill, eof, first = 0, False, 0
        skipped = _Skipped()
        state = _FillState(self.chunk_records)
        try:
            while True:
                if not eof:
                    got = src.readinto(window[fill:])
                    fill += got
                    eof = fill < window.shape[0]
                pos = 0
                while pos < fill:
                    view = window[pos:fill]
                    result, chunk = state.fill(kernel, view, self.allow_partial)
                    if chunk is not None:
                        for part in self._chunks(chunk, view, base + pos, first):
                            first += len(part)
                            yield part
                    if result.status == L.OK or result.status in L.RESOURCE or result.status in L.TRUNCATION:
                        skipped.add(result, base + pos)
                    if result.status == L.OK:
                        pos = fill
                    elif result.status in L.RESOURCE:
                        pos += result.good_end
                    elif result.status in L.TRUNCATION:
                        pos += result.good_end
                        if eof:
                            self._truncated(result, base, pos, fill)
                            pos = fill
                        break
                    else:
                        raise _error(result, what, base + pos)
                if eof:
                    break
                # keep the unconsumed tail (an incomplete buffer chain) and read on
                tail = fill - pos
                if pos:
                    window[:tail] = window[pos:fill]
                    base += pos
                    fill = tail
                if tail == window.shape[0]:  # one chain fills the window: grow it
                    size = 2 * window.shape[0]
                    if src.size is not None:
                        size = max(min(size, src.size - base + 1), window.shape[0] + 1)
                    window = _resized(window, size, fill)
                elif window.shape[0] > self._window and fill <= self._window:
                    window = _resized(window, self._window, fill)
        finally:
            src.close()
        skipped.warn(what, self._stacklevel)

    def _truncated(self, result: L.WalkResult, base: int, pos: int, fill: int) -> None:
        """The source ended inside a buffer chain that starts at window[pos]."""
        error = _error(result, self.name, base + pos - result.good_end)
        if not self.allow_partial:
            raise error
        reason = str(error).split(": ", 1)[1]
        warnings.warn(WnodeWarning(
            f"{self.name}: ignored the last {fill - pos} byte(s), from byte offset {base + pos}, "
            f"a truncated buffer ({reason})"), stacklevel=self._stacklevel + 1)

    def _chunks(self, chunk: _Filled, view: npt.NDArray[np.uint8], shift: int, first: int) -> Iterator[Capture]:
        """The records of one kernel call as chunks of at most ``chunk_records``."""
        lut = np.empty(chunk.names.shape[0], dtype=np.intp)
        for k, (off, length, ansi) in enumerate(chunk.names.tolist()):
            raw = view[off: off + length].tobytes()
            try:
                text = raw.decode("latin-1" if ansi else "utf-16-le")
            except UnicodeDecodeError as exc:
                at = shift + off - 2
                raise WnodeFormatError(
                    f"{self.name}: the instance name at byte offset {at} is not valid UTF-16LE "
                    f"({exc.reason} at byte offset {shift + off + exc.start}) [field InstanceName]",
                    offset=at, field="InstanceName") from None
            lut[k] = self.table.code(text)
        names = self.table.names
        codes = lut[chunk.ids]
        times = _datetimes(chunk.ticks)
        n, step = chunk.records.shape[0], self.chunk_records
        if n <= step:
            yield Capture(chunk.records, times, codes, names, first)
            return
        for lo in range(0, n, step):
            hi = min(lo + step, n)
            yield Capture(chunk.records[lo:hi], times[lo:hi], codes[lo:hi], names, first + lo)

    def close(self) -> None:
        self.source.close()


class _Filled:
    """What one kernel call wrote: records, ticks, name ids, and its distinct names
    (offset in the walked bytes, byte count, ansi)."""

    __slots__ = ("ids", "names", "records", "ticks")

    def __init__(self, records: npt.NDArray[np.void], ticks: npt.NDArray[np.int64], ids: npt.NDArray[np.int64],
                 names: npt.NDArray[np.int64]):
        self.records, self.ticks, self.ids, self.names = records, ticks, ids, names


class _FillState:
    """Output sizes that grow when one buffer chain needs more, and the hash key."""

    def __init__(self, chunk_records: int):
        self.cap = chunk_records
        self.table = _FIRST_NAME_TABLE

    def fill(self, kernel: Any, view: npt.NDArray[np.uint8], allow_partial: bool
             ) -> tuple[L.WalkResult, _Filled | None]:
        """Walk ``view`` with ``wnode_fill`` from its start: the result (statuses in
        ``RESOURCE`` are retried here until a first buffer chain fits) and its records."""
        cap = min(self.cap, view.shape[0] // 8 + 1)  # a record takes at least 8 bytes (a pair)
        tries = 0
        while True:
            table = min(self.table, cap)
            records = np.empty(cap, dtype=RECORD_DTYPE)
            ticks = np.empty(cap, dtype=np.int64)
            ids = np.empty(cap, dtype=np.int64)
            names = np.empty((table, 3), dtype=np.int64)
            slots = np.empty(1 << (2 * table).bit_length(), dtype=np.int64)
            walker = kernel if tries < _SEED_TRIES else _backend._slow  # the twin: a dict, linear
            result = L.WalkResult(*walker.wnode_fill(view, _GUID, allow_partial,
                                                     records.view(np.uint8).reshape(cap, RECORD_SIZE),
                                                     ticks, ids, names, slots, secrets.randbits(64)))
            if result.status not in L.RESOURCE or result.good_end:
                break
            if result.status == L.CAPACITY:
                cap *= 2
            elif result.status == L.NAMES_FULL:
                self.table = 2 * table
            else:
                tries += 1
        n = result.nrecords
        if not n:
            return result, None
        if n < cap:
            records = records[:n].copy() if n <= cap // 2 else records[:n]
        return result, _Filled(records, ticks[:n], ids[:n], names[: result.nnames])


def _resized(window: npt.NDArray[np.uint8], size: int, fill: int) -> npt.NDArray[np.uint8]:
    out = np.empty(size, dtype=np.uint8)
    out[:fill] = window[:fill]
    return out



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
    src = _byte_source(source)
    reader = WnodeReader(src, allow_partial=allow_partial)
    reader._stacklevel = 3  # warnings point at read_wnode's caller
    chunks = list(reader)
    if not chunks:
        return Capture(np.empty(0, RECORD_DTYPE), np.empty(0, "datetime64[ns]"), np.empty(0, np.intp), ())
    return _join(chunks)


def _join(chunks: list[Capture]) -> Capture:
    """``concat`` of the chunks of one stream into fresh arrays, records copied as bytes (a
    structured copy is several times slower)."""
    n = sum(len(c) for c in chunks)
    records = np.empty(n, dtype=RECORD_DTYPE)
    rows = records.view(np.uint8).reshape(n, RECORD_SIZE)
    times = np.empty(n, dtype="datetime64[ns]")
    codes = np.empty(n, dtype=np.intp)
    pos = 0
    for c in chunks:
        k = len(c)
        rows[pos: pos + k] = c.records.view(np.uint8).reshape(k, RECORD_SIZE)
        times[pos: pos + k] = c.timestamps
        codes[pos: pos + k] = c.instance_codes
        pos += k
    return Capture(records, times, codes, chunks[-1].instance_names)


def _byte_source(source: Any) -> ByteSource:
    """A ``ByteSource`` over what ``read_wnode`` takes: a path, a binary file, bytes-like data."""
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim != 1 or not source.flags.c_contiguous:
            raise TypeError("read_wnode() takes a 1-D C-contiguous uint8 array, bytes, a path or a file")
    elif not isinstance(source, (str, os.PathLike)) and not hasattr(source, "read") \
            and not hasattr(source, "readinto"):
        try:
            source = memoryview(source)
        except TypeError:
            raise TypeError(f"read_wnode() takes bytes-like data, a path or a binary file, "
                            f"not {type(source).__name__}") from None
    return ByteSource(source, "read_wnode()")



def _datetimes(ticks: npt.NDArray[np.int64]) -> npt.NDArray[np.datetime64]:
    """FILETIME ticks (already range-checked by the walker; 0 = unset) as datetime64[ns]."""
    unset = ticks == L.TICKS_UNSET
    ns = np.where(unset, L.FILETIME_UNIX_EPOCH, ticks)
    ns -= L.FILETIME_UNIX_EPOCH
    ns *= 100
    ns[unset] = _NAT
    return ns.view("datetime64[ns]")



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


FORMAT = Format("wnode", "WNODE buffers", accept, WnodeReader)
