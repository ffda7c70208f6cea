"""Shared benchmark inputs and the throughput bookkeeping.

Sizes: 2,000,000 records (336 MB, larger than any cache) and 20,000 records (3.4 MB).
``IPSECSTATS_BENCH_RECORDS`` overrides the large size. Under ``--benchmark-disable``
(the CI smoke pass) every input shrinks to a few thousand records.

Each benchmark records in ``extra_info``: ``op``, ``impl``, ``nbytes`` (input bytes) and
``gbps`` (input GB/s at the median). ``x_memcpy`` is the ratio to the memcpy benchmark of
the same bytes run earlier in the same process; ``report.py`` prints the table.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import ipsecstats

LARGE = int(os.environ.get("IPSECSTATS_BENCH_RECORDS", "2000000"))
SMALL = 20_000
SMOKE = 2_000

_MEDIAN: dict[tuple[str, int], float] = {}  # (impl, nbytes) -> median seconds


def smoke(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


def make_log(n: int, restarts: int = 4, seed: int = 20261123) -> np.ndarray:
    """n records: counters as cumulative sums with a few restarts, gauges that move."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(0, 50, size=(n, 21), dtype=np.uint64)
    values = np.cumsum(steps, axis=0, dtype=np.uint64)
    gauges = [f.wmi_id - 1 for f in ipsecstats.FIELDS if f.kind == "gauge"]
    values[:, gauges] = rng.integers(0, 1000, size=(n, len(gauges)), dtype=np.uint64)
    for at in rng.integers(1, max(n, 2), size=restarts):
        values[at:, 2:5] -= values[at, 2:5] - 1  # restart three counters from 1
    return ipsecstats.decode(values.astype("<u8").tobytes(), copy=True)


_CACHE: dict[tuple[int, int], np.ndarray] = {}


def cached_log(n: int, restarts: int = 4) -> np.ndarray:
    key = (n, restarts)
    if key not in _CACHE:
        _CACHE[key] = make_log(n, restarts)
    return _CACHE[key]


@pytest.fixture(scope="session", params=["large", "small"])
def size(request: pytest.FixtureRequest) -> int:
    if smoke(request.config):
        return SMOKE
    return LARGE if request.param == "large" else SMALL


@pytest.fixture
def records(size: int) -> np.ndarray:
    return cached_log(size)


def run(
    benchmark: Any,
    fn: Any,
    *,
    op: str,
    impl: str,
    nbytes: int,
    rounds: int | None = None,
    warmup_rounds: int = 0,
    ratios: dict[str, str] | None = None,
) -> Any:
    """Benchmark ``fn`` and record its input throughput and its ratios to baselines.

    ``x_memcpy`` is always recorded once a memcpy of the same bytes has run in this
    process; ``ratios`` maps more names to baseline ``impl`` labels (baseline median over
    this median, e.g. ``{"x_numpy": "numpy transpose"}``).
    """
    benchmark.group = f"{op} {nbytes // 168} records"
    benchmark.extra_info.update(op=op, impl=impl, nbytes=nbytes)
    if rounds is None:
        result = benchmark(fn)
    else:
        result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        median = stats.stats.median
        benchmark.extra_info["gbps"] = nbytes / median / 1e9
        _MEDIAN[(impl, nbytes)] = median
        wanted = {"x_memcpy": "memcpy", **(ratios or {})}
        for name, baseline in wanted.items():
            if baseline != impl and (baseline, nbytes) in _MEDIAN:
                benchmark.extra_info[name] = _MEDIAN[(baseline, nbytes)] / median
    return result
