"""Exports: every uint64 survives every format exactly; output files are all or nothing."""

from __future__ import annotations

import csv
import datetime as dt
import errno
import io
import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ipsecstats
from ipsecstats._deltas import delta_dtype, rate_dtype, resolve_kinds
from ipsecstats._export import (
    FORMATS,
    Layout,
    _npy_header,
    atomic_output,
    format_for,
    fsync_directory,
    write_table,
)

from conftest import records_from

EXACT = (0, 2**53 + 1, 2**63, 2**64 - 1)
KINDS = resolve_kinds(None)


def edge_records() -> np.ndarray:
    """Every field passes through 0, 2**53 + 1, 2**63 and 2**64 - 1 (and back)."""
    rows = [[v] * 21 for v in EXACT] + [[v] * 21 for v in reversed(EXACT)]
    return records_from(rows)


def read_back(path: Path, fmt: str) -> list[dict]:
    """Rows as dicts of Python values, each format read by its own reader."""
    if fmt == "csv":
        with open(path, newline="") as f:
            return [dict(r) for r in csv.DictReader(f)]
    if fmt == "jsonl":
        with open(path) as f:
            return [json.loads(line) for line in f]
    if fmt == "npy":
        arr = np.load(path)
        return [{name: arr[name][i].item() for name in arr.dtype.names} for i in range(arr.shape[0])]
    return pq.read_table(path).to_pylist()


def as_int(v: object) -> int:
    return int(v)  # type: ignore[call-overload]  # csv gives str: int("18446744073709551615") is exact


@pytest.mark.parametrize("fmt", FORMATS)
def test_records_exact_in_every_format(tmp_path: Path, fmt: str) -> None:
    recs = edge_records()
    out = tmp_path / f"records.{'parquet' if fmt == 'parquet' else fmt}"
    write_table([(0, recs[:3]), (3, recs[3:])], out, fmt, Layout("records"), ipsecstats.RECORD_DTYPE)
    rows = read_back(out, fmt)
    assert len(rows) == recs.shape[0]
    for name in ipsecstats.RECORD_DTYPE.names:
        assert [as_int(r[name]) for r in rows] == [int(v) for v in recs[name]], name
    if fmt != "npy":
        assert [as_int(r["record"]) for r in rows] == list(range(recs.shape[0]))


@pytest.mark.parametrize("fmt", FORMATS)
def test_deltas_and_rates_exact_in_every_format(tmp_path: Path, fmt: str) -> None:
    recs = edge_records()
    d = ipsecstats.deltas(recs, on_decrease="wrap", stride=2)
    r = ipsecstats.rates(recs, on_decrease="wrap", stride=2, interval=3.0)
    layout = Layout("deltas", stride=2, first_record=2)
    write_table([(0, d)], tmp_path / f"d.{fmt}", fmt, layout, delta_dtype(KINDS))
    rows = read_back(tmp_path / f"d.{fmt}", fmt)
    for name in d.dtype.names:
        assert [as_int(x[name]) for x in rows] == [int(v) for v in d[name]], name  # gauges signed, counters unsigned
    if fmt != "npy":
        assert [as_int(x["record"]) for x in rows] == list(range(2, recs.shape[0]))
        assert [as_int(x["instance"]) for x in rows] == [i % 2 for i in range(2, recs.shape[0])]
    write_table([(0, r)], tmp_path / f"r.{fmt}", fmt, Layout("rates", stride=2, first_record=2), rate_dtype(KINDS))
    rows = read_back(tmp_path / f"r.{fmt}", fmt)
    for name in r.dtype.names:
        assert [float(x[name]) for x in rows] == r[name].tolist(), name  # shortest repr round-trips


