"""``as_datetime_ns``: every datetime64 unit to datetime64[ns], exactly, or a ValueError.

numpy < 2.5 wraps an overflowing datetime cast and numpy >= 2.5 raises OverflowError; both
mis-convert units finer than 1 ns near -2**63. The reference here is exact Python integer
arithmetic, so the same answers are required on every numpy version.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsecstats import RECORD_DTYPE, write_wnode
from ipsecstats._capture import as_datetime_ns

I64 = 2**63 - 1
NS = {"W": 604_800 * 10**9, "D": 86_400 * 10**9, "h": 3_600 * 10**9, "m": 60 * 10**9, "s": 10**9,
      "ms": 10**6, "us": 10**3, "ns": 1, "ps": Fraction(1, 10**3), "fs": Fraction(1, 10**6),
      "as": Fraction(1, 10**9)}
EPOCH = dt.date(1970, 1, 1)


def reference(value: int, unit: str, count: int) -> int | None:
    """ns since 1970 of ``value`` in ``[count unit]``; None when not a whole ns in int64 range."""
    if unit in ("Y", "M"):
        months = value * count * (12 if unit == "Y" else 1)
        year, month = 1970 + months // 12, months % 12 + 1
        if not 1 <= year <= 9999:
            return None
        ns = Fraction((dt.date(year, month, 1) - EPOCH).days * NS["D"])
    else:
        ns = value * count * Fraction(NS[unit])
    if ns.denominator != 1 or not -I64 <= ns <= I64:
        return None
    return int(ns)


def check(value: int, unit: str, count: int) -> None:
    ts = np.array([value], dtype=np.int64).view(f"datetime64[{count}{unit}]")
    want = reference(value, unit, count)
    if want is None:
        with pytest.raises(ValueError, match=r"ts\[0\] = .* (outside the datetime64\[ns\] range|not representable)"):
            as_datetime_ns(ts, 1, "ts")
    else:
        got = as_datetime_ns(ts, 1, "ts")
        assert got.dtype == np.dtype("datetime64[ns]") and int(got.view(np.int64)[0]) == want


LIMITS = [(unit, I64 // NS[unit]) for unit in ("W", "D", "h", "m", "s", "ms", "us")]


@pytest.mark.parametrize(("unit", "limit"), LIMITS)
def test_the_range_ends_in_every_coarser_unit(unit, limit):
    for value in (limit, limit + 1, -limit, -limit - 1, 0, 1, -1):
        check(value, unit, 1)


@pytest.mark.parametrize("unit", ["ps", "fs", "as"])
def test_finer_units_hold_whole_ns_down_to_the_int64_floor(unit):
    q = int(1 / Fraction(NS[unit]))
    floor = -(I64 // q * q)  # the most negative whole-ns value: numpy's own cast overflows here
    for value in (floor, floor - 1, floor + q, -I64, I64, I64 // q * q, q, 1, -1, 0):
        check(value, unit, 1)


@pytest.mark.parametrize(("value", "unit", "count"), [
    (292, "Y", 1), (293, "Y", 1), (-292, "Y", 1), (-293, "Y", 1), (3507, "M", 1), (3508, "M", 1),
    (29, "Y", 10), (30, "Y", 10), (2**62, "Y", 1), (-(2**62), "M", 1), (1000, "ps", 3), (1, "ps", 1500),
    (I64 // 1000, "ps", 10**6), (I64 // 1000 + 1, "ps", 10**6), (2**40, "W", 1),
])
def test_calendar_and_multiple_units(value, unit, count):
    check(value, unit, count)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(NS) + ["Y", "M"]), st.sampled_from([1, 2, 7, 1000]),
       st.one_of(st.integers(-I64, I64), st.integers(-10**6, 10**6), st.integers(-2**40, 2**40)))
def test_matches_exact_integer_arithmetic(unit, count, value):
    check(value, unit, count)


def test_nat_and_unitless_nat_pass_through():
    ts = np.array(["NaT", "2024-01-01T00:00:01"], "datetime64[s]")
    assert as_datetime_ns(ts, 2, "ts").view(np.int64).tolist() == [np.iinfo(np.int64).min, 1704067201 * 10**9]
    fine = np.array(["NaT", 5000], "datetime64[ps]")
    assert np.isnat(as_datetime_ns(fine, 2, "ts")[0]) and as_datetime_ns(fine, 2, "ts")[1].view(np.int64) == 5
    unitless = np.array([np.datetime64("NaT", "ns")]).astype("datetime64")
    assert np.isnat(as_datetime_ns(unitless, 1, "ts")).all()


def test_write_wnode_refuses_out_of_range_timestamps_with_a_value_error():
    """The documented error on every numpy version (numpy 2.5's cast raises OverflowError)."""
    rec = np.zeros(1, RECORD_DTYPE)
    for ts in (np.array(["2500-01-01"], "datetime64[s]"), np.array(["1600-01-01"], "datetime64[D]"),
               np.array([2**62], "datetime64[Y]")):
        with pytest.raises(ValueError, match=r"timestamps\[0\] = .* outside the datetime64\[ns\] range"):
            write_wnode(rec, ts, "A")
