"""Ctrl-C (SIGINT) and SIGTERM during ``ipsecstats convert``: the installed command exits
with 130 / 143, says so in one line on standard error, and leaves no output or temporary file."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from test_cli import SCRIPT, one_error_line

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

RECORDS = 250_000  # 42 MB: CSV with times takes over a second, far longer than the poll below
WAIT = 60.0  # seconds: the bound on every wait


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Monotonic counters: record i holds i * (j + 1) in field j."""
    path = tmp_path_factory.mktemp("signals") / "big.bin"
    values = np.arange(RECORDS, dtype="<u8")[:, None] * np.arange(1, 22, dtype="<u8")[None, :]
    path.write_bytes(values.tobytes())
    return path


@pytest.mark.parametrize(("signum", "status", "message"),
                         [(signal.SIGTERM, 143, "ipsecstats: terminated"),
                          (signal.SIGINT, 130, "ipsecstats: interrupted")],
                         ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_writing_leaves_no_file(big_log: Path, tmp_path: Path, signum: int, status: int,
                                               message: str) -> None:
    assert SCRIPT.exists(), f"{SCRIPT} is missing: install the package (pip install -e .)"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    argv = [str(SCRIPT), "convert", str(big_log), "-o", str(out_dir / "big.csv"), "--progress", "never",
            "--stride", "4", "--interval", "1", "--start", "2024-06-03T00:00:00Z"]
    # SIGINT caught here for a moment: exec resets a caught signal to the default in the child,
    # whereas an ignored one (a background job's) would stay ignored and Ctrl-C would do nothing
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + WAIT
        while not any(name.endswith(".tmp") for name in os.listdir(out_dir)):  # the temporary output exists
            if proc.poll() is not None:
                pytest.skip(f"convert ended (status {proc.returncode}) before its temporary file was seen")
            assert time.monotonic() < deadline, f"no temporary file in {out_dir} after {WAIT} s"
            time.sleep(0.005)
        if proc.poll() is not None:
            pytest.skip("convert finished before the signal could be sent")
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, stderr
    assert one_error_line(stderr, message) == message
    assert stdout == ""
    assert os.listdir(out_dir) == []  # neither big.csv nor the temporary file
