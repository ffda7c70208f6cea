"""ipsecstats.dask.read_logs: many logs as one Dask DataFrame, locally and on a real cluster."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import dask
import distributed
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import ipsecstats
from ipsecstats import dask as ipsdask
from ipsecstats._schema import COUNTERS, FIELD_NAMES

# record counts per file: empty, shorter than a stride, a few, some more
SIZES = (0, 1, 2, 5, 37, 64)


def make_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 21) uint64: counters rising with a restart, gauges moving, one counter near 2**64."""
    steps = rng.integers(0, 1 << 20, size=(n, 21), dtype=np.uint64)
    values = np.cumsum(steps, axis=0, dtype=np.uint64)
    values[:, [0, 1, 5, 6, 16]] = rng.integers(0, 500, size=(n, 5), dtype=np.uint64)  # gauges
    values[:, 20] += np.uint64(2**64 - 3 * (1 << 20))  # SoftAssociations wraps past 2**64 - 1
    if n > 3:
        values[n // 2 :, 3] -= values[n // 2, 3]  # ReceiveFailures restarts from 0
    return values


@pytest.fixture
def logs(tmp_path: Path, rng: np.random.Generator) -> list[str]:
    paths = []
    for i, n in enumerate(SIZES):
        path = tmp_path / f"host{i}.ipsec"
        path.write_bytes(make_values(rng, n).astype("<u8").tobytes())
        paths.append(str(path))
    return paths


def per_file(path: str, what: str, stride: int, **kw) -> pd.DataFrame:
    """The single-machine result for one file: the core API on the whole file."""
    records = ipsecstats.decode(Path(path).read_bytes())
    if what == "records":
        result, first = records, 0
    elif what == "deltas":
        result, first = ipsecstats.deltas(records, stride=stride, **kw), stride
    else:
        result, first = ipsecstats.rates(records, stride=stride, interval=15.0, **kw), stride
    frame = pd.DataFrame({name: result[name] for name in result.dtype.names})
    frame.insert(0, "record", np.arange(first, first + len(frame), dtype=np.int64))
    if stride > 1:
        frame.insert(1, "instance", frame["record"] % stride)
    frame.insert(0, "file", path)
    return frame


def concatenated(paths: list[str], what: str, stride: int, **kw) -> pd.DataFrame:
    frames = [per_file(p, what, stride, **kw) for p in paths]
    out = pd.concat(frames, ignore_index=True)
    out["file"] = pd.Categorical(out["file"], categories=list(dict.fromkeys(paths)))
    return out


@pytest.mark.parametrize("what", ["records", "deltas", "rates"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("chunk_records", [None, 1, 4, 16])
def test_read_logs_equals_concatenated_per_file_results(logs, what, stride, chunk_records):
    kw = {"interval": 15.0} if what == "rates" else {}
    ddf = ipsdask.read_logs(os.path.join(os.path.dirname(logs[0]), "*.ipsec"), what=what, stride=stride,
                            chunk_records=chunk_records, **kw)
    got = ddf.compute().reset_index(drop=True)
    expected = concatenated(sorted(logs), what, stride)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # meta matches the computed frame: names, order, dtypes and the file categories
    assert list(ddf._meta.columns) == list(got.columns)
    assert ddf._meta.dtypes.to_dict() == got.dtypes.to_dict()
    assert list(ddf._meta["file"].cat.categories) == list(got["file"].cat.categories)


def test_partitions_one_per_file_or_per_chunk(logs):
    assert ipsdask.read_logs(logs).npartitions == len(logs)
    expected = sum(max(1, -(-n // 16)) for n in SIZES)
    assert ipsdask.read_logs(logs, chunk_records=16).npartitions == expected


def test_dtypes_are_exact_integers(logs):
    records = ipsdask.read_logs(logs)
    deltas = ipsdask.read_logs(logs, what="deltas", stride=2)
    assert all(str(records._meta[n].dtype) == "uint64" for n in FIELD_NAMES)
    assert str(deltas._meta["ActiveAcquire"].dtype) == "int64"
    assert str(deltas._meta["KeyUpdates"].dtype) == "uint64"
    assert str(deltas._meta["record"].dtype) == "int64" and str(deltas._meta["instance"].dtype) == "int64"
    assert "instance" not in records.columns


def test_per_file_totals_are_exact_with_the_threaded_scheduler(logs):
    ddf = ipsdask.read_logs(logs, what="deltas", chunk_records=7)
    totals = ddf.groupby("file", observed=True)[list(COUNTERS)].sum().compute()
    for path in logs:
        d = ipsecstats.deltas(ipsecstats.decode(Path(path).read_bytes()))
        for name in COUNTERS:
            exact = sum(int(v) for v in d[name])
            if len(d):
                assert int(totals.loc[path, name]) == exact, (path, name)
    assert str(totals["SoftAssociations"].dtype) == "uint64"


def test_column_projection_is_pushed_into_the_reader(logs):
    ddf = ipsdask.read_logs(logs, what="deltas")
    assert list(ipsdask.read_logs(logs, columns=["file", "KeyUpdates"]).compute().columns) == ["file", "KeyUpdates"]
    index_only = ddf[["file", "record"]]
    for path in logs:  # nothing is read when no field column is asked for
        os.remove(path)
    got = index_only.compute()
    assert len(got) == sum(max(n - 1, 0) for n in SIZES)
    with pytest.raises(FileNotFoundError):
        # synchronous: the threaded scheduler raises at the first failed task and leaves the
        # others running in its pool, where they reach the next test's LogReader spy
        ddf["KeyUpdates"].compute(scheduler="synchronous")


def test_projection_reaches_the_partition_function(logs, monkeypatch):
    seen = []
    original = ipsdask.LogReader.__call__

    def spy(self, part, columns=None):
        seen.append(None if columns is None else tuple(columns))
        return original(self, part, columns)

    monkeypatch.setattr(ipsdask.LogReader, "__call__", spy)
    ddf = ipsdask.read_logs(logs)
    seen.clear()
    ddf[["KeyUpdates", "file"]].compute(scheduler="synchronous")
    assert seen and all(c is not None and set(c) == {"KeyUpdates", "file"} for c in seen)


def test_truncated_files_follow_the_decode_rule(logs):
    with open(logs[2], "ab") as f:
        f.write(b"\x00" * 5)
    with pytest.raises(ipsecstats.TruncatedRecordError, match=r"host2\.ipsec.*5 trailing byte"):
        ipsdask.read_logs(logs)
    with pytest.warns(ipsecstats.PartialRecordWarning, match=r"host2\.ipsec") as caught:
        ddf = ipsdask.read_logs(logs, allow_partial=True)
    assert [w.filename for w in caught] == [__file__]  # the warning points at the caller of read_logs()
    got = ddf.compute()
    assert (got["file"] == logs[2]).sum() == SIZES[2]


def test_a_file_that_shrinks_after_listing_is_an_error(logs):
    ddf = ipsdask.read_logs(logs[-1:], what="deltas")
    with open(logs[-1], "r+b") as f:
        f.truncate(168 * 10)
    with pytest.raises(ValueError, match=r"host5\.ipsec.*byte offset 1680"):
        ddf.compute()


def test_counter_reset_error_names_the_file(tmp_path):
    values = np.cumsum(np.ones((40, 21), dtype=np.uint64), axis=0, dtype=np.uint64)
    values[29:, 9] -= np.uint64(20)  # one fall, InvalidCookiesReceived between records 28 and 29
    path = tmp_path / "restart.ipsec"
    path.write_bytes(values.astype("<u8").tobytes())
    ddf = ipsdask.read_logs(str(path), what="deltas", on_decrease="raise", chunk_records=8)
    with pytest.raises(ipsecstats.CounterResetError) as info:
        ddf.compute(scheduler="synchronous")
    with pytest.raises(ipsecstats.CounterResetError) as reference:
        ipsecstats.deltas(ipsecstats.decode(path.read_bytes()), on_decrease="raise")
    assert info.value.field == reference.value.field == "InvalidCookiesReceived"
    assert info.value.row == reference.value.row  # the file's delta row, not the partition's
    assert (info.value.previous, info.value.current) == (reference.value.previous, reference.value.current)
    assert any(f"delta row {reference.value.row} of the file" in note and "restart.ipsec" in note
               for note in info.value.__notes__)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"what": "bytes"}, ValueError, "what must be one of"),
        ({"what": "rates"}, ValueError, "needs interval"),
        ({"what": "rates", "interval": 0}, ValueError, "interval"),
        ({"interval": 5.0}, ValueError, "applies to what='rates'"),
        ({"stride": 0}, ValueError, "stride"),
        ({"chunk_records": 0}, ValueError, "chunk_records"),
        ({"chunk_records": 2.5}, TypeError, "chunk_records"),
        ({"on_decrease": "never"}, ValueError, "on_decrease"),
        ({"columns": ["file", "nope"]}, ValueError, "unknown column.*nope"),
        ({"kinds": {"Nope": "gauge"}}, ValueError, "unknown field"),
    ],
)
def test_bad_arguments_fail_before_any_work(logs, kwargs, error, match):
    with pytest.raises(error, match=match):
        ipsdask.read_logs(logs, **kwargs)


def test_paths_globs_and_missing_files(logs, tmp_path):
    assert ipsdask.expand_paths(str(tmp_path / "host[01].ipsec")) == logs[:2]
    assert ipsdask.expand_paths([Path(logs[3]), logs[1]]) == [logs[3], logs[1]]
    with pytest.raises(FileNotFoundError, match="no log file matches"):
        ipsdask.read_logs(str(tmp_path / "*.missing"))
    with pytest.raises(FileNotFoundError, match="no such log file"):
        ipsdask.read_logs(str(tmp_path / "absent.ipsec"))
    with pytest.raises(FileNotFoundError, match="is a directory"):
        ipsdask.read_logs(str(tmp_path))
    with pytest.raises(TypeError):
        ipsdask.read_logs(42)


def test_missing_dask_names_the_extra(logs, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.dataframe", None)
    with pytest.raises(ImportError, match=r'pip install "ipsecstats\[dask\]"'):
        ipsdask.read_logs(logs)


def test_use_scheduler_local_names(logs):
    ddf = ipsdask.read_logs(logs, what="deltas")
    expected = ddf.compute(scheduler="sync")
    with ipsdask.use_scheduler("synchronous"):
        assert dask.config.get("scheduler") == "synchronous"
        pd.testing.assert_frame_equal(ddf.compute(), expected)
    with ipsdask.use_scheduler(None):
        pd.testing.assert_frame_equal(ddf.compute(), expected)


def test_write_parquet_dataset_one_file_per_partition_and_exact(logs, tmp_path):
    ddf = ipsdask.read_logs(logs, what="deltas", chunk_records=16)
    out = tmp_path / "dataset"
    names = ipsdask.write_parquet_dataset(ddf, out)
    assert len(names) == ddf.npartitions and all(n.endswith(".parquet") for n in names)
    table = pq.read_table(out)
    assert str(table.schema.field("SoftAssociations").type) == "uint64"
    assert str(table.schema.field("ActiveAcquire").type) == "int64"
    expected = ddf.compute()
    assert [int(v) for v in table.column("SoftAssociations").to_pylist()] == [
        int(v) for v in expected["SoftAssociations"]]
    meta = pq.ParquetFile(out / names[-1]).metadata
    columns = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
    assert "DELTA_BINARY_PACKED" in columns["KeyUpdates"].encodings
    assert columns["KeyUpdates"].compression == "ZSTD"
    with pytest.raises(FileExistsError):
        ipsdask.write_parquet_dataset(ddf, out)


def test_write_parquet_dataset_directory_mode(logs, tmp_path):
    mask = os.umask(0o022)
    try:
        ddf = ipsdask.read_logs(logs[:1])
        ipsdask.write_parquet_dataset(ddf, tmp_path / "new")
        assert oct((tmp_path / "new").stat().st_mode & 0o777) == oct(0o755)  # as mkdir makes it, not 0o700
        (tmp_path / "empty").mkdir(mode=0o750)
        ipsdask.write_parquet_dataset(ddf, tmp_path / "empty")
        assert oct((tmp_path / "empty").stat().st_mode & 0o777) == oct(0o750)  # the empty directory's mode
    finally:
        os.umask(mask)


def test_write_parquet_dataset_leaves_nothing_after_a_failure(logs, tmp_path):
    ddf = ipsdask.read_logs(logs)
    os.remove(logs[-1])
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError):
        ipsdask.write_parquet_dataset(ddf, out)
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".out.")]


