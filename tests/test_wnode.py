"""read_wnode / write_wnode / Capture against WNODE buffers built here byte by byte.

The golden buffers are packed with ``struct`` from the wmistr.h offsets written out below
(not from ``ipsecstats._wnode_layout`` and not through ``write_wnode``), and deliberately
laid out differently from ``write_wnode``: data before names, gaps of junk bytes, data
blocks out of order, padding between chained WNODEs.
"""

from __future__ import annotations

import datetime as dt
import io
import struct
import uuid
import warnings

import numpy as np
import pytest
from conftest import KERNELS, records_from, require_fast, using_kernel

import ipsecstats
from ipsecstats import Capture, WnodeFormatError, WnodeWarning, _slow, read_wnode, write_wnode
from ipsecstats import _wnode_layout as layout

GUID = uuid.UUID("36b58ea2-c461-4bb0-ac8e-952f59d251ed").bytes_le
OTHER_GUID = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef").bytes_le
ALL_DATA, SINGLE_INSTANCE, FIXED, TOO_SMALL, ANSI = 0x1, 0x2, 0x10, 0x20, 0x4000
JUNK = 0xAB
M64 = 2**64 - 1


def filetime(when: dt.datetime, extra_ticks: int = 0) -> int:
    """100 ns ticks since 1601-01-01 UTC, by datetime arithmetic (independent of the reader)."""
    delta = when - dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)
    return (delta // dt.timedelta(microseconds=1)) * 10 + extra_ticks


T0 = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc)
TICKS0 = filetime(T0, 7)  # 2024-05-06T07:08:09.1234567
NS0 = np.datetime64("2024-05-06T07:08:09.123456700", "ns")


def header(size: int, flags: int, *, linkage: int = 0, ticks: int = TICKS0, guid: bytes = GUID) -> bytes:
    """WNODE_HEADER: BufferSize 0, ProviderId 4, Version 8, Linkage 12, TimeStamp 16, Guid 24,
    ClientContext 40, Flags 44."""
    return struct.pack("<IIIIq16sII", size, 7, 1, linkage, ticks, guid, 0, flags)


def counted(name: str, ansi: bool = False, pad_nuls: int = 0) -> bytes:
    raw = name.encode("latin-1" if ansi else "utf-16-le") + b"\0" * (pad_nuls * (1 if ansi else 2))
    return struct.pack("<H", len(raw)) + raw


def values(seed: int) -> list[int]:
    return [(seed * 1000 + j) if j % 5 else (M64 - seed - j) for j in range(21)]


def block(vals: list[int]) -> bytes:
    return struct.pack("<21Q", *vals)


def put(buf: bytearray, offset: int, data: bytes) -> None:
    assert offset + len(data) <= len(buf)
    buf[offset: offset + len(data)] = data


def all_data_fixed(instances: list[tuple[str, list[int]]], *, ticks: int = TICKS0, linkage: int = 0,
                   ansi: bool = False, guid: bytes = GUID) -> bytes:
    """WNODE_ALL_DATA with FIXED_INSTANCE_SIZE: DataBlockOffset 48, InstanceCount 52,
    OffsetInstanceNameOffsets 56, FixedInstanceSize 60. Layout here: junk to 128, data at 128,
    then the name offsets array, then names (each followed by two NULs of padding)."""
    k = len(instances)
    data_at = 128  # not sizeof(WNODE_ALL_DATA): the reader must use DataBlockOffset
    offsets_at = data_at + 168 * k + 4
    names_at = offsets_at + 4 * k
    names = [counted(n, ansi, pad_nuls=1) for n, _ in instances]
    size = names_at + sum(len(n) + 2 for n in names) + 6
    buf = bytearray([JUNK]) * size
    put(buf, 0, header(size, ALL_DATA | FIXED | (ANSI if ansi else 0), linkage=linkage, ticks=ticks, guid=guid))
    put(buf, 48, struct.pack("<IIII", data_at, k, offsets_at, 168))
    pos = names_at
    for i, (name, (_, vals)) in enumerate(zip(names, instances)):
        put(buf, data_at + 168 * i, block(vals))
        put(buf, offsets_at + 4 * i, struct.pack("<I", pos))
        put(buf, pos, name)
        pos += len(name) + 2
    return bytes(buf)


