"""The report's one pass over the same records in every input format, from files on disk.

``scan`` (what ``ipsecstats report`` runs) reads a raw log, a WNODE capture and, where
the machine has room, the same records as a CIM CSV, through the one chunked pipeline.
``x_raw`` is the raw path's time over this format's time, per record (1.0 = as fast as
raw); ``x_memcpy`` relates the raw file's bytes to memcpy of the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import LARGE, SMOKE, cached_log, run, smoke

import ipsecstats
from ipsecstats import formats
from ipsecstats._stats import scan

INSTANCES = ("ROOT\\ISCSIPRT\\0000_0", "ROOT\\ISCSIPRT\\0001_0")


@pytest.fixture(scope="module")
def files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    n = SMOKE if smoke(request.config) else LARGE
    n -= n % 2
    records = cached_log(n)
    stamps = np.datetime64("2024-01-01T00:00:00", "ns") + np.arange(n // 2) * np.timedelta64(10, "s")
    folder = tmp_path_factory.mktemp("pipeline")
    paths = {"raw": folder / "log.bin", "wnode": folder / "log.wnode"}
    paths["raw"].write_bytes(records.tobytes())
    paths["wnode"].write_bytes(ipsecstats.write_wnode(records, np.repeat(stamps, 2), INSTANCES * (n // 2)))
    return paths


def _scan(path: Path, **options: object) -> int:
    stats = scan(formats.open_reader(str(path), **options))
    return stats.records


def bench_memcpy(benchmark, files):
    data = np.fromfile(files["raw"], dtype=np.uint8)
    out = np.empty_like(data)
    run(benchmark, lambda: np.copyto(out, data), op="report pass", impl="memcpy", nbytes=data.nbytes)


def bench_report_raw(benchmark, files):
    n = files["raw"].stat().st_size
    assert run(benchmark, lambda: _scan(files["raw"], stride=2), op="report pass", impl="raw", nbytes=n) == n // 168


def bench_report_wnode(benchmark, files):
    n = files["raw"].stat().st_size
    benchmark.extra_info["wnode_bytes"] = files["wnode"].stat().st_size
    got = run(benchmark, lambda: _scan(files["wnode"]), op="report pass", impl="wnode", nbytes=n,
              ratios={"x_raw": "raw"})
    assert got == n // 168
