"""Write records, deltas or rates to CSV, JSON Lines, ``.npy``, Parquet or OpenMetrics, exactly.

Integers are written as integers in every format: CSV and JSON Lines print Python
ints (2**64 - 1 stays 18446744073709551615), ``.npy`` keeps the numpy dtype, and
Parquet keeps ``uint64`` columns unsigned. Floats (rates) print in their shortest
round-trip form; a NaN rate is empty in CSV and ``null`` in JSON.

Files are written to a temporary file in the target's directory and renamed into
place only when complete, so an error or Ctrl-C never leaves a half-written file;
``"-"`` writes CSV or JSON Lines to standard output.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import errno
import io
import json
import math
import os
import secrets
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from ._capture import InstanceLabels

__all__ = ["FORMATS", "OUTPUT_FORMATS", "STREAM_FORMATS", "Layout", "atomic_output", "format_for", "fsync_directory", "same_file",
           "write_table"]

FORMATS = ("csv", "jsonl", "npy", "parquet")  # the tables
OUTPUT_FORMATS = (*FORMATS, "openmetrics")  # and the samples of Prometheus (records only)
STREAM_FORMATS = ("csv", "jsonl")  # the formats that can go to standard output
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".npy": "npy", ".parquet": "parquet", ".pq": "parquet",
             ".om": "openmetrics", ".prom": "openmetrics"}


def format_for(path: str, explicit: str | None = None) -> str:
    """The output format: ``explicit`` if given, else from the suffix of ``path``."""
    if explicit is not None:
        if explicit not in OUTPUT_FORMATS:
            raise ValueError(f"unknown format {explicit!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
        return explicit
    if path == "-":
        return "csv"
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_SUFFIXES))
        raise ValueError(f"cannot tell the output format from {path!r} (known suffixes: {known}); pass --format")
    return fmt


@dataclass(frozen=True)
class Layout:
    """Which leading columns a table gets, and what its rows are.

    ``first_record`` is the file record of row 0 (``stride`` for deltas and rates: row
    ``r`` then ends at record ``r + stride``). ``instance`` is ``record % stride``;
    ``time`` is ``start + (record // stride) * interval`` when both are known.

    ``columns``: the leading columns given row by row instead (a capture's ``record``,
    ``timestamp`` (datetime64[ns], NaT for none) and ``instance`` (names)). A streamed
    capture gives each chunk's own as the third item of its chunk tuple; ``columns`` then
    holds empty arrays that name them.
    """

    what: str
    stride: int = 1
    first_record: int = 0
    interval: float | None = None
    start: dt.datetime | None = None
    columns: dict[str, Any] | None = None  # arrays, or InstanceLabels for names

    @property
    def has_instance(self) -> bool:
        return self.stride > 1

    @property
    def has_time(self) -> bool:
        return self.start is not None and self.interval is not None

    def leading(self, first_row: int, m: int) -> dict[str, npt.NDArray[Any]]:
        """The leading columns for rows ``first_row`` to ``first_row + m``: record, [instance], [time]."""
        if self.columns is not None:
            return {name: col[first_row: first_row + m] for name, col in self.columns.items()}
        record = np.arange(first_row + self.first_record, first_row + self.first_record + m, dtype=np.uint64)
        cols: dict[str, npt.NDArray[Any]] = {"record": record}
        if self.has_instance:
            cols["instance"] = record % np.uint64(self.stride)
        if self.has_time:
            sample = (record // np.uint64(self.stride)).astype(np.int64)
            start_ns, step_ns = self._time_base()
            cols["time"] = np.datetime64(start_ns, "ns") + sample * np.timedelta64(step_ns, "ns")
        return cols

    def _time_base(self) -> tuple[int, int]:
        """(start, interval) in integer nanoseconds, UTC; a naive ``start`` is read as UTC."""
        assert self.start is not None and self.interval is not None
        start = self.start if self.start.tzinfo else self.start.replace(tzinfo=dt.timezone.utc)
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        delta = start - epoch
        start_ns = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
        return start_ns, round(self.interval * 1e9)

    def time_unit(self) -> str:
        """The coarsest unit that shows every time exactly: "s", "ms", "us" or "ns"."""
        start_ns, step_ns = self._time_base()
        for unit, ns in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
            if start_ns % ns == 0 and step_ns % ns == 0:
                return unit
        return "ns"


# --------------------------------------------------------------------------- atomic files


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file that becomes ``path`` only if the ``with`` block completes.

    Written to ``.NAME.PID.RANDOM.tmp`` beside ``path`` (same file system, so the final
    ``os.replace`` is atomic), flushed to disk, then renamed, and the rename synced to disk
    too (POSIX); on any exception, including ``KeyboardInterrupt``, the temporary file is
    removed. A new file gets mode ``0o666 & ~umask`` (as ``open`` gives); a replaced regular
    file keeps its permission bits only when the caller owns it.

    A symbolic link at ``path`` is refused (``OSError`` ELOOP), never followed or resolved
    here: a link planted in a shared directory cannot redirect the write. A FIFO or a
    character device at ``path`` (``/dev/null``) is written as a stream, in place.
    """
    name = os.fspath(path)
    try:
        st: os.stat_result | None = os.lstat(name)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, "is a symbolic link: not written through; remove the link or name the "
                          "file it points to", name)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", name)
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
            yield from _stream_output(name)
            return
    keep = None
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_uid == _effective_uid():
        keep = stat.S_IMODE(st.st_mode)
    folder = os.path.dirname(name) or os.curdir
    tmp = os.path.join(folder, f".{os.path.basename(name)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_BINARY", 0), 0o666)
        f = os.fdopen(fd, "wb")
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write: {exc.strerror}", name) from None
    except BaseException:  # a signal (SIGTERM, Ctrl-C) just after the file was created
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    behind = None
    try:
        behind = _WriteBehind(f.fileno())
        yield f
        f.flush()
        behind.stop()
        if keep is not None:
            os.chmod(tmp, keep)
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, name)  # replaces the directory entry itself, link or not: never its target
    except BaseException:
        if behind is not None:
            behind.stop()
        f.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(folder)


