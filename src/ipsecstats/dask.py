"""Many logs as one Dask DataFrame (optional extra ``dask``): ``read_logs``.

``read_logs`` tells each file's format and lists the files on the client, then builds
the frame with ``dask.dataframe.from_map``. Workers read their own files, so the files
must be reachable from every worker (a shared filesystem on a cluster).

* Raw logs (contiguous 168-byte records) split safely anywhere: one partition per
  file, or per run of ``chunk_records`` records. A worker reads its record range
  (``readinto`` into an aligned buffer); a deltas/rates partition re-reads the
  ``stride`` records before its range, so chunked results equal whole-file results.
* Captures (WNODE, CIM CSV) are one partition per file, streamed through
  ``iter_capture``: an instance's previous sample may lie anywhere earlier in the file,
  so only a whole file pairs every record with the right one.

Runs on whatever scheduler is active: the threaded one by default (the kernels
release the GIL), or a ``distributed.Client`` (``Client("tcp://scheduler:8786")``).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import secrets
import shutil
import stat
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ._alloc import aligned_empty
from ._checks import check_int
from ._columns import Columns, column_block, decode_columns, delta_columns
from ._decode import whole_records
from ._deltas import ON_DECREASE, DecreasePolicy, rates, resolve_kinds
from ._errors import CounterResetError, PartialRecordWarning
from ._interop import require, table_columns
from ._schema import FIELD_NAMES, RECORD_DTYPE, RECORD_SIZE
from ._source import ByteSource
from ._window import window_ns

__all__ = ["CONNECT_TIMEOUT_ENV", "FileOutcome", "LogPart", "CaptureFileReader", "LogReader", "SchedulerAddressError",
           "SchedulerConnectionError", "connect_timeout", "convert_logs", "map_files", "parquet_options", "read_logs",
           "read_record_range", "use_scheduler", "write_parquet_dataset"]

WHAT = ("records", "deltas", "rates")
LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")
CONNECT_TIMEOUT_ENV = "IPSECSTATS_CONNECT_TIMEOUT"  # seconds to wait for a distributed scheduler
DEFAULT_CONNECT_TIMEOUT = 10.0
_READ_RUN_RECORDS = 4096  # records per read when a partition is read straight into columns (672 KB)


# ---- files ---------------------------------------------------------------------------


def expand_paths(paths_or_glob: Any) -> list[str]:
    """The log files named by a path, a glob pattern, or an iterable of either (in order).

    A pattern's matches are sorted; a pattern that matches no file, or a path that is
    not a file, raises ``FileNotFoundError`` naming it.
    """
    if isinstance(paths_or_glob, (str, os.PathLike)):
        items: Iterable[Any] = [paths_or_glob]
    else:
        try:
            items = list(paths_or_glob)
        except TypeError:
            raise TypeError(
                f"read_logs() takes a path, a glob pattern or a list of them, not {type(paths_or_glob).__name__}"
            ) from None
    paths: list[str] = []
    for item in items:
        name = os.fspath(item)
        if isinstance(name, bytes):
            name = os.fsdecode(name)
        if glob.has_magic(name):
            matches = sorted(m for m in glob.glob(name, recursive=True) if os.path.isfile(m))
            if not matches:
                raise FileNotFoundError(f"no log file matches {name!r}")
            paths.extend(matches)
        elif os.path.isdir(name):
            raise FileNotFoundError(f"{name} is a directory; pass a glob such as {os.path.join(name, '*.bin')!r}")
        elif not os.path.isfile(name):
            raise FileNotFoundError(f"{name}: no such log file")
        else:
            paths.append(name)
    if not paths:
        raise FileNotFoundError("read_logs() was given no files")
    return paths


def _readinto_exactly(f: Any, dst: npt.NDArray[np.uint8], path: str, offset: int) -> None:
    view = dst.data  # a writable memoryview of the 1-D uint8 buffer
    got = 0
    while got < dst.nbytes:
        k = f.readinto(view[got:])
        if not k:
            end = offset + got
            raise ValueError(
                f"{path}: the file ends at byte offset {end} (record {end // RECORD_SIZE}), before byte "
                f"{offset + dst.nbytes} it held when read_logs() listed it; was it truncated since?"
            )
        got += k


def read_record_range(path: str, start: int, count: int) -> npt.NDArray[np.void]:
    """Records ``[start, start + count)`` of the file ``path``: an owned, aligned array.

    Raises ``ValueError`` naming the file and byte offset if the file has fewer bytes.
    """
    out = aligned_empty(count, RECORD_DTYPE)
    if count:
        with open(path, "rb", buffering=0) as f:
            f.seek(start * RECORD_SIZE)
            _readinto_exactly(f, out.view(np.uint8), path, start * RECORD_SIZE)
    return out


def read_record_columns(path: str, start: int, count: int) -> Columns:
    """``decode_columns`` of records ``[start, start + count)`` of ``path``, read in cache-sized runs.

    Each run is read into one small reused buffer and transposed while it is in cache, so
    the records never exist row-major in main memory.
    """
    block = column_block(count)
    if count:
        scratch = aligned_empty(min(count, _READ_RUN_RECORDS), RECORD_DTYPE)
        with open(path, "rb", buffering=0) as f:
            f.seek(start * RECORD_SIZE)
            for lo in range(0, count, _READ_RUN_RECORDS):
                hi = min(lo + _READ_RUN_RECORDS, count)
                run = scratch[: hi - lo]
                _readinto_exactly(f, run.view(np.uint8), path, (start + lo) * RECORD_SIZE)
                decode_columns(run, out=block[:, lo:hi])
    return Columns(block, FIELD_NAMES, (np.dtype(np.uint64),) * len(FIELD_NAMES))


# ---- partitions ----------------------------------------------------------------------


@dataclass(frozen=True)
class LogPart:
    """One partition: the rows for records ``[start, stop)`` of file ``file_index`` (a capture's
    one partition: ``0, -1``, the whole file)."""

    file_index: int
    path: str
    start: int
    stop: int


def value_fields(what: str, kinds: tuple[tuple[str, str], ...] | None) -> tuple[str, ...]:
    """The field columns of ``what``: all 21, or for rates the counters only."""
    if what != "rates":
        return FIELD_NAMES
    kind_tuple = resolve_kinds(None if kinds is None else dict(kinds))
    return tuple(n for n, k in zip(FIELD_NAMES, kind_tuple) if k == "counter")


class LogReader:
    """Builds one partition's pandas frame; dask pushes column selections into ``columns=``.

    Columns: ``file`` (categorical over every file read), ``record`` (index of the
    record within its file; for deltas and rates, the later record of the pair),
    ``instance`` (``record % stride``, only when ``stride > 1``), then the fields.
    """

    def __init__(
        self,
        files: tuple[str, ...],
        what: str,
        stride: int,
        interval: float | None,
        on_decrease: DecreasePolicy,
        kinds: tuple[tuple[str, str], ...] | None,
    ):
        self.files = files
        self.what = what
        self.stride = stride
        self.interval = interval
        self.on_decrease = on_decrease
        self.kinds = kinds
        self.fields = value_fields(what, kinds)
        self.columns = ("file", "record") + (("instance",) if stride > 1 else ()) + self.fields

    def __dask_tokenize__(self) -> Any:
        return (type(self).__name__, self.files, self.what, self.stride, self.interval, self.on_decrease, self.kinds)

    def first_record(self, part: LogPart) -> int:
        """The record the partition's first row describes (deltas need ``stride`` before it)."""
        return part.start if self.what == "records" else max(part.start, self.stride)

    def field_columns(self, part: LogPart) -> Mapping[str, npt.NDArray[Any]]:
        kinds = None if self.kinds is None else dict(self.kinds)
        if self.what == "records":
            return read_record_columns(part.path, part.start, part.stop - part.start)
        lo = self.first_record(part)
        if lo >= part.stop:
            return table_columns(self._empty_fields())
        recs = read_record_range(part.path, lo - self.stride, part.stop - lo + self.stride)
        try:
            if self.what == "deltas":
                carry, cur = recs[: self.stride], recs[self.stride :]
                return delta_columns(cur, stride=self.stride, on_decrease=self.on_decrease,
                                     previous=carry, kinds=kinds)
            r = rates(recs, interval=self.interval, stride=self.stride, on_decrease=self.on_decrease, kinds=kinds)
        except CounterResetError as exc:  # its row counts from this partition: make it the file's
            error = exc.shifted(lo - self.stride)
            error.add_note(f"{part.path}: at record {error.row + self.stride} (delta row {error.row} of the file)")
            raise error from None
        return table_columns(r)

    def _empty_fields(self) -> Any:
        kinds = None if self.kinds is None else dict(self.kinds)
        empty = np.empty(0, dtype=RECORD_DTYPE)
        if self.what == "records":
            return empty
        if self.what == "deltas":
            return delta_columns(empty, stride=self.stride, kinds=kinds)
        return rates(empty, interval=self.interval, stride=self.stride, kinds=kinds)

    def __call__(self, part: LogPart, columns: list[str] | None = None) -> Any:
        pd = require("pandas", "dask", "read_logs()")
        wanted = self.columns if columns is None else tuple(columns)
        first = self.first_record(part)
        n = max(part.stop - first, 0)
        if any(c in self.fields for c in wanted):
            fields = self.field_columns(part)
        else:  # only file/record/instance asked for: nothing to read
            fields = {}
        data: dict[str, Any] = {}
        for name in wanted:
            if name == "file":
                codes = np.full(n, part.file_index, dtype=np.int32)
                data[name] = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(list(self.files)))
            elif name == "record":
                data[name] = np.arange(first, first + n, dtype=np.int64)
            elif name == "instance" and self.stride > 1:
                data[name] = np.arange(first, first + n, dtype=np.int64) % self.stride
            elif name in self.fields:
                data[name] = fields[name]
            else:
                raise KeyError(f"read_logs(): no column {name!r}; columns are {', '.join(self.columns)}")
        return pd.DataFrame(data, columns=list(wanted), copy=False)

    def meta(self) -> Any:
        """The empty frame with every column and dtype a partition has."""
        return self(LogPart(0, self.files[0], 0, 0))


