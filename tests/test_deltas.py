"""deltas: golden vectors, uint64 properties against Python ints, chunking, errors, threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from conftest import (
    DATA,
    EDGES,
    H63,
    M64,
    MASK64,
    POLICIES,
    as_u64,
    concat_rows,
    edge_pairs_values,
    load_golden,
    random_values,
    records_from,
)
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ipsecstats import FIELDS, RECORD_DTYPE, CounterResetError, decode, deltas, encode

NAMES = tuple(f.name for f in FIELDS)
DEFAULT_KINDS = tuple(f.kind for f in FIELDS)
GOLDEN = load_golden()


# --- an independent oracle on Python ints ------------------------------------------------

def ref_delta(prev: int, cur: int, kind: str, policy: str) -> int:
    """One item's delta, written from the documented arithmetic with Python ints."""
    modular = (cur - prev) & MASK64
    if kind == "gauge":
        return modular - M64 if modular >= H63 else modular  # two's complement int64
    if cur >= prev or policy == "wrap":
        return modular
    fall = prev - cur
    if policy == "reset":
        return cur
    if policy == "zero":
        return 0
    assert policy == "auto"
    return cur if fall < H63 else modular


def ref_deltas(values: list[list[int]], stride: int, policy: str, kinds: tuple[str, ...],
               previous: list[list[int]] | None = None) -> tuple[list[list[int]], list[list[bool]]]:
    """Rows and reset mask as lists; ``previous`` prepended when given."""
    if previous is not None:
        values = previous + values
    rows, mask = [], []
    for i in range(len(values) - stride):
        prev, cur = values[i], values[i + stride]
        rows.append([ref_delta(p, c, k, policy) for p, c, k in zip(prev, cur, kinds)])
        mask.append([k == "counter" and c < p for p, c, k in zip(prev, cur, kinds)])
    return rows, mask


def as_lists(values: np.ndarray) -> list[list[int]]:
    """Delta rows as Python ints (gauges signed), field by field."""
    cols = [values[name].tolist() for name in NAMES]
    return [list(row) for row in zip(*cols)] if values.shape[0] else []


def kinds_with(flipped: frozenset[str]) -> tuple[dict[str, str] | None, tuple[str, ...]]:
    if not flipped:
        return None, DEFAULT_KINDS
    override = {n: ("gauge" if k == "counter" else "counter") for n, k in zip(NAMES, DEFAULT_KINDS)
                if n in flipped}
    return override, tuple(override.get(n, k) for n, k in zip(NAMES, DEFAULT_KINDS))


u64 = st.one_of(st.sampled_from(EDGES), st.integers(0, MASK64))
value_arrays = st.integers(0, 9).flatmap(
    lambda n: hnp.arrays(np.uint64, (n, 21), elements=u64))
EDGE_PAIRS = edge_pairs_values()


def rows_of(v: int, w: int) -> np.ndarray:
    return np.array([[v] * 21, [w] * 21], dtype=np.uint64)


# --- golden vectors ------------------------------------------------------------------------

GOLDEN_CASES = [(case["name"], policy) for case in GOLDEN["deltas"] for policy in case["policies"]]


@pytest.mark.parametrize(("case_name", "policy"), GOLDEN_CASES)
@pytest.mark.parametrize("form", ["records", "bytes", "uint64"])
def test_golden_deltas(case_name: str, policy: str, form: str) -> None:
    case = next(c for c in GOLDEN["deltas"] if c["name"] == case_name)
    expected = case["policies"][policy]
    raw = (DATA / case["file"]).read_bytes()
    data: Any = {"records": decode(raw), "bytes": raw,
                 "uint64": np.frombuffer(raw, "<u8").reshape(-1, 21)}[form]
    previous = decode((DATA / case["previous"]).read_bytes()) if case["previous"] else None
    kw = dict(stride=case["stride"], on_decrease=policy, previous=previous, kinds=case["kinds"])
    if "error" in expected:
        err = expected["error"]
        with pytest.raises(CounterResetError) as info:
            deltas(data, **kw)
        exc = info.value
        assert (exc.row, exc.field) == (err["row"], err["field"])
        assert (exc.previous, exc.current) == (int(err["previous"]), int(err["current"]))
        msg = str(exc)
        for part in (err["field"], f"row {err['row']}", err["previous"], err["current"],
                     f"stride {case['stride']}"):
            assert part in msg, (part, msg)
        return
    values, resets = deltas(data, return_resets=True, **kw)
    assert values.shape == (case["rows"],)
    kinds = dict(zip(NAMES, DEFAULT_KINDS)) | (case["kinds"] or {})
    for name in NAMES:
        assert values.dtype[name].str == ("<u8" if kinds[name] == "counter" else "<i8"), name
        assert values[name].tolist() == [int(x) for x in expected["values"][name]], name
    assert resets.shape == (case["rows"], 21) and resets.dtype == np.bool_
    got = {(int(r), NAMES[c]) for r, c in zip(*np.nonzero(resets))}
    assert got == {(r, f) for r, f in expected["resets"]}
    plain = deltas(data, **kw)
    assert plain.tobytes() == values.tobytes() and plain.dtype == values.dtype


