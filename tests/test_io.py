"""Reading logs from files: ``read`` and the streaming iterators.

The iterators must equal the one-shot functions on the whole file, exactly, for any
chunk size, stride and policy; report partial tails (also of a file that grows while it
is read); never overwrite a chunk the caller kept; and keep memory bounded.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ipsecstats
from ipsecstats import PartialRecordWarning, TruncatedRecordError, _io

from conftest import EDGES, EMULATOR_RSS_MIB, POLICIES, concat_rows, random_values, records_from

R = ipsecstats.RECORD_SIZE


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def log(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, bytes]:
    raw = random_values(rng, 1000).astype("<u8").tobytes()
    return write(tmp_path / "log.bin", raw), raw


@pytest.fixture(scope="module")
def scratch() -> Path:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# --------------------------------------------------------------------------- read


def test_read_path_str_pathlike_and_file_object(log: tuple[Path, bytes]) -> None:
    path, raw = log
    for source in (str(path), path):
        got = ipsecstats.read(source)
        assert got.dtype == ipsecstats.RECORD_DTYPE and got.flags.writeable and got.flags.owndata
        assert got.tobytes() == raw
    with open(path, "rb") as f:
        f.seek(3 * R)  # a file object is read from its current position
        assert ipsecstats.read(f, start=2, count=5).tobytes() == raw[5 * R : 10 * R]
        assert f.tell() == 10 * R
    assert ipsecstats.read(io.BytesIO(raw), start=990).tobytes() == raw[990 * R :]


def test_read_ranges(log: tuple[Path, bytes]) -> None:
    path, raw = log
    assert ipsecstats.read(path, start=7, count=3).tobytes() == raw[7 * R : 10 * R]
    assert ipsecstats.read(path, start=1000).shape == (0,)
    assert ipsecstats.read(path, count=0).shape == (0,)
    with pytest.raises(ValueError, match=r"log\.bin: start=1001 is past the end \(1000 whole records\)"):
        ipsecstats.read(path, start=1001)
    with pytest.raises(ValueError, match=r"log\.bin: records 990 to 1001 requested, but it holds 1000"):
        ipsecstats.read(path, start=990, count=11)
    with pytest.raises(ValueError, match="start must be >= 0"):
        ipsecstats.read(path, start=-1)
    with pytest.raises(TypeError, match="count must be an integer"):
        ipsecstats.read(path, count=True)


def test_read_mmap_is_read_only_and_exact(log: tuple[Path, bytes]) -> None:
    path, raw = log
    mapped = ipsecstats.read(path, mmap=True, start=3, count=500)
    assert not mapped.flags.writeable
    assert mapped.tobytes() == raw[3 * R : 503 * R]
    assert ipsecstats.deltas(mapped).tobytes() == ipsecstats.deltas(ipsecstats.decode(raw[3 * R : 503 * R])).tobytes()
    assert ipsecstats.read(path, mmap=True, start=1000).shape == (0,)
    with pytest.raises(ValueError, match="mmap=True needs a file with a file descriptor"):
        ipsecstats.read(io.BytesIO(raw), mmap=True)


def test_read_partial_tail(tmp_path: Path) -> None:
    raw = records_from([[v] * 21 for v in EDGES]).tobytes()
    path = write(tmp_path / "cut.bin", raw + b"\x01" * 100)
    with pytest.raises(TruncatedRecordError) as info:
        ipsecstats.read(path)
    assert (info.value.offset, info.value.trailing_bytes, info.value.records) == (len(raw), 100, len(EDGES))
    assert str(path) in str(info.value)
    with pytest.warns(PartialRecordWarning, match=f"ignored 100 trailing byte.* at byte offset {len(raw)}"):
        got = ipsecstats.read(path, allow_partial=True)
    assert got.tobytes() == raw
    # a range that stops before the tail does not touch it
    assert ipsecstats.read(path, count=len(EDGES)).tobytes() == raw
    with pytest.raises(ValueError, match="and 100 trailing byte"):
        ipsecstats.read(path, count=len(EDGES) + 1)


def test_read_rejects_what_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="to decode bytes in memory use decode"):
        ipsecstats.read(b"\x00" * R)
    with pytest.raises(TypeError, match="binary file object"):
        ipsecstats.read(io.StringIO("x"))
    with pytest.raises(TypeError, match="not int"):
        ipsecstats.read(3)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        ipsecstats.read(tmp_path / "missing.bin")
    with pytest.raises(FileNotFoundError):
        ipsecstats.iter_deltas(tmp_path / "missing.bin")  # at the call, before any chunk


def test_read_from_a_pipe(rng: np.random.Generator) -> None:
    raw = random_values(rng, 300).astype("<u8").tobytes() + b"\x07" * 5
    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb") as f:
            for i in range(0, len(raw), 1000):
                f.write(raw[i : i + 1000])

    thread = threading.Thread(target=feed)
    thread.start()
    with os.fdopen(r, "rb") as f, pytest.warns(PartialRecordWarning, match="5 trailing"):
        got = ipsecstats.read(f, start=10, allow_partial=True)
    thread.join()
    assert got.tobytes() == raw[10 * R : 300 * R]


# --------------------------------------------------------------------------- streaming equals one-shot


@settings(max_examples=60)
@given(
    n=st.integers(0, 260),
    chunk=st.integers(1, 300),
    stride=st.integers(1, 6),
    policy=st.sampled_from(POLICIES),
    via=st.sampled_from(["mmap", "readinto", "fileobj"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_iter_deltas_equals_one_shot(scratch: Path, n: int, chunk: int, stride: int, policy: str, via: str,
                                     seed: int) -> None:
    raw = random_values(np.random.default_rng(seed), n).astype("<u8").tobytes() if n else b""
    records = ipsecstats.decode(raw)
    want, want_resets = ipsecstats.deltas(records, stride=stride, on_decrease=policy, return_resets=True)
    path = write(scratch / f"eq{seed}.bin", raw)
    if via == "fileobj":
        source: object = io.BytesIO(raw)
    else:
        source = path
    got = list(ipsecstats.iter_deltas(source, chunk_records=chunk, stride=stride, on_decrease=policy,  # type: ignore[arg-type]
                                      return_resets=True, mmap=via == "mmap"))
    values = concat_rows([v for v, _ in got], want.dtype)
    resets = np.concatenate([r for _, r in got]) if got else np.empty((0, 21), bool)
    assert values.dtype == want.dtype and values.tobytes() == want.tobytes()
    assert np.array_equal(resets, want_resets)
    assert all(0 < v.shape[0] <= chunk for v, _ in got)

    recs = list(ipsecstats.iter_records(io.BytesIO(raw) if via == "fileobj" else path, chunk_records=chunk))
    assert concat_rows(recs, ipsecstats.RECORD_DTYPE).tobytes() == raw
    path.unlink()


@settings(max_examples=40)
@given(n=st.integers(0, 200), chunk=st.integers(1, 120), stride=st.integers(1, 4),
       policy=st.sampled_from(POLICIES), seed=st.integers(0, 2**32 - 1), use_timestamps=st.booleans())
def test_iter_rates_equals_one_shot(n: int, chunk: int, stride: int, policy: str, seed: int,
                                    use_timestamps: bool) -> None:
    rng = np.random.default_rng(seed)
    raw = random_values(rng, n).astype("<u8").tobytes() if n else b""
    records = ipsecstats.decode(raw)
    if use_timestamps:
        ts = np.cumsum(rng.integers(-1, 5, size=n)).astype("datetime64[s]")  # includes zero and negative steps
        kwargs: dict = {"timestamps": ts}
    else:
        kwargs = {"interval": 7.5}
    want = ipsecstats.rates(records, stride=stride, on_decrease=policy, **kwargs)
    got = list(ipsecstats.iter_rates(io.BytesIO(raw), chunk_records=chunk, stride=stride, on_decrease=policy, **kwargs))
    values = concat_rows(got, want.dtype)
    assert values.dtype == want.dtype
    assert values.tobytes() == want.tobytes()  # NaN where the time step is not positive, bit for bit


def test_iter_rates_checks_timestamps_and_interval(log: tuple[Path, bytes]) -> None:
    path, _ = log
    with pytest.raises(ValueError, match="timestamps has 1001 entries for 1000 records"):
        list(ipsecstats.iter_rates(path, timestamps=np.arange(1001.0)))
    with pytest.raises(ValueError, match="timestamps has 999 entries, but the file has more records"):
        list(ipsecstats.iter_rates(path, timestamps=np.arange(999.0)))
    with pytest.raises(ValueError, match="timestamps has 10 entries, but the file has more records"):
        list(ipsecstats.iter_rates(path, timestamps=np.arange(10.0), chunk_records=100))
    with pytest.raises(ValueError, match="exactly one of interval"):
        ipsecstats.iter_rates(path)
    with pytest.raises(ValueError, match="exactly one of interval"):
        ipsecstats.iter_rates(path, interval=1.0, timestamps=np.arange(1000.0))
    with pytest.raises(ValueError, match="interval must be a finite number"):
        ipsecstats.iter_rates(path, interval=0)


def test_arguments_are_checked_at_the_call(log: tuple[Path, bytes]) -> None:
    path, _ = log
    with pytest.raises(ValueError, match="chunk_records must be >= 1"):
        ipsecstats.iter_deltas(path, chunk_records=0)
    with pytest.raises(ValueError, match="on_decrease must be one of"):
        ipsecstats.iter_deltas(path, on_decrease="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stride must be >= 1"):
        ipsecstats.iter_rates(path, interval=1.0, stride=0)
    with pytest.raises(ValueError, match="unknown field"):
        ipsecstats.iter_deltas(path, kinds={"Nope": "gauge"})
    with pytest.raises(TypeError, match="chunk_records must be an integer"):
        ipsecstats.iter_records(path, chunk_records=2.0)  # type: ignore[arg-type]


def test_kinds_override_flows_through(log: tuple[Path, bytes]) -> None:
    path, raw = log
    kinds = {"ConnectionListSize": "counter", "OakleyMainMode": "gauge"}
    want = ipsecstats.deltas(ipsecstats.decode(raw), kinds=kinds, on_decrease="reset")
    got = concat_rows(list(ipsecstats.iter_deltas(path, chunk_records=77, kinds=kinds, on_decrease="reset")))
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_raise_policy_names_the_global_row(tmp_path: Path) -> None:
    values = np.cumsum(np.ones((5000, 21), dtype=np.uint64), axis=0, dtype=np.uint64)
    values[4321:, 8] -= np.uint64(3000)  # AuthenticationFailures falls at record 4321
    path = write(tmp_path / "fall.bin", values.astype("<u8").tobytes())
    for mm in (True, False):
        with pytest.raises(ipsecstats.CounterResetError) as info:
            for _ in ipsecstats.iter_deltas(path, chunk_records=1000, stride=2, on_decrease="raise", mmap=mm):
                pass
        assert info.value.field == "AuthenticationFailures"
        assert info.value.row in (4321 - 2, 4322 - 2)  # the two rows that end at a fallen record
        assert info.value.row == 4319


# --------------------------------------------------------------------------- chunks belong to the caller


def test_kept_chunks_are_never_overwritten(tmp_path: Path, rng: np.random.Generator) -> None:
    raw = random_values(rng, 20_000, fall_fraction=0.0).astype("<u8").tobytes()
    path = write(tmp_path / "keep.bin", raw)
    want = ipsecstats.deltas(ipsecstats.decode(raw), stride=2)
    kept, views, row = [], [], 0
    for i, chunk in enumerate(ipsecstats.iter_deltas(path, chunk_records=1000, stride=2)):
        if i % 3 == 0:
            kept.append((row, chunk))  # the chunk itself
        elif i % 3 == 1:
            views.append((row, chunk["OakleyMainMode"][5:]))  # only a view of one field
        row += chunk.shape[0]
    for start, chunk in kept:
        assert chunk.tobytes() == want[start : start + chunk.shape[0]].tobytes()
    for start, view in views:
        assert np.array_equal(view, want["OakleyMainMode"][start + 5 : start + 5 + view.shape[0]])
    records = list(ipsecstats.iter_records(path, chunk_records=999))
    assert concat_rows(records).tobytes() == raw
    assert all(r.flags.writeable for r in records)


@pytest.mark.skipif(not _io._CAN_RECYCLE, reason="output recycling needs CPython reference counts")
def test_dropped_chunks_are_recycled(tmp_path: Path, rng: np.random.Generator) -> None:
    path = write(tmp_path / "recycle.bin", random_values(rng, 12_000).astype("<u8").tobytes())
    owners = set()
    for chunk in ipsecstats.iter_deltas(path, chunk_records=1000):
        owners.add(id(chunk.base))
    assert len(owners) == 2  # two buffers alternate: the loop variable still holds the previous chunk
    owners.clear()
    for chunk in ipsecstats.iter_rates(path, chunk_records=1000, interval=1.0):
        owners.add(id(chunk.base))
    assert len(owners) == 2


# --------------------------------------------------------------------------- partial tails and live files


@pytest.mark.parametrize("mm", [True, False])
def test_iterators_report_a_partial_tail_after_the_whole_records(tmp_path: Path, rng: np.random.Generator,
                                                                  mm: bool) -> None:
    raw = random_values(rng, 5000).astype("<u8").tobytes()
    path = write(tmp_path / "tail.bin", raw + b"\xff" * 77)
    want = ipsecstats.deltas(ipsecstats.decode(raw))
    got: list[np.ndarray] = []
    with pytest.raises(TruncatedRecordError) as info:
        for chunk in ipsecstats.iter_deltas(path, chunk_records=4096, mmap=mm):
            got.append(chunk)
    assert concat_rows(got).tobytes() == want.tobytes()  # every whole record, nothing of the tail
    assert (info.value.offset, info.value.trailing_bytes) == (len(raw), 77)
    with pytest.warns(PartialRecordWarning, match=f"77 trailing byte.* at byte offset {len(raw)}"):
        got = list(ipsecstats.iter_deltas(path, allow_partial=True, mmap=mm))
    assert concat_rows(got).tobytes() == want.tobytes()
    with pytest.raises(TruncatedRecordError):
        list(ipsecstats.iter_records(path))


@pytest.mark.parametrize("mm", [True, False])
def test_a_file_growing_while_read(tmp_path: Path, rng: np.random.Generator, mm: bool) -> None:
    """A live capture: records (and a partial record) appended between chunks are read too."""
    raw = random_values(rng, 10_000).astype("<u8").tobytes()
    first = 9000 * R + 50  # the writer is in the middle of record 9000
    path = write(tmp_path / "live.bin", raw[:first])
    chunks = []
    with pytest.raises(TruncatedRecordError) as info:
        for i, chunk in enumerate(ipsecstats.iter_deltas(path, chunk_records=4096, mmap=mm)):
            chunks.append(chunk)
            if i == 0:
                with open(path, "ab") as f:
                    f.write(raw[first : 9999 * R + 20])  # completes 9000, adds more, ends mid-record
    assert info.value.offset == 9999 * R and info.value.trailing_bytes == 20
    want = ipsecstats.deltas(ipsecstats.decode(raw[: 9999 * R]))
    assert concat_rows(chunks).tobytes() == want.tobytes()


_TRUNCATE_SCRIPT = textwrap.dedent("""
    import os, sys
    import ipsecstats

    path = sys.argv[1]
    rows = 0
    try:
        for i, chunk in enumerate(ipsecstats.iter_deltas(path, stride=2)):  # the default settings
            rows += chunk.shape[0]
            if i == 0:
                os.truncate(path, 168)  # as logrotate's copytruncate does, between two chunks
    except OSError as exc:
        print(rows, exc)