class CaptureFileReader:
    """Builds the pandas frame of one capture file (a WNODE or CIM CSV file: one partition).

    Columns: ``file`` (categorical over every file read), ``record`` (index of the record in
    its file; for deltas and rates, the later record of the pair), ``timestamp``
    (datetime64[ns, UTC]; NaT in files without times), ``instance`` (the instance name),
    then the fields. Deltas pair each record with the previous record of its instance.
    """

    def __init__(self, files: tuple[str, ...], formats: tuple[str, ...], what: str, interval: float | None,
                 on_decrease: DecreasePolicy, kinds: tuple[tuple[str, str], ...] | None,
                 csv_options: tuple[tuple[str, Any], ...] = (), window: tuple[int | None, int | None] | None = None):
        self.files = files
        self.window = window  # (begin_ns, end_ns): the records with begin <= time < end
        self.formats = formats  # the format name of each file
        self.what = what
        self.interval = interval
        self.on_decrease = on_decrease
        self.kinds = kinds
        self.csv_options = csv_options  # (keyword, value) pairs for the text readers that take them
        self.fields = value_fields(what, kinds)
        self.columns = ("file", "record", "timestamp", "instance") + self.fields

    def __dask_tokenize__(self) -> Any:
        return (type(self).__name__, self.files, self.formats, self.what, self.interval, self.on_decrease,
                self.kinds, self.csv_options, self.window)

    def _chunks(self, part: LogPart) -> Iterator[Any]:
        from ._pipeline import iter_capture

        fmt = self.formats[part.file_index]
        options = _taken(fmt, dict(self.csv_options))
        if self.window is not None:
            options.update({key: None if ns is None else np.datetime64(ns, "ns")
                            for key, ns in zip(("window_from", "window_to"), self.window)})
        try:
            yield from iter_capture(part.path, self.what, input_format=fmt, on_decrease=self.on_decrease,
                                    interval=self.interval, kinds=None if self.kinds is None else dict(self.kinds),
                                    **options)
        except CounterResetError as exc:
            place = getattr(exc, "place", None)
            exc.add_note(f"{part.path}: " + (place or f"delta row {exc.row}"))
            raise

    def __call__(self, part: LogPart, columns: list[str] | None = None) -> Any:
        wanted = self.columns if columns is None else tuple(columns)
        for name in wanted:
            if name not in self.columns:
                raise KeyError(f"read_logs(): no column {name!r}; columns are {', '.join(self.columns)}")
        return self._frame(part, list(self._chunks(part)), wanted)

    def _frame(self, part: LogPart, chunks: list[Any], wanted: tuple[str, ...]) -> Any:
        pd = require("pandas", "dask", "read_logs()")
        n = sum(len(c) for c in chunks)
        data: dict[str, Any] = {}
        if "file" in wanted:
            codes = np.full(n, part.file_index, dtype=np.int32)
            data["file"] = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(list(self.files)))
        if "record" in wanted:
            data["record"] = np.concatenate([c.record for c in chunks] or [np.empty(0, np.intp)]).astype(np.int64)
        if "timestamp" in wanted:
            stamps = [np.full(len(c), np.datetime64("NaT", "ns")) if c.timestamps is None else c.timestamps
                      for c in chunks]
            times = np.concatenate(stamps or [np.empty(0, "datetime64[ns]")])
            data["timestamp"] = pd.DatetimeIndex(times).tz_localize("UTC")
        if "instance" in wanted:
            data["instance"] = np.concatenate([c.instances for c in chunks] or [np.empty(0, object)])
        if any(name in self.fields for name in wanted):
            values = np.concatenate([c.values for c in chunks]) if chunks else self._empty_values()
            fields = table_columns(values)
            for name in wanted:
                if name in self.fields:
                    data[name] = fields[name]
        return pd.DataFrame({name: data[name] for name in wanted}, columns=list(wanted), copy=False)

    def _empty_values(self) -> npt.NDArray[np.void]:
        from ._deltas import delta_dtype, rate_dtype

        kinds = resolve_kinds(None if self.kinds is None else dict(self.kinds))
        dtype = {"records": RECORD_DTYPE, "deltas": delta_dtype(kinds), "rates": rate_dtype(kinds)}[self.what]
        return np.empty(0, dtype)

    def meta(self) -> Any:
        """The empty frame with every column and dtype a partition has."""
        return self._frame(LogPart(0, self.files[0], 0, 0), [], self.columns)


