"""Output buffers hold nothing they should not and overwrite nothing the caller kept (issue 10).

1. Memory reached around a chunk's owner (the memoryview or the ``mmap`` behind a
   cache-backed chunk) is never handed out again.
2. A cached mapping closed by whoever held it is dropped, never an error.
5. Freed results give their memory back to the system within about a second.
6. Output buffers are sized by what the source holds; ``chunk_records`` is validated.
"""

from __future__ import annotations

import gc
import io
import os
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import concat_rows

import ipsecstats
from ipsecstats import _alloc, _checks, _io
from ipsecstats._backend import env_flag
from ipsecstats._alloc import CACHED_MIN_BYTES, MappingCache, aligned_empty
from ipsecstats.formats import open_reader

R = ipsecstats.RECORD_SIZE
BIG_CHUNK = CACHED_MIN_BYTES // 128 + 1000  # rows: every output chunk (rates: 128 bytes a row) is cache-backed

needs_cache = pytest.mark.skipif(not _alloc.CACHE.limit, reason="IPSECSTATS_BUFFER_CACHE_MB=0")


def _log(records: int, seed: int = 10) -> bytes:
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.integers(0, 1000, size=(records, 21), dtype=np.uint64), axis=0, dtype=np.uint64)
    return values.astype("<u8").tobytes()  # raw logs are little-endian


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    raw = _log(3 * BIG_CHUNK + 500)
    path = tmp_path_factory.mktemp("hardening") / "big.bin"
    path.write_bytes(raw)
    return path, raw


def _memory_bytes(chunk: np.ndarray) -> int:
    """The bytes of the allocation behind ``chunk`` (its owner array, or the buffer under it)."""
    obj: Any = chunk
    while isinstance(obj, np.ndarray) and obj.base is not None:
        obj = obj.base
    return memoryview(obj).nbytes


# --------------------------------------------------------------------------- 1. kept memory


def _iterate(what: str, path: Path, mm: bool) -> Any:
    if what == "iter_deltas":
        return ipsecstats.iter_deltas(path, chunk_records=BIG_CHUNK, mmap=mm)
    if what == "iter_rates":
        return ipsecstats.iter_rates(path, chunk_records=BIG_CHUNK, interval=1.0, mmap=mm)
    return ipsecstats.iter_records(path, chunk_records=BIG_CHUNK)


@needs_cache
@pytest.mark.parametrize("mm", [True, False], ids=["mmap", "readinto"])
@pytest.mark.parametrize("what", ["iter_deltas", "iter_rates", "iter_records"])
def test_memory_kept_through_the_mapping_is_never_overwritten(big_log: tuple[Path, bytes], what: str,
                                                              mm: bool) -> None:
    path, _ = big_log
    kept: Any = None
    snapshot = b""
    for i, chunk in enumerate(_iterate(what, path, mm)):
        if i == 0:
            assert isinstance(chunk.base.base, memoryview)  # cache-backed: owner -> memoryview -> mmap
            kept = chunk.base.base  # the memory, without the owner array
            snapshot = bytes(kept[: chunk.nbytes])
        del chunk
    assert bytes(kept[: len(snapshot)]) == snapshot


@needs_cache
def test_an_mmap_object_kept_is_never_reused(big_log: tuple[Path, bytes]) -> None:
    path, _ = big_log
    kept: Any = None
    snapshot = b""
    for i, chunk in enumerate(ipsecstats.iter_deltas(path, chunk_records=BIG_CHUNK)):
        if i == 0:
            kept = chunk.base.base.obj  # the mmap itself: no buffer export once the chunk is gone
            snapshot = kept[: chunk.nbytes]
        del chunk
    gc.collect()
    again = aligned_empty(len(kept), np.uint8)  # the cache must not hand it out either
    again[:] = 0xAB
    assert kept[: len(snapshot)] == snapshot


# --------------------------------------------------------------------------- 2. closed mappings