# --- properties --------------------------------------------------------------------------

@given(values=value_arrays, stride=st.integers(1, 4), policy=st.sampled_from(POLICIES),
       flipped=st.frozensets(st.sampled_from(NAMES), max_size=3))
@example(values=EDGE_PAIRS, stride=1, policy="auto", flipped=frozenset())
@example(values=EDGE_PAIRS, stride=1, policy="wrap", flipped=frozenset())
@example(values=EDGE_PAIRS, stride=1, policy="reset", flipped=frozenset())
@example(values=EDGE_PAIRS, stride=1, policy="zero", flipped=frozenset())
@example(values=EDGE_PAIRS, stride=2, policy="auto", flipped=frozenset({"ActiveAcquire", "TotalGetSPI"}))
@example(values=rows_of(H63, 0), stride=1, policy="auto", flipped=frozenset())  # fall 2**63: wrap
@example(values=rows_of(H63 + 1, 1), stride=1, policy="auto", flipped=frozenset())  # fall 2**63: wrap
@example(values=rows_of(H63, 1), stride=1, policy="auto", flipped=frozenset())  # fall 2**63-1: restart
@example(values=rows_of(M64 - 1, 0), stride=1, policy="auto", flipped=frozenset())
@example(values=rows_of(0, M64 - 1), stride=1, policy="reset", flipped=frozenset())
@example(values=rows_of(2**32, 2**32 - 1), stride=1, policy="wrap", flipped=frozenset())
def test_deltas_match_python_ints(values: np.ndarray, stride: int, policy: str,
                                  flipped: frozenset[str]) -> None:
    override, kinds = kinds_with(flipped)
    recs = records_from(values)
    got, resets = deltas(recs, stride=stride, on_decrease=policy, kinds=override, return_resets=True)
    want, want_mask = ref_deltas(values.tolist(), stride, policy, kinds)
    assert got.shape == (max(len(values) - stride, 0),)
    assert as_lists(got) == want
    assert resets.tolist() == want_mask
    for name, kind in zip(NAMES, kinds):
        assert got.dtype[name] == np.dtype("<u8" if kind == "counter" else "<i8")


@given(values=value_arrays, stride=st.integers(1, 3))
@example(values=EDGE_PAIRS, stride=1)
@example(values=rows_of(5, 5), stride=1)
def test_raise_names_the_first_decrease(values: np.ndarray, stride: int) -> None:
    recs = records_from(values)
    rows = values.tolist()
    first = next(((i, j) for i in range(len(rows) - stride) for j in range(21)
                  if DEFAULT_KINDS[j] == "counter" and rows[i + stride][j] < rows[i][j]), None)
    if first is None:
        assert deltas(recs, stride=stride, on_decrease="raise").tobytes() == \
            deltas(recs, stride=stride, on_decrease="wrap").tobytes()
        return
    with pytest.raises(CounterResetError) as info:
        deltas(recs, stride=stride, on_decrease="raise")
    i, j = first
    exc = info.value
    assert (exc.row, exc.field) == (i, NAMES[j])
    assert (exc.previous, exc.current) == (rows[i][j], rows[i + stride][j])
    assert str(rows[i][j]) in str(exc) and str(rows[i + stride][j]) in str(exc)


