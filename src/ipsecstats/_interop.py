"""Tables for the PyData stack: ``to_arrow`` / ``to_pandas`` / ``to_polars`` and back.

Every conversion starts from the columnar kernel's block (``decode_columns``): the
Arrow arrays, pandas columns and polars series wrap those column buffers without a
further copy. Values stay exact: records and counter deltas are uint64, gauge deltas
int64; nothing goes through float. pyarrow, pandas and polars are optional extras,
imported only inside the function that needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from ._columns import Columns, input_records, transpose_records
from ._deltas import delta_dtype
from ._schema import FIELD_NAMES, NFIELDS, RECORD_DTYPE, RECORD_SIZE

__all__ = ["from_arrow", "from_pandas", "from_polars", "table_columns", "to_arrow", "to_pandas", "to_polars"]

_DATETIME_UNITS = ("s", "ms", "us", "ns")
_COARSER_THAN_SECONDS = ("Y", "M", "W", "D", "h", "m")
_ASSEMBLE_RUN_ROWS = 4096  # rows per pass when columns go back to records: fits in L2


def require(module: str, extra: str, caller: str) -> ModuleType:
    """Import an optional library, or raise ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f'{caller} needs {module.split(".")[0]}, which is not installed: pip install "ipsecstats[{extra}]"'
        ) from exc


# ---- inputs --------------------------------------------------------------------------


def _is_row_layout(dt: np.dtype[Any]) -> bool:
    """True for the 168-byte row of 21 native 8-byte integers (records and deltas)."""
    if dt.names != FIELD_NAMES or dt.itemsize != RECORD_SIZE:
        return False
    for j, name in enumerate(FIELD_NAMES):
        fdt, offset = dt.fields[name][:2]  # type: ignore[index]
        if offset != 8 * j or fdt.kind not in "ui" or fdt.itemsize != 8 or not fdt.isnative:
            return False
    return True


def table_columns(data: Any) -> Mapping[str, npt.NDArray[Any]]:
    """The columns of ``data`` as contiguous 1-D arrays, by field name, in order.

    ``data``: a ``Columns`` (used as is), a mapping of name to 1-D array, a records or
    deltas array (transposed by the kernel), another structured numeric array such as
    ``rates`` (one copy per field), raw bytes or an (n, 21) unsigned array (decoded).
    """
    if isinstance(data, Columns):
        return data
    if isinstance(data, Mapping):
        return _checked_mapping(data)
    if isinstance(data, np.ndarray) and data.dtype.names is not None:
        if data.ndim != 1:
            raise ValueError(f"expected a 1-D structured array, got shape {data.shape}")
        dt = data.dtype
        if _is_row_layout(dt):
            return transpose_records(data, tuple(dt.fields[name][0] for name in FIELD_NAMES))  # type: ignore[index]
        columns = {}
        for name in dt.names:
            fdt = dt.fields[name][0]  # type: ignore[index]
            if fdt.kind not in "uif" or fdt.shape:
                raise TypeError(f"field {name!r} has dtype {fdt}; only numeric fields convert")
            columns[name] = np.ascontiguousarray(data[name], dtype=fdt.newbyteorder("="))
        return columns
    return transpose_records(input_records(data, False, "table_columns()"), (np.dtype(np.uint64),) * NFIELDS)


def _checked_mapping(data: Mapping[str, Any]) -> dict[str, npt.NDArray[Any]]:
    columns: dict[str, npt.NDArray[Any]] = {}
    length = None
    for name, values in data.items():
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise ValueError(f"column {name!r} must be 1-D, got shape {arr.shape}")
        if length is not None and arr.shape[0] != length:
            raise ValueError(f"column {name!r} has {arr.shape[0]} rows, the columns before it {length}")
        length = arr.shape[0]
        columns[str(name)] = arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
    if not columns:
        raise ValueError("no columns to convert")
    return columns


def _nrows(columns: Mapping[str, npt.NDArray[Any]]) -> int:
    return int(next(iter(columns.values())).shape[0])


def timestamp_column(timestamps: Any, n: int) -> npt.NDArray[np.datetime64]:
    """One datetime64 per row, in s/ms/us/ns (the units Arrow, pandas and polars share)."""
    arr = np.asarray(timestamps)
    if arr.dtype.kind != "M":
        raise TypeError(
            f"timestamps must be datetime64 values (a numpy datetime64 array or a pandas "
            f"DatetimeIndex), got dtype {arr.dtype}"
        )
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"timestamps must be 1-D with one entry per row ({n}), got shape {arr.shape}")
    unit = np.datetime_data(arr.dtype)[0]
    if unit in _COARSER_THAN_SECONDS:
        return arr.astype("datetime64[s]")
    if unit not in _DATETIME_UNITS:
        raise ValueError(f"timestamps in unit {unit!r} are finer than nanoseconds; no table library holds them")
    return arr


