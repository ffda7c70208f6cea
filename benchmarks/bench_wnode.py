"""Raw WMI buffers: read_wnode beside the raw-record path on the same records.

Input: ``IPSECSTATS_BENCH_RECORDS`` records (default 2,000,000: 1,000,000 samples of 2
instances), one WNODE_ALL_DATA per sample (fixed instance size, PnP-style UTF-16 names,
a FILETIME per sample), buffers back to back, as ``write_wnode`` lays them out. The smoke
pass (``--benchmark-disable``) shrinks it to a few thousand records.

The raw-record path is ``decode(raw, copy=True)`` of the same records as contiguous
168-byte blocks (no time, no names). ``extra_info`` holds ``records_per_s`` and, for
read_wnode, ``x_raw``: raw-path time / read_wnode time (1.0 = as fast as the raw path).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LARGE, SMOKE, cached_log, run, smoke

import ipsecstats
from ipsecstats import _backend, _slow

INSTANCES = ("PCI\\VEN_8086&DEV_10FB&SUBSYS_000C8086&REV_01\\4&1B2C3D4E&0&0010_0",
             "ROOT\\ISCSIPRT\\0000_0")
TWIN_MAX_RECORDS = 100_000  # the pure walker is a Python loop per WNODE: time a slice
_RAW_MEDIAN: dict[int, float] = {}
_INPUTS: dict[int, tuple[bytes, bytes]] = {}


def inputs(n: int) -> tuple[bytes, bytes]:
    """(raw records, WNODE buffers) holding the same n records, 2 instances per sample."""
    if n not in _INPUTS:
        records = cached_log(n)
        samples = n // len(INSTANCES)
        stamps = np.datetime64("2024-01-01T00:00:00", "ns") + np.arange(samples) * np.timedelta64(10, "s")
        wnode = ipsecstats.write_wnode(records, np.repeat(stamps, len(INSTANCES)), INSTANCES * samples)
        _INPUTS[n] = (records.view(np.uint8).tobytes(), wnode)
    return _INPUTS[n]


@pytest.fixture(scope="module")
def nrecords(request: pytest.FixtureRequest) -> int:
    n = SMOKE if smoke(request.config) else LARGE
    return n - n % len(INSTANCES)


def _records_per_s(benchmark, n: int) -> float | None:
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return None
    rate = n / stats.stats.median
    benchmark.extra_info["records_per_s"] = rate
    return stats.stats.median


def bench_raw_records_decode(benchmark, nrecords):
    raw, _ = inputs(nrecords)
    out = run(benchmark, lambda: ipsecstats.decode(raw, copy=True), op="records from bytes",
              impl="raw decode(copy=True)", nbytes=len(raw))
    assert out.shape == (nrecords,)
    median = _records_per_s(benchmark, nrecords)
    if median is not None:
        _RAW_MEDIAN[nrecords] = median


def bench_read_wnode(benchmark, nrecords):
    raw, wnode = inputs(nrecords)
    benchmark.extra_info["wnode_bytes"] = len(wnode)
    cap = run(benchmark, lambda: ipsecstats.read_wnode(wnode), op="records from bytes",
              impl=f"read_wnode ({_backend.BACKEND})", nbytes=len(raw))
    assert len(cap) == nrecords and cap.records.tobytes() == raw
    assert cap.instance_names == INSTANCES
    median = _records_per_s(benchmark, nrecords)
    if median is not None and nrecords in _RAW_MEDIAN:
        benchmark.extra_info["x_raw"] = _RAW_MEDIAN[nrecords] / median


def bench_read_wnode_twin(benchmark, nrecords, monkeypatch):
    monkeypatch.setattr(_backend, "KERNEL", _slow)
    n = min(nrecords, TWIN_MAX_RECORDS)
    raw, wnode = inputs(n)
    cap = run(benchmark, lambda: ipsecstats.read_wnode(wnode), op="records from bytes",
              impl="read_wnode (pure twin)", nbytes=len(raw), rounds=3)
    assert len(cap) == n
    _records_per_s(benchmark, n)