# ---- the command line: --scheduler and Parquet datasets ----------------------------------


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    from ipsecstats.cli import main

    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_report_on_a_scheduler_equals_the_local_report(logs, capsys):
    files = logs[2:]
    status, local, _ = run_cli(capsys, "report", *files, "--stride", "2", "--interval", "10", "--format", "json")
    assert status == 0
    for scheduler in ("threads", "synchronous"):
        status, remote, err = run_cli(capsys, "report", *files, "--stride", "2", "--interval", "10",
                                      "--format", "json", "--scheduler", scheduler)
        assert status == 0 and remote == local, err


def test_cli_report_on_a_scheduler_reports_each_bad_file(logs, tmp_path, capsys):
    truncated = tmp_path / "short.ipsec"
    truncated.write_bytes(b"\x01" * 170)
    status, out, err = run_cli(capsys, "report", logs[-1], str(tmp_path / "absent.ipsec"), str(truncated),
                               "--format", "json", "--scheduler", "threads")
    assert status == 1
    assert "absent.ipsec" in err and "short.ipsec: 2 trailing byte(s)" in err and "Traceback" not in err
    assert [r["file"] for r in json.loads(out)["reports"]] == [logs[-1]]  # the good file is still reported
    status, out, err = run_cli(capsys, "report", str(truncated), "--allow-partial", "--scheduler", "threads")
    assert status == 0 and "2 trailing byte(s)" in err


