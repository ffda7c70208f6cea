"""A bad ``--scheduler``: the installed command says what is wrong in one line on standard
error, with exit status 2 for a malformed address and 1 for a scheduler it cannot reach,
waiting only IPSECSTATS_CONNECT_TIMEOUT seconds."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from test_cli import SCRIPT, one_error_line

pytest.importorskip("distributed")

from ipsecstats import dask as ipsdask

TIMEOUT = "1"  # seconds the command waits for the scheduler


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "x.bin"
    path.write_bytes(np.arange(3 * 21, dtype="<u8").tobytes())
    return path


@pytest.fixture
def closed_address() -> str:
    """tcp://127.0.0.1:PORT on a port that was free a moment ago and has no listener now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def run(*args: str, timeout: str = TIMEOUT) -> subprocess.CompletedProcess[str]:
    assert SCRIPT.exists(), f"{SCRIPT} is missing: install the package (pip install -e .)"
    env = {**os.environ, ipsdask.CONNECT_TIMEOUT_ENV: timeout}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60,
                          check=False)


@pytest.mark.parametrize("command", ["report", "convert"])
@pytest.mark.parametrize("address", ["bogus://x", "tcp://127.0.0.1:notaport", "hostwithoutport"])
def test_a_malformed_address_is_a_usage_error(log: Path, tmp_path: Path, command: str, address: str) -> None:
    output = tmp_path / "out"
    extra = ["-o", f"{output}/"] if command == "convert" else []
    done = run(command, str(log), *extra, "--scheduler", address)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    one_error_line(done.stderr, f"ipsecstats {command}: error:", repr(address), "not valid")
    assert not output.exists()


def test_a_tls_address_without_tls_settings_is_a_usage_error(log: Path) -> None:
    done = run("report", str(log), "--scheduler", "tls://127.0.0.1:1")
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    one_error_line(done.stderr, "ipsecstats report: error:", "cannot use the scheduler address 'tls://127.0.0.1:1'", "TLS")


@pytest.mark.parametrize("command", ["report", "convert"])
def test_a_scheduler_that_is_not_there_is_one_line_and_exit_1(log: Path, tmp_path: Path, closed_address: str,
                                                               command: str) -> None:
    output = tmp_path / "out"
    extra = ["-o", f"{output}/"] if command == "convert" else []
    began = time.monotonic()
    done = run(command, str(log), *extra, "--scheduler", closed_address)
    elapsed = time.monotonic() - began
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    one_error_line(done.stderr, f"ipsecstats {command}: error:", f"cannot connect to the scheduler at {closed_address}",
                   "connection refused")
    assert elapsed < 15, elapsed
    assert not output.exists()


def test_a_refused_connection_fails_at_once_whatever_the_timeout(log: Path, closed_address: str) -> None:
    began = time.monotonic()
    done = run("report", str(log), "--scheduler", closed_address, timeout="60")
    elapsed = time.monotonic() - began
    assert done.returncode == 1 and "connection refused" in done.stderr, done.stderr
    assert elapsed < 20, elapsed  # not the 60 s of retries distributed would spend


def test_debug_shows_the_traceback_of_the_connection_failure(log: Path, closed_address: str) -> None:
    done = run("report", str(log), "--scheduler", closed_address, "--debug")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "SchedulerConnectionError" in done.stderr


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf"])
def test_a_bad_connect_timeout_is_a_usage_error(log: Path, closed_address: str, value: str) -> None:
    done = run("report", str(log), "--scheduler", closed_address, timeout=value)
    assert done.returncode == 2, done.stderr
    one_error_line(done.stderr, ipsdask.CONNECT_TIMEOUT_ENV, repr(value))


def test_the_connect_timeout_is_ignored_for_a_local_scheduler(log: Path) -> None:
    done = run("report", str(log), "--scheduler", "synchronous", timeout="abc")
    assert done.returncode == 0, done.stderr
    assert done.stdout == run("report", str(log)).stdout != ""


def test_use_scheduler_raises_typed_errors(closed_address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ipsdask.SchedulerAddressError, match="unknown address scheme 'bogus'"), \
            ipsdask.use_scheduler("bogus://x"):
        pass
    with pytest.raises(ipsdask.SchedulerConnectionError, match=closed_address), \
            ipsdask.use_scheduler(closed_address, timeout=0.5):
        pass
    assert issubclass(ipsdask.SchedulerAddressError, ValueError)
    assert issubclass(ipsdask.SchedulerConnectionError, OSError)
    monkeypatch.delenv(ipsdask.CONNECT_TIMEOUT_ENV, raising=False)
    assert ipsdask.connect_timeout() == 10.0
    monkeypatch.setenv(ipsdask.CONNECT_TIMEOUT_ENV, "2.5")
    assert ipsdask.connect_timeout() == 2.5
    assert ipsdask.connect_timeout(3) == 3.0
    with pytest.raises(ValueError, match="timeout=0"):
        ipsdask.connect_timeout(0)


def test_a_failed_connection_leaves_no_default_client() -> None:
    """A Client that failed to start must not stay dask's scheduler: the next compute would
    wait on it forever (seen as a hung test_dask on Python 3.13, where it outlived the test)."""
    distributed = pytest.importorskip("distributed")
    import dask

    for spec in ("bogus://x", "tls://127.0.0.1:1"):
        with pytest.raises(ValueError), ipsdask.use_scheduler(spec, timeout=0.5):
            pass
        with pytest.raises(ValueError, match="No clients found"):
            distributed.default_client()  # no gc.collect() first: nothing may depend on it
        assert dask.config.get("scheduler", None) is None


def test_a_distributed_scheduler_is_current_inside_the_block_only(log: Path) -> None:
    distributed = pytest.importorskip("distributed")
    import dask

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with ipsdask.use_scheduler(cluster.scheduler_address, timeout=10):
            client = distributed.default_client()
            assert client.scheduler.address == cluster.scheduler_address
            assert ipsdask.read_logs([str(log)]).npartitions == 1
            assert len(ipsdask.read_logs([str(log)]).compute()) > 0
        with pytest.raises(ValueError, match="No clients found"):
            distributed.default_client()
        assert dask.config.get("scheduler", None) is None
