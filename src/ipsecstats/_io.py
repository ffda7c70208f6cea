"""Captured logs on disk: ``read`` them whole, or stream them chunk by chunk.

A log is contiguous 168-byte records (one per sample, or one per instance per
sample, interleaved). ``read`` returns the records of a file; ``iter_records``,
``iter_deltas`` and ``iter_rates`` yield consecutive chunks whose concatenation
equals ``read``, ``deltas`` and ``rates`` on the whole file, exactly, for every
chunk size and stride: the last ``stride`` records of each chunk are carried into
the next (``deltas(..., previous=...)``).

Memory stays bounded: an iterator holds one input window (a memory map of at most
``chunk_records`` records, or a 4096-record ``readinto`` buffer) and the output
chunks the caller still references. Output buffers are sized by what the source
holds: for a regular file, never more than the records left in it (a huge
``chunk_records`` on a small file costs nothing); for a stream, they start at
``DEFAULT_CHUNK_RECORDS`` and double (with a copy) while the data keeps coming.

Chunks are the caller's to keep: a yielded array is never overwritten. Output
memory is reused (no page faults of fresh memory) only with proof that nothing
else reaches it: a numpy-owned buffer when its owner's reference count says no
chunk or view of it is left, a cache-backed one (16 MB and more) only through the
mapping cache of ``_alloc``, which proves that no buffer export is left on it. A
caller that keeps every chunk, or any buffer over one, simply gets fresh arrays.

A source that ends in a partial record (a live capture caught mid-write) is
reported after the whole records have been yielded: ``TruncatedRecordError``, or
``PartialRecordWarning`` with ``allow_partial=True``; the partial bytes are never
decoded.
"""

from __future__ import annotations

import io
import mmap as _mmap
import os
import platform
import stat
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, Union

import numpy as np
import numpy.typing as npt

from ._alloc import aligned_empty
from ._deltas import _check_stride, _seconds_per_row, delta_dtype, deltas, divide_counters, rate_dtype, resolve_kinds
from ._rules import check_policy
from ._checks import check_chunk_records, check_int
from ._errors import CounterResetError, report_partial_record
from ._schema import NFIELDS, RECORD_DTYPE, RECORD_SIZE
from ._source import fill_view

__all__ = ["iter_deltas", "iter_rates", "iter_records", "read"]

Source = Union[str, "os.PathLike[str]", IO[bytes]]

#: Records per ``readinto`` call when streaming a file object: 688 KB stays in the
#: cache between the read and the delta kernel (see PERFORMANCE.md).
READ_BLOCK_RECORDS = 4096
DEFAULT_CHUNK_RECORDS = 65536

# Recycling output buffers relies on CPython reference counts (with the GIL).
_CAN_RECYCLE = platform.python_implementation() == "CPython" and getattr(sys, "_is_gil_enabled", lambda: True)()


# --------------------------------------------------------------------------- sources


class _Input:
    """A source: a path (opened by ``open``, closed by ``close``) or a caller's file object.

    Construction checks the argument (and that a path exists) at once; the file itself is
    opened by ``open``, inside the generator that reads it, so an iterator that is never
    started holds no open file.
    """

    def __init__(self, source: Any, what: str):
        self.file: Any = None
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            self.name = os.fsdecode(path)
            self.path: str | None = self.name
            self.owned = True
            self.start = 0
            os.stat(self.name)  # a missing file fails at the call, not at the first chunk
            return
        if isinstance(source, (bytes, bytearray, memoryview)):
            raise TypeError(f"{what} takes a path or a binary file object; to decode bytes in memory use decode()")
        if isinstance(source, io.TextIOBase):
            raise TypeError(f"{what} needs a binary file object: open the file with mode 'rb'")
        if not (hasattr(source, "readinto") or hasattr(source, "read")):
            raise TypeError(f"{what} takes a path or a binary file object, not {type(source).__name__}")
        name = getattr(source, "name", None)
        self.name = name if isinstance(name, str) else f"<{type(source).__name__}>"
        self.path = None
        self.file = source
        self.owned = False
        try:  # where the records begin: error offsets are positions in the file
            self.start = int(source.tell())
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self.start = 0

    def open(self) -> _Input:
        if self.file is None:
            assert self.path is not None
            self.file = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        return self

    def close(self) -> None:
        if self.owned and self.file is not None:
            self.file.close()
            self.file = None

    def total_records(self) -> int | None:
        """The whole records a regular file holds from where reading began, now; None for a stream."""
        try:
            st = os.fstat(self.file.fileno())
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return max(st.st_size - self.start, 0) // RECORD_SIZE

    def regular_fd(self) -> int | None:
        """The file descriptor when this is a regular file opened here (mappable), else None."""
        if not self.owned:
            return None
        fd = self.file.fileno()
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None

    def check_not_shrunk(self) -> None:
        """Raise ``OSError`` if a regular file is now shorter than the bytes already read from it.

        Called at a short read: a file truncated by another process (logrotate's
        ``copytruncate``) is an error, not a silent early end.
        """
        try:
            fd = self.file.fileno()
            pos = self.file.tell()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return  # a pipe or an in-memory stream: nothing to compare with
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_size < pos:
            raise OSError(f"{self.name}: the file shrank to {st.st_size} bytes while it was read (at byte offset {pos})")

    def fill(self, view: memoryview) -> int:
        """Read into ``view`` until it is full or the source ends; the number of bytes read."""
        return fill_view(self.file, view, self.name)


