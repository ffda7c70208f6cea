"""Every vector path this CPU can run agrees with the numpy twin, and the build's flags.

The kernel is built for the compiler's baseline (plain x86-64) and picks, at run time,
the portable loops, the SSE4.2 copy of the statistics pass or the AVX2 kernels
(``_kernel.h``, ``ips_cpu_path``). The suite's other parity tests compare AVX2 with the
portable loops; here each path in turn, SSE4.2 included, must give the twin's bytes. The
import on a CPU without SSE4.2 is checked by ``tools/old-cpu-smoke.sh`` (qemu).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from conftest import POLICIES, random_values, records_from, require_fast, using_kernel

import ipsecstats
from ipsecstats import RECORD_SIZE, _slow

ALL_PATHS = ("portable", "sse4.2", "avx2")
ROOT = Path(__file__).resolve().parents[1]


def cpu_paths() -> list[str]:
    """The paths this CPU runs (the best one and every one below it)."""
    fast = require_fast()
    fast._set_vector_path(True)
    return list(ALL_PATHS[: ALL_PATHS.index(fast.vector_path()) + 1])


@pytest.fixture
def fast() -> Iterator[ModuleType]:
    mod = require_fast()
    try:
        yield mod
    finally:
        mod._set_vector_path(True)


def test_the_cpu_check_reports_a_known_path(fast: ModuleType) -> None:
    assert fast.vector_path() in ALL_PATHS
    fast._set_vector_path(False)
    assert fast.vector_path() == "portable"
    for path in cpu_paths():
        fast._set_vector_path(path)
        assert fast.vector_path() == path
    with pytest.raises(ValueError, match="vector path 'avx512'"):
        fast._set_vector_path("avx512")
    if cpu_paths()[-1] != "avx2":
        with pytest.raises(ValueError, match="vector path 'avx2'"):
            fast._set_vector_path("avx2")


def stats_outcome(kernel: ModuleType, rows: np.ndarray, stride: int, policy: str) -> list[bytes]:
    counters = np.zeros(21, np.uint8)
    counters[[k for k, f in enumerate(ipsecstats.FIELDS) if f.kind == "counter"]] = 1
    acc = np.zeros(kernel.STATS_ACC, np.uint64)
    bins = np.zeros((8, kernel.STATS_BIN), np.uint64)  # 1203 polls / width 200 < 8
    bins[:, 84:105] = np.iinfo(np.uint64).max  # IPS_SB_MIN: the minima start at 2**64 - 1
    events = np.zeros((16, 3), np.int64)
    half = rows.shape[0] // 2
    kernel.stats_rows(rows[:half], np.zeros((0, RECORD_SIZE), np.uint8), counters, policy, stride, 0, 200,
                      False, acc, bins, events)
    kernel.stats_rows(rows[half:], rows[half - stride:half].copy(), counters, policy, stride, half, 200,
                      True, acc, bins, events)
    return [acc.tobytes(), bins.tobytes(), events.tobytes()]


@pytest.mark.parametrize("path", ALL_PATHS)
def test_each_path_matches_the_twin(fast: ModuleType, path: str) -> None:
    if path not in cpu_paths():
        pytest.skip(f"this CPU has no {path} path")
    rng = np.random.default_rng(20261201)
    records = records_from(random_values(rng, 1203))  # odd count: every loop's tail too
    rows = records.view(np.uint8).reshape(-1, RECORD_SIZE)
    codes = rng.integers(0, 3, records.shape[0]).astype(np.intp)
    fast._set_vector_path(path)
    assert fast.vector_path() == path
    for policy in POLICIES:
        results = []
        for kernel in (fast, _slow):
            with using_kernel(kernel):
                d, resets = ipsecstats.deltas(records, stride=2, on_decrease=policy, return_resets=True)
                keyed = ipsecstats.keyed_deltas(records, codes, on_decrease=policy)
                r = ipsecstats.rates(records, interval=1.5, on_decrease=policy)
            results.append([d.tobytes(), resets.tobytes(), keyed.values.tobytes(), r.tobytes(),
                            *stats_outcome(kernel, rows, 2, policy), *stats_outcome(kernel, rows, 1, policy)])
        assert results[0] == results[1], (path, policy)


def load_setup() -> ModuleType:
    """setup.py as a module (its ``setup()`` call runs only as __main__)."""
    spec = importlib.util.spec_from_file_location("ipsecstats_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_flags_follow_the_compiler_not_the_host() -> None:
    setup = load_setup()
    assert setup.compile_args("msvc") == ["/O2"]
    for compiler_type in ("unix", "mingw32", "cygwin"):
        assert setup.compile_args(compiler_type) == ["-O3"]
        assert setup.link_args(compiler_type) == []
    assert "-fsanitize=address" in setup.compile_args("unix", debug=True)
    assert setup.link_args("unix", debug=True) == ["-fsanitize=address"]
    for compiler_type in ("mingw32", "cygwin", "msvc"):  # no ASan runtime there
        assert not any("sanitize" in a for a in setup.compile_args(compiler_type, debug=True))
        assert setup.link_args(compiler_type, debug=True) == []
    for compiler_type in ("unix", "mingw32", "cygwin", "msvc"):
        for debug in (False, True):
            assert not any(a.startswith(("-march", "-mcpu", "/arch")) for a in setup.compile_args(compiler_type, debug))
