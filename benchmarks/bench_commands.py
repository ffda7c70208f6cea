"""Whole commands on big captures: time and peak RSS of ``report`` and ``convert`` in a fresh process.

Inputs: a WNODE capture of ``IPSECSTATS_BENCH_WNODE_MB`` (default 1000 MB, 2 instances,
from ``ipsecstats generate --format wnode``) and a PowerShell CIM CSV export of
``IPSECSTATS_BENCH_CSV_MB`` (default 500 MB, see ``bench_cimcsv``). The smoke pass uses a
few MB. Each command runs once in a new interpreter under a probe that reads the
high-water mark ``VmHWM`` before ``import ipsecstats.cli`` and after the command.

``extra_info``: ``peak_rss_mb`` (MiB above the bare interpreter: numpy and pyarrow imports
included), ``mb_per_s`` (input MB per second of the command, interpreter start-up excluded)
and, for ``convert``, ``output_mb``. The bound to compare against: 150 MB above the
interpreter for a 1 GB WNODE capture or a 500 MB CIM CSV.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench_cimcsv import write_export
from conftest import smoke

PROBE = """
import sys, time
def hwm():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmHWM'))
base = hwm()
start = time.perf_counter()
import contextlib, io
import ipsecstats.cli as cli
with contextlib.redirect_stdout(io.StringIO()):
    status = cli.main(sys.argv[1:])
print(status, hwm() - base, time.perf_counter() - start)
"""


@pytest.fixture(scope="module")
def captures(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc for VmHWM")
    small = smoke(request.config)
    wnode_mb = 2 if small else int(os.environ.get("IPSECSTATS_BENCH_WNODE_MB", "1000"))
    csv_mb = 1 if small else int(os.environ.get("IPSECSTATS_BENCH_CSV_MB", "500"))
    folder = tmp_path_factory.mktemp("commands")
    wnode = folder / f"capture-{wnode_mb}mb.wnode"
    records = max(2, wnode_mb * 1_000_000 // 248 // 2 * 2)  # a 2-instance WNODE sample is ~496 bytes
    subprocess.run([sys.executable, "-m", "ipsecstats", "generate", str(wnode), "--format", "wnode",
                    "--records", str(records), "--instances", "2"], check=True)
    csv = folder / f"export-{csv_mb}mb.csv"
    write_export(csv, csv_mb * 1_000_000)
    return {"wnode": wnode, "cim-csv": csv}


def _command(benchmark, path: Path, args: list[str], out: Path | None = None) -> None:
    def once() -> tuple[int, int, float]:
        if out is not None and out.exists():
            out.unlink()
        result = subprocess.run([sys.executable, "-c", PROBE, *args, "--progress", "never"],
                                capture_output=True, text=True, check=False)
        status, kib, seconds = result.stdout.split()
        assert status == "0", result.stderr
        return int(status), int(kib), float(seconds)

    _, kib, seconds = benchmark.pedantic(once, rounds=1, iterations=1)
    nbytes = path.stat().st_size
    benchmark.group = "whole commands"
    benchmark.extra_info.update(op=args[0], impl=" ".join(args[:1] + args[2:3]), nbytes=nbytes,
                                peak_rss_mb=kib / 1024, mb_per_s=nbytes / seconds / 1e6)
    if out is not None:
        benchmark.extra_info["output_mb"] = out.stat().st_size / 1e6
    print(f"\n{args[0]} {path.name} ({nbytes / 1e6:.0f} MB): {seconds:.2f} s, {nbytes / seconds / 1e6:.0f} MB/s, "
          f"peak RSS {kib / 1024:.0f} MiB above the interpreter")


@pytest.mark.parametrize("fmt", ["wnode", "cim-csv"])
def bench_report(benchmark, captures, fmt):
    _command(benchmark, captures[fmt], ["report", str(captures[fmt])])


@pytest.mark.parametrize("fmt", ["wnode", "cim-csv"])
def bench_convert_deltas_parquet(benchmark, captures, fmt, tmp_path):
    out = tmp_path / "deltas.parquet"
    _command(benchmark, captures[fmt], ["convert", "--what", "deltas", str(captures[fmt]), "-o", str(out)], out)