def instance_column(instance: Any, n: int) -> npt.NDArray[Any]:
    """``instance``: k interleaved instances (an int: row i is instance i % k), or one label per row."""
    if isinstance(instance, (int, np.integer)) and not isinstance(instance, bool):
        if instance < 1:
            raise ValueError(f"instance must be >= 1 (the number of interleaved instances), got {instance}")
        return np.arange(n, dtype=np.int64) % int(instance)
    arr = np.asarray(instance)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"instance must be the number of interleaved instances (an int) or one label per row ({n}), "
            f"got shape {arr.shape}"
        )
    return arr


# ---- to_* ----------------------------------------------------------------------------


def _arrow_array(pa: ModuleType, col: npt.NDArray[Any]) -> Any:
    """An Arrow array over the column's own buffer (no copy; it keeps the column alive)."""
    if col.dtype.kind in "uif" and col.dtype.isnative and col.flags.c_contiguous:
        return pa.Array.from_buffers(pa.from_numpy_dtype(col.dtype), len(col), [None, pa.py_buffer(col)])
    return pa.array(col)


def to_arrow(data: Any, *, timestamps: Any = None, instance: Any = None) -> Any:
    """A ``pyarrow.Table``: one column per field, zero-copy over the columnar block.

    ``data``: records, deltas, rates, raw bytes or ``decode_columns``/``delta_columns``
    output. Records and counter deltas are ``uint64``, gauge deltas ``int64``, rates
    ``float64``. ``timestamps`` (datetime64, one per row) adds a leading ``timestamp``
    column; ``instance`` (the number of interleaved instances, or one label per row)
    adds an ``instance`` column.
    """
    pa = require("pyarrow", "arrow", "to_arrow()")
    columns = table_columns(data)
    n = _nrows(columns)
    names: list[str] = []
    arrays: list[Any] = []
    if timestamps is not None:
        names.append("timestamp")
        arrays.append(pa.array(timestamp_column(timestamps, n)))
    if instance is not None:
        names.append("instance")
        arrays.append(pa.array(instance_column(instance, n)))
    for name, col in columns.items():
        names.append(name)
        arrays.append(_arrow_array(pa, col))
    return pa.Table.from_arrays(arrays, names=names)


def to_pandas(data: Any, *, timestamps: Any = None, instance: Any = None) -> Any:
    """A ``pandas.DataFrame`` whose columns share memory with the columnar block.

    Same ``data`` and dtypes as ``to_arrow`` (numpy-backed uint64 / int64 / float64).
    With ``timestamps`` the index is a ``DatetimeIndex`` named ``timestamp``; with
    ``instance`` an ``instance`` column comes first. Built with ``copy=False``: the
    frame wraps the arrays (pandas' copy-on-write protects them from the frame).
    """
    pd = require("pandas", "pandas", "to_pandas()")
    columns = table_columns(data)
    n = _nrows(columns)
    frame: dict[str, Any] = {}
    if instance is not None:
        frame["instance"] = instance_column(instance, n)
    frame.update(columns)
    index = None if timestamps is None else pd.DatetimeIndex(timestamp_column(timestamps, n), name="timestamp")
    return pd.DataFrame(frame, index=index, copy=False)


def to_polars(data: Any, *, timestamps: Any = None, instance: Any = None) -> Any:
    """A ``polars.DataFrame`` over the columnar block (polars wraps numeric numpy buffers).

    Same ``data``, columns and dtypes as ``to_arrow`` (``UInt64`` / ``Int64`` /
    ``Float64``, ``timestamp`` as ``Datetime``).
    """
    pl = require("polars", "polars", "to_polars()")
    columns = table_columns(data)
    n = _nrows(columns)
    series: list[Any] = []
    if timestamps is not None:
        ts = timestamp_column(timestamps, n)
        if np.datetime_data(ts.dtype)[0] == "s":  # polars has no seconds unit; ms holds them exactly
            ts = ts.astype("datetime64[ms]")
        series.append(pl.Series("timestamp", ts))
    if instance is not None:
        series.append(pl.Series("instance", instance_column(instance, n)))
    series.extend(pl.Series(name, col) for name, col in columns.items())
    return pl.DataFrame(series)


# ---- from_* --------------------------------------------------------------------------