""")


def test_a_file_truncated_between_chunks_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """In a child process: were a stale memory map read again, SIGBUS would kill it, not pytest."""
    path = tmp_path / "rotated.bin"
    path.write_bytes(np.arange(70_000 * 21, dtype="<u8").tobytes())  # two default chunks and a bit
    out = subprocess.run([sys.executable, "-c", _TRUNCATE_SCRIPT, str(path)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, f"exit status {out.returncode} (-7 is SIGBUS): {out.stderr}"
    rows, message = out.stdout.split(" ", 1)
    assert int(rows) in (65536 - 2, 65536)  # the first chunk, whole (mmap or readinto); then the error
    assert "rotated.bin: the file shrank to 168 bytes while it was read (at byte offset" in message


@pytest.mark.parametrize("via", ["mmap", "readinto", "fileobj", "records"])
def test_a_file_shrinking_while_read_is_an_error(tmp_path: Path, rng: np.random.Generator, via: str) -> None:
    path = write(tmp_path / "shrink.bin", random_values(rng, 10_000).astype("<u8").tobytes())
    with open(path, "rb") as f, pytest.raises(OSError, match=r"shrink\.bin: the file shrank to 168 bytes while it was read"):
        if via == "records":
            chunks = ipsecstats.iter_records(path, chunk_records=4096)
        else:
            chunks = ipsecstats.iter_deltas(f if via == "fileobj" else path, chunk_records=4096, mmap=via == "mmap")
        for i, _ in enumerate(chunks):
            if i == 0:
                os.truncate(path, R)


def test_file_objects_stay_open_and_paths_are_closed(log: tuple[Path, bytes]) -> None:
    path, raw = log
    f = io.BytesIO(raw)
    assert sum(c.shape[0] for c in ipsecstats.iter_deltas(f, chunk_records=100)) == 999
    assert not f.closed and f.tell() == len(raw)
    it = ipsecstats.iter_deltas(path, chunk_records=100)
    next(it)
    it.close()  # an abandoned iterator closes its file (no ResourceWarning: warnings are errors)
    never_started = ipsecstats.iter_records(path)
    del never_started


# --------------------------------------------------------------------------- bounded memory

_RSS_SCRIPT = textwrap.dedent("""
    import sys
    import ipsecstats

    def peak():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

    path, chunk = sys.argv[1], int(sys.argv[2])
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak to the current RSS
    before = peak()
    rows = 0
    for d in ipsecstats.iter_deltas(path, chunk_records=chunk, stride=2):
        rows += d.shape[0]
    print(before, peak(), rows)
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc/self/clear_refs")
def test_memory_stays_bounded(tmp_path: Path) -> None:
    """64 MiB with 4096-record chunks: the 1 GiB / 100 MiB / 65536-record bound, scaled by 1/16."""
    block = np.arange(4096 * 21, dtype="<u8").tobytes()
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        for _ in range(2**26 // len(block)):
            f.write(block)
    size = path.stat().st_size
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(path), "4096"], capture_output=True, text=True,
                         check=True)
    before, after, rows = map(int, out.stdout.split())
    assert rows == size // R - 2
    bound = 100 * 2**20 * size / 2**30 + EMULATOR_RSS_MIB * 2**20
    assert after - before <= bound, f"peak RSS grew by {(after - before) / 2**20:.1f} MiB"