def _taken(format_name: str, csv_options: dict[str, Any]) -> dict[str, Any]:
    """The text readers' options that the format ``format_name`` takes (CIM CSV all of them,
    PDH-CSV ``timezone``); the others are left out for it."""
    from . import formats

    taken = formats.by_name(format_name).options()
    return {key: value for key, value in csv_options.items() if key in taken}


def _probe(path: str, input_format: str, csv_options: dict[str, Any]) -> tuple[str, bool]:
    """The format of the file at ``path`` and whether its records carry times (opens and closes it)."""
    from . import formats

    src = ByteSource(path, "read_logs()")
    try:
        fmt = formats.detect(src) if input_format == "auto" else formats.by_name(input_format)
        if fmt.name == "raw":
            return fmt.name, False
        reader = fmt.open(src, **_taken(fmt.name, csv_options))
        return fmt.name, bool(reader.has_timestamps)
    finally:
        src.close()


def plan_parts(paths: list[str], counts: list[int], chunk_records: int | None) -> list[LogPart]:
    """One part per file, or per run of ``chunk_records`` records (an empty file gives one empty part)."""
    files = list(dict.fromkeys(paths))
    parts: list[LogPart] = []
    for path, n in zip(paths, counts):
        index = files.index(path)
        step = n if chunk_records is None else chunk_records
        parts.extend(LogPart(index, path, lo, min(lo + step, n)) for lo in range(0, n, max(step, 1)))
        if n == 0:
            parts.append(LogPart(index, path, 0, 0))
    return parts