@given(values=hnp.arrays(np.uint64, (4, 21), elements=u64), stride=st.integers(1, 2))
@example(values=np.array([[7] * 21, [3] * 21, [9] * 21, [1] * 21], dtype=np.uint64), stride=2)
def test_raise_with_previous(values: np.ndarray, stride: int) -> None:
    rows = values.tolist()  # rows[:stride] is the previous batch, the rest the records
    recs, prev = records_from(values[stride:]), records_from(values[:stride])
    first = next(((i - stride, j) for i in range(stride, 4) for j in range(21)
                  if DEFAULT_KINDS[j] == "counter" and rows[i][j] < rows[i - stride][j]), None)
    if first is None:
        assert deltas(recs, stride=stride, previous=prev, on_decrease="raise").shape == (4 - stride,)
        return
    with pytest.raises(CounterResetError) as info:
        deltas(recs, stride=stride, previous=prev, on_decrease="raise")
    r, j = first
    assert (info.value.row, info.value.field) == (r, NAMES[j])
    assert (info.value.previous, info.value.current) == (rows[r][j], rows[r + stride][j])
    assert f"stride {stride}" in str(info.value)


def test_gauge_sign_and_counter_policies_by_example() -> None:
    recs = records_from([[5] * 21, [3] * 21])
    for policy in POLICIES:
        d = deltas(recs, on_decrease=policy)
        for name, kind in zip(NAMES, DEFAULT_KINDS):
            if kind == "gauge":
                assert d[name].tolist() == [-2], (policy, name)
            else:
                assert d[name].tolist() == [{"auto": 3, "reset": 3, "zero": 0, "wrap": M64 - 2}[policy]]


# --- chunked processing equals one shot ---------------------------------------------------

@given(values=st.integers(0, 24).flatmap(lambda n: hnp.arrays(np.uint64, (n, 21), elements=u64)),
       stride=st.integers(1, 5), policy=st.sampled_from(POLICIES),
       cuts=st.lists(st.integers(0, 24), max_size=6), first=st.integers(0, 24))
@example(values=EDGE_PAIRS[:20], stride=3, policy="auto", cuts=[4, 5, 5, 6, 11], first=3)
def test_chunked_with_previous_equals_one_shot(values: np.ndarray, stride: int, policy: str,
                                               cuts: list[int], first: int) -> None:
    n = len(values)
    recs = records_from(values)
    whole, whole_mask = deltas(recs, stride=stride, on_decrease=policy, return_resets=True)
    # The first chunk must hold >= stride records (it has no previous); the others may be
    # empty or shorter than the stride.
    start = min(max(first, stride), n)
    bounds = sorted({start, n, *(c for c in cuts if start <= c <= n)})
    parts = [deltas(recs[:start], stride=stride, on_decrease=policy, return_resets=True)]
    for lo, hi in zip(bounds, bounds[1:]):
        if lo < stride:
            continue
        prev = recs[lo - stride : lo]
        parts.append(deltas(recs[lo:hi], stride=stride, on_decrease=policy, previous=prev,
                            return_resets=True))
        assert parts[-1][0].shape == (hi - lo,)
    chunked = concat_rows([p[0] for p in parts])
    chunked_mask = np.concatenate([p[1] for p in parts])
    assert chunked.dtype == whole.dtype
    assert chunked.tobytes() == whole.tobytes()
    assert np.array_equal(chunked_mask, whole_mask)


def test_previous_in_any_record_form(rng: np.random.Generator) -> None:
    values = random_values(rng, 12)
    recs = records_from(values)
    want = deltas(recs, stride=3)[3:]  # rows of records 6.. against records 3..
    for prev in (recs[3:6], encode(recs[3:6]), values[3:6], recs[3:6].copy()[::-1][::-1],
                 np.frombuffer(encode(recs[3:6]), RECORD_DTYPE)):
        assert deltas(recs[6:], stride=3, previous=prev).tobytes() == want.tobytes()


def test_previous_with_fewer_records_than_stride() -> None:
    values = np.arange(5 * 21, dtype=np.uint64).reshape(5, 21)
    recs = records_from(values)
    got = deltas(recs[3:5], stride=3, previous=recs[0:3])
    assert got.shape == (2,)
    assert got.tobytes() == deltas(recs, stride=3).tobytes()
    assert deltas(recs[:0], stride=3, previous=recs[0:3]).shape == (0,)