class _WriteBehind:
    """Syncs a growing file to disk while it is written, so the final ``fsync`` waits for little.

    A thread looks at the file's size every ``PERIOD`` seconds and, once ``STEP`` more bytes
    have reached it, calls ``os.fdatasync`` (which releases the GIL): the disk writes the text
    already formatted while the next is formatted, and an export costs about the larger of the
    two, not their sum. ``stop`` ends the thread before the file is closed. Where
    ``fdatasync`` is missing (Windows, macOS) nothing is started."""

    PERIOD = 0.05
    STEP = 32 * 1024 * 1024

    def __init__(self, fd: int):
        import threading

        self.fd = fd
        st = os.fstat(fd)
        self.file = (st.st_dev, st.st_ino)  # a closed and reused descriptor is not synced
        self.done = threading.Event()
        self.thread: threading.Thread | None = None
        if hasattr(os, "fdatasync"):
            self.thread = threading.Thread(target=self._run, name="ipsecstats-write-behind", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        synced = 0
        while not self.done.wait(self.PERIOD):
            try:
                st = os.fstat(self.fd)
                if (st.st_dev, st.st_ino) != self.file:
                    return
                size = st.st_size
                if size - synced >= self.STEP:
                    os.fdatasync(self.fd)  # type: ignore[attr-defined]
                    synced = size
            except OSError:  # the final fsync reports a real failure
                return

    def stop(self) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()
            self.thread = None


def _effective_uid() -> int | None:
    return os.geteuid() if hasattr(os, "geteuid") else None


def _stream_output(name: str) -> Iterator[IO[bytes]]:
    """A FIFO or a device opened for writing as it is (no temporary file can replace it)."""
    fd = os.open(name, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "wb") as f:
        yield f


def same_file(output: str | os.PathLike[str], inputs: Iterable[Any]) -> str | None:
    """The first of ``inputs`` (paths) that ``output`` is, by device and inode (through hard
    links and symbolic links), or None."""
    try:
        out = os.stat(output)
    except OSError:
        return None
    for item in inputs:
        try:
            st = os.stat(item)
        except (OSError, TypeError, ValueError):
            continue
        if (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino):
            return os.fspath(item)
    return None


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Sync the entries of directory ``path`` (a rename in it) to disk; a no-op where a
    directory cannot be opened or synced (Windows, some network file systems)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- text formats


def _leading(layout: Layout, chunk: tuple[Any, ...]) -> dict[str, npt.NDArray[Any]]:
    """A chunk's leading columns: its own third item (a streamed capture's), else the layout's."""
    if len(chunk) > 2 and chunk[2] is not None:
        return chunk[2]  # type: ignore[no-any-return]
    return layout.leading(chunk[0], chunk[1].shape[0])


def _text_columns(layout: Layout, chunk: tuple[Any, ...]) -> list[list[Any]]:
    """Python-level columns (ints stay exact Python ints) for the text formats."""
    arr = chunk[1]
    cols: list[list[Any]] = []
    for name, values in _leading(layout, chunk).items():
        if name == "time":
            text = np.datetime_as_string(values, unit=layout.time_unit(), timezone="UTC")  # type: ignore[call-overload]
            cols.append(text.tolist())
        elif name == "timestamp":
            cols.append(_timestamp_texts(values))
        else:
            cols.append(values.tolist())
    for name in arr.dtype.names or ():
        cols.append(arr[name].tolist())
    return cols


def _timestamp_texts(values: npt.NDArray[np.datetime64]) -> list[str | None]:
    """ISO 8601 UTC in the coarsest unit that shows every value exactly; NaT -> None (empty / null)."""
    ns = values.astype("datetime64[ns]")
    nat = np.isnat(ns)
    ints = ns.view(np.int64)[~nat]
    unit = next((u for u, k in (("s", 10**9), ("ms", 10**6), ("us", 10**3)) if not (ints % k).any()), "ns")
    text = np.datetime_as_string(ns, unit=unit, timezone="UTC").astype(object)  # type: ignore[call-overload]
    text[nat] = None
    return text.tolist()  # type: ignore[no-any-return]


def _csv_float(x: float) -> Any:
    return "" if math.isnan(x) else x


def _write_csv(out: IO[str], layout: Layout, chunks: Iterable[tuple[int, npt.NDArray[np.void]]]) -> None:
    """Rows as ``csv.writer`` quotes them (minimal quoting, LF line ends); a chunk whose instance or
    host names hold a carriage return is written with every field quoted, since the writer does not
    quote a lone CR (not in its line terminator) and CSV readers would take it for a line end."""
    writer = csv.writer(out, lineterminator="\n")
    quote_all = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    header_done = False
    for chunk in chunks:
        arr = chunk[1]
        names = arr.dtype.names or ()
        if not header_done:
            writer.writerow([*layout.leading(0, 0).keys(), *names])
            header_done = True
        labels = [c for c in _leading(layout, chunk).values() if isinstance(c, InstanceLabels)]
        if any("\r" in name for c in labels for name in c.names):
            cols = _text_columns(layout, chunk)
            if layout.what == "rates":
                lead = len(cols) - len(names)
                cols[lead:] = [[_csv_float(x) for x in c] for c in cols[lead:]]
            quote_all.writerows(zip(*cols))
            continue
        _write_rows(out, _text_plan(layout, chunk, json_lines=False))


def _write_jsonl(out: IO[str], layout: Layout, chunks: Iterable[tuple[int, npt.NDArray[np.void]]]) -> None:
    for chunk in chunks:
        _write_rows(out, _text_plan(layout, chunk, json_lines=True))


TEXT_BLOCK = 1 << 20  # bytes of text per formatting call (about)


def _write_rows(out: IO[str], plan: tuple[Any, ...]) -> None:
    """The rows of a ``_text_plan``, formatted by the kernel a block at a time."""
    from . import _backend

    columns, kinds, tables, seps, term, m, width = plan
    step = max(1, TEXT_BLOCK // width)
    for start in range(0, m, step):
        text = _backend.KERNEL.format_rows(columns, kinds, tables, seps, term, start, min(m, start + step))
        write_bytes = getattr(out, "write_bytes", None)
        if write_bytes is not None:
            write_bytes(text)
        else:
            out.write(text.decode("utf-8"))


def _csv_field(text: str) -> bytes:
    """One field as ``csv.writer`` writes it inside a row (minimal quoting)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([text, ""])
    return buf.getvalue()[:-2].encode("utf-8")


def _text_plan(layout: Layout, chunk: tuple[Any, ...], json_lines: bool) -> tuple[Any, ...]:
    """A chunk as ``format_rows`` arguments: per column its values (8-byte items viewed as uint64,
    NUL-padded byte rows, or codes into a table of texts), kind and the text before it.

    Integers print as ``str(int)``, floats as ``repr`` (NaN: empty in CSV, every non-finite
    value ``null`` in JSON), times as ISO 8601 UTC, names as ``csv.writer`` quotes them or
    as JSON strings: the bytes the ``csv`` and ``json`` modules give.
    """
    arr = chunk[1]
    m = arr.shape[0]
    columns: list[Any] = []
    kinds = bytearray()
    tables: list[Any] = []
    width = 2
    items: list[tuple[str, Any]] = list(_leading(layout, chunk).items())
    items += [(name, arr[name]) for name in arr.dtype.names or ()]
    for name, values in items:
        table: Any = None
        if name in ("time", "timestamp"):
            ns = values.astype("datetime64[ns]", copy=False)
            if name == "time":
                unit = layout.time_unit()
            else:
                ints = ns.view(np.int64)[~np.isnat(ns)]
                unit = next((u for u, k in (("s", 10**9), ("ms", 10**6), ("us", 10**3)) if not (ints % k).any()),
                            "ns")
            col = ns.view(np.int64).view(np.uint64)
            table = {"s": 0, "ms": 3, "us": 6, "ns": 9}[unit]
            kind = 8 if json_lines else 7
            width += 32
        elif isinstance(values, InstanceLabels):
            render = (lambda t: json.dumps(t).encode()) if json_lines else _csv_field
            table = tuple(render(t) for t in values.names)
            col = values.codes.astype(np.int64).view(np.uint64)
            kind = 4
            width += max((len(t) for t in table), default=0)
        else:
            native = values if values.dtype.isnative else values.astype(values.dtype.newbyteorder("="))
            kind = {"u": 0, "i": 1, "f": 3 if json_lines else 2}[native.dtype.kind]
            if native.dtype.itemsize != 8:
                native = native.astype({"u": np.uint64, "i": np.int64, "f": np.float64}[native.dtype.kind])
            col = native.view(np.uint64)
            width += 32
        columns.append(col)
        kinds.append(kind)
        tables.append(table)
    keys = [name for name, _ in items]
    if json_lines:
        seps = [("{" if j == 0 else ",") .encode() + json.dumps(k).encode() + b":" for j, k in enumerate(keys)]
        term = b"}\n"
    else:
        seps = [b"" if j == 0 else b"," for j in range(len(keys))]
        term = b"\n"
    width += sum(len(s) for s in seps)
    return columns, bytes(kinds), tables, seps, term, m, width


# --------------------------------------------------------------------------- .npy


def _npy_header(dtype: np.dtype[Any], rows: int, size: int | None = None) -> bytes:
    """An NPY 1.0 header for a 1-D array; padded to ``size`` bytes (a 20-digit row count fits)."""
    from numpy.lib import format as npy_format

    text = "{'descr': %r, 'fortran_order': False, 'shape': (%d,), }" % (npy_format.dtype_to_descr(dtype), rows)
    magic = npy_format.magic(1, 0)
    if size is None:
        longest = len(text) + 20 - len(str(rows))
        size = -(-(len(magic) + 2 + longest + 1) // 64) * 64
    pad = size - len(magic) - 2 - len(text) - 1
    if pad < 0 or size - len(magic) - 2 > 0xFFFF:
        raise ValueError("NPY header does not fit")
    body = (text + " " * pad + "\n").encode("latin1")
    return magic + len(body).to_bytes(2, "little") + body


def _write_npy(f: IO[bytes], chunks: Iterable[tuple[int, npt.NDArray[np.void]]], dtype: np.dtype[Any]) -> None:
    """The array's rows, then the header rewritten with the final row count."""
    header = _npy_header(dtype, 0)
    f.write(header)
    rows = 0
    for chunk in chunks:
        arr = chunk[1]
        f.write(np.ascontiguousarray(arr).view(np.uint8).data)
        rows += arr.shape[0]
    f.seek(0)
    f.write(_npy_header(dtype, rows, len(header)))


# --------------------------------------------------------------------------- Parquet


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError('Parquet output needs pyarrow: pip install "ipsecstats[arrow]"') from None
    return pa, pq


def _arrow_numbers(pa: Any, values: npt.NDArray[Any], type_: Any = None, valid: Any = None) -> Any:
    """A pyarrow array over a copy of ``values`` (numbers) in native byte order.

    Built from buffers: ``pa.array`` would import pandas (40 MB) to probe its argument.
    ``valid``: a boolean mask of the non-null items (None: all valid).
    """
    native = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("="))
    if type_ is None:
        type_ = pa.from_numpy_dtype(native.dtype)
    bitmap = None if valid is None or valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(type_, native.shape[0], [bitmap, pa.py_buffer(native)])


def _arrow_labels(pa: Any, labels: InstanceLabels) -> Any:
    """Instance names as a dictionary array: int32 codes into the names (UTF-8)."""
    encoded = [name.encode("utf-8") for name in labels.names]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    names = pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets),
                                                                pa.py_buffer(b"".join(encoded))])
    return pa.DictionaryArray.from_arrays(_arrow_numbers(pa, labels.codes.astype(np.int32)), names)