@needs_cache
@pytest.mark.parametrize("hold", [True, False], ids=["closed and held", "closed and dropped"])
def test_a_closed_mapping_is_dropped_not_fatal(hold: bool) -> None:
    words = CACHED_MIN_BYTES // 8
    a = aligned_empty(words, np.uint64)
    mapping = a.base.base.obj
    del a
    gc.collect()  # the mapping is back in the cache
    mapping.close()
    if not hold:
        del mapping
    _alloc.CACHE.cached_bytes()  # no length is asked of a closed mapping
    for _ in range(3):
        b = aligned_empty(words, np.uint64)
        b[:] = 5
        assert int(b[-1]) == 5
        del b
    ipsecstats.release_buffers()


@needs_cache
def test_a_mapping_closed_behind_iter_deltas_is_dropped(big_log: tuple[Path, bytes]) -> None:
    path, raw = big_log
    want = ipsecstats.deltas(ipsecstats.decode(raw))
    mappings = []
    for chunk in ipsecstats.iter_deltas(path, chunk_records=BIG_CHUNK):
        if isinstance(chunk.base.base, memoryview):  # the short last chunk is numpy's
            mappings.append(chunk.base.base.obj)
        del chunk
    assert len(mappings) >= 3
    for mapping in mappings:
        mapping.close()  # every chunk is gone: no export is left
    got = concat_rows(list(ipsecstats.iter_deltas(path, chunk_records=BIG_CHUNK)))
    assert got.tobytes() == want.tobytes()


# --------------------------------------------------------------------------- 5. memory given back


_RSS_SCRIPT = textwrap.dedent("""
    import gc, time
    import numpy as np
    import ipsecstats

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    ipsecstats.deltas(ipsecstats.decode(np.zeros(10 * 168, np.uint8), copy=True))
    gc.collect()
    base = rss()
    results = []
    for mb in (320, 160, 96, 32):
        records = ipsecstats.decode(np.zeros(mb * 2**20 // 168 * 168, np.uint8), copy=True)
        results.append(ipsecstats.deltas(records))
        del records
    peak = rss()
    del results
    gc.collect()
    start = time.monotonic()
    back = None
    while time.monotonic() - start < 4:
        if rss() - base <= 64 * 2**20:
            back = time.monotonic() - start
            break
        time.sleep(0.01)
    print(peak - base, back)
""")


@needs_cache
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")
def test_freed_results_give_their_memory_back_within_two_seconds() -> None:
    env = {k: v for k, v in os.environ.items() if k != "IPSECSTATS_BUFFER_CACHE_MB"}
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT], env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    peak, back = out.stdout.split()
    assert int(peak) > 600 * 2**20  # the results were really resident
    assert back != "None", "RSS still more than 64 MiB above the baseline 4 s after the results were freed"
    assert float(back) <= 2.0


def test_idle_mappings_decay_and_reused_ones_do_not() -> None:
    cache = MappingCache(limit=1 << 30, decay=1.0)  # long enough for the steps below on a busy machine
    a = cache.take(4 * 2**20)
    mapping = weakref.ref(a.base.obj)  # owner -> memoryview -> mmap; not the data address, which
    del a                              # the reuse proof's same-size mremap may move (qemu-user does)
    gc.collect()
    assert cache.cached_bytes() == 4 * 2**20
    b = cache.take(4 * 2**20)  # reused at once: the decay never sees it
    assert b.base.obj is mapping()
    del b
    deadline = time.monotonic() + 5
    while cache.cached_bytes() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.cached_bytes() == 0
    c = cache.take(4 * 2**20)  # the cache still works after the decay thread has emptied it
    del c
    assert cache.cached_bytes() == 4 * 2**20
    cache.clear()


def test_decay_and_reuse_racing_in_threads_never_share_memory() -> None:
    cache = MappingCache(limit=64 * 2**20, decay=0.002)  # the decay thread drops mappings all the time
    errors: list[tuple[int, int]] = []

    def work(seed: int) -> None:
        for k in range(150):
            a = cache.take(2 * 2**20 * (1 + k % 3)).view(np.uint64)
            a[:] = seed * 1000 + k
            if k % 10 == 0:
                time.sleep(0.004)  # idle long enough for the decay to act
                gc.collect()
            if not np.all(a == seed * 1000 + k):
                errors.append((seed, k))
            del a

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    cache.clear()