def _report_tail(src: _Input, records: int, trailing: int, allow_partial: bool) -> None:
    """A partial record at the end: raise, or warn when ``allow_partial`` (the shared rule)."""
    report_partial_record(records, trailing, allow_partial, src.name, start=src.start)


def _map_records(fd: int, offset: int, count: int, populate: bool) -> npt.NDArray[np.void]:
    """A read-only array of ``count`` records at byte ``offset`` of ``fd``, memory-mapped.

    ``populate``: map every page up front (Linux ``MAP_POPULATE``), one call instead of a
    page fault per page; right for a window about to be read in full.
    """
    start = offset - offset % _mmap.ALLOCATIONGRANULARITY
    length = offset + count * RECORD_SIZE - start
    if populate and hasattr(_mmap, "MAP_POPULATE"):
        mm = _mmap.mmap(fd, length, flags=_mmap.MAP_SHARED | _mmap.MAP_POPULATE, prot=_mmap.PROT_READ, offset=start)
    else:
        mm = _mmap.mmap(fd, length, access=_mmap.ACCESS_READ, offset=start)
    raw = np.frombuffer(mm, dtype=np.uint8, count=count * RECORD_SIZE, offset=offset - start)
    return raw.view(RECORD_DTYPE)


class _Budget:
    """How many records the consumer can take in its current chunk.

    The mapped reader sizes each window by it, so a window never outlives the chunk it
    fills: once a chunk is handed to the caller no mapping is read again (a window of a
    file truncated meanwhile would raise SIGBUS).
    """

    __slots__ = ("records",)

    def __init__(self, records: int):
        self.records = records