def test_nan_rates_are_empty_in_csv_and_null_in_json(tmp_path: Path) -> None:
    rates = np.zeros(2, dtype=rate_dtype(KINDS))
    rates["OakleyMainMode"] = [np.nan, 0.1]
    for fmt in ("csv", "jsonl"):
        write_table([(0, rates)], tmp_path / f"n.{fmt}", fmt, Layout("rates"), rates.dtype)
    assert next(csv.DictReader(io.StringIO((tmp_path / "n.csv").read_text())))["OakleyMainMode"] == ""
    lines = (tmp_path / "n.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["OakleyMainMode"] is None
    assert json.loads(lines[1])["OakleyMainMode"] == 0.1


def test_parquet_keeps_uint64_with_delta_encoding_and_zstd(tmp_path: Path) -> None:
    recs = records_from(np.cumsum(np.ones((5000, 21), dtype=np.uint64), axis=0, dtype=np.uint64))
    out = tmp_path / "r.parquet"
    write_table([(0, recs[:2500]), (2500, recs[2500:])], out, "parquet", Layout("records"), ipsecstats.RECORD_DTYPE,
                {"what": "records", "stride": 1})
    f = pq.ParquetFile(out)
    assert f.schema_arrow.field("OakleyMainMode").type == pa.uint64()
    assert f.metadata.num_row_groups == 2 and f.metadata.num_rows == 5000
    column = f.metadata.row_group(0).column(f.schema_arrow.get_field_index("OakleyMainMode"))
    assert "DELTA_BINARY_PACKED" in column.encodings and "PLAIN_DICTIONARY" not in column.encodings
    assert column.compression == "ZSTD"
    assert json.loads(f.schema_arrow.metadata[b"ipsecstats"]) == {"what": "records", "stride": 1}
    # a monotonic counter of 5,000 rows packs into very little
    assert column.total_compressed_size < 2000


def test_time_column(tmp_path: Path) -> None:
    recs = edge_records()
    start = dt.datetime(2024, 6, 3, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))  # 06:00 UTC
    layout = Layout("records", stride=2, interval=30.0, start=start)
    write_table([(0, recs)], tmp_path / "t.csv", "csv", layout, ipsecstats.RECORD_DTYPE)
    times = [r["time"] for r in csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text()))]
    assert times[:4] == ["2024-06-03T06:00:00Z", "2024-06-03T06:00:00Z", "2024-06-03T06:00:30Z", "2024-06-03T06:00:30Z"]
    naive = Layout("records", interval=0.25, start=dt.datetime(2024, 6, 3))  # no offset: UTC
    write_table([(0, recs[:2])], tmp_path / "n.jsonl", "jsonl", naive, ipsecstats.RECORD_DTYPE)
    assert [json.loads(x)["time"] for x in (tmp_path / "n.jsonl").read_text().splitlines()] == ["2024-06-03T00:00:00.000Z",
                                                                          "2024-06-03T00:00:00.250Z"]
    write_table([(0, recs)], tmp_path / "t.parquet", "parquet", layout, ipsecstats.RECORD_DTYPE)
    column = pq.read_table(tmp_path / "t.parquet").column("time")
    assert column.type == pa.timestamp("ns", tz="UTC")
    assert column[2].as_py() == dt.datetime(2024, 6, 3, 6, 0, 30, tzinfo=dt.timezone.utc)


def test_empty_tables_still_have_headers(tmp_path: Path) -> None:
    for fmt in FORMATS:
        write_table([], tmp_path / f"e.{fmt}", fmt, Layout("records"), ipsecstats.RECORD_DTYPE)
    assert (tmp_path / "e.csv").read_text().startswith("record,ActiveAcquire,")
    assert (tmp_path / "e.jsonl").read_text() == ""
    empty = np.load(tmp_path / "e.npy")
    assert empty.shape == (0,) and empty.dtype == ipsecstats.RECORD_DTYPE
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0


def test_npy_header_has_a_fixed_size_and_loads_mapped(tmp_path: Path) -> None:
    dtype = delta_dtype(KINDS)
    assert len(_npy_header(dtype, 0)) == len(_npy_header(dtype, 10**19)) and len(_npy_header(dtype, 0)) % 64 == 0
    d = ipsecstats.deltas(edge_records(), on_decrease="wrap")
    write_table([(0, d[:3]), (3, d[3:])], tmp_path / "d.npy", "npy", Layout("deltas"), dtype)
    mapped = np.load(tmp_path / "d.npy", mmap_mode="r")
    assert mapped.dtype == dtype and mapped.tobytes() == d.tobytes()