def _arrow_table(pa: Any, layout: Layout, chunk: tuple[Any, ...]) -> Any:
    arr = chunk[1]
    columns: dict[str, Any] = {}
    for name, values in _leading(layout, chunk).items():
        if name in ("time", "timestamp"):
            stamps = values.astype("datetime64[ns]", copy=False)
            columns[name] = _arrow_numbers(pa, stamps.view(np.int64), pa.timestamp("ns", tz="UTC"), ~np.isnat(stamps))
        elif isinstance(values, InstanceLabels):
            columns[name] = _arrow_labels(pa, values)
        else:
            columns[name] = _arrow_numbers(pa, values)
    for name in arr.dtype.names or ():
        columns[name] = _arrow_numbers(pa, arr[name])  # uint64 stays uint64, int64 stays int64
    return pa.table(columns)


def _write_parquet(f: IO[bytes], layout: Layout, chunks: Iterable[tuple[int, npt.NDArray[np.void]]],
                   metadata: dict[str, Any]) -> None:
    """Row group per chunk; integers DELTA_BINARY_PACKED, floats BYTE_STREAM_SPLIT, zstd, no dictionary.

    Counters grow slowly from row to row, so delta encoding stores a few bits per value;
    zstd then squeezes what is left.
    """
    pa, pq = _pyarrow()
    writer = None
    try:
        for chunk in chunks:
            table = _arrow_table(pa, layout, chunk)
            if writer is None:
                names = [fld.name for fld in table.schema if pa.types.is_dictionary(fld.type)]
                encodings = {
                    fld.name: "BYTE_STREAM_SPLIT" if pa.types.is_floating(fld.type) else "DELTA_BINARY_PACKED"
                    for fld in table.schema if fld.name not in names
                }
                schema = table.schema.with_metadata({"ipsecstats": json.dumps(metadata)})
                writer = pq.ParquetWriter(f, schema, compression="zstd", use_dictionary=names or False,
                                          column_encoding=encodings)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


