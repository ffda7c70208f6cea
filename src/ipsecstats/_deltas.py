"""Per-interval deltas and rates with exact uint64 semantics.

Row ``i`` of the output compares ``records[i]`` with ``records[i + stride]`` (with
``previous``, the first ``stride`` rows compare against it). All arithmetic is on
uint64 modulo 2**64; see ``deltas`` for how a decreasing counter is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _backend
from ._alloc import aligned_empty
from ._checks import check_int
from ._decode import as_record_array, record_bytes_2d
from ._errors import CounterResetError
from ._keyed import InstanceState, keyed_deltas
from ._rules import (
    ON_DECREASE,
    DecreasePolicy,
    check_apart,
    check_out,
    check_policy,
    counter_lanes,
    delta_dtype,
    exact_int_difference,
    rate_dtype,
    resolve_kinds,
)
from ._schema import FIELD_NAMES, NFIELDS, RECORD_SIZE, Kind

__all__ = ["DecreasePolicy", "ON_DECREASE", "deltas", "delta_dtype", "rate_dtype", "rates", "resolve_kinds"]

def _check_stride(stride: Any) -> int:
    return check_int("stride", stride, 1)


def deltas(
    records: Any,
    *,
    stride: int = 1,
    on_decrease: DecreasePolicy = "auto",
    previous: Any = None,
    kinds: Mapping[str, str] | None = None,
    return_resets: bool = False,
    out: Any = None,
    instances: Any = None,
) -> Any:
    """Change per interval of every field, exact in uint64.

    Row ``i`` is ``records[i + stride] - records[i]`` (``n - stride`` rows, never fewer
    than 0). With ``previous`` (the last ``stride`` records of the preceding batch) row
    ``i`` is ``records[i] - (previous[i] if i < stride else records[i - stride])`` and
    there are ``n`` rows, so chunked processing equals one-shot processing.

    Gauges (int64): ``(cur - prev) mod 2**64`` read as two's complement, e.g. 5 -> 3 is -2.
    Counters (uint64): ``cur - prev`` when ``cur >= prev``; otherwise by ``on_decrease``:

    * ``"wrap"``: ``(cur - prev) mod 2**64`` (RRDtool/collectd COUNTER);
    * ``"reset"``: ``cur``, growth since a restart from 0 (Prometheus);
    * ``"zero"``: ``0``;
    * ``"raise"``: ``CounterResetError`` naming the row, field and both values;
    * ``"auto"``: a fall of less than 2**63 is a restart (``cur``), a fall of 2**63 or
      more is a wrap (``(cur - prev) mod 2**64``).

    ``return_resets=True`` also returns a ``(rows, 21)`` bool array, True where a
    counter went down. The input is never modified.

    ``out``: write into preallocated, C-contiguous arrays instead of fresh ones (a
    values array, or ``(values, resets)`` with ``return_resets=True``), which spares the
    page faults of new memory when a loop processes batches of the same size.

    ``instances``: one instance per record (integer codes >= 0, or hashable labels such
    as names) instead of ``stride``: each record is compared with the previous record of
    its instance, and records without one give no row (see ``keyed_deltas``, which also
    says which records each row compares). ``previous`` is then an ``InstanceState``
    (updated in place) or None; ``out`` needs at least ``len(records)`` rows and the
    result is its first rows.
    """
    if instances is not None:
        return _instance_deltas(records, instances, stride, on_decrease, previous, kinds, return_resets, out)
    if _is_instance_state(previous):
        raise TypeError("previous=InstanceState goes with instances= (the instance of every record)")
    on_decrease = check_policy(on_decrease)
    stride = _check_stride(stride)
    kind_tuple = resolve_kinds(kinds)
    recs = as_record_array(records, "deltas()")
    rows2d = record_bytes_2d(recs)
    n = recs.shape[0]

    pairs: list[tuple[Any, Any, int]] = []  # (prev rows, cur rows, output row offset)
    if previous is not None:
        try:
            prev_recs = as_record_array(previous, "previous")
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        if prev_recs.shape[0] != stride:
            raise ValueError(
                f"previous must hold the last stride={stride} record(s) of the preceding batch, "
                f"got {prev_recs.shape[0]}"
            )
        head = min(stride, n)
        pairs.append((record_bytes_2d(prev_recs)[:head], rows2d[:head], 0))
        if n > stride:
            pairs.append((rows2d[: n - stride], rows2d[stride:], stride))
        nout = n
    else:
        nout = max(n - stride, 0)
        if nout:
            pairs.append((rows2d[:nout], rows2d[stride:], 0))

    values, resets = _outputs(out, nout, delta_dtype(kind_tuple), return_resets)
    if resets is None and on_decrease == "raise":
        resets = aligned_empty((nout, NFIELDS), np.bool_)
    if out is not None:
        sources = [recs] if previous is None else [recs, prev_recs]
        targets = [values] if resets is None else [values, resets]
        if any(np.may_share_memory(t, s) for t in targets for s in sources):
            raise ValueError("out must not overlap the input records")
    out_bytes = values.view(np.uint8).reshape(nout, RECORD_SIZE)
    counters = counter_lanes(kind_tuple)
    policy = "wrap" if on_decrease == "raise" else on_decrease
    kernel = _backend.KERNEL
    ndec = 0
    for prev_rows, cur_rows, start in pairs:
        stop = start + prev_rows.shape[0]
        mask_part = None if resets is None else resets[start:stop].view(np.uint8)
        ndec += kernel.delta_rows(prev_rows, cur_rows, counters, policy, out_bytes[start:stop], mask_part)

    if on_decrease == "raise" and ndec:
        assert resets is not None
        row, col = divmod(int(np.argmax(resets.reshape(-1))), NFIELDS)
        name = FIELD_NAMES[col]
        cur_val = int(recs[row][name]) if previous is not None else int(recs[row + stride][name])
        if previous is not None:
            prev_val = int(prev_recs[row][name]) if row < stride else int(recs[row - stride][name])
        else:
            prev_val = int(recs[row][name])
        raise CounterResetError(row, name, prev_val, cur_val, stride)
    if return_resets:
        return values, resets
    return values


def _is_instance_state(obj: Any) -> bool:
    return isinstance(obj, InstanceState)


def _instance_deltas(records: Any, instances: Any, stride: Any, on_decrease: Any, previous: Any, kinds: Any,
                     return_resets: bool, out: Any) -> Any:
    """``deltas(records, instances=...)``: the rows of ``keyed_deltas``."""
    if isinstance(stride, bool) or stride != 1:
        raise TypeError("deltas() takes stride= or instances=, not both: instances pair the records by themselves")
    if previous is not None and not _is_instance_state(previous):
        raise TypeError(f"with instances=, previous must be an InstanceState or None, not {type(previous).__name__}")
    result = keyed_deltas(records, instances, state=previous, on_decrease=on_decrease, kinds=kinds,
                          return_resets=return_resets, out=out)
    if return_resets:
        return result.values, result.resets
    return result.values


def _outputs(out: Any, nrows: int, dtype: np.dtype[np.void], return_resets: bool) -> tuple[Any, Any]:
    """The values and resets arrays to write: the caller's ``out``, or fresh aligned ones."""
    if out is None:
        values = aligned_empty(nrows, dtype)
        return values, aligned_empty((nrows, NFIELDS), np.bool_) if return_resets else None
    if return_resets:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("with return_resets=True, out must be a tuple (values, resets)")
        values, resets = out
        check_out("out[1] (resets)", resets, (nrows, NFIELDS), np.dtype(np.bool_))
    else:
        values, resets = out, None
    check_out("out" if resets is None else "out[0] (values)", values, (nrows,), dtype)
    check_apart(values, resets)
    return values, resets


