"""Differential tests: the Cython kernel and its numpy twin agree bit for bit.

Through the public API (``_backend.KERNEL`` swapped) over hostile inputs, and by calling
``_fast.delta_rows`` and ``_slow.delta_rows`` directly on both the AVX2 and the portable
C path, with regular and non-temporal stores, aligned and misaligned buffers. Guard bytes
around every output catch a write out of bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import (
    EDGES,
    M64,
    POLICIES,
    assert_same_result,
    call_outcome,
    edge_pairs_values,
    random_values,
    records_from,
    require_fast,
    using_kernel,
)
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ipsecstats
from ipsecstats import RECORD_SIZE, _slow, decode, deltas, rates
from ipsecstats._alloc import aligned_empty
from ipsecstats._decode import as_record_array

EDGE_PAIRS = edge_pairs_values()
GUARD = 0xA5
BIG_ENDIAN = np.dtype({"names": list(ipsecstats.RECORD_DTYPE.names), "formats": [">u8"] * 21})


@pytest.fixture
def fast() -> Iterator[ModuleType]:
    """``_fast``, with its vector path restored after the test whatever the test did."""
    mod = require_fast()
    before = mod.vector_path()
    try:
        yield mod
    finally:
        mod._set_vector_path(before)


def both(fast: ModuleType, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """The outcome of ``fn`` under each kernel: equal values and dtypes, or equal errors."""
    with using_kernel(fast):
        a = call_outcome(fn, *args, **kwargs)
    with using_kernel(_slow):
        b = call_outcome(fn, *args, **kwargs)
    assert a[0] == b[0], (a, b)
    if a[0] == "raised":
        assert a[1:] == b[1:], (a, b)
    else:
        assert_same_result(a[1], b[1])
    return a, b


# --- hostile inputs through the public API ------------------------------------------------

def _unaligned(offset: int) -> Callable[[bytes], Any]:
    def make(raw: bytes) -> Any:
        buf = bytearray(offset + len(raw) + 5)
        buf[offset : offset + len(raw)] = raw
        return memoryview(buf)[offset : offset + len(raw)]
    return make


HOSTILE: dict[str, Callable[[bytes], Any]] = {
    "records": lambda raw: decode(bytearray(raw)),
    "read_only": lambda raw: decode(raw),
    "bytes": lambda raw: raw,
    "uint64_2d": lambda raw: np.frombuffer(raw, "<u8").reshape(-1, 21),
    "every_2nd": lambda raw: decode(raw)[::2],
    "reversed": lambda raw: decode(raw)[::-1],
    "every_3rd_from_1": lambda raw: decode(bytearray(raw))[1::3],
    "big_endian_fields": lambda raw: decode(raw).astype(BIG_ENDIAN),
    "big_endian_2d": lambda raw: np.frombuffer(raw, "<u8").reshape(-1, 21).astype(">u8"),
    **{f"unaligned_{k}": _unaligned(k) for k in range(1, 8)},
}
SIZES = {"empty": 0, "one": 1, "two": 2, "five": 5, "edge_pairs": len(EDGE_PAIRS)}


def base_values(size: int) -> np.ndarray:
    if size == len(EDGE_PAIRS):
        return EDGE_PAIRS
    return np.array([[EDGES[(i * 7 + j * 3) % len(EDGES)] for j in range(21)] for i in range(size)],
                    dtype=np.uint64)


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("form", list(HOSTILE))
def test_public_api_parity(fast: ModuleType, form: str, size: str) -> None:
    values = base_values(SIZES[size])
    raw = values.astype("<u8").tobytes()
    data = HOSTILE[form](raw)
    n = len(as_record_array(data))
    before = bytes(raw)
    prev_values = base_values(5)[::-1].copy()
    for stride in (1, 2, 3, n + 1):
        prev = decode(bytes(np.resize(prev_values, (stride, 21)).astype("<u8").tobytes()))
        for policy in (*POLICIES, "raise"):
            for return_resets in (False, True):
                both(fast, deltas, data, stride=stride, on_decrease=policy,
                     return_resets=return_resets)
                both(fast, deltas, data, stride=stride, on_decrease=policy, previous=prev,
                     return_resets=return_resets)
        both(fast, rates, data, stride=stride, interval=0.5)
        both(fast, rates, data, stride=stride, timestamps=np.linspace(0.0, 1.0, n) ** 2)
    both(fast, deltas, data, kinds={"ActiveAcquire": "counter", "TotalGetSPI": "gauge"},
         on_decrease="reset", return_resets=True)
    # errors must match too: type and message
    both(fast, deltas, data, on_decrease="sometimes")
    both(fast, deltas, data, stride=2, previous=decode(raw[:168]) if n else b"")
    assert HOSTILE[form](raw) is not None and bytes(raw) == before


@given(values=st.integers(0, 14).flatmap(
           lambda n: hnp.arrays(np.uint64, (n, 21), elements=st.one_of(
               st.sampled_from(EDGES), st.integers(0, M64 - 1)))),
       stride=st.integers(1, 4), policy=st.sampled_from((*POLICIES, "raise")),
       offset=st.integers(0, 7), with_previous=st.booleans(), step=st.sampled_from((1, 2, -1)))
@example(values=EDGE_PAIRS, stride=1, policy="auto", offset=3, with_previous=True, step=1)
@example(values=EDGE_PAIRS, stride=4, policy="reset", offset=0, with_previous=False, step=-1)
@example(values=EDGE_PAIRS[:9], stride=2, policy="raise", offset=5, with_previous=True, step=2)
def test_public_api_parity_property(values: np.ndarray, stride: int, policy: str, offset: int,
                                    with_previous: bool, step: int) -> None:
    fast = require_fast()
    raw = values.astype("<u8").tobytes()
    buf = bytearray(offset + len(raw))
    buf[offset:] = raw
    recs = decode(memoryview(buf)[offset:])[::step]
    prev = records_from(values[::-1][:stride]) if with_previous and len(values) >= stride else None
    both(fast, deltas, recs, stride=stride, on_decrease=policy, previous=prev, return_resets=True)
    assert bytes(buf[offset:]) == raw


def test_threads_use_the_kernel_concurrently(fast: ModuleType) -> None:
    from concurrent.futures import ThreadPoolExecutor

    logs = [records_from(random_values(np.random.default_rng(i), 2000)) for i in range(4)]
    with using_kernel(_slow):
        want = [deltas(log, return_resets=True) for log in logs]
    with using_kernel(fast), ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda log: deltas(log, return_resets=True), logs * 4))
    for i, result in enumerate(got):
        assert_same_result(result, want[i % 4])


# --- the kernels called directly ----------------------------------------------------------

def guarded(m: int, width: int, offset: int) -> tuple[np.ndarray, np.ndarray, slice]:
    """An (m, width) uint8 output at ``offset`` bytes past a 64-byte boundary, in a guard area."""
    raw = aligned_empty(64 + m * width + 64 + offset, np.uint8)
    raw.fill(GUARD)
    inner = slice(64 + offset, 64 + offset + m * width)
    view = raw[inner].reshape(m, width)
    assert m == 0 or view.ctypes.data % 32 == offset % 32
    return raw, view, inner


def assert_guards_intact(raw: np.ndarray, inner: slice) -> None:
    assert (raw[: inner.start] == GUARD).all(), "kernel wrote before its output"
    assert (raw[inner.stop :] == GUARD).all(), "kernel wrote past its output"


def rows_at(values: np.ndarray, offset: int, read_only: bool) -> np.ndarray:
    """(m, 168) uint8 rows of ``values`` starting ``offset`` bytes into a buffer."""
    raw = values.astype("<u8").tobytes()
    buf = bytearray(offset + len(raw))
    buf[offset:] = raw
    rows = np.frombuffer(bytes(buf) if read_only else buf, np.uint8)[offset:].reshape(-1, RECORD_SIZE)
    assert rows.flags.writeable is not read_only
    return rows


def run_kernel(kernel: ModuleType, prev: np.ndarray, cur: np.ndarray, counters: np.ndarray,
               policy: str, out_offset: int, mask_offset: int | None) -> tuple[int, bytes, bytes | None]:
    m = prev.shape[0]
    out_raw, out, out_inner = guarded(m, RECORD_SIZE, out_offset)
    mask_raw = mask = mask_inner = None
    if mask_offset is not None:
        mask_raw, mask, mask_inner = guarded(m, 21, mask_offset)
    prev_before, cur_before = prev.tobytes(), cur.tobytes()
    ndec = kernel.delta_rows(prev, cur, counters, policy, out, mask)
    assert prev.tobytes() == prev_before and cur.tobytes() == cur_before
    assert_guards_intact(out_raw, out_inner)
    if mask_raw is not None:
        assert_guards_intact(mask_raw, mask_inner)
        assert set(np.unique(mask)) <= {0, 1}
        assert ndec == int(mask.sum())
    return ndec, out.tobytes(), None if mask is None else mask.tobytes()


KERNEL_ROWS = [0, 1, 3, 4, 5, 7, 8, 9, 31, 32, 33, 36, 79]  # 79 = 2 x 8 blocks + 3 blocks + 3 rows


@pytest.mark.parametrize("avx2", [True, False], ids=["avx2", "portable"])
@pytest.mark.parametrize("streaming", [False, True], ids=["regular", "nontemporal"])
def test_kernels_agree_directly(fast: ModuleType, monkeypatch: pytest.MonkeyPatch, avx2: bool,
                                streaming: bool) -> None:
    fast._set_vector_path(avx2)
    if not avx2:
        assert fast.vector_path() == "portable"
    if streaming:
        monkeypatch.setattr(fast, "STREAMING_THRESHOLD", 0)
    rng = np.random.default_rng(20 + 2 * avx2 + streaming)
    default_counters = np.array([f.kind == "counter" for f in ipsecstats.FIELDS], dtype=np.uint8)
    for m in KERNEL_ROWS:
        values = random_values(rng, 2 * m + 1, fall_fraction=0.4)
        counters = default_counters if m % 2 else rng.integers(0, 3, 21).astype(np.uint8)
        for in_offset in (0, 3):
            prev = rows_at(values[:m], in_offset, read_only=bool(m % 2))
            cur = rows_at(values[m + 1 :], (in_offset * 5) % 8, read_only=not m % 2)
            for policy in POLICIES:
                for out_offset, mask_offset in ((0, 0), (0, None), (0, 1), (8, 0), (1, 5), (32, 32)):
                    want = run_kernel(_slow, prev, cur, counters, policy, out_offset, mask_offset)
                    got = run_kernel(fast, prev, cur, counters, policy, out_offset, mask_offset)
                    assert got == want, (m, policy, out_offset, mask_offset, in_offset)


def test_kernels_agree_above_the_real_streaming_threshold(fast: ModuleType) -> None:
    m = fast.STREAMING_THRESHOLD // RECORD_SIZE + 7  # the first size that streams, plus a tail
    rng = np.random.default_rng(99)
    values = rng.integers(0, 1 << 40, size=(m + 1, 21), dtype=np.uint64)
    values[rng.random((m + 1, 21)) < 0.05] = 3  # frequent falls
    rows = np.frombuffer(values.astype("<u8").tobytes(), np.uint8).reshape(m + 1, RECORD_SIZE)
    counters = np.ones(21, np.uint8)
    for avx2 in (True, False):
        fast._set_vector_path(avx2)
        for policy in ("auto", "wrap"):
            outs = []
            for kernel in (fast, _slow):
                out = aligned_empty((m, RECORD_SIZE), np.uint8)
                mask = aligned_empty((m, 21), np.uint8)
                ndec = kernel.delta_rows(rows[:-1], rows[1:], counters, policy, out, mask)
                outs.append((ndec, out.tobytes(), mask.tobytes()))
            assert outs[0] == outs[1], (avx2, policy)


def test_public_api_on_both_paths_and_store_kinds(fast: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    recs = records_from(edge_pairs_values())  # 242 records
    # stride 32 with previous: both the values (32 * 168) and the mask (32 * 21) of the
    # second run start 32-byte aligned, so that run streams too
    with using_kernel(_slow):
        want = {p: deltas(recs[:83], on_decrease=p, return_resets=True) for p in POLICIES}
        want_prev = {k: deltas(recs[k:], stride=k, previous=recs[:k], return_resets=True) for k in (5, 32)}
    for threshold in (fast.STREAMING_THRESHOLD, 0):
        monkeypatch.setattr(fast, "STREAMING_THRESHOLD", threshold)
        for avx2 in (True, False):
            fast._set_vector_path(avx2)
            with using_kernel(fast):
                for p in POLICIES:  # 82 rows out: 20 blocks of 4 and a tail of 2
                    assert_same_result(deltas(recs[:83], on_decrease=p, return_resets=True), want[p])
                for k in (5, 32):
                    got_prev = deltas(recs[k:], stride=k, previous=recs[:k], return_resets=True)
                    assert_same_result(got_prev, want_prev[k])


def test_kernel_shape_errors_agree(fast: ModuleType) -> None:
    rows = np.zeros((3, RECORD_SIZE), np.uint8)
    counters = np.ones(21, np.uint8)
    out = np.zeros((3, RECORD_SIZE), np.uint8)
    mask = np.zeros((3, 21), np.uint8)
    cases: list[tuple[tuple[Any, ...], str]] = [
        ((rows, rows, counters, "sometimes", out, mask), "policy must be one of"),
        ((rows, rows[:2], counters, "wrap", out, mask), "cur must have shape (3, 168)"),
        ((rows, rows, counters, "wrap", out[:2], mask), "out must have shape (3, 168)"),
        ((rows[:, :160].copy(), rows, counters, "wrap", out, mask), "prev must have shape"),
        ((rows, rows, counters[:20], "wrap", out, mask), "counters must have shape (21,)"),
        ((rows, rows, counters, "wrap", out, mask[:, :20].copy()), "resets must have shape (3, 21)"),
        ((rows, rows, counters, "wrap", out, mask[:1]), "resets must have shape (3, 21)"),
    ]
    for args, text in cases:
        results = []
        for kernel in (fast, _slow):
            with pytest.raises(ValueError) as info:
                kernel.delta_rows(*args)
            assert text in str(info.value), (kernel.__name__, str(info.value))
            results.append(str(info.value))
        assert results[0] == results[1]
    assert not out.any() and not mask.any()
    for kernel in (fast, _slow):
        assert kernel.delta_rows(rows[:0], rows[:0], counters, "auto", out[:0], mask[:0]) == 0


# --- the keyed kernel called directly (issue 8) --------------------------------------------

def run_keyed(kernel: ModuleType, cur: np.ndarray, codes: np.ndarray, ticks: np.ndarray | None,
              state: tuple[np.ndarray, ...], counters: np.ndarray, policy: str, out_offset: int,
              mask_offset: int | None) -> tuple[Any, ...]:
    """One call in guard areas; everything it wrote (the whole output buffers) and the state after."""
    n = cur.shape[0]
    rows, sticks, seen = (a.copy() for a in state)
    out_raw, out, out_inner = guarded(n, RECORD_SIZE, out_offset)
    mask_raw = mask = mask_inner = None
    if mask_offset is not None:
        mask_raw, mask, mask_inner = guarded(n, 21, mask_offset)
    idx_raw, idx, idx_inner = guarded(3, 8 * n, 0)
    earlier, later, eticks = idx[0].view(np.intp), idx[1].view(np.intp), idx[2].view(np.int64)
    cur_before = cur.tobytes()
    m, ndec = kernel.keyed_delta_rows(cur, codes, ticks, rows, sticks, seen, counters, policy, out, mask,
                                      earlier, later, eticks if ticks is not None else None)
    assert cur.tobytes() == cur_before
    for raw, inner in ((out_raw, out_inner), (mask_raw, mask_inner), (idx_raw, idx_inner)):
        if raw is not None:
            assert_guards_intact(raw, inner)
    if mask is not None:
        assert ndec == int(mask[:m].sum())
    return (m, ndec, out.tobytes(), None if mask is None else mask.tobytes(), idx.tobytes(),
            rows.tobytes(), sticks.tobytes(), seen.tobytes())


@pytest.mark.parametrize("avx2", [True, False], ids=["avx2", "portable"])
@pytest.mark.parametrize("streaming", [False, True], ids=["regular", "nontemporal"])
def test_keyed_kernels_agree_directly(fast: ModuleType, monkeypatch: pytest.MonkeyPatch, avx2: bool,
                                      streaming: bool) -> None:
    fast._set_vector_path(avx2)
    if streaming:
        monkeypatch.setattr(fast, "STREAMING_THRESHOLD", 0)
    rng = np.random.default_rng(40 + 2 * avx2 + streaming)
    default_counters = np.array([f.kind == "counter" for f in ipsecstats.FIELDS], dtype=np.uint8)
    for n in (0, 1, 2, 5, 33, 70, 131):
        for nstates in (1, 3, 8):
            values = random_values(rng, n, fall_fraction=0.3)[:n]  # n = 0 still gives one row
            codes = rng.integers(0, nstates, n).astype(np.intp)
            state = (rng.integers(0, 256, (nstates, RECORD_SIZE), dtype=np.uint8),
                     rng.integers(-(2**63), 2**63 - 1, nstates, dtype=np.int64),
                     (rng.random(nstates) < 0.5).astype(np.uint8))
            ticks = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64) if n % 2 else None
            counters = default_counters if nstates != 3 else rng.integers(0, 3, 21).astype(np.uint8)
            cur = rows_at(values, n % 8, read_only=bool(nstates % 2))
            if nstates == 8 and n:
                cur = cur[::-1]
            for policy in POLICIES:
                for out_offset, mask_offset in ((0, 0), (0, None), (8, 1), (32, 32), (16, 16)):
                    want = run_keyed(_slow, cur, codes, ticks, state, counters, policy, out_offset, mask_offset)
                    got = run_keyed(fast, cur, codes, ticks, state, counters, policy, out_offset, mask_offset)
                    assert got == want, (n, nstates, policy, out_offset, mask_offset)


def test_keyed_public_api_parity(fast: ModuleType) -> None:
    values = edge_pairs_values()
    recs = records_from(values)
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 5, len(recs))
    ticks = rng.integers(-(2**63), 2**63 - 1, len(recs), dtype=np.int64)
    for policy in (*POLICIES, "raise"):
        for kernel_state in ({}, {"timestamps": ticks}):
            results = []
            for kernel in (fast, _slow):
                state = ipsecstats.InstanceState()
                with using_kernel(kernel):
                    first = call_outcome(ipsecstats.keyed_deltas, recs[:100], codes[:100], state=state,
                                         on_decrease=policy, return_resets=True,
                                         **{k: v[:100] for k, v in kernel_state.items()})
                    second = call_outcome(ipsecstats.keyed_deltas, recs[100:], codes[100:], state=state,
                                          on_decrease=policy, return_resets=True,
                                          **{k: v[100:] for k, v in kernel_state.items()})
                outcome = []
                for o in (first, second):
                    if o[0] == "ok":
                        r = o[1]
                        o = ("ok", (r.values, r.resets, r.later, r.earlier,
                                    r.steps if r.steps is not None else np.zeros(0)))
                    outcome.append(o)
                results.append((outcome, state.rows.tobytes(), state.ticks.tobytes(), state.seen.tobytes()))
            (a, *sa), (b, *sb) = results
            assert sa == sb
            for x, y in zip(a, b):
                assert x[0] == y[0], (x, y)
                if x[0] == "ok":
                    assert_same_result(x[1], y[1])
                else:
                    assert x[1:] == y[1:]
