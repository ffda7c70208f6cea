"""``ipsecstats report FILE`` end to end, beside memcpy: the target of issue 11 is 0.3x memcpy.

Run as a script for the figure (``python benchmarks/bench_report.py [--records N] [--repeat R]
[--file LOG] [--stride K]``): it writes (or reuses) a raw log of N records, 2 interleaved
instances (default 6,400,000 records: 1.07 GB), reads it once to warm the page cache, then
times, R times each:

* ``report FILE`` in a fresh interpreter (``subprocess``, wall clock), minus the median
  wall time of ``python -c "import ipsecstats.cli"`` (the interpreter's start-up and imports);
* an in-process memcpy of the same byte count (``np.copyto`` into a buffer already touched,
  so no page faults are timed).

It prints min and median of each and the ratio ``memcpy seconds / report seconds`` (1.0 =
the report runs as fast as copying its input once). Under pytest (the CI smoke pass) the
same measurement runs on a small log and checks only that it completes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))


def _wall(args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(args, check=True, env=ENV, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def measure(path: Path, repeat: int, extra: list[str]) -> dict[str, list[float]]:
    nbytes = path.stat().st_size
    with open(path, "rb") as f:  # warm the page cache
        while f.read(1 << 24):
            pass
    src = np.ones(nbytes, np.uint8)
    dst = np.empty(nbytes, np.uint8)
    dst.fill(0)  # touched: the copies below time no page faults
    memcpy, startup, report = [], [], []
    for _ in range(repeat):
        t = time.perf_counter()
        np.copyto(dst, src)
        memcpy.append(time.perf_counter() - t)
        startup.append(_wall([sys.executable, "-c", "import ipsecstats.cli"]))
        report.append(_wall([sys.executable, "-m", "ipsecstats", "report", str(path), "--progress", "never", *extra]))
    del src, dst
    base = statistics.median(startup)
    return {"memcpy": memcpy, "startup": startup, "report": [max(r - base, 1e-9) for r in report]}


def summary(path: Path, times: dict[str, list[float]]) -> str:
    nbytes = path.stat().st_size
    mc, rep = times["memcpy"], times["report"]
    lines = [f"{path.name}: {nbytes / 1e9:.3f} GB, {len(rep)} runs, load average {os.getloadavg()[0]:.1f}"]
    for name, t in times.items():
        lines.append(f"  {name:8s} min {min(t):.3f} s  median {statistics.median(t):.3f} s"
                     + ("" if name == "startup" else f"  ({nbytes / statistics.median(t) / 1e9:.2f} GB/s)"))
    best = min(mc) / min(rep)
    typical = statistics.median(mc) / statistics.median(rep)
    lines.append(f"  report = {best:.2f}x memcpy (best runs), {typical:.2f}x (medians); target 0.3x")
    return "\n".join(lines)


def _log(path: Path, records: int) -> Path:
    if not path.exists() or path.stat().st_size != records * 168:
        subprocess.run([sys.executable, "-m", "ipsecstats", "generate", str(path), "--records", str(records),
                        "--instances", "2"], check=True, env=ENV)
    return path


def bench_report_beside_memcpy(tmp_path):
    """Smoke: the measurement runs on a small log (the figure comes from the script)."""
    path = _log(tmp_path / "small.bin", 20_000)
    times = measure(path, 1, [])
    print("\n" + summary(path, times))
    assert all(t > 0 for t in times["memcpy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=6_400_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--file", type=Path, default=Path("/tmp/ipsecstats-bench-report.bin"))
    parser.add_argument("--stride", type=int, help="pass --stride K to report")
    args = parser.parse_args()
    path = _log(args.file, args.records)
    extra = ["--stride", str(args.stride)] if args.stride else []
    print(summary(path, measure(path, args.repeat, extra)))


if __name__ == "__main__":
    main()