def test_warnings_are_not_swallowed(tmp_path: Path) -> None:
    path = write(tmp_path / "w.bin", b"\x00" * (3 * R + 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(ipsecstats.read(path, allow_partial=True)) == 3
    assert [type(w.message) for w in caught] == [PartialRecordWarning]


@pytest.mark.parametrize("reader", ["read", "iter_records", "iter_deltas"])
def test_partial_record_offsets_count_from_the_start_of_the_file(tmp_path: Path, reader: str) -> None:
    path = tmp_path / "tail.bin"
    path.write_bytes(bytes(168 * 10 + 5))
    with open(path, "rb") as f:
        f.seek(168 * 4)  # the caller skipped 4 records before handing the file over
        with pytest.raises(ipsecstats.TruncatedRecordError) as info:
            if reader == "read":
                ipsecstats.read(f)
            else:
                for _ in getattr(ipsecstats, reader)(f, chunk_records=4):
                    pass
    assert info.value.records == 6 and info.value.trailing_bytes == 5
    assert info.value.offset == 168 * 10
    assert "at byte offset 1680" in str(info.value)


@pytest.mark.parametrize("reader", ["read", "read_mmap", "iter_records"])
def test_partial_record_warning_names_the_callers_line(tmp_path: Path, reader: str) -> None:
    path = tmp_path / "tail.bin"
    path.write_bytes(bytes(168 * 3 + 7))
    with pytest.warns(ipsecstats.PartialRecordWarning) as caught:
        if reader == "iter_records":
            list(ipsecstats.iter_records(path, allow_partial=True))
        else:
            ipsecstats.read(path, allow_partial=True, mmap=reader == "read_mmap")
    assert [w.filename for w in caught] == [__file__]