def test_cli_convert_many_files_writes_a_parquet_dataset(logs, tmp_path, capsys):
    out = tmp_path / "dataset"
    status, stdout, err = run_cli(capsys, "convert", *logs, "-o", f"{out}/", "--what", "deltas", "--stride", "2")
    assert status == 0 and stdout == "" and "Parquet file(s)" in err
    table = pq.read_table(out)
    expected = ipsdask.read_logs(logs, what="deltas", stride=2).compute()
    assert [int(v) for v in table.column("SoftAssociations").to_pylist()] == [int(v) for v in expected["SoftAssociations"]]
    assert str(table.schema.field("SoftAssociations").type) == "uint64"
    status, _, err = run_cli(capsys, "convert", *logs, "-o", f"{out}/")
    assert status == 1 and "exists" in err


def test_cli_convert_with_a_scheduler_and_bad_outputs(logs, tmp_path, capsys):
    status, _, err = run_cli(capsys, "convert", logs[-1], "-o", str(tmp_path / "rates"), "--what", "rates",
                             "--interval", "10", "--scheduler", "threads")
    assert status == 0 and len(os.listdir(tmp_path / "rates")) == 1
    status, _, err = run_cli(capsys, "convert", logs[3], logs[4], "-o", str(tmp_path / "out.csv"))
    assert status == 2 and "directory" in err and not (tmp_path / "out.csv").exists()
    status, _, err = run_cli(capsys, "convert", logs[3], logs[4], "-o", f"{tmp_path}/ds/", "--start", "2025-01-01")
    assert status == 2