def _seconds_per_row(n: int, stride: int, interval: Any, timestamps: Any) -> npt.NDArray[np.float64] | float:
    """Seconds per output row; rows whose time step is <= 0 (or NaT/NaN) get NaN."""
    if (interval is None) == (timestamps is None):
        raise ValueError("rates() needs exactly one of interval= (seconds) or timestamps=")
    if interval is not None:
        try:
            seconds = float(interval)
        except (TypeError, ValueError):
            raise TypeError(f"interval must be a number of seconds, not {interval!r}") from None
        if not (seconds > 0 and np.isfinite(seconds)):
            raise ValueError(f"interval must be a finite number of seconds > 0, got {interval!r}")
        return seconds
    ts = np.asarray(timestamps)
    if ts.ndim != 1 or ts.shape[0] != n:
        raise ValueError(f"timestamps must be 1-D with one entry per record ({n}), got shape {ts.shape}")
    earlier, later = ts[: max(n - stride, 0)], ts[stride:]
    if ts.dtype.kind == "M":
        with np.errstate(invalid="ignore"):
            step = (later - earlier) / np.timedelta64(1, "s")  # NaT gives NaN
    elif ts.dtype.kind in "iu":
        step = exact_int_difference(later, earlier)
    elif ts.dtype.kind == "f":
        step = later.astype(np.float64) - earlier.astype(np.float64)
    else:
        raise TypeError(f"timestamps must be datetime64 or seconds (numbers), got dtype {ts.dtype}")
    step[~(step > 0)] = np.nan
    return step