def read_logs(
    paths_or_glob: Any,
    *,
    what: str = "records",
    stride: int = 1,
    interval: float | None = None,
    on_decrease: DecreasePolicy = "auto",
    columns: list[str] | None = None,
    chunk_records: int | None = None,
    kinds: Mapping[str, str] | None = None,
    allow_partial: bool = False,
    input_format: str = "auto",
    timestamp_column: str | None = None,
    timestamp_format: str | None = None,
    timezone: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    window_from: Any = None,
    window_to: Any = None,
) -> Any:
    """Records, deltas or rates of many log files as one ``dask.dataframe.DataFrame``.

    ``paths_or_glob``: a path, a glob pattern (``"logs/*.bin"``) or a list of them.
    ``what``: ``"records"`` (uint64 fields), ``"deltas"`` (``deltas(...)`` per file:
    counters uint64, gauges int64) or ``"rates"`` (per second, needs ``interval``).
    ``stride``, ``on_decrease``, ``kinds`` as for ``deltas``; a partition never pairs
    records of two files. ``chunk_records``: split files into partitions of that many
    records (default: one partition per file). ``columns``: read only these columns
    (dask also pushes later column selections into the reader).

    Columns: ``file`` (categorical of the paths), ``record`` (index in its file; for
    deltas/rates the later record of the pair), ``instance`` (``record % stride``,
    when ``stride > 1``), then the fields. File sizes are taken now: a trailing partial
    record raises ``TruncatedRecordError`` (``allow_partial=True``: warns and reads the
    whole records); records appended later are not read.

    Captures: ``input_format`` ("auto": told from each file's first bytes, or a name from
    ``formats.NAMES``) reads WNODE and CIM CSV files too, each one partition streamed in
    bounded chunks. Their columns are ``file``, ``record``, ``timestamp`` (UTC; NaT where a
    file has no times), ``instance`` (the name), then the fields; deltas pair the records of
    each instance name, and rates divide by the real time steps (``interval`` only for
    captures without times). ``timestamp_column``, ``timestamp_format``, ``timezone``,
    ``delimiter`` and ``encoding`` go to the CIM CSV files' readers (see ``read_cim_csv``);
    ``timezone`` also to PDH-CSV files' (its rules instead of the header's bias). Raw
    logs and captures cannot be mixed in one frame. ``window_from``/``window_to`` (datetime,
    ``numpy.datetime64`` or ISO 8601; UTC when naive): a capture's records with
    ``from <= time < to`` only, numbered from the first of them, as ``iter_capture``; every file
    must carry times.
    """
    dd = require("dask.dataframe", "dask", "read_logs()")
    if what not in WHAT:
        raise ValueError(f"what must be one of {', '.join(map(repr, WHAT))}; got {what!r}")
    if on_decrease not in ON_DECREASE:
        raise ValueError(f"on_decrease must be one of {', '.join(map(repr, ON_DECREASE))}; got {on_decrease!r}")
    stride = check_int("stride", stride, 1)
    if chunk_records is not None:
        chunk_records = check_int("chunk_records", chunk_records, 1)
    if what == "rates" and interval is not None:
        interval = float(interval)
        if not (np.isfinite(interval) and interval > 0):
            raise ValueError(f"interval must be a finite number of seconds > 0, got {interval!r}")
    elif interval is not None:
        raise ValueError("interval= applies to what='rates' only")
    kind_items = None if kinds is None else tuple(kinds.items())
    resolve_kinds(kinds)  # validate now, not on a worker
    window = window_ns(window_from, window_to)

    paths = expand_paths(paths_or_glob)
    csv_options = {k: v for k, v in (("timestamp_column", timestamp_column), ("timestamp_format", timestamp_format),
                                     ("timezone", timezone), ("delimiter", delimiter), ("encoding", encoding))
                   if v is not None}
    if input_format != "raw":
        probed = [_probe(path, input_format, csv_options) for path in paths]
        captures = [(path, name) for path, (name, _) in zip(paths, probed) if name != "raw"]
        if captures:
            raws = [path for path, (name, _) in zip(paths, probed) if name == "raw"]
            if raws:
                from .formats import by_name

                raise ValueError(f"{raws[0]} holds raw records but {captures[0][0]} is a "
                                 f"{by_name(captures[0][1]).title}: raw logs and captures cannot share one "
                                 "frame or dataset; read them separately")
            timed = [t for _, t in probed]
            if window is not None and not all(timed):
                untimed = paths[timed.index(False)]
                raise ValueError(f"read_logs(window_from=, window_to=): {untimed} has no times"
                                 + (" (name its time column with timestamp_column=)"
                                    if probed[timed.index(False)][0] == "cim-csv" else ""))
            return _read_captures(dd, paths, [name for name, _ in probed], timed, what,
                                  interval, on_decrease, kind_items, csv_options, columns, window)
    if window is not None:
        raise ValueError(f"read_logs(window_from=, window_to=): {paths[0]} is a raw log, whose records carry no "
                         "times; read it with ipsecstats.iter_capture(path, start=..., interval=..., window_from=...)")
    if what == "rates" and interval is None:
        raise ValueError("read_logs(what='rates') needs interval= (seconds between samples of one instance)")
    if csv_options:
        raise ValueError(f"read_logs(): {', '.join(k + '=' for k in csv_options)} apply to CIM CSV captures only "
                         "(timezone= to PDH-CSV ones too); these are raw logs")
    counts = []
    for path in paths:
        counts.append(whole_records(os.stat(path).st_size, allow_partial, path))
    reader = LogReader(tuple(dict.fromkeys(paths)), what, stride, interval, on_decrease, kind_items)
    columns = _checked_columns(columns, reader.columns)
    parts = plan_parts(paths, counts, chunk_records)
    return dd.from_map(reader, parts, meta=reader.meta(), columns=columns, label=f"ipsecstats-{what}")


