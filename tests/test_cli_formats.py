"""The command line on WNODE buffers and CIM CSV exports (``--input-format``, detection).

End-to-end through the installed console script, like ``test_cli.py``; the detection
rules run in-process.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import concat_rows
from test_cli import PNG_MAGIC, one_error_line, run

import ipsecstats
from ipsecstats import FIELDS, read_cim_csv, read_wnode, write_wnode
from ipsecstats._generate import generate
from ipsecstats import formats
from ipsecstats._source import ByteSource
from ipsecstats._stats import scan_path

A, B = "ROOT\\ISCSIPRT\\0000_0", "PCI\\VEN_8086&DEV_10FB&SUBSYS_000C8086\\3&1_0"
START = np.datetime64("2024-06-03T00:00:00", "ns")
TYPE_LINE = "#TYPE Microsoft.Management.Infrastructure.CimInstance#root/wmi/MSiSCSI_MMIPSECStats"
COLUMNS = ["Active", "InstanceName", *sorted(f.name for f in FIELDS), "PSComputerName", "CimClass",
           "CimInstanceProperties", "CimSystemProperties", "Timestamp"]


def export_csv(records: np.ndarray, names: list[str], stamps: list[str], *, type_line: bool = True) -> str:
    """What ``Get-CimInstance ... | Select-Object *, @{n='Timestamp';e={Get-Date -Format o}} | Export-Csv``
    writes: an optional #TYPE line, every value quoted, CRLF, properties by name."""
    lines = [TYPE_LINE] if type_line else []
    lines.append(",".join(f'"{c}"' for c in COLUMNS))
    for rec, name, stamp in zip(records, names, stamps):
        cell = {"Active": "True", "InstanceName": name, "PSComputerName": "",
                "CimClass": "root/wmi:MSiSCSI_MMIPSECStats",
                "CimInstanceProperties": "{Active, AcquireFailures, AcquireHeapSize, ActiveAcquire...}",
                "CimSystemProperties": "Microsoft.Management.Infrastructure.CimSystemProperties",
                "Timestamp": stamp}
        cell.update({f.name: str(int(rec[f.name])) for f in FIELDS})
        lines.append(",".join('"' + cell[c].replace('"', '""') + '"' for c in COLUMNS))
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture(scope="module")
def sample() -> dict:
    """1,200 records, 2 instances every 10 s, one restart: raw, WNODE and the arrays behind them."""
    recs = generate(1200, instances=2, interval=10.0, restarts=1, seed=4)
    stamps = START + np.repeat(np.arange(600), 2) * np.timedelta64(10, "s")
    return {"records": recs, "stamps": stamps, "names": [f"ROOT\\ISCSIPRT\\{j:04d}_0" for j in range(2)] * 600}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, sample: dict) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("formats")
    paths = {"raw": d / "cap.bin", "wnode": d / "cap.wnode"}
    assert run("generate", str(paths["raw"]), "--records", "1200", "--instances", "2", "--interval", "10",
               "--restarts", "1", "--seed", "4").returncode == 0
    result = run("generate", str(paths["wnode"]), "--format", "wnode", "--records", "1200", "--instances", "2",
                 "--interval", "10", "--restarts", "1", "--seed", "4", "--start", "2024-06-03T00:00:00Z")
    assert result.returncode == 0, result.stderr
    # a CIM CSV with irregular sampling (steps of 10 s and 30 s) and the instances in changing order
    recs = sample["records"][:40]
    order = np.concatenate([np.arange(20), np.arange(20, 40).reshape(10, 2)[:, ::-1].reshape(-1)])
    seconds = np.repeat(np.cumsum([0] + [10, 30] * 9 + [10]), 2)[order]
    names = [A if i % 2 == 0 else B for i in order]
    stamps = [f"2024-06-03T00:{s // 60:02d}:{s % 60:02d}.0000000+00:00" for s in seconds.tolist()]
    paths["cim"] = d / "cim.csv"
    paths["cim"].write_text(export_csv(recs[order], names, stamps), encoding="utf-8", newline="")
    paths["cim_untyped"] = d / "cim-pwsh7.csv"
    paths["cim_untyped"].write_text(export_csv(recs[order], names, stamps, type_line=False), encoding="utf-8",
                                    newline="")
    return paths