def all_data_pairs(instances: list[tuple[str, list[int]]], *, ticks: int = TICKS0, linkage: int = 0) -> bytes:
    """WNODE_ALL_DATA with OffsetInstanceDataAndLength pairs at 60 (no FIXED flag). Layout:
    pairs, names, then data blocks in REVERSE instance order with a 16-byte gap between."""
    k = len(instances)
    names = [counted(n) for n, _ in instances]
    offsets_at = 60 + 8 * k
    pos = offsets_at + 4 * k
    name_at = []
    for raw in names:
        name_at.append(pos)
        pos += len(raw)
    data_at = (pos + 7) // 8 * 8 + 8
    slot = {i: data_at + (k - 1 - i) * (168 + 16) for i in range(k)}
    size = data_at + k * (168 + 16)
    buf = bytearray([JUNK]) * size
    put(buf, 0, header(size, ALL_DATA, linkage=linkage, ticks=ticks))
    put(buf, 48, struct.pack("<III", 0xFFFFFFFF, k, offsets_at))  # DataBlockOffset unused here
    for i, (_, vals) in enumerate(instances):
        put(buf, 60 + 8 * i, struct.pack("<II", slot[i], 168))
        put(buf, offsets_at + 4 * i, struct.pack("<I", name_at[i]))
        put(buf, name_at[i], names[i])
        put(buf, slot[i], block(vals))
    return bytes(buf)


def single_instance(name: str, vals: list[int], *, index: int = 0, ticks: int = TICKS0, linkage: int = 0,
                    ansi: bool = False) -> bytes:
    """WNODE_SINGLE_INSTANCE: OffsetInstanceName 48, InstanceIndex 52, DataBlockOffset 56,
    SizeDataBlock 60. Layout: name at 64, data at the next multiple of 8 plus 8."""
    raw = counted(name, ansi)
    data_at = (64 + len(raw) + 7) // 8 * 8 + 8
    size = data_at + 168
    buf = bytearray([JUNK]) * size
    put(buf, 0, header(size, SINGLE_INSTANCE | (ANSI if ansi else 0), linkage=linkage, ticks=ticks))
    put(buf, 48, struct.pack("<IIII", 64, index, data_at, 168))
    put(buf, 64, raw)
    put(buf, data_at, block(vals))
    return bytes(buf)


def too_small(needed: int, *, linkage: int = 0) -> bytes:
    """WNODE_TOO_SMALL: SizeNeeded at 48."""
    return header(56, TOO_SMALL, linkage=linkage, ticks=0) + struct.pack("<II", needed, 0)


def align8(size: int) -> int:
    return (size + 7) // 8 * 8


def chain(*nodes: bytes) -> bytes:
    """Link nodes into one buffer: Linkage = align8(own size) (junk in the padding), last 0."""
    out = bytearray()
    for i, node in enumerate(nodes):
        node = bytearray(node)
        last = i == len(nodes) - 1
        gap = 0 if last else align8(len(node)) - len(node)
        struct.pack_into("<I", node, 12, 0 if last else len(node) + gap)
        out += node + bytes([JUNK]) * gap
    return bytes(out)


def expect(capture: Capture, rows: list[tuple[str, list[int], np.datetime64]]) -> None:
    assert len(capture) == len(rows)
    assert capture.records.dtype == ipsecstats.RECORD_DTYPE
    got = capture.records.view("<u8").reshape(-1, 21)
    assert got.tolist() == [v for _, v, _ in rows]
    assert list(capture.instances) == [n for n, _, _ in rows]
    assert capture.timestamps is not None and capture.timestamps.dtype == np.dtype("datetime64[ns]")
    assert capture.timestamps.tolist() == np.array([t for _, _, t in rows], "datetime64[ns]").tolist()


A, B, C = "ROOT\\ISCSIPRT\\0000_0", "PCI\\VEN_8086&DEV_10FB\\3&1_0", "ROOT\\ISCSIPRT\\0001_0"


@pytest.fixture(params=sorted(KERNELS))
def both(request: pytest.FixtureRequest):
    with using_kernel(KERNELS[request.param]):
        yield request.param


# --- golden buffers --------------------------------------------------------------------------


def test_layout_constants_match_wmistr_offsets():
    assert layout.GUID_BYTES == GUID
    assert (layout.LINKAGE, layout.TIMESTAMP, layout.GUID, layout.FLAGS, layout.HEADER_SIZE) == (12, 16, 24, 44, 48)
    assert (layout.ALL_DATA_BLOCK_OFFSET, layout.ALL_INSTANCE_COUNT, layout.ALL_NAME_OFFSETS,
            layout.ALL_FIXED_INSTANCE_SIZE) == (48, 52, 56, 60)
    assert (layout.SINGLE_NAME_OFFSET, layout.SINGLE_INSTANCE_INDEX, layout.SINGLE_DATA_BLOCK_OFFSET,
            layout.SINGLE_SIZE_DATA_BLOCK, layout.TOO_SMALL_SIZE_NEEDED) == (48, 52, 56, 60, 48)
    assert layout.FILETIME_UNIX_EPOCH == filetime(dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc))