def _checked_columns(columns: list[str] | None, known: tuple[str, ...]) -> list[str] | None:
    if columns is None:
        return None
    columns = list(columns)
    unknown = [c for c in columns if c not in known]
    if unknown or not columns:
        raise ValueError(f"read_logs(): unknown column(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"columns are {', '.join(known)}")
    return columns


def _read_captures(dd: Any, paths: list[str], names: list[str], timed: list[bool], what: str,
                   interval: float | None, on_decrease: DecreasePolicy, kinds: tuple[tuple[str, str], ...] | None,
                   csv_options: dict[str, Any], columns: list[str] | None,
                   window: tuple[int | None, int | None] | None = None) -> Any:
    """``read_logs`` of capture files: one partition per file (see ``CaptureFileReader``)."""
    if what == "rates":
        untimed = [path for path, t in zip(paths, timed) if not t]
        if interval is None and untimed:
            raise ValueError(f"read_logs(what='rates'): {untimed[0]} has no timestamps; pass interval= (seconds "
                             "between samples of one instance)" + (" or timestamp_column= (its time column)"
                                                                   if names[paths.index(untimed[0])] == "cim-csv"
                                                                   else ""))
        if interval is not None and len(untimed) < len(paths):
            first = next(path for path, t in zip(paths, timed) if t)
            raise ValueError(f"read_logs(what='rates'): interval= does not apply: {first} carries a time for every "
                             "record, and rates use the real time steps")
    files = tuple(dict.fromkeys(paths))
    formats_of = dict(zip(paths, names))
    reader = CaptureFileReader(files, tuple(formats_of[f] for f in files), what, interval, on_decrease, kinds,
                               tuple(csv_options.items()), window)
    columns = _checked_columns(columns, reader.columns)
    parts = [LogPart(files.index(path), path, 0, -1) for path in paths]
    return dd.from_map(reader, parts, meta=reader.meta(), columns=columns, label=f"ipsecstats-{what}")


# ---- schedulers and output -----------------------------------------------------------


class SchedulerAddressError(ValueError):
    """A scheduler spec that is neither a local scheduler name nor a valid distributed address."""


class SchedulerConnectionError(OSError):
    """A distributed scheduler address that could not be connected to in time."""


def connect_timeout(timeout: float | None = None) -> float:
    """Seconds to wait for a distributed scheduler: ``timeout``, else the environment
    variable ``IPSECSTATS_CONNECT_TIMEOUT``, else 10; must be a finite number > 0."""
    if timeout is None:
        text = os.environ.get(CONNECT_TIMEOUT_ENV)
        if text is None:
            return DEFAULT_CONNECT_TIMEOUT
        try:
            timeout = float(text)
        except ValueError:
            raise ValueError(f"{CONNECT_TIMEOUT_ENV}={text!r} is not a number of seconds") from None
        source = f"{CONNECT_TIMEOUT_ENV}={text!r}"
    else:
        source = f"timeout={timeout!r}"
    if not 0 < timeout < float("inf"):
        raise ValueError(f"{source}: the scheduler connect timeout must be a finite number of seconds > 0")
    return float(timeout)


def _refused(spec: str, timeout: float) -> OSError | None:
    """The error of a plain TCP connect to a ``tcp://host:port`` scheduler when nothing listens
    there (refused at once), else None: distributed would retry until its timeout."""
    import socket

    try:
        from distributed.comm.addressing import parse_address, parse_host_port

        scheme, location = parse_address(spec)
        if scheme != "tcp":
            return None
        host, port = parse_host_port(location)
    except (ImportError, ValueError, TypeError):
        return None
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 5.0)):
            return None
    except ConnectionRefusedError as exc:
        return exc
    except OSError:  # unreachable, timed out, unknown host: let distributed try and report it
        return None