# --- stride and sizes -----------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2, 5])
@pytest.mark.parametrize("stride", [1, 2, 5, 6, 100])
def test_output_length(n: int, stride: int) -> None:
    recs = records_from(np.arange(n * 21, dtype=np.uint64).reshape(n, 21))
    values, resets = deltas(recs, stride=stride, return_resets=True)
    assert values.shape == (max(n - stride, 0),) and resets.shape == (max(n - stride, 0), 21)
    if n > stride:
        # each item rose by stride * 21
        assert values["TotalGetSPI"].tolist() == [21 * stride] * (n - stride)


def test_stride_compares_each_instance_with_itself() -> None:
    # three instances, each constant; interleaved they differ from each other
    values = np.array([[10] * 21, [20] * 21, [30] * 21] * 4, dtype=np.uint64)
    recs = records_from(values)
    assert not deltas(recs, stride=3, on_decrease="raise").view("<u8").any()
    with pytest.raises(CounterResetError):
        deltas(recs, stride=1, on_decrease="raise")


@pytest.mark.parametrize("stride", [np.int64(2), np.uint8(2)])
def test_numpy_integer_stride(stride: Any) -> None:
    recs = records_from(np.arange(4 * 21).reshape(4, 21))
    assert deltas(recs, stride=stride).shape == (2,)


# --- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["bogus", "Wrap", "", None, "raise "])
def test_invalid_policy_lists_the_valid_ones(bad: Any) -> None:
    recs = records_from(np.zeros((2, 21), np.uint64))
    with pytest.raises(ValueError) as info:
        deltas(recs, on_decrease=bad)
    for valid in ("auto", "reset", "wrap", "zero", "raise"):
        assert repr(valid) in str(info.value)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize(("bad", "exc"), [(0, ValueError), (-1, ValueError), (1.0, TypeError),
                                           (True, TypeError), ("2", TypeError), (None, TypeError)])
def test_invalid_stride(bad: Any, exc: type) -> None:
    recs = records_from(np.zeros((3, 21), np.uint64))
    with pytest.raises(exc, match="stride"):
        deltas(recs, stride=bad)


def test_kinds_validation() -> None:
    recs = records_from(np.zeros((2, 21), np.uint64))
    with pytest.raises(ValueError, match="NoSuchField"):
        deltas(recs, kinds={"NoSuchField": "counter"})
    with pytest.raises(ValueError, match="'rate'"):
        deltas(recs, kinds={"TotalGetSPI": "rate"})
    with pytest.raises(TypeError, match="mapping"):
        deltas(recs, kinds=[("TotalGetSPI", "gauge")])  # type: ignore[arg-type]
    assert deltas(recs, kinds={}).dtype == deltas(recs).dtype


def test_previous_validation() -> None:
    recs = records_from(np.zeros((4, 21), np.uint64))
    with pytest.raises(ValueError, match="stride=2"):
        deltas(recs, stride=2, previous=recs[:1])
    with pytest.raises(ValueError, match="stride=1"):
        deltas(recs, previous=recs[:3])
    with pytest.raises(ValueError, match="previous"):
        deltas(recs, previous=np.zeros((1, 21), np.int64))
    with pytest.raises(ValueError, match="previous"):
        deltas(recs, previous=np.zeros((1, 21), np.float64))
    with pytest.raises(ValueError, match="previous"):
        deltas(recs, previous=np.zeros(1, np.uint64))
    with pytest.raises(ValueError):
        deltas(recs, previous=bytes(100))  # not whole records


def test_bad_records() -> None:
    with pytest.raises(TypeError):
        deltas(np.zeros((3, 21), np.int64))
    with pytest.raises(ValueError):
        deltas(np.zeros((2, 2), RECORD_DTYPE))
    with pytest.raises(ValueError, match="trailing"):
        deltas(bytes(200))