def rates(
    records: Any,
    *,
    interval: float | None = None,
    timestamps: Any = None,
    stride: int = 1,
    on_decrease: DecreasePolicy = "auto",
    kinds: Mapping[str, str] | None = None,
) -> npt.NDArray[np.void]:
    """Per-second rates of the counter fields: ``deltas(...) / seconds`` as float64.

    ``interval`` is the sampling period of one instance; with ``timestamps`` (one per
    record, datetime64 or float seconds) row ``i`` divides by
    ``timestamps[i + stride] - timestamps[i]``. A time step <= 0 gives NaN in that row.
    The uint64 delta is rounded once, to the nearest float64.
    """
    on_decrease = check_policy(on_decrease)
    stride = _check_stride(stride)
    kind_tuple = resolve_kinds(kinds)
    recs = as_record_array(records, "rates()")
    n = recs.shape[0]
    nrows = max(n - stride, 0)
    seconds = _seconds_per_row(n, stride, interval, timestamps)
    if on_decrease == "raise":  # the deltas first: a fall raises, naming its row
        d = deltas(recs, stride=stride, on_decrease=on_decrease, kinds=kinds)
    out = aligned_empty(nrows, rate_dtype(kind_tuple))
    if on_decrease == "raise":
        divide_counters(d, kind_tuple, seconds, out)
    elif nrows:  # deltas and rates in one pass, no array of deltas: the same bits
        out2d = rate_grid(out)
        rows2d = record_bytes_2d(recs)
        per_row = np.array([seconds]) if isinstance(seconds, float) else np.ascontiguousarray(seconds, np.float64)
        _backend.KERNEL.delta_rate_rows(rows2d[:nrows], rows2d[stride:], counter_lanes(kind_tuple), on_decrease,
                                        _counter_columns(kind_tuple), per_row, out2d)
    return out


def divide_counters(rows: npt.NDArray[np.void], kinds: tuple[Kind, ...],
                    seconds: float | npt.NDArray[np.float64], out: npt.NDArray[np.void]) -> None:
    """``out[i][counter j] = rows[i][counter j] / seconds[i]``: the one rounding of every rate.

    ``rows``: (m,) deltas (168-byte little-endian rows, ``delta_dtype``); ``seconds``: one
    interval, or one per row; ``out``: (m,) ``rate_dtype(kinds)`` (native float64). Each
    uint64 is rounded once to float64, then divided (IEEE), in either backend.
    """
    per_row = np.array([seconds]) if isinstance(seconds, float) else np.ascontiguousarray(seconds, np.float64)
    _backend.KERNEL.rate_rows(native_values(rows), _counter_columns(kinds), per_row, rate_grid(out))


def native_values(rows: npt.NDArray[np.void]) -> npt.NDArray[np.uint64]:
    """(m, 21) native uint64 of contiguous 168-byte little-endian rows (records or deltas;
    gauge deltas as their two's-complement bits): a view on a little-endian host, a
    byte-swapped copy on a big-endian one."""
    return rows.view("<u8").reshape(rows.shape[0], NFIELDS).astype(np.uint64, copy=False)


def rate_grid(out: npt.NDArray[np.void]) -> npt.NDArray[np.float64]:
    """(m, counters) float64 view of a contiguous ``rate_dtype`` array (native byte order)."""
    if not out.dtype.isnative:
        raise ValueError(f"rates must be native float64, got dtype {out.dtype}")
    return out.view(np.float64).reshape(out.shape[0], len(out.dtype.names or ()))  # not -1: m may be 0


@lru_cache(maxsize=64)
def _counter_columns(kinds: tuple[Kind, ...]) -> npt.NDArray[np.uint8]:
    """The indices of the counter fields, in record order (the columns of the rates)."""
    columns = np.array([j for j, k in enumerate(kinds) if k == "counter"], dtype=np.uint8)
    columns.flags.writeable = False
    return columns
