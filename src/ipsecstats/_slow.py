"""Pure-numpy twin of ``_fast``: the same kernel signature, no compiled code of ours.

It is the oracle the tests compare the Cython kernel against, and the fallback where
the extension is not built. The arithmetic is stated in ``_kernel.h``.
"""

from __future__ import annotations

import operator
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _wnode_layout as _wl
from ._schema import NFIELDS, RECORD_SIZE

_HALF = np.uint64(1 << 63)
_POLICIES = ("wrap", "reset", "zero", "auto")


def _check_rows(name: str, shape: tuple[int, ...], rows: int, width: int) -> None:
    if len(shape) != 2 or shape[0] != rows or shape[1] != width:
        raise ValueError(f"{name} must have shape ({rows}, {width}), got {shape}")


def _kernel_buffer(name: str, x: Any, ndim: int, *, layout: str, writeable: bool = False,
                   dtype: Any = np.uint8) -> Any:
    """``x`` as an array of ``dtype``, held to what the compiled kernel's typed memoryview accepts.

    ``layout``: "rows" (last axis contiguous, rows of any stride) or "C" (C-contiguous).
    Misuse raises the same exception types as ``_fast``: TypeError for a non-buffer,
    ValueError for a wrong dtype, dimension count, layout or a read-only output.
    """
    if x is None:
        raise TypeError(f"{name} must be an array, not None")
    memoryview(x)  # TypeError for objects without the buffer protocol, as in Cython
    a = np.asarray(x)
    accepted = (np.dtype(dtype), np.dtype(np.bool_)) if np.dtype(dtype) == np.uint8 else (np.dtype(dtype),)
    if a.dtype not in accepted or a.ndim != ndim:  # Cython takes bool ('?') for uint8_t too
        raise ValueError(f"{name} must be a {ndim}-D {np.dtype(dtype)} buffer, got {a.ndim}-D {a.dtype}")
    if a.dtype == np.bool_:
        a = a.view(np.uint8)  # as the compiled kernel reads it: 0 and 1, never a boolean mask
    # an empty array passes as Cython passes it (numpy 2 gives empty arrays zero strides)
    contiguous = a.flags.c_contiguous if layout == "C" else (a.size == 0 or a.shape[-1] <= 1
                                                           or a.strides[-1] == a.itemsize)
    if not contiguous:
        raise ValueError(f"{name} must be {'C-contiguous' if layout == 'C' else 'contiguous along its last axis'}")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return a


def delta_rows(
    prev: npt.NDArray[np.uint8],
    cur: npt.NDArray[np.uint8],
    counters: npt.NDArray[np.uint8],
    policy: str,
    out: npt.NDArray[np.uint8],
    resets: npt.NDArray[np.uint8] | None = None,
) -> int:
    """``out[i] = policy(cur[i] - prev[i])`` for every row; return how many counters fell."""
    if prev is None or cur is None or counters is None or out is None:
        raise TypeError("prev, cur, counters and out must be arrays, not None")
    prev = _kernel_buffer("prev", prev, 2, layout="rows")
    cur = _kernel_buffer("cur", cur, 2, layout="rows")
    counters = _kernel_buffer("counters", counters, 1, layout="C")
    out = _kernel_buffer("out", out, 2, layout="C", writeable=True)
    if resets is not None:
        resets = _kernel_buffer("resets", resets, 2, layout="C", writeable=True)
    if type(policy) is not str:  # exactly str, as Cython's typed argument takes it
        raise TypeError(f"policy must be a str, not {type(policy).__name__}")
    if policy not in _POLICIES:
        raise ValueError(f"policy must be one of {', '.join(_POLICIES)}, got {policy!r}")
    m = prev.shape[0]
    _check_rows("prev", prev.shape, m, RECORD_SIZE)
    _check_rows("cur", cur.shape, m, RECORD_SIZE)
    _check_rows("out", out.shape, m, RECORD_SIZE)
    if counters.shape != (NFIELDS,):
        raise ValueError(f"counters must have shape ({NFIELDS},), got {counters.shape}")
    if resets is not None:
        _check_rows("resets", resets.shape, m, NFIELDS)
    if m == 0:
        return 0
    p = prev.view("<u8")
    c = cur.view("<u8")
    d = out.view("<u8")
    np.subtract(c, p, out=d)
    dec = np.less(c, p)
    dec &= counters.astype(bool)
    ndec = int(np.count_nonzero(dec))
    if ndec and policy != "wrap":
        if policy == "zero":
            np.copyto(d, np.uint64(0), where=dec)
        else:
            if policy == "auto":
                dec_restart = np.greater(d, _HALF)
                dec_restart &= dec
            else:
                dec_restart = dec
            np.copyto(d, c, where=dec_restart)
    if resets is not None:
        np.copyto(resets, dec, casting="unsafe")
    return ndec



def _check_len(name: str, got: int, want: int) -> None:
    if got != want:
        raise ValueError(f"{name} must have shape ({want},), got ({got},)")


_NAT = np.iinfo(np.int64).min


def keyed_delta_rows(
    cur: npt.NDArray[np.uint8],
    codes: npt.NDArray[np.intp],
    ticks: npt.NDArray[np.int64] | None,
    state_rows: npt.NDArray[np.uint8],
    state_ticks: npt.NDArray[np.int64],
    state_seen: npt.NDArray[np.uint8],
    counters: npt.NDArray[np.uint8],
    policy: str,
    out: npt.NDArray[np.uint8],
    resets: npt.NDArray[np.uint8] | None,
    earlier: npt.NDArray[np.intp],
    later: npt.NDArray[np.intp],
    earlier_ticks: npt.NDArray[np.int64] | None,
) -> tuple[int, int]:
    """Each record against the previous record of its instance; return ``(m, ndec)``.

    A stable sort by code puts each instance's records side by side: every record but
    the first of its run pairs with its predecessor there, the first with the state row
    (when seen). The pairs, in the order of the later record, go through ``delta_rows``.
    """
    if (cur is None or codes is None or state_rows is None or state_ticks is None or state_seen is None
            or counters is None or out is None or earlier is None or later is None):
        raise TypeError("cur, codes, state_rows, state_ticks, state_seen, counters, out, earlier "
                        "and later must be arrays, not None")
    if ticks is not None and earlier_ticks is None:
        raise TypeError("earlier_ticks must be an array when ticks are given")
    if type(policy) is not str:  # exactly str, as Cython's typed argument takes it
        raise TypeError(f"policy must be a str, not {type(policy).__name__}")
    cur = _kernel_buffer("cur", cur, 2, layout="rows")
    codes = _kernel_buffer("codes", codes, 1, layout="C", dtype=np.intp)
    state_rows = _kernel_buffer("state_rows", state_rows, 2, layout="C", writeable=True)
    state_ticks = _kernel_buffer("state_ticks", state_ticks, 1, layout="C", writeable=True, dtype=np.int64)
    state_seen = _kernel_buffer("state_seen", state_seen, 1, layout="C", writeable=True)
    counters = _kernel_buffer("counters", counters, 1, layout="C")
    out = _kernel_buffer("out", out, 2, layout="C", writeable=True)
    earlier = _kernel_buffer("earlier", earlier, 1, layout="C", writeable=True, dtype=np.intp)
    later = _kernel_buffer("later", later, 1, layout="C", writeable=True, dtype=np.intp)
    if ticks is not None:
        ticks = _kernel_buffer("ticks", ticks, 1, layout="C", dtype=np.int64)
        earlier_ticks = _kernel_buffer("earlier_ticks", earlier_ticks, 1, layout="C", writeable=True,
                                       dtype=np.int64)
    if resets is not None:
        resets = _kernel_buffer("resets", resets, 2, layout="C", writeable=True)
    if policy not in _POLICIES:
        raise ValueError(f"policy must be one of {', '.join(_POLICIES)}, got {policy!r}")
    n, nstates = cur.shape[0], state_rows.shape[0]
    _check_rows("cur", cur.shape, n, RECORD_SIZE)
    _check_len("codes", codes.shape[0], n)
    if ticks is not None:
        _check_len("ticks", ticks.shape[0], n)
    _check_rows("state_rows", state_rows.shape, nstates, RECORD_SIZE)
    _check_len("state_ticks", state_ticks.shape[0], nstates)
    _check_len("state_seen", state_seen.shape[0], nstates)
    if counters.shape != (NFIELDS,):
        raise ValueError(f"counters must have shape ({NFIELDS},), got {counters.shape}")
    _check_rows("out", out.shape, n, RECORD_SIZE)
    if resets is not None:
        _check_rows("resets", resets.shape, n, NFIELDS)
    _check_len("earlier", earlier.shape[0], n)
    _check_len("later", later.shape[0], n)
    if ticks is not None:
        assert earlier_ticks is not None
        _check_len("earlier_ticks", earlier_ticks.shape[0], n)
    if n == 0:
        return 0, 0
    bad = np.flatnonzero((codes < 0) | (codes >= nstates))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"codes[{i}] = {int(codes[i])} is out of range: the state holds {nstates} instance(s)")

    order = np.argsort(codes, kind="stable")
    by_code = codes[order]
    first = np.ones(n, dtype=bool)  # the first record of its instance in this chunk
    np.not_equal(by_code[1:], by_code[:-1], out=first[1:])
    prev_of = np.empty(n, dtype=np.intp)  # -2: no earlier record, -1: the state row
    prev_of[order[1:]] = order[:-1]
    prev_of[order[first]] = np.where(state_seen[by_code[first]] != 0, -1, -2)
    pos = np.flatnonzero(prev_of != -2)
    m = pos.size
    e = prev_of[pos]
    later[:m] = pos
    earlier[:m] = e
    from_state = e < 0
    prev = np.empty((m, RECORD_SIZE), dtype=np.uint8)
    prev[~from_state] = cur[e[~from_state]]
    prev[from_state] = state_rows[codes[pos[from_state]]]
    ndec = delta_rows(prev, cur[pos], counters, policy, out[:m], None if resets is None else resets[:m]) if m else 0
    if ticks is not None:
        assert earlier_ticks is not None
        earlier_ticks[:m] = np.where(from_state, state_ticks[codes[pos]], ticks[np.maximum(e, 0)])

    last = order[np.append(first[1:], True)]  # the last record of each instance in this chunk
    state_rows[codes[last]] = cur[last]
    state_ticks[codes[last]] = _NAT if ticks is None else ticks[last]
    state_seen[codes[last]] = 1
    return m, ndec