def report_json(*args: str) -> dict:
    result = run("report", *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["reports"][0]


# --------------------------------------------------------------------------- generate --format wnode


def test_generate_wnode_is_the_raw_log_with_times_and_names(files: dict[str, Path], sample: dict) -> None:
    cap = read_wnode(files["wnode"])
    assert cap.records.tobytes() == files["raw"].read_bytes() == sample["records"].tobytes()
    assert np.array_equal(cap.timestamps, sample["stamps"])
    assert cap.instances.tolist() == sample["names"]
    assert cap.instance_names == ("ROOT\\ISCSIPRT\\0000_0", "ROOT\\ISCSIPRT\\0001_0")


def test_generate_wnode_rejects_an_interval_finer_than_a_filetime_tick(tmp_path: Path) -> None:
    result = run("generate", str(tmp_path / "x.wnode"), "--format", "wnode", "--records", "4", "--interval", "1e-8")
    assert result.returncode == 2
    one_error_line(result.stderr, "100 ns")
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- report


def test_report_on_wnode_equals_the_raw_report_with_stride_and_interval(files: dict[str, Path]) -> None:
    raw = report_json(str(files["raw"]), "--stride", "2", "--interval", "10", "--start", "2024-06-03T00:00:00Z")
    wnode = report_json(str(files["wnode"]))  # detected; times and instances from the file
    assert wnode["input_format"] == "wnode" and raw["input_format"] == "raw"
    assert wnode["instance_names"] == ["ROOT\\ISCSIPRT\\0000_0", "ROOT\\ISCSIPRT\\0001_0"]
    for key in ("records", "instances", "samples", "start", "end", "duration_seconds", "gauges", "restart_events"):
        assert wnode[key] == raw[key], key
    for name, c in raw["counters"].items():
        w = wnode["counters"][name]
        assert (w["increase"], w["restarts"], w["wraps"]) == (c["increase"], c["restarts"], c["wraps"])
        assert math.isclose(w["mean_rate"], c["mean_rate"], rel_tol=1e-12)
        assert math.isclose(w["peak_rate"], c["peak_rate"], rel_tol=1e-12)
    [event] = wnode["restarts"]
    assert event["instance"] == "ROOT\\ISCSIPRT\\0001_0" and event["record"] == raw["restarts"][0]["record"]
    assert event["time"] == raw["restarts"][0]["time"]
    text = run("report", str(files["wnode"]))
    assert text.returncode == 0 and text.stderr == ""
    assert "from WNODE buffers" in text.stdout and "instance ROOT\\ISCSIPRT\\0001_0 at record" in text.stdout


def test_report_on_cim_csv_uses_real_time_steps(files: dict[str, Path], sample: dict) -> None:
    rep = report_json(str(files["cim"]), "--timestamp-column", "Timestamp")
    cap = read_cim_csv(files["cim"], timestamp_column="Timestamp")
    assert rep["input_format"] == "cim-csv" and rep["instance_names"] == [A, B]
    assert rep["records"] == 40 and rep["samples"] == 20
    assert rep["duration_seconds"] == 10 * 10 + 30 * 9
    deltas = cap.deltas()
    for name in ("TotalGetSPI", "OakleyQuickMode"):
        increase = sum(int(d[name].astype(object).sum()) for d in deltas.values())
        assert rep["counters"][name]["increase"] == increase
        # mean: the increase over the seconds the deltas span per instance (370 s)
        assert math.isclose(rep["counters"][name]["mean_rate"], increase / 370, rel_tol=1e-12)
        # peak: the highest per-sample sum of per-second rates, each by its own time step
        rates = cap.rates()
        assert math.isclose(rep["counters"][name]["peak_rate"],
                            float(max(ra + rb for ra, rb in zip(rates[A][name], rates[B][name]))), rel_tol=1e-12)
    untyped = report_json(str(files["cim_untyped"]), "--timestamp-column", "Timestamp")
    assert untyped["counters"] == rep["counters"]


def test_cim_csv_without_timestamps_takes_interval(files: dict[str, Path]) -> None:
    untimed = files["cim"].with_name("cim-untimed.csv")  # a column named Timestamp is used by itself: rename it
    untimed.write_bytes(files["cim"].read_bytes().replace(b'"Timestamp"', b'"When"', 1))
    rep = report_json(str(untimed), "--interval", "10")
    assert rep["start"] is None and rep["rate_unit"] == "per second"
    result = run("convert", str(untimed), "-o", "-", "--what", "rates")
    assert result.returncode == 2
    one_error_line(result.stderr, "--interval", "--timestamp-column")


# --------------------------------------------------------------------------- convert


def _pair_deltas(cap: ipsecstats.Capture) -> tuple[np.ndarray, np.ndarray]:
    """Independently: each record minus the previous record of its instance, in source order."""
    last: dict[str, int] = {}
    later, earlier = [], []
    for i, name in enumerate(cap.instances.tolist()):
        if name in last:
            earlier.append(last[name])
            later.append(i)
        last[name] = i
    return np.array(earlier, dtype=np.intp), np.array(later, dtype=np.intp)


def test_convert_capture_deltas_to_csv_has_timestamp_and_instance(files: dict[str, Path]) -> None:
    result = run("convert", str(files["cim"]), "-o", "-", "--what", "deltas", "--timestamp-column", "Timestamp")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    cap = read_cim_csv(files["cim"], timestamp_column="Timestamp")
    earlier, later = _pair_deltas(cap)
    assert list(rows[0])[:4] == ["record", "timestamp", "host", "instance"]  # a PSComputerName column, empty here
    assert {r["host"] for r in rows} == {""}
    assert [int(r["record"]) for r in rows] == later.tolist()
    assert [r["instance"] for r in rows] == cap.instances[later].tolist()
    assert [r["timestamp"] for r in rows] == [np.datetime_as_string(t, unit="s", timezone="UTC")
                                             for t in cap.timestamps[later]]
    per_instance = cap.deltas()
    seen = {A: 0, B: 0}
    for r in rows:
        expected = per_instance[r["instance"]][seen[r["instance"]]]
        seen[r["instance"]] += 1
        assert [int(r[f.name]) for f in FIELDS] == [int(expected[f.name]) for f in FIELDS]


def test_convert_wnode_rates_jsonl_parquet_and_npy(files: dict[str, Path], tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    cap = read_wnode(files["wnode"])
    earlier, later = _pair_deltas(cap)
    result = run("convert", str(files["wnode"]), "-o", str(tmp_path / "r.jsonl"), "--what", "rates")
    assert result.returncode == 0 and result.stderr == ""
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(lines) == later.shape[0] and lines[0]["timestamp"] == "2024-06-03T00:00:10Z"
    name = "OakleyQuickMode"
    got = np.array([row[name] for row in lines], dtype=float)
    step = (cap.timestamps[later] - cap.timestamps[earlier]) / np.timedelta64(1, "s")
    rates = {n: r[name] for n, r in cap.rates().items()}
    seen = {n: 0 for n in rates}
    for k, row in enumerate(lines):
        assert step[k] == 10.0 and got[k] == rates[row["instance"]][seen[row["instance"]]]
        seen[row["instance"]] += 1

    assert run("convert", str(files["wnode"]), "-o", str(tmp_path / "r.parquet")).returncode == 0
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.column_names[:3] == ["record", "timestamp", "instance"]
    assert str(table.schema.field("timestamp").type) == "timestamp[ns, tz=UTC]"
    assert table.column("instance").to_pylist() == cap.instances.tolist()
    assert table.column("TotalGetSPI").to_pylist() == cap.records["TotalGetSPI"].tolist()

    result = run("convert", str(files["wnode"]), "-o", str(tmp_path / "d.npy"), "--what", "deltas")
    assert result.returncode == 0
    assert ".npy holds the deltas array only" in result.stderr and "timestamp and instance" in result.stderr
    d = np.load(tmp_path / "d.npy")
    per_instance = cap.deltas()
    seen = {n: 0 for n in per_instance}
    rows = []
    for n in cap.instances[later].tolist():
        rows.append(per_instance[n][seen[n]: seen[n] + 1])
        seen[n] += 1
    expected = concat_rows(rows)
    assert d.dtype == expected.dtype and d.tobytes() == expected.tobytes()


# --------------------------------------------------------------------------- plot and info


def test_plot_and_info_on_captures(files: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = run("plot", str(files["wnode"]), "-o", str(tmp_path / "w.png"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "w.png").read_bytes()[:8] == PNG_MAGIC
    result = run("plot", str(files["cim"]), "--timestamp-column", "Timestamp", "-o", str(tmp_path / "c.png"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC
    result = run("info", str(files["cim"]), "--input-format", "cim-csv", "--timestamp-column", "Timestamp",
                 "--format", "json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)["files"][0]
    assert info["instance_names"] == [A, B] and info["records"] == 40 and info["duration_seconds"] == 370


# --------------------------------------------------------------------------- detection and errors


def detect_format(path: str) -> str:
    with ByteSource(path) as src:
        return formats.detect(src).name


def test_detection_in_process(files: dict[str, Path], tmp_path: Path) -> None:
    assert detect_format(str(files["raw"])) == "raw"
    assert detect_format(str(files["wnode"])) == "wnode"
    assert detect_format(str(files["cim"])) == "cim-csv"
    assert detect_format(str(files["cim_untyped"])) == "cim-csv"
    bom16 = tmp_path / "u16.csv"
    bom16.write_bytes(files["cim"].read_text().encode("utf-16"))
    assert detect_format(str(bom16)) == "cim-csv"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert detect_format(str(empty)) == "raw"
    control = tmp_path / "ones"
    control.write_bytes(b"\x01" * 170)  # binary (control bytes): raw, then a partial record
    assert detect_format(str(control)) == "raw"


def test_garbage_text_is_one_line_and_exit_1(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello,world\r\n1,2\r\n")
    result = run("report", str(junk))
    assert result.returncode == 1 and result.stdout == ""
    one_error_line(result.stderr, "notes.txt", "cannot tell the input format", "--input-format")


def test_wnode_of_another_guid_of_whole_record_size_is_ambiguous(tmp_path: Path) -> None:
    buf = bytearray(write_wnode(generate(2, instances=2), START + np.zeros(2, "m8[ns]"), [A, B]))
    buf[24:40] = bytes(range(16))  # another GUID
    pad = (-len(buf)) % 168
    struct_size = len(buf) + pad
    buf[0:4] = struct_size.to_bytes(4, "little")
    buf += bytes(pad)
    path = tmp_path / "other.bin"
    path.write_bytes(bytes(buf))
    result = run("convert", str(path), "-o", str(tmp_path / "x.csv"))
    assert result.returncode == 1
    one_error_line(result.stderr, "other.bin", "cannot tell the input format", "--input-format")
    assert not (tmp_path / "x.csv").exists()
    forced = run("info", str(path), "--input-format", "raw", "--format", "json")
    assert forced.returncode == 0 and json.loads(forced.stdout)["files"][0]["records"] == len(buf) // 168


def test_stride_and_interval_with_a_capture_are_usage_errors(files: dict[str, Path]) -> None:
    result = run("report", str(files["wnode"]), "--stride", "2")
    assert result.returncode == 2
    one_error_line(result.stderr, "--stride does not apply to wnode input")
    result = run("plot", str(files["cim"]), "--input-format", "cim-csv", "--stride", "2", "-o", "never.png")
    assert result.returncode == 2
    one_error_line(result.stderr, "--stride does not apply to cim-csv input")
    result = run("report", str(files["wnode"]), "--interval", "10")
    assert result.returncode == 2
    one_error_line(result.stderr, "--interval and --start do not apply")


def test_plot_without_matplotlib_names_the_extra_after_the_usage_errors(files: dict[str, Path], tmp_path: Path) -> None:
    """A wrong option is a usage error (2) even where matplotlib is missing; then the missing
    extra is one line (1), before any work, and no image is written."""
    out = tmp_path / "never.png"

    def plot(*args: str) -> subprocess.CompletedProcess[str]:
        code = ("import sys; sys.modules['matplotlib'] = None\nfrom ipsecstats.cli import main\n"
                f"sys.exit(main(['plot', *{list(args)!r}, '-o', {str(out)!r}]))")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    result = plot(str(files["wnode"]), "--stride", "2")
    assert result.returncode == 2
    one_error_line(result.stderr, "--stride does not apply to wnode input")
    result = plot(str(files["wnode"]))
    assert result.returncode == 1
    one_error_line(result.stderr, 'plots need matplotlib: pip install "ipsecstats[plot]"')
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_forced_format_errors_name_the_file(files: dict[str, Path]) -> None:
    result = run("report", str(files["raw"]), "--input-format", "wnode")
    assert result.returncode == 1
    one_error_line(result.stderr, "cap.bin", "BufferSize")
    result = run("report", str(files["raw"]), "--input-format", "cim-csv")
    assert result.returncode == 1
    one_error_line(result.stderr, "cap.bin")


def test_counter_reset_error_names_record_instance_and_time(files: dict[str, Path]) -> None:
    result = run("report", str(files["wnode"]), "--on-decrease", "raise")
    assert result.returncode == 1
    one_error_line(result.stderr, "cap.wnode: counter", "went down at record 817 (instance ROOT\\ISCSIPRT\\0001_0, "
                   "2024-06-03T01:08:00", "--on-decrease")


def test_deltas_pair_each_record_with_the_previous_of_its_name() -> None:
    from ipsecstats._pipeline import CaptureReader, iter_delta_chunks

    codes = np.array([0, 1, 1, 0, 2, 1, 0], dtype=np.intp)
    records = generate(7, instances=1)
    cap = ipsecstats.Capture(records, None, codes, ("a", "b", "c"))
    (d,) = iter_delta_chunks(CaptureReader(cap))
    assert d.later.tolist() == [2, 3, 5, 6]
    assert d.sample.tolist() == [0, 0, 1, 2, 2, 3, 4]  # without times, a poll ends where the code does not rise
    earlier = [1, 0, 2, 3]
    u = records.view("<u8").reshape(7, 21)
    assert (d.earlier_values(np.arange(4)) == u[earlier]).all()


def test_dask_map_files_describes_errors_like_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("dask")
    from ipsecstats import _errors, dask
    from ipsecstats.cli import main

    values = np.cumsum(np.ones((40, 21), dtype=np.uint64), axis=0, dtype=np.uint64)
    values[29:, 9] -= np.uint64(20)  # record 29 is instance 1 of a 2-instance log
    fall = tmp_path / "fall.bin"
    fall.write_bytes(values.astype("<u8").tobytes())
    outcome, = dask.map_files(scan_path, [str(fall)], scheduler="synchronous", stride=2,
                              on_decrease="raise")
    assert isinstance(outcome.error, ipsecstats.CounterResetError)  # the exception itself, not its text
    lines = []
    for extra in ([], ["--scheduler", "synchronous"]):
        assert main(["report", str(fall), "--stride", "2", "--on-decrease", "raise", *extra]) == 1
        lines.append(one_error_line(capsys.readouterr().err, "fall.bin", "record 29 (instance 1)"))
    assert lines[0] == lines[1]
    cut = tmp_path / "cut.bin"
    cut.write_bytes(bytes(170))
    exc = ipsecstats.TruncatedRecordError(1, 2, 168, str(cut))
    assert "pass --allow-partial" in _errors.describe_error(str(cut), exc)