def test_fixed_size_several_instances(both):
    buf = all_data_fixed([(A, values(1)), (B, values(2)), (C, values(3))])
    cap = read_wnode(buf)
    expect(cap, [(A, values(1), NS0), (B, values(2), NS0), (C, values(3), NS0)])
    assert cap.instance_names == (A, B, C)


def test_variable_size_pairs_out_of_order(both):
    buf = all_data_pairs([(A, values(4)), (B, values(5))])
    expect(read_wnode(buf), [(A, values(4), NS0), (B, values(5), NS0)])


def test_chained_wnodes_and_buffers_back_to_back(both):
    t1 = TICKS0 + 10_000_000
    first = chain(all_data_fixed([(A, values(1)), (B, values(2))]), all_data_pairs([(C, values(3))], ticks=t1))
    second = all_data_fixed([(A, values(6)), (B, values(7))], ticks=TICKS0 + 20_000_000)
    ns1, ns2 = NS0 + np.timedelta64(1, "s"), NS0 + np.timedelta64(2, "s")
    expect(read_wnode(first + second), [
        (A, values(1), NS0), (B, values(2), NS0), (C, values(3), ns1), (A, values(6), ns2), (B, values(7), ns2)])


def test_single_instance_wnodes(both):
    buf = chain(single_instance(A, values(1), index=0), single_instance(B, values(2), index=1, ticks=TICKS0 + 1))
    buf += single_instance(A, values(3), ticks=TICKS0 + 2)
    cap = read_wnode(buf)
    expect(cap, [(A, values(1), NS0), (B, values(2), NS0 + np.timedelta64(100, "ns")),
                 (A, values(3), NS0 + np.timedelta64(200, "ns"))])
    assert cap.instance_codes.tolist() == [0, 1, 0]


def test_ansi_names_and_utf16_names_of_the_same_text_are_one_instance(both):
    buf = all_data_fixed([(A, values(1)), ("caf\xe9", values(2))], ansi=True)
    buf += single_instance(A, values(3), ansi=False) + single_instance("caf\xe9", values(4), ansi=True)
    cap = read_wnode(buf)
    assert list(cap.instances) == [A, "caf\xe9", A, "caf\xe9"]
    assert cap.instance_names == (A, "caf\xe9")


def test_trailing_nuls_are_stripped_but_inner_text_is_kept(both):
    buf = single_instance("x\0y", values(1))  # an inner NUL is text
    raw = bytearray(buf)
    name = counted("abc", pad_nuls=3)
    put(raw, 64, name[:2])  # count covers the padding NULs: they must go
    cap = read_wnode(bytes(raw[:64]) + name + bytes(raw[64 + len(name):]))
    assert list(cap.instances) == ["abc"]
    assert list(read_wnode(buf).instances) == ["x\0y"]


def test_foreign_guid_is_skipped_with_a_count(both):
    buf = chain(all_data_fixed([(A, values(1))]), all_data_fixed([(B, values(9))], guid=OTHER_GUID))
    buf += all_data_fixed([(C, values(5))], guid=OTHER_GUID)
    first_foreign = buf.index(OTHER_GUID) - 24
    with pytest.warns(WnodeWarning, match=rf"skipped 2 WNODE\(s\) of other GUIDs \(the first at byte offset {first_foreign}\)"):
        cap = read_wnode(buf)
    expect(cap, [(A, values(1), NS0)])


def test_too_small_is_an_error_naming_size_needed(both):
    good = all_data_fixed([(A, values(1))])
    buf = good + too_small(4096)
    with pytest.raises(WnodeFormatError, match="SizeNeeded 4096") as err:
        read_wnode(buf)
    assert (err.value.offset, err.value.field) == (len(good) + 48, "SizeNeeded")
    with pytest.warns(WnodeWarning, match=r"skipped 1 WNODE_TOO_SMALL .* needed up to 4096 bytes"):
        cap = read_wnode(buf + good, allow_partial=True)
    expect(cap, [(A, values(1), NS0), (A, values(1), NS0)])


def test_zero_timestamp_is_nat_and_uint64_edges_are_exact(both):
    edge = [0, 1, 2**32, 2**63 - 1, 2**63, M64] * 3 + [M64, 0, 2**63]
    cap = read_wnode(all_data_fixed([(A, edge)], ticks=0))
    assert cap.records.view("<u8").reshape(-1, 21).tolist() == [edge]
    assert np.isnat(cap.timestamps).tolist() == [True]


def test_timestamp_extremes(both):
    lo, hi = layout.TICKS_MIN, layout.TICKS_MAX
    cap = read_wnode(all_data_fixed([(A, values(1))], ticks=lo) + all_data_fixed([(A, values(1))], ticks=hi))
    ns = cap.timestamps.view(np.int64).tolist()
    assert ns == [(lo - 116444736000000000) * 100, (hi - 116444736000000000) * 100]
    for bad in (lo - 1, hi + 1, -1, 2**63 - 1):
        with pytest.raises(WnodeFormatError, match="TimeStamp") as err:
            read_wnode(all_data_fixed([(A, values(1))], ticks=bad))
        assert (err.value.offset, err.value.field) == (16, "TimeStamp")