def rate_rows(
    values: npt.NDArray[np.uint64],
    columns: npt.NDArray[np.uint8],
    seconds: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
) -> None:
    """``out[i, j] = values[i, columns[j]] / seconds[i]`` (``seconds`` of length 1: for every row)."""
    if values is None or columns is None or seconds is None or out is None:
        raise TypeError("values, columns, seconds and out must be arrays, not None")
    values = _kernel_buffer("values", values, 2, layout="C", dtype=np.uint64)
    columns = _kernel_buffer("columns", columns, 1, layout="C")
    seconds = _kernel_buffer("seconds", seconds, 1, layout="C", dtype=np.float64)
    out = _kernel_buffer("out", out, 2, layout="C", writeable=True, dtype=np.float64)
    m, k = values.shape[0], columns.shape[0]
    _check_rows("values", values.shape, m, NFIELDS)
    _check_rows("out", out.shape, m, k)
    if seconds.shape[0] not in (m, 1):
        raise ValueError(f"seconds must have shape ({m},) or (1,), got ({seconds.shape[0]},)")
    if k and int(columns.max()) >= NFIELDS:
        raise ValueError(f"columns must be < {NFIELDS}, got {int(columns.max())}")
    if m == 0 or k == 0:
        return
    if np.may_share_memory(values, out):
        raise ValueError("out must not overlap values")
    divisor = seconds[:, None] if seconds.shape[0] == m else seconds[0]
    with np.errstate(all="ignore"):  # IEEE results (inf, nan) without warnings, as the C loop
        for src, dst, width in _runs(columns.tolist()):  # views, no gathered copy of the values
            np.divide(values[:, src : src + width], divisor, out=out[:, dst : dst + width])


def _runs(columns: list[int]) -> list[tuple[int, int, int]]:
    """``columns`` as runs of consecutive indices: (first source column, first output column, width)."""
    runs: list[tuple[int, int, int]] = []
    for dst, src in enumerate(columns):
        if runs and runs[-1][0] + runs[-1][2] == src:
            first, at, width = runs[-1]
            runs[-1] = (first, at, width + 1)
        else:
            runs.append((src, dst, 1))
    return runs


def transpose_rows(src: npt.NDArray[np.uint8], out: npt.NDArray[np.uint64], streaming: bool = False) -> None:
    """``out[j, i]`` = item ``j`` of row ``i``: 21 uint64 columns from record rows.

    ``streaming`` is accepted for parity with ``_fast`` and has no effect here.
    """
    if src is None or out is None:
        raise TypeError("src and out must be arrays, not None")
    src = _kernel_buffer("src", src, 2, layout="rows")
    out = _kernel_buffer("out", out, 2, layout="rows", writeable=True, dtype=np.uint64)
    if src.shape[1] != RECORD_SIZE:
        raise ValueError(f"src must have shape (m, {RECORD_SIZE}), got {src.shape}")
    m = src.shape[0]
    _check_rows("out", out.shape, NFIELDS, m)
    if m > 1 and out.strides[1] != out.itemsize:
        raise ValueError("out rows must be contiguous")
    if m and not out.flags.aligned:
        raise ValueError("out must be 8-byte aligned")
    if m:
        np.copyto(out.T, src.view("<u8"))


# --- Fused statistics pass: the twin of ``_fast.stats_rows`` ----------------------------------

STATS_ACC = 88
STATS_BIN = 170
_ST_RESTARTS, _ST_WRAPS, _ST_PLO, _ST_PHI = 0, 21, 42, 63
_ST_EVENTS, _ST_RESTART_EVENTS, _ST_PENDING, _ST_ROWS = 84, 85, 86, 87
_SB_CLO, _SB_CHI, _SB_FLO, _SB_FHI, _SB_MIN, _SB_MAX, _SB_POLLS, _SB_RECORDS = 0, 21, 42, 63, 84, 105, 126, 127
_SB_PLO, _SB_PHI = 128, 149


def _group_sums(u: npt.NDArray[np.uint64], starts: npt.NDArray[np.intp]) -> tuple[Any, Any]:
    """Exact sums of the row groups beginning at ``starts`` of (m, k) uint64 ``u``, as (lo, hi) uint64."""
    h = np.add.reduceat(u >> np.uint64(32), starts, axis=0, dtype=np.uint64)
    low = np.add.reduceat(u & np.uint64(0xFFFFFFFF), starts, axis=0, dtype=np.uint64)
    part = h << np.uint64(32)
    lo = low + part
    hi = (h >> np.uint64(32)) + (lo < low)
    return lo, hi


def _add128(lo: Any, hi: Any, add_lo: Any, add_hi: Any) -> None:
    """(lo, hi) += (add_lo, add_hi) in place, mod 2**128."""
    s = lo + add_lo
    hi += add_hi + (s < add_lo)
    lo[...] = s


