"""Outputs never go through planted links, never replace an input, never start what cannot fit;
``out=`` arrays never overlap each other."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import KERNELS
from test_cli import one_error_line, run

import ipsecstats
from ipsecstats._export import atomic_output, same_file
from ipsecstats._generate import generate


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "small.bin"
    path.write_bytes(generate(40, instances=2).tobytes())
    return path


# --- out= that overlaps (finding 3) ---------------------------------------------------------


@pytest.mark.parametrize("kernel", KERNELS, indirect=True)
@pytest.mark.parametrize("keyed", [False, True])
def test_values_and_resets_must_not_overlap(kernel, keyed):
    recs = generate(200, instances=1, restarts=3)
    values = np.empty(199, ipsecstats.deltas(recs[:2]).dtype)
    resets = values.view(np.bool_)[: 199 * 21].reshape(199, 21)  # the same memory as values
    kwargs = {"instances": np.zeros(200, np.intp)} if keyed else {}
    if keyed:  # the keyed kernel takes one row of room per record
        values = np.empty(200, values.dtype)
        resets = values.view(np.bool_)[: 200 * 21].reshape(200, 21)
    with pytest.raises(ValueError, match=r"out\[0\] \(values\) and out\[1\] \(resets\) must not overlap"):
        ipsecstats.deltas(recs, out=(values, resets), return_resets=True, **kwargs)


@pytest.mark.parametrize("kernel", KERNELS, indirect=True)
def test_decode_columns_refuses_rows_that_alias(kernel):
    recs = generate(50, instances=1)
    aliased = np.lib.stride_tricks.as_strided(np.zeros(50, np.uint64), (21, 50), (0, 8), writeable=True)
    with pytest.raises(ValueError, match="rows must not overlap each other"):
        ipsecstats.decode_columns(recs, out=aliased)
    half = np.lib.stride_tricks.as_strided(np.zeros(50 * 11, np.uint64), (21, 50), (200, 8), writeable=True)
    with pytest.raises(ValueError, match="rows must not overlap each other"):
        ipsecstats.decode_columns(recs, out=half)
    good = np.zeros((21, 50), np.uint64)
    assert ipsecstats.decode_columns(recs, out=good)["KeyUpdates"].tolist() == recs["KeyUpdates"].tolist()


# --- symbolic links at the output (finding 7) -------------------------------------------------


def test_convert_refuses_a_planted_link_and_leaves_its_target(log, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    victim.chmod(0o600)
    link = tmp_path / "out.csv"
    link.symlink_to(victim)
    result = run("convert", str(log), "-o", str(link))
    assert result.returncode == 1
    assert "is a symbolic link" in one_error_line(result.stderr, str(link))
    assert victim.read_text() == "keep me" and link.is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_dangling_link_is_not_followed(log, tmp_path):
    link = tmp_path / "out.csv"
    link.symlink_to(tmp_path / "created-through-the-link")
    assert run("convert", str(log), "-o", str(link)).returncode == 1
    assert not (tmp_path / "created-through-the-link").exists()


def test_links_in_the_folder_path_are_fine(log, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    assert run("convert", str(log), "-o", str(tmp_path / "alias" / "out.csv")).returncode == 0
    assert (real / "out.csv").read_text().startswith("record,")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give a file away")
def test_permissions_are_kept_only_for_a_file_the_caller_owns(tmp_path):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    for path in (mine, theirs):
        path.write_bytes(b"old")
        path.chmod(0o640)
    os.chown(theirs, 12345, 12345)
    for path in (mine, theirs):
        with atomic_output(path) as f:
            f.write(b"new")
    assert stat.S_IMODE(mine.stat().st_mode) == 0o640
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(theirs.stat().st_mode) == 0o666 & ~umask and theirs.stat().st_uid == 0


def test_a_fifo_or_device_is_written_as_a_stream(log, tmp_path):
    assert run("convert", str(log), "-o", os.devnull, "--format", "csv").returncode == 0
    assert Path(os.devnull).exists() and not Path(os.devnull).is_file()  # still the device
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    import threading

    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with atomic_output(fifo) as f:
        f.write(b"streamed")
    reader.join(10)
    assert got == [b"streamed"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


# --- outputs that are inputs (finding 8) --------------------------------------------------------


@pytest.mark.parametrize("how", ["same path", "hard link", "symbolic link to it"])
@pytest.mark.parametrize("command", ["plot", "convert"])
def test_no_command_overwrites_its_input(log, tmp_path, how, command):
    if command == "plot":
        pytest.importorskip("matplotlib")
    before = log.read_bytes()
    out = log
    if how == "hard link":
        out = tmp_path / "other-name.csv"
        os.link(log, out)
    elif how == "symbolic link to it":
        out = tmp_path / "link.csv"
        out.symlink_to(log)
    args = ["plot", str(log), "-o", str(out)] if command == "plot" else \
        ["convert", str(log), "-o", str(out), "--format", "csv"]
    result = run(*args)
    assert result.returncode == 2 and "would overwrite the input" in result.stderr, result.stderr
    assert log.read_bytes() == before


def test_same_file_compares_inodes(log, tmp_path):
    other = tmp_path / "other"
    other.write_bytes(log.read_bytes())
    assert same_file(other, [log]) is None
    os.link(log, tmp_path / "hard")
    assert same_file(tmp_path / "hard", ["missing", log]) == str(log)


# --- generate checks the space (finding 9) ---------------------------------------------------------


@pytest.mark.parametrize("fmt", ["raw", "wnode"])
def test_generate_refuses_what_cannot_fit_before_writing(tmp_path, fmt):
    out = tmp_path / "huge.bin"
    result = run("generate", str(out), "--records", "100000000000000", "--instances", "2", "--format", fmt,
                 "--interval", "0.0001")  # 5e13 samples still end before 2262
    assert result.returncode == 1
    line = one_error_line(result.stderr, str(out))
    assert "would not fit" in line and "bytes free" in line
    assert list(tmp_path.iterdir()) == []


def test_generate_still_writes_what_fits(tmp_path):
    out = tmp_path / "ok.bin"
    assert run("generate", str(out), "--records", "10").returncode == 0
    assert out.stat().st_size == 10 * 168


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("POSIX links and FIFOs")
