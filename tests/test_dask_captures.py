"""read_logs, convert and --scheduler on captures: WNODE and CIM CSV files, one partition each."""

from __future__ import annotations

import datetime as dt
import json
import re
import warnings
import zoneinfo
from pathlib import Path

import distributed
import numpy as np
import pyarrow.parquet as pq
import pytest
from test_cimcsv import COLUMNS, export_csv
from test_cli import run
from test_pdhcsv_zone import every, zone_log
from test_pipeline import irregular_capture

import ipsecstats
from ipsecstats import dask as ipsdask
from ipsecstats._capture import Capture
from ipsecstats._generate import generate
from ipsecstats._schema import COUNTERS, FIELD_NAMES
from ipsecstats.formats.pdhcsv import PdhCsvWarning


def cim_csv(cap: Capture, *, stamped: bool) -> str:
    """``cap`` as Export-Csv writes it, with a Timestamp column when ``stamped``."""
    rows = list(zip(cap.instances.tolist(), cap.records.view("<u8").reshape(-1, 21).tolist()))
    if not stamped:
        return export_csv(rows)
    texts = np.datetime_as_string(cap.timestamps, unit="s")
    return export_csv(rows, columns=COLUMNS + ["Timestamp"], extra={"Timestamp": lambda k: texts[k] + "Z"})


@pytest.fixture
def captures(tmp_path: Path) -> list[tuple[str, Capture]]:
    """Two WNODE files and two CIM CSV files (one with times), instances coming and going."""
    out = []
    for i in range(4):
        cap = irregular_capture(n=300 + 90 * i, seed=i)
        if i < 2:
            path = tmp_path / f"host{i}.wnode"
            path.write_bytes(ipsecstats.write_wnode(cap.records, cap.timestamps, cap.instances))
        else:
            path = tmp_path / f"host{i}.csv"
            path.write_text(cim_csv(cap, stamped=i == 2), newline="")
            if i == 3:
                cap = Capture.from_instances(cap.records, None, cap.instances)
        out.append((str(path), cap))
    return out


def rows_by_instance(frame, path: str) -> dict[str, object]:
    mine = frame[frame["file"] == path]
    return {name: group for name, group in mine.groupby("instance", sort=False)}


@pytest.mark.parametrize("on_decrease", ["auto", "reset", "wrap"])
def test_deltas_of_every_file_equal_the_per_instance_deltas(captures, on_decrease):
    frame = ipsdask.read_logs([p for p, _ in captures], what="deltas", on_decrease=on_decrease).compute()
    assert frame.columns.tolist() == ["file", "record", "timestamp", "instance", *FIELD_NAMES]
    for path, cap in captures:
        expected = cap.deltas(on_decrease=on_decrease)
        got = rows_by_instance(frame, path)
        assert sorted(got) == sorted(name for name in expected if len(expected[name]))
        for name, group in got.items():
            assert group["record"].is_monotonic_increasing
            for field in FIELD_NAMES:
                want = expected[name][field]
                want = want.astype(want.dtype.newbyteorder("="))  # the deltas rows are '<u8'/'<i8'; columns native
                assert group[field].dtype == want.dtype
                assert group[field].to_numpy().tobytes() == want.tobytes(), (path, name, field)
        later = frame.loc[frame["file"] == path, "record"].to_numpy()
        assert (cap.instances[later] == frame.loc[frame["file"] == path, "instance"].to_numpy(dtype=object)).all()
        if cap.timestamps is None:  # a CSV column named Timestamp gives times by itself
            assert frame.loc[frame["file"] == path, "timestamp"].isna().all()
        else:
            stamps = frame.loc[frame["file"] == path, "timestamp"].dt.tz_convert(None).to_numpy()
            assert (stamps == cap.timestamps[later]).all()


def test_records_are_every_record_in_order(captures):
    frame = ipsdask.read_logs([p for p, _ in captures]).compute()
    assert len(frame) == sum(len(c) for _, c in captures)
    for path, cap in captures:
        mine = frame[frame["file"] == path]
        assert mine["record"].tolist() == list(range(len(cap)))
        values = np.stack([mine[name].to_numpy() for name in FIELD_NAMES], axis=1)
        assert values.astype("<u8").tobytes() == cap.records.tobytes()


