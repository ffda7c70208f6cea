"""The ``ipsecstats`` command.

End-to-end tests run the installed console script in a subprocess (a few: each costs
about half a second); the finer points run ``main()`` in-process.
"""

from __future__ import annotations

import builtins
import csv
import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ipsecstats
from ipsecstats import cli
from ipsecstats._generate import generate

SCRIPT = Path(sys.executable).parent / "ipsecstats"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, its output captured (so stdout and stderr are pipes)."""
    assert SCRIPT.exists(), f"{SCRIPT} is missing: install the package (pip install -e .)"
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def one_error_line(stderr: str, *needles: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,200 records: 2 instances every 10 s, one restart, one counter wrapping past 2**64."""
    path = tmp_path_factory.mktemp("cli") / "capture.bin"
    path.write_bytes(generate(1200, instances=2, interval=10.0, restarts=1, seed=4, wrap=True).tobytes())
    return path


def main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


# --------------------------------------------------------------------------- the installed script


def test_report_without_a_file_runs_on_the_shipped_sample() -> None:
    result = run("report")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    first = result.stdout.splitlines()[0]
    assert first.startswith("ipsecstats report: no FILE given, so this is the sample log shipped with ipsecstats")
    assert "2 interleaved instances x 1,440 samples, every 60 s" in result.stdout
    assert "Findings" in result.stdout and "1 restart: instance 1 at record 2,465" in result.stdout


def test_every_subcommand_end_to_end(tmp_path: Path) -> None:
    log = tmp_path / "gen.bin"
    result = run("generate", str(log), "--records", "3000", "--instances", "3", "--interval", "30",
                 "--restarts", "2", "--seed", "9")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert log.stat().st_size == 3000 * ipsecstats.RECORD_SIZE

    result = run("info", str(log), "--stride", "3", "--interval", "30", "--start", "2024-01-01T00:00:00Z")
    assert result.returncode == 0 and result.stderr == ""
    assert "3,000 of 168 bytes" in result.stdout and "3, 1,000 samples" in result.stdout
    assert "2024-01-01 00:00:00 UTC to 2024-01-01 08:19:30 UTC" in result.stdout

    result = run("report", str(log), "--stride", "3", "--interval", "30", "--format", "json")
    assert result.returncode == 0 and result.stderr == ""
    report = json.loads(result.stdout)["reports"][0]
    d = ipsecstats.deltas(ipsecstats.read(log), stride=3)
    for name in ipsecstats.COUNTERS:
        assert report["counters"][name]["increase"] == sum(int(v) for v in d[name])
    assert report["restart_events"] == 2

    result = run("convert", str(log), "-o", "-", "--what", "deltas", "--stride", "3")
    assert result.returncode == 0 and result.stderr == ""
    rows = list(csv.DictReader(io.StringIO(result.stdout)))  # stdout holds the CSV and nothing else
    assert len(rows) == 2997 and [int(r["KeyUpdates"]) for r in rows] == [int(v) for v in d["KeyUpdates"]]

    result = run("plot", str(log), "-o", str(tmp_path / "p.png"), "--stride", "3", "--interval", "30")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC

    module = subprocess.run([sys.executable, "-m", "ipsecstats", "--version"], capture_output=True, text=True)
    assert module.returncode == 0 and module.stdout.strip() == f"ipsecstats {ipsecstats.__version__}"


def test_errors_are_one_line_with_the_right_status(tmp_path: Path, log: Path) -> None:
    result = run("report", str(tmp_path / "missing.bin"))
    assert result.returncode == 1 and result.stdout == ""
    one_error_line(result.stderr, "missing.bin", "No such file or directory")

    cut = tmp_path / "cut.bin"
    cut.write_bytes(log.read_bytes()[: 10 * 168 + 99])
    result = run("convert", str(cut), "-o", str(tmp_path / "out.csv"))
    assert result.returncode == 1
    one_error_line(result.stderr, "cut.bin", "99 trailing byte(s) at byte offset 1680", "--allow-partial")
    assert sorted(os.listdir(tmp_path)) == ["cut.bin"]  # no partial output, no temporary file

    result = run("report", str(log), "--stride", "zero")
    assert result.returncode == 2 and result.stdout == ""
    one_error_line(result.stderr, "--stride", "'zero'")

    result = run("convert", str(log), "-o", str(tmp_path / "no" / "such" / "dir.csv"))
    assert result.returncode == 1
    one_error_line(result.stderr, "dir.csv", "cannot write")


# --------------------------------------------------------------------------- in-process: report and info


