"""Instance-keyed deltas: each record against the previous record of the same instance.

Real captures interleave instances irregularly (an HBA appears, disappears and comes
back; samples go missing), so a fixed ``stride`` cannot pair them. Here every record
carries an instance code and is compared with the last record of that code: an earlier
record of the same chunk, or the one ``InstanceState`` kept from an earlier chunk. A
record with no earlier record of its instance gives no row. The arithmetic of each row
is that of ``deltas`` (see there; ``_kernel.h`` states it in C).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from . import _backend
from ._alloc import aligned_empty
from ._checks import check_int
from ._decode import as_record_array, record_bytes_2d
from ._rules import (
    DecreasePolicy,
    check_apart,
    check_out,
    check_policy,
    counter_lanes,
    delta_dtype,
    exact_int_difference,
    resolve_kinds,
)
from ._errors import CounterResetError
from ._schema import FIELD_NAMES, NFIELDS, RECORD_DTYPE, RECORD_SIZE

__all__ = ["InstanceState", "KeyedDeltas", "instance_codes", "keyed_deltas"]

NAT = np.iinfo(np.int64).min  # the int64 of numpy's NaT


class InstanceState:
    """The carry of ``keyed_deltas`` between chunks: the last record of every instance.

    ``rows`` (K, 168) uint8: the last record of instance ``k`` (``records`` views them as
    ``RECORD_DTYPE``); ``ticks`` (K,) int64: its timestamp in nanoseconds (NaT's value
    when it had none); ``seen`` (K,) uint8: 1 where instance ``k`` has a record;
    ``labels``: label -> code, when the instances were given as labels. It grows by itself
    when a larger code (or a new label) arrives. ``copy()`` is a deep copy; it pickles.
    """

    __slots__ = ("rows", "ticks", "seen", "labels")

    def __init__(self, size: int = 0) -> None:
        size = check_int("size", size, 0)
        self.rows = np.zeros((size, RECORD_SIZE), np.uint8)
        self.ticks = np.full(size, NAT, np.int64)
        self.seen = np.zeros(size, np.uint8)
        self.labels: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __repr__(self) -> str:
        return f"InstanceState({len(self)} instances, {int(np.count_nonzero(self.seen))} seen)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self.rows, self.ticks, self.seen, self.labels))

    @property
    def records(self) -> npt.NDArray[np.void]:
        """The last records as ``RECORD_DTYPE`` (a view; meaningful where ``seen``)."""
        return self.rows.view(RECORD_DTYPE).reshape(-1)

    def copy(self) -> InstanceState:
        return _restore(self.rows, self.ticks, self.seen, self.labels)

    def grow(self, size: int) -> None:
        """Hold at least ``size`` instances (new ones unseen)."""
        old = len(self)
        if size <= old:
            return
        rows = np.zeros((size, RECORD_SIZE), np.uint8)
        ticks = np.full(size, NAT, np.int64)
        seen = np.zeros(size, np.uint8)
        rows[:old], ticks[:old], seen[:old] = self.rows, self.ticks, self.seen
        self.rows, self.ticks, self.seen = rows, ticks, seen

    def _assign(self, other: InstanceState) -> None:
        self.rows, self.ticks, self.seen, self.labels = other.rows, other.ticks, other.seen, other.labels


def _restore(rows: Any, ticks: Any, seen: Any, labels: Mapping[Hashable, int]) -> InstanceState:
    state = InstanceState.__new__(InstanceState)
    state.rows = np.array(rows, np.uint8, copy=True).reshape(-1, RECORD_SIZE)
    state.ticks = np.array(ticks, np.int64, copy=True)
    state.seen = np.array(seen, np.uint8, copy=True)
    state.labels = dict(labels)
    return state


class KeyedDeltas(NamedTuple):
    """The result of ``keyed_deltas``: one row per record that has an earlier record of its instance.

    ``values``: the deltas (``deltas``' dtype), rows in the order of the later record.
    ``resets``: (m, 21) bool, True where a counter fell (with ``return_resets``), else None.
    ``later``: (m,) intp, the index in ``records`` of each row's later record.
    ``earlier``: (m,) intp, the index of its earlier record, -1 when that record is the
    one ``previous_state`` kept (``previous_state.records[codes[later]]``).
    ``steps``: (m,) float64 seconds from the earlier to the later timestamp (NaN where
    either is NaT), or None without timestamps.
    ``previous_state``: a copy of the state before the call; ``state``: the state after
    it (the one passed in, updated in place, or a new one).
    """

    values: npt.NDArray[np.void]
    resets: npt.NDArray[np.bool_] | None
    later: npt.NDArray[np.intp]
    earlier: npt.NDArray[np.intp]
    steps: npt.NDArray[np.float64] | None
    previous_state: InstanceState
    state: InstanceState


def instance_codes(instances: Any, n: int, state: InstanceState) -> npt.NDArray[np.intp]:
    """(n,) intp codes from integer codes, or from hashable labels coded in order of first
    appearance through ``state.labels`` (new labels are added to it). Integer codes are
    passed on unchecked: the kernel refuses any code outside [0, len(state))."""
    arr = instances if isinstance(instances, np.ndarray) else np.asarray(instances)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"instances must be 1-D with one entry per record ({n}), got shape {arr.shape}")
    if arr.dtype.kind == "b":
        raise TypeError("instances must be integer codes or hashable labels, not booleans")
    if n == 0:  # np.asarray([]) is float64
        return np.empty(0, np.intp)
    if arr.dtype.kind in "iu":
        if state.labels:
            raise ValueError("this InstanceState codes instance labels: pass the labels, not integer codes")
        # a negative code is left to the kernel, which checks every code anyway (no extra pass)
        if n and arr.dtype.kind == "u" and int(arr.max()) > np.iinfo(np.intp).max:
            i = int(np.argmax(arr > np.iinfo(np.intp).max))
            raise ValueError(f"instances[{i}] = {int(arr[i])}: instance code too large")
        return np.ascontiguousarray(arr, dtype=np.intp)
    if arr.dtype.kind not in "USO":
        raise TypeError(f"instances must be integer codes or hashable labels, got dtype {arr.dtype}")
    if not state.labels and np.any(state.seen):
        raise ValueError("this InstanceState holds integer codes: pass integer codes, not labels")
    labels = state.labels
    if arr.dtype.kind in "US":  # distinct labels first, then one dict look-up per label
        uniq, first, inverse = np.unique(arr, return_index=True, return_inverse=True)
        mapped = np.empty(uniq.shape[0], np.intp)
        for u in np.argsort(first, kind="stable"):
            label = uniq[u].item()
            mapped[u] = labels.setdefault(label, len(labels))
        return mapped[inverse.reshape(-1)]
    codes = np.empty(n, np.intp)
    for i, label in enumerate(arr.tolist()):
        codes[i] = labels.setdefault(label, len(labels))
    return codes


def _timestamps_ns(timestamps: Any, n: int) -> npt.NDArray[np.int64] | None:
    """(n,) int64 nanoseconds (NaT = int64 min) from datetime64 or integer nanoseconds."""
    if timestamps is None:
        return None
    ts = np.asarray(timestamps)
    if ts.ndim != 1 or ts.shape[0] != n:
        raise ValueError(f"timestamps must be 1-D with one entry per record ({n}), got shape {ts.shape}")
    if ts.dtype.kind == "M":
        return np.ascontiguousarray(ts.astype("M8[ns]").view(np.int64))
    if ts.dtype.kind in "iu" and ts.dtype.kind != "b":
        if ts.dtype.kind == "u" and n and int(ts.max()) > np.iinfo(np.int64).max:
            raise ValueError("integer timestamps (nanoseconds) must fit in int64")
        return np.ascontiguousarray(ts, dtype=np.int64)
    raise TypeError(f"timestamps must be datetime64 or integer nanoseconds, got dtype {ts.dtype}")


def _outputs(out: Any, n: int, dtype: np.dtype[np.void], return_resets: bool) -> tuple[Any, Any]:
    """The caller's ``out`` (at least ``n`` rows: one per record bounds the row count), or fresh arrays."""
    if out is None:
        values = aligned_empty(n, dtype)
        return values, aligned_empty((n, NFIELDS), np.bool_) if return_resets else None
    if return_resets:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("with return_resets=True, out must be a tuple (values, resets)")
        values, resets = out
        rows = resets.shape[0] if isinstance(resets, np.ndarray) and resets.ndim == 2 else n
        check_out("out[1] (resets)", resets, (max(rows, n), NFIELDS), np.dtype(np.bool_))
    else:
        values, resets = out, None
    rows = values.shape[0] if isinstance(values, np.ndarray) and values.ndim == 1 else n
    check_out("out" if resets is None else "out[0] (values)", values, (max(rows, n),), dtype)
    check_apart(values, resets)
    return values, resets


def keyed_deltas(
    records: Any,
    codes: Any,
    *,
    state: InstanceState | None = None,
    timestamps: Any = None,
    on_decrease: DecreasePolicy = "auto",
    kinds: Mapping[str, str] | None = None,
    return_resets: bool = False,
    out: Any = None,
) -> KeyedDeltas:
    """Deltas of each record against the previous record of the same instance.

    ``codes``: one instance per record: integer codes >= 0, or hashable labels (coded in
    order of first appearance, the coding kept in ``state.labels``). Record ``i`` pairs
    with the last earlier record ``j`` of its instance in ``records``, else with the
    record ``state`` kept for it, else with nothing (no row). Row ``r`` is
    ``records[later[r]] - earlier record`` with the arithmetic of ``deltas`` (counters
    uint64 with ``on_decrease``, gauges int64 modulo 2**64), rows in the order of the
    later record. Every instance's last record then becomes its ``state`` (updated in
    place), so chunk after chunk equals the whole log at once.

    ``timestamps``: datetime64, or int64 nanoseconds, one per record: ``steps`` are
    ``(later - earlier)`` seconds, the nanosecond difference exact before its one
    conversion to float64, then divided by 1e9; NaN where either is NaT.

    The call is all or nothing: on any error (``CounterResetError`` with
    ``on_decrease="raise"`` included) ``state`` is left as it was. ``out``: preallocated
    C-contiguous values (or ``(values, resets)``) of at least ``len(records)`` rows; the
    result is their first ``m`` rows. ``out`` may not overlap the records.
    """
    on_decrease = check_policy(on_decrease)
    kind_tuple = resolve_kinds(kinds)
    recs = as_record_array(records, "keyed_deltas()")
    rows2d = record_bytes_2d(recs)
    n = recs.shape[0]
    if state is None:
        state = InstanceState()
    elif not isinstance(state, InstanceState):
        raise TypeError(f"state must be an InstanceState or None, not {type(state).__name__}")
    previous = state.copy()
    try:
        return _keyed(recs, rows2d, n, codes, state, previous, timestamps, on_decrease, kind_tuple,
                      return_resets, out)
    except BaseException:
        state._assign(previous)  # all or nothing: labels and growth too
        raise


def _keyed(recs: Any, rows2d: Any, n: int, codes: Any, state: InstanceState, previous: InstanceState,
           timestamps: Any, on_decrease: str, kind_tuple: Any, return_resets: bool, out: Any) -> KeyedDeltas:
    code_arr = instance_codes(codes, n, state)
    ticks = _timestamps_ns(timestamps, n)
    if n:
        state.grow(int(code_arr.max()) + 1)
    if np.may_share_memory(recs, state.rows):
        raise ValueError("records must not overlap the state")
    values, resets = _outputs(out, n, delta_dtype(kind_tuple), return_resets)
    if resets is None and on_decrease == "raise":
        resets = aligned_empty((n, NFIELDS), np.bool_)
    if out is not None:
        targets = [values] if resets is None else [values, resets]
        if any(np.may_share_memory(t, recs) for t in targets):
            raise ValueError("out must not overlap the input records")
    # one buffer for the index outputs: large enough for the recycled mappings of _alloc, so a
    # loop over big chunks does not pay the page faults of fresh memory for them every call
    index = aligned_empty((2 if ticks is None else 3, n), np.intp)
    earlier, later = index[0], index[1]
    earlier_ticks = None if ticks is None else index[2].view(np.int64)
    out_bytes = values[:n].view(np.uint8).reshape(n, RECORD_SIZE)
    mask = None if resets is None else resets[:n].view(np.uint8)
    policy = "wrap" if on_decrease == "raise" else on_decrease
    m, ndec = _backend.KERNEL.keyed_delta_rows(
        rows2d, code_arr, ticks, state.rows, state.ticks, state.seen, counter_lanes(kind_tuple), policy,
        out_bytes, mask, earlier, later, earlier_ticks)
    later, earlier = later[:m], earlier[:m]
    if on_decrease == "raise" and ndec:
        assert resets is not None
        raise _reset_error(recs, code_arr, resets[:m], later, earlier, previous)
    steps = None
    if ticks is not None:
        assert earlier_ticks is not None
        t1, t0 = ticks[later], earlier_ticks[:m]
        steps = exact_int_difference(t1, t0)
        steps /= 1e9
        steps[(t1 == NAT) | (t0 == NAT)] = np.nan
    return KeyedDeltas(values[:m], resets[:m] if return_resets else None, later, earlier, steps, previous, state)


def _reset_error(recs: Any, codes: Any, resets: Any, later: Any, earlier: Any,
                 previous: InstanceState) -> CounterResetError:
    row, col = divmod(int(np.argmax(resets.reshape(-1))), NFIELDS)
    name = FIELD_NAMES[col]
    i, j = int(later[row]), int(earlier[row])
    before = recs[j] if j >= 0 else previous.records[codes[i]]
    exc = CounterResetError(row, name, int(before[name]), int(recs[i][name]), None)
    exc.later = i  # type: ignore[attr-defined]  # the index in records of the record that fell
    where = f"record {j}" if j >= 0 else "its last record of an earlier chunk"
    exc.add_note(f"record {i} (instance code {int(codes[i])}) against {where}")
    return exc
