"""Tables for the PyData stack: ``to_arrow`` / ``to_pandas`` / ``to_polars`` and back.

Every conversion starts from the columnar kernel's block (``decode_columns``): the
Arrow arrays, pandas columns and polars series wrap those column buffers without a
further copy. Values stay exact: records and counter deltas are uint64, gauge deltas
int64; nothing goes through float. pyarrow, pandas and polars are optional extras,
imported only inside the function that needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from ._columns import Columns, input_records, transpose_records
from ._deltas import delta_dtype, resolve_kinds
from ._schema import FIELD_NAMES, NFIELDS, RECORD_DTYPE, RECORD_SIZE
from ._capture import Capture

__all__ = ["InstanceCodes", "capture_rows", "from_arrow", "from_pandas", "from_polars", "table_columns", "to_arrow", "to_pandas", "to_polars"]

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
    """True for the 168-byte row of 21 little-endian 8-byte integers (records and deltas):
    the layout the kernel's transpose reads."""
    if dt.names != FIELD_NAMES or dt.itemsize != RECORD_SIZE:
        return False
    for j, name in enumerate(FIELD_NAMES):
        fdt, offset = dt.fields[name][:2]  # type: ignore[index]
        if offset != 8 * j or fdt.kind not in "ui" or fdt.itemsize != 8 or fdt != fdt.newbyteorder("<"):
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


# ---- a Capture's tables ---------------------------------------------------------------

CaptureTable = Literal["records", "deltas", "rates"]


class InstanceCodes(NamedTuple):
    """Per-row instance names as ``codes`` into ``names``: a dictionary / categorical column."""

    codes: npt.NDArray[np.intp]
    names: tuple[str, ...]


def capture_rows(
    cap: Capture, what: Any, on_decrease: str, interval: float | None, caller: str
) -> tuple[npt.NDArray[np.void], npt.NDArray[np.datetime64] | None, InstanceCodes]:
    """A capture's ``what`` table: its rows, their timestamps (or None), their instances.

    ``"records"``: every record. ``"deltas"`` / ``"rates"``: row ``k`` pairs a record with
    the previous record of the same instance name, rows in the order of the later record,
    which gives the row its timestamp and instance (the pairing of ``ipsecstats convert``,
    ``_pipeline``); rates divide by the time step between the two records, or ``interval``.
    """
    if what not in ("records", "deltas", "rates"):
        raise ValueError(f"{caller}: what must be 'records', 'deltas' or 'rates', got {what!r}")
    if what == "records":
        if on_decrease != "auto" or interval is not None:
            raise TypeError(f"{caller}: on_decrease= and interval= apply to what='deltas' or 'rates', not records")
        return cap.records, cap.timestamps, InstanceCodes(cap.instance_codes, cap.instance_names)
    from ._pipeline import capture_table  # the pairing of every command, written once

    if what == "rates" and interval is None and cap.timestamps is None:
        raise ValueError(f"{caller}: this capture has no timestamps: pass interval= (seconds per sample)")
    rows, later = capture_table(cap, what, on_decrease, interval)
    stamps = None if cap.timestamps is None else cap.timestamps[later]
    return rows, stamps, InstanceCodes(cap.instance_codes[later], cap.instance_names)


def _table_inputs(
    data: Any, timestamps: Any, instance: Any, what: Any, on_decrease: str, interval: float | None, caller: str
) -> tuple[Mapping[str, npt.NDArray[Any]], npt.NDArray[np.datetime64] | None, Any]:
    """The field columns, the timestamp column (or None), and the instance column (an array,
    ``InstanceCodes`` for a Capture, or None) of one ``to_*`` call."""
    if isinstance(data, Capture):
        if timestamps is not None or instance is not None:
            raise TypeError(
                f"{caller}: a Capture carries its own timestamps and instance names; to label the rows "
                "otherwise, pass capture.records with timestamps= and instance="
            )
        rows, stamps, labels = capture_rows(data, what, on_decrease, interval, caller)
        columns = table_columns(rows)
        return columns, None if stamps is None else timestamp_column(stamps, _nrows(columns)), labels
    if what != "records" or on_decrease != "auto" or interval is not None:
        raise TypeError(
            f"{caller}: what=, on_decrease= and interval= choose a Capture's table; for other data "
            "convert ipsecstats.deltas(records) or ipsecstats.rates(records) directly"
        )
    columns = table_columns(data)
    n = _nrows(columns)
    stamps = None if timestamps is None else timestamp_column(timestamps, n)
    return columns, stamps, None if instance is None else instance_column(instance, n)


# ---- to_* ----------------------------------------------------------------------------