def stats_rows(cur: Any, prev: Any, counters: Any, policy: str, stride: int, start: int, width: int, final: bool,
               acc: Any, bins: Any, events: Any, parts: int = 3) -> None:
    """Accumulate the statistics of record rows ``cur`` (see ``_fast.stats_rows``)."""
    if cur is None or prev is None or counters is None or acc is None or bins is None or events is None:
        raise TypeError("arrays must not be None")
    parts = operator.index(parts)
    if parts < 1 or parts > 3:
        raise ValueError(f"parts must be 1, 2 or 3, got {parts}")
    cur = _kernel_buffer("cur", cur, 2, layout="C")
    prev = _kernel_buffer("prev", prev, 2, layout="C")
    counters = _kernel_buffer("counters", counters, 1, layout="C")
    acc = _kernel_buffer("acc", acc, 1, layout="C", writeable=True, dtype=np.uint64)
    bins = _kernel_buffer("bins", bins, 2, layout="C", writeable=True, dtype=np.uint64)
    events = _kernel_buffer("events", events, 2, layout="C", writeable=True, dtype=np.int64)
    if type(policy) is not str:
        raise TypeError(f"policy must be a str, not {type(policy).__name__}")
    stride, start, width, final = operator.index(stride), operator.index(start), operator.index(width), bool(final)
    if policy not in _POLICIES:
        raise ValueError(f"policy must be one of {', '.join(_POLICIES)}, got {policy!r}")
    if stride < 1 or start < 0 or width < 1:
        raise ValueError(f"stride and width must be >= 1 and start >= 0, got {stride}, {width}, {start}")
    n, nb = cur.shape[0], bins.shape[0]
    _check_rows("cur", cur.shape, n, RECORD_SIZE)
    if prev.shape[1] != RECORD_SIZE or prev.shape[0] not in (0, stride):
        raise ValueError(f"prev must have shape (0 or {stride}, {RECORD_SIZE}), got {prev.shape}")
    if counters.shape != (NFIELDS,):
        raise ValueError(f"counters must have shape ({NFIELDS},), got {counters.shape}")
    if acc.shape != (STATS_ACC,):
        raise ValueError(f"acc must have shape ({STATS_ACC},), got {acc.shape}")
    _check_rows("bins", bins.shape, nb, STATS_BIN)
    _check_rows("events", events.shape, events.shape[0], 3)
    if n and (start + n - 1) // stride // width >= nb:
        raise ValueError(f"record {start + n - 1} falls beyond the {nb} bins of width {width}")
    if acc[_ST_PENDING] and (int(acc[_ST_PENDING]) - 1) // width >= nb:
        raise ValueError(f"the pending poll falls beyond the {nb} bins of width {width}")
    if n and parts & 1:
        _stats_records(cur.view("<u8").reshape(n, NFIELDS), start, stride, width, bins)
    if n and parts & 2:
        _stats_pairs(cur, prev, counters.astype(bool), policy, stride, start, width, acc, bins, events)
    if final and parts & 2:
        _stats_flush(acc, bins, width)


