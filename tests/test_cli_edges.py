"""The command line's edges: one-line errors (never a traceback) that point the right way,
standard output complete or empty, warnings where an error would stop for nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import one_error_line, run

from ipsecstats._generate import generate


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log.bin"
    path.write_bytes(generate(6000, instances=2).tobytes())
    return path


def cli_in_process(*args: str, block: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``ipsecstats ARGS`` in a fresh interpreter where the modules ``block`` cannot be imported."""
    code = ("import sys\n"
            f"for name in {block!r}:\n"
            "    sys.modules[name] = None\n"
            "import ipsecstats.cli as cli\n"
            "sys.exit(cli.main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [
    ["report", "{log}", "--stride", "99999999999999999999999"],
    ["report", "{log}", "--start", "9999-12-31T23:59:59", "--interval", "60"],
    ["report", "{log}", "--interval", "1e12", "--start", "2024-01-01"],
    ["report", "{log}", "--interval", "1e308", "--format", "json"],
    ["info", "{log}", "--interval", "1e9", "--start", "2024-01-01"],
    ["convert", "{log}", "-o", "{out}", "--interval", "1e10", "--start", "2024-01-01"],
    ["convert", "{log}", "-o", "{out}", "--interval", "1e9", "--start", "2024-01-01"],
    ["generate", "{out}", "--records", "10", "--format", "wnode", "--start", "9999-01-01"],
    ["generate", "{out}", "--records", "10", "--format", "wnode", "--interval", "1e300"],
    ["generate", "{out}", "--records", "10", "--format", "wnode", "--interval", "1e9"],
], ids=lambda a: " ".join(a[2:] if a[0] != "generate" else a[2:]))
def test_out_of_range_options_are_one_line_usage_errors(log, tmp_path, args):
    out = tmp_path / "out.csv"
    done = run(*[a.format(log=log, out=out) for a in args])
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and not out.exists()
    one_error_line(done.stderr, f"ipsecstats {args[0]}: error:", f"ipsecstats {args[0]} --help")


def test_json_is_complete_or_absent(log, tmp_path):
    done = run("report", str(log), str(tmp_path / "missing.bin"), "--format", "json")
    assert done.returncode == 1
    document = json.loads(done.stdout)  # the whole document, parseable
    assert [r["file"] for r in document["errors"]] == [str(tmp_path / "missing.bin")]
    assert "No such file" in document["errors"][0]["error"] and len(document["reports"]) == 1
    info = json.loads(run("info", str(tmp_path / "missing.bin"), "--format", "json").stdout)
    assert info["files"] == [] and info["errors"][0]["file"] == str(tmp_path / "missing.bin")


@pytest.mark.parametrize("command", ["info", "report"])
def test_a_stride_above_the_record_count_says_so(log, command):
    done = run(command, str(log), "--stride", "7000")
    assert done.returncode == 1
    one_error_line(done.stderr, "holds 6,000 records, fewer than the 7,000 interleaved instances")


def test_a_stride_above_the_chunk_size_works(tmp_path):
    path = tmp_path / "wide.bin"
    path.write_bytes(generate(100_000, instances=20_000).tobytes())
    done = run("report", str(path), "--stride", "20000", "--format", "json")
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)["reports"]
    assert report["records"] == 100_000


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_standard_output_is_blamed_not_the_input(log):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "ipsecstats", "convert", str(log), "-o", "-", "--format", "csv"],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 1
    line = one_error_line(done.stderr, "standard output", "No space left on device")
    assert str(log) not in line


def test_a_directory_output_without_dask_says_what_it_means(log, tmp_path):
    folder = tmp_path / "existing"
    folder.mkdir()
    done = cli_in_process("convert", str(log), "-o", str(folder), block=("dask", "distributed"))
    assert done.returncode == 1
    line = one_error_line(done.stderr, f"-o {folder} (a directory)", "Parquet dataset", 'ipsecstats[dask]')
    assert "read_logs()" not in line


def test_a_mistyped_option_points_at_the_subcommand_help(log):
    done = run("report", str(log), "--strde", "2")
    assert done.returncode == 2
    one_error_line(done.stderr, "unrecognized arguments: --strde 2", "ipsecstats report --help")


def test_progress_always_without_tqdm_warns_and_goes_on(log):
    done = cli_in_process("report", str(log), "--progress", "always", block=("tqdm",))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{log.name}: 6,000 records")
    assert done.stderr.count("warning") == 1 and "tqdm" in done.stderr
