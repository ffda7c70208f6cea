"""The command line on CIM CSV shapes: --delimiter, --encoding, --timestamp-format, --timezone,
and messages that name these flags (the library's name the keywords)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cimcsv_shapes import ANSI, HOSTS, PLAIN, SHAPES
from test_cli import one_error_line, run

from ipsecstats._schema import COUNTERS, FIELD_NAMES


def write(tmp_path: Path, shape: str, data: bytes | None = None) -> str:
    path = tmp_path / (shape.replace(" ", "-").replace("/", "") + ".csv")
    path.write_bytes(SHAPES[shape][0] if data is None else data)
    return str(path)


def info(*args: str) -> tuple[dict, str]:
    result = run("info", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["files"][0], result.stderr


def span(stamps: list[int]) -> tuple[str, str]:
    import numpy as np

    first, last = (np.datetime64(s, "ns").astype("datetime64[s]").item() for s in (stamps[0], stamps[-1]))
    return first.isoformat(), last.isoformat()


def test_timestamp_format_and_timezone_give_utc(tmp_path):
    path = write(tmp_path, "ps51 get-date de-DE")
    got, err = info(path, "--timestamp-format", "%d.%m.%Y %H:%M:%S", "--timezone", "Europe/Berlin")
    assert got["records"] == len(PLAIN.records) and got["decreasing_counters"] == {}
    first, last = span(PLAIN.utc_ns())
    assert got["start"].startswith(first) and got["end"].startswith(last), got
    assert got["median_step_seconds"] == 60.0
    assert "note:" in err and "times from column 'Timestamp'" in err and "--timestamp-column" in err
    assert "warning" not in err


def test_without_timestamp_format_the_error_names_the_flag(tmp_path):
    path = write(tmp_path, "ps51 get-date en-US")
    result = run("info", path)
    assert result.returncode == 1
    line = one_error_line("\n".join(x for x in result.stderr.splitlines() if "note:" not in x),
                          "line 3, column 1 (Timestamp)", "culture date", "--timestamp-format",
                          "'%m/%d/%Y %I:%M:%S %p' (month first")
    assert "timestamp_format=" not in line


def test_naive_times_warn_once_and_timezone_fixes_them(tmp_path):
    path = write(tmp_path, "ps51 get-date en-US")
    fmt = "%m/%d/%Y %I:%M:%S %p"
    got, err = info(path, "--timestamp-format", fmt)
    warnings = [x for x in err.splitlines() if "warning:" in x]
    assert len(warnings) == 1 and "no UTC offset" in warnings[0] and "--timezone" in warnings[0]
    got, err = info(path, "--timestamp-format", fmt, "--timezone", "America/New_York")
    assert "warning" not in err
    assert got["start"].startswith(span(PLAIN.utc_ns())[0])
    for zone in ("Mars/Olympus", "+15:00", "America", "x" * 300):  # a usage error, before any input is read
        result = run("info", path, "--timestamp-format", fmt, "--timezone", zone)
        assert result.returncode == 2 and result.stdout == ""
        assert f"argument --timezone: '{zone}': " in result.stderr.splitlines()[-1]
        assert ("at most 14:00" if zone.startswith("+") else "no such time zone") in result.stderr


def test_delimiter_flag(tmp_path):
    path = write(tmp_path, "ps51 use-culture de-DE")
    got, _ = info(path)  # told from the header
    assert got["records"] == len(PLAIN.records)
    got, _ = info(path, "--delimiter", ";")
    assert got["records"] == len(PLAIN.records)
    result = run("info", path, "--delimiter", ",")
    line = one_error_line(result.stderr, "line 2", "delimiter ',' (given)", "--delimiter")
    assert "delimiter=" not in line
    tab = write(tmp_path, "ps51 use-culture de-DE", SHAPES["ps51 use-culture de-DE"][0].replace(b";", b"\t"))
    assert info(tab, "--delimiter", "tab")[0]["records"] == len(PLAIN.records)
    result = run("info", path, "--delimiter", ";;")
    assert result.returncode == 2 and "--delimiter" in result.stderr


def test_encoding_flag_and_cp1252_detection(tmp_path):
    path = write(tmp_path, "ps51 cp1252 host")
    got, err = info(path)
    assert got["input_format"] == "cim-csv" and got["records"] == len(ANSI.records)
    assert got["instance_names"][0] == "SRV-MÜNCHEN " + ANSI.names[0]
    warnings = [x for x in err.splitlines() if "warning:" in x]
    assert len(warnings) == 1 and "cp1252" in warnings[0] and "--encoding" in warnings[0]
    got, err = info(path, "--encoding", "cp1252")
    assert "warning" not in err and got["instance_names"][0].startswith("SRV-MÜNCHEN ")
    result = run("info", path, "--encoding", "utf-8")
    one_error_line(result.stderr, "line 3", "not valid UTF-8", "--encoding")
    for name in ("klingon", "rot13", "zlib"):  # a usage error, before any input is read: no text encoding
        result = run("info", path, "--encoding", name)
        assert result.returncode == 2 and result.stdout == ""
        assert f"argument --encoding: '{name}': no such text encoding" in result.stderr.splitlines()[-1]


def test_two_hosts_report_per_host_totals(tmp_path):
    path = write(tmp_path, "ps51 two hosts")
    result = run("report", path, "--format", "json")
    assert result.returncode == 0, result.stderr
    rep = json.loads(result.stdout)["reports"][0]
    assert rep["instance_names"] == [f"{h} {n}" for h, n in zip(HOSTS.row_hosts, HOSTS.names)]
    per = HOSTS.values.reshape(-1, HOSTS.k, 21)
    for c in COUNTERS:
        truth = int(per[-1, :, FIELD_NAMES.index(c)].sum() - per[0, :, FIELD_NAMES.index(c)].sum())
        assert (rep["counters"][c]["increase"], rep["counters"][c]["restarts"]) == (truth, 0), c
    assert sum(rep["counters"][c]["increase"] for c in COUNTERS) > 0


@pytest.mark.parametrize("flag,value", [("--delimiter", ";"), ("--encoding", "cp1252"),
                                        ("--timestamp-format", "%d.%m.%Y"), ("--timezone", "UTC")])
def test_csv_flags_refuse_other_formats(tmp_path, flag, value):
    raw = tmp_path / "x.bin"
    raw.write_bytes(PLAIN.records.tobytes())
    result = run("info", str(raw), flag, value)
    owners = "cim-csv and pdh-csv" if flag == "--timezone" else "cim-csv"
    one_error_line(result.stderr, flag, f"applies to --input-format {owners} only")


def test_csv_flags_reach_a_scheduler_and_a_dataset(tmp_path):
    path = write(tmp_path, "ps51 get-date de-DE")
    flags = ["--timestamp-format", "%d.%m.%Y %H:%M:%S", "--timezone", "Europe/Berlin"]
    local = run("report", path, "--format", "json", *flags)
    remote = run("report", path, "--format", "json", "--scheduler", "threads", *flags)
    assert local.returncode == remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout) == json.loads(local.stdout)
    out = tmp_path / "dataset"
    done = run("convert", path, path, "-o", f"{out}/", "--what", "rates", *flags)
    assert done.returncode == 0, done.stderr
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    import numpy as np

    second_poll = np.datetime64(int(PLAIN.utc_ns()[0]), "ns") + np.timedelta64(60, "s")  # a rate's later record
    assert table.column("timestamp")[0].value == second_poll.astype(np.int64)  # UTC: the zone was applied
    bare = run("report", path, "--scheduler", "threads")  # the culture date still needs its format
    assert bare.returncode == 1 and "pass --timestamp-format" in bare.stderr  # the flag, as without a scheduler


def test_the_readme_sampling_loop_needs_no_flags(tmp_path):
    """The shape the README's PowerShell loop writes: Timestamp ('o', UTC), PSComputerName,
    InstanceName and the 21 properties, all quoted, UTF-8 with a BOM, CRLF, appended per poll."""
    import datetime as dt

    from ipsecstats._generate import generate

    values = generate(40, instances=2).view("<u8").reshape(-1, 21)
    names = ["ROOT\\ISCSIPRT\\0000_0", "ROOT\\ISCSIPRT\\0001_0"]
    lines = ['"' + '","'.join(["Timestamp", "PSComputerName", "InstanceName", *FIELD_NAMES]) + '"']
    start = dt.datetime(2024, 6, 3)
    for k, row in enumerate(values.tolist()):
        stamp = (start + dt.timedelta(seconds=10 * (k // 2))).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
        lines.append('"' + '","'.join([stamp, "SRV-ISCSI01", names[k % 2], *map(str, row)]) + '"')
    path = tmp_path / "ipsec-2024-06-03.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode())
    got, err = info(str(path))
    assert got["records"] == 40 and got["median_step_seconds"] == 10.0
    assert got["start"].startswith("2024-06-03T00:00:00") and "warning" not in err
    result = run("report", str(path))
    assert result.returncode == 0 and "SRV-ISCSI01 ROOT\\ISCSIPRT\\0001_0" in result.stdout
