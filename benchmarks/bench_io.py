"""Streaming a log file: ``iter_deltas`` over a file beside the in-memory path and memcpy.

    python -m pytest benchmarks/bench_io.py                      # 2,000,000 records = 336 MB
    IPSECSTATS_BENCH_RECORDS=500000 python -m pytest benchmarks/bench_io.py
    python -m pytest benchmarks/bench_io.py --benchmark-disable  # smoke: a few thousand records

The file is written once per session and read once before timing (a warm page cache,
as when a log is analysed right after it was captured or copied). Every row records in
``extra_info``: ``op``, ``impl``, ``nbytes``, ``gbps`` (input GB/s at the median) and
``x_memcpy``: the ratio to a memcpy of the same number of bytes (``np.copyto`` into a
preallocated array) timed in the same process; the file rows also time that memcpy
inside their own test, right before, as ``memcpy_gbps``.

``bench_peak_rss_1gib`` consumes ``iter_deltas`` over a 1 GiB file in a fresh process and
records how far the peak RSS (``VmHWM`` after ``clear_refs``) rose: the bound is 100 MiB.
Under ``--benchmark-disable`` the file is 16 MiB instead.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ipsecstats
from ipsecstats._generate import generate_blocks

from conftest import run

RECORDS = int(os.environ.get("IPSECSTATS_BENCH_RECORDS", "2000000"))
SMOKE_RECORDS = 3_000
RSS_FILE_BYTES = 2**30
SMOKE_RSS_FILE_BYTES = 2**24
RSS_BOUND = 100 * 2**20



def _smoke(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


def _warm(path: Path) -> None:
    """Read the file once so that it sits in the page cache."""
    buf = bytearray(1 << 24)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def _write_log(path: Path, records: int) -> None:
    with open(path, "wb") as f:
        for block in generate_blocks(records, instances=2, interval=10.0, restarts=4, seed=20261123):
            f.write(memoryview(block.view(np.uint8)))


@pytest.fixture(scope="module")
def log_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = SMOKE_RECORDS if _smoke(request.config) else RECORDS
    path = tmp_path_factory.mktemp("bench_io") / "log.bin"
    _write_log(path, records - records % 2)
    _warm(path)
    return path


@pytest.fixture(scope="module")
def log_bytes(log_path: Path) -> np.ndarray:
    return np.fromfile(log_path, dtype=np.uint8)


def _memcpy_seconds(src: np.ndarray, dst: np.ndarray, repeats: int = 5) -> float:
    """Median seconds of ``np.copyto(dst, src)``, timed here and now."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _run(benchmark: Any, fn: Callable[[], Any], *, rounds: int = 5, **labels: Any) -> Any:
    return run(benchmark, fn, rounds=rounds, warmup_rounds=1, **labels)


def _consume(iterator: Any) -> int:
    rows = 0
    for chunk in iterator:
        rows += chunk.shape[0]
    return rows


OP = "deltas of a log file"


def bench_memcpy(benchmark: Any, log_bytes: np.ndarray) -> None:
    dst = np.empty_like(log_bytes)
    _run(benchmark, lambda: np.copyto(dst, log_bytes), op=OP, impl="memcpy", nbytes=log_bytes.nbytes)
    assert np.array_equal(dst[:4096], log_bytes[:4096])


def bench_deltas_in_memory(benchmark: Any, log_bytes: np.ndarray) -> None:
    records = ipsecstats.decode(log_bytes)
    d = _run(benchmark, lambda: ipsecstats.deltas(records, stride=2), op=OP,
             impl="deltas, in memory, fresh output", nbytes=log_bytes.nbytes)
    assert d.shape[0] == records.shape[0] - 2


def bench_deltas_in_memory_reused_output(benchmark: Any, log_bytes: np.ndarray) -> None:
    records = ipsecstats.decode(log_bytes)
    out = ipsecstats.deltas(records, stride=2)
    _run(benchmark, lambda: ipsecstats.deltas(records, stride=2, out=out), op=OP,
         impl="deltas, in memory, out=", nbytes=log_bytes.nbytes)


@pytest.mark.parametrize("mode", ["mmap", "readinto", "mmap, chunks kept", "mmap, 4096-record chunks"])
def bench_iter_deltas_file(benchmark: Any, log_path: Path, log_bytes: np.ndarray, mode: str) -> None:
    """iter_deltas over the file, consumed chunk by chunk (the default unless the mode says)."""
    nbytes = log_bytes.nbytes
    memcpy_dst = np.empty_like(log_bytes)
    memcpy = _memcpy_seconds(log_bytes, memcpy_dst)
    del memcpy_dst
    kwargs: dict[str, Any] = {"stride": 2, "mmap": mode != "readinto"}
    if mode == "mmap, 4096-record chunks":
        kwargs["chunk_records"] = 4096
    if mode == "mmap, chunks kept":
        run = lambda: sum(c.shape[0] for c in list(ipsecstats.iter_deltas(log_path, **kwargs)))  # noqa: E731
    else:
        run = lambda: _consume(ipsecstats.iter_deltas(log_path, **kwargs))  # noqa: E731
    rows = _run(benchmark, run, op=OP, impl=f"iter_deltas, {mode}", nbytes=nbytes)
    assert rows == nbytes // ipsecstats.RECORD_SIZE - 2
    benchmark.extra_info["memcpy_gbps"] = nbytes / memcpy / 1e9
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["x_memcpy_same_test"] = memcpy / stats.stats.median


