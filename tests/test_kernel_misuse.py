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


# --- keyed_delta_rows (issue 8) ------------------------------------------------------------

KEYED_GOOD = {
    "cur": lambda n, k: np.zeros((n, 168), np.uint8),
    "codes": lambda n, k: np.arange(n, dtype=np.intp) % k,
    "ticks": lambda n, k: np.zeros(n, np.int64),
    "state_rows": lambda n, k: np.zeros((k, 168), np.uint8),
    "state_ticks": lambda n, k: np.zeros(k, np.int64),
    "state_seen": lambda n, k: np.ones(k, np.uint8),
    "counters": lambda n, k: np.ones(21, np.uint8),
    "policy": lambda n, k: "auto",
    "out": lambda n, k: np.zeros((n, 168), np.uint8),
    "resets": lambda n, k: np.zeros((n, 21), np.uint8),
    "earlier": lambda n, k: np.zeros(n, np.intp),
    "later": lambda n, k: np.zeros(n, np.intp),
    "earlier_ticks": lambda n, k: np.zeros(n, np.int64),
}


def _keyed_bad_cases():
    n, k = 5, 3
    ro = lambda a: np.frombuffer(a.tobytes(), a.dtype).reshape(a.shape)  # noqa: E731
    yield "cur is None", dict(cur=None), TypeError
    yield "codes is None", dict(codes=None), TypeError
    yield "state_rows is None", dict(state_rows=None), TypeError
    yield "later is None", dict(later=None), TypeError
    yield "earlier_ticks is None with ticks", dict(earlier_ticks=None), TypeError
    yield "codes is a list", dict(codes=[0] * n), TypeError
    yield "policy is an int", dict(policy=3), TypeError
    yield "policy is raise", dict(policy="raise"), ValueError
    yield "codes are int32", dict(codes=np.zeros(n, np.int32)), ValueError
    yield "codes are uint64", dict(codes=np.zeros(n, np.uint64)), ValueError
    yield "codes are too short", dict(codes=np.zeros(n - 1, np.intp)), ValueError
    yield "codes are strided", dict(codes=np.zeros(2 * n, np.intp)[::2]), ValueError
    yield "code equal to K", dict(codes=np.array([0, 1, 3, 0, 1], np.intp)), ValueError
    yield "negative code", dict(codes=np.array([0, 1, -1, 0, 1], np.intp)), ValueError
    yield "huge code", dict(codes=np.array([0, 2**62, 0, 0, 1], np.intp)), ValueError
    yield "most negative code", dict(codes=np.array([0, -(2**63), 0, 0, 1], np.intp)), ValueError
    yield "ticks are float", dict(ticks=np.zeros(n)), ValueError
    yield "ticks too short", dict(ticks=np.zeros(n - 1, np.int64)), ValueError
    yield "state_rows read-only", dict(state_rows=ro(np.zeros((k, 168), np.uint8))), ValueError
    yield "state_rows 160 wide", dict(state_rows=np.zeros((k, 160), np.uint8)), ValueError
    yield "state_rows strided", dict(state_rows=np.zeros((2 * k, 168), np.uint8)[::2]), ValueError
    yield "state_ticks of another length", dict(state_ticks=np.zeros(k + 1, np.int64)), ValueError
    yield "state_ticks uint64", dict(state_ticks=np.zeros(k, np.uint64)), ValueError
    yield "state_seen of another length", dict(state_seen=np.zeros(k - 1, np.uint8)), ValueError
    yield "state_seen read-only", dict(state_seen=ro(np.zeros(k, np.uint8))), ValueError
    yield "state of no instances", dict(state_rows=np.zeros((0, 168), np.uint8), state_ticks=np.zeros(0, np.int64),
                                        state_seen=np.zeros(0, np.uint8)), ValueError
    yield "out read-only", dict(out=ro(np.zeros((n, 168), np.uint8))), ValueError
    yield "out too short", dict(out=np.zeros((n - 1, 168), np.uint8)), ValueError
    yield "resets 20 wide", dict(resets=np.zeros((n, 20), np.uint8)), ValueError
    yield "earlier int32", dict(earlier=np.zeros(n, np.int32)), ValueError
    yield "later read-only", dict(later=ro(np.zeros(n, np.intp))), ValueError
    yield "later too long", dict(later=np.zeros(n + 1, np.intp)), ValueError
    yield "earlier_ticks too short", dict(earlier_ticks=np.zeros(n - 1, np.int64)), ValueError
    yield "cur rows are 167 bytes", dict(cur=np.zeros((n, 167), np.uint8)), ValueError
    yield "cur is 1-D", dict(cur=np.zeros(n * 168, np.uint8)), ValueError


@pytest.mark.parametrize(("case", "override", "error"), list(_keyed_bad_cases()), ids=[c[0] for c in _keyed_bad_cases()])
def test_keyed_bad_arguments_raise_the_same(case, override, error):
    outcomes = []
    for name in ("fast", "slow"):
        args = {key: make(5, 3) for key, make in KEYED_GOOD.items()}
        args.update(override)
        state_before = [args[k].copy() if isinstance(args[k], np.ndarray) else args[k]
                        for k in ("state_rows", "state_ticks", "state_seen")]
        with pytest.raises(error) as info:
            kernel_of(name).keyed_delta_rows(*args.values())
        for before, key in zip(state_before, ("state_rows", "state_ticks", "state_seen")):
            if isinstance(before, np.ndarray) and isinstance(args[key], np.ndarray) and before.shape == args[key].shape:
                assert np.array_equal(before, args[key]), "the state changed on an error"
        outcomes.append(str(info.value))
    ours = ("must have shape", "must be arrays", "out of range", "policy must be one of", "earlier_ticks must be")
    if any(text in outcomes[1] for text in ours):  # messages of ours, not of the buffer protocol
        assert outcomes[0] == outcomes[1]


def test_keyed_code_errors_name_the_index_and_value():
    for name in ("fast", "slow"):
        args = {key: make(5, 3) for key, make in KEYED_GOOD.items()}
        args["codes"] = np.array([0, 1, 2, 7, -1], np.intp)
        with pytest.raises(ValueError, match=r"codes\[3\] = 7 is out of range: the state holds 3 instance"):
            kernel_of(name).keyed_delta_rows(*args.values())


def test_keyed_bool_arrays_are_accepted_as_uint8():
    results = []
    for name in ("fast", "slow"):
        args = {key: make(4, 2) for key, make in KEYED_GOOD.items()}
        args["cur"][0, 16] = 5
        args["state_seen"] = np.array([True, False])
        args["resets"] = np.zeros((4, 21), np.bool_)
        args["counters"] = np.ones(21, np.bool_)
        m, ndec = kernel_of(name).keyed_delta_rows(*args.values())
        results.append((m, ndec, args["resets"].tobytes(), args["state_seen"].tolist(), args["earlier"][:m].tolist()))
    assert results[0] == results[1] == (3, 1, results[0][2], [True, True], [-1, 0, 1])