def test_empty_input_is_an_empty_capture(both):
    cap = read_wnode(b"")
    assert len(cap) == 0 and cap.instance_names == () and cap.timestamps.shape == (0,)


def test_sources_bytes_bytearray_memoryview_array_path_and_file(tmp_path, both):
    buf = all_data_fixed([(A, values(1)), (B, values(2))]) * 3
    path = tmp_path / "capture.wnode"
    path.write_bytes(buf)
    shifted = bytearray(b"\0" + buf)
    sources = [buf, bytearray(buf), memoryview(shifted)[1:], np.frombuffer(buf, np.uint8), path, str(path),
               io.BytesIO(buf)]
    for src in sources:
        cap = read_wnode(src)
        assert len(cap) == 6 and list(cap.instances) == [A, B] * 3
    with open(path, "rb") as f:
        assert len(read_wnode(f)) == 6
    empty = tmp_path / "empty.wnode"
    empty.write_bytes(b"")
    assert len(read_wnode(empty)) == 0
    with pytest.raises(TypeError):
        read_wnode(12)
    with pytest.raises(TypeError):
        read_wnode(io.StringIO("text"))


def test_records_are_copies_not_views_of_the_input(both):
    buf = bytearray(all_data_fixed([(A, values(1))]))
    cap = read_wnode(buf)
    buf[128:136] = b"\xff" * 8
    assert cap.records.view("<u8")[0] == values(1)[0]
    assert cap.records.flags.writeable and cap.records.flags.owndata


# --- hostile buffers: each check names its offset and field -------------------------------------


def _mutate(buf: bytes, offset: int, fmt: str, value: int) -> bytes:
    raw = bytearray(buf)
    struct.pack_into(fmt, raw, offset, value)
    return bytes(raw)


FIXED1 = all_data_fixed([(A, values(1)), (B, values(2))])
PAIRS1 = all_data_pairs([(A, values(1)), (B, values(2))])
SINGLE1 = single_instance(A, values(1))
UNALIGNED1 = all_data_fixed([(A, values(1))])  # BufferSize 356: 4 bytes of padding to the next WNODE
NAME_OFFSETS_AT = struct.unpack_from("<I", FIXED1, 56)[0]
FIRST_NAME = struct.unpack_from("<I", FIXED1, NAME_OFFSETS_AT)[0]

