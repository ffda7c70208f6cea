"""Both backends answer misuse the same way: every kernel entry point, each argument replaced in
turn by a wrong value (None, a list, a wrong dtype, dimension count or layout, a read-only or
empty output, a str subclass), gives the same exception type, or the same results."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from conftest import require_fast

from ipsecstats import _slow
from ipsecstats._schema import RECORD_DTYPE

M = 4


def _rows(m: int = M) -> np.ndarray:
    rng = np.random.default_rng(m)
    return rng.integers(0, 256, size=(m, 168), dtype=np.uint8)


def _read_only(a: np.ndarray) -> np.ndarray:
    b = a.copy()
    b.flags.writeable = False
    return b


def _mutations(good: np.ndarray) -> list[tuple[str, Any]]:
    """Wrong values for an argument whose good value is ``good``."""
    out: list[tuple[str, Any]] = [
        ("None", None),
        ("list", good.tolist()),
        ("int", 3),
        ("float64", good.astype(np.float64)),
        ("one more dimension", good[None]),
        ("empty", good[:0]),
        ("read-only", _read_only(good)),
    ]
    if good.ndim >= 1 and good.shape[0] > 1:
        out.append(("every other row", good[::2]))
        out.append(("reversed", good[::-1]))
    if good.ndim == 2 and good.shape[1] > 1:
        out.append(("Fortran order", np.asfortranarray(good)))
        out.append(("one column short", good[:, :-1]))
    if good.ndim == 1 and good.dtype.itemsize == 8:
        out.append(("int32", good.astype(np.int32)))
    return out


def _delta_rows_args() -> dict[str, Any]:
    return {"prev": _rows(), "cur": _rows(), "counters": np.ones(21, np.uint8), "policy": "auto",
            "out": np.zeros((M, 168), np.uint8), "resets": np.zeros((M, 21), np.uint8)}


def _keyed_args() -> dict[str, Any]:
    k = 2
    return {"cur": _rows(), "codes": np.array([0, 1, 0, 1], np.intp), "ticks": np.arange(M, dtype=np.int64),
            "state_rows": np.zeros((k, 168), np.uint8), "state_ticks": np.zeros(k, np.int64),
            "state_seen": np.zeros(k, np.uint8), "counters": np.ones(21, np.uint8), "policy": "auto",
            "out": np.zeros((M, 168), np.uint8), "resets": np.zeros((M, 21), np.uint8),
            "earlier": np.zeros(M, np.intp), "later": np.zeros(M, np.intp),
            "earlier_ticks": np.zeros(M, np.int64)}


def _rate_args() -> dict[str, Any]:
    return {"values": np.arange(M * 21, dtype=np.uint64).reshape(M, 21), "columns": np.arange(5, dtype=np.uint8),
            "seconds": np.full(M, 10.0), "out": np.zeros((M, 5), np.float64)}


def _delta_rate_args() -> dict[str, Any]:
    return {"prev": _rows(), "cur": _rows()[::-1].copy(), "counters": np.ones(21, np.uint8), "policy": "auto",
            "columns": np.arange(2, 7, dtype=np.uint8), "seconds": np.full(M, 10.0),
            "out": np.zeros((M, 5), np.float64)}


def _transpose_args() -> dict[str, Any]:
    return {"src": _rows(), "out": np.zeros((21, M), np.uint64)}


def _stats_args() -> dict[str, Any]:
    from ipsecstats._slow import STATS_ACC, STATS_BIN

    bins = np.zeros((3, STATS_BIN), np.uint64)
    bins[:, 84:105] = np.uint64(2**64 - 1)
    return {"cur": _rows(), "prev": _rows(2), "counters": np.ones(21, np.uint8), "policy": "auto", "stride": 2,
            "start": 2, "width": 1, "final": True, "acc": np.zeros(STATS_ACC, np.uint64), "bins": bins,
            "events": np.zeros((2, 3), np.int64)}


def _wnode_args() -> dict[str, Any]:
    from ipsecstats.formats.wnode import write_wnode

    buf = np.frombuffer(write_wnode(np.zeros(2, RECORD_DTYPE), None, ["a", "b"]), np.uint8).copy()
    from ipsecstats.formats.wnode import _GUID

    return {"buf": buf, "guid": np.frombuffer(_GUID, np.uint8).copy(), "skip_too_small": False}


ENTRY_POINTS: dict[str, tuple[Callable[[], dict[str, Any]], tuple[str, ...]]] = {
    "delta_rows": (_delta_rows_args, ("prev", "cur", "counters", "out", "resets")),
    "keyed_delta_rows": (_keyed_args, ("cur", "codes", "ticks", "state_rows", "state_ticks", "state_seen",
                                       "counters", "out", "resets", "earlier", "later", "earlier_ticks")),
    "rate_rows": (_rate_args, ("values", "columns", "seconds", "out")),
    "delta_rate_rows": (_delta_rate_args, ("prev", "cur", "counters", "columns", "seconds", "out")),
    "transpose_rows": (_transpose_args, ("src", "out")),
    "wnode_count": (_wnode_args, ("buf", "guid")),
    "stats_rows": (_stats_args, ("cur", "prev", "counters", "acc", "bins", "events")),
}


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for entry, (make, names) in ENTRY_POINTS.items():
        good = make()
        for name in names:
            for label, _ in _mutations(np.asarray(good[name])):
                cases.append((entry, name, label))
    return cases


def _outcome(kernel: Any, entry: str, name: str, label: str) -> tuple[Any, ...]:
    args = ENTRY_POINTS[entry][0]()
    args[name] = dict(_mutations(np.asarray(args[name])))[label]
    try:
        result = getattr(kernel, entry)(*args.values())
    except Exception as exc:  # noqa: BLE001 - comparing any exception across backends
        return ("raised", type(exc).__name__)
    written = {k: np.asarray(v).tobytes() for k, v in args.items() if isinstance(v, np.ndarray)}
    return ("ok", result, written)


@pytest.mark.parametrize(("entry", "name", "label"), _cases(), ids=["-".join(c) for c in _cases()])
def test_both_backends_answer_misuse_alike(entry, name, label):
    fast = require_fast()
    assert _outcome(fast, entry, name, label) == _outcome(_slow, entry, name, label)


@pytest.mark.parametrize("entry", ["delta_rows", "keyed_delta_rows", "stats_rows"])
@pytest.mark.parametrize("policy", [np.str_("auto"), b"auto", None, 1])
def test_a_policy_that_is_not_exactly_str_is_refused_alike(entry, policy):
    fast = require_fast()
    outcomes = []
    for kernel in (fast, _slow):
        args = ENTRY_POINTS[entry][0]()
        args["policy"] = policy
        try:
            getattr(kernel, entry)(*args.values())
            outcomes.append("ok")
        except Exception as exc:  # noqa: BLE001
            outcomes.append(type(exc).__name__)
    assert outcomes[0] == outcomes[1] == "TypeError"


@pytest.mark.parametrize("use_twin", [False, True])
def test_the_public_api_takes_numpy_strings(use_twin, monkeypatch):
    import ipsecstats
    from ipsecstats import _backend

    if use_twin:
        monkeypatch.setattr(_backend, "KERNEL", _slow)
    else:
        monkeypatch.setattr(_backend, "KERNEL", require_fast())
    recs = np.zeros(3, RECORD_DTYPE)
    assert ipsecstats.deltas(recs, on_decrease=np.str_("wrap")).shape == (2,)
    assert ipsecstats.deltas(recs, instances=np.zeros(3, np.intp), on_decrease=np.str_("zero")).shape == (2,)