def _connect(distributed: Any, spec: str, timeout: float) -> Any:
    """``distributed.Client(spec)``, its failures as SchedulerAddressError / SchedulerConnectionError.

    A refused TCP connection fails at once, not after ``timeout`` seconds of retries."""
    refused = _refused(spec, timeout)
    if refused is not None:
        raise SchedulerConnectionError(f"cannot connect to the scheduler at {spec}: connection refused; is it "
                                       "running?") from refused
    try:
        return distributed.Client(spec, timeout=timeout)
    except (TypeError, ValueError, OSError) as exc:
        _close_half_started(distributed, exc)
        raise _connect_error(spec, timeout, exc) from exc


def _close_half_started(distributed: Any, exc: BaseException) -> None:
    """Close the Client whose constructor raised ``exc``. It made itself dask's default
    scheduler (and started an event loop) before it failed to connect; left so until the
    garbage collector finds it, every later dask computation in the process waits on it
    forever (a chained exception that is kept, as a test runner keeps it, keeps it alive)."""
    tb = exc.__traceback__
    while tb is not None:
        client = tb.tb_frame.f_locals.get("self")
        if isinstance(client, distributed.Client):
            with contextlib.suppress(Exception):  # it never connected: nothing to lose
                client.close(timeout=1)
            return
        tb = tb.tb_next