def test_rates_use_the_real_time_steps(captures):
    timed = [p for p, c in captures if c.timestamps is not None]
    frame = ipsdask.read_logs(timed, what="rates", timestamp_column="Timestamp").compute()
    stamps = frame.loc[frame["file"] == timed[2], "timestamp"].dt.tz_convert(None).to_numpy()
    assert (stamps == captures[2][1].timestamps[frame.loc[frame["file"] == timed[2], "record"]]).all()
    assert list(frame.columns[4:]) == list(COUNTERS)
    for path, cap in captures[:3]:
        expected = cap.rates()
        for name, group in rows_by_instance(frame, path).items():
            for field in COUNTERS:
                assert group[field].to_numpy().tobytes() == expected[name][field].tobytes(), (path, name, field)


def test_rates_need_times_or_an_interval(captures):
    untimed = captures[3][0]
    with pytest.raises(ValueError, match=r"host3\.csv has no timestamps.*interval=.*timestamp_column="):
        ipsdask.read_logs([captures[0][0], untimed], what="rates")
    with pytest.raises(ValueError, match=r"interval= does not apply: .*host0\.wnode carries a time"):
        ipsdask.read_logs([captures[0][0], untimed], what="rates", interval=10.0)
    frame = ipsdask.read_logs(untimed, what="rates", interval=10.0).compute()
    expected = captures[3][1].rates(interval=10.0)
    for name, group in rows_by_instance(frame, untimed).items():
        assert group["TotalGetSPI"].to_numpy().tobytes() == expected[name]["TotalGetSPI"].tobytes()


def test_one_partition_per_capture_and_projection(captures):
    ddf = ipsdask.read_logs([p for p, _ in captures], what="deltas", chunk_records=7)
    assert ddf.npartitions == len(captures)  # a capture never splits: an instance's previous sample may be anywhere
    part = ddf[["instance", "KeyUpdates"]].partitions[0].compute()
    assert part.columns.tolist() == ["instance", "KeyUpdates"] and len(part)
    only = ipsdask.read_logs(captures[0][0], columns=["timestamp"]).compute()
    assert only.columns.tolist() == ["timestamp"] and len(only) == len(captures[0][1])
    with pytest.raises(ValueError, match="unknown column.*'nope'.*columns are file, record, timestamp, instance"):
        ipsdask.read_logs(captures[0][0], columns=["nope"])


def test_raw_logs_and_captures_do_not_mix(captures, tmp_path):
    raw = tmp_path / "raw.bin"
    raw.write_bytes(generate(6, instances=2).tobytes())
    with pytest.raises(ValueError, match=r"raw\.bin holds raw records but .*host0\.wnode is a .*separately"):
        ipsdask.read_logs([str(raw), captures[0][0]], what="deltas")
    with pytest.raises(ValueError, match="timestamp_column= apply to CIM CSV captures only"):
        ipsdask.read_logs(str(raw), timestamp_column="Timestamp")
    with pytest.warns(ipsecstats.PartialRecordWarning):  # the caller's choice holds: a WNODE file read as raw
        forced = ipsdask.read_logs(captures[0][0], input_format="raw", allow_partial=True)
    assert forced.columns.tolist()[:2] == ["file", "record"] and "timestamp" not in forced.columns


def test_a_counter_reset_error_names_the_file_and_the_record(captures):
    ddf = ipsdask.read_logs([p for p, _ in captures], what="deltas", on_decrease="raise")
    with pytest.raises(ipsecstats.CounterResetError) as info:
        ddf.compute(scheduler="synchronous")
    assert any(re.search(r"host\d\.(wnode|csv): record [\d,]+ \(instance ROOT", note) for note in info.value.__notes__)


