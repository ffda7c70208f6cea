"""Direct calls of the kernel's ``delta_rows`` with bad arguments: both backends refuse
them with the same exception type, and neither touches memory it was not given."""

import numpy as np
import pytest

from ipsecstats import _slow

from conftest import require_fast


def kernel_of(name):
    return require_fast() if name == "fast" else _slow

GOOD = {
    "prev": lambda m: np.zeros((m, 168), np.uint8),
    "cur": lambda m: np.zeros((m, 168), np.uint8),
    "counters": lambda m: np.ones(21, np.uint8),
    "out": lambda m: np.zeros((m, 168), np.uint8),
    "resets": lambda m: np.zeros((m, 21), np.uint8),
}


def _bad_cases():
    m = 5
    yield "prev is None", dict(prev=None), TypeError
    yield "out is None", dict(out=None), TypeError
    yield "counters is a list", dict(counters=[1] * 21), TypeError
    yield "cur has too few rows", dict(cur=np.zeros((m - 1, 168), np.uint8)), ValueError
    yield "prev has too many rows", dict(prev=np.zeros((m + 1, 168), np.uint8)), ValueError
    yield "out is uint64", dict(out=np.zeros((m, 21), np.uint64)), ValueError
    yield "out is Fortran-ordered", dict(out=np.asfortranarray(np.zeros((m, 168), np.uint8))), ValueError
    yield "out is read-only", dict(out=np.frombuffer(bytes(m * 168), np.uint8).reshape(m, 168)), ValueError
    yield "resets is strided", dict(resets=np.zeros((m, 42), np.uint8)[:, ::2]), ValueError
    yield "resets has too few rows", dict(resets=np.zeros((m - 1, 21), np.uint8)), ValueError
    yield "counters has 20 items", dict(counters=np.ones(20, np.uint8)), ValueError
    yield "prev rows are 167 bytes", dict(prev=np.zeros((m, 167), np.uint8)), ValueError
    yield "prev items are not contiguous", dict(prev=np.zeros((m, 336), np.uint8)[:, ::2]), ValueError
    yield "prev is 1-D", dict(prev=np.zeros(m * 168, np.uint8)), ValueError


@pytest.mark.parametrize("kernel_name", ["fast", "slow"])
@pytest.mark.parametrize(("case", "override", "error"), list(_bad_cases()), ids=[c[0] for c in _bad_cases()])
def test_bad_arguments_raise_the_same_type(kernel_name, case, override, error):
    kernel = kernel_of(kernel_name)
    args = {name: make(5) for name, make in GOOD.items()}
    args.update(override)
    with pytest.raises(error):
        kernel.delta_rows(args["prev"], args["cur"], args["counters"], "auto", args["out"], args["resets"])


@pytest.mark.parametrize("kernel_name", ["fast", "slow"])
def test_bad_policy(kernel_name):
    kernel = kernel_of(kernel_name)
    args = {name: make(2) for name, make in GOOD.items()}
    with pytest.raises(ValueError, match="policy must be one of"):
        kernel.delta_rows(args["prev"], args["cur"], args["counters"], "raise", args["out"])


@pytest.mark.parametrize("kernel_name", ["fast", "slow"])
def test_policy_of_the_wrong_type(kernel_name):
    kernel = kernel_of(kernel_name)
    args = {name: make(2) for name, make in GOOD.items()}
    with pytest.raises(TypeError):
        kernel.delta_rows(args["prev"], args["cur"], args["counters"], 1, args["out"])


def test_a_bool_mask_is_accepted_by_both():
    rows = np.zeros((2, 168), np.uint8)
    rows[0, 16] = 5  # AcquireFailures falls from 5 to 0
    results = []
    for name in ("fast", "slow"):
        mask = np.zeros((1, 21), np.bool_)
        out = np.zeros((1, 168), np.uint8)
        kernel_of(name).delta_rows(rows[:1], rows[1:], np.ones(21, np.uint8), "auto", out, mask)
        results.append((out.tobytes(), mask.tobytes()))
    assert results[0] == results[1] and results[0][1][2] == 1
