"""Instance-keyed deltas (issue 8): against a plain-Python per-instance reference, chunked
against whole, the stride kernel against the keyed one, and the public ``deltas`` hook.

Most tests run on the backend that loaded; the ``kernel`` fixture runs a test on both.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from conftest import EDGES, M64, MASK64, POLICIES, concat_rows, records_from, using_kernel, KERNELS
from hypothesis import example, given
from hypothesis import strategies as st

import ipsecstats
from ipsecstats import CounterResetError, InstanceState, deltas, keyed_deltas
from ipsecstats._keyed import NAT

COUNTER = [f.kind == "counter" for f in ipsecstats.FIELDS]


# --- the reference: a dict of the last record per code, Python ints -------------------------

def ref_row(prev: list[int], cur: list[int], policy: str) -> tuple[list[int], list[bool]]:
    values, resets = [], []
    for p, c, counter in zip(prev, cur, COUNTER):
        d = (c - p) & MASK64
        dec = counter and c < p
        if dec and policy == "reset":
            d = c
        elif dec and policy == "zero":
            d = 0
        elif dec and policy == "auto" and d > 2**63:
            d = c
        values.append(d)
        resets.append(dec)
    return values, resets


def reference(values: list[list[int]], codes: list[int], policy: str,
              state: dict[int, list[int]] | None = None) -> tuple[list[Any], dict[int, list[int]]]:
    """Rows (later, earlier or -1, values as uint64 ints, resets) and the state after."""
    last: dict[int, int] = {}
    state = dict(state or {})
    rows = []
    for i, (row, code) in enumerate(zip(values, codes)):
        if code in last:
            earlier, prev = last[code], values[last[code]]
        elif code in state:
            earlier, prev = -1, state[code]
        else:
            last[code] = i
            continue
        rows.append((i, earlier, *ref_row(prev, row, policy)))
        last[code] = i
    for code, i in last.items():
        state[code] = values[i]
    return rows, state


def as_rows(result: ipsecstats.KeyedDeltas) -> list[Any]:
    vals = np.ascontiguousarray(result.values).view("<u8").reshape(-1, 21).tolist()
    resets = result.resets.tolist() if result.resets is not None else [None] * len(vals)
    return [(int(l), int(e), v, r) for l, e, v, r in zip(result.later, result.earlier, vals, resets)]


def state_dict(state: InstanceState) -> dict[int, list[int]]:
    u = state.rows.view("<u8").reshape(-1, 21)
    return {k: u[k].tolist() for k in range(len(state)) if state.seen[k]}


def seeded_state(ref_state: dict[int, list[int]]) -> InstanceState:
    state = InstanceState(max(ref_state, default=-1) + 1)
    for k, row in ref_state.items():
        state.rows[k] = np.array(row, "<u8").view(np.uint8)
        state.seen[k] = 1
    return state


values_st = st.integers(0, 24).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.one_of(st.sampled_from(EDGES), st.integers(0, M64 - 1)), min_size=21, max_size=21),
             min_size=n, max_size=n),
    st.lists(st.integers(0, 5), min_size=n, max_size=n)))

EDGE_VALUES = [[EDGES[(i * 5 + j) % len(EDGES)] for j in range(21)] for i in range(12)]
EDGE_CODES = [0, 1, 0, 3, 1, 1, 0, 3, 3, 2, 0, 2]


@given(data=values_st, policy=st.sampled_from(POLICIES), seed_state=st.booleans())
@example(data=(EDGE_VALUES, EDGE_CODES), policy="auto", seed_state=True)
@example(data=(EDGE_VALUES, EDGE_CODES), policy="reset", seed_state=False)
@example(data=([[0] * 21, [M64 - 1] * 21, [1] * 21, [2**63] * 21, [2**32] * 21], [0, 0, 0, 0, 0]),
         policy="wrap", seed_state=False)
@example(data=([[M64 - 1] * 21, [0] * 21, [2**63] * 21, [2**63 - 1] * 21], [4, 4, 4, 4]),
         policy="zero", seed_state=True)
def test_matches_the_per_instance_reference(data: Any, policy: str, seed_state: bool) -> None:
    values, codes = data
    start = {k: EDGE_VALUES[k] for k in (0, 2, 4)} if seed_state else {}
    want_rows, want_state = reference(values, codes, policy, start)
    state = seeded_state(start)
    before = state.copy()
    for name, kernel in KERNELS.items():
        st_k = state.copy()
        with using_kernel(kernel):
            got = keyed_deltas(records_from(values) if values else ipsecstats.decode(b""), np.array(codes, np.intp),
                               state=st_k, on_decrease=policy, return_resets=True)
        assert as_rows(got) == want_rows, name
        assert state_dict(st_k) == want_state, name
        assert state_dict(got.previous_state) == state_dict(before)
        assert got.steps is None


@given(data=values_st, policy=st.sampled_from(POLICIES),
       cuts=st.lists(st.integers(0, 24), max_size=4), with_ticks=st.booleans())
@example(data=(EDGE_VALUES, EDGE_CODES), policy="auto", cuts=[0, 3, 3, 7], with_ticks=True)
def test_chunked_equals_whole(data: Any, policy: str, cuts: list[int], with_ticks: bool) -> None:
    values, codes = data
    n = len(values)
    recs = records_from(values) if values else ipsecstats.decode(b"")
    ticks = (np.arange(n, dtype=np.int64) * 1_000_000_007 - 5 * 10**17) if with_ticks else None
    if with_ticks and n > 2:
        ticks[n // 2] = NAT
    whole = keyed_deltas(recs, codes, timestamps=ticks, on_decrease=policy, return_resets=True)
    state = InstanceState()
    parts: list[Any] = []
    bounds = [0, *sorted(min(c, n) for c in cuts), n]
    for a, b in zip(bounds, bounds[1:]):
        part = keyed_deltas(recs[a:b], codes[a:b], state=state, on_decrease=policy, return_resets=True,
                            timestamps=None if ticks is None else ticks[a:b])
        # earlier -1 means "the state": the global index is the last record of that code before a
        glob_earlier = part.earlier + a
        for r in np.flatnonzero(part.earlier < 0):
            code = codes[a + part.later[r]]
            glob_earlier[r] = max(i for i in range(a) if codes[i] == code)
            assert part.previous_state.seen[code]
        parts.append((part.values, part.resets, part.later + a, glob_earlier, part.steps))
        assert part.state is state
    cat = [concat_rows([p[k] for p in parts]) if parts else None for k in range(4)]
    assert cat[0].tobytes() == whole.values.tobytes()
    assert np.array_equal(cat[1], whole.resets)
    assert np.array_equal(cat[2], whole.later)
    assert np.array_equal(cat[3], whole.earlier)
    if with_ticks:
        steps = np.concatenate([p[4] for p in parts])
        assert steps.tobytes() == whole.steps.tobytes()
    assert state_dict(state) == state_dict(whole.state)


@pytest.mark.parametrize("k", [1, 2, 3, 7])
@pytest.mark.parametrize("policy", POLICIES)
def test_stride_kernel_equals_keyed_kernel_for_codes_r_mod_k(kernel: Any, k: int, policy: str, rng: Any) -> None:
    from conftest import random_values

    values = random_values(rng, 120, fall_fraction=0.2)
    recs = records_from(values)
    codes = np.arange(120) % k
    want, want_resets = deltas(recs, stride=k, on_decrease=policy, return_resets=True)
    got = keyed_deltas(recs, codes, on_decrease=policy, return_resets=True)
    assert got.values.tobytes() == want.tobytes()
    assert np.array_equal(got.resets, want_resets)
    assert np.array_equal(got.later, np.arange(k, 120)) and np.array_equal(got.earlier, np.arange(120 - k))
    # with a previous batch: the state holds the last k records
    state = InstanceState()
    keyed_deltas(recs[:k], codes[:k], state=state)
    want2 = deltas(recs[k:], stride=k, previous=recs[:k], on_decrease=policy)
    got2 = deltas(recs[k:], instances=codes[k:], previous=state, on_decrease=policy)
    assert got2.tobytes() == want2.tobytes()


def test_public_deltas_with_labels_and_state(kernel: Any) -> None:
    values = [[i * 10 + j for j in range(21)] for i in range(8)]
    recs = records_from(values)
    names = np.array(["hba1", "hba2", "hba1", "hba3", "hba2", "hba1", "hba3", "hba3"])
    state = InstanceState()
    d1 = deltas(recs[:4], instances=names[:4], previous=state)
    assert state.labels == {"hba1": 0, "hba2": 1, "hba3": 2}
    assert d1["ActiveAcquire"].tolist() == [20]
    d2, r2 = deltas(recs[4:], instances=list(names[4:]), previous=state, return_resets=True)
    assert d2["AcquireFailures"].tolist() == [30, 30, 30, 10]  # hba2 4-1, hba1 5-2, hba3 6-3, 7-6
    assert r2.shape == (4, 21) and not r2.any()
    codes_state = InstanceState()
    plain = deltas(recs, instances=[0, 1, 0, 2, 1, 0, 2, 2], previous=codes_state)
    whole = deltas(recs, instances=names)
    assert plain.tobytes() == whole.tobytes() == concat_rows([d1, d2]).tobytes()
    assert state_dict(codes_state) == state_dict(state)


def test_deltas_hook_refuses_mixtures() -> None:
    recs = records_from([[1] * 21] * 4)
    with pytest.raises(TypeError, match="stride= or instances="):
        deltas(recs, stride=2, instances=[0, 1, 0, 1])
    with pytest.raises(TypeError, match="InstanceState"):
        deltas(recs, instances=[0, 1, 0, 1], previous=recs[:1])
    with pytest.raises(TypeError, match="goes with instances="):
        deltas(recs, previous=InstanceState())
    with pytest.raises(ValueError, match="one entry per record"):
        deltas(recs, instances=[0, 1, 0])
    with pytest.raises(ValueError, match=r"codes\[2\] = -1 is out of range"):
        deltas(recs, instances=[0, 1, -1, 1])
    with pytest.raises(TypeError, match="booleans"):
        deltas(recs, instances=[True, False, True, False])
    labelled = InstanceState()
    deltas(recs, instances=["a", "b", "a", "b"], previous=labelled)
    with pytest.raises(ValueError, match="pass the labels"):
        deltas(recs, instances=[0, 1, 0, 1], previous=labelled)
    coded = InstanceState()
    deltas(recs, instances=[0, 1, 0, 1], previous=coded)
    with pytest.raises(ValueError, match="pass integer codes"):
        deltas(recs, instances=["a", "b", "a", "b"], previous=coded)


def test_raise_is_transactional(kernel: Any) -> None:
    values = [[5] * 21, [6] * 21, [7] * 21, [9] * 21, [3] * 21, [10] * 21]
    recs = records_from(values)
    state = InstanceState()
    deltas(recs[:2], instances=["x", "y"], previous=state)
    before = state.copy()
    # y: 6 -> 9 fine, x: 5 -> 7 fine, new label z grows the state, x: 7 -> 3 falls
    with pytest.raises(CounterResetError) as info:
        keyed_deltas(recs[2:], ["x", "y", "x", "z"], state=state, on_decrease="raise")
    exc = info.value
    assert (exc.row, exc.field, exc.previous, exc.current) == (2, "AcquireFailures", 7, 3)
    assert "record 2" in " ".join(exc.__notes__)
    assert len(state) == len(before) == 2 and state.labels == {"x": 0, "y": 1}
    assert state.rows.tobytes() == before.rows.tobytes() and state.seen.tolist() == [1, 1]
    # against the state: the earlier record is the one kept from the earlier chunk
    with pytest.raises(CounterResetError) as info2:
        keyed_deltas(recs[4:5], ["y"], state=state, on_decrease="raise")
    assert (info2.value.row, info2.value.previous, info2.value.current) == (0, 6, 3)
    assert state.rows.tobytes() == before.rows.tobytes()
    # a code out of range, a bad timestamp array: state untouched as well
    with pytest.raises(ValueError):
        keyed_deltas(recs[2:], ["x", "y", "q", "z"], state=state, timestamps=np.zeros(3, np.int64))
    assert state.labels == {"x": 0, "y": 1} and len(state) == 2
    ok = keyed_deltas(recs[2:], ["x", "y", "x", "z"], state=state, on_decrease="reset")
    assert ok.values["AcquireFailures"].tolist() == [2, 3, 3]
    assert ok.later.tolist() == [0, 1, 2] and ok.earlier.tolist() == [-1, -1, 0]


def test_state_grows_and_pickles(kernel: Any) -> None:
    recs = records_from([[i] * 21 for i in range(6)])
    state = InstanceState()
    assert len(state) == 0
    keyed_deltas(recs[:2], [0, 2], state=state)
    assert len(state) == 3 and state.seen.tolist() == [1, 0, 1]
    keyed_deltas(recs[2:4], [9, 2], state=state)
    assert len(state) == 10 and state.seen[9] and not state.seen[5]
    again = pickle.loads(pickle.dumps(state))
    assert state_dict(again) == state_dict(state) and again.labels == state.labels
    assert again.ticks.tolist() == state.ticks.tolist()
    clone = state.copy()
    keyed_deltas(recs[4:], [0, 0], state=state)
    assert state_dict(clone) != state_dict(state)
    assert state.records["ActiveAcquire"][0] == 5
    with pytest.raises(TypeError):
        keyed_deltas(recs, [0] * 6, state={})


def test_timestamps_nat_and_exact_big_steps(kernel: Any) -> None:
    recs = records_from([[i] * 21 for i in range(6)])
    lo, hi = NAT + 1, np.iinfo(np.int64).max
    ticks = np.array([lo, 0, hi, NAT, 7, 2**62], np.int64)
    codes = [0, 1, 0, 1, 1, 0]
    got = keyed_deltas(recs, codes, timestamps=ticks)
    assert got.later.tolist() == [2, 3, 4, 5]
    want = [(hi - lo) / 1e9, float("nan"), float("nan"), (2**62 - hi) / 1e9]
    assert np.array_equal(got.steps, want, equal_nan=True)
    assert got.steps[0] == (2**64 - 2) / 1e9
    # datetime64 of any unit; the state keeps the ticks across chunks
    dt = np.array(["2024-06-03T02:00:00", "2024-06-03T02:00:01", "2024-06-03T02:00:10"], "M8[s]")
    state = InstanceState()
    keyed_deltas(recs[:1], [0], state=state, timestamps=dt[:1])
    part = keyed_deltas(recs[1:3], [0, 0], state=state, timestamps=dt[1:])
    assert part.steps.tolist() == [1.0, 9.0] and part.earlier.tolist() == [-1, 0]
    # a chunk without timestamps leaves NaT in the state: the next step is NaN
    keyed_deltas(recs[3:4], [0], state=state)
    assert state.ticks[0] == NAT
    assert np.isnan(keyed_deltas(recs[4:5], [0], state=state, timestamps=np.array([5])).steps).all()
    with pytest.raises(TypeError, match="datetime64 or integer"):
        keyed_deltas(recs, codes, timestamps=np.zeros(6))


def test_out_buffers(kernel: Any) -> None:
    recs = records_from([[i * 3] * 21 for i in range(10)])
    codes = [0, 1] * 5
    dtype = ipsecstats._deltas.delta_dtype(ipsecstats._deltas.resolve_kinds(None))
    values = np.zeros(12, dtype)
    resets = np.zeros((12, 21), np.bool_)
    got = keyed_deltas(recs, codes, out=(values, resets), return_resets=True)
    assert np.shares_memory(got.values, values) and got.values.shape == (8,)
    assert got.values.tobytes() == keyed_deltas(recs, codes).values.tobytes()
    with pytest.raises(ValueError, match="shape"):
        keyed_deltas(recs, codes, out=np.zeros(9, dtype))
    with pytest.raises(TypeError, match="tuple"):
        keyed_deltas(recs, codes, out=values, return_resets=True)
    with pytest.raises(ValueError, match="overlap"):
        keyed_deltas(recs, codes, out=recs.view(dtype))
    assert deltas(recs, instances=codes, out=values) is not values  # a view of its first rows


def test_read_only_and_strided_records(kernel: Any) -> None:
    values = [[(i * 7919) % 50] * 21 for i in range(20)]
    raw = records_from(values).tobytes()
    ro = ipsecstats.decode(raw)[::-2]
    codes = np.arange(10) % 3
    want_rows, _ = reference(values[::-2], codes.tolist(), "auto")
    assert as_rows(keyed_deltas(ro, codes, return_resets=True)) == want_rows
    assert raw == records_from(values).tobytes()