def _arrow_array(pa: ModuleType, col: npt.NDArray[Any]) -> Any:
    """An Arrow array over the column's own buffer (no copy; it keeps the column alive)."""
    if col.dtype.kind in "uif" and col.dtype.isnative and col.flags.c_contiguous:
        return pa.Array.from_buffers(pa.from_numpy_dtype(col.dtype), len(col), [None, pa.py_buffer(col)])
    return pa.array(col)


def to_arrow(
    data: Any,
    *,
    timestamps: Any = None,
    instance: Any = None,
    what: CaptureTable = "records",
    on_decrease: str = "auto",
    interval: float | None = None,
) -> Any:
    """A ``pyarrow.Table``: one column per field, zero-copy over the columnar block.

    ``data``: records, deltas, rates, raw bytes or ``decode_columns``/``delta_columns``
    output. Records and counter deltas are ``uint64``, gauge deltas ``int64``, rates
    ``float64``. ``timestamps`` (datetime64, one per row) adds a leading ``timestamp``
    column; ``instance`` (the number of interleaved instances, or one label per row)
    adds an ``instance`` column.

    ``data`` may be a ``Capture`` (``read_wnode``, ``read_cim_csv``): its timestamps (when
    it has them) and instance names (dictionary-encoded) come along; ``timestamps=`` or
    ``instance=`` with a Capture is a TypeError. ``what`` picks the Capture's table:
    ``"records"``, or ``"deltas"`` / ``"rates"`` of each record against the previous
    record of the same instance name (rows in capture order, each with the later record's
    timestamp and instance, as ``ipsecstats convert --what``), ``on_decrease`` as in
    ``deltas``, ``interval`` (seconds) replacing the time steps. These three apply to a
    Capture only.
    """
    pa = require("pyarrow", "arrow", "to_arrow()")
    columns, stamps, labels = _table_inputs(data, timestamps, instance, what, on_decrease, interval, "to_arrow()")
    names: list[str] = []
    arrays: list[Any] = []
    if stamps is not None:
        names.append("timestamp")
        arrays.append(pa.array(stamps))
    if isinstance(labels, InstanceCodes):
        names.append("instance")
        arrays.append(pa.DictionaryArray.from_arrays(labels.codes.astype(np.int32), pa.array(labels.names, pa.string())))
    elif labels is not None:
        names.append("instance")
        arrays.append(pa.array(labels))
    for name, col in columns.items():
        names.append(name)
        arrays.append(_arrow_array(pa, col))
    return pa.Table.from_arrays(arrays, names=names)


def to_pandas(
    data: Any,
    *,
    timestamps: Any = None,
    instance: Any = None,
    what: CaptureTable = "records",
    on_decrease: str = "auto",
    interval: float | None = None,
) -> Any:
    """A ``pandas.DataFrame`` whose columns share memory with the columnar block.

    Same ``data`` (a Capture too, with ``what``/``on_decrease``/``interval``) and dtypes as
    ``to_arrow`` (numpy-backed uint64 / int64 / float64).
    With ``timestamps`` the index is a ``DatetimeIndex`` named ``timestamp``; with
    ``instance`` an ``instance`` column comes first. Built with ``copy=False``: the
    frame wraps the arrays (pandas' copy-on-write protects them from the frame). A
    Capture's ``instance`` column is a ``Categorical`` of its instance names.
    """
    pd = require("pandas", "pandas", "to_pandas()")
    columns, stamps, labels = _table_inputs(data, timestamps, instance, what, on_decrease, interval, "to_pandas()")
    frame: dict[str, Any] = {}
    if isinstance(labels, InstanceCodes):
        frame["instance"] = pd.Categorical.from_codes(labels.codes, categories=list(labels.names))
    elif labels is not None:
        frame["instance"] = labels
    frame.update(columns)
    index = None if stamps is None else pd.DatetimeIndex(stamps, name="timestamp")
    return pd.DataFrame(frame, index=index, copy=False)


def to_polars(
    data: Any,
    *,
    timestamps: Any = None,
    instance: Any = None,
    what: CaptureTable = "records",
    on_decrease: str = "auto",
    interval: float | None = None,
) -> Any:
    """A ``polars.DataFrame`` over the columnar block (polars wraps numeric numpy buffers).

    Same ``data`` (a Capture too, with ``what``/``on_decrease``/``interval``), columns and
    dtypes as ``to_arrow`` (``UInt64`` / ``Int64`` /
    ``Float64``, ``timestamp`` as ``Datetime``). A Capture's ``instance`` column is an
    ``Enum`` of its instance names.
    """
    pl = require("polars", "polars", "to_polars()")
    columns, stamps, labels = _table_inputs(data, timestamps, instance, what, on_decrease, interval, "to_polars()")
    series: list[Any] = []
    if stamps is not None:
        if np.datetime_data(stamps.dtype)[0] == "s":  # polars has no seconds unit; ms holds them exactly
            stamps = stamps.astype("datetime64[ms]")
        series.append(pl.Series("timestamp", stamps))
    if isinstance(labels, InstanceCodes):
        names = np.array(labels.names, dtype=object)[labels.codes]
        series.append(pl.Series("instance", names, dtype=pl.Enum(list(labels.names))))
    elif labels is not None:
        series.append(pl.Series("instance", labels))
    series.extend(pl.Series(name, col) for name, col in columns.items())
    return pl.DataFrame(series)


