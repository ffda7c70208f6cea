"""Run the benchmarks and print one table: operation, GB/s, x memcpy, x pure twin.

    python benchmarks/report.py [bench_core.py ...] [--json OUT.json] [-- extra pytest args]

All rows of one input size come from one process, so the ratios compare like with like
(the machine is shared and noisy: compare ratios, not absolute times across runs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def table(benchmarks: list[dict]) -> str:
    memcpy = {}
    twin = {}
    for b in benchmarks:
        info = b["extra_info"]
        if info.get("impl") == "memcpy":
            memcpy[info["nbytes"]] = b["stats"]["median"]
        if info.get("impl") == "pure twin":
            twin[(info["op"], info["nbytes"])] = b["stats"]["median"]
    lines = [
        f"| {'operation':<36} | {'impl':<26} | {'records':>9} | {'GB/s':>6} | {'x memcpy':>8} | {'x twin':>6} |",
        f"|{'-' * 38}|{'-' * 28}|{'-' * 11}:|{'-' * 7}:|{'-' * 9}:|{'-' * 7}:|",
    ]
    for b in benchmarks:
        info = b["extra_info"]
        if "op" not in info or "nbytes" not in info:
            extras = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())
            lines.append(f"| {b['name']:<36} | median {b['stats']['median'] * 1e3:.3f} ms | {extras} |")
            continue
        median = b["stats"]["median"]
        nbytes = info["nbytes"]
        x_mem = memcpy.get(nbytes)
        x_twin = twin.get((info["op"], nbytes))
        lines.append(
            f"| {info['op']:<36} | {info['impl']:<26} | {nbytes // 168:>9} | {nbytes / median / 1e9:>6.2f} | "
            f"{(x_mem / median) if x_mem else float('nan'):>8.2f} | "
            f"{(x_twin / median) if x_twin and info['impl'] == 'ipsecstats' else float('nan'):>6.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", default=["bench_core.py"])
    parser.add_argument("--json", help="keep the pytest-benchmark JSON here")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    out = Path(args.json) if args.json else Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = [sys.executable, "-m", "pytest", *[str(HERE / f) for f in args.files], "-q",
           f"--benchmark-json={out}", "--benchmark-min-rounds=5", *extra]
    status = subprocess.call(cmd, cwd=HERE)
    if status != 0:
        return status
    data = json.loads(out.read_text())
    machine = data.get("machine_info", {})
    print(f"\n{machine.get('cpu', {}).get('brand_raw', '?')}, python {machine.get('python_version', '?')}")
    print(table(data["benchmarks"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