def _mapped_blocks(src: _Input, fd: int, budget: _Budget, allow_partial: bool) -> Iterator[npt.NDArray[np.void]]:
    """Windows of at most ``budget.records`` records, mapped one at a time (valid until the next).

    The size is re-read before every window, so records appended meanwhile are read too.
    """
    pos = 0
    while True:
        size = os.fstat(fd).st_size
        if size < pos:
            raise OSError(f"{src.name}: the file shrank to {size} bytes while it was read (at byte offset {pos})")
        count = min((size - pos) // RECORD_SIZE, budget.records)
        if count == 0:
            _report_tail(src, pos // RECORD_SIZE, size - pos, allow_partial)
            return
        yield _map_records(fd, pos, count, True)  # unmapped as soon as the consumer drops it
        pos += count * RECORD_SIZE


def _read_blocks(src: _Input, block_records: int, allow_partial: bool) -> Iterator[npt.NDArray[np.void]]:
    """Blocks of at most ``block_records`` records read into one reused buffer (valid until the next)."""
    buffer = np.empty(block_records, dtype=RECORD_DTYPE)
    view = buffer.view(np.uint8).data
    records = 0
    while True:
        got = src.fill(view)
        whole = got // RECORD_SIZE
        if whole:
            yield buffer[:whole]
            records += whole
        if got < len(view):
            src.check_not_shrunk()
            _report_tail(src, records, got - whole * RECORD_SIZE, allow_partial)
            return


def _blocks(src: _Input, chunk_records: int, allow_partial: bool, use_mmap: bool,
            budget: _Budget | None = None) -> Iterator[npt.NDArray[np.void]]:
    """Record blocks of a source: mapped windows of a regular file, else ``readinto`` blocks.

    Chunks smaller than ``READ_BLOCK_RECORDS`` are read with ``readinto``: one mapping per
    small chunk would cost more than the copy it saves.
    """
    fd = src.regular_fd() if use_mmap and chunk_records >= READ_BLOCK_RECORDS else None
    if fd is not None:
        return _mapped_blocks(src, fd, budget or _Budget(chunk_records), allow_partial)
    return _read_blocks(src, min(chunk_records, READ_BLOCK_RECORDS), allow_partial)


def _counted(blocks: Iterator[npt.NDArray[np.void]], seen: list[int]) -> Iterator[npt.NDArray[np.void]]:
    """Pass the blocks through, adding their record counts to ``seen[0]``."""
    for block in blocks:
        seen[0] += block.shape[0]
        yield block
        del block


# --------------------------------------------------------------------------- output memory


class _Recycler:
    """Hands out output arrays of at least ``rows`` rows; reuses one only when nothing else reaches it.

    Only buffers that numpy owns are pooled: every view a caller makes of a yielded chunk,
    and every buffer exported from one, keeps a reference to the buffer's owner (the
    array that owns the memory, each pooled array's ``base``), so its reference count
    says whether any part of it is still held. Cache-backed buffers (``_alloc``) are not
    pooled: a memoryview over their mapping reaches the memory without the owner, so
    only the cache, which proves that no export is left, may reuse them. Two buffers
    alternate, because a ``for`` loop still holds the previous chunk while it asks for
    the next.
    """

    def __init__(self, make: Callable[[int], tuple[npt.NDArray[Any], ...]], keep: int = 2):
        self._make = make
        self._keep = keep
        self._pool: list[tuple[npt.NDArray[Any], ...]] = []

    @staticmethod
    def _free(arrays: tuple[npt.NDArray[Any], ...]) -> bool:
        # 2 references: the pooled array's ``base`` pointer and getrefcount's argument.
        return all(sys.getrefcount(a.base) == 2 for a in arrays)

    @staticmethod
    def _numpy_owned(arrays: tuple[npt.NDArray[Any], ...]) -> bool:
        return all(isinstance(a.base, np.ndarray) and a.base.base is None for a in arrays)

    def get(self, rows: int) -> tuple[npt.NDArray[Any], ...]:
        if _CAN_RECYCLE:
            for arrays in self._pool:
                if arrays[0].shape[0] >= rows and self._free(arrays):
                    return arrays
        arrays = self._make(rows)
        if _CAN_RECYCLE and self._numpy_owned(arrays):
            if len(self._pool) >= self._keep:  # a free one too small, else the oldest: the caller's now
                free = [i for i, pooled in enumerate(self._pool) if self._free(pooled)]
                self._pool.pop(free[0] if free else 0)
            self._pool.append(arrays)
        return arrays


def _first_rows(chunk_rows: int, block_rows: int, left: int | None, done: int) -> int:
    """The rows to allocate for a new output chunk that starts with a block of ``block_rows``.

    ``left``: the rows the source still holds (a regular file), or None for a stream,
    which gets ``DEFAULT_CHUNK_RECORDS`` or as many rows as it has already given
    (``done``), whichever is more: memory never exceeds twice what arrived.
    """
    hint = max(DEFAULT_CHUNK_RECORDS, done) if left is None else left
    return min(chunk_rows, max(block_rows, hint, 1))


def _grown_rows(chunk_rows: int, capacity: int, needed: int) -> int:
    """The next capacity of an output chunk that must hold ``needed`` rows: at least double
    (a file that keeps growing costs a copy of each row at most once on average)."""
    return min(chunk_rows, max(needed, 2 * capacity))


# --------------------------------------------------------------------------- carrying across chunks


def _pieces(blocks: Iterator[npt.NDArray[np.void]], max_records: int) -> Iterator[npt.NDArray[np.void]]:
    """The blocks cut into pieces of at most ``max_records`` records."""
    for block in blocks:
        if block.shape[0] <= max_records:
            yield block
        else:
            for i in range(0, block.shape[0], max_records):
                yield block[i : i + max_records]
        del block  # let a mapped window go before the next one is mapped


def _paired_blocks(
    blocks: Iterator[npt.NDArray[np.void]], stride: int, max_records: int, budget: _Budget | None = None,
) -> Iterator[tuple[npt.NDArray[np.void], npt.NDArray[np.void]]]:
    """``(block, previous)`` pairs: ``previous`` holds the ``stride`` records before ``block``.

    The first ``stride`` records of the source only fill ``previous``; every later record
    appears in exactly one block (of at most ``max_records``), in order. Both arrays are
    valid until the next step. The next ``previous`` is copied out of the block before it
    is handed on, so a block is never read again once the consumer has moved on.
    ``budget``: the consumer's room in rows; the first blocks also ask for the records
    that only fill ``previous``.
    """
    carry = np.empty(stride, dtype=RECORD_DTYPE)
    following = np.empty(stride, dtype=RECORD_DTYPE)
    have = 0
    room = budget.records if budget is not None else 0
    if budget is not None:
        budget.records = room + stride
    for block in _pieces(blocks, max_records):
        if have < stride:
            take = min(stride - have, block.shape[0])
            carry[have : have + take] = block[:take]
            have += take
            block = block[take:]
            if block.shape[0] == 0:
                if budget is not None:
                    budget.records = room + stride - have
                continue
        m = block.shape[0]
        if m >= stride:
            following[:] = block[m - stride :]
        else:
            following[: stride - m] = carry[m:]
            following[stride - m :] = block
        yield block, carry
        del block
        carry, following = following, carry


def _delta_chunks(
    pairs: Iterator[tuple[npt.NDArray[np.void], npt.NDArray[np.void]]],
    *,
    chunk_rows: int,
    stride: int,
    on_decrease: str,
    kinds: Mapping[str, str] | None,
    return_resets: bool,
    outputs: Callable[[int], tuple[npt.NDArray[Any], ...]],
    rows_left: Callable[[int], int | None] = lambda done: None,
    budget: _Budget | None = None,
) -> Iterator[tuple[int, npt.NDArray[np.void], npt.NDArray[np.bool_] | None]]:
    """``(first_row, values, resets)`` for consecutive chunks of at most ``chunk_rows`` rows.

    ``outputs(rows)`` gives ``(values[, resets])`` arrays of at least ``rows`` rows to fill,
    sized by ``_first_rows`` from ``rows_left(rows_done)`` (what the source still holds)
    and grown by ``_grown_rows`` when more rows arrive than that.
    Row numbers are global: row ``r`` compares record ``r + stride`` with record ``r``.
    A full chunk is handed out before the next block is read; ``budget`` tells the reader
    how many rows still fit.
    """
    values: Any = None
    resets: Any = None
    filled = 0
    first_row = 0
    while True:
        if budget is not None:
            budget.records = chunk_rows - filled
        try:
            block, previous = next(pairs)
        except StopIteration:
            break
        except Exception:
            # the source failed (a partial tail, a file that shrank): hand out what was read first
            if values is not None and filled:
                yield first_row, values[:filled], None if resets is None else resets[:filled]
            raise
        m = block.shape[0]
        if values is not None and filled + m > chunk_rows:
            yield first_row, values[:filled], None if resets is None else resets[:filled]
            first_row += filled
            values = resets = None
            filled = 0
        if values is None or filled + m > values.shape[0]:
            left = rows_left(first_row)
            rows = (_first_rows(chunk_rows, m, left, first_row) if values is None
                    else _grown_rows(chunk_rows, values.shape[0], max(filled + m, left or 0)))
            arrays = outputs(rows)
            if values is not None:  # grown: the rows so far move to the larger buffer
                arrays[0][:filled] = values[:filled]
                if return_resets:
                    arrays[1][:filled] = resets[:filled]
            values = arrays[0]
            resets = arrays[1] if return_resets else None
            del arrays
        out: Any = values[filled : filled + m]
        if return_resets:
            out = (out, resets[filled : filled + m])
        try:
            deltas(block, stride=stride, on_decrease=on_decrease, previous=previous, kinds=kinds,  # type: ignore[arg-type]
                   return_resets=return_resets, out=out)
        except CounterResetError as exc:
            raise exc.shifted(first_row + filled) from None
        del out, block, previous
        filled += m
        if filled == chunk_rows:  # a fresh view, never the pooled array itself (see _Recycler)
            yield first_row, values[:filled], None if resets is None else resets[:filled]
            first_row += filled
            values = resets = None
            filled = 0
    if values is not None and filled:
        yield first_row, values[:filled], None if resets is None else resets[:filled]


def _rows_left(src: _Input, stride: int, enough: int) -> Callable[[int], int | None]:
    """``rows_left(done)``: the rows (records less ``stride``) a regular file holds after ``done``; None for a stream.

    A file only grows (a shrink is an error of its own), so a size already seen is a lower
    bound: the file is asked again only when that bound is below ``enough`` rows.
    """
    seen: list[int | None] = []

    def left(done: int) -> int | None:
        if seen and (seen[0] is None or seen[0] - stride - done >= enough):
            return None if seen[0] is None else seen[0] - stride - done
        total = src.total_records()
        seen[:] = [total]
        return None if total is None else total - stride - done
    return left


# --------------------------------------------------------------------------- argument checks


def _check_policy_and_stride(on_decrease: Any, stride: Any) -> int:
    # deltas() validates these too, but only when the first chunk arrives; fail at the call.
    check_policy(on_decrease)
    return _check_stride(stride)


# --------------------------------------------------------------------------- public API


def read(
    source: Source,
    *,
    start: int = 0,
    count: int | None = None,
    mmap: bool = False,
    allow_partial: bool = False,
) -> npt.NDArray[np.void]:
    """Records ``start`` to ``start + count`` of a log (all the rest with ``count=None``).

    ``source`` is a path or a binary file object (read from its current position).
    The result is an owned, writeable ``RECORD_DTYPE`` array; ``mmap=True`` instead
    returns a read-only array mapped onto the file, without reading it in (a path or
    a file object with a real file descriptor). A partial record at the end of the file
    raises ``TruncatedRecordError`` when the requested range reaches it; with
    ``allow_partial=True`` the whole records are returned and a ``PartialRecordWarning``
    says what was left. Asking for records past the end raises ``ValueError``.
    """
    start = check_int("start", start, 0)
    if count is not None:
        count = check_int("count", count, 0)
    src = _Input(source, "read()")
    try:
        return _read_range(src.open(), start, count, mmap, allow_partial)
    finally:
        src.close()


def _read_range(src: _Input, start: int, count: int | None, use_mmap: bool, allow_partial: bool) -> npt.NDArray[np.void]:
    f = src.file
    seekable = bool(getattr(f, "seekable", lambda: False)())
    data: bytes | None = None
    if seekable:
        base = f.tell()
        end = f.seek(0, os.SEEK_END)
        available = max(end - base, 0)
    else:
        if use_mmap:
            raise ValueError(f"{src.name}: mmap=True needs a file on disk, not a stream")
        chunks = []
        while True:
            piece = f.read(1 << 24)
            if not piece:
                break
            chunks.append(piece)
        data = b"".join(chunks)
        base, available = 0, len(data)
    whole, trailing = divmod(available, RECORD_SIZE)
    if start > whole:
        raise ValueError(f"{src.name}: start={start} is past the end ({whole} whole records)")
    if count is None:
        count = whole - start
        _report_tail(src, whole, trailing, allow_partial)
    elif start + count > whole:
        tail = f" and {trailing} trailing byte(s)" if trailing else ""
        raise ValueError(
            f"{src.name}: records {start} to {start + count} requested, but it holds {whole} whole records{tail}"
        )
    offset = base + start * RECORD_SIZE
    if use_mmap:
        try:
            fd = f.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            raise ValueError(f"{src.name}: mmap=True needs a file with a file descriptor") from None
        if count == 0:
            records = np.empty(0, dtype=RECORD_DTYPE)
            records.flags.writeable = False
        else:
            records = _map_records(fd, offset, count, False)
        f.seek(offset + count * RECORD_SIZE)
        return records
    records = np.empty(count, dtype=RECORD_DTYPE)
    if data is not None:
        np.copyto(records.view(np.uint8), np.frombuffer(data, np.uint8, count * RECORD_SIZE, offset))
        return records
    f.seek(offset)
    got = src.fill(records.view(np.uint8).data)
    if got != count * RECORD_SIZE:
        raise OSError(f"{src.name}: the file shrank while it was read: {got} of {count * RECORD_SIZE} bytes at byte offset {offset}")
    return records


def iter_records(
    source: Source,
    *,
    chunk_records: int = DEFAULT_CHUNK_RECORDS,
    allow_partial: bool = False,
) -> Iterator[npt.NDArray[np.void]]:
    """Consecutive chunks of at most ``chunk_records`` records; together they equal ``read``.

    Each chunk is an owned, writeable array that is never overwritten. A path is opened
    and closed by the iterator; a file object is read from its current position and left
    open. A trailing partial record is reported after the last chunk (see ``read``).
    """
    chunk_records = check_chunk_records(chunk_records)
    src = _Input(source, "iter_records()")
    return _iter_records(src, chunk_records, allow_partial)


def _iter_records(src: _Input, chunk_records: int, allow_partial: bool) -> Iterator[npt.NDArray[np.void]]:
    recycler = _Recycler(lambda rows: (aligned_empty(rows, RECORD_DTYPE),))
    left = _rows_left(src, 0, chunk_records)
    try:
        src.open()
        records = 0
        while True:
            buffer = recycler.get(_first_rows(chunk_records, 0, left(records), records))[0]
            capacity = min(chunk_records, buffer.shape[0])  # a pooled buffer may hold more
            got = src.fill(buffer[:capacity].view(np.uint8).data)
            while got == capacity * RECORD_SIZE and capacity < chunk_records:  # more may come: grow
                more = left(records + capacity)
                if more == 0:
                    break  # a regular file that ends here (records appended later start a new chunk)
                grown = recycler.get(_grown_rows(chunk_records, capacity, capacity + max(more or 0, 1)))[0]
                grown[:capacity] = buffer[:capacity]
                buffer, capacity = grown, min(chunk_records, grown.shape[0])
                del grown
                got += src.fill(buffer[got // RECORD_SIZE : capacity].view(np.uint8).data)
            whole = got // RECORD_SIZE
            if whole:
                chunk = buffer[:whole]
                del buffer
                yield chunk
                del chunk
                records += whole
            else:
                del buffer
            if got < capacity * RECORD_SIZE:
                src.check_not_shrunk()
                _report_tail(src, records, got - whole * RECORD_SIZE, allow_partial)
                return
    finally:
        src.close()


def iter_deltas(
    source: Source,
    *,
    chunk_records: int = DEFAULT_CHUNK_RECORDS,
    stride: int = 1,
    on_decrease: str = "auto",
    kinds: Mapping[str, str] | None = None,
    return_resets: bool = False,
    allow_partial: bool = False,
    mmap: bool = True,
) -> Iterator[Any]:
    """``deltas`` of a log, chunk by chunk: the concatenation equals ``deltas(read(source), ...)``.

    Chunks have at most ``chunk_records`` rows (the first ``stride`` records have no
    predecessor, so there are ``stride`` fewer rows than records; at most
    ``MAX_CHUNK_RECORDS``, and no buffer larger than the source needs). With ``return_resets=True`` each item
    is ``(values, resets)``. Chunks are never overwritten once yielded. ``on_decrease=
    "raise"`` names the global delta row. A regular file given by path is read through
    memory-mapped windows (``mmap=True``, the fast path: about 2x ``readinto``); a file
    truncated by another process while the kernel reads a window raises SIGBUS, which
    kills the process. ``mmap=False`` or a file object uses ``readinto`` into a reused
    buffer, never SIGBUS. Either way a file truncated below what was already read raises
    ``OSError``. Partial tails: see ``read``.
    """
    chunk_records = check_chunk_records(chunk_records)
    stride = _check_policy_and_stride(on_decrease, stride)
    kind_tuple = resolve_kinds(kinds)
    dtype = delta_dtype(kind_tuple)

    def make(rows: int) -> tuple[npt.NDArray[Any], ...]:
        values = aligned_empty(rows, dtype)
        if return_resets:
            return values, aligned_empty((rows, NFIELDS), np.bool_)
        return (values,)

    src = _Input(source, "iter_deltas()")
    return _iter_deltas(src, chunk_records, stride, on_decrease, kinds, return_resets, allow_partial, mmap,
                        _Recycler(make).get)


def _iter_deltas(
    src: _Input,
    chunk_records: int,
    stride: int,
    on_decrease: str,
    kinds: Mapping[str, str] | None,
    return_resets: bool,
    allow_partial: bool,
    use_mmap: bool,
    outputs: Callable[[int], tuple[npt.NDArray[Any], ...]],
) -> Iterator[Any]:
    try:
        budget = _Budget(chunk_records)
        pairs = _paired_blocks(_blocks(src.open(), chunk_records, allow_partial, use_mmap, budget), stride,
                               chunk_records, budget)
        for _, values, resets in _delta_chunks(pairs, chunk_rows=chunk_records, stride=stride,
                                               on_decrease=on_decrease, kinds=kinds,
                                               return_resets=return_resets, outputs=outputs,
                                               rows_left=_rows_left(src, stride, chunk_records), budget=budget):
            yield (values, resets) if return_resets else values
            del values, resets
    finally:
        src.close()


def iter_rates(
    source: Source,
    *,
    chunk_records: int = DEFAULT_CHUNK_RECORDS,
    interval: float | None = None,
    timestamps: Any = None,
    stride: int = 1,
    on_decrease: str = "auto",
    kinds: Mapping[str, str] | None = None,
    allow_partial: bool = False,
    mmap: bool = True,
) -> Iterator[npt.NDArray[np.void]]:
    """``rates`` of a log, chunk by chunk: the concatenation equals ``rates(read(source), ...)``.

    Give ``interval`` (seconds between samples of one instance) or ``timestamps`` (one
    per record of the file, datetime64 or float seconds; row ``i`` divides by
    ``timestamps[i + stride] - timestamps[i]``, NaN where that step is not positive).
    Other arguments as for ``iter_deltas``; chunks are float64 per second, counters only.
    """
    chunk_records = check_chunk_records(chunk_records)
    stride = _check_policy_and_stride(on_decrease, stride)
    kind_tuple = resolve_kinds(kinds)
    ts: npt.NDArray[Any] | None = None
    if timestamps is not None:
        if interval is not None:
            raise ValueError("iter_rates() needs exactly one of interval= (seconds) or timestamps=")
        ts = np.asarray(timestamps)
        if ts.ndim != 1 or ts.dtype.kind not in "Miuf":
            raise TypeError(f"timestamps must be a 1-D array of datetime64 or seconds, got {ts.dtype} {ts.shape}")
    else:
        _seconds_per_row(0, stride, interval, None)  # validates interval (and its absence)
    dtype = delta_dtype(kind_tuple)
    rdtype = rate_dtype(kind_tuple)
    scratch: list[npt.NDArray[Any]] = []  # the deltas of a chunk, never handed out: one, grown as needed

    def internal(rows: int) -> tuple[npt.NDArray[Any], ...]:
        if not scratch or scratch[0].shape[0] < rows:
            scratch[:] = [aligned_empty(rows, dtype)]
        return (scratch[0],)

    # rates chunks as large as the deltas chunks, so that a short first chunk is reused too
    recycler = _Recycler(lambda rows: (aligned_empty(max([rows, *(a.shape[0] for a in scratch)]), rdtype),))
    src = _Input(source, "iter_rates()")
    return _iter_rates(src, chunk_records, stride, on_decrease, kinds, allow_partial, mmap,
                       interval, ts, kind_tuple, internal, recycler)


def _iter_rates(
    src: _Input,
    chunk_records: int,
    stride: int,
    on_decrease: str,
    kinds: Mapping[str, str] | None,
    allow_partial: bool,
    use_mmap: bool,
    interval: float | None,
    ts: npt.NDArray[Any] | None,
    kind_tuple: tuple[Any, ...],
    internal: Callable[[int], tuple[npt.NDArray[Any], ...]],
    recycler: _Recycler,
) -> Iterator[npt.NDArray[np.void]]:
    try:
        seen = [0]  # records read, for the timestamps check
        budget = _Budget(chunk_records)
        pairs = _paired_blocks(_counted(_blocks(src.open(), chunk_records, allow_partial, use_mmap, budget), seen),
                               stride, chunk_records, budget)
        for first_row, d, _ in _delta_chunks(pairs, chunk_rows=chunk_records, stride=stride,
                                             on_decrease=on_decrease, kinds=kinds,
                                             return_resets=False, outputs=internal,
                                             rows_left=_rows_left(src, stride, chunk_records), budget=budget):
            m = d.shape[0]
            if ts is None:
                divisor: Any = _seconds_per_row(0, stride, interval, None)
            else:
                window = ts[first_row : first_row + m + stride]
                if window.shape[0] != m + stride:
                    raise ValueError(f"{src.name}: timestamps has {ts.shape[0]} entries, but the file has more records")
                divisor = np.asarray(_seconds_per_row(m + stride, stride, None, window))
            out = recycler.get(m)[0][:m]
            divide_counters(d, kind_tuple, divisor, out)  # as rates() does, bit for bit
            del d, divisor
            yield out
            del out
        if ts is not None and seen[0] != ts.shape[0]:
            raise ValueError(f"{src.name}: timestamps has {ts.shape[0]} entries for {seen[0]} records")
    finally:
        src.close()