# ---- from_* --------------------------------------------------------------------------
#
# One loop (``_from_table``) serves the three libraries. Each library contributes only a
# column reader: name -> (values, nulls, type name), where ``values`` is the column as a
# 1-D numpy integer array with any nulls filled (zero-copy where the library allows it),
# or None when the column's type is not an integer type; ``nulls`` is a bool mask or
# None when the column has no missing value.

_INT64_MAX = 2**63 - 1
ColumnReader = Callable[[str], tuple[npt.NDArray[Any] | None, npt.NDArray[np.bool_] | None, str]]


def assemble_records(columns: Mapping[str, npt.NDArray[Any]], dtype: np.dtype[np.void]) -> npt.NDArray[np.void]:
    """Row-major ``dtype`` rows (``RECORD_DTYPE`` or a deltas dtype) from 21 columns.

    Each column holds 8-byte integers whose bit pattern is the field's value in
    ``dtype`` (uint64, or int64 two's complement), so the copy is bit-exact.
    """
    n = _nrows(columns)
    out = np.empty(n, dtype=dtype)
    grid = out.view("<u8").reshape(n, NFIELDS)  # the rows are little-endian; the columns native
    bits = [columns[name].view(np.uint64) for name in FIELD_NAMES]
    for start in range(0, n, _ASSEMBLE_RUN_ROWS):  # strided writes into an L2-sized run
        stop = min(start + _ASSEMBLE_RUN_ROWS, n)
        for j, col in enumerate(bits):
            grid[start:stop, j] = col[start:stop]
    return out


def _target_dtype(what: Any, kinds: Mapping[str, str] | None, caller: str) -> np.dtype[np.void]:
    """``RECORD_DTYPE`` for ``what="records"``, the deltas dtype of ``kinds`` for ``"deltas"``."""
    if what == "records":
        if kinds is not None:
            raise ValueError(f"{caller}: kinds= applies to what='deltas' only; every records field is a uint64")
        return RECORD_DTYPE
    if what == "deltas":
        return delta_dtype(resolve_kinds(kinds))
    raise ValueError(f"{caller}: what must be 'records' or 'deltas', got {what!r}")


def _role(what: str, target: np.dtype[Any]) -> str:
    if what == "records":
        return "a records field is a uint64 (0 .. 2**64-1)"
    if target.kind == "u":
        return "a counter delta is a uint64 (0 .. 2**64-1); pass kinds={...: 'gauge'} if this field is a gauge"
    return "a gauge delta is an int64 (-2**63 .. 2**63-1); pass kinds={...: 'counter'} if this field is a counter"


def _exact_column(values: npt.NDArray[Any], name: str, target: np.dtype[Any], what: str, caller: str) -> Any:
    """``values`` as 8-byte integers holding the exact value in ``target`` (uint64 or int64).

    A signed column into uint64 must hold no negative value; an unsigned column into
    int64 no value above 2**63-1. Otherwise ValueError naming the column, the first
    offending row and its value. Same-width native columns are reinterpreted, not copied.
    """
    src = values.dtype
    bad = None
    if values.size and src.kind == "i" and target.kind == "u" and values.min() < 0:
        bad = values < 0
    elif values.size and src.kind == "u" and target.kind == "i" and src.itemsize == 8 and values.max() > _INT64_MAX:
        bad = values > _INT64_MAX
    if bad is not None:
        row = int(np.argmax(bad))
        raise ValueError(
            f"{caller}: column {name} holds {int(values[row])} in row {row}, but {_role(what, target)}"
        )
    if src.itemsize == 8 and src.isnative:
        return values.view(target.newbyteorder("="))
    return values.astype(target.newbyteorder("="))