def _stats_records(u: Any, start: int, stride: int, width: int, bins: Any) -> None:
    b = (np.arange(start, start + u.shape[0], dtype=np.int64) // stride) // width
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ids = b[starts]
    rows = bins[ids]
    lo, hi = _group_sums(u, starts)
    _add128(rows[:, _SB_FLO:_SB_FHI], rows[:, _SB_FHI:_SB_MIN], lo, hi)
    np.minimum(rows[:, _SB_MIN:_SB_MAX], np.minimum.reduceat(u, starts, axis=0), out=rows[:, _SB_MIN:_SB_MAX])
    np.maximum(rows[:, _SB_MAX:_SB_POLLS], np.maximum.reduceat(u, starts, axis=0), out=rows[:, _SB_MAX:_SB_POLLS])
    rows[:, _SB_RECORDS] += np.diff(np.r_[starts, u.shape[0]]).astype(np.uint64)
    bins[ids] = rows


def _stats_flush(acc: Any, bins: Any, width: int) -> None:
    """The pending poll into its bin: its sums added, the bin's peak polls raised (128-bit compares)."""
    if not acc[_ST_PENDING]:
        return
    b = (int(acc[_ST_PENDING]) - 1) // width
    lo, hi = acc[_ST_PLO:_ST_PHI].copy(), acc[_ST_PHI:_ST_EVENTS].copy()
    pl, ph = bins[b, _SB_PLO:_SB_PHI], bins[b, _SB_PHI:]
    above = (hi > ph) | ((hi == ph) & (lo > pl))
    pl[above], ph[above] = lo[above], hi[above]
    _add128(bins[b, _SB_CLO:_SB_CHI], bins[b, _SB_CHI:_SB_FLO], lo, hi)
    bins[b, _SB_POLLS] += np.uint64(1)
    acc[_ST_PLO:_ST_EVENTS] = 0
    acc[_ST_PENDING] = 0


def _stats_pairs(cur: Any, prev: Any, counter: Any, policy: str, stride: int, start: int, width: int, acc: Any,
                 bins: Any, events: Any) -> None:
    n = cur.shape[0]
    first = 0 if prev.shape[0] else stride
    if first >= n:
        return
    c = cur.view("<u8").reshape(n, NFIELDS)[first:]
    u = cur.view("<u8").reshape(n, NFIELDS)
    p = np.concatenate([prev.view("<u8").reshape(-1, NFIELDS), u])[:n] if first == 0 else u[: n - stride]
    g = np.arange(start + first, start + n, dtype=np.int64)
    polls = g // stride
    d = c - p
    dec = (c < p) & counter
    wrap = dec & ((p - c) >= _HALF)
    restart = dec & ~wrap
    if policy == "reset":
        d = np.where(dec, c, d)
    elif policy == "auto":
        d = np.where(restart, c, d)
    elif policy == "zero":
        d = np.where(dec, np.uint64(0), d)
    d = np.where(counter, d, np.uint64(0))
    acc[_ST_RESTARTS:_ST_WRAPS] += np.count_nonzero(restart, axis=0).astype(np.uint64)
    acc[_ST_WRAPS:_ST_PLO] += np.count_nonzero(wrap, axis=0).astype(np.uint64)
    weights = np.uint64(1) << np.arange(NFIELDS, dtype=np.uint64)
    rbits = (restart * weights).sum(axis=1, dtype=np.uint64)
    wbits = (wrap * weights).sum(axis=1, dtype=np.uint64)
    fell = np.flatnonzero(rbits | wbits)
    e0 = int(acc[_ST_EVENTS])
    room = max(events.shape[0] - e0, 0)
    keep = fell[:room]
    events[e0: e0 + keep.shape[0], 0] = g[keep]
    events[e0: e0 + keep.shape[0], 1] = rbits[keep].astype(np.int64)
    events[e0: e0 + keep.shape[0], 2] = wbits[keep].astype(np.int64)
    acc[_ST_EVENTS] += np.uint64(fell.shape[0])
    acc[_ST_RESTART_EVENTS] += np.uint64(np.count_nonzero(rbits[fell]))
    acc[_ST_ROWS] += np.uint64(polls.shape[0])
    starts = np.flatnonzero(np.r_[True, polls[1:] != polls[:-1]])
    lo, hi = _group_sums(d, starts)
    for j, poll in enumerate(polls[starts].tolist()):
        if acc[_ST_PENDING] != poll + 1:
            _stats_flush(acc, bins, width)
            acc[_ST_PENDING] = poll + 1
        _add128(acc[_ST_PLO:_ST_PHI], acc[_ST_PHI:_ST_EVENTS], lo[j], hi[j])


# --- WNODE walker: the twin of ``_fast.wnode_count`` / ``wnode_fill`` -----------------------
# Same walk, same checks in the same order, same WalkResult (see ``_wnode_layout``).

_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I64 = struct.Struct("<q").unpack_from
_M64 = 2**64 - 1


class _WnodeStop(Exception):
    """Internal: the walk stops with (code, offset, value, bound)."""


class _WnodeWalk:
    """One walk over ``mv``; ``fill`` writes records, ticks, name ids and the name table."""

    def __init__(self, mv: memoryview, guid: bytes, skip_too_small: bool, out: tuple[Any, ...] | None):
        self.mv = mv
        self.n = len(mv)
        self.guid = guid
        self.skip_too_small = bool(skip_too_small)
        self.out = out
        self.nrecords = self.nforeign = self.ntoo_small = self.too_small_needed = 0
        self.foreign_first = self.too_small_first = -1
        self.ids: dict[tuple[int, bytes], int] = {}  # a Python dict: keyed SipHash, no flooding
        self.memo_at = [-1] * _wl.NAME_MEMO  # see _wnode_layout: the name work is bounded by the input
        self.memo_id = [0] * _wl.NAME_MEMO
        self.charged = 0
        self.done = self._counts()
        self.good_end = 0

    def _counts(self) -> tuple[int, ...]:
        return (self.nrecords, len(self.ids), self.nforeign, self.foreign_first,
                self.ntoo_small, self.too_small_first, self.too_small_needed)

    def run(self) -> tuple[int, ...]:
        try:
            self._walk()
        except _WnodeStop as stop:
            return (*stop.args, self.good_end, *self.done)
        return (_wl.OK, 0, 0, 0, self.good_end, *self._counts())

    def _u32(self, off: int) -> int:
        return int(_U32(self.mv, off)[0])

    def _walk(self) -> None:
        n, pos, nodes = self.n, 0, 0
        max_nodes = n // _wl.HEADER_SIZE + 1
        while pos < n:
            node = pos
            while True:
                nodes += 1
                if nodes > max_nodes:
                    raise _WnodeStop(_wl.NODE_LIMIT, node, nodes, max_nodes)
                if n - node < _wl.HEADER_SIZE:
                    raise _WnodeStop(_wl.HEADER_TRUNCATED, node, n - node, _wl.HEADER_SIZE)
                size = self._u32(node + _wl.BUFFER_SIZE)
                if size < _wl.HEADER_SIZE:
                    raise _WnodeStop(_wl.BUFFER_SIZE_SMALL, node, size, _wl.HEADER_SIZE)
                if size > n - node:
                    raise _WnodeStop(_wl.BUFFER_SIZE_PAST_END, node, size, n - node)
                link = self._u32(node + _wl.LINKAGE)
                if link != 0 and link < size:
                    raise _WnodeStop(_wl.LINKAGE_OVERLAP, node + _wl.LINKAGE, link, size)
                padded = (size + _wl.NODE_ALIGNMENT - 1) & -_wl.NODE_ALIGNMENT  # align8(BufferSize)
                if link > padded:
                    raise _WnodeStop(_wl.LINKAGE_GAP, node + _wl.LINKAGE, link, padded)
                if self.mv[node + _wl.GUID: node + _wl.GUID + 16] == self.guid:
                    self._node(node, size)
                else:
                    self.nforeign += 1
                    if self.foreign_first < 0:
                        self.foreign_first = node
                if link == 0:
                    break
                if link >= n - node:
                    raise _WnodeStop(_wl.LINKAGE_PAST_END, node + _wl.LINKAGE, link, n - node)
                node += link
            pos = node + size
            self.done = self._counts()
            self.good_end = pos

    def _node(self, node: int, size: int) -> None:
        flags = self._u32(node + _wl.FLAGS)
        self.charged = 0
        if flags & _wl.FLAG_TOO_SMALL:
            if size < _wl.TOO_SMALL_MIN_SIZE:
                raise _WnodeStop(_wl.NODE_TOO_SHORT, node, size, _wl.TOO_SMALL_MIN_SIZE)
            needed = self._u32(node + _wl.TOO_SMALL_SIZE_NEEDED)
            if not self.skip_too_small:
                raise _WnodeStop(_wl.TOO_SMALL, node + _wl.TOO_SMALL_SIZE_NEEDED, needed, size)
            self.ntoo_small += 1
            if self.too_small_first < 0:
                self.too_small_first = node
            self.too_small_needed = max(self.too_small_needed, needed)
            return
        kind = flags & (_wl.FLAG_ALL_DATA | _wl.FLAG_SINGLE_INSTANCE)
        if kind not in (_wl.FLAG_ALL_DATA, _wl.FLAG_SINGLE_INSTANCE):
            raise _WnodeStop(_wl.FLAGS_KIND, node + _wl.FLAGS, flags, 0)
        ticks = int(_I64(self.mv, node + _wl.TIMESTAMP)[0])
        if ticks != 0 and not _wl.TICKS_MIN <= ticks <= _wl.TICKS_MAX:
            raise _WnodeStop(_wl.TIMESTAMP_RANGE, node + _wl.TIMESTAMP, ticks, 0)
        ansi = 1 if flags & _wl.FLAG_ANSI_INSTANCENAMES else 0
        if kind == _wl.FLAG_ALL_DATA:
            if size < _wl.ALL_DATA_MIN_SIZE:
                raise _WnodeStop(_wl.NODE_TOO_SHORT, node, size, _wl.ALL_DATA_MIN_SIZE)
            self._all_data(node, size, flags, ansi, ticks)
        else:
            if size < _wl.SINGLE_MIN_SIZE:
                raise _WnodeStop(_wl.NODE_TOO_SHORT, node, size, _wl.SINGLE_MIN_SIZE)
            self._single(node, size, ansi, ticks)

    def _all_data(self, node: int, size: int, flags: int, ansi: int, ticks: int) -> None:
        rec = _wl.INSTANCE_SIZE
        block = self._u32(node + _wl.ALL_DATA_BLOCK_OFFSET)
        count = self._u32(node + _wl.ALL_INSTANCE_COUNT)
        names_at = self._u32(node + _wl.ALL_NAME_OFFSETS)
        fixed = flags & _wl.FLAG_FIXED_INSTANCE_SIZE
        if fixed:
            value = self._u32(node + _wl.ALL_FIXED_INSTANCE_SIZE)
            if value != rec:
                raise _WnodeStop(_wl.FIXED_SIZE, node + _wl.ALL_FIXED_INSTANCE_SIZE, value, rec)
            header_end = _wl.ALL_DATA_MIN_SIZE
            if count:
                if block < header_end or block > size:
                    raise _WnodeStop(_wl.DATA_OFFSET_RANGE, node + _wl.ALL_DATA_BLOCK_OFFSET, block, size)
                if block % _wl.DATA_ALIGNMENT:
                    raise _WnodeStop(_wl.DATA_MISALIGNED, node + _wl.ALL_DATA_BLOCK_OFFSET, block,
                                     _wl.DATA_ALIGNMENT)
                if count > (size - block) // rec:
                    raise _WnodeStop(_wl.INSTANCE_COUNT_RANGE, node + _wl.ALL_INSTANCE_COUNT, count,
                                     (size - block) // rec)
        else:
            pairs = _wl.ALL_DATA_AND_LENGTH
            if count > (size - pairs) // 8:
                raise _WnodeStop(_wl.INSTANCE_COUNT_RANGE, node + _wl.ALL_INSTANCE_COUNT, count,
                                 (size - pairs) // 8)
            header_end = pairs + 8 * count
        if count and (names_at < header_end or names_at > size or count > (size - names_at) // 4):
            raise _WnodeStop(_wl.NAME_OFFSETS_RANGE, node + _wl.ALL_NAME_OFFSETS, names_at, size)
        for i in range(count):
            if fixed:
                src = node + block + i * rec
            else:
                pair = node + _wl.ALL_DATA_AND_LENGTH + 8 * i
                off = self._u32(pair)
                length = self._u32(pair + 4)
                if length != rec:
                    raise _WnodeStop(_wl.INSTANCE_LENGTH, pair + 4, length, rec)
                if off < header_end or off > size or size - off < rec:
                    raise _WnodeStop(_wl.INSTANCE_DATA_RANGE, pair, off, size)
                if off % _wl.DATA_ALIGNMENT:
                    raise _WnodeStop(_wl.INSTANCE_DATA_MISALIGNED, pair, off, _wl.DATA_ALIGNMENT)
                src = node + off
            self._instance(node, size, header_end, src, node + names_at + 4 * i,
                           _wl.INSTANCE_NAME_OFFSET_RANGE, ansi, ticks)

    def _single(self, node: int, size: int, ansi: int, ticks: int) -> None:
        rec = _wl.INSTANCE_SIZE
        value = self._u32(node + _wl.SINGLE_SIZE_DATA_BLOCK)
        if value != rec:
            raise _WnodeStop(_wl.SIZE_DATA_BLOCK, node + _wl.SINGLE_SIZE_DATA_BLOCK, value, rec)
        block = self._u32(node + _wl.SINGLE_DATA_BLOCK_OFFSET)
        if block < _wl.SINGLE_MIN_SIZE or block > size or size - block < rec:
            raise _WnodeStop(_wl.DATA_OFFSET_RANGE, node + _wl.SINGLE_DATA_BLOCK_OFFSET, block, size)
        if block % _wl.DATA_ALIGNMENT:
            raise _WnodeStop(_wl.DATA_MISALIGNED, node + _wl.SINGLE_DATA_BLOCK_OFFSET, block,
                             _wl.DATA_ALIGNMENT)
        self._instance(node, size, _wl.SINGLE_MIN_SIZE, node + block, node + _wl.SINGLE_NAME_OFFSET,
                       _wl.NAME_OFFSET_RANGE, ansi, ticks)

    def _instance(self, node: int, size: int, header_end: int, src: int, name_field: int,
                  name_code: int, ansi: int, ticks: int) -> None:
        name_off = self._u32(name_field)
        if name_off < header_end or name_off > size or size - name_off < 2:
            raise _WnodeStop(name_code, name_field, name_off, size)
        at = node + name_off
        length = int(_U16(self.mv, at)[0])
        if length > size - name_off - 2:
            raise _WnodeStop(_wl.NAME_LENGTH_RANGE, at, length, size - name_off - 2)
        if not ansi and length & 1:
            raise _WnodeStop(_wl.NAME_ODD_LENGTH, at, length, 0)
        memo = ((at * _wl.NAME_MEMO_MUL) & _M64) >> (64 - _wl.NAME_MEMO_BITS)
        hit = self.memo_at[memo] == at
        if not hit:  # a name offset not read lately: its bytes count against the WNODE
            self.charged += 2 + length
            if self.charged > size:
                raise _WnodeStop(_wl.NAMES_OVERLAP, at, self.charged, size)
        if self.out is None:
            self.memo_at[memo] = at
            self.nrecords += 1
            return
        records, ticks_out, name_ids, names = self.out
        cap = records.shape[0]
        if self.nrecords >= cap:
            raise _WnodeStop(_wl.CAPACITY, node, cap, cap)
        if hit:
            name_id = self.memo_id[memo]
        else:
            text = at + 2
            raw = bytes(self.mv[text: text + length])
            if ansi:
                raw = raw.rstrip(b"\0")
            else:  # whole NUL code units only: the last nonzero byte keeps its unit
                raw = raw[: (len(raw.rstrip(b"\0")) + 1) // 2 * 2]
            key = (ansi, raw)
            found = self.ids.get(key)
            if found is not None:
                name_id = found
            else:
                if len(self.ids) >= names.shape[0]:
                    raise _WnodeStop(_wl.NAMES_FULL, at, names.shape[0], names.shape[0])
                name_id = len(self.ids)
                self.ids[key] = name_id
                names[name_id] = (text, len(raw), ansi)
            self.memo_at[memo] = at
            self.memo_id[memo] = name_id
        records[self.nrecords] = np.frombuffer(self.mv, np.uint8, _wl.INSTANCE_SIZE, src)
        ticks_out[self.nrecords] = ticks
        name_ids[self.nrecords] = name_id
        self.nrecords += 1


def _byte_buffer(buf: Any, what: str) -> memoryview:
    mv = memoryview(buf)
    if mv.ndim != 1 or mv.itemsize != 1 or not mv.c_contiguous:
        raise ValueError(f"{what} must be a 1-D contiguous buffer of bytes")
    return mv.cast("B") if mv.format != "B" else mv


def wnode_count(buf: Any, guid: Any, skip_too_small: bool) -> tuple[int, ...]:
    """Validate the WNODE buffers in ``buf`` and count their records; a ``WalkResult`` tuple."""
    mv = _byte_buffer(buf, "buf")
    g = bytes(_byte_buffer(guid, "guid"))
    if len(g) != 16:
        raise ValueError(f"guid must hold 16 bytes, got {len(g)}")
    return _WnodeWalk(mv, g, skip_too_small, None).run()


def wnode_fill(
    buf: Any,
    guid: Any,
    skip_too_small: bool,
    records: npt.NDArray[np.uint8],
    ticks: npt.NDArray[np.int64],
    name_ids: npt.NDArray[np.int64],
    names: npt.NDArray[np.int64],
    slots: npt.NDArray[np.int64],
    seed: int = 0,
) -> tuple[int, ...]:
    """Walk as ``wnode_count`` and write the records out; a ``WalkResult`` tuple.

    ``seed`` keys the Cython name table's hash; here names go through a Python dict (keyed
    by the interpreter), so it is only checked. ``slots`` is checked and not used.
    """
    mv = _byte_buffer(buf, "buf")
    g = bytes(_byte_buffer(guid, "guid"))
    if len(g) != 16:
        raise ValueError(f"guid must hold 16 bytes, got {len(g)}")
    cap = records.shape[0]
    if records.ndim != 2 or records.shape[1] != _wl.INSTANCE_SIZE:
        raise ValueError(f"records must have shape ({cap}, 168), got {records.shape}")
    if ticks.shape != (cap,) or name_ids.shape != (cap,):
        raise ValueError(f"ticks and name_ids must have shape ({cap},), got {ticks.shape} and {name_ids.shape}")
    if names.ndim != 2 or names.shape[1] != 3:
        raise ValueError(f"names must have shape (K, 3), got {names.shape}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise OverflowError(f"seed must be an int in [0, 2**64), got {seed!r}")
    nslots = slots.shape[0]
    if nslots < 1 or nslots & (nslots - 1) or nslots <= names.shape[0]:
        raise ValueError(f"slots must have a power-of-two length larger than {names.shape[0]}, got {nslots}")
    return _WnodeWalk(mv, g, skip_too_small, (records, ticks, name_ids, names)).run()


# --- CIM CSV rows: the twin of ``_fast.csv_rows`` --------------------------------------------

import re  # noqa: E402 - this section is self-contained

from . import _csv_layout as _cl  # noqa: E402

_U64_DIGITS = 20
_TS_ISO = re.compile(
    rb"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    rb"(Z|[+-][0-9]{2}:?[0-9]{2})\Z")
_DIGITS = re.compile(rb"[0-9]+\Z")
_NS_MAX = 2**63 - 1
_BLANK = re.compile(rb"(?:\r?\n)+")
_UNQUOTED_BAD = re.compile(rb'["\r]')


class _CsvStop(Exception):
    def __init__(self, code: int, column: int = 0, offset: int = 0, length: int = 0, value: int = 0):
        self.err = (code, column, offset, length, value)


def _csv_uint64(b: bytes, o: int, k: int) -> int:
    text = b[o: o + k]
    if not 1 <= k <= _U64_DIGITS or _DIGITS.match(text) is None:
        return -1
    v = int(text)
    return -2 if v > 2**64 - 1 else v


def _csv_timestamp(b: bytes, o: int, k: int) -> int:
    """ns since 1970 UTC, or NAT for an empty field; raises _CsvStop(code) (column filled in later)."""
    if k == 0:
        return _cl.NAT
    text = b[o: o + k]
    if k <= _U64_DIGITS and _DIGITS.match(text):
        ticks = int(text)
        if not _wl.TICKS_MIN <= ticks <= _wl.TICKS_MAX:
            raise _CsvStop(_cl.TS_TICKS_RANGE)
        return (ticks - _wl.FILETIME_UNIX_EPOCH) * 100
    m = _TS_ISO.match(text)
    if m is None:
        raise _CsvStop(_cl.TS_SYNTAX)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if year < 1 or not 1 <= month <= 12 or not 1 <= day <= _month_days(year, month):
        raise _CsvStop(_cl.TS_DATE)
    if hour > 23 or minute > 59 or second > 59:
        raise _CsvStop(_cl.TS_TIME)
    zone = m.group(8)
    offset = 0
    if zone != b"Z":
        digits = zone[1:].replace(b":", b"")
        oh, om = int(digits[:2]), int(digits[2:])
        offset = oh * 60 + om
        if om > 59 or offset > _cl.MAX_OFFSET_MINUTES:
            raise _CsvStop(_cl.TS_OFFSET)
        if zone[:1] == b"-":
            offset = -offset
    days = _days_from_civil(year, month, day)
    secs = ((days * 24 + hour) * 60 + minute - offset) * 60 + second
    ns = secs * 10**9 + int((m.group(7) or b"").ljust(9, b"0"))
    if not -_NS_MAX <= ns <= _NS_MAX:
        raise _CsvStop(_cl.TS_RANGE)
    return ns


def _month_days(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _csv_check(buf: Any, delimiter: int, roles: Any, nprops: int, records: Any, strs: Any, stamps: Any,
               lines: Any, max_row: int) -> tuple[Any, ...]:
    mv = _byte_buffer(buf, "buf")
    roles = _kernel_buffer("roles", roles, 1, layout="C", dtype=np.int64)
    records = _kernel_buffer("records", records, 2, layout="C", writeable=True)
    strs = _kernel_buffer("strs", strs, 3, layout="C", writeable=True, dtype=np.int64)
    stamps = _kernel_buffer("stamps", stamps, 1, layout="C", writeable=True, dtype=np.int64)
    lines = _kernel_buffer("lines", lines, 1, layout="C", writeable=True, dtype=np.int64)
    cap = records.shape[0]
    nstrs = strs.shape[1]
    if not 0 <= delimiter <= 255 or delimiter in (0x22, 0x0A, 0x0D):
        raise ValueError(f"delimiter must be a byte other than '\"', CR and LF, got {delimiter}")
    if nprops < 0 or nprops + nstrs > _cl.MAX_WANTED:
        raise ValueError(f"nprops + strs.shape[1] must lie in [0, {_cl.MAX_WANTED}], got {nprops} + {nstrs}")
    if records.shape[1] < 8 * nprops:
        raise ValueError(f"records must have at least {8 * nprops} columns, got {records.shape[1]}")
    if strs.shape[0] != cap or strs.shape[2] != _cl.STR_FIELDS or lines.shape[0] != cap:
        raise ValueError(f"strs must have shape ({cap}, S, {_cl.STR_FIELDS}) and lines ({cap},)")
    if max_row < 1:
        raise ValueError(f"max_row must be >= 1, got {max_row}")
    r = roles.tolist()
    want = nprops + nstrs
    slots = sorted(x for x in r if x >= 0)
    if slots != list(range(want)) or any(x < _cl.ROLE_TIMESTAMP or x >= want for x in r) \
            or r.count(_cl.ROLE_TIMESTAMP) > 1:
        raise ValueError("roles must name each slot 0 .. nprops + S - 1 once, the timestamp (-2) at most once, "
                         "and -1 elsewhere")
    if _cl.ROLE_TIMESTAMP in r and stamps.shape[0] < cap:
        raise ValueError(f"stamps must have at least {cap} entries")
    return mv, r, records, strs, stamps, lines


def csv_rows(buf: Any, final: bool, delimiter: int, roles: Any, nprops: int, records: Any, strs: Any,
             stamps: Any, lines: Any, line: int, max_row: int) -> tuple[int, ...]:
    """Parse whole CSV rows of ``buf``; see ``_fast.csv_rows``."""
    mv, r, records, strs, stamps, lines = _csv_check(buf, delimiter, roles, nprops, records, strs, stamps,
                                                     lines, max_row)
    b = bytes(mv)
    n = len(b)
    ncols = len(r)
    cap = records.shape[0]
    nstrs = strs.shape[1]
    slot_col = {x: j for j, x in enumerate(r) if x >= 0}
    ts_col = r.index(_cl.ROLE_TIMESTAMP) if _cl.ROLE_TIMESTAMP in r else -1
    delim = bytes([delimiter])
    p = 0
    nrows = 0
    while True:
        if nrows == cap or p == n:
            return (_cl.OK, nrows, p, line, 0, 0, 0, 0)
        m = _BLANK.match(b, p)
        if m is not None:  # blank lines, many at a time
            line += b.count(b"\n", p, m.end())
            p = m.end()
            continue
        s = p
        limit = min(n, s + max_row + 1)
        q = s
        parity = 0
        nl = 0
        e = -1
        while True:
            lf = b.find(b"\n", q, limit)
            seg = limit if lf < 0 else lf
            parity ^= b.count(b'"', q, seg) & 1
            if lf < 0:
                break
            nl += 1
            if parity == 0:
                e = lf
                break
            q = lf + 1
        if e < 0:
            if n - s > max_row:
                return (_cl.ROW_TOO_LONG, nrows, s, line, 0, s, 0, 0)
            if not final:
                return (_cl.OK, nrows, s, line, 0, 0, 0, 0)
            if parity:
                return (_cl.UNCLOSED_QUOTE, nrows, s, line, 0, s, 0, 0)
            e = n
        ce = e - 1 if e > s and b[e - 1] == 0x0D else e
        after_row = min(e + 1, n)
        if ce == s:  # a line holding only CR, at the end of the data
            line += nl
            p = after_row
            continue
        try:
            fo = [0] * (nprops + nstrs)
            fl = [0] * (nprops + nstrs)
            fe = [0] * (nprops + nstrs)
            ts = (0, 0, 0)
            j = 0
            f = s
            while True:
                if f < ce and b[f] == 0x22:
                    k = f + 1
                    esc = 0
                    while True:
                        k = b.find(b'"', k, ce)
                        if k < 0:
                            raise _CsvStop(_cl.UNCLOSED_QUOTE, j + 1, f)
                        if k + 1 < ce and b[k + 1] == 0x22:
                            esc = 1
                            k += 2
                            continue
                        break
                    off, ln = f + 1, k - f - 1
                    after = k + 1
                    if after == ce:
                        last = True
                    elif b[after] == delimiter:
                        last = False
                    else:
                        raise _CsvStop(_cl.BAD_QUOTE, j + 1, after)
                else:
                    k = b.find(delim, f, ce)
                    if k < 0:
                        k = ce
                    bad = _UNQUOTED_BAD.search(b, f, k)
                    if bad is not None:
                        at = bad.start()
                        raise _CsvStop(_cl.BAD_QUOTE if b[at] == 0x22 else _cl.BARE_CR, j + 1, at)
                    off, ln, esc = f, k - f, 0
                    after = k
                    last = k == ce
                if j < ncols:
                    role = r[j]
                    if role >= 0:
                        fo[role], fl[role], fe[role] = off, ln, esc
                    elif role == _cl.ROLE_TIMESTAMP:
                        ts = (off, ln, esc)
                j += 1
                if last:
                    break
                f = after + 1
            if j != ncols:
                raise _CsvStop(_cl.FIELD_COUNT, 0, s, 0, j)
            row = records[nrows]
            for k in range(nprops):
                v = _csv_uint64(b, fo[k], fl[k])
                if v < 0:
                    raise _CsvStop(_cl.NOT_UINT64 if v == -1 else _cl.UINT64_RANGE, slot_col[k] + 1, fo[k], fl[k],
                                   fe[k])
                row[8 * k: 8 * k + 8] = np.frombuffer(v.to_bytes(8, "little"), np.uint8)
            if ts_col >= 0:
                try:
                    stamps[nrows] = _csv_timestamp(b, ts[0], ts[1])
                except _CsvStop as stop:
                    raise _CsvStop(stop.err[0], ts_col + 1, ts[0], ts[1], ts[2]) from None
        except _CsvStop as stop:
            return (stop.err[0], nrows, s, line, *stop.err[1:])
        for k in range(nstrs):
            slot = nprops + k
            off, ln = fo[slot], fl[slot]
            ref = nrows
            text = b[off: off + ln]
            for back in range(1, min(_cl.NAME_WINDOW, nrows) + 1):
                o2, l2 = int(strs[nrows - back, k, 0]), int(strs[nrows - back, k, 1])
                if l2 == ln and b[o2: o2 + l2] == text:
                    ref = int(strs[nrows - back, k, 3])
                    break
            strs[nrows, k] = (off, ln, fe[slot], ref)
        lines[nrows] = line
        nrows += 1
        line += nl
        p = after_row


# =============================================================================================
# Perfmon PDH-CSV / PDH-TSV rows: the twin of ``_fast.pdh_rows`` (codes in ``_pdh_layout``)
# =============================================================================================

import re as _pdh_re  # noqa: E402 - this section is self-contained

from . import _pdh_layout as _pl  # noqa: E402

_PDH_NUMBER = _pdh_re.compile(rb"([+-]?)([0-9]*\.?[0-9]*)(?:[eE]([+-]?)([0-9]+))?\Z")
_PDH_TIME = _pdh_re.compile(rb"([0-9]{2})/([0-9]{2})/([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?\Z")
_PDH_QUOTED = _pdh_re.compile(rb'[^"\r\n\0]*')
_PDH_UINT64_MAX = 2**64 - 1
_PDH_ROUNDS_TO_2_64 = int(_pl.ROUNDS_TO_2_64)


class _PdhStop(Exception):
    def __init__(self, code: int, column: int = 0, offset: int = 0, length: int = 0):
        self.err = (code, column, offset, length)


def _pdh_value(t: bytes) -> tuple[int, int, bool]:
    """(code, value, missing) of one cell; see ``_fast._pdh_value``."""
    if t and t.count(b" ") == len(t):
        return _pl.OK, 0, True
    m = _PDH_NUMBER.match(t)
    if m is None or m.group(2).replace(b".", b"") == b"":
        return _pl.NOT_NUMBER, 0, False
    sign, mant, eneg, edigits = m.groups()
    point = mant.find(b".")
    digits = mant.replace(b".", b"")
    P = len(digits) if point < 0 else point
    e = 0
    if edigits is not None:
        stripped = edigits.lstrip(b"0")
        e = _pl.EXPONENT_CLAMP if len(stripped) > 10 else min(int(stripped or b"0"), _pl.EXPONENT_CLAMP)
        e = -e if eneg == b"-" else e
    a = len(digits) - len(digits.lstrip(b"0"))
    if a == len(digits):
        return _pl.OK, 0, False
    if sign == b"-":
        return _pl.NEGATIVE, 0, False
    z = len(digits.rstrip(b"0")) - 1
    x = P - 1 - z + e
    if x < 0:
        return _pl.NOT_WHOLE, 0, False
    if P - a + e > 20:
        return _pl.RANGE, 0, False
    v = int(digits[a: z + 1]) * 10**x
    if v > _PDH_UINT64_MAX:
        if v > _PDH_ROUNDS_TO_2_64:
            return _pl.RANGE, 0, False
        v = _PDH_UINT64_MAX
    return _pl.OK, v, False


def _pdh_days(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _pdh_time(t: bytes) -> tuple[int, int]:
    """(code, ns) of ``MM/DD/YYYY HH:MM:SS[.f{1,9}]`` read as UTC; see ``_fast._pdh_time``."""
    m = _PDH_TIME.match(t)
    if m is None:
        return _pl.TIME_SYNTAX, 0
    month, day, year, hour, minute, second = (int(g) for g in m.groups()[:6])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    dim = (29 if leap else 28) if month == 2 else 30 if month in (4, 6, 9, 11) else 31
    if year < 1 or not 1 <= month <= 12 or not 1 <= day <= dim:
        return _pl.TIME_DATE, 0
    if hour > 23 or minute > 59 or second > 59:
        return _pl.TIME_TIME, 0
    secs = ((_pdh_days(year, month, day) * 24 + hour) * 60 + minute) * 60 + second
    ns = secs * 10**9 + int((m.group(7) or b"").ljust(9, b"0"))
    if not -(2**63 - 1) <= ns <= 2**63 - 1:
        return _pl.TIME_RANGE, 0
    return _pl.OK, ns


def _pdh_check(buf: Any, delimiter: int, roles: Any, values: Any, missing: Any, stamps: Any, lines: Any,
               max_row: int) -> tuple[Any, ...]:
    mv = _byte_buffer(buf, "buf")
    roles = _kernel_buffer("roles", roles, 1, layout="C", dtype=np.int64)
    values = _kernel_buffer("values", values, 2, layout="C", writeable=True, dtype=np.uint64)
    missing = _kernel_buffer("missing", missing, 2, layout="C", writeable=True)
    stamps = _kernel_buffer("stamps", stamps, 1, layout="C", writeable=True, dtype=np.int64)
    lines = _kernel_buffer("lines", lines, 1, layout="C", writeable=True, dtype=np.int64)
    cap, nslots = values.shape
    if not 1 <= delimiter <= 255 or delimiter in (0x22, 0x0A, 0x0D):
        raise ValueError(f"delimiter must be a byte other than NUL, '\"', CR and LF, got {delimiter}")
    if missing.shape != (cap, nslots):
        raise ValueError(f"missing must have the shape of values ({cap}, {nslots})")
    if stamps.shape[0] != cap or lines.shape[0] != cap:
        raise ValueError(f"stamps and lines must have shape ({cap},)")
    if max_row < 1:
        raise ValueError(f"max_row must be >= 1, got {max_row}")
    r = roles.tolist()
    slots = sorted(x for x in r if x >= 0)
    if slots != list(range(nslots)) or r.count(_pl.ROLE_TIMESTAMP) != 1 or any(x < _pl.ROLE_TIMESTAMP for x in r):
        raise ValueError("roles must name each value slot 0 .. values.shape[1] - 1 once, the time (-2) once, "
                         "and -1 elsewhere")
    return mv, r, values, missing, stamps, lines


def pdh_rows(buf: Any, final: bool, delimiter: int, roles: Any, values: Any, missing: Any, stamps: Any,
             lines: Any, line: int, max_row: int) -> tuple[int, ...]:
    """Parse whole perfmon rows of ``buf``; see ``_fast.pdh_rows``."""
    mv, r, values, missing, stamps, lines = _pdh_check(buf, delimiter, roles, values, missing, stamps, lines,
                                                       max_row)
    b = bytes(mv)
    n = len(b)
    ncols = len(r)
    cap = values.shape[0]
    unquoted = _pdh_re.compile(rb'[^"\r\n\0' + _pdh_re.escape(bytes([delimiter])) + rb"]*")
    p = 0
    nrows = 0
    while True:
        if nrows == cap or p == n:
            return (_pl.OK, nrows, p, line, 0, 0, 0)
        s = p
        if b[s] == 0x0A:
            line += 1
            p = s + 1
            continue
        if b[s] == 0x0D:
            if s + 1 < n:
                if b[s + 1] == 0x0A:
                    line += 1
                    p = s + 2
                    continue
                return (_pl.BARE_CR, nrows, s, line, 0, s, 0)
            if not final:
                return (_pl.OK, nrows, s, line, 0, 0, 0)
            p = n
            continue
        limit = n if n - s <= max_row else s + max_row
        try:
            j = 0
            f = s
            while True:
                if f < limit and b[f] == 0x22:
                    k = _PDH_QUOTED.match(b, f + 1, limit).end()  # type: ignore[union-attr]
                    if k < limit:
                        if b[k] == 0:
                            raise _PdhStop(_pl.NUL_BYTE, j + 1, k)
                        if b[k] != 0x22:
                            raise _PdhStop(_pl.UNCLOSED_QUOTE, j + 1, f)
                    elif limit < n:
                        raise _PdhStop(_pl.ROW_TOO_LONG, 0, s)
                    elif not final:
                        return (_pl.OK, nrows, s, line, 0, 0, 0)
                    else:
                        raise _PdhStop(_pl.UNCLOSED_QUOTE, j + 1, f)
                    off, ln, after = f + 1, k - f - 1, k + 1
                else:
                    k = unquoted.match(b, f, limit).end()  # type: ignore[union-attr]
                    if k < limit:
                        if b[k] == 0x22:
                            raise _PdhStop(_pl.BAD_QUOTE, j + 1, k)
                        if b[k] == 0:
                            raise _PdhStop(_pl.NUL_BYTE, j + 1, k)
                    off, ln, after = f, k - f, k
                more = False
                if after >= limit:
                    if limit < n:
                        raise _PdhStop(_pl.ROW_TOO_LONG, 0, s)
                    if not final:
                        return (_pl.OK, nrows, s, line, 0, 0, 0)
                    e = n
                else:
                    ch = b[after]
                    if ch == delimiter:
                        more = True
                    elif ch == 0x0A:
                        e = after + 1
                    elif ch == 0x0D:
                        if after + 1 < n:
                            if b[after + 1] != 0x0A:
                                raise _PdhStop(_pl.BARE_CR, j + 1, after)
                            e = after + 2
                        elif not final:
                            return (_pl.OK, nrows, s, line, 0, 0, 0)
                        else:
                            e = n
                    elif ch == 0:
                        raise _PdhStop(_pl.NUL_BYTE, j + 1, after)
                    else:
                        raise _PdhStop(_pl.BAD_QUOTE, j + 1, after)
                if j < ncols:
                    role = r[j]
                    if role >= 0:
                        code, v, miss = _pdh_value(b[off: off + ln])
                        if code:
                            raise _PdhStop(code, j + 1, off, ln)
                        values[nrows, role] = v
                        missing[nrows, role] = miss
                    elif role == _pl.ROLE_TIMESTAMP:
                        code, ns = _pdh_time(b[off: off + ln])
                        if code:
                            raise _PdhStop(code, j + 1, off, ln)
                        stamps[nrows] = ns
                j += 1
                if not more:
                    break
                f = after + 1
            if j != ncols:
                raise _PdhStop(_pl.FIELD_COUNT, 0, s, j)
        except _PdhStop as stop:
            return (stop.err[0], nrows, s, line, *stop.err[1:])
        lines[nrows] = line
        nrows += 1
        line += 1
        p = e


# --- Deltas fused with rates: the twin of ``_fast.delta_rate_rows`` --------------------------


def delta_rate_rows(
    prev: npt.NDArray[np.uint8],
    cur: npt.NDArray[np.uint8],
    counters: npt.NDArray[np.uint8],
    policy: str,
    columns: npt.NDArray[np.uint8],
    seconds: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
) -> None:
    """``delta_rows`` then ``rate_rows``: ``out[i, j] = policy(cur[i] - prev[i])[columns[j]] / seconds[i]``."""
    if prev is None or cur is None or counters is None or columns is None or seconds is None or out is None:
        raise TypeError("prev, cur, counters, columns, seconds and out must be arrays, not None")
    prev = _kernel_buffer("prev", prev, 2, layout="rows")
    cur = _kernel_buffer("cur", cur, 2, layout="rows")
    counters = _kernel_buffer("counters", counters, 1, layout="C")
    columns = _kernel_buffer("columns", columns, 1, layout="C")
    seconds = _kernel_buffer("seconds", seconds, 1, layout="C", dtype=np.float64)
    out = _kernel_buffer("out", out, 2, layout="C", writeable=True, dtype=np.float64)
    if type(policy) is not str:
        raise TypeError(f"policy must be a str, not {type(policy).__name__}")
    if policy not in _POLICIES:
        raise ValueError(f"policy must be one of {', '.join(_POLICIES)}, got {policy!r}")
    m, k = prev.shape[0], columns.shape[0]
    _check_rows("prev", prev.shape, m, RECORD_SIZE)
    _check_rows("cur", cur.shape, m, RECORD_SIZE)
    if counters.shape != (NFIELDS,):
        raise ValueError(f"counters must have shape ({NFIELDS},), got {counters.shape}")
    _check_rows("out", out.shape, m, k)
    if seconds.shape[0] not in (m, 1):
        raise ValueError(f"seconds must have shape ({m},) or (1,), got ({seconds.shape[0]},)")
    if k and int(columns.max()) >= NFIELDS:
        raise ValueError(f"columns must be < {NFIELDS}, got {int(columns[np.argmax(columns >= NFIELDS)])}")
    if m == 0:
        return
    if k and (np.may_share_memory(out, prev) or np.may_share_memory(out, cur)):
        raise ValueError("out must not overlap prev or cur")
    values = np.empty((m, RECORD_SIZE), np.uint8)
    delta_rows(prev, cur, counters, policy, values)
    if k:
        rate_rows(values.view("<u8").astype(np.uint64, copy=False), columns, seconds, out)


# --- Text rows for the CSV and JSON Lines writers: the twin of ``_fast.format_rows`` ---------


def _text_check(columns: Any, kinds: Any, tables: Any, seps: Any, term: Any, start: int, stop: int) -> None:
    for name, x, typ in (("columns", columns, list), ("kinds", kinds, bytes), ("tables", tables, list),
                         ("seps", seps, list), ("term", term, bytes)):
        if x is None or not isinstance(x, typ):
            raise TypeError(f"{name} must be {typ.__name__}, not {type(x).__name__}")
    k = len(kinds)
    if len(columns) != k or len(tables) != k or len(seps) != k:
        raise ValueError(f"columns, kinds, tables and seps must have the same length, got "
                         f"{len(columns)}, {k}, {len(tables)}, {len(seps)}")
    if start < 0 or stop < start:
        raise ValueError(f"need 0 <= start <= stop, got {start}, {stop}")
    for j in range(k):
        if kinds[j] > 8:
            raise ValueError(f"kinds[{j}] must be 0..8, got {kinds[j]}")
        if columns[j] is None:
            raise TypeError(f"columns[{j}] must be an array, not None")
        if type(seps[j]) is not bytes:
            raise TypeError(f"seps[{j}] must be bytes")
        if kinds[j] == 4:
            if type(tables[j]) is not tuple or any(type(t) is not bytes for t in tables[j]):
                raise TypeError(f"tables[{j}] must be a tuple of bytes")
        if kinds[j] >= 7 and (type(tables[j]) is not int or tables[j] not in (0, 3, 6, 9)):
            raise ValueError(f"tables[{j}] must be the digits of a second: 0, 3, 6 or 9")


_TIME_UNITS = {0: "s", 3: "ms", 6: "us", 9: "ns"}


def _float_text(x: float, json: bool) -> bytes:
    if x != x or (json and x - x != 0.0):
        return b"null" if json else b""
    return repr(x).encode()


def format_rows(columns: list[Any], kinds: bytes, tables: list[Any], seps: list[bytes], term: bytes,
                start: int, stop: int) -> bytearray:
    """Rows ``start`` to ``stop`` as text: ``seps[j]`` then column ``j``'s value for every ``j``,
    then ``term`` (kinds as in ``_fast.format_rows``)."""
    _text_check(columns, kinds, tables, seps, term, start, stop)
    k = len(kinds)
    if k > 256:
        raise ValueError(f"at most 256 columns, got {k}")
    texts: list[list[bytes]] = []
    for j in range(k):
        kind = kinds[j]
        if kind in (5, 6):
            col = _kernel_buffer(f"columns[{j}]", columns[j], 2, layout="C")
        else:  # any stride, as a structured array's field
            if columns[j] is None:
                raise TypeError(f"columns[{j}] must be an array, not None")
            memoryview(columns[j])
            col = np.asarray(columns[j])
            if col.dtype != np.uint64 or col.ndim != 1:
                raise ValueError(f"columns[{j}] must be a 1-D uint64 buffer, got {col.ndim}-D {col.dtype}")
        if col.shape[0] < stop:
            raise ValueError(f"columns[{j}] has {col.shape[0]} rows, fewer than stop={stop}")
        part = col[start:stop]
        if kind == 4:
            bad = np.flatnonzero(part >= np.uint64(len(tables[j])))
            if bad.size:
                i = int(bad[0])
                raise ValueError(f"columns[{j}][{start + i}]: code {int(part[i].view(np.int64))} is not in its "
                                 f"table of {len(tables[j])}")
            texts.append([tables[j][c] for c in part.tolist()])
        elif kind == 0:
            texts.append([str(v).encode() for v in part.tolist()])
        elif kind == 1:
            texts.append([str(v).encode() for v in part.view(np.int64).tolist()])
        elif kind in (2, 3):
            texts.append([_float_text(v, kind == 3) for v in part.view(np.float64).tolist()])
        elif kind in (7, 8):
            stamps = part.view(np.int64).view("datetime64[ns]")
            unit = _TIME_UNITS[tables[j]]
            iso = np.datetime_as_string(stamps, unit=unit, timezone="UTC").tolist()  # type: ignore[call-overload]
            nat = np.isnat(stamps).tolist()
            if kind == 8:
                texts.append([b"null" if z else b'"' + t.encode() + b'"' for t, z in zip(iso, nat)])
            else:
                texts.append([b"" if z else t.encode() for t, z in zip(iso, nat)])
        else:
            raw = [bytes(r).rstrip(b"\0") for r in part]
            if kind == 6:
                texts.append([b'"' + t + b'"' if t else b"null" for t in raw])
            else:
                texts.append(raw)
    rows = []
    for i in range(stop - start):
        rows.append(b"".join(seps[j] + texts[j][i] for j in range(k)) + term)
    return bytearray(b"".join(rows))