def _connect_error(spec: str, timeout: float, exc: BaseException) -> Exception:
    """The SchedulerAddressError or SchedulerConnectionError for ``distributed.Client``'s ``exc``."""
    if isinstance(exc, TypeError):  # e.g. tls:// without TLS settings, a transport not installed
        return SchedulerAddressError(f"cannot use the scheduler address {spec!r}: {exc}")
    if isinstance(exc, ValueError):  # unknown scheme, missing or bad port: the address itself is wrong
        return SchedulerAddressError(
            f"scheduler address {spec!r} is not valid: {exc}; give threads, processes, synchronous "
            f"or an address such as tcp://host:8786"
        )
    # refused, unreachable, timed out (TimeoutError is an OSError)
    detail = "" if "timed out" in str(exc).lower() else f" ({exc})"  # distributed's "Timed out ..." repeats us
    return SchedulerConnectionError(
        f"cannot connect to the scheduler at {spec} within {timeout:g} s{detail}: is it running? "
        f"({CONNECT_TIMEOUT_ENV} sets the wait)"
    )


@contextlib.contextmanager
def use_scheduler(spec: str | None, *, timeout: float | None = None) -> Iterator[None]:
    """Run dask computations inside the block on ``spec``.

    ``None`` keeps dask's default (threads); ``"threads"``, ``"processes"`` or
    ``"synchronous"`` pick a local scheduler; anything else is the address of a running
    distributed scheduler (``"tcp://host:8786"``), connected to for the block, waiting at
    most ``connect_timeout(timeout)`` seconds. A malformed address raises
    ``SchedulerAddressError`` (a ValueError), one that cannot be reached
    ``SchedulerConnectionError`` (an OSError).
    """
    dask = require("dask", "dask", "the --scheduler option")
    if spec is None:
        yield
    elif spec in LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=spec):
            yield
    else:
        distributed = require("distributed", "dask", "a distributed scheduler address")
        with _connect(distributed, spec, connect_timeout(timeout)) as client, dask.config.set(scheduler=client):
            yield