@pytest.mark.parametrize("target", ["one 4096-record buffer", "rotating 65536-record chunks"])
def bench_readinto_only(benchmark: Any, log_path: Path, log_bytes: np.ndarray, target: str) -> None:
    """The ceiling of the safe (``mmap=False``) path: ``readinto`` alone, no deltas.

    Into one reused cache-sized buffer, or 4096 records at a time into two alternating
    chunk-sized arrays (where reading straight into the output would put the records).
    """
    size = ipsecstats.RECORD_SIZE
    if target.startswith("one"):
        buffers = [np.empty(4096 * size, np.uint8)]
    else:
        buffers = [np.empty(65536 * size, np.uint8) for _ in range(2)]

    def read_all() -> int:
        total = k = offset = 0
        with open(log_path, "rb", buffering=0) as f:
            while True:
                buf = buffers[k]
                got = f.readinto(buf[offset : offset + 4096 * size].data)
                if not got:
                    return total
                total += got
                offset += got
                if offset == buf.nbytes:
                    k, offset = (k + 1) % len(buffers), 0

    got = _run(benchmark, read_all, op=OP, impl=f"readinto only, {target}", nbytes=log_bytes.nbytes)
    assert got == log_bytes.nbytes


def bench_iter_records_file(benchmark: Any, log_path: Path, log_bytes: np.ndarray) -> None:
    rows = _run(benchmark, lambda: _consume(ipsecstats.iter_records(log_path)), op=OP,
                impl="iter_records (copies)", nbytes=log_bytes.nbytes)
    assert rows == log_bytes.nbytes // ipsecstats.RECORD_SIZE


def bench_read_then_deltas(benchmark: Any, log_path: Path, log_bytes: np.ndarray) -> None:
    _run(benchmark, lambda: ipsecstats.deltas(ipsecstats.read(log_path), stride=2), op=OP,
         impl="read() + deltas (whole file)", nbytes=log_bytes.nbytes)


def bench_numpy_fromfile_then_deltas(benchmark: Any, log_path: Path, log_bytes: np.ndarray) -> None:
    """What a user writes without ipsecstats' reader: np.fromfile, then one-shot deltas."""
    _run(benchmark, lambda: ipsecstats.deltas(np.fromfile(log_path, dtype=ipsecstats.RECORD_DTYPE), stride=2),
         op=OP, impl="np.fromfile + deltas", nbytes=log_bytes.nbytes)


# --------------------------------------------------------------------------- bounded memory

_RSS_SCRIPT = textwrap.dedent("""
    import sys
    import ipsecstats

    def peak():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak to the current RSS
    before = peak()
    rows = 0
    for d in ipsecstats.iter_deltas(sys.argv[1], stride=2):
        rows += d.shape[0]
    print(before, peak(), rows)
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc/self/clear_refs")
def bench_peak_rss_1gib(benchmark: Any, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    size = SMOKE_RSS_FILE_BYTES if _smoke(request.config) else RSS_FILE_BYTES
    path = tmp_path_factory.mktemp("bench_rss") / "big.bin"
    block = np.concatenate(list(generate_blocks(65536, instances=2, seed=1))).view(np.uint8)
    with open(path, "wb") as f:
        written = 0
        while written < size:
            piece = block[: min(block.nbytes, size - written) // ipsecstats.RECORD_SIZE * ipsecstats.RECORD_SIZE]
            f.write(memoryview(piece))
            written += piece.nbytes
            if piece.nbytes == 0:
                break
    _warm(path)

    def measure() -> tuple[int, int, int]:
        out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(path)], capture_output=True, text=True,
                             check=True)
        before, after, rows = map(int, out.stdout.split())
        return before, after, rows

    benchmark.group = "peak RSS of iter_deltas"
    before, after, rows = benchmark.pedantic(measure, rounds=1, iterations=1)
    nbytes = path.stat().st_size
    path.unlink()
    benchmark.extra_info.update(op="peak RSS above baseline", impl="iter_deltas, default chunks", nbytes=nbytes,
                                rss_before_mib=before / 2**20, rss_peak_mib=after / 2**20,
                                rss_rise_mib=(after - before) / 2**20)
    assert rows == nbytes // ipsecstats.RECORD_SIZE - 2
    assert after - before <= RSS_BOUND, f"peak RSS rose by {(after - before) / 2**20:.1f} MiB over a {nbytes / 2**30:.2f} GiB file"