# --------------------------------------------------------------------------- entry point


def write_table(
    chunks: Iterable[tuple[int, npt.NDArray[np.void]]],
    out: str | os.PathLike[str],
    fmt: str,
    layout: Layout,
    dtype: np.dtype[Any],
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write ``(first_row, array)`` chunks to ``out`` (``"-"``: standard output) in ``fmt``.

    ``dtype`` is the array dtype (for ``.npy`` and for an empty table). Text formats and
    Parquet get the ``layout``'s leading columns; ``.npy`` holds exactly the array.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    chunks = _never_empty(chunks, dtype)
    if os.fspath(out) == "-":
        if fmt not in STREAM_FORMATS:
            raise ValueError(f"{fmt} cannot be written to standard output; give a file name")
        stdout = _NamedStream(sys.stdout, STDOUT_NAME)
        (_write_csv if fmt == "csv" else _write_jsonl)(stdout, layout, chunks)  # type: ignore[arg-type]
        stdout.flush()
        return
    if fmt == "parquet":
        _pyarrow()  # fail before creating anything when pyarrow is missing
    if fmt == "openmetrics" and layout.what != "records":
        raise ValueError(f"OpenMetrics holds the raw counters (records), not {layout.what}: Prometheus "
                         "computes rates itself (rate(), resets())")
    with atomic_output(out) as f:
        if fmt == "openmetrics":
            from ._openmetrics import write_openmetrics

            write_openmetrics(f, ((_leading(layout, c), c[1]) for c in chunks), layout.stride)
        elif fmt == "npy":
            _write_npy(f, chunks, dtype)
        elif fmt == "parquet":
            _write_parquet(f, layout, chunks, metadata or {})
        else:
            with _Utf8Sink(f, threaded=_is_regular(f)) as sink:
                (_write_csv if fmt == "csv" else _write_jsonl)(sink, layout, chunks)  # type: ignore[arg-type]


STDOUT_NAME = "<standard output>"


class _Utf8Sink:
    """Text (``write``, encoded to UTF-8, small pieces gathered into blocks of about ``BLOCK``
    bytes: ``csv.writer`` writes a row at a time) and ready blocks (``write_bytes``) into a
    binary file, in order.

    ``threaded``: a thread of its own writes the blocks, at most ``DEPTH`` behind, so the next
    block of text is formatted while this one goes to the kernel (``write`` releases the GIL)
    and an export costs about the larger of the two, not their sum. For regular files only:
    a write to a pipe or FIFO whose reader has stopped blocks without end, and Ctrl-C must
    still stop the export. A failed write is then raised by the next ``write``/``write_bytes``
    or at the end; after a failure, or once the block is left by an exception (which wins),
    nothing more is written. Used as a context manager, which waits for the last write."""

    BLOCK = 1 << 20
    DEPTH = 2

    def __init__(self, f: IO[bytes], threaded: bool = False):
        import queue
        import threading

        self._f = f
        self._text: list[bytes] = []
        self._text_bytes = 0
        self._error: BaseException | None = None
        self._stop = False
        self._blocks: queue.Queue[bytes | bytearray | None] | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._blocks = queue.Queue(maxsize=self.DEPTH)
            self._thread = threading.Thread(target=self._run, name="ipsecstats-write-ahead", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._blocks is not None
        while True:
            data = self._blocks.get()
            if data is None:
                return
            if self._error is None and not self._stop:
                try:
                    self._f.write(data)
                except BaseException as exc:  # noqa: BLE001 - raised in the formatting thread
                    self._error = exc

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        self._text.append(data)
        self._text_bytes += len(data)
        if self._text_bytes >= self.BLOCK:
            self._flush_text()
        return len(text)

    def write_bytes(self, data: bytes | bytearray) -> None:
        self._flush_text()
        self._put(data)

    def _flush_text(self) -> None:
        if self._text:
            data = b"".join(self._text)
            self._text.clear()
            self._text_bytes = 0
            self._put(data)

    def _put(self, data: bytes | bytearray) -> None:
        if self._error is not None:
            raise self._error
        if self._blocks is None:
            self._f.write(data)
        else:
            self._blocks.put(data)

    def __enter__(self) -> _Utf8Sink:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        error: BaseException | None = None
        if exc_type is None:
            try:
                self._flush_text()
            except BaseException as caught:  # noqa: BLE001 - raised below, once the thread is gone
                error = caught
        if self._thread is not None and self._blocks is not None:
            self._stop = exc_type is not None  # the queued blocks are not written
            self._blocks.put(None)
            self._thread.join()
            self._thread = None
        if error is None:
            error = self._error
        self._error = None  # no cycle through the traceback's frames
        if exc_type is None and error is not None:
            raise error


def _is_regular(f: IO[bytes]) -> bool:
    try:
        return stat.S_ISREG(os.fstat(f.fileno()).st_mode)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


class _NamedStream:
    """A text stream whose write errors name it: a full disk behind standard output is the
    output's fault, not the input's (``OSError.filename``; a broken pipe stays as it is)."""

    def __init__(self, stream: IO[str], name: str):
        self._stream, self._name = stream, name

    def _named(self, exc: OSError) -> OSError:
        if exc.filename is None and not isinstance(exc, BrokenPipeError):
            exc.filename = self._name
        return exc

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise self._named(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._named(exc) from None


def _never_empty(chunks: Iterable[tuple[int, npt.NDArray[np.void]]], dtype: np.dtype[Any]
                 ) -> Iterator[tuple[int, npt.NDArray[np.void]]]:
    """The chunks, or one empty chunk when there are none (so headers and schemas get written)."""
    any_chunk = False
    for chunk in chunks:
        any_chunk = True
        yield chunk
    if not any_chunk:
        yield 0, np.empty(0, dtype=dtype)