def test_out_buffers() -> None:
    recs = records_from(random_values(np.random.default_rng(5), 6))
    want, want_mask = deltas(recs, stride=2, return_resets=True)
    out = np.zeros(4, want.dtype)
    assert deltas(recs, stride=2, out=out) is out
    assert out.tobytes() == want.tobytes()
    mask = np.zeros((4, 21), np.bool_)
    got = deltas(recs, stride=2, return_resets=True, out=(out, mask))
    assert got[0] is out and got[1] is mask and np.array_equal(mask, want_mask)

    with pytest.raises(ValueError, match="shape"):
        deltas(recs, stride=2, out=np.zeros(5, want.dtype))
    with pytest.raises(ValueError, match="dtype"):
        deltas(recs, stride=2, out=np.zeros(4, RECORD_DTYPE))  # gauges must be int64
    with pytest.raises(TypeError):
        deltas(recs, stride=2, out=[0] * 4)
    with pytest.raises(ValueError, match="contiguous"):
        deltas(recs, stride=2, out=np.zeros(8, want.dtype)[::2])
    ro = np.zeros(4, want.dtype)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        deltas(recs, stride=2, out=ro)
    with pytest.raises(TypeError, match="tuple"):
        deltas(recs, stride=2, return_resets=True, out=out)
    with pytest.raises(ValueError, match="resets"):
        deltas(recs, stride=2, return_resets=True, out=(out, np.zeros((4, 21), np.uint8)))
    with pytest.raises(ValueError, match="resets"):
        deltas(recs, stride=2, return_resets=True, out=(out, np.zeros((4, 20), np.bool_)))


def test_out_must_not_overlap_input() -> None:
    raw = np.zeros(6 * 168, np.uint8)
    recs = raw.view(RECORD_DTYPE)
    dt = deltas(recs[:2]).dtype
    with pytest.raises(ValueError, match="overlap"):
        deltas(recs[:3], out=raw[2 * 168 : 4 * 168].view(dt))
    with pytest.raises(ValueError, match="overlap"):
        deltas(recs[3:5], previous=recs[2:3], out=raw[2 * 168 : 4 * 168].view(dt))


# --- inputs never change, read-only inputs work -------------------------------------------

def test_inputs_unchanged_and_read_only_inputs(rng: np.random.Generator) -> None:
    values = random_values(rng, 40)
    raw = values.astype("<u8").tobytes()
    writeable = decode(bytearray(raw))
    read_only = decode(raw)
    prev_raw = encode(records_from(random_values(rng, 3)))
    prev_ro = decode(prev_raw)
    assert not read_only.flags.writeable and not prev_ro.flags.writeable
    for recs in (writeable, read_only, read_only[::-1], writeable[1::2]):
        before = encode(recs)
        for policy in (*POLICIES, "raise"):
            for kw in ({}, {"stride": 3}, {"stride": 3, "previous": prev_ro}, {"return_resets": True}):
                try:
                    deltas(recs, on_decrease=policy, **kw)
                except CounterResetError:
                    assert policy == "raise"
        assert encode(recs) == before
        assert encode(prev_ro) == prev_raw
    assert bytes(raw) == encode(read_only)


def test_output_is_fresh_and_writeable() -> None:
    recs = decode(np.arange(4 * 21, dtype="<u8").tobytes())
    values, resets = deltas(recs, return_resets=True)
    assert values.flags.writeable and resets.flags.writeable
    assert values.flags.c_contiguous and resets.flags.c_contiguous
    assert not np.shares_memory(values, recs) and not np.shares_memory(resets, recs)


# --- threads ---------------------------------------------------------------------------------

def test_concurrent_calls_are_correct(rng: np.random.Generator) -> None:
    logs = [records_from(random_values(rng, 3000)) for _ in range(4)]
    jobs = [(i, policy, stride) for i in range(4) for policy in POLICIES for stride in (1, 2)]
    expected = {job: deltas(logs[job[0]], on_decrease=job[1], stride=job[2], return_resets=True)
                for job in jobs}

    def run(job: tuple[int, str, int]) -> tuple[Any, Any]:
        i, policy, stride = job
        return deltas(logs[i], on_decrease=policy, stride=stride, return_resets=True)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, jobs * 3))
    for job, (values, resets) in zip(jobs * 3, results):
        want_values, want_resets = expected[job]
        assert values.tobytes() == want_values.tobytes()
        assert np.array_equal(resets, want_resets)
    # and the single-threaded results themselves are right (spot check against Python ints)
    i, policy, stride = jobs[5]
    want, _ = ref_deltas(as_u64(logs[i][:50]).tolist(), stride, policy, DEFAULT_KINDS)
    assert as_lists(expected[jobs[5]][0][: 50 - stride]) == want
