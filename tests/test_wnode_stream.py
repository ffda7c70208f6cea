"""The streaming WNODE reader: chunks equal the whole-file read for every window and chunk
size and every kind of source; special files; hostile names cost linear time.

``formats.wnode.WINDOW_BYTES`` (the window the walk reads into) is patched down to a few
bytes so that buffers and chains split at every offset and the window has to grow.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import warnings

import numpy as np
import pytest
from conftest import KERNELS, records_from, using_kernel
from test_wnode import (
    A,
    B,
    C,
    HOSTILE,
    OTHER_GUID,
    TICKS0,
    all_data_fixed,
    all_data_pairs,
    chain,
    header,
    single_instance,
    too_small,
    values,
)

import ipsecstats
from ipsecstats import WnodeFormatError, WnodeWarning, read_wnode, write_wnode
from ipsecstats import _wnode_layout as layout
from ipsecstats._capture import concat
from ipsecstats._source import ByteSource
from ipsecstats.formats import wnode

WINDOWS = [1, 7, 48, 64, 100, 257, 400, 1000, 4096]
CHUNKS = [1, 2, 3, 16384]


@pytest.fixture(params=sorted(KERNELS))
def both(request: pytest.FixtureRequest):
    with using_kernel(KERNELS[request.param]):
        yield request.param


def _capture_mid_capture_instances() -> bytes:
    """Chains, buffers back to back, single instances, ANSI names, other GUIDs, TOO_SMALL,
    and instances that appear only later (C, then "late")."""
    recs = records_from([values(i) for i in range(9)])
    ts = np.repeat(np.datetime64("2024-01-01", "ns") + np.arange(3) * np.timedelta64(10, "s"), 3)
    written = write_wnode(recs, ts, [A, B, A, B, C, A, "late", C, B], nodes_per_buffer=2)
    return (all_data_fixed([(A, values(1)), (B, values(2))])
            + chain(all_data_pairs([(A, values(3))]), single_instance(C, values(4), ansi=True),
                    all_data_fixed([(B, values(9))], guid=OTHER_GUID))
            + too_small(4096)
            + written
            + single_instance("caf\xe9", values(5), ticks=TICKS0 + 1, ansi=True))


DATA = _capture_mid_capture_instances()


def _stream(source, window: int, chunk_records: int, allow_partial: bool = True, monkeypatch=None):
    monkeypatch.setattr(wnode, "WINDOW_BYTES", window)
    reader = wnode.WnodeReader(ByteSource(source, "read_wnode()"), chunk_records=chunk_records, allow_partial=allow_partial)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chunks = list(reader)
    return chunks, [str(w.message) for w in caught]


def _same(a: ipsecstats.Capture, b: ipsecstats.Capture) -> None:
    assert a.records.tobytes() == b.records.tobytes()
    assert a.timestamps.tobytes() == b.timestamps.tobytes()
    assert a.instance_codes.tolist() == b.instance_codes.tolist()
    assert a.instance_names == b.instance_names


def _check_chunks(chunks, chunk_records: int) -> None:
    start = 0
    for c in chunks:
        assert 0 < len(c) <= chunk_records and c.start == start
        assert c.instance_names == chunks[-1].instance_names[: len(c.instance_names)]  # codes stay stable
        start += len(c)


def test_stream_equals_whole_file_for_every_window_and_chunk_size(both, monkeypatch):
    with pytest.warns(WnodeWarning):
        whole = read_wnode(DATA, allow_partial=True)
    assert whole.instance_names == (A, B, C, "late", "caf\xe9")
    for window in WINDOWS:
        for chunk_records in CHUNKS:
            chunks, messages = _stream(DATA, window, chunk_records, monkeypatch=monkeypatch)
            _check_chunks(chunks, chunk_records)
            _same(concat(chunks), whole)
            assert len(messages) == 2 and "1 WNODE(s) of other GUIDs" in messages[0]
            assert "1 WNODE_TOO_SMALL" in messages[1]


def test_every_split_point_of_two_buffers(both, monkeypatch):
    buf = all_data_pairs([(A, values(1)), (B, values(2))]) + single_instance(C, values(3))
    whole = read_wnode(buf)
    for window in range(1, len(buf) + 2):
        chunks, _ = _stream(buf, window, 1, monkeypatch=monkeypatch)
        _same(concat(chunks), whole)


def _pipe(data: bytes):
    r, w = os.pipe()

    def write() -> None:
        with os.fdopen(w, "wb") as f:
            for i in range(0, len(data), 333):
                f.write(data[i: i + 333])

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return os.fdopen(r, "rb", buffering=0), thread


def test_sources_path_file_object_pipe_and_bytes(both, tmp_path, monkeypatch):
    path = tmp_path / "capture.wnode"
    path.write_bytes(DATA)
    with pytest.warns(WnodeWarning):
        whole = read_wnode(DATA, allow_partial=True)
    for window in (64, 1000, 1 << 20):
        for make in ("bytes", "path", "file", "pipe"):
            thread = None
            if make == "bytes":
                src = DATA
            elif make == "path":
                src = str(path)
            elif make == "file":
                src = open(path, "rb")  # noqa: SIM115
            else:
                src, thread = _pipe(DATA)
            chunks, _ = _stream(src, window, 5, monkeypatch=monkeypatch)
            _same(concat(chunks), whole)
            if make in ("file", "pipe"):
                src.close()
            if thread is not None:
                thread.join()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_errors_are_identical_for_every_window(case, both, monkeypatch):
    buf, offset, field = HOSTILE[case]
    good = all_data_fixed([(A, values(1))])
    data = good + good + buf  # the error lies in a later buffer: offsets must be absolute
    with pytest.raises(WnodeFormatError) as whole:
        read_wnode(data)
    assert (whole.value.offset, whole.value.field) == (2 * len(good) + offset, field)
    for window in (1, 48, 64, 300, 1000):
        with pytest.raises(WnodeFormatError) as err:
            _stream(data, window, 2, allow_partial=False, monkeypatch=monkeypatch)
        assert str(err.value) == str(whole.value)


def test_truncated_tail_for_every_window(both, monkeypatch):
    good = all_data_fixed([(A, values(1)), (B, values(2))])
    linked = chain(good, good)
    for tail in (linked[:-5], good[:30], linked[: len(good) + 20]):
        buf = good + good + tail
        with pytest.raises(WnodeFormatError) as whole:
            read_wnode(buf)
        with pytest.warns(WnodeWarning) as caught:
            expect = read_wnode(buf, allow_partial=True)
        for window in (1, 64, 500, 1 << 16):
            with pytest.raises(WnodeFormatError) as err:
                _stream(buf, window, 3, allow_partial=False, monkeypatch=monkeypatch)
            assert str(err.value) == str(whole.value)
            chunks, messages = _stream(buf, window, 3, monkeypatch=monkeypatch)
            _same(concat(chunks), expect)
            assert messages == [str(caught[0].message)]
            assert f"from byte offset {2 * len(good)}" in messages[0]


def test_a_file_object_mid_file_reports_positions_in_the_file(both, tmp_path):
    good = all_data_fixed([(A, values(1))])
    bad = HOSTILE["FixedInstanceSize 160"][0]
    path = tmp_path / "x.wnode"
    path.write_bytes(b"junk" + good + bad)
    with open(path, "rb") as f:
        f.seek(4)
        with pytest.raises(WnodeFormatError) as err:
            read_wnode(f)
    assert err.value.offset == 4 + len(good) + 60


def test_a_fifo_is_read_to_its_end(both, tmp_path):
    recs = records_from([values(i) for i in range(100)])
    data = write_wnode(recs, None, [A, B] * 50)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as f:
            f.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    cap = read_wnode(fifo)
    thread.join()
    assert len(cap) == 100 and cap.records.tobytes() == recs.tobytes()


def test_dev_zero_fails_at_once(both):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    t = time.perf_counter()
    with pytest.raises(WnodeFormatError, match="BufferSize 0") as err:
        read_wnode("/dev/zero")
    assert (err.value.offset, err.value.field) == (0, "BufferSize")
    assert time.perf_counter() - t < 2


def test_a_file_that_shrinks_under_the_reader_is_an_error(both, tmp_path, monkeypatch):
    recs = records_from([values(i % 7) for i in range(400)])
    data = write_wnode(recs, None, [A, B] * 200)
    path = tmp_path / "shrinks.wnode"
    path.write_bytes(data)
    monkeypatch.setattr(wnode, "WINDOW_BYTES", 4096)
    reader = wnode.WnodeReader(ByteSource(str(path)), chunk_records=10)
    it = iter(reader)
    next(it)
    os.truncate(path, 1000)
    with pytest.raises(OSError, match="shrank"):
        list(it)


def test_a_huge_buffer_size_in_a_small_file_does_not_allocate_it(both, tmp_path, monkeypatch):
    buf = bytearray(all_data_fixed([(A, values(1))]))
    struct.pack_into("<I", buf, 0, 2**32 - 8)
    path = tmp_path / "claims.wnode"
    path.write_bytes(bytes(buf))
    monkeypatch.setattr(wnode, "WINDOW_BYTES", 64)
    with pytest.raises(WnodeFormatError, match=f"BufferSize {2**32 - 8} but only {len(buf)} byte"):
        read_wnode(path)


# --- hostile names: linear time on both backends ------------------------------------------------

_FNV_PRIME = 0x100000001B3
_FNV_BASIS = 0xCBF29CE484222325


def _fnv_colliding_names(count_log2: int, bits: int) -> list[str]:
    """2**count_log2 distinct ANSI names whose FNV-1a hashes (the old, unkeyed table: basis
    xor 1 for ANSI) agree in the low ``bits`` bits: the old linear-probing table took
    quadratic time on them. Blocks of 3 bytes that collide from the same state chain up."""
    mask = (1 << bits) - 1
    state = (_FNV_BASIS ^ 1) & mask
    pairs = []
    rng = np.random.default_rng(7)
    for _ in range(count_log2):
        seen: dict[int, bytes] = {}
        while True:
            block = bytes(rng.integers(0x21, 0x7F, 3, dtype=np.uint8))
            h = state
            for byte in block:
                h = ((h ^ byte) * _FNV_PRIME) & mask
            if h in seen and seen[h] != block:
                pairs.append((seen[h], block))
                state = h
                break
            seen[h] = block
    names = []
    for i in range(1 << count_log2):
        names.append(b"".join(pairs[j][(i >> j) & 1] for j in range(count_log2)).decode("latin-1"))
    assert len(set(names)) == len(names)
    return names


def _timed(fn):
    """``fn()`` and the best of two timings (less noise from a busy machine)."""
    best = float("inf")
    for _ in range(2):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def _assert_linear(seconds: float, benign: float, what: str) -> None:
    """Hostile input costs at most a few times a benign input of the same size and shape,
    timed in the same run (so a slow machine or a checking build moves both): the quadratic
    cases these tests guard took 10 to 100 times longer."""
    assert seconds < 5 * benign + 1.0, f"{what}: {seconds:.2f} s against {benign:.2f} s for a benign input"


def test_names_crafted_to_collide_in_an_unkeyed_hash_cost_linear_time(both):
    names = _fnv_colliding_names(16, 18)  # 65536 names: the old table had 2**18 slots
    recs = np.zeros(len(names), dtype=ipsecstats.RECORD_DTYPE)
    data = write_wnode(recs, None, names, ansi_names=True)
    cap, seconds = _timed(lambda: read_wnode(data))
    assert cap.instance_names == tuple(names)
    rng = np.random.default_rng(1)
    plain = ["".join(map(chr, rng.integers(0x21, 0x7F, len(names[0])))) + str(i) for i in range(len(names))]
    benign = write_wnode(recs, None, [p[-len(names[0]):] for p in plain], ansi_names=True)
    _, benign_seconds = _timed(lambda: read_wnode(benign))
    _assert_linear(seconds, benign_seconds, f"{len(data)} bytes of colliding names")


def _one_name_many_instances(count: int, name_bytes: bytes, ansi: bool = False) -> bytes:
    """WNODE_ALL_DATA with offset/length pairs: ``count`` instances, all of them naming the
    same counted name and pointing at the same data block."""
    pairs_end = 60 + 8 * count
    offsets_at = (pairs_end + 3) // 4 * 4
    name_at = offsets_at + 4 * count
    data_at = (name_at + 2 + len(name_bytes) + 7) // 8 * 8
    size = data_at + 168
    buf = bytearray(size)
    buf[:48] = header(size, 0x1 | (0x4000 if ansi else 0))
    struct.pack_into("<III", buf, 48, 0, count, offsets_at)
    np.frombuffer(buf, "<u4", 2 * count, 60).reshape(count, 2)[:] = (data_at, 168)
    np.frombuffer(buf, "<u4", count, offsets_at)[:] = name_at
    struct.pack_into("<H", buf, name_at, len(name_bytes))
    buf[name_at + 2: name_at + 2 + len(name_bytes)] = name_bytes
    buf[data_at: data_at + 168] = struct.pack("<21Q", *values(3))
    return bytes(buf)


def test_one_long_name_named_by_many_instances_is_read_once(both):
    data = _one_name_many_instances(100_000, "a".encode("utf-16-le") * 32767)
    assert len(data) > 1_200_000
    cap, seconds = _timed(lambda: read_wnode(data))
    assert len(cap) == 100_000 and cap.instance_names == ("a" * 32767,)
    _, benign = _timed(lambda: read_wnode(_one_name_many_instances(100_000, "a".encode("utf-16-le"))))
    _assert_linear(seconds, benign, "one 64 KiB name named 100,000 times")


def test_names_packed_into_each_other_are_an_error_not_quadratic_time(both):
    # one region of 0xFE bytes: a name at every even offset, each counting 65278 bytes of it
    count = 32_000
    pairs_end = 60 + 8 * count
    offsets_at = pairs_end
    region = offsets_at + 4 * count
    region_bytes = 2 * count + 65_280
    data_at = (region + region_bytes + 7) // 8 * 8
    size = data_at + 168
    buf = bytearray(size)
    buf[:48] = header(size, 0x1)
    struct.pack_into("<III", buf, 48, 0, count, offsets_at)
    np.frombuffer(buf, "<u4", 2 * count, 60).reshape(count, 2)[:] = (data_at, 168)
    np.frombuffer(buf, "<u4", count, offsets_at)[:] = region + 2 * np.arange(count, dtype=np.uint32)
    buf[region: region + region_bytes] = b"\xfe" * region_bytes
    (err, seconds) = _timed(lambda: pytest.raises(WnodeFormatError, read_wnode, bytes(buf)))
    assert err.value.field == "InstanceName" and "the names overlap" in str(err.value)
    _, benign = _timed(lambda: read_wnode(_one_name_many_instances(count, b"a\0")))
    assert layout.NAMES_OVERLAP
    _assert_linear(seconds, benign, "names packed into each other")


@pytest.mark.parametrize("ansi", [False, True])
def test_a_name_of_nothing_but_nuls_strips_in_linear_time(ansi, both):
    data = _one_name_many_instances(300, b"\0" * (65535 if ansi else 65534), ansi=ansi)
    data += _one_name_many_instances(300, b"x\0" * 32767)  # a long real name too
    cap, seconds = _timed(lambda: read_wnode(data * 4))
    assert cap.instance_names == ("", "x" * 32767)
    plain = _one_name_many_instances(300, b"ab" if ansi else b"a\0") + _one_name_many_instances(300, b"x\0")
    _, benign = _timed(lambda: read_wnode(plain * 4))
    _assert_linear(seconds, benign, "names of NULs")


def test_a_name_table_lookup_that_probes_too_long_retries_and_falls_back(monkeypatch):
    """NAMES_PROBES (a keyed hash makes it practically impossible) is retried with fresh keys,
    then the pure twin walks that window: the results do not change."""
    from ipsecstats import _slow

    calls = []

    class Probing:
        @staticmethod
        def wnode_fill(buf, *args):
            calls.append(len(buf))
            result = list(_slow.wnode_fill(buf, *args))
            if len(calls) <= wnode._SEED_TRIES:
                return (layout.NAMES_PROBES, 0, layout.NAME_MAX_PROBES, layout.NAME_MAX_PROBES, 0, 0, 0, 0, -1, 0,
                        -1, 0)
            return tuple(result)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WnodeWarning)
        expect = read_wnode(DATA, allow_partial=True)
        with using_kernel(Probing):
            got = read_wnode(DATA, allow_partial=True)
    _same(got, expect)
    assert len(calls) == wnode._SEED_TRIES  # then the twin walked that window