HOSTILE = {
    "header truncated": (FIXED1 + b"\0" * 20, len(FIXED1), "WNODE_HEADER"),
    "BufferSize past end": (FIXED1[:-1], 0, "BufferSize"),
    "BufferSize below header": (_mutate(FIXED1, 0, "<I", 47), 0, "BufferSize"),
    "BufferSize zero": (_mutate(FIXED1, 0, "<I", 0), 0, "BufferSize"),
    "WNODE shorter than its fixed part": (header(60, ALL_DATA) + b"\0" * 12, 0, "BufferSize"),
    "Linkage into itself": (_mutate(FIXED1, 12, "<I", 8), 12, "Linkage"),
    "Linkage of 1": (_mutate(FIXED1, 12, "<I", 1), 12, "Linkage"),
    "Linkage 'backwards' (as signed)": (_mutate(FIXED1, 12, "<I", 2**32 - 64), 12, "Linkage"),
    "Linkage past end": (_mutate(FIXED1, 12, "<I", len(FIXED1)), 12, "Linkage"),
    "Linkage skips a whole WNODE": (_mutate(chain(SINGLE1, SINGLE1, SINGLE1), 12, "<I", 2 * align8(len(SINGLE1))),
                                    12, "Linkage"),
    "Linkage one past the padding": (_mutate(chain(UNALIGNED1, UNALIGNED1), 12, "<I", align8(len(UNALIGNED1)) + 1),
                                     12, "Linkage"),
    "no kind flag": (_mutate(FIXED1, 44, "<I", FIXED), 44, "Flags"),
    "both kind flags": (_mutate(FIXED1, 44, "<I", ALL_DATA | SINGLE_INSTANCE | FIXED), 44, "Flags"),
    "FixedInstanceSize 160": (_mutate(FIXED1, 60, "<I", 160), 60, "FixedInstanceSize"),
    "InstanceCount huge (fixed)": (_mutate(FIXED1, 52, "<I", 2**32 - 1), 52, "InstanceCount"),
    "InstanceCount huge (pairs)": (_mutate(PAIRS1, 52, "<I", 2**32 - 1), 52, "InstanceCount"),
    "DataBlockOffset in header": (_mutate(FIXED1, 48, "<I", 8), 48, "DataBlockOffset"),
    "DataBlockOffset past node": (_mutate(FIXED1, 48, "<I", 2**32 - 8), 48, "DataBlockOffset"),
    "DataBlockOffset misaligned": (_mutate(FIXED1, 48, "<I", 132), 48, "DataBlockOffset"),
    "LengthInstanceData 167": (_mutate(PAIRS1, 64, "<I", 167), 64, "LengthInstanceData"),
    "OffsetInstanceData past node": (_mutate(PAIRS1, 60, "<I", len(PAIRS1) - 160), 60, "OffsetInstanceData"),
    "OffsetInstanceData in header": (_mutate(PAIRS1, 68, "<I", 64), 68, "OffsetInstanceData"),
    "OffsetInstanceData misaligned": (_mutate(PAIRS1, 60, "<I", struct.unpack_from("<I", PAIRS1, 60)[0] + 4),
                                      60, "OffsetInstanceData"),
    "OffsetInstanceNameOffsets past node": (_mutate(FIXED1, 56, "<I", len(FIXED1) - 4), 56,
                                            "OffsetInstanceNameOffsets"),
    "OffsetInstanceNameOffsets zero": (_mutate(FIXED1, 56, "<I", 0), 56, "OffsetInstanceNameOffsets"),
    "name offset past node": (_mutate(FIXED1, NAME_OFFSETS_AT + 4, "<I", len(FIXED1) - 1),
                              NAME_OFFSETS_AT + 4, "OffsetInstanceNameOffsets"),
    "name length past node": (_mutate(FIXED1, FIRST_NAME, "<H", 0xFFFF), FIRST_NAME, "InstanceName"),
    "odd UTF-16 length": (_mutate(FIXED1, FIRST_NAME, "<H", 3), FIRST_NAME, "InstanceName"),
    "lone surrogate": (_mutate(FIXED1, FIRST_NAME + 2, "<H", 0xD800), FIRST_NAME, "InstanceName"),
    "SizeDataBlock 0": (_mutate(SINGLE1, 60, "<I", 0), 60, "SizeDataBlock"),
    "single DataBlockOffset past node": (_mutate(SINGLE1, 56, "<I", len(SINGLE1) - 8), 56, "DataBlockOffset"),
    "OffsetInstanceName in header": (_mutate(SINGLE1, 48, "<I", 40), 48, "OffsetInstanceName"),
    "TOO_SMALL shorter than SizeNeeded": (header(50, TOO_SMALL) + b"\0\0", 0, "BufferSize"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_buffer_names_offset_and_field(case, both):
    buf, offset, field = HOSTILE[case]
    with pytest.raises(WnodeFormatError) as err:
        read_wnode(buf)
    assert (err.value.offset, err.value.field) == (offset, field), str(err.value)
    assert f"byte offset {offset}" in str(err.value) and field in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_buffers_give_the_same_walk_in_both_kernels(case):
    fast = require_fast()
    buf = np.frombuffer(HOSTILE[case][0], np.uint8)
    guid = np.frombuffer(GUID, np.uint8)
    for skip in (False, True):
        assert fast.wnode_count(buf, guid, skip) == _slow.wnode_count(buf, guid, skip)


def test_errors_are_offset_within_later_buffers(both):
    good = all_data_fixed([(A, values(1))])
    bad = _mutate(good, 60, "<I", 169)
    with pytest.raises(WnodeFormatError) as err:
        read_wnode(good + good + bad)
    assert err.value.offset == 2 * len(good) + 60


def test_allow_partial_drops_a_truncated_last_buffer_with_a_warning(both):
    good = all_data_fixed([(A, values(1)), (B, values(2))])
    linked = chain(good, good)
    for tail in (linked[:-5], good[:30], linked[: align8(len(good)) + 20]):
        buf = good + tail
        with pytest.raises(WnodeFormatError):
            read_wnode(buf)
        with pytest.warns(WnodeWarning, match=rf"ignored the last {len(tail)} byte\(s\), from byte offset {len(good)}"):
            cap = read_wnode(buf, allow_partial=True)
        expect(cap, [(A, values(1), NS0), (B, values(2), NS0)])


def test_linkage_equal_to_buffer_size_needs_no_padding(both):
    first, second = UNALIGNED1, single_instance(B, values(2), index=1, ticks=TICKS0 + 1)
    assert len(first) % 8  # the next WNODE starts unaligned, right after this one
    buf = _mutate(first, 12, "<I", len(first)) + second
    expect(read_wnode(buf), [(A, values(1), NS0), (B, values(2), NS0 + np.timedelta64(100, "ns"))])


def test_linkage_may_skip_the_alignment_padding_whatever_it_holds(both):
    first, second = UNALIGNED1, single_instance(B, values(2), index=1)
    pad = align8(len(first)) - len(first)
    assert pad  # padding to skip, filled with junk by chain()
    buf = chain(first, second)
    assert struct.unpack_from("<I", buf, 12)[0] == len(first) + pad
    assert buf[len(first): len(first) + pad] == bytes([JUNK]) * pad
    expect(read_wnode(buf), [(A, values(1), NS0), (B, values(2), NS0)])


def test_linkage_past_the_padding_is_an_error_not_dropped_data(both):
    # the audit's case: 4 records in 4 buffers; the first Linkage jumps over the second WNODE
    recs = np.zeros(4, dtype=ipsecstats.RECORD_DTYPE)
    raw = write_wnode(recs, None, "x")  # a WNODE of 240 bytes per record
    assert len(raw) == 960 and len(read_wnode(raw)) == 4
    with pytest.raises(WnodeFormatError, match=r"Linkage 480 at byte offset 12 .* \(at most 240\)") as err:
        read_wnode(_mutate(raw, 12, "<I", 480), allow_partial=True)
    assert (err.value.offset, err.value.field) == (12, "Linkage")
    # every Linkage beyond align8(BufferSize) fails, in a later buffer too, at that Linkage
    node = UNALIGNED1
    good = chain(node, node)
    for link in (align8(len(node)) + 1, align8(len(node)) + 8, len(good) - 48):
        with pytest.raises(WnodeFormatError) as err:
            read_wnode(good + _mutate(good, 12, "<I", link))
        assert (err.value.offset, err.value.field) == (len(good) + 12, "Linkage")


def test_corruption_in_the_middle_is_not_excused_by_allow_partial(both):
    good = all_data_fixed([(A, values(1))])
    with pytest.raises(WnodeFormatError, match="FixedInstanceSize"):
        read_wnode(_mutate(good, 60, "<I", 8) + good, allow_partial=True)


# --- the two kernels side by side ------------------------------------------------------------


def _fill(kernel, buf: bytes, n: int, table: int):
    records = np.zeros((n, 168), np.uint8)
    ticks = np.zeros(n, np.int64)
    ids = np.zeros(n, np.int64)
    names = np.zeros((table, 3), np.int64)
    slots = np.zeros(1 << (2 * table).bit_length(), np.int64)
    result = kernel.wnode_fill(np.frombuffer(buf, np.uint8), np.frombuffer(GUID, np.uint8), True,
                               records, ticks, ids, names, slots)
    return result, records, ticks, ids, names


def test_fill_is_identical_in_both_kernels_including_full_tables_and_capacity():
    fast = require_fast()
    names = [f"inst{i}" for i in range(70)]  # more positions than the kernel's name hints
    buf = write_wnode(records_from(np.arange(140 * 21).reshape(140, 21)), None, names * 2)
    buf += too_small(999) + all_data_fixed([(A, values(1))], guid=OTHER_GUID)
    for n, table in [(140, 70), (140, 140), (140, 16), (100, 140), (0, 0)]:
        a, b = _fill(fast, buf, n, table), _fill(_slow, buf, n, table)
        assert a[0] == b[0]
        for x, y in zip(a[1:], b[1:]):
            assert np.array_equal(x, y)
    result = layout.WalkResult(*_fill(fast, buf, 140, 70)[0])
    assert (result.status, result.nrecords, result.nnames, result.nforeign, result.ntoo_small) == (0, 140, 70, 1, 1)
    assert layout.WalkResult(*_fill(fast, buf, 140, 16)[0]).status == layout.NAMES_FULL
    assert layout.WalkResult(*_fill(fast, buf, 100, 140)[0]).status == layout.CAPACITY


def test_many_distinct_names_take_the_second_pass(both):
    names = [f"n{i:04d}" for i in range(600)]
    recs = records_from(np.arange(600 * 21).reshape(600, 21))
    cap = read_wnode(write_wnode(recs, None, names))
    assert list(cap.instances) == names and cap.instance_names == tuple(names)


@pytest.mark.parametrize("bad", [
    dict(guid=np.zeros(15, np.uint8)),
    dict(records=np.zeros((2, 167), np.uint8)),
    dict(ticks=np.zeros(3, np.int64)),
    dict(names=np.zeros((4, 2), np.int64)),
    dict(slots=np.zeros(6, np.int64)),
    dict(slots=np.zeros(4, np.int64)),
])
def test_kernel_entry_points_check_their_arguments(bad):
    args = dict(buf=np.frombuffer(FIXED1, np.uint8), guid=np.frombuffer(GUID, np.uint8), skip=False,
                records=np.zeros((2, 168), np.uint8), ticks=np.zeros(2, np.int64), ids=np.zeros(2, np.int64),
                names=np.zeros((4, 3), np.int64), slots=np.zeros(16, np.int64))
    args.update(bad)
    for kernel in KERNELS.values():
        with pytest.raises(ValueError):
            kernel.wnode_fill(*args.values())


# --- write_wnode ------------------------------------------------------------------------------


def _sample(n_samples: int = 4, names=(A, B)):
    k = len(names)
    recs = records_from([values(i) for i in range(n_samples * k)])
    ts = np.repeat(NS0 + np.arange(n_samples) * np.timedelta64(10_000_000_100, "ns"), k)
    return recs, ts, list(names) * n_samples


@pytest.mark.parametrize("fixed", [True, False])
@pytest.mark.parametrize("ansi", [False, True])
@pytest.mark.parametrize("per_buffer", [1, 3])
def test_round_trip_is_exact(fixed, ansi, per_buffer, both):
    recs, ts, inst = _sample(5, (A, "caf\xe9", C))
    buf = write_wnode(recs, ts, inst, fixed_instance_size=fixed, ansi_names=ansi, nodes_per_buffer=per_buffer)
    cap = read_wnode(buf)
    assert cap.records.tobytes() == recs.tobytes()
    assert np.array_equal(cap.timestamps, ts) and list(cap.instances) == inst


def test_written_layout_follows_wmistr(both):
    recs, ts, inst = _sample(3)
    buf = write_wnode(recs, ts, inst, nodes_per_buffer=2)
    pos, nodes = 0, []
    while pos < len(buf):
        size, _, _, link, ticks = struct.unpack_from("<IIIIq", buf, pos)
        guid, _, flags = struct.unpack_from("<16sII", buf, pos + 24)
        block_at, count, names_at, fixed_size = struct.unpack_from("<IIII", buf, pos + 48)
        assert guid == GUID and flags == ALL_DATA | FIXED and fixed_size == 168 and count == 2
        assert block_at % 8 == 0 and size % 8 == 0
        assert ticks == filetime(T0, 7) + len(nodes) * 100_000_001
        for i in range(count):
            name_at = struct.unpack_from("<I", buf, pos + names_at + 4 * i)[0]
            length = struct.unpack_from("<H", buf, pos + name_at)[0]
            assert buf[pos + name_at + 2: pos + name_at + 2 + length].decode("utf-16-le") == inst[i]
            assert struct.unpack_from("<21Q", buf, pos + block_at + 168 * i) == tuple(values(2 * len(nodes) + i))
        nodes.append((size, link))
        pos += size
    assert [link for _, link in nodes] == [nodes[0][0], 0, 0]


def test_write_groups_nodes_by_timestamp_and_repeated_names(both):
    recs = records_from([values(i) for i in range(5)])
    buf = write_wnode(recs, None, [A, B, A, A, C])
    cap = read_wnode(buf)
    assert list(cap.instances) == [A, B, A, A, C] and np.isnat(cap.timestamps).all()
    sizes = []
    pos = 0
    while pos < len(buf):
        sizes.append(struct.unpack_from("<I", buf, pos + 52)[0])
        pos += struct.unpack_from("<I", buf, pos)[0]
    assert sizes == [2, 1, 2]


def test_write_refuses_what_cannot_round_trip():
    recs, ts, inst = _sample(2)
    with pytest.raises(ValueError, match="100 ns"):
        write_wnode(recs, ts + np.timedelta64(1, "ns"), inst)
    with pytest.raises(ValueError, match="NUL"):
        write_wnode(recs, ts, [A, "b\0"] * 2)
    with pytest.raises(ValueError, match="ANSI"):
        write_wnode(recs, ts, ["\u20ac"] * 4, ansi_names=True)
    with pytest.raises(ValueError, match="one str per record"):
        write_wnode(recs, ts, [A])
    with pytest.raises(ValueError, match="uint16"):
        write_wnode(recs[:1], ts[:1], ["x" * 40000])
    with pytest.raises(TypeError, match="datetime64"):
        write_wnode(recs, np.arange(4), inst)
    with pytest.raises(ValueError, match="exactly"):
        write_wnode(recs[:1], np.array(["2500-01-01"], "datetime64[s]"), [A])
    with pytest.raises(ValueError, match="nodes_per_buffer"):
        write_wnode(recs, ts, inst, nodes_per_buffer=0)


def test_write_accepts_coarser_units_and_a_single_name(both):
    recs = records_from([values(1), values(2)])
    ts = np.array(["2024-01-01T00:00:00", "2024-01-01T00:00:01"], "datetime64[s]")
    cap = read_wnode(write_wnode(recs, ts, A))
    assert cap.timestamps.tolist() == ts.astype("datetime64[ns]").tolist() and cap.instance_names == (A,)


# --- Capture ----------------------------------------------------------------------------------


def _irregular_capture() -> tuple[Capture, dict[str, list[int]]]:
    """Instance B misses a sample and C appears late: deltas must pair by name, not by stride."""
    order = [A, B, A, A, B, C, A, B, C]
    vals = np.array([values(i) for i in range(len(order))], dtype=np.uint64)
    vals[:, 2] = [5, 100, 7, 8, 90, 1, 20, 95, 2]  # a counter: B falls 100 -> 90 (restart)
    ts = NS0 + np.array([0, 0, 10, 20, 20, 20, 40, 40, 40]) * np.timedelta64(1, "s")
    cap = read_wnode(write_wnode(records_from(vals), ts, order))
    rows = {name: [i for i, o in enumerate(order) if o == name] for name in (A, B, C)}
    return cap, rows


def test_deltas_and_rates_pair_samples_by_instance(both):
    cap, rows = _irregular_capture()
    d = cap.deltas(on_decrease="reset")
    r = cap.rates()
    assert list(d) == [A, B, C]
    for name, idx in rows.items():
        want = ipsecstats.deltas(cap.records[idx], on_decrease="reset")
        assert d[name].tobytes() == want.tobytes()
        seconds = np.diff(cap.timestamps[idx]).astype("timedelta64[ns]").astype(np.int64) / 1e9
        assert np.allclose(r[name]["AcquireFailures"], want["AcquireFailures"] / seconds)
    assert d[A]["AcquireFailures"].tolist() == [2, 1, 12]
    assert d[B]["AcquireFailures"].tolist() == [90, 5]
    assert r[A]["AcquireFailures"].tolist() == [0.2, 0.1, 0.6]
    fixed = cap.rates(interval=2.0)
    assert fixed[C]["AcquireFailures"].tolist() == [0.5]


def test_by_instance_keeps_source_order_and_timestamps(both):
    cap, rows = _irregular_capture()
    parts = cap.by_instance()
    for name, idx in rows.items():
        assert parts[name].records.tobytes() == cap.records[idx].tobytes()
        assert np.array_equal(parts[name].timestamps, cap.timestamps[idx])
        assert list(parts[name].instances) == [name] * len(idx)


def test_capture_without_timestamps_needs_an_interval():
    cap = Capture.from_instances(records_from([values(1), values(2)]), None, [A, A])
    with pytest.raises(ValueError, match="interval"):
        cap.rates()
    assert cap.rates(interval=1.0)[A]["AcquireFailures"].tolist() == [1000.0]


def test_capture_validates_its_fields():
    recs = records_from([values(1)])
    with pytest.raises(TypeError):
        Capture(recs.view("<u8"), None, np.zeros(1, np.intp), (A,))
    with pytest.raises(TypeError):
        Capture(recs, np.zeros(1, "datetime64[s]"), np.zeros(1, np.intp), (A,))
    with pytest.raises(TypeError):
        Capture(recs, None, np.zeros(1, np.int32), (A,))
    with pytest.raises(ValueError):
        Capture(recs, None, np.ones(1, np.intp), (A,))
    with pytest.raises(ValueError):
        Capture(recs, None, np.zeros(1, np.intp), (A, A))
    with pytest.raises(ValueError):
        Capture.from_instances(recs, None, [A, B])


def test_to_pandas_and_to_arrow_carry_timestamp_and_instance(both):
    import pandas as pd  # the test extra installs both: a missing one fails, never skips
    import pyarrow as pa
    cap, _ = _irregular_capture()
    frame = ipsecstats.to_pandas(cap)
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.name == "timestamp"
    assert frame["instance"].tolist() == list(cap.instances)
    assert frame["SoftAssociations"].dtype == np.uint64
    assert frame["ActiveAcquire"].tolist() == cap.records["ActiveAcquire"].tolist()
    table = ipsecstats.to_arrow(cap)
    assert table.column_names[:3] == ["timestamp", "instance", "ActiveAcquire"]
    assert table.schema.field("SoftAssociations").type == pa.uint64()
    assert table["ActiveAcquire"].to_pylist() == cap.records["ActiveAcquire"].tolist()


def test_errors_pickle_with_their_fields():
    import pickle

    with pytest.raises(WnodeFormatError) as err:
        read_wnode(HOSTILE["FixedInstanceSize 160"][0])
    back = pickle.loads(pickle.dumps(err.value))
    assert (type(back), str(back), back.offset, back.field) == (WnodeFormatError, str(err.value), 60,
                                                              "FixedInstanceSize")


def test_warnings_point_at_the_caller():
    buf = all_data_fixed([(B, values(9))], guid=OTHER_GUID)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_wnode(buf)
    assert len(caught) == 1 and caught[0].filename == __file__
