"""Rates in the vector unit: ``rate_rows`` and the fused ``delta_rate_rows``, AVX2 and portable,
streamed and not, bit for bit the twin and an independent Python reference.

The uint64 -> float64 conversion splits each value into 32-bit halves; the edge values
below are those where a wrong split or a double rounding shows: 2**53 +- 1, 2**64 - 1,
ties between two doubles (rounded to even), and values whose low half alone would round
the other way.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ipsecstats
from ipsecstats import _backend, _slow
from ipsecstats._generate import generate
from ipsecstats._schema import RECORD_DTYPE

from conftest import require_fast

EDGES = [0, 1, 2**32 - 1, 2**32, 2**32 + 1, 2**53 - 1, 2**53, 2**53 + 1, 2**53 + 3, 2**54 + 2, 2**54 + 6,
         2**63 - 1, 2**63, 2**63 + 1, 2**63 + 1024, 2**63 + 1025, 2**63 + 3072, 2**64 - 2049, 2**64 - 2048,
         2**64 - 1025, 2**64 - 1024, 2**64 - 1, (2**21 + 1) << 32 | 0x80000000, (2**21 + 1) << 32 | 0x7FFFFFFF,
         0xFFFFFFFF00000000, 0x00000001FFFFFFFF, 0x0020000000000001, 0x7FFFFFFFFFFFFC00, 0x7FFFFFFFFFFFFDFF]
VALUES = st.sampled_from(EDGES) | st.integers(0, 2**64 - 1)
POLICIES = ("wrap", "reset", "zero", "auto")
COUNTERS = [f.kind == "counter" for f in ipsecstats.FIELDS]


def _ref_delta(p: int, c: int, counter: bool, policy: str) -> int:
    d = (c - p) % 2**64
    if not counter or c >= p or policy == "wrap":
        return d
    if policy == "zero":
        return 0
    if policy == "auto" and d <= 2**63:
        return d
    return c


def _reference(prev, cur, counters, policy, cols, sec):
    """Python ints, then one rounding (int -> float is correctly rounded) and an IEEE division."""
    out = np.empty((prev.shape[0], len(cols)))
    with np.errstate(all="ignore"):
        for i in range(prev.shape[0]):
            s = sec[i if sec.shape[0] > 1 else 0]
            for j, c in enumerate(cols):
                d = _ref_delta(int(prev[i, c]), int(cur[i, c]), bool(counters[c]), policy)
                out[i, j] = np.float64(float(d)) / s
    return out


@pytest.fixture(params=["avx2", "portable"])
def fast(request):
    kernel = require_fast()
    if request.param == "avx2" and kernel.vector_path() != "avx2":
        pytest.skip("no AVX2 on this CPU")
    kernel._set_vector_path(request.param == "avx2")
    yield kernel
    kernel._set_vector_path(True)


column_lists = (st.lists(st.integers(0, 20), min_size=0, max_size=24)
                | st.just([j for j in range(21) if COUNTERS[j]])
                | st.just([17, 18, 19, 20, 18, 19, 20, 3])  # 3 consecutive at the row's end: no wide load
                | st.just([2, 3, 4, 7, 0, 1, 2, 20]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.lists(VALUES, min_size=21, max_size=21), st.lists(VALUES, min_size=21, max_size=21)),
                     min_size=1, max_size=11),
       seconds=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64)
                        | st.sampled_from([1.0, 3.0, 10.0, 0.1, 2.5, 1e-300, -0.0]), min_size=1, max_size=11),
       columns=column_lists, policy=st.sampled_from(POLICIES),
       counters=st.lists(st.booleans(), min_size=21, max_size=21) | st.just(COUNTERS), streaming=st.booleans())
@example(rows=[(EDGES[:21], EDGES[-21:])], seconds=[1.0], columns=list(range(21)), policy="auto",
         counters=COUNTERS, streaming=False)
def test_fused_and_plain_agree_with_the_twin_and_python(fast, rows, seconds, columns, policy, counters, streaming):
    threshold = fast.STREAMING_THRESHOLD
    fast.STREAMING_THRESHOLD = 0 if streaming else threshold
    try:
        _check_all(fast, rows, seconds, columns, policy, counters)
    finally:
        fast.STREAMING_THRESHOLD = threshold


def _check_all(fast, rows, seconds, columns, policy, counters):
    prev = np.array([r[0] for r in rows], "<u8")  # the kernels read little-endian rows
    cur = np.array([r[1] for r in rows], "<u8")
    m = prev.shape[0]
    sec = np.array(seconds[:m] if len(seconds) >= m else seconds[:1], np.float64)
    cols = np.array(columns, np.uint8)
    lanes = np.array(counters, np.uint8)
    want = _reference(prev, cur, lanes, policy, columns, sec)
    outs = []
    for kernel in (fast, _slow):
        out = np.full((m, len(cols)), -7.0)
        kernel.delta_rate_rows(prev.view(np.uint8), cur.view(np.uint8), lanes, policy, cols, sec, out)
        outs.append(out.tobytes())
        deltas = np.empty((m, 168), np.uint8)
        kernel.delta_rows(prev.view(np.uint8), cur.view(np.uint8), lanes, policy, deltas)
        plain = np.full((m, len(cols)), -7.0)
        kernel.rate_rows(deltas.view("<u8").astype(np.uint64), cols, sec, plain)  # rate_rows: native uint64
        outs.append(plain.tobytes())
    assert outs[0] == outs[1] == outs[2] == outs[3] == want.tobytes()


def test_rows_of_any_stride_and_every_block_size(fast):
    """Rows a stride apart (one call per row) and long runs (blocks, tails) give the same bits."""
    rng = np.random.default_rng(5)
    for m in (1, 3, 4, 5, 255, 256, 257, 1031):
        recs = rng.integers(0, 2**64 - 1, size=(2 * m + 1, 21), dtype=np.uint64, endpoint=True)
        recs[rng.random(recs.shape) < 0.3] = rng.choice(np.array(EDGES, np.uint64), size=1)
        rows = recs.astype("<u8").view(np.uint8)  # the kernels read little-endian rows
        cols = np.array([j for j in range(21) if COUNTERS[j]], np.uint8)
        sec = rng.random(m) * 10
        got = []
        for prev, cur in ((rows[0:m], rows[1:m + 1]), (rows[0:2 * m:2], rows[1:2 * m + 1:2])):
            for kernel in (fast, _slow):
                out = np.empty((m, cols.shape[0]))
                kernel.delta_rate_rows(prev, cur, np.array(COUNTERS, np.uint8), "auto", cols, sec, out)
                got.append(out)
            assert got[-2].tobytes() == got[-1].tobytes()
            want = _reference(prev.view("<u8"), cur.view("<u8"), np.array(COUNTERS), "auto",
                              cols.tolist(), sec)
            assert got[-1].tobytes() == want.tobytes()


@pytest.mark.parametrize("policy", ["auto", "reset", "zero", "wrap", "raise"])
def test_rates_equal_deltas_divided(monkeypatch, policy):
    """``rates()`` (fused) equals ``deltas()`` divided column by column, in both backends."""
    recs = generate(4000, instances=2, interval=10.0, restarts=0 if policy == "raise" else 3,
                    seed=2, wrap=policy != "raise")
    ts = np.datetime64("2024-01-01", "ns") + np.arange(4000) * np.timedelta64(5_000_000_123, "ns")
    got = []
    for kernel in (require_fast(), _slow):
        monkeypatch.setattr(_backend, "KERNEL", kernel)
        for kw in ({"interval": 7.0}, {"timestamps": ts}):
            r = ipsecstats.rates(recs, stride=2, on_decrease=policy, **kw)
            d = ipsecstats.deltas(recs, stride=2, on_decrease=policy)
            sec = 7.0 if "interval" in kw else (ts[2:] - ts[:-2]) / np.timedelta64(1, "s")
            for name in r.dtype.names:
                np.testing.assert_array_equal(r[name], d[name].astype(np.float64) / sec)
            got.append(r.tobytes())
    assert got[0] == got[2] and got[1] == got[3]


def test_an_empty_and_a_one_record_log():
    assert ipsecstats.rates(np.zeros(1, RECORD_DTYPE), interval=1.0).shape == (0,)
    assert ipsecstats.rates(np.zeros(0, RECORD_DTYPE), interval=1.0).shape == (0,)
