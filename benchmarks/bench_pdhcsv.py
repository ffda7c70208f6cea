"""Perfmon PDH-CSV: read_pdh_csv beside pyarrow.csv.read_csv (one thread) on the same file.

Input: a ``typeperf -f CSV`` / ``relog -f csv`` log as it really looks: the
``(PDH-CSV 4.0) (zone)(bias)`` header, one column per counter path
``\\\\HOST\\MSiSCSI_MMIPSECStats(INSTANCE)\\Counter`` (2 instances x 21 counters) plus two
columns of other objects, every cell quoted, ``%.20g`` values, CRLF, one row per sample.
``IPSECSTATS_BENCH_PDH_MB`` sets its size (default 200 MB); the smoke pass
(``--benchmark-disable``) uses about 1 MB. The file is written once per session.

``extra_info``: ``mb_per_s`` for both, ``x_pyarrow`` (pyarrow time / ours: above 1 is
faster than pyarrow), ``x_bias`` for the read with ``timezone=`` (the header-bias read's
time / its time), and for the streaming pass ``peak_rss_mb`` (VmHWM above the RSS
before the pass, after resetting the high-water mark with /proc/self/clear_refs).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import run, smoke

import ipsecstats
from ipsecstats._source import ByteSource
from ipsecstats.formats.pdhcsv import PdhCsvReader, PdhCsvWarning, read_pdh_csv

HOST = "ISCSI-HOST1"
INSTANCES = ("PCI\\VEN_8086&DEV_10FB&SUBSYS_000C8086&REV_01\\4&1B2C3D4E&0&0010_0", "ROOT\\ISCSIPRT\\0000_0")
NAMES = [f.name for f in ipsecstats.FIELDS]
COLUMNS = ([f"\\\\{HOST}\\MSiSCSI_MMIPSECStats({inst})\\{name}" for inst in INSTANCES for name in NAMES]
           + [f"\\\\{HOST}\\Processor(_Total)\\% Processor Time", f"\\\\{HOST}\\Memory\\Available MBytes"])


def write_log(path: Path, nbytes: int, seed: int = 20261201) -> int:
    """Write about ``nbytes`` of log to ``path``; the number of rows."""
    rng = np.random.default_rng(seed)
    rows = 0
    values = rng.integers(0, 1 << 40, size=42, dtype=np.uint64)
    start = np.datetime64("2026-12-01T08:00:00.000", "ms")
    with open(path, "wb") as f:
        f.write(b'"(PDH-CSV 4.0) (Eastern Standard Time)(300)",' + ",".join(f'"{c}"' for c in COLUMNS).encode()
                + b"\r\n")
        written = 0
        while written < nbytes:
            lines = []
            for _ in range(512):
                values += rng.integers(0, 1000, size=42, dtype=np.uint64)
                s = str(start + np.timedelta64(rows * 15_000 + 13, "ms"))
                stamp = f"{s[5:7]}/{s[8:10]}/{s[0:4]} {s[11:23]}"
                cells = [stamp, *map(str, values.tolist()), "%.20g" % rng.random(), "%.20g" % (rng.random() * 4096)]
                lines.append('"' + '","'.join(cells) + '"\r\n')
                rows += 1
            block = "".join(lines).encode()
            f.write(block)
            written += len(block)
    return rows


@pytest.fixture(scope="module")
def log(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    mb = 1 if smoke(request.config) else int(os.environ.get("IPSECSTATS_BENCH_PDH_MB", "200"))
    path = tmp_path_factory.mktemp("pdhcsv") / f"typeperf-{mb}mb.csv"
    rows = write_log(path, mb * 1_000_000)
    return path, rows


def _mb_per_s(benchmark, nbytes: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["mb_per_s"] = nbytes / stats.stats.median / 1e6


def _read(path: Path, timezone: str | None = None) -> ipsecstats.Capture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PdhCsvWarning)  # the two other objects' columns
        return read_pdh_csv(path, timezone=timezone)


def bench_pyarrow_read_csv_pdh(benchmark, log):
    pa_csv = pytest.importorskip("pyarrow.csv")
    path, rows = log
    opts = pa_csv.ReadOptions(use_threads=False)
    table = run(benchmark, lambda: pa_csv.read_csv(path, read_options=opts), op="PDH-CSV",
                impl="pyarrow.csv.read_csv (1 thread)", nbytes=path.stat().st_size, rounds=3)
    assert table.num_rows == rows
    _mb_per_s(benchmark, path.stat().st_size)


def bench_read_pdh_csv(benchmark, log):
    path, rows = log
    cap = run(benchmark, lambda: _read(path), op="PDH-CSV", impl=f"read_pdh_csv ({ipsecstats.BACKEND})",
              nbytes=path.stat().st_size, rounds=3, ratios={"x_pyarrow": "pyarrow.csv.read_csv (1 thread)"})
    assert len(cap) == 2 * rows and cap.instance_names == tuple(f"{HOST} {i}" for i in INSTANCES)
    _mb_per_s(benchmark, path.stat().st_size)
    info = benchmark.extra_info
    if "x_pyarrow" in info:
        print(f"\nPDH-CSV {path.stat().st_size / 1e6:.0f} MB: read_pdh_csv {info['mb_per_s']:.0f} MB/s, "
              f"pyarrow {info['mb_per_s'] / info['x_pyarrow']:.0f} MB/s, ratio {info['x_pyarrow']:.2f}x")


def bench_read_pdh_csv_with_a_timezone(benchmark, log):
    """The zone's rules instead of the header's bias: ``x_bias`` is the bias read's time over this one."""
    path, rows = log
    cap = run(benchmark, lambda: _read(path, "America/New_York"), op="PDH-CSV",
              impl=f"read_pdh_csv timezone= ({ipsecstats.BACKEND})", nbytes=path.stat().st_size, rounds=3,
              ratios={"x_bias": f"read_pdh_csv ({ipsecstats.BACKEND})"})
    assert len(cap) == 2 * rows and cap.timestamps[0] == _read(path).timestamps[0]  # the header says EST
    _mb_per_s(benchmark, path.stat().st_size)
    info = benchmark.extra_info
    if "x_bias" in info:
        print(f"\nPDH-CSV with timezone=: {info['mb_per_s']:.0f} MB/s, {info['x_bias']:.2f}x the header-bias read")


def _rss_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))


def bench_stream_pdh_csv_memory(benchmark, log):
    """Chunks of a reader, dropped as they come: the peak RSS stays bounded whatever the size."""
    path, rows = log

    def stream() -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PdhCsvWarning)
            return sum(len(chunk) for chunk in PdhCsvReader(ByteSource(path)))

    base = _rss_kb("VmRSS:")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("cannot reset the RSS high-water mark here")
    n = run(benchmark, stream, op="PDH-CSV", impl="PdhCsvReader stream", nbytes=path.stat().st_size, rounds=1)
    assert n == 2 * rows
    peak = (_rss_kb("VmHWM:") - base) / 1024
    benchmark.extra_info["peak_rss_mb"] = peak
    print(f"\nPDH-CSV stream of {path.stat().st_size / 1e6:.0f} MB: peak RSS {peak:.0f} MB above the baseline")
    assert peak < 150