def test_report_text_and_json_agree(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    status, out, err = main(capsys, "report", str(log), "--stride", "2", "--interval", "10")
    assert (status, err) == (0, "")
    assert out.startswith("capture.bin: 1,200 records (201,600 bytes), 2 interleaved instances x 600 samples")
    status, out, _ = main(capsys, "report", str(log), "--stride", "2", "--interval", "10", "--format", "json")
    report = json.loads(out)["reports"][0]
    spi = report["counters"]["TotalGetSPI"]
    assert spi["wraps"] == 1 and spi["restarts"] == 1
    d = ipsecstats.deltas(ipsecstats.read(log), stride=2)
    assert spi["increase"] == sum(int(v) for v in d["TotalGetSPI"])  # exact Python int
    conn = ipsecstats.read(log)["ConnectionListSize"]
    assert report["gauges"]["ConnectionListSize"] == {"min": int(conn.min()), "max": int(conn.max()),
                                                       "mean": sum(int(v) for v in conn) / conn.shape[0]}
    assert any("wrap" in f["text"] for f in report["findings"])
    assert report["duration_seconds"] == 599 * 10.0


def test_report_policy_changes_the_totals(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    totals = {}
    for policy in ("auto", "wrap", "zero"):
        _, out, _ = main(capsys, "report", str(log), "--stride", "2", "--on-decrease", policy, "--format", "json")
        totals[policy] = json.loads(out)["reports"][0]["counters"]["OakleyMainMode"]["increase"]
    assert totals["zero"] < totals["auto"] < totals["wrap"]  # the restart: 0, growth since 0, or mod 2**64
    assert totals["wrap"] >= 2**63


def test_report_keeps_going_after_a_bad_file(capsys: pytest.CaptureFixture[str], log: Path, tmp_path: Path) -> None:
    status, out, err = main(capsys, "report", str(tmp_path / "nope.bin"), str(log))
    assert status == 1
    assert "capture.bin: 1,200 records" in out
    one_error_line(err, "nope.bin")


def test_raise_policy_names_the_record(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    status, out, err = main(capsys, "report", str(log), "--stride", "2", "--on-decrease", "raise")
    assert status == 1 and out == ""
    one_error_line(err, "capture.bin: counter", "went down at record", "--on-decrease")


def test_allow_partial_warns_on_stderr(capsys: pytest.CaptureFixture[str], log: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.bin"
    cut.write_bytes(log.read_bytes()[: 100 * 168 + 5])
    status, out, err = main(capsys, "report", str(cut), "--allow-partial")
    assert status == 0 and "ignored 5 trailing byte(s)" in out
    assert err == f"ipsecstats: warning: {cut}: ignored 5 trailing byte(s) at byte offset 16800 (a partial record)\n"
    status, out, err = main(capsys, "info", str(cut), "--format", "json")
    info = json.loads(out)["files"][0]
    assert (status, err, info["records"], info["trailing_bytes"]) == (0, "", 100, 5)


def test_info_lists_decreasing_counters(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    status, out, err = main(capsys, "info", str(log), "--stride", "2", "--format", "json")
    info = json.loads(out)["files"][0]
    assert status == 0 and err == ""
    assert info["decreasing_counters"]["TotalGetSPI"] == {"restarts": 1, "wraps": 1}
    assert info["decrease_events"] == 2
    status, out, _ = main(capsys, "info", str(log))
    assert "\n  instances " not in out  # not asked for: no --stride
    assert "\n  hint        Counters fell in" in out  # but the 2 interleaved instances show: report's hint


def test_a_directory_is_not_a_log(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = main(capsys, "info", str(tmp_path))
    assert status == 1 and out == ""
    one_error_line(err, str(tmp_path), "Is a directory")


def test_an_unreadable_file(capsys: pytest.CaptureFixture[str], log: Path, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked.bin"
    locked.write_bytes(log.read_bytes())
    locked.chmod(0)
    if os.name != "posix" or os.geteuid() == 0:
        # root (as in CI) reads files whatever their mode: refuse it the way the OS would
        real_open = builtins.open

        def refusing_open(file: Any, *args: Any, **kwargs: Any) -> Any:
            if os.fspath(file) == str(locked):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(locked))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", refusing_open)
    status, _, err = main(capsys, "report", str(locked))
    assert status == 1
    one_error_line(err, "locked.bin", "Permission denied")


# --------------------------------------------------------------------------- in-process: convert, plot, generate


@pytest.mark.parametrize("what", ["records", "deltas", "rates"])
def test_convert_matches_the_library(capsys: pytest.CaptureFixture[str], log: Path, tmp_path: Path, what: str) -> None:
    out = tmp_path / f"{what}.npy"
    status, stdout, err = main(capsys, "convert", str(log), "-o", str(out), "--what", what, "--stride", "2",
                               "--interval", "10")
    assert (status, stdout, err) == (0, "", "")
    records = ipsecstats.read(log)
    want = {"records": records, "deltas": ipsecstats.deltas(records, stride=2),
            "rates": ipsecstats.rates(records, stride=2, interval=10.0)}[what]
    got = np.load(out)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_convert_usage_errors(capsys: pytest.CaptureFixture[str], log: Path, tmp_path: Path) -> None:
    cases = [
        (["-o", str(tmp_path / "x.txt")], "cannot tell the output format"),
        (["-o", "-", "--format", "parquet"], "parquet cannot go to standard output"),
        (["-o", str(tmp_path / "r.csv"), "--what", "rates"], "--what rates needs --interval"),
        (["-o", str(tmp_path / "t.csv"), "--start", "2024-01-01T00:00:00"], "--start needs --interval"),
        (["-o", str(log), "--format", "csv"], "would overwrite the input"),
    ]
    for extra, message in cases:
        status, out, err = main(capsys, "convert", str(log), *extra)
        assert status == 2 and out == "", extra
        one_error_line(err, message)
    assert sorted(os.listdir(tmp_path)) == []
    with pytest.raises(SystemExit) as info:
        cli.main(["convert", str(log), "-o", "x.csv", "--what", "everything"])
    assert info.value.code == 2
    assert "invalid choice: 'everything'" in capsys.readouterr().err


def test_parquet_from_the_command_line(capsys: pytest.CaptureFixture[str], log: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "d.parquet"
    status, _, err = main(capsys, "convert", str(log), "-o", str(out), "--what", "deltas", "--stride", "2",
                          "--interval", "10", "--start", "2024-06-03T00:00:00Z")
    assert status == 0 and err == ""
    table = pq.read_table(out)
    assert table.column_names[:3] == ["record", "instance", "time"]
    d = ipsecstats.deltas(ipsecstats.read(log), stride=2, on_decrease="auto")
    assert table.column("TotalGetSPI").to_pylist() == [int(v) for v in d["TotalGetSPI"]]
    meta = json.loads(table.schema.metadata[b"ipsecstats"])
    assert meta["what"] == "deltas" and meta["stride"] == 2 and meta["on_decrease"] == "auto"


def test_plot_the_sample(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = main(capsys, "plot", "-o", str(tmp_path / "s.png"), "--bins", "100")
    assert (status, out, err) == (0, "", "")
    png = (tmp_path / "s.png").read_bytes()
    assert png[:8] == PNG_MAGIC
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1100, 1050)


def test_plot_without_interval_and_to_a_bad_place(capsys: pytest.CaptureFixture[str], log: Path, tmp_path: Path) -> None:
    status, _, err = main(capsys, "plot", str(log), "-o", str(tmp_path / "p.png"))
    assert status == 0 and err == ""
    status, _, err = main(capsys, "plot", str(log), "-o", str(tmp_path / "missing" / "p.png"))
    assert status == 1
    one_error_line(err, "p.png", "cannot write")
    assert sorted(os.listdir(tmp_path)) == ["p.png"]


def test_generate_is_reproducible(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for name in ("a.bin", "b.bin"):
        status, out, err = main(capsys, "generate", str(tmp_path / name), "--records", "500", "--seed", "3",
                                "--restarts", "1", "--wrap")
        assert (status, out, err) == (0, "", "")
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    assert (tmp_path / "a.bin").read_bytes() == generate(500, seed=3, restarts=1, wrap=True).tobytes()
    status, _, err = main(capsys, "generate", str(tmp_path / "c.bin"), "--records", "5", "--instances", "2")
    assert status == 2
    one_error_line(err, "must be a multiple of --instances")


def test_progress_goes_to_stderr_only(capsys: pytest.CaptureFixture[str], log: Path, tmp_path: Path) -> None:
    status, out, err = main(capsys, "convert", str(log), "-o", "-", "--progress", "always")
    assert status == 0
    assert out.startswith("record,ActiveAcquire,") and "%" not in out
    assert "capture.bin:" in err and "B/s" in err  # the tqdm bar
    status, out, err = main(capsys, "convert", str(log), "-o", "-")  # auto: stderr is not a terminal here
    assert err == ""


def test_debug_shows_the_traceback(log: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        cli.main(["report", str(tmp_path / "nope.bin"), "--debug"])


def test_a_log_read_without_its_stride_gets_a_hint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "two.bin"
    path.write_bytes(generate(4000, instances=2, restarts=0, seed=3).tobytes())
    status, out, err = main(capsys, "report", str(path))
    assert status == 0 and err == ""
    restarts = int(out.split(" restarts: ")[0].rsplit("! ", 1)[1].replace(",", ""))
    assert restarts > 1000  # the true count, not the 1,000 events kept for listing
    assert "read it with --stride K" in out
    status, out, _ = main(capsys, "report", str(path), "--stride", "2")
    assert "--stride K" not in out


def test_a_few_restarts_in_one_instance_get_no_stride_hint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "one.bin"
    path.write_bytes(generate(200, instances=1, restarts=3, seed=5).tobytes())
    status, out, _ = main(capsys, "report", str(path))
    assert status == 0 and " restarts: " in out
    assert "--stride K" not in out
