"""ipsecstats' own exports read back (CSV, JSON Lines, Parquet) beside the raw log of the same records.

Input: one capture of ``IPSECSTATS_BENCH_EXPORT_RECORDS`` records (default 200,000; two
instances, a timestamp each, growing counters), exported as ``convert --what records``
does, and the same records as a raw log. Each benchmark streams every ``Capture`` chunk
of one file through ``formats.open_reader`` (detection included). The smoke pass
(``--benchmark-disable``) uses 2,000 records.

``extra_info``: ``mb_per_s`` (file bytes), ``mrec_per_s`` (million records per second)
and ``x_raw`` (raw read time / this read time: below 1 is slower than raw). Run this file
as a script (``python benchmarks/bench_export_inputs.py [RECORDS]``) for a table of
throughputs and ratios.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ipsecstats import formats
from ipsecstats._capture import Capture, NameTable
from ipsecstats._export import Layout, write_table
from ipsecstats._pipeline import row_columns
from ipsecstats._schema import RECORD_DTYPE

FORMATS = ("raw", "csv", "jsonl", "parquet")
NAMES = ("PCI\\VEN_8086&DEV_10FB&SUBSYS_000C8086&REV_01\\4&1B2C3D4E&0&0010_0", "ROOT\\ISCSIPRT\\0000_0")
_RAW_SECONDS: dict[int, float] = {}


def make_capture(n: int, seed: int = 20261201) -> Capture:
    """``n`` records of two instances, 10 s apart, counters growing by random steps."""
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.integers(0, 1000, size=(n, 21), dtype=np.uint64), axis=0, dtype=np.uint64)
    table = NameTable()
    codes = np.array([table.code(NAMES[0]), table.code(NAMES[1])] * (n // 2) + [0] * (n % 2), np.intp)
    stamps = np.datetime64("2026-12-01T00:00:00", "ns") + (np.arange(n) // 2) * np.timedelta64(10, "s")
    return Capture(values.astype("<u8").view(RECORD_DTYPE).reshape(n), stamps, codes, table.names)


def write_files(cap: Capture, folder: Path) -> dict[str, Path]:
    """The capture's raw records and its three exports in ``folder``."""
    paths = {"raw": folder / "log.bin"}
    cap.records.tofile(paths["raw"])
    columns = {"record": np.empty(0, np.uint64), "timestamp": np.empty(0, "datetime64[ns]"),
               "instance": row_columns(cap, np.empty(0, np.intp))["instance"]}
    layout = Layout("records", columns=columns)
    step = 16384
    for fmt in FORMATS[1:]:
        paths[fmt] = folder / f"export.{fmt}"
        chunks = ((lo, cap.records[lo: lo + step], row_columns(cap, np.arange(lo, min(lo + step, len(cap)))))
                  for lo in range(0, len(cap), step))
        write_table(chunks, paths[fmt], fmt, layout, RECORD_DTYPE, {"what": "records", "input_format": "wnode"})
    return paths


def read_all(path: Path) -> int:
    """Stream every chunk of ``path``; the records read."""
    reader = formats.open_reader(str(path))
    return sum(len(chunk) for chunk in reader)


@pytest.fixture(scope="module")
def files(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], int]:
    smoke = bool(request.config.getoption("benchmark_disable", False))
    n = 2000 if smoke else int(os.environ.get("IPSECSTATS_BENCH_EXPORT_RECORDS", "200000"))
    return write_files(make_capture(n), tmp_path_factory.mktemp("exports")), n


@pytest.mark.parametrize("fmt", FORMATS)
def bench_read_back(benchmark: Any, files: tuple[dict[str, Path], int], fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    paths, n = files
    got = benchmark(read_all, paths[fmt])
    assert got == n
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        median = stats.stats.median
        benchmark.extra_info.update(mb_per_s=paths[fmt].stat().st_size / median / 1e6, mrec_per_s=n / median / 1e6)
        if fmt == "raw":
            _RAW_SECONDS[n] = median
        elif n in _RAW_SECONDS:
            benchmark.extra_info["x_raw"] = _RAW_SECONDS[n] / median


def main(n: int) -> None:
    """Time each read (best of 3) and print MB/s, records/s and the ratio to raw."""
    with tempfile.TemporaryDirectory() as folder:
        paths = write_files(make_capture(n), Path(folder))
        best = {}
        for fmt in FORMATS:
            times = []
            for _ in range(3):
                t = time.perf_counter()
                assert read_all(paths[fmt]) == n
                times.append(time.perf_counter() - t)
            best[fmt] = min(times)
        print(f"{n:,} records, 2 instances, timestamps; best of 3")
        print(f"{'format':8} {'MB':>8} {'MB/s':>8} {'Mrec/s':>8} {'x raw':>8}")
        for fmt in FORMATS:
            size = paths[fmt].stat().st_size / 1e6
            print(f"{fmt:8} {size:8.1f} {size / best[fmt]:8.1f} {n / best[fmt] / 1e6:8.2f} "
                  f"{best['raw'] / best[fmt]:8.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
