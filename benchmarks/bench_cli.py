"""The operator's commands end to end, in one run, each beside a baseline measured in the same run.

``python benchmarks/bench_cli.py [--records N] [--convert-records M] [--repeat R] [--dir DIR]``
writes (or reuses, in DIR) a raw log of N records (default 6,400,000: 1.07 GB, 2 interleaved
instances, ``make_log``) and one of M records for the exports (default 1,000,000: 168 MB),
reads both once to warm the page cache, then prints:

* ``report`` and ``info`` on the big log, each in a fresh interpreter, minus the median start-up
  of ``python -c "import ipsecstats.cli"``: GB/s of input, and ``x memcpy`` = the seconds of an
  in-process memcpy of the same byte count / the command's seconds (1.0: as fast as copying
  the input once);
* ``convert --what deltas`` to CSV, JSON Lines and Parquet on the small log, fresh
  interpreters too: GB/s of input, rows/s, peak RSS of the process (``ru_maxrss``); CSV beside
  the raw path through pyarrow in this process (decode, deltas, ``pyarrow.table``,
  ``pyarrow.csv.write_csv``: ``x pyarrow`` = its seconds / convert's), and JSON Lines / CSV;
* ``rates(records, interval=10, stride=2)`` in this process beside a memcpy of the records;
* the figures measured before this work (issue 11's table), for comparison.

Each figure is the median of R runs (default 5; convert: R // 2 + 1); min and median are
both printed. Under pytest (the CI smoke pass) the same code runs on tiny logs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import make_log  # noqa: E402

import ipsecstats  # noqa: E402

STRIDE = 2
SRC = str(Path(__file__).resolve().parents[1] / "src")
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH", "")) if p))

#: Issue 11's table ("today"), measured the same way before the fused pass and the compiled writers.
PREVIOUS = {
    "report": "0.56-0.71 GB/s (0.05-0.07x memcpy)",
    "info": "0.62-0.72 GB/s",
    "convert csv": "0.10 GB/s; 0.47-0.66x a naive pyarrow write_csv",
    "convert jsonl": "12.8 s for 336 MB of deltas",
    "rates": "0.36x memcpy",
}


def _log(path: Path, records: int) -> Path:
    if not path.exists() or path.stat().st_size != records * 168:
        make_log(records).tofile(path)
    with open(path, "rb") as f:  # warm the page cache
        while f.read(1 << 24):
            pass
    return path


_TIMED = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
          "subprocess.run([sys.executable, *sys.argv[1:]], check=True, stdout=subprocess.DEVNULL); "
          "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def _wall(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``python ARGS`` in a fresh process (its stdout discarded),
    measured by a parent of its own so that each command's peak is its own."""
    out = subprocess.run([sys.executable, "-c", _TIMED, *args], check=True, env=ENV, capture_output=True,
                         text=True).stdout
    secs, kb = out.split()
    return float(secs), int(kb) / 1024