def _from_table(names: Sequence[str], column: ColumnReader, what: Any, kinds: Any, caller: str) -> Any:
    """The 21 field columns of a table, checked and converted exactly, as one array."""
    dtype = _target_dtype(what, kinds, caller)
    missing = [name for name in FIELD_NAMES if name not in names]
    if missing:
        raise ValueError(f"{caller}: the table lacks field column(s) {', '.join(missing)}")
    doubled = [name for name in FIELD_NAMES if names.count(name) > 1]
    if doubled:
        raise ValueError(f"{caller}: the table has more than one column named {', '.join(doubled)}")
    columns = {}
    for name in FIELD_NAMES:
        target = dtype.fields[name][0]  # type: ignore[index]
        values, nulls, type_name = column(name)
        if values is None or values.ndim != 1 or values.dtype.kind not in "ui" or values.dtype.itemsize > 8:
            raise TypeError(
                f"{caller}: column {name} has type {type_name}; it needs integers ({_role(what, target)}), "
                "and a float or text column may already have lost uint64 precision"
            )
        if nulls is not None and nulls.any():
            raise ValueError(
                f"{caller}: column {name} has {int(nulls.sum())} missing value(s), the first in row "
                f"{int(np.argmax(nulls))}"
            )
        columns[name] = _exact_column(values, name, target, what, caller)
    return assemble_records(columns, dtype)


def from_arrow(
    table: Any, *, what: Literal["records", "deltas"] = "records", kinds: Mapping[str, str] | None = None
) -> npt.NDArray[np.void]:
    """Records or deltas back from a ``pyarrow.Table``/``RecordBatch``, exactly.

    Takes the 21 field columns by name (other columns, such as ``timestamp`` or
    ``instance``, are ignored). ``what`` says what the table holds; it is never guessed
    from the column types (a CSV round trip turns uint64 columns into int64 ones):

    * ``"records"`` -> ``RECORD_DTYPE``: every field uint64;
    * ``"deltas"`` -> the ``deltas`` dtype: counters uint64, gauges int64, the gauges
      being the default ones overridden by ``kinds`` (as in ``ipsecstats.deltas``).

    Any integer column type is accepted when every value fits its field: a signed column
    into a uint64 field must hold no negative value, an unsigned column into an int64
    field no value above 2**63-1 (ValueError naming the column, row and value). Float,
    text and other columns raise TypeError; missing values raise ValueError.
    """
    pa = require("pyarrow", "arrow", "from_arrow()")
    caller = "from_arrow()"
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"{caller} takes a pyarrow.Table or RecordBatch, not {type(table).__name__}")

    def column(name: str) -> Any:
        col = table.column(name)
        if not pa.types.is_integer(col.type):
            return None, None, str(col.type)
        if col.null_count:
            return col.fill_null(0).to_numpy(), col.is_null().to_numpy(zero_copy_only=False), str(col.type)
        return col.to_numpy(), None, str(col.type)  # zero-copy for one chunk

    return _from_table(table.column_names, column, what, kinds, caller)


def from_pandas(
    frame: Any, *, what: Literal["records", "deltas"] = "records", kinds: Mapping[str, str] | None = None
) -> npt.NDArray[np.void]:
    """Records or deltas back from a ``pandas.DataFrame``; ``what``/``kinds`` and rules as ``from_arrow``.

    numpy, nullable (``UInt64``) and Arrow-backed integer dtypes are accepted, so is the
    int64 that ``pd.read_csv`` gives a uint64 column whose values are all below 2**63.
    """
    pd = require("pandas", "pandas", "from_pandas()")
    caller = "from_pandas()"
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{caller} takes a pandas.DataFrame, not {type(frame).__name__}")

    def column(name: str) -> Any:
        s = frame[name]
        dt = s.dtype
        if not pd.api.types.is_integer_dtype(dt):
            return None, None, str(dt)
        if isinstance(dt, np.dtype):  # numpy-backed: no missing values, zero-copy
            return s.to_numpy(), None, str(dt)
        target = np.dtype(dt.numpy_dtype)
        nulls = s.isna().to_numpy()
        if nulls.any():
            return s.to_numpy(dtype=target, na_value=0), nulls, str(dt)
        return s.to_numpy(dtype=target), None, str(dt)

    return _from_table(list(frame.columns), column, what, kinds, caller)


def from_polars(
    frame: Any, *, what: Literal["records", "deltas"] = "records", kinds: Mapping[str, str] | None = None
) -> npt.NDArray[np.void]:
    """Records or deltas back from a ``polars.DataFrame``; ``what``/``kinds`` and rules as ``from_arrow``."""
    pl = require("polars", "polars", "from_polars()")
    caller = "from_polars()"
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"{caller} takes a polars.DataFrame (collect a LazyFrame first), not {type(frame).__name__}")

    def column(name: str) -> Any:
        s = frame.get_column(name)
        if not s.dtype.is_integer():
            return None, None, str(s.dtype)
        if s.null_count():
            return s.fill_null(0).to_numpy(), s.is_null().to_numpy(), str(s.dtype)
        return s.to_numpy(), None, str(s.dtype)  # zero-copy for one chunk

    return _from_table(frame.columns, column, what, kinds, caller)
