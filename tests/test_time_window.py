"""``--from`` / ``--to``: every command reads only the records with ``from <= t < to``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import concat_rows

from ipsecstats import cli
from ipsecstats._generate import generate
from ipsecstats._source import ByteSource
from ipsecstats._window import WindowReader, first_sample, to_ns
from ipsecstats.formats.raw import RawReader
from ipsecstats.formats.wnode import read_wnode, write_wnode

START = "2024-06-03T00:00:00Z"
T0 = dt.datetime(2024, 6, 3, tzinfo=dt.timezone.utc)


def main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        status = cli.main(list(args))
    except SystemExit as exc:  # argparse's own errors
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def records() -> np.ndarray:
    """600 records: 3 instances every 10 s (200 samples), two restarts."""
    return generate(600, instances=3, interval=10.0, restarts=2, seed=11)


@pytest.fixture(scope="module")
def raw(records: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("window") / "cap.bin"
    path.write_bytes(records.tobytes())
    return path


@pytest.fixture(scope="module")
def wnode(records: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    stamps = np.repeat(np.datetime64("2024-06-03T00:00:00", "ns") + np.arange(200) * np.timedelta64(10, "s"), 3)
    names = [f"ROOT\\ISCSIPRT\\{j:04d}_0" for j in range(3)] * 200
    path = tmp_path_factory.mktemp("window") / "cap.wnode"
    path.write_bytes(write_wnode(records, stamps, names))
    return path


def at(seconds: float) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat()


# --------------------------------------------------------------------------- the reader


def test_first_sample_is_a_ceiling() -> None:
    assert [first_sample(t, 100, 10) for t in (0, 100, 101, 109, 110, 111)] == [0, 0, 1, 1, 1, 2]


@pytest.mark.parametrize("chunk", [1, 4, 7, 600])
@pytest.mark.parametrize("begin, end", [(None, 35), (35, None), (30, 40), (0, 2000), (41, 41), (5000, None),
                                        (None, 0), (-100, 12)])
def test_raw_window_is_whole_samples_for_any_chunking(records: np.ndarray, chunk: int, begin: Any, end: Any) -> None:
    """Sample k at start + 10 s * k: the window keeps samples with begin <= 10 k < end."""
    src = ByteSource(records.tobytes())
    reader = RawReader(src, stride=3, chunk_records=chunk)
    sec = 10**9
    w = WindowReader(reader, None if begin is None else begin * sec, None if end is None else end * sec,
                     start_ns=0, step_ns=10 * sec)
    parts = list(w)
    k = np.arange(200)
    inside = (k * 10 >= (begin if begin is not None else -1)) & (k * 10 < (end if end is not None else 10**9))
    want = records[np.repeat(inside, 3)]
    got = concat_rows([p.records for p in parts]) if parts else records[:0]
    assert got.tobytes() == want.tobytes()
    assert [p.start for p in parts] == list(np.cumsum([0] + [len(p) for p in parts])[:-1])
    if parts:
        codes = np.concatenate([p.instance_codes for p in parts])
        assert (codes == np.arange(codes.shape[0]) % 3).all()  # whole samples: instance 0 first


def test_timed_window_by_each_record_and_nat_outside() -> None:
    from ipsecstats._capture import Capture
    from ipsecstats._pipeline import CaptureReader

    recs = generate(6, instances=1, seed=1)
    ts = np.array([5, 1, -2**63, 3, 9, 4], dtype=np.int64).view("datetime64[ns]")  # unordered, a NaT
    cap = Capture(recs, ts, np.zeros(6, np.intp), ("a",))
    parts = list(WindowReader(CaptureReader(cap), 3, 9))
    got = np.concatenate([p.timestamps.view(np.int64) for p in parts])
    assert got.tolist() == [5, 3, 4]
    assert concat_rows([p.records for p in parts]).tobytes() == recs[[0, 3, 5]].tobytes()
    assert [p.start for p in parts] == [0]
    assert list(WindowReader(CaptureReader(cap), None, None)) and not list(WindowReader(CaptureReader(cap), 10, None))


# --------------------------------------------------------------------------- the commands


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    status, out, err = main(capsys, "report", "--format", "json", *args)
    assert status == 0, err
    doc = json.loads(out)
    assert not doc["errors"]
    return doc["reports"][0]


SAME = ("counters", "gauges", "records", "samples", "restart_count", "start", "end", "duration_seconds", "findings")


def test_raw_report_window_equals_report_of_the_slice(capsys: pytest.CaptureFixture[str], raw: Path,
                                                      records: np.ndarray, tmp_path: Path) -> None:
    """Samples 51..150 (times 510 s .. 1500 s): --from 505 s --to 1505 s."""
    part = tmp_path / "part.bin"
    part.write_bytes(records[51 * 3:151 * 3].tobytes())
    got = _report(capsys, str(raw), "--stride", "3", "--interval", "10", "--start", START,
                  "--from", at(505), "--to", at(1505))
    want = _report(capsys, str(part), "--stride", "3", "--interval", "10", "--start", at(510))
    assert got["window"] == {"from": at(505), "to": at(1505)} and want["window"] is None
    for key in SAME:
        assert got[key] == want[key], key
    assert got["start"] == at(510) and got["end"] == at(1500)


def test_capture_report_window_equals_report_of_the_slice(capsys: pytest.CaptureFixture[str], wnode: Path,
                                                          tmp_path: Path) -> None:
    cap = read_wnode(str(wnode))
    ns = cap.timestamps.view(np.int64)
    keep = (ns >= to_ns(T0 + dt.timedelta(seconds=300))) & (ns < to_ns(T0 + dt.timedelta(seconds=1200)))
    part = tmp_path / "part.wnode"
    part.write_bytes(write_wnode(cap.records[keep], cap.timestamps[keep], list(np.array(cap.instances)[keep])))
    got = _report(capsys, str(wnode), "--from", at(300), "--to", "2024-06-03T02:20:00+02:00")  # 00:20 UTC
    want = _report(capsys, str(part))
    for key in SAME:
        assert got[key] == want[key], key
    assert got["records"] == 270


def test_convert_window_rows_and_times(capsys: pytest.CaptureFixture[str], raw: Path, wnode: Path) -> None:
    status, out, _ = main(capsys, "convert", str(raw), "--stride", "3", "--interval", "10", "--start", START,
                          "--from", at(1000), "--to", at(1030), "--what", "deltas", "-o", "-")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    # samples 100..102 in the window; deltas pair inside it: samples 101 and 102, 3 instances each
    assert [(r["record"], r["instance"], r["time"]) for r in rows] == [
        (str(3 + j), str(j), at(1010).replace("+00:00", "Z")) for j in range(3)] + [
        (str(6 + j), str(j), at(1020).replace("+00:00", "Z")) for j in range(3)]
    status, out2, _ = main(capsys, "convert", str(wnode), "--from", at(1000), "--to", at(1030),
                           "--what", "deltas", "-o", "-")
    assert status == 0
    rows2 = list(csv.DictReader(io.StringIO(out2)))
    fields = [k for k in rows[0] if k not in ("record", "instance", "time")]
    assert [[r[f] for f in fields] for r in rows2] == [[r[f] for f in fields] for r in rows]


def test_info_window(capsys: pytest.CaptureFixture[str], wnode: Path) -> None:
    status, out, _ = main(capsys, "info", str(wnode), "--from", at(100), "--format", "json")
    info = json.loads(out)["files"][0]
    assert status == 0 and info["records"] == 570 and info["start"] == at(100)
    status, out, _ = main(capsys, "info", str(wnode), "--to", at(100))
    assert status == 0 and "records     30 of 168 bytes" in out and "window      before 2024-06-03 00:01:40 UTC" in out


def test_empty_window_reports_nothing(capsys: pytest.CaptureFixture[str], raw: Path) -> None:
    got = _report(capsys, str(raw), "--stride", "3", "--interval", "10", "--start", START, "--from", at(99999))
    assert got["records"] == 0 and got["findings"][0]["rule"] == "finding:too-few-records"


def test_plot_window(capsys: pytest.CaptureFixture[str], wnode: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "w.png"
    status, _, err = main(capsys, "plot", str(wnode), "--from", at(600), "-o", str(out))
    assert status == 0, err
    assert out.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("args, needle", [
    (["report", "{raw}", "--from", at(10)], "a raw log has none, give --start ISO-8601 and --interval SECONDS"),
    (["info", "{raw}", "--stride", "3", "--to", at(10)], "a raw log has none"),
    (["report", "{raw}", "--from", at(10), "--to", at(10)], "is not before --to"),
    (["report", "{raw}", "--interval", "1e-10", "--start", START, "--to", at(10)], "is below 1 ns"),
    (["report", "{raw}", "--from", "yesterday"], "argument --from: expected an ISO 8601 time"),
    (["report", "{raw}", "--from", at(10), "--scheduler", "synchronous"], "a raw log has none, give --start"),
    (["convert", "{raw}", "{raw}", "--from", at(10), "-o", "{tmp}/ds/"], "need --start, which a Parquet dataset does not take"),
])
def test_window_usage_errors(capsys: pytest.CaptureFixture[str], raw: Path, tmp_path: Path,
                             args: list[str], needle: str) -> None:
    status, out, err = main(capsys, *[a.format(raw=raw, tmp=tmp_path) for a in args])
    assert status == cli.EXIT_USAGE and out == ""
    line, = err.strip().splitlines()
    assert needle in line and "Traceback" not in err


def test_cim_csv_without_times_is_a_usage_error(capsys: pytest.CaptureFixture[str], records: np.ndarray,
                                                tmp_path: Path) -> None:
    from ipsecstats._schema import FIELD_NAMES

    path = tmp_path / "plain.csv"
    lines = [",".join(["InstanceName", *FIELD_NAMES])]
    for i, rec in enumerate(records[:6].tolist()):
        lines.append(",".join([f"I{i % 3}", *map(str, rec)]))
    path.write_text("\n".join(lines) + "\n")
    status, _, err = main(capsys, "report", str(path), "--from", at(0))
    assert status == cli.EXIT_USAGE
    assert "this cim-csv input has none: name its time column with --timestamp-column" in err