def test_cli_convert_several_captures_is_one_dataset(captures, tmp_path):
    paths = [p for p, _ in captures]
    out = tmp_path / "dataset"
    result = run("convert", *paths, "-o", f"{out}/", "--what", "deltas", "--on-decrease", "reset")
    assert result.returncode == 0, result.stderr
    table = pq.read_table(out)
    expected = ipsdask.read_logs(paths, what="deltas", on_decrease="reset").compute()
    assert table.num_rows == len(expected)
    assert str(table.schema.field("timestamp").type) == "timestamp[ns, tz=UTC]"
    for name in ("record", "KeyUpdates", "ActiveAcquire"):
        assert table.column(name).to_numpy().tobytes() == expected[name].to_numpy().tobytes()
    assert table.column("instance").to_pylist() == expected["instance"].tolist()
    # rates of timed captures on a scheduler
    result = run("convert", *paths[:3], "-o", str(tmp_path / "rates"), "--what", "rates", "--scheduler", "threads",
                 "--timestamp-column", "Timestamp")
    assert result.returncode == 0, result.stderr
    assert pq.read_table(tmp_path / "rates").num_rows == len(ipsdask.read_logs(paths[:3], what="rates",
                                                                               timestamp_column="Timestamp"))
    # mixing raw records with a capture is a one-line data error, and nothing is written
    raw = tmp_path / "raw.bin"
    raw.write_bytes(generate(6).tobytes())
    result = run("convert", str(raw), paths[0], "-o", str(tmp_path / "mixed/"))
    assert result.returncode == 1 and "separately" in result.stderr and not (tmp_path / "mixed").exists()


def test_cli_report_on_a_scheduler_reads_captures(captures):
    paths = [p for p, _ in captures]
    local = run("report", *paths, "--format", "json")
    remote = run("report", *paths, "--format", "json", "--scheduler", "processes")
    assert local.returncode == remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout) == json.loads(local.stdout)
    assert [r["input_format"] for r in json.loads(local.stdout)["reports"]][:3] == ["wnode", "wnode", "cim-csv"]
    bad = run("report", paths[0], "--stride", "2", "--scheduler", "threads")  # an option the file cannot take
    assert bad.returncode == 1 and "stride does not apply to WNODE" in bad.stderr and "Traceback" not in bad.stderr
    bad = run("report", paths[0], "--timezone", "UTC", "--scheduler", "threads")  # named as the flag given
    assert bad.returncode == 1 and "--timezone does not apply to WNODE" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_local_cluster_totals_of_captures_match_one_machine(captures):
    paths = [p for p, _ in captures]
    ddf = ipsdask.read_logs(paths, what="deltas", on_decrease="reset")
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None,
                                  scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
        with distributed.Client(cluster) as client:
            totals = client.compute(ddf.groupby(["file", "instance"], observed=True)[list(COUNTERS)].sum()).result()
    for path, cap in captures:
        for name, d in cap.deltas(on_decrease="reset").items():
            if not len(d):
                continue
            for field in COUNTERS:
                assert int(totals.loc[(path, name), field]) == sum(int(v) for v in d[field]), (path, name, field)


def test_read_logs_gives_timezone_to_perfmon_logs_and_the_rest_to_cim_csv(tmp_path):
    """A PDH-CSV log across New York's autumn change, beside a CIM CSV of culture times: each
    reader gets the options it takes (the PDH-CSV one timezone= only), in the probe and the parts."""
    instants = every("2024-11-03T04:30:00", 19, 600)
    data, _ = zone_log(instants, zoneinfo.ZoneInfo("America/New_York"))
    perfmon = tmp_path / "fall.csv"
    perfmon.write_bytes(data)
    cap = irregular_capture(n=40, seed=5)
    texts = np.datetime_as_string(cap.timestamps, unit="s")
    rows = list(zip(cap.instances.tolist(), cap.records.view("<u8").reshape(-1, 21).tolist()))
    culture = tmp_path / "culture.csv"
    culture.write_text(export_csv(rows, columns=COLUMNS + ["Timestamp"],
                                  extra={"Timestamp": lambda k: texts[k].replace("T", " ")}), newline="")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PdhCsvWarning)  # no "the time goes back": the zone was applied
        frame = ipsdask.read_logs([str(perfmon), str(culture)], what="records", timezone="America/New_York",
                                  timestamp_format="%Y-%m-%d %H:%M:%S").compute(scheduler="sync")
    times = frame["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype(np.int64)
    files = frame["file"].to_numpy()
    assert times[files == str(perfmon)].tolist() == instants.tolist()
    ny = zoneinfo.ZoneInfo("America/New_York")
    local = [dt.datetime.fromisoformat(t).replace(tzinfo=ny) for t in texts]
    assert times[files == str(culture)].tolist() == [int(t.timestamp()) * 10**9 for t in local]