@dataclass
class FileOutcome:
    """What ``map_files`` brings back for one file, in plain picklable values."""

    path: str
    result: Any = None
    error: BaseException | None = None  # the OSError or ValueError the function raised, if it did
    warnings: list[str] = field(default_factory=list)
    trailing_bytes: int = 0  # bytes left over, from PartialRecordWarnings


def _run_on_file(func: Any, path: str, kwargs: dict[str, Any]) -> FileOutcome:
    """``func(path, **kwargs)`` on a worker: warnings come back as text, an OSError or
    ValueError as itself (ipsecstats' exceptions pickle with their attributes)."""
    outcome = FileOutcome(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome.result = func(path, **kwargs)
        except (OSError, ValueError) as exc:
            outcome.error = exc
    for w in caught:
        if isinstance(w.message, PartialRecordWarning):
            outcome.trailing_bytes += w.message.trailing_bytes
        outcome.warnings.append(str(w.message))
    return outcome


def map_files(func: Any, paths: list[str], *, scheduler: str | None = None, **kwargs: Any) -> list[FileOutcome]:
    """``func(path, **kwargs)`` for every path, one dask task each, on ``scheduler``.

    ``func`` must be importable on the workers (a module-level function). An OSError or
    ValueError of one file becomes that file's ``error`` (describe it on the client, e.g.
    with ``describe_error``); the other files still run. Results come back in the order of
    ``paths``.
    """
    dask = require("dask", "dask", "map_files()")
    tasks = [dask.delayed(_run_on_file, pure=False)(func, path, kwargs) for path in paths]
    with use_scheduler(scheduler):
        return list(dask.compute(*tasks))


def convert_logs(paths: Any, directory: str | os.PathLike[str], *, scheduler: str | None = None,
                 **read_options: Any) -> list[str]:
    """``read_logs(paths, **read_options)`` written as a Parquet dataset on ``scheduler``.

    One file per partition; see ``write_parquet_dataset``. Returns the file names.
    """
    frame = read_logs(paths, **read_options)
    with use_scheduler(scheduler):
        return write_parquet_dataset(frame, directory)


def parquet_options(meta: Any) -> dict[str, Any]:
    """zstd; integers DELTA_BINARY_PACKED (slow-growing counters pack to a few bits per
    value), floats BYTE_STREAM_SPLIT, dictionaries only for columns of few distinct values
    (``file``, a capture's ``instance`` names)."""
    categorical = [name for name, dt in meta.dtypes.items() if str(dt) == "category" or dt.kind in "OU"
                   or str(dt).startswith("str")]
    encodings = {}
    for name, dt in meta.dtypes.items():
        if dt.kind in "iu":
            encodings[name] = "DELTA_BINARY_PACKED"
        elif dt.kind == "f":
            encodings[name] = "BYTE_STREAM_SPLIT"
    return {"compression": "zstd", "use_dictionary": categorical, "column_encoding": encodings}


def write_parquet_dataset(frame: Any, directory: str | os.PathLike[str], **options: Any) -> list[str]:
    """Write a dask frame as a Parquet dataset, one file per partition; return the file names.

    The files are written into a temporary sibling directory that is renamed to
    ``directory`` only when every partition is written, so a failure leaves nothing
    behind. ``directory`` must not exist yet (or be empty). uint64 columns stay
    unsigned (Parquet UINT_64); ``options`` override ``parquet_options``.
    """
    options = {**parquet_options(frame._meta), **options}
    target = os.path.abspath(os.fspath(directory))
    if os.path.lexists(target) and not (os.path.isdir(target) and not os.listdir(target)):
        raise FileExistsError(errno.EEXIST, "exists; write the dataset to a new or empty directory", target)
    name = f".{os.path.basename(target)}.{os.getpid()}.{secrets.token_hex(4)}.partial"
    tmp = os.path.join(os.path.dirname(target), name)
    os.mkdir(tmp)  # mode 0o777 & ~umask, as for any new directory (tempfile.mkdtemp would give 0o700)
    try:
        frame.to_parquet(tmp, write_index=False, name_function=lambda i: f"part-{i:05d}.parquet", **options)
        if os.path.isdir(target):  # an empty directory: the dataset takes its place and its mode
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
            os.rmdir(target)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(os.listdir(target))
