"""Instance-keyed deltas (issue 8) beside the stride kernel and memcpy, in one process.

    python -m pytest benchmarks/bench_keyed.py                      # 2,000,000 records = 336 MB
    python -m pytest benchmarks/bench_keyed.py --benchmark-disable  # smoke: a few thousand records

Two interleaved instances (codes ``r % 2``): ``keyed_deltas(records, codes)`` against
``deltas(records, stride=2)``, which computes the same rows; then an irregular pattern
(random codes among 8), which only the keyed kernel can pair, beside ``stride=8`` of the
same bytes. Each row records ``x_memcpy`` and ``x_stride`` (stride median over this
median, same output kind); ``bench_keyed_summary`` prints the ratios (target: keyed >=
0.6x stride).
"""

from __future__ import annotations

import numpy as np
import pytest

import ipsecstats
from ipsecstats import _backend, _slow
from ipsecstats._deltas import delta_dtype, resolve_kinds

from conftest import LARGE, SMOKE, _MEDIAN, cached_log, run, smoke

_CODES: dict[tuple[str, int], np.ndarray] = {}


@pytest.fixture(scope="module")
def n(request: pytest.FixtureRequest) -> int:
    return SMOKE if smoke(request.config) else LARGE


def codes_for(pattern: str, n: int) -> np.ndarray:
    key = (pattern, n)
    if key not in _CODES:
        if pattern == "r % 2":
            _CODES[key] = np.arange(n, dtype=np.intp) % 2
        else:  # irregular: random instances among 8, so gaps and runs of every length
            _CODES[key] = np.random.default_rng(8).integers(0, 8, n).astype(np.intp)
    return _CODES[key]


def bench_memcpy(benchmark, n):
    src = cached_log(n).view(np.uint8)
    dst = np.empty_like(src)
    run(benchmark, lambda: np.copyto(dst, src), op="memcpy", impl="memcpy", nbytes=src.nbytes)
    assert np.array_equal(dst, src)


@pytest.mark.parametrize("buffers", ["fresh", "out"])
def bench_stride2(benchmark, n, buffers):
    records = cached_log(n)
    out = np.empty(n, delta_dtype(resolve_kinds(None)))[: n - 2] if buffers == "out" else None
    result = run(benchmark, lambda: ipsecstats.deltas(records, stride=2, out=out), op="deltas r % 2",
                 impl=f"stride kernel ({buffers})", nbytes=records.nbytes)
    assert result.shape == (n - 2,)


@pytest.mark.parametrize("buffers", ["fresh", "out"])
def bench_keyed2(benchmark, n, buffers):
    records = cached_log(n)
    codes = codes_for("r % 2", n)
    out = np.empty(n, delta_dtype(resolve_kinds(None))) if buffers == "out" else None
    result = run(benchmark, lambda: ipsecstats.keyed_deltas(records, codes, out=out), op="deltas r % 2",
                 impl=f"keyed kernel ({buffers})", nbytes=records.nbytes,
                 ratios={"x_stride": f"stride kernel ({buffers})"})
    want = ipsecstats.deltas(records, stride=2)
    assert result.values.tobytes() == want.tobytes()


def bench_keyed2_twin(benchmark, n, monkeypatch):
    monkeypatch.setattr(_backend, "KERNEL", _slow)
    records = cached_log(n)
    run(benchmark, lambda: ipsecstats.keyed_deltas(records, codes_for("r % 2", n)), op="deltas r % 2",
        impl="keyed pure twin", nbytes=records.nbytes, rounds=3)


@pytest.mark.parametrize("buffers", ["fresh", "out"])
def bench_stride8(benchmark, n, buffers):
    records = cached_log(n)
    out = np.empty(n, delta_dtype(resolve_kinds(None)))[: n - 8] if buffers == "out" else None
    run(benchmark, lambda: ipsecstats.deltas(records, stride=8, out=out), op="deltas, 8 instances",
        impl=f"stride=8 kernel ({buffers})", nbytes=records.nbytes)


@pytest.mark.parametrize("buffers", ["fresh", "out"])
def bench_keyed8_irregular(benchmark, n, buffers):
    records = cached_log(n)
    codes = codes_for("random of 8", n)
    out = np.empty(n, delta_dtype(resolve_kinds(None))) if buffers == "out" else None
    result = run(benchmark, lambda: ipsecstats.keyed_deltas(records, codes, out=out), op="deltas, 8 instances",
                 impl=f"keyed irregular ({buffers})", nbytes=records.nbytes,
                 ratios={"x_stride": f"stride=8 kernel ({buffers})"})
    assert result.values.shape[0] == n - len(np.unique(codes))


def bench_keyed_summary(n, capsys):
    """Print the ratios of this run (nothing to compare under --benchmark-disable)."""
    nbytes = cached_log(n).nbytes
    med = {impl: t for (impl, nb), t in _MEDIAN.items() if nb == nbytes}
    lines = []
    for keyed, stride in [("keyed kernel (fresh)", "stride kernel (fresh)"),
                          ("keyed kernel (out)", "stride kernel (out)"),
                          ("keyed irregular (fresh)", "stride=8 kernel (fresh)"),
                          ("keyed irregular (out)", "stride=8 kernel (out)"),
                          ("keyed pure twin", "stride kernel (fresh)")]:
        if keyed in med and stride in med and "memcpy" in med:
            lines.append(f"{keyed:<26} {nbytes / med[keyed] / 1e9:6.2f} GB/s  x stride {med[stride] / med[keyed]:5.2f}"
                         f"  x memcpy {med['memcpy'] / med[keyed]:5.2f}   ({stride}: x memcpy "
                         f"{med['memcpy'] / med[stride]:5.2f})")
    if lines:
        with capsys.disabled():
            print(f"\nkeyed vs stride, {n:,} records, backend {ipsecstats.BACKEND}:\n" + "\n".join(lines))