@pytest.mark.slow
def test_local_cluster_processes_per_file_totals_match_single_machine(logs, capsys):
    """A real distributed cluster of 2 worker processes (no dashboard) computes the same totals."""
    ddf = ipsdask.read_logs(logs, what="deltas", stride=2, chunk_records=9)
    # No dashboard; the scheduler's small HTTP server (health, metrics) still starts: on a free
    # port, not 8787, which another cluster on the machine may hold (that warns, here an error).
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None,
                                  scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
        with distributed.Client(cluster) as client:
            totals = client.compute(ddf.groupby("file", observed=True)[list(COUNTERS)].sum()).result()
            rows = client.compute(ddf.map_partitions(len)).result()
        with ipsdask.use_scheduler(cluster.scheduler_address):
            gauges = ddf.groupby("file", observed=True)["ActiveAcquire"].sum().compute()
        # the command line, pointed at the same cluster by its address
        status, remote_report, err = run_cli(capsys, "report", *logs[2:], "--stride", "2", "--format", "json",
                                             "--scheduler", cluster.scheduler_address)
    status_local, local_report, _ = run_cli(capsys, "report", *logs[2:], "--stride", "2", "--format", "json")
    assert status == status_local == 0 and remote_report == local_report, err
    assert rows.sum() == sum(max(n - 2, 0) for n in SIZES)
    for path, n in zip(logs, SIZES):
        d = ipsecstats.deltas(ipsecstats.decode(Path(path).read_bytes()), stride=2)
        if n <= 2:
            assert path not in totals.index
            continue
        for name in COUNTERS:
            assert int(totals.loc[path, name]) == sum(int(v) for v in d[name]), (path, name)
        assert int(gauges.loc[path]) == sum(int(v) for v in d["ActiveAcquire"])
