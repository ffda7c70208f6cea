"""ipsecstats' own exports as inputs: CSV, JSON Lines and Parquet of records, detected and read back exactly.

Library round trips write with ``_export.write_table`` the way ``convert`` does (the same
``Layout``), read back through detection with small chunks, and compare every byte,
nanosecond and name. End-to-end: ``convert`` then ``report`` equals ``report`` of the
original; deltas, rates and ``.npy`` are refused in one line with exit status 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import EDGES
from test_cli import one_error_line, run
from test_cli_formats import export_csv

from ipsecstats import formats
from ipsecstats._capture import Capture, NameTable, concat
from ipsecstats._export import Layout, write_table
from ipsecstats._generate import generate
from ipsecstats._pipeline import row_columns
from ipsecstats._schema import FIELD_NAMES, RECORD_DTYPE
from ipsecstats._source import ByteSource
from ipsecstats.cli import _capture_columns
from ipsecstats.formats._exported import ExportFormatError

FORMATS = ("csv", "jsonl", "parquet")
START = np.datetime64("2024-06-03T00:00:00", "ns")
ODD_NAMES = ("ROOT\\ISCSIPRT\\0000_0", 'a "quoted", comma', "non-ASCII é 名前 \U0001f600", "line\nbreak", "back\\slash\"",
             "", " spaced ", "car\rriage", "7", "{\"record\":1}", "tab\tend\\")


def edge_records(n: int, seed: int = 1) -> np.ndarray:
    """``n`` records whose values include every uint64 edge (0, 2**63, 2**64 - 1, ...)."""
    rng = np.random.default_rng(seed)
    flat = rng.integers(0, 2**64, size=n * 21, dtype=np.uint64, endpoint=False)
    flat[: len(EDGES)] = np.array(EDGES, dtype=np.uint64)
    flat[-len(EDGES):] = np.array(EDGES, dtype=np.uint64)
    return flat.astype("<u8").view(RECORD_DTYPE)


def write_capture(cap: Capture, path: Path, fmt: str) -> None:
    """``cap`` as ``convert --what records`` writes a capture (WNODE, CIM CSV)."""
    layout = Layout("records", columns=_capture_columns(cap.timestamps is not None, cap.instance_hosts is not None))
    chunks = [(0, cap.records, row_columns(cap, np.arange(len(cap), dtype=np.intp)))] if len(cap) else []
    write_table(chunks, path, fmt, layout, RECORD_DTYPE,
                {"what": "records", "input_format": "wnode", "stride": None})


def write_raw(records: np.ndarray, path: Path, fmt: str, stride: int, start=None, interval=None) -> None:
    """A raw log's records as ``convert --what records`` writes them."""
    layout = Layout("records", stride=stride, interval=interval, start=start)
    write_table([(0, records)], path, fmt, layout, RECORD_DTYPE,
                {"what": "records", "input_format": "raw", "stride": stride})


def read_back(path: Path, chunk_records: int | None = None):
    reader = formats.open_reader(str(path), chunk_records=chunk_records)
    chunks = list(reader)
    return reader, chunks


