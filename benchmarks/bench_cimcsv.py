"""CIM CSV: read_cim_csv beside pyarrow.csv.read_csv (one thread) on the same file.

Input: a Windows PowerShell 5.1 ``Get-CimInstance | Export-Csv`` file as it really looks:
a ``#TYPE`` line, every field quoted, CRLF, columns Active, Caption, Description, Name,
Frequency_*, InstanceName, the 21 properties, Timestamp_*, PSComputerName, CimClass,
CimInstanceProperties, CimSystemProperties; 2 instances per sample.
``IPSECSTATS_BENCH_CSV_MB`` sets its size (default 200 MB); the smoke pass
(``--benchmark-disable``) uses about 1 MB. The file is written once per session.

``extra_info``: ``mb_per_s`` for both, ``x_pyarrow`` (pyarrow time / ours: above 1 is
faster than pyarrow), and for the streaming pass ``peak_rss_mb`` (VmHWM above the RSS
before the pass, after resetting the high-water mark with /proc/self/clear_refs).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import run, smoke

import ipsecstats
from ipsecstats.formats.cimcsv import CimCsvReader
from ipsecstats._source import ByteSource

INSTANCES = ("PCI\\VEN_8086&DEV_10FB&SUBSYS_000C8086&REV_01\\4&1B2C3D4E&0&0010_0", "ROOT\\ISCSIPRT\\0000_0")
PROPS = sorted(f.name for f in ipsecstats.FIELDS)
COLUMNS = ["Active", "Caption", "Description", "Name", "Frequency_Object", "Frequency_PerfTime",
           "Frequency_Sys100NS", "InstanceName", *PROPS, "Timestamp_Object", "Timestamp_PerfTime",
           "Timestamp_Sys100NS", "PSComputerName", "CimClass", "CimInstanceProperties", "CimSystemProperties"]
TYPE_LINE = "#TYPE Microsoft.Management.Infrastructure.CimInstance#root/wmi/MSiSCSI_MMIPSECStats"
_FILES: dict[int, Path] = {}


def write_export(path: Path, nbytes: int, seed: int = 20261201) -> int:
    """Write about ``nbytes`` of export to ``path``; the number of rows."""
    rng = np.random.default_rng(seed)
    quote = '","'.join
    rows = 0
    values = rng.integers(0, 1 << 40, size=21, dtype=np.uint64)
    ticks = 133_500_000_000_000_000
    with open(path, "w", newline="", encoding="ascii") as f:
        f.write(TYPE_LINE + "\r\n" + '"' + quote(COLUMNS) + '"\r\n')
        written = 0
        while written < nbytes:
            lines = []
            for _ in range(512):
                ticks += 10_000_000
                values += rng.integers(0, 1000, size=21, dtype=np.uint64)
                for name in INSTANCES:
                    cells = ["True", "", "", "", "0", "10000000", "10000000", name, *map(str, values.tolist()),
                             "0", str(ticks // 3), str(ticks), "ISCSI-HOST1", "root/wmi:MSiSCSI_MMIPSECStats",
                             "{Active, AcquireFailures, AcquireHeapSize, ActiveAcquire...}",
                             "Microsoft.Management.Infrastructure.CimSystemProperties"]
                    lines.append('"' + quote(cells) + '"\r\n')
            block = "".join(lines)
            f.write(block)
            written += len(block)
            rows += len(lines)
    return rows


@pytest.fixture(scope="module")
def export(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    mb = 1 if smoke(request.config) else int(os.environ.get("IPSECSTATS_BENCH_CSV_MB", "200"))
    path = tmp_path_factory.mktemp("cimcsv") / f"export-{mb}mb.csv"
    rows = write_export(path, mb * 1_000_000)
    return path, rows


def _mb_per_s(benchmark, nbytes: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["mb_per_s"] = nbytes / stats.stats.median / 1e6


def bench_pyarrow_read_csv(benchmark, export):
    pa_csv = pytest.importorskip("pyarrow.csv")
    path, rows = export
    opts = pa_csv.ReadOptions(use_threads=False, skip_rows=1)  # skip the #TYPE line
    table = run(benchmark, lambda: pa_csv.read_csv(path, read_options=opts), op="CIM CSV",
                impl="pyarrow.csv.read_csv (1 thread)", nbytes=path.stat().st_size, rounds=3)
    assert table.num_rows == rows
    _mb_per_s(benchmark, path.stat().st_size)


def bench_read_cim_csv(benchmark, export):
    path, rows = export
    cap = run(benchmark, lambda: ipsecstats.read_cim_csv(path, timestamp_column="Timestamp_Sys100NS"),
              op="CIM CSV", impl=f"read_cim_csv ({ipsecstats.BACKEND})", nbytes=path.stat().st_size, rounds=3,
              ratios={"x_pyarrow": "pyarrow.csv.read_csv (1 thread)"})
    assert len(cap) == rows and cap.bare_names() == INSTANCES
    _mb_per_s(benchmark, path.stat().st_size)
    info = benchmark.extra_info
    if "x_pyarrow" in info:
        print(f"\nCIM CSV {path.stat().st_size / 1e6:.0f} MB: read_cim_csv {info['mb_per_s']:.0f} MB/s, "
              f"pyarrow {info['mb_per_s'] / info['x_pyarrow']:.0f} MB/s, ratio {info['x_pyarrow']:.2f}x")


def _rss_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))


def bench_stream_cim_csv_memory(benchmark, export):
    """Chunks of a reader, dropped as they come: the peak RSS stays bounded whatever the size."""
    path, rows = export

    def stream() -> int:
        reader = CimCsvReader(ByteSource(path), timestamp_column="Timestamp_Sys100NS")
        return sum(len(chunk) for chunk in reader)

    base = _rss_kb("VmRSS:")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("cannot reset the RSS high-water mark here")
    n = run(benchmark, stream, op="CIM CSV", impl="CimCsvReader stream", nbytes=path.stat().st_size, rounds=1)
    assert n == rows
    peak = (_rss_kb("VmHWM:") - base) / 1024
    benchmark.extra_info["peak_rss_mb"] = peak
    print(f"\nCIM CSV stream of {path.stat().st_size / 1e6:.0f} MB: peak RSS {peak:.0f} MB above the baseline")
    assert peak < 150
