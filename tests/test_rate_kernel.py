"""The rates kernel: both backends round each uint64 once and divide, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ipsecstats import _slow

from conftest import require_fast

EDGES = [0, 1, 2**32, 2**53 - 1, 2**53 + 1, 2**63 - 1, 2**63, 2**63 + 1, 2**64 - 2049, 2**64 - 1]


def _both(values, columns, seconds):
    outs = []
    for kernel in (require_fast(), _slow):
        out = np.full((values.shape[0], columns.shape[0]), -1.0)
        kernel.rate_rows(values, columns, seconds, out)
        outs.append(out)
    return outs


@given(
    rows=st.lists(st.lists(st.sampled_from(EDGES) | st.integers(0, 2**64 - 1), min_size=21, max_size=21),
                  min_size=1, max_size=12),
    seconds=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=1, max_size=12),
    columns=st.lists(st.integers(0, 20), min_size=0, max_size=21),
)
@example(rows=[EDGES + [0] * 11], seconds=[1.0], columns=list(range(21)))
@example(rows=[EDGES + [7] * 11], seconds=[3.0], columns=list(range(10)))
def test_both_backends_agree_bit_for_bit(rows, seconds, columns):
    values = np.array(rows, dtype=np.uint64)
    sec = np.array(seconds[: len(rows)] if len(seconds) >= len(rows) else seconds[:1], dtype=np.float64)
    cols = np.array(columns, dtype=np.uint8)
    fast, slow = _both(values, cols, sec)
    assert fast.tobytes() == slow.tobytes()
    with np.errstate(all="ignore"):
        # Python's int -> float conversion rounds to nearest, like C; numpy scalars divide per IEEE
        expected = [[np.float64(float(int(values[i, c]))) / sec[i if sec.shape[0] > 1 else 0] for c in cols]
                    for i in range(values.shape[0])]
    np.testing.assert_array_equal(fast, np.array(expected, dtype=np.float64).reshape(fast.shape))


def test_uint64_is_rounded_once_to_nearest():
    values = np.zeros((1, 21), np.uint64)
    values[0, :4] = [2**53 + 1, 2**64 - 1, 2**63 + 1025, 2**63 + 1024]
    for out in _both(values, np.arange(4, dtype=np.uint8), np.array([1.0])):
        assert out[0].tolist() == [float(2**53 + 1), 2.0**64, float(2**63 + 2048), float(2**63)]


@pytest.mark.parametrize("kernel_name", ["fast", "slow"])
@pytest.mark.parametrize(
    ("case", "error"),
    [("values is None", TypeError), ("values is int64", ValueError), ("seconds too short", ValueError),
     ("column 21", ValueError), ("out too narrow", ValueError), ("out read-only", ValueError)],
)
def test_bad_arguments(kernel_name, case, error):
    kernel = require_fast() if kernel_name == "fast" else _slow
    values = np.zeros((3, 21), np.uint64)
    columns = np.array([2, 3], np.uint8)
    seconds = np.ones(3)
    out = np.zeros((3, 2))
    if case == "values is None":
        values = None
    elif case == "values is int64":
        values = values.astype(np.int64)
    elif case == "seconds too short":
        seconds = np.ones(2)
    elif case == "column 21":
        columns = np.array([2, 21], np.uint8)
    elif case == "out too narrow":
        out = np.zeros((3, 1))
    else:
        out.flags.writeable = False
    with pytest.raises(error):
        kernel.rate_rows(values, columns, seconds, out)


@pytest.mark.parametrize("kernel_name", ["fast", "slow"])
def test_bool_columns_are_indices_0_and_1_not_a_mask(kernel_name):
    kernel = require_fast() if kernel_name == "fast" else _slow
    values = np.arange(2 * 21, dtype=np.uint64).reshape(2, 21)
    out = np.zeros((2, 2))
    kernel.rate_rows(values, np.array([False, True]), np.ones(2), out)
    assert out.tolist() == [[0.0, 1.0], [21.0, 22.0]]


@pytest.mark.parametrize("kernel_name", ["fast", "slow"])
def test_out_overlapping_values_is_refused(kernel_name):
    kernel = require_fast() if kernel_name == "fast" else _slow
    values = np.ones((3, 21), np.uint64)
    with pytest.raises(ValueError, match="overlap"):
        kernel.rate_rows(values, np.arange(21, dtype=np.uint8), np.ones(3), values.view(np.float64))


def test_runs_of_columns():
    assert _slow._runs([2, 3, 4, 7, 8, 20, 0]) == [(2, 0, 3), (7, 3, 2), (20, 5, 1), (0, 6, 1)]
    assert _slow._runs([]) == []
