"""Text exports go to a regular file through a writing thread (``_export._Utf8Sink``): the bytes
arrive whole and in order, a failed write is raised in the formatting thread and stops the
export (no partial file is left), an error of the export stops the writes, and the thread is
gone when the export ends, whatever the outcome. Pipes and FIFOs are written directly."""

from __future__ import annotations

import errno
import io
import os
import threading
import time

import numpy as np
import pytest

from ipsecstats import _export


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ipsecstats-write-ahead"]


class _FullAfter(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, room: int):
        self.room = room
        self.data = bytearray()
        self.failed = False
        self.calls_after_failure = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        if self.failed:
            self.calls_after_failure += 1
        if len(self.data) + len(b) > self.room:
            self.failed = True
            self.data.extend(bytes(b)[: self.room - len(self.data)])
            raise OSError(errno.ENOSPC, "No space left on device")
        self.data.extend(b)
        return len(b)


def test_blocks_and_text_arrive_whole_and_in_order():
    f = io.BytesIO()
    blocks = [bytes([65 + k % 26]) * (1000 + k) for k in range(50)]
    with _export._Utf8Sink(f, threaded=True) as sink:
        for k, block in enumerate(blocks):
            if k % 7 == 0:
                sink.write(block.decode() + "é")
            else:
                sink.write_bytes(bytearray(block))
    want = b"".join(b + "é".encode() if k % 7 == 0 else b for k, b in enumerate(blocks))
    assert f.getvalue() == want
    assert not _writer_threads()


def test_a_failed_write_is_raised_and_nothing_more_is_written():
    f = _FullAfter(5000)
    with pytest.raises(OSError) as info:
        with _export._Utf8Sink(f, threaded=True) as sink:
            for _ in range(100):
                sink.write_bytes(b"x" * 1000)
    assert info.value.errno == errno.ENOSPC
    assert bytes(f.data) == b"x" * 5000 and f.calls_after_failure == 0
    assert not _writer_threads()


def test_an_error_of_the_formatting_side_wins_and_the_thread_ends():
    f = _FullAfter(10)
    with pytest.raises(KeyError):
        with _export._Utf8Sink(f, threaded=True) as sink:
            sink.write_bytes(b"y" * 100)  # fails in the thread
            raise KeyError("the input's error")
    assert not _writer_threads()


def test_an_export_to_a_full_disk_leaves_no_file(tmp_path, monkeypatch, capsys):
    """``convert`` whose writes fail part way: one line naming the error, exit status 1, the
    temporary file removed and nothing left at the output's name."""
    from ipsecstats.cli import main

    log = tmp_path / "in" / "log.bin"
    log.parent.mkdir()
    np.arange(4000 * 21, dtype="<u8").tofile(log)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(_export, "TEXT_BLOCK", 4096)  # many blocks
    real_fdopen = _export.os.fdopen

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        written = [0]
        real_write = f.write

        def write(b):
            written[0] += len(b)
            if written[0] > 20_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(b)

        f.write = write
        return f

    monkeypatch.setattr(_export.os, "fdopen", fdopen)
    status = main(["convert", str(log), "--what", "records", "-o", str(out / "x.jsonl"), "--progress", "never"])
    assert status == 1
    assert "No space left on device" in capsys.readouterr().err
    assert list(out.iterdir()) == []
    assert not _writer_threads()


class _Slow(io.RawIOBase):
    def __init__(self) -> None:
        self.blocks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        time.sleep(0.2)
        self.blocks.append(bytes(b))
        return len(b)


def test_an_error_of_the_export_stops_the_queued_writes():
    f = _Slow()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with _export._Utf8Sink(f, threaded=True) as sink:
            for k in range(3):  # one being written, two queued
                sink.write_bytes(bytes([k]) * 10)
            raise KeyboardInterrupt
    assert time.monotonic() - start < 0.55 and len(f.blocks) <= 1
    assert not _writer_threads()


def test_small_text_writes_go_out_in_blocks():
    calls: list[int] = []

    class Counting(io.BytesIO):
        def write(self, b) -> int:  # type: ignore[override]
            calls.append(len(b))
            return super().write(b)

    f = Counting()
    for threaded in (False, True):
        calls.clear()
        f.seek(0)
        f.truncate()
        with _export._Utf8Sink(f, threaded=threaded) as sink:
            for k in range(100_000):  # as csv.writer writes: a row at a time
                sink.write(f"{k},é\n")
            sink.write_bytes(b"end\n")
        assert f.getvalue() == "".join(f"{k},é\n" for k in range(100_000)).encode() + b"end\n"
        assert len(calls) <= 3


def test_only_regular_files_are_written_by_a_thread(tmp_path):
    with open(tmp_path / "x", "wb") as f:
        assert _export._is_regular(f)
    r, w = os.pipe()
    with os.fdopen(r, "rb") as rf, os.fdopen(w, "wb") as wf:
        assert not _export._is_regular(wf) and not _export._is_regular(rf)
    assert not _export._is_regular(io.BytesIO())