def _times(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _memcpy(nbytes: int, repeat: int) -> list[float]:
    src = np.ones(nbytes, np.uint8)
    dst = np.empty(nbytes, np.uint8)
    dst.fill(0)  # touched: no page faults are timed
    return _times(lambda: np.copyto(dst, src), repeat)


def _row(label: str, ts: list[float], extra: str = "") -> str:
    return f"  {label:<34} min {min(ts):7.3f} s  median {statistics.median(ts):7.3f} s  {extra}"


def _pyarrow_csv(log: Path, out: Path) -> None:
    """The raw path a user writes: read, deltas, a pyarrow table of the same columns, ``write_csv``."""
    import pyarrow as pa
    import pyarrow.csv as pc

    d = ipsecstats.deltas(ipsecstats.decode(log.read_bytes()), stride=STRIDE)
    record = np.arange(STRIDE, STRIDE + d.shape[0], dtype=np.uint64)
    cols: dict[str, Any] = {"record": record, "instance": record % np.uint64(STRIDE)}
    cols.update({name: np.ascontiguousarray(d[name]) for name in d.dtype.names})
    pc.write_csv(pa.table(cols), out)


def run(big: Path, small: Path, repeat: int) -> str:
    lines = [f"load average {os.getloadavg()[0]:.1f}; {repeat} runs each; python {sys.version.split()[0]}, "
             f"numpy {np.__version__}, backend {ipsecstats.BACKEND}"]
    startup = statistics.median(_wall(["-c", "import ipsecstats.cli"])[0] for _ in range(repeat))
    lines.append(f"interpreter start-up and imports (subtracted below): {startup:.3f} s")

    nbytes = big.stat().st_size
    mem = _memcpy(nbytes, repeat)
    lines.append(f"\n{big.name}: {nbytes / 1e9:.3f} GB raw log, stride {STRIDE}")
    lines.append(_row("memcpy of the same bytes", mem, f"{nbytes / statistics.median(mem) / 1e9:6.2f} GB/s"))
    for command in ("report", "info"):
        ts = [max(_wall(["-m", "ipsecstats", command, str(big), "--stride", str(STRIDE), "--progress", "never"])[0]
                  - startup, 1e-9) for _ in range(repeat)]
        lines.append(_row(f"ipsecstats {command}", ts, f"{nbytes / statistics.median(ts) / 1e9:6.2f} GB/s, "
                          f"x memcpy {min(mem) / min(ts):.2f} (min) {statistics.median(mem) / statistics.median(ts):.2f}"
                          f" (median)"))

    nbytes = small.stat().st_size
    rows = nbytes // 168 - STRIDE
    lines.append(f"\n{small.name}: {nbytes / 1e6:.0f} MB raw log -> {rows:,} rows of deltas")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        runs = max(1, repeat // 2 + 1)
        pa_t = _times(lambda: _pyarrow_csv(small, tmp / "pa.csv"), runs)
        lines.append(_row("raw path: deltas + pyarrow write_csv", pa_t, "(in this process)"))
        seconds: dict[str, list[float]] = {}
        for fmt in ("csv", "jsonl", "parquet"):
            out = tmp / f"x.{fmt}"
            measured = [_wall(["-m", "ipsecstats", "convert", str(small), "--what", "deltas", "--stride", str(STRIDE),
                               "-o", str(out), "--progress", "never"]) for _ in range(runs)]
            ts = seconds[fmt] = [max(s - startup, 1e-9) for s, _ in measured]
            extra = (f"{nbytes / statistics.median(ts) / 1e9:5.2f} GB/s, {rows / statistics.median(ts) / 1e6:5.2f} M "
                     f"rows/s, peak RSS {max(m for _, m in measured):.0f} MB, {out.stat().st_size / 1e6:.0f} MB out")
            if fmt == "csv":
                extra += f"; x pyarrow {statistics.median(pa_t) / statistics.median(ts):.2f}"
            if fmt == "jsonl":
                extra += f"; / CSV {statistics.median(ts) / statistics.median(seconds['csv']):.2f}"
            lines.append(_row(f"ipsecstats convert -o x.{fmt}", ts, extra))
            out.unlink()

    records = ipsecstats.decode(small.read_bytes())
    mem = _memcpy(records.nbytes, 3 * repeat)
    rate = _times(lambda: ipsecstats.rates(records, interval=10.0, stride=STRIDE), 3 * repeat)
    lines.append(f"\nrates of {records.shape[0]:,} records in memory")
    lines.append(_row("memcpy of the records", mem))
    lines.append(_row("rates(interval=10, stride=2)", rate,
                      f"x memcpy {min(mem) / min(rate):.2f} (min) {statistics.median(mem) / statistics.median(rate):.2f}"
                      " (median)"))
    lines.append("\nbefore this work (issue 11):")
    lines.extend(f"  {k:<34} {v}" for k, v in PREVIOUS.items())
    return "\n".join(lines)


def test_script_runs(tmp_path: Path) -> None:
    """The script's one run at a smoke size: every line is there."""
    text = run(_log(tmp_path / "big.bin", 4000), _log(tmp_path / "small.bin", 2000), 1)
    for needle in ("ipsecstats report", "ipsecstats info", "x.csv", "x pyarrow", "x.jsonl", "/ CSV", "x.parquet",
                   "rates(interval=10", "x memcpy", "before this work"):
        assert needle in text, needle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=6_400_000, help="records of the report/info log")
    parser.add_argument("--convert-records", type=int, default=1_000_000, help="records of the convert log")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the logs are kept")
    args = parser.parse_args()
    big = _log(args.dir / f"ipsecstats-bench-cli-{args.records}.bin", args.records)
    small = _log(args.dir / f"ipsecstats-bench-cli-{args.convert_records}.bin", args.convert_records)
    print(run(big, small, args.repeat))


if __name__ == "__main__":
    main()