def assemble_records(columns: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[np.void]:
    """Row-major records (or deltas) from the 21 field columns, exactly.

    All unsigned -> ``RECORD_DTYPE``; signed columns are gauge deltas (int64), giving
    the ``deltas`` dtype with those fields as gauges.
    """
    kinds = tuple("gauge" if columns[name].dtype.kind == "i" else "counter" for name in FIELD_NAMES)
    dtype = RECORD_DTYPE if "gauge" not in kinds else delta_dtype(kinds)  # type: ignore[arg-type]
    n = _nrows(columns)
    out = np.empty(n, dtype=dtype)
    grid = out.view(np.uint64).reshape(n, NFIELDS)
    bits = [np.asarray(columns[name]).view(np.uint64) for name in FIELD_NAMES]
    for start in range(0, n, _ASSEMBLE_RUN_ROWS):  # strided writes into an L2-sized run
        stop = min(start + _ASSEMBLE_RUN_ROWS, n)
        for j, col in enumerate(bits):
            grid[start:stop, j] = col[start:stop]
    return out


def _missing(available: Any, caller: str) -> None:
    missing = [name for name in FIELD_NAMES if name not in available]
    if missing:
        raise ValueError(f"{caller}: the table lacks field column(s) {', '.join(missing)}")


def _exact_integers(name: str, kind: str, dtype: Any, caller: str) -> np.dtype[Any]:
    """uint64 for an unsigned column, int64 for a signed one; anything else is an error."""
    if kind == "u":
        return np.dtype(np.uint64)
    if kind == "i":
        return np.dtype(np.int64)
    raise TypeError(
        f"{caller}: column {name} has type {dtype}; records need unsigned integers (gauge deltas "
        "signed integers), and a float or text column cannot hold every uint64 exactly"
    )


def _null_error(name: str, count: int, first: int, caller: str) -> ValueError:
    return ValueError(f"{caller}: column {name} has {count} missing value(s), the first in row {first}")


def from_arrow(table: Any) -> npt.NDArray[np.void]:
    """Records (``RECORD_DTYPE``) or deltas back from a ``pyarrow.Table``/``RecordBatch``.

    Takes the 21 field columns by name (other columns, such as ``timestamp`` or
    ``file``, are ignored). Unsigned columns give uint64 fields, signed ones int64
    (gauge deltas); nulls and non-integer columns raise.
    """
    pa = require("pyarrow", "arrow", "from_arrow()")
    caller = "from_arrow()"
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"{caller} takes a pyarrow.Table or RecordBatch, not {type(table).__name__}")
    _missing(table.column_names, caller)
    columns = {}
    for name in FIELD_NAMES:
        col = table.column(name)
        t = col.type
        kind = "u" if pa.types.is_unsigned_integer(t) else "i" if pa.types.is_signed_integer(t) else "x"
        target = _exact_integers(name, kind, t, caller)
        if col.null_count:
            first = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise _null_error(name, col.null_count, first, caller)
        columns[name] = col.to_numpy().astype(target, copy=False)
    return assemble_records(columns)


def from_pandas(frame: Any) -> npt.NDArray[np.void]:
    """Records (``RECORD_DTYPE``) or deltas back from a ``pandas.DataFrame``.

    Same rules as ``from_arrow``; numpy, nullable (``UInt64``) and Arrow-backed integer
    dtypes are accepted as long as no value is missing.
    """
    pd = require("pandas", "pandas", "from_pandas()")
    caller = "from_pandas()"
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{caller} takes a pandas.DataFrame, not {type(frame).__name__}")
    _missing(frame.columns, caller)
    columns = {}
    for name in FIELD_NAMES:
        s = frame[name]
        dt = s.dtype
        kind = "u" if pd.api.types.is_unsigned_integer_dtype(dt) else "i" if pd.api.types.is_signed_integer_dtype(dt) else "x"
        target = _exact_integers(name, kind, dt, caller)
        isna = s.isna().to_numpy()
        if isna.any():
            raise _null_error(name, int(isna.sum()), int(np.flatnonzero(isna)[0]), caller)
        columns[name] = s.to_numpy(dtype=target)
    return assemble_records(columns)


def from_polars(frame: Any) -> npt.NDArray[np.void]:
    """Records (``RECORD_DTYPE``) or deltas back from a ``polars.DataFrame``; rules as ``from_arrow``."""
    pl = require("polars", "polars", "from_polars()")
    caller = "from_polars()"
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"{caller} takes a polars.DataFrame (collect a LazyFrame first), not {type(frame).__name__}")
    _missing(frame.columns, caller)
    columns = {}
    for name in FIELD_NAMES:
        s = frame.get_column(name)
        dt = s.dtype
        kind = "u" if dt.is_unsigned_integer() else "i" if dt.is_signed_integer() else "x"
        target = _exact_integers(name, kind, dt, caller)
        if s.null_count():
            first = int(s.is_null().arg_true()[0])
            raise _null_error(name, s.null_count(), first, caller)
        columns[name] = s.to_numpy().astype(target, copy=False)
    return assemble_records(columns)