def test_format_for() -> None:
    assert [format_for(p) for p in ("a.csv", "a.JSONL", "a.ndjson", "a.npy", "a.parquet", "a.pq", "-")] == [
        "csv", "jsonl", "jsonl", "npy", "parquet", "parquet", "csv"]
    assert format_for("a.txt", "jsonl") == "jsonl"
    with pytest.raises(ValueError, match="cannot tell the output format from 'a.txt'"):
        format_for("a.txt")
    with pytest.raises(ValueError, match="unknown format 'xls'"):
        format_for("a.csv", "xls")


def test_stdout_takes_text_formats_only(capsys: pytest.CaptureFixture[str]) -> None:
    recs = edge_records()
    write_table([(0, recs[:2])], "-", "csv", Layout("records"), ipsecstats.RECORD_DTYPE)
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["SoftAssociations"]) for r in rows] == [0, 2**53 + 1]
    with pytest.raises(ValueError, match="npy cannot be written to standard output"):
        write_table([(0, recs)], "-", "npy", Layout("records"), ipsecstats.RECORD_DTYPE)


def failing_chunks(exc: BaseException):
    yield 0, edge_records()
    raise exc


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("exc", [ValueError("bad data"), KeyboardInterrupt()])
def test_a_failure_leaves_no_file_behind(tmp_path: Path, fmt: str, exc: BaseException) -> None:
    out = tmp_path / f"out.{fmt}"
    with pytest.raises(type(exc)):
        write_table(failing_chunks(exc), out, fmt, Layout("records"), ipsecstats.RECORD_DTYPE)
    assert os.listdir(tmp_path) == []
    out.write_bytes(b"old content")
    with pytest.raises(type(exc)):
        write_table(failing_chunks(exc), out, fmt, Layout("records"), ipsecstats.RECORD_DTYPE)
    assert os.listdir(tmp_path) == [out.name] and out.read_bytes() == b"old content"


def test_parquet_without_pyarrow_names_the_arrow_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    with pytest.raises(ImportError, match=r'pip install "ipsecstats\[arrow\]"'):
        write_table([(0, edge_records())], tmp_path / "x.parquet", "parquet", Layout("records"),
                    ipsecstats.RECORD_DTYPE)
    assert os.listdir(tmp_path) == []


def test_atomic_output(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    with atomic_output(target) as f:
        f.write(b"abc")
        assert not target.exists()  # only the temporary file so far
    assert target.read_bytes() == b"abc"
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    with pytest.raises(OSError, match="cannot write") as info:
        with atomic_output(tmp_path / "missing" / "x.bin"):
            pass
    assert info.value.filename == str(tmp_path / "missing" / "x.bin")
    with pytest.raises(IsADirectoryError):
        with atomic_output(tmp_path):
            pass


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444, 0o755])
def test_atomic_output_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "x.csv"
    target.write_bytes(b"old")
    target.chmod(mode)
    with atomic_output(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"
    assert oct(target.stat().st_mode & 0o7777) == oct(mode)


def test_atomic_output_syncs_the_file_then_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        synced.append("dir" if stat.S_ISDIR(st.st_mode) else "file")
        if synced[-1] == "dir":
            assert (st.st_dev, st.st_ino) == (tmp_path.stat().st_dev, tmp_path.stat().st_ino)
            assert (tmp_path / "x.bin").read_bytes() == b"abc"  # after the rename
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with atomic_output(tmp_path / "x.bin") as f:
        f.write(b"abc")
    assert synced == (["file", "dir"] if os.name == "posix" else ["file"])


def failing_fsync(code: int):
    def fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    return fsync


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOTSUP])
def test_fsync_directory_ignores_file_systems_that_cannot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          code: int) -> None:
    monkeypatch.setattr(os, "fsync", failing_fsync(code))
    fsync_directory(tmp_path)  # no error
    fsync_directory(tmp_path / "missing")  # cannot be opened: nothing to sync


@pytest.mark.skipif(os.name != "posix", reason="directories are synced on POSIX only")
def test_fsync_directory_reports_a_real_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "fsync", failing_fsync(errno.EIO))
    with pytest.raises(OSError) as info:
        fsync_directory(tmp_path)
    assert info.value.errno == errno.EIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_atomic_output_refuses_a_symlink_and_leaves_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    real.write_bytes(b"old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with pytest.raises(OSError, match="is a symbolic link"):
        with atomic_output(link) as f:
            f.write(b"new")
    assert link.is_symlink() and real.read_bytes() == b"old"
