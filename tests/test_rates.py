"""rates: golden vectors, interval vs timestamps, stride, NaN for bad time steps, errors."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from conftest import DATA, POLICIES, load_golden, random_values, records_from
from hypothesis import example, given
from hypothesis import strategies as st

from ipsecstats import COUNTERS, FIELDS, GAUGES, decode, deltas, rates

GOLDEN = load_golden()
NAMES = tuple(f.name for f in FIELDS)


def expected_floats(col: list[float | None]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in col]


def same_floats(got: np.ndarray, want: list[float]) -> bool:
    """Exact float equality, NaN equal to NaN."""
    return np.array_equal(got, np.array(want, dtype=np.float64), equal_nan=True)


@pytest.mark.parametrize("case", GOLDEN["rates"], ids=lambda c: c["name"])
def test_golden_rates(case: dict[str, Any]) -> None:
    recs = decode((DATA / case["file"]).read_bytes())
    kw: dict[str, Any] = {"stride": case["stride"], "on_decrease": case["on_decrease"]}
    if case["interval"] is not None:
        kw["interval"] = case["interval"]
    else:
        kw["timestamps"] = np.array(case["timestamps"], dtype=case.get("timestamps_dtype", "f8"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN rows come without a RuntimeWarning
        got = rates(recs, **kw)
    assert got.dtype.names == COUNTERS
    assert all(got.dtype[n] == np.dtype(np.float64) for n in COUNTERS)  # native, on any host
    for name, col in case["values"].items():
        assert same_floats(got[name], expected_floats(col)), (name, got[name], col)


@given(stride=st.integers(1, 3), interval=st.floats(1e-3, 1e6), policy=st.sampled_from(POLICIES),
       seed=st.integers(0, 2**32 - 1))
@example(stride=1, interval=1.0, policy="wrap", seed=0)
@example(stride=2, interval=0.1, policy="auto", seed=1)
def test_rate_is_delta_over_interval(stride: int, interval: float, policy: str, seed: int) -> None:
    recs = records_from(random_values(np.random.default_rng(seed), 8))
    d = deltas(recs, stride=stride, on_decrease=policy)
    r = rates(recs, interval=interval, stride=stride, on_decrease=policy)
    for name in COUNTERS:
        # Python int -> float is correctly rounded, then one correctly rounded division
        assert r[name].tolist() == [float(v) / interval for v in d[name].tolist()], name


def test_interval_is_per_instance_not_per_record() -> None:
    # two interleaved instances, each counting +10 per sample; samples 5 s apart
    values = np.array([[100] * 21, [200] * 21, [110] * 21, [210] * 21], dtype=np.uint64)
    r = rates(records_from(values), interval=5.0, stride=2)
    assert r["TotalGetSPI"].tolist() == [2.0, 2.0]


def test_float_and_datetime_timestamps_agree() -> None:
    values = np.cumsum(np.full((5, 21), 30, dtype=np.uint64), axis=0, dtype=np.uint64)
    recs = records_from(values)
    seconds = np.array([0.0, 10.0, 15.0, 45.0, 105.0])
    stamps = np.datetime64("2024-03-01T12:00:00", "s") + seconds.astype("timedelta64[s]")
    want = [30 / 10, 30 / 5, 30 / 30, 30 / 60]
    assert rates(recs, timestamps=seconds)["KeyUpdates"].tolist() == want
    assert rates(recs, timestamps=stamps)["KeyUpdates"].tolist() == want
    assert rates(recs, timestamps=stamps.astype("datetime64[ns]"))["KeyUpdates"].tolist() == want
    assert rates(recs, timestamps=list(seconds))["KeyUpdates"].tolist() == want
    assert rates(recs, timestamps=seconds, stride=2)["KeyUpdates"].tolist() == [60 / 15, 60 / 35, 60 / 90]


def test_zero_negative_and_missing_time_steps_give_nan_without_warning() -> None:
    recs = records_from(np.cumsum(np.ones((6, 21), dtype=np.uint64), axis=0, dtype=np.uint64))
    seconds = np.array([0.0, 1.0, 1.0, 0.5, np.nan, 3.0])
    stamps = np.array(["2024-01-01T00:00:00", "2024-01-01T00:00:01", "2024-01-01T00:00:01",
                       "2023-12-31T23:59:59", "NaT", "2024-01-01T00:00:03"], dtype="datetime64[s]")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_seconds = rates(recs, timestamps=seconds)
        by_stamps = rates(recs, timestamps=stamps)
    nan = float("nan")
    assert same_floats(by_seconds["OakleyMainMode"], [1.0, nan, nan, nan, nan])
    assert same_floats(by_stamps["OakleyMainMode"], [1.0, nan, nan, nan, nan])
    for name in COUNTERS:
        assert np.isnan(by_seconds[name][1:]).all() and not np.isinf(by_seconds[name]).any()


def test_kinds_choose_the_rate_columns() -> None:
    recs = records_from(np.arange(3 * 21, dtype=np.uint64).reshape(3, 21))
    r = rates(recs, interval=2.0, kinds={"ActiveAcquire": "counter", "TotalGetSPI": "gauge"})
    assert "ActiveAcquire" in r.dtype.names and "TotalGetSPI" not in r.dtype.names
    assert not set(GAUGES[1:]) & set(r.dtype.names)
    assert r["ActiveAcquire"].tolist() == [10.5, 10.5]
    assert list(r.dtype.names) == [n for n in NAMES if n == "ActiveAcquire" or n in COUNTERS and n != "TotalGetSPI"]


@pytest.mark.parametrize("n", [0, 1, 2])
def test_short_inputs(n: int) -> None:
    recs = records_from(np.ones((n, 21), dtype=np.uint64))
    assert rates(recs, interval=1.0).shape == (max(n - 1, 0),)
    assert rates(recs, timestamps=np.arange(n, dtype=np.float64)).shape == (max(n - 1, 0),)
    assert rates(recs, interval=1.0, stride=3).shape == (0,)


def test_policy_applies_to_rates() -> None:
    recs = records_from([[10] * 21, [4] * 21])
    assert rates(recs, interval=2.0)["KeyAdditions"].tolist() == [2.0]  # auto: restart, 4/2
    assert rates(recs, interval=2.0, on_decrease="zero")["KeyAdditions"].tolist() == [0.0]
    assert rates(recs, interval=1.0, on_decrease="wrap")["KeyAdditions"].tolist() == [float(2**64 - 6)]
    with pytest.raises(ValueError, match="went down"):
        rates(recs, interval=1.0, on_decrease="raise")
    with pytest.raises(ValueError, match="on_decrease"):
        rates(recs, interval=1.0, on_decrease="nope")  # type: ignore[arg-type]


def test_exactly_one_time_base() -> None:
    recs = records_from(np.ones((3, 21), dtype=np.uint64))
    with pytest.raises(ValueError, match="exactly one"):
        rates(recs)
    with pytest.raises(ValueError, match="exactly one"):
        rates(recs, interval=1.0, timestamps=np.arange(3.0))


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf"), -float("inf")])
def test_interval_must_be_positive_and_finite(bad: float) -> None:
    recs = records_from(np.ones((3, 21), dtype=np.uint64))
    with pytest.raises(ValueError, match="interval"):
        rates(recs, interval=bad)


def test_bad_interval_and_timestamps_types() -> None:
    recs = records_from(np.ones((3, 21), dtype=np.uint64))
    with pytest.raises(TypeError, match="interval"):
        rates(recs, interval="10s")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one entry per record"):
        rates(recs, timestamps=np.arange(2.0))
    with pytest.raises(ValueError, match="one entry per record"):
        rates(recs, timestamps=np.zeros((3, 1)))
    with pytest.raises(TypeError, match="datetime64"):
        rates(recs, timestamps=np.array(["a", "b", "c"]))


def test_rates_leave_inputs_unchanged() -> None:
    values = random_values(np.random.default_rng(3), 10)
    recs = records_from(values)
    stamps = np.arange(10, dtype=np.float64)
    before, stamps_before = recs.tobytes(), stamps.tobytes()
    rates(recs, interval=1.0, stride=2)
    rates(recs, timestamps=stamps, stride=2)
    rates(recs[::-1], timestamps=stamps)
    assert recs.tobytes() == before and stamps.tobytes() == stamps_before
    read_only = decode(values.astype("<u8").tobytes())
    assert rates(read_only, interval=1.0).tobytes() == rates(recs, interval=1.0).tobytes()