# A child forked from a multi-threaded process starts a thread, with nothing of ipsecstats.
_FORK_THREAD_PROBE = textwrap.dedent("""
    import os, threading
    held = threading.Event()
    threading.Thread(target=held.wait, daemon=True).start()
    pid = os.fork()
    if pid == 0:
        t = threading.Thread(target=int)
        t.start()
        t.join()
        os._exit(0)
    held.set()
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status))
""")


def _threads_die_after_fork_here() -> str | None:
    """Why a forked child cannot start a thread on this host, or None (never probed natively).

    qemu-user (7.2, as Debian 12 ships it) kills such a child with "qemu_plugin_vcpu_init_hook:
    assertion failed": its emulation of fork in a threaded process, not the cache, which the
    child needs a decay thread of its own for. tools/cross-test.sh sets IPSECSTATS_UNDER_QEMU=1;
    the probe then checks the emulator really has the bug.
    """
    if not env_flag("IPSECSTATS_UNDER_QEMU"):
        return None
    out = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", _FORK_THREAD_PROBE],
                         capture_output=True, text=True, timeout=120)
    if out.returncode == 0 and out.stdout.strip() == "0":
        return None
    said = [line.strip() for line in out.stderr.splitlines() if "assert" in line]
    detail = said[0] if said else f"child exit status {out.stdout.strip() or out.returncode}"
    return f"under qemu-user a child forked from a threaded process dies when it starts a thread: {detail}"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_decays_too() -> None:
    broken = _threads_die_after_fork_here()
    if broken:
        pytest.skip(broken)
    code = textwrap.dedent("""
        import gc, os, time
        import numpy as np
        from ipsecstats._alloc import CACHE, aligned_empty
        a = aligned_empty(20 * 2**20, np.uint8)
        del a
        pid = os.fork()
        if pid == 0:
            b = aligned_empty(20 * 2**20, np.uint8)
            del b
            gc.collect()
            deadline = time.monotonic() + 3
            while CACHE.cached_bytes() and time.monotonic() < deadline:
                time.sleep(0.02)
            os._exit(0 if CACHE.cached_bytes() == 0 else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "0"


def test_the_decay_thread_does_not_keep_the_interpreter_alive() -> None:
    code = ("import numpy as np; from ipsecstats._alloc import aligned_empty; "
            "a = aligned_empty(20 * 2**20, np.uint8); a[:] = 1; del a; print('done')")
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "done"
    assert time.monotonic() - start < 30


# --------------------------------------------------------------------------- 6. chunk sizes


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, bytes]:
    raw = _log(100)
    path = tmp_path / "tiny.bin"
    path.write_bytes(raw)
    return path, raw


@pytest.mark.parametrize("mm", [True, False], ids=["mmap", "readinto"])
def test_a_huge_chunk_size_on_a_small_file_costs_what_the_file_holds(tiny: tuple[Path, bytes], mm: bool) -> None:
    path, raw = tiny
    records = ipsecstats.decode(raw)
    ((d, resets),) = list(ipsecstats.iter_deltas(path, chunk_records=10**9, mmap=mm, return_resets=True))
    want, want_resets = ipsecstats.deltas(records, return_resets=True)
    assert d.tobytes() == want.tobytes() and np.array_equal(resets, want_resets)
    assert _memory_bytes(d) < 100 * R + 4096 and _memory_bytes(resets) < 100 * 21 + 4096
    (r,) = list(ipsecstats.iter_rates(path, chunk_records=10**9, interval=2.0, mmap=mm))
    assert r.tobytes() == ipsecstats.rates(records, interval=2.0).tobytes()
    assert _memory_bytes(r) < 100 * R + 4096
    (c,) = list(ipsecstats.iter_records(path, chunk_records=10**9))
    assert c.tobytes() == raw and _memory_bytes(c) < 100 * R + 4096


def test_a_huge_chunk_size_on_a_stream_grows_with_the_data() -> None:
    raw = _log(1000)
    (d,) = list(ipsecstats.iter_deltas(io.BytesIO(raw), chunk_records=10**9))
    assert d.tobytes() == ipsecstats.deltas(ipsecstats.decode(raw)).tobytes()
    assert _memory_bytes(d) <= 2 * _io.DEFAULT_CHUNK_RECORDS * R
    (c,) = list(ipsecstats.iter_records(io.BytesIO(raw), chunk_records=10**9))
    assert c.tobytes() == raw and _memory_bytes(c) <= 2 * _io.DEFAULT_CHUNK_RECORDS * R


def test_chunks_from_a_stream_keep_their_size_while_the_buffer_grows(tmp_path: Path) -> None:
    n = 3 * _io.DEFAULT_CHUNK_RECORDS + 123
    raw = _log(n)
    path = tmp_path / "same.bin"
    path.write_bytes(raw)
    records = ipsecstats.decode(raw)
    chunk = 2 * _io.DEFAULT_CHUNK_RECORDS + 7
    got = list(ipsecstats.iter_deltas(io.BytesIO(raw), chunk_records=chunk, return_resets=True,
                                      on_decrease="reset"))
    # cut where the same file is cut (a 4096-record read block is never split), past the first buffer
    sizes = [v.shape[0] for v in ipsecstats.iter_deltas(path, chunk_records=chunk, mmap=False)]
    assert [v.shape[0] for v, _ in got] == sizes and sizes[0] > 2 * _io.DEFAULT_CHUNK_RECORDS - 4096
    want, want_resets = ipsecstats.deltas(records, return_resets=True, on_decrease="reset")
    assert concat_rows([v for v, _ in got]).tobytes() == want.tobytes()
    assert np.array_equal(np.concatenate([r for _, r in got]), want_resets)
    recs = list(ipsecstats.iter_records(io.BytesIO(raw), chunk_records=chunk))
    assert [c.shape[0] for c in recs] == [chunk, n - chunk]
    assert concat_rows(recs).tobytes() == raw


class _LiveFile(io.FileIO):
    """A regular file that a writer extends while it is read (after the first read)."""

    def __init__(self, path: Path, more: bytes):
        super().__init__(path, "rb")
        self._path, self._more = path, more

    def readinto(self, view: Any) -> int:  # type: ignore[override]
        got = super().readinto(view)
        if self._more:
            with open(self._path, "ab") as f:
                f.write(self._more)
            self._more = b""
        return got  # type: ignore[return-value]


def test_a_regular_file_growing_inside_a_chunk(tmp_path: Path) -> None:
    raw = _log(20_000)
    path = tmp_path / "live.bin"
    path.write_bytes(raw[: 5000 * R])
    with _LiveFile(path, raw[5000 * R:]) as f:
        got = list(ipsecstats.iter_deltas(f, chunk_records=10**6, return_resets=True))
    assert [v.shape[0] for v, _ in got] == [19_999]  # sized for 4,999 rows, grown, still one chunk
    want, resets = ipsecstats.deltas(ipsecstats.decode(raw), return_resets=True)
    assert got[0][0].tobytes() == want.tobytes() and np.array_equal(got[0][1], resets)
    assert _memory_bytes(got[0][0]) <= 20_000 * R + 4096  # grown to what the file holds now
    path.write_bytes(raw[: 5000 * R])
    with _LiveFile(path, raw[5000 * R:]) as f:
        recs = list(ipsecstats.iter_records(f, chunk_records=10**6))
    assert concat_rows(recs).tobytes() == raw and len(recs) <= 2
    assert all(_memory_bytes(c) <= 2 * 20_000 * R for c in recs)


@pytest.mark.parametrize("what", ["iter_deltas", "iter_rates", "iter_records", "raw reader"])
@pytest.mark.parametrize("value", [2**32 + 1, 2**62, 10**30])
def test_chunk_records_beyond_the_limit_is_a_clear_value_error(tiny: tuple[Path, bytes], what: str,
                                                               value: int) -> None:
    path, _ = tiny
    with pytest.raises(ValueError, match=r"chunk_records must be at most 4,294,967,296 records"):
        if what == "raw reader":
            open_reader(path, "raw", chunk_records=value)
        elif what == "iter_rates":
            ipsecstats.iter_rates(path, chunk_records=value, interval=1.0)
        else:
            getattr(ipsecstats, what)(path, chunk_records=value)


def test_the_limit_itself_is_accepted(tiny: tuple[Path, bytes]) -> None:
    path, raw = tiny
    (c,) = list(ipsecstats.iter_records(path, chunk_records=2**32))
    assert c.tobytes() == raw and _memory_bytes(c) < 100 * R + 4096
    assert _checks.MAX_CHUNK_RECORDS == 2**32


def test_iter_rates_allocates_when_iterated_not_when_called(tiny: tuple[Path, bytes]) -> None:
    path, raw = tiny
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        it = ipsecstats.iter_rates(path, chunk_records=60_000, interval=1.0)  # 10 MB chunks, if allocated
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1 << 20
    (r,) = list(it)
    assert r.tobytes() == ipsecstats.rates(ipsecstats.decode(raw), interval=1.0).tobytes()


@pytest.mark.parametrize("source", ["path", "bytes", "stream"])
def test_the_raw_reader_sizes_chunks_by_the_source(tiny: tuple[Path, bytes], source: str) -> None:
    path, raw = tiny
    big = raw * 1000  # 100,000 records
    arg: Any = {"path": path, "bytes": big, "stream": io.BytesIO(big)}[source]
    data = raw if source == "path" else big
    reader = open_reader(arg, "raw", chunk_records=10**9)
    chunks = [c.records for c in reader]
    assert concat_rows(chunks).tobytes() == data
    assert all(_memory_bytes(c) <= 2 * max(len(data), 16384 * R) for c in chunks)
    sizes = [c.records.shape[0] for c in open_reader(io.BytesIO(big), "raw", chunk_records=30_000)]
    assert sizes == [30_000, 30_000, 30_000, 10_000]


@pytest.mark.parametrize("fmt", ["cim-csv", "pdh-csv", "wnode", "ipsecstats-csv"])
def test_every_reader_sizes_its_chunks_by_the_source_and_checks_the_limit(tmp_path: Path, fmt: str) -> None:
    """A huge chunk_records on a small capture of any format costs no more than the capture;
    beyond the limit it is a ValueError naming it."""
    from ipsecstats import formats

    from ipsecstats._generate import generate

    source = tmp_path / "small"

    recs = generate(6, instances=2)
    if fmt == "wnode":
        source.write_bytes(ipsecstats.write_wnode(recs, None, ["a", "b"] * 3))
    elif fmt == "ipsecstats-csv":
        assert subprocess.run([sys.executable, "-m", "ipsecstats", "convert", "-", "-o", str(source), "--format",
                               "csv"], input=recs.tobytes(), capture_output=True).returncode == 0
    elif fmt == "cim-csv":
        from test_cimcsv import export_csv

        rows = [(("A", "B")[k % 2], v) for k, v in enumerate(recs.view("<u8").reshape(-1, 21).tolist())]
        source.write_text(export_csv(rows), newline="")
    else:
        from test_pdhcsv import pdh_log

        source.write_bytes(pdh_log(recs, 2, others=False))
    reader = formats.open_reader(str(source), fmt, chunk_records=2**32)
    chunks = list(reader)
    assert sum(len(c) for c in chunks) == 6
    with pytest.raises(ValueError, match="chunk_records must be at most 4,294,967,296"):
        formats.open_reader(str(source), fmt, chunk_records=2**32 + 1)