def odd_capture(n: int = 40, hosts: bool = True, stamps: bool = True) -> Capture:
    """Odd names on two hosts, edge values, ns timestamps with a NaT."""
    table = NameTable()
    codes = []
    for i in range(n):
        name = ODD_NAMES[i % len(ODD_NAMES)]
        codes.append(table.code(name, ("SRV1", "SRV-2")[(i // len(ODD_NAMES)) % 2] if hosts else None))
    ts = None
    if stamps:
        ts = START + np.arange(n, dtype=np.int64) * np.timedelta64(1_000_000_007, "ns")
        ts[3] = np.datetime64("NaT", "ns")
    return Capture(edge_records(n), ts, np.array(codes, np.intp), table.names, 0, table.hosts)


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_export_is_detected(tmp_path: Path, fmt: str):
    cap_path, raw_path = tmp_path / f"cap.{fmt}", tmp_path / f"raw.{fmt}"
    write_capture(odd_capture(), cap_path, fmt)
    write_raw(edge_records(12), raw_path, fmt, stride=3)
    for path in (cap_path, raw_path):
        with ByteSource(str(path)) as src:
            assert formats.detect(src).name == f"ipsecstats-{fmt}"


def test_existing_formats_are_detected_as_before(tmp_path: Path):
    recs = generate(20, instances=2, seed=3)
    (tmp_path / "log.bin").write_bytes(recs.tobytes())
    stamps = [f"2024-06-03T00:00:{s:02d}.0000000+00:00" for s in range(20)]
    (tmp_path / "cim.csv").write_text(export_csv(recs, ["A", "B"] * 10, stamps), encoding="utf-8", newline="")
    (tmp_path / "cim7.csv").write_text(export_csv(recs, ["A", "B"] * 10, stamps, type_line=False), encoding="utf-8",
                                       newline="")
    from ipsecstats import write_wnode

    (tmp_path / "cap.wnode").write_bytes(write_wnode(recs, START + np.zeros(20, "m8[ns]"), ["A", "B"] * 10))
    want = {"log.bin": "raw", "cim.csv": "cim-csv", "cim7.csv": "cim-csv", "cap.wnode": "wnode"}
    for name, fmt in want.items():
        with ByteSource(str(tmp_path / name)) as src:
            assert formats.detect(src).name == fmt, name


def test_sniffs_are_strict():
    assert not formats.by_name("ipsecstats-csv").accept(b"record,instance\n1,2\n")  # no counters
    assert not formats.by_name("ipsecstats-csv").accept(b'"InstanceName","record"\n')
    assert not formats.by_name("ipsecstats-jsonl").accept(b'{"recordx":1}\n')
    assert not formats.by_name("ipsecstats-parquet").accept(b"PAR")


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("chunk", [1, 7, None])
def test_capture_round_trip_is_exact(tmp_path: Path, fmt: str, chunk: int | None):
    cap = odd_capture()
    path = tmp_path / f"cap.{fmt}"
    write_capture(cap, path, fmt)
    reader, chunks = read_back(path, chunk)
    assert reader.stride is None and reader.has_timestamps and reader.has_hosts
    assert all(len(c) <= (chunk or 16384) for c in chunks)
    assert [c.start for c in chunks] == list(np.cumsum([0] + [len(c) for c in chunks[:-1]]))
    back = concat(chunks)
    assert back.records.tobytes() == cap.records.tobytes()
    assert back.timestamps.view(np.int64).tolist() == cap.timestamps.view(np.int64).tolist()
    assert back.instance_names == cap.instance_names and back.instance_hosts == cap.instance_hosts
    assert back.instances.tolist() == cap.instances.tolist()


@pytest.mark.parametrize("fmt", FORMATS)
def test_capture_without_times_or_hosts(tmp_path: Path, fmt: str):
    cap = odd_capture(hosts=False, stamps=False)
    path = tmp_path / f"cap.{fmt}"
    write_capture(cap, path, fmt)
    reader, chunks = read_back(path, 6)
    back = concat(chunks)
    assert reader.stride is None and not reader.has_timestamps and not reader.has_hosts
    assert back.timestamps is None and back.instance_hosts is None
    assert back.records.tobytes() == cap.records.tobytes() and back.instances.tolist() == cap.instances.tolist()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("timed", [False, True])
def test_raw_log_round_trip_is_the_raw_log(tmp_path: Path, fmt: str, stride: int, timed: bool):
    recs = edge_records(3 * 11 + 1)  # an incomplete last sample
    path = tmp_path / f"raw.{fmt}"
    start = START.astype("datetime64[us]").item() if timed else None
    write_raw(recs, path, fmt, stride, start=start, interval=0.25 if timed else None)
    reader, chunks = read_back(path, 2)  # chunks smaller than the stride: the first is held to a whole sample
    assert reader.stride == stride and not reader.has_timestamps
    assert len(chunks[0]) >= stride
    back = concat(chunks)
    assert back.records.tobytes() == recs.tobytes()
    assert back.instance_names == tuple(str(i) for i in range(stride))
    assert back.instance_codes.tolist() == (np.arange(len(recs)) % stride).tolist()
    if timed:
        assert reader.start == START and reader.interval == 0.25
    else:
        assert reader.start is None and reader.interval is None


def test_raw_log_with_fewer_records_than_its_stride(tmp_path: Path):
    recs = edge_records(2)
    write_raw(recs, tmp_path / "raw.parquet", "parquet", stride=4)
    write_raw(recs, tmp_path / "raw.csv", "csv", stride=4)
    assert read_back(tmp_path / "raw.parquet")[0].stride == 4  # the metadata knows
    assert read_back(tmp_path / "raw.csv")[0].stride == 2  # the rows say no more


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_empty_capture(tmp_path: Path, fmt: str):
    empty = Capture(np.empty(0, RECORD_DTYPE), np.empty(0, "datetime64[ns]"), np.empty(0, np.intp), ())
    path = tmp_path / f"empty.{fmt}"
    write_capture(empty, path, fmt)
    reader, chunks = read_back(path)
    assert chunks == [] and reader.stride is None and reader.has_timestamps


def test_an_empty_jsonl_export_is_an_empty_file(tmp_path: Path):
    """JSON Lines has no header: an empty capture's export is an empty file, read as no records."""
    empty = Capture(np.empty(0, RECORD_DTYPE), None, np.empty(0, np.intp), ())
    path = tmp_path / "empty.jsonl"
    write_capture(empty, path, "jsonl")
    assert path.read_bytes() == b""
    assert list(formats.open_reader(str(path))) == []


def test_csv_instance_names_that_look_like_numbers_but_are_not_a_stride(tmp_path: Path):
    recs = edge_records(6)
    cap = Capture(recs, None, np.array([0, 1, 0, 1, 1, 0], np.intp), ("7", "0"))
    write_capture(cap, tmp_path / "cap.csv", "csv")
    reader, chunks = read_back(tmp_path / "cap.csv")
    assert reader.stride is None and concat(chunks).instances.tolist() == cap.instances.tolist()


# --------------------------------------------------------------------------- bad input


def bad(path: Path, text: str, *needles: str) -> ExportFormatError:
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ExportFormatError) as info:
        list(formats.open_reader(str(path), chunk_records=2))
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))
    return info.value


def csv_text(rows: list[list[object]], header: list[str] | None = None) -> str:
    header = header or ["record", "instance", *FIELD_NAMES]
    return "\n".join(",".join(str(c) for c in r) for r in [header, *rows]) + "\n"


def test_csv_errors_name_the_line_and_column(tmp_path: Path):
    p = tmp_path / "x.csv"
    good = [[r, "A", *range(21)] for r in range(3)]
    bad(p, csv_text(good, ["record", "instance", *FIELD_NAMES[:-1]]), "lacks column(s) SoftAssociations")
    rows = [list(r) for r in good]
    rows[2][5] = "1.5"
    err = bad(p, csv_text(rows), "line 4, column 6 (ReceiveFailures)", "'1.5' is not a decimal uint64")
    assert (err.line, err.column, err.field) == (4, 6, "ReceiveFailures")
    rows[2][5] = "-3"
    bad(p, csv_text(rows), "line 4, column 6", "negative", "records are unsigned")
    rows[2][5] = str(2**64)
    bad(p, csv_text(rows), "line 4", "out of the uint64 range")
    rows = [list(r) for r in good]
    rows[1] = rows[1][:-2]
    bad(p, csv_text(rows), "line 3: 21 field(s), the header has 23")
    rows = [list(r) for r in good]
    rows[2][0] = 5
    bad(p, csv_text(rows), "line 4, column 1 (record)", "record 5, but 2 expected")
    bad(p, csv_text([[r + 1, "A", *range(21)] for r in range(3)]), "line 2, column 1 (record): record 1",
        "deltas table", "inputs are records")
    bad(p, csv_text(good, ["record", "instance", "extra", *FIELD_NAMES]), "unexpected column 'extra'")


def test_raw_export_errors(tmp_path: Path):
    p = tmp_path / "raw.csv"
    rows = [[r, r % 2, *range(21)] for r in range(6)]
    rows[4][1] = 1
    bad(p, csv_text(rows), "line 6, column 2 (instance)", "instance 1, but record % stride (2) is 0")
    head = ["record", "time", *FIELD_NAMES]
    times = ["2024-06-03T00:00:00Z", "2024-06-03T00:00:10Z", "2024-06-03T00:00:25Z"]
    bad(p, csv_text([[r, t, *range(21)] for r, t in enumerate(times)], head), "line 4, column 2 (time)",
        "2024-06-03T00:00:25Z, but the first samples' times give 2024-06-03T00:00:20Z")


def test_jsonl_errors_name_the_line_and_key(tmp_path: Path):
    p = tmp_path / "x.jsonl"

    def line(r: int, **change: object) -> str:
        obj: dict[str, object] = {"record": r, "instance": "A", **{f: 1 for f in FIELD_NAMES}}
        obj.update(change)
        return json.dumps(obj, separators=(",", ":")) + "\n"

    bad(p, line(0) + line(1) + line(2, ActiveReceive=-4), "line 3, key 'ActiveReceive'", "negative")
    bad(p, line(0) + line(1, KeyUpdates="7"), "line 2, key 'KeyUpdates'", "not a uint64")
    bad(p, line(0) + line(1, KeyUpdates=2**64), "line 2, key 'KeyUpdates'", "out of the uint64 range")
    swapped = json.loads(line(1))
    swapped = {"record": 1, "ActiveAcquire": 1, **{k: v for k, v in swapped.items() if k != "record"}}
    bad(p, line(0) + json.dumps(swapped, separators=(",", ":")) + "\n", "line 2: its keys differ from line 1's")
    bad(p, line(0) + '{"record":1,\n', "line 2: not a JSON object")
    short = {k: v for k, v in json.loads(line(1)).items() if k != "KeyUpdates"}
    bad(p, line(0) + json.dumps(short, separators=(",", ":")) + "\n", "line 2: its keys differ", "lacks KeyUpdates")
    bad(p, line(0) + line(1)[:-60] + "\n", "line 2: not a JSON object")
    bad(p, line(1) + line(2), "line 1, column 1 (record): record 1", "deltas table")


def test_errors_pickle_with_their_place():
    import pickle

    err = pickle.loads(pickle.dumps(ExportFormatError("x: line 3", line=3, column=2, field="record")))
    assert (str(err), err.line, err.column, err.field) == ("x: line 3", 3, 2, "record")


def test_a_dataset_part_is_refused(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {"file": pa.array(["a.bin"]), "record": pa.array([0], pa.uint64()),
            **{f: pa.array([1], pa.uint64()) for f in FIELD_NAMES}}
    pq.write_table(pa.table(cols), tmp_path / "part.parquet")
    with pytest.raises(ExportFormatError, match="a part of a Parquet dataset"):
        formats.open_reader(str(tmp_path / "part.parquet"))


def test_jsonl_reads_names_with_escapes_and_many_lines(tmp_path: Path):
    cap = odd_capture(3000)
    write_capture(cap, tmp_path / "cap.jsonl", "jsonl")
    back = concat(read_back(tmp_path / "cap.jsonl", 1000)[1])
    assert back.records.tobytes() == cap.records.tobytes() and back.instances.tolist() == cap.instances.tolist()


def test_parquet_errors(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {"record": pa.array([0, 1], pa.uint64()), **{f: pa.array([1, 2], pa.uint64()) for f in FIELD_NAMES}}
    pq.write_table(pa.table({**cols, "KeyUpdates": pa.array([1, None], pa.uint64())}), tmp_path / "null.parquet")
    with pytest.raises(ExportFormatError, match=r"row 2, column 'KeyUpdates': empty \(null\)"):
        list(formats.open_reader(str(tmp_path / "null.parquet")))
    pq.write_table(pa.table({**cols, "ActiveAcquire": pa.array([1, -2], pa.int64())}), tmp_path / "d.parquet")
    with pytest.raises(ExportFormatError, match="'ActiveAcquire' is int64.*a deltas or rates table"):
        formats.open_reader(str(tmp_path / "d.parquet"))
    pq.write_table(pa.table({**cols, "record": pa.array([1, 2], pa.uint64())}), tmp_path / "gap.parquet")
    with pytest.raises(ExportFormatError, match="row 1, column 1 .record.: record 1"):
        formats.open_reader(str(tmp_path / "gap.parquet"))


def test_parquet_from_a_pipe_is_refused():
    data = Path(__file__).read_bytes()[:0] + b"PAR1" + b"\0" * 100

    class Pipe:
        def __init__(self) -> None:
            self.data, self.at = data, 0

        def read(self, n: int) -> bytes:
            out = self.data[self.at: self.at + n]
            self.at += len(out)
            return out

    with pytest.raises(ExportFormatError, match="not a pipe"):
        formats.open_reader(Pipe())


# --------------------------------------------------------------------------- the command line


def report_json(*args: str) -> dict:
    result = run("report", *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["reports"][0]
    for key in ("file", "input_format", "bytes"):  # the file, its format and size
        report.pop(key)
    return report


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("orig")
    paths = {"raw": d / "log.bin", "wnode": d / "cap.wnode"}
    assert run("generate", str(paths["raw"]), "--records", "1203", "--instances", "3", "--interval", "10",
               "--restarts", "1", "--seed", "4", "--wrap").returncode == 0
    result = run("generate", str(paths["wnode"]), "--format", "wnode", "--records", "1200", "--instances", "2",
                 "--interval", "10", "--restarts", "1", "--seed", "4", "--start", "2024-06-03T00:00:00Z")
    assert result.returncode == 0, result.stderr
    return paths


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", ["raw", "raw-timed", "wnode"])
def test_convert_then_report_is_the_original_report(tmp_path: Path, originals: dict[str, Path], fmt: str,
                                                    case: str):
    src = originals["wnode" if case == "wnode" else "raw"]
    options = {"raw": ["--stride", "3"], "raw-timed": ["--stride", "3"], "wnode": []}[case]
    times = ["--interval", "10", "--start", "2024-06-03T00:00:00Z"] if case == "raw-timed" else []
    out = tmp_path / f"x.{fmt}"
    result = run("convert", str(src), "-o", str(out), *options, *times)
    assert result.returncode == 0, result.stderr
    assert report_json(str(out), *times) == report_json(str(src), *options, *times)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("what", ["deltas", "rates"])
def test_deltas_and_rates_are_refused(tmp_path: Path, originals: dict[str, Path], fmt: str, what: str):
    out = tmp_path / f"{what}.{fmt}"
    assert run("convert", str(originals["wnode"]), "-o", str(out), "--what", what).returncode == 0
    result = run("report", str(out))
    assert result.returncode == 1
    one_error_line(result.stderr, str(out), "inputs are records")


def test_npy_is_refused_with_a_way_back(tmp_path: Path, originals: dict[str, Path]):
    out = tmp_path / "x.npy"
    assert run("convert", str(originals["raw"]), "-o", str(out)).returncode == 0
    result = run("report", str(out))
    assert result.returncode == 1
    one_error_line(result.stderr, "not an input", ".tofile(")
    back = tmp_path / "back.bin"
    np.load(out).tofile(back)
    assert back.read_bytes() == originals["raw"].read_bytes()


def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path, originals: dict[str, Path]):
    out = tmp_path / "x.parquet"
    assert run("convert", str(originals["wnode"]), "-o", str(out)).returncode == 0
    code = ("import sys; sys.modules['pyarrow'] = None; sys.modules['pyarrow.parquet'] = None\n"
            "from ipsecstats.cli import main\n"
            f"sys.exit(main(['report', {str(out)!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    one_error_line(result.stderr, 'reading Parquet needs pyarrow: pip install "ipsecstats[arrow]"')


def test_the_csv_export_is_csv_for_other_tools_too(tmp_path: Path):
    """Names with a carriage return are quoted (the chunk gets every field quoted): csv reads them back."""
    import csv

    cap = odd_capture(hosts=False, stamps=False)
    write_capture(cap, tmp_path / "cap.csv", "csv")
    with open(tmp_path / "cap.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["instance"] for r in rows] == cap.instances.tolist()
    assert [int(r["SoftAssociations"]) for r in rows] == cap.records["SoftAssociations"].tolist()


def test_counting_names_are_names_past_the_longest_stride(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Opening holds rows until instance 0 comes round again, at most MAX_STRIDE of them: names
    "0", "1", ... counting up further are a capture's names (memory stays bounded)."""
    from ipsecstats.formats import _exported

    monkeypatch.setattr(_exported, "MAX_STRIDE", 10)
    n = 40
    cap = Capture(edge_records(n), None, np.arange(n, dtype=np.intp), tuple(str(i) for i in range(n)))
    write_capture(cap, tmp_path / "cap.csv", "csv")
    reader, chunks = read_back(tmp_path / "cap.csv", 4)
    assert reader.stride is None and concat(chunks).instances.tolist() == cap.instances.tolist()
    named = Capture(edge_records(n), None, np.array([0, 1, 2] * 13 + [3], np.intp), ("0", "1", "2", "x"))
    write_capture(named, tmp_path / "named.csv", "csv")  # looks raw (stride 3) until its last row
    with pytest.raises(ExportFormatError, match=r"line 41, column 2 \(instance\): 'x' is not an instance number"):
        list(formats.open_reader(str(tmp_path / "named.csv"), chunk_records=4))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_exports_stream_through_one_block(tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch):
    """Memory is one block and one chunk, whatever the file size: the buffer never grows for
    rows shorter than half a block, and every chunk is at most chunk_records rows."""
    from ipsecstats.formats import _export_text

    monkeypatch.setattr(_export_text, "BLOCK_BYTES", 1 << 14)
    cap = odd_capture(3000)
    path = tmp_path / f"cap.{fmt}"
    write_capture(cap, path, fmt)
    assert path.stat().st_size > 40 * (1 << 14)
    reader = formats.open_reader(str(path), chunk_records=100)
    sizes = []
    for chunk in reader:
        sizes.append(len(chunk))
        assert reader._blocks.arr.size == 1 << 14
    assert max(sizes) == 100 and sum(sizes) == 3000


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_export_converted_again_is_the_same_file(tmp_path: Path, originals: dict[str, Path], fmt: str):
    for case, options in (("wnode", []), ("raw", ["--stride", "3"])):
        first, second = tmp_path / f"{case}1.{fmt}", tmp_path / f"{case}2.{fmt}"
        assert run("convert", str(originals[case]), "-o", str(first), *options).returncode == 0
        result = run("convert", str(first), "-o", str(second))
        assert result.returncode == 0, result.stderr
        if fmt == "parquet":  # the metadata names the source file and format
            import pyarrow.parquet as pq

            assert pq.read_table(first).equals(pq.read_table(second))
        else:
            assert first.read_bytes() == second.read_bytes()
