"""Columnar decode, table conversions and read_logs on Dask.

* Columnar decode (``decode_columns``) beside numpy's transpose-and-copy and memcpy of
  the same bytes, all in one process (targets: >= 2x numpy, >= 0.6x memcpy). Each is
  timed twice: into fresh memory (what a caller gets by default; page faults included)
  and into a reused buffer (the kernel alone).
* ``to_arrow`` / ``to_pandas`` / ``to_polars`` on IPSECSTATS_BENCH_RECORDS records
  (default 2,000,000 = 336 MB); wrapping ready columns is also timed (zero-copy: ~us).
* ``read_logs`` over 8 files of IPSECSTATS_BENCH_FILE_MB (default 50) MB, threaded Dask
  scheduler vs a plain loop over the files, reported as ``x_loop`` (loop time / Dask time).

``extra_info`` holds ``op``, ``impl``, ``nbytes``, ``gbps`` and the ratios to baselines
timed earlier in the same process: ``x_numpy`` (numpy time / ours), ``x_memcpy`` (memcpy
of the same bytes into the same kind of memory / ours), ``x_loop`` (loop / Dask). Under ``--benchmark-disable`` (the CI smoke pass) every input is tiny.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ipsecstats
from ipsecstats import dask as ipsdask
from ipsecstats._schema import COUNTERS

from conftest import run

RECORDS = int(os.environ.get("IPSECSTATS_BENCH_RECORDS", "2000000"))
FILE_MB = float(os.environ.get("IPSECSTATS_BENCH_FILE_MB", "50"))
NFILES = 8
SMOKE_RECORDS = 3_000



def _smoke(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


def _make_values(n: int, seed: int) -> np.ndarray:
    """(n, 21) uint64 counters: cumulative sums of small steps, gauges moving."""
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.integers(0, 50, size=(n, 21), dtype=np.uint64), axis=0, dtype=np.uint64)
    values[:, [0, 1, 5, 6, 16]] = rng.integers(0, 1000, size=(n, 5), dtype=np.uint64)
    return values


@pytest.fixture(scope="module")
def interop_records(request: pytest.FixtureRequest) -> np.ndarray:
    n = SMOKE_RECORDS if _smoke(request.config) else RECORDS
    return ipsecstats.decode(_make_values(n, 20261123).astype("<u8").tobytes(), copy=True)


@pytest.fixture(scope="module")
def interop_logs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    per_file = SMOKE_RECORDS if _smoke(request.config) else int(FILE_MB * 1e6) // 168
    folder = tmp_path_factory.mktemp("logs")
    paths = []
    for i in range(NFILES):
        path = folder / f"host{i}.ipsec"
        path.write_bytes(_make_values(per_file, 1000 + i).astype("<u8").tobytes())
        paths.append(str(path))
    return paths


def _numpy_view(records: np.ndarray) -> np.ndarray:
    return records.view(np.uint8).view("<u8").reshape(-1, 21)


# ---- columnar decode: into a reused buffer (the kernel) --------------------------------


def bench_memcpy_into_buffer(benchmark, interop_records):
    src = interop_records.view(np.uint8)
    dst = np.empty_like(src)
    run(benchmark, lambda: np.copyto(dst, src), op="memcpy", impl="memcpy", nbytes=src.nbytes)
    assert np.array_equal(dst, src)


def bench_numpy_transpose_into_buffer(benchmark, interop_records):
    view = _numpy_view(interop_records)
    out = np.empty((21, view.shape[0]), dtype=np.uint64)
    run(benchmark, lambda: np.copyto(out, view.T), op="columns(out=buffer)", impl="numpy transpose",
         nbytes=interop_records.nbytes, rounds=5, warmup_rounds=1, ratios={"x_memcpy": "memcpy"})
    assert np.array_equal(out[7], interop_records["NegotiationFailures"])


def bench_decode_columns_into_buffer(benchmark, interop_records):
    out = ipsecstats.decode_columns(interop_records).block  # the aligned block layout, reused
    cols = run(benchmark, lambda: ipsecstats.decode_columns(interop_records, out=out),
                op="columns(out=buffer)", impl="ipsecstats", nbytes=interop_records.nbytes,
                ratios={"x_numpy": "numpy transpose", "x_memcpy": "memcpy"})
    assert np.array_equal(cols["NegotiationFailures"], interop_records["NegotiationFailures"])


# ---- columnar decode: into fresh memory ------------------------------------------------


def bench_memcpy_fresh(benchmark, interop_records):
    src = interop_records.view(np.uint8)
    run(benchmark, src.copy, op="copy into new memory", impl="memcpy fresh", nbytes=src.nbytes)


def bench_numpy_transpose_fresh(benchmark, interop_records):
    view = _numpy_view(interop_records)
    out = run(benchmark, lambda: np.ascontiguousarray(view.T), op="columns (new memory)",
               impl="np.ascontiguousarray(view.T)", nbytes=interop_records.nbytes, rounds=5, warmup_rounds=1,
               ratios={"x_memcpy": "memcpy fresh"})
    assert out.shape == (21, interop_records.shape[0])


def bench_decode_columns_fresh(benchmark, interop_records):
    cols = run(benchmark, lambda: ipsecstats.decode_columns(interop_records), op="columns (new memory)",
                impl="ipsecstats", nbytes=interop_records.nbytes,
                ratios={"x_numpy": "np.ascontiguousarray(view.T)", "x_memcpy": "memcpy fresh"})
    assert np.array_equal(cols["KeyUpdates"], interop_records["KeyUpdates"])


def bench_deltas_then_numpy_transpose(benchmark, interop_records):
    def both() -> np.ndarray:
        d = ipsecstats.deltas(interop_records)
        return np.ascontiguousarray(d.view(np.uint8).view("<u8").reshape(-1, 21).T)

    run(benchmark, both, op="delta columns (new memory)", impl="deltas + numpy transpose",
         nbytes=interop_records.nbytes, rounds=5, warmup_rounds=1)


def bench_delta_columns(benchmark, interop_records):
    cols = run(benchmark, lambda: ipsecstats.delta_columns(interop_records), op="delta columns (new memory)",
                impl="ipsecstats", nbytes=interop_records.nbytes,
                ratios={"x_numpy": "deltas + numpy transpose", "x_memcpy": "memcpy fresh"})
    assert cols.nrows == interop_records.shape[0] - 1


# ---- conversions -----------------------------------------------------------------------


@pytest.mark.parametrize("lib", ["arrow", "pandas", "polars"])
def bench_to_table_from_records(benchmark, interop_records, lib):
    convert = {"arrow": ipsecstats.to_arrow, "pandas": ipsecstats.to_pandas, "polars": ipsecstats.to_polars}[lib]
    table = run(benchmark, lambda: convert(interop_records), op=f"to_{lib}(records)", impl="ipsecstats",
                 nbytes=interop_records.nbytes, rounds=5, warmup_rounds=1)
    assert len(table) == interop_records.shape[0]


@pytest.mark.parametrize("lib", ["arrow", "pandas", "polars"])
def bench_to_table_from_columns(benchmark, interop_records, lib):
    """Wrapping ready columns: no data moves, so this is per-call overhead, not bandwidth."""
    convert = {"arrow": ipsecstats.to_arrow, "pandas": ipsecstats.to_pandas, "polars": ipsecstats.to_polars}[lib]
    cols = ipsecstats.decode_columns(interop_records)
    benchmark.group = f"to_table(Columns) {interop_records.shape[0]} records"
    benchmark.extra_info.update(op=f"to_{lib}(Columns), zero-copy", impl="ipsecstats")
    table = benchmark(convert, cols)
    assert len(table) == interop_records.shape[0]


def bench_to_arrow_deltas(benchmark, interop_records):
    d = ipsecstats.deltas(interop_records)
    table = run(benchmark, lambda: ipsecstats.to_arrow(d), op="to_arrow(deltas)", impl="ipsecstats",
                 nbytes=d.nbytes, rounds=5, warmup_rounds=1)
    assert table.num_rows == d.shape[0]


def bench_from_arrow(benchmark, interop_records):
    table = ipsecstats.to_arrow(interop_records)
    back = run(benchmark, lambda: ipsecstats.from_arrow(table), op="from_arrow(table)", impl="ipsecstats",
                nbytes=interop_records.nbytes, rounds=5, warmup_rounds=1)
    assert back.shape == interop_records.shape


# ---- read_logs: threaded Dask vs a plain loop --------------------------------------------


def _loop_totals(paths: list[str]) -> dict[str, np.ndarray]:
    """The single-process baseline: per-file counter-delta totals, one file after another."""
    totals = {}
    for path in paths:
        cols = ipsecstats.delta_columns(ipsecstats.decode(Path(path).read_bytes()))
        totals[path] = np.array([cols[name].sum() for name in COUNTERS], dtype=np.uint64)
    return totals


def _dask_totals(paths: list[str]) -> Any:
    ddf = ipsdask.read_logs(paths, what="deltas", columns=["file", *COUNTERS])
    return ddf.groupby("file", observed=True).sum().compute(scheduler="threads")


def bench_read_logs_plain_loop(benchmark, interop_logs):
    nbytes = sum(os.path.getsize(p) for p in interop_logs)
    totals = run(benchmark, lambda: _loop_totals(interop_logs), op=f"per-file delta totals, {NFILES} files",
                  impl="plain loop", nbytes=nbytes, rounds=3, warmup_rounds=1)
    assert len(totals) == NFILES


def bench_read_logs_dask_threads(benchmark, interop_logs):
    nbytes = sum(os.path.getsize(p) for p in interop_logs)
    totals = run(benchmark, lambda: _dask_totals(interop_logs), op=f"per-file delta totals, {NFILES} files",
                  impl="read_logs, threads", nbytes=nbytes, rounds=3, warmup_rounds=1, ratios={"x_loop": "plain loop"})
    loop = _loop_totals(interop_logs)
    for path in interop_logs:
        assert np.array_equal(totals.loc[path, list(COUNTERS)].to_numpy(dtype=np.uint64), loop[path])
