"""Exports and rates: the CSV writer beside a naive ``pyarrow.csv.write_csv`` of the same
table, JSON Lines beside CSV, ``rates`` beside memcpy, and ``convert`` end to end.

Input: the deltas of a raw log of ``IPSECSTATS_BENCH_EXPORT_ROWS`` records (default
1,000,000; 2 instances): a leading ``record`` and ``instance`` column and the 21 fields,
uint64 and int64. The writers write ``convert``'s chunks (65,536 rows) to a file in a
temporary directory (ours: to a temporary file, synced, renamed, as ``convert`` does);
pyarrow writes one table it was handed whole. ``rates`` runs on the records in memory.

As a script (``python benchmarks/bench_export.py [ROWS] [REPEATS]``) it prints, in one run,
min and median seconds and the ratios: CSV x pyarrow (pyarrow time / ours), JSON Lines /
CSV, rates x memcpy (memcpy time / rates time), and ``ipsecstats convert`` in fresh
processes (csv, jsonl, parquet, openmetrics) with their peak RSS.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

import ipsecstats
from ipsecstats._export import Layout, write_table

from conftest import make_log, smoke

CHUNK = 65536
STRIDE = 2


def deltas_table(n: int) -> tuple[np.ndarray, np.ndarray]:
    records = make_log(n)
    return records, ipsecstats.deltas(records, stride=STRIDE)


def write_ours(d: np.ndarray, path: Path, fmt: str) -> None:
    chunks = ((lo, d[lo: lo + CHUNK]) for lo in range(0, d.shape[0], CHUNK))
    write_table(chunks, path, fmt, Layout("deltas", stride=STRIDE, first_record=STRIDE), d.dtype)


def write_pyarrow(d: np.ndarray, path: Path) -> None:
    """What a user writes: a pyarrow table of the same columns, then ``write_csv``."""
    import pyarrow as pa
    import pyarrow.csv as pc

    record = np.arange(STRIDE, STRIDE + d.shape[0], dtype=np.uint64)
    cols: dict[str, Any] = {"record": record, "instance": record % np.uint64(STRIDE)}
    cols.update({name: np.ascontiguousarray(d[name]) for name in d.dtype.names})
    pc.write_csv(pa.table(cols), path)


@pytest.fixture(scope="module")
def table(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray]:
    return deltas_table(2000 if smoke(request.config) else int(os.environ.get("IPSECSTATS_BENCH_EXPORT_ROWS",
                                                                               "1000000")))


def bench_csv_pyarrow(benchmark: Any, table: Any, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from conftest import run

    _, d = table
    run(benchmark, lambda: write_pyarrow(d, tmp_path / "pa.csv"), op="deltas to CSV", impl="pyarrow.csv.write_csv",
        nbytes=d.nbytes, rounds=3)
    assert (tmp_path / "pa.csv").stat().st_size > 0


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def bench_text_ours(benchmark: Any, table: Any, tmp_path: Path, fmt: str) -> None:
    from conftest import run

    _, d = table
    run(benchmark, lambda: write_ours(d, tmp_path / f"x.{fmt}", fmt), op="deltas to CSV" if fmt == "csv"
        else "deltas to JSON Lines", impl=f"ipsecstats {fmt}", nbytes=d.nbytes, rounds=3,
        ratios={"x_pyarrow": "pyarrow.csv.write_csv"})
    with open(tmp_path / f"x.{fmt}", "rb") as f:
        assert f.readline() and f.readline()


# --------------------------------------------------------------------------- the script


def _times(fn: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _line(label: str, ts: list[float], extra: str = "") -> None:
    print(f"{label:<44} min {min(ts):8.3f} s  median {statistics.median(ts):8.3f} s  {extra}")


def _cli(args: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of ``ipsecstats ARGS`` in a fresh process."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "subprocess.run([sys.executable, '-m', 'ipsecstats', *sys.argv[1:]], check=True); "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True).stdout
    secs, kb = out.split()
    return float(secs), int(kb) / 1024


def main(rows: int, repeats: int) -> None:
    records, d = deltas_table(rows)
    print(f"{rows:,} records -> {d.shape[0]:,} rows of deltas ({d.nbytes / 1e6:.0f} MB in memory), "
          f"{repeats} runs each")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        pa_t = _times(lambda: write_pyarrow(d, tmp / "pa.csv"), repeats)
        csv_t = _times(lambda: write_ours(d, tmp / "x.csv", "csv"), repeats)
        jl_t = _times(lambda: write_ours(d, tmp / "x.jsonl", "jsonl"), repeats)
        _line("pyarrow.csv.write_csv (naive)", pa_t)
        _line("ipsecstats CSV", csv_t, f"x pyarrow: min-ratio {min(pa_t) / min(csv_t):.2f}, "
              f"median-ratio {statistics.median(pa_t) / statistics.median(csv_t):.2f}")
        _line("ipsecstats JSON Lines", jl_t, f"/ CSV: min {min(jl_t) / min(csv_t):.2f}, "
              f"median {statistics.median(jl_t) / statistics.median(csv_t):.2f}")
        for p in ("pa.csv", "x.csv", "x.jsonl"):
            (tmp / p).unlink()
        src = records.view(np.uint8)
        dst = np.empty_like(src)
        mem_t = _times(lambda: np.copyto(dst, src), repeats * 3)
        rate_t = _times(lambda: ipsecstats.rates(records, interval=10.0, stride=STRIDE), repeats * 3)
        _line("memcpy of the records", mem_t)
        _line("rates(records, interval=10)", rate_t, f"x memcpy: min {min(mem_t) / min(rate_t):.2f}, "
              f"median {statistics.median(mem_t) / statistics.median(rate_t):.2f}")
        log = tmp / "log.bin"
        records.tofile(log)
        for fmt, what in (("csv", "deltas"), ("jsonl", "deltas"), ("parquet", "deltas"), ("om", "records")):
            out = tmp / f"cli.{fmt}"
            runs = [_cli(["convert", str(log), "-o", str(out), "--what", what, "--stride", str(STRIDE),
                          "--start", "2026-12-01T00:00:00Z", "--interval", "10"]) for _ in range(max(1, repeats // 2))]
            secs = [r[0] for r in runs]
            _line(f"ipsecstats convert --what {what} -o x.{fmt}", secs,
                  f"{log.stat().st_size / min(secs) / 1e9:.2f} GB/s of input, peak RSS "
                  f"{max(r[1] for r in runs):.0f} MB")
            out.unlink()


def test_script_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The script's one run, at a smoke size."""
    main(2000, 2)
    text = capsys.readouterr().out
    assert "x pyarrow" in text and "x memcpy" in text and "peak RSS" in text


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
