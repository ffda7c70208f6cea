"""``atomic_output`` syncs a growing file while it is written (``_WriteBehind``), and the thread
that does so is gone before the file is closed, whether the write completes or fails."""

from __future__ import annotations

import os
import threading
import time

import pytest

from ipsecstats import _export
from ipsecstats._export import atomic_output

pytestmark = pytest.mark.skipif(not hasattr(os, "fdatasync"), reason="no fdatasync: nothing runs behind")


def _behind_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ipsecstats-write-behind"]


def test_a_growing_file_is_synced_while_it_is_written(tmp_path, monkeypatch):
    calls: list[int] = []
    real = os.fdatasync

    def recording(fd: int) -> None:
        calls.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", recording)
    monkeypatch.setattr(_export._WriteBehind, "STEP", 4096)
    monkeypatch.setattr(_export._WriteBehind, "PERIOD", 0.001)
    path = tmp_path / "out.bin"
    block = b"x" * 8192
    with atomic_output(path) as f:
        for _ in range(20):
            f.write(block)
            f.flush()
            deadline = time.monotonic() + 2
            while (not calls or calls[-1] < f.tell()) and time.monotonic() < deadline:
                time.sleep(0.001)
        assert len(_behind_threads()) == 1
    assert path.read_bytes() == block * 20
    assert len(calls) >= 2 and calls == sorted(calls) and calls[-1] <= 20 * 8192  # synced as it grew
    assert _behind_threads() == []


def test_the_thread_stops_when_the_write_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(_export._WriteBehind, "PERIOD", 0.001)
    path = tmp_path / "out.bin"
    with pytest.raises(RuntimeError, match="half way"):
        with atomic_output(path) as f:
            f.write(b"partial")
            raise RuntimeError("half way")
    assert not path.exists() and os.listdir(tmp_path) == []
    assert _behind_threads() == []


def test_a_small_file_is_never_synced_early(tmp_path, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(os, "fdatasync", lambda fd: calls.append(fd))
    monkeypatch.setattr(_export._WriteBehind, "PERIOD", 0.001)
    with atomic_output(tmp_path / "small.txt") as f:
        f.write(b"a few bytes\n")
        time.sleep(0.02)
    assert calls == []
