"""Fuzzing read_wnode: mutated valid buffers give a consistent Capture or WnodeFormatError.

Each example takes a valid buffer (golden layouts from ``test_wnode`` and ``write_wnode``
output), applies a few mutations (flipped bytes, header fields set to hostile values,
Linkage pointing into its own WNODE or far away, Linkage = BufferSize + a gap, truncation,
appended junk) and checks:

* ``read_wnode`` returns a Capture or raises ``WnodeFormatError``, nothing else, under
  each kernel, and both kernels give the same records/timestamps/names or the same message;
* the Cython and pure walkers return identical ``WalkResult`` tuples and fill outputs;
* the streaming reader (``formats.wnode.WnodeReader``) over windows of a few bytes gives
  the same Capture or the same error as ``read_wnode``;
* a Capture is consistent: lengths agree, codes index the names, every record's 168
  bytes occur in the input, timestamps are NaT or inside datetime64[ns].

The hypothesis profile (``conftest``) bounds the campaign: 200 examples, no deadline.
README ("Windows capture formats") shows the run against the checking build (ASan).
"""

from __future__ import annotations

import struct
import warnings

import numpy as np
from conftest import FAST, KERNELS, records_from, using_kernel
from hypothesis import example, given
from hypothesis import strategies as st
from test_wnode import (
    A,
    B,
    C,
    OTHER_GUID,
    TICKS0,
    all_data_fixed,
    all_data_pairs,
    chain,
    single_instance,
    too_small,
    values,
)

import ipsecstats
from ipsecstats import WnodeFormatError, WnodeWarning, _slow, read_wnode, write_wnode
from ipsecstats import _wnode_layout as layout
from ipsecstats._capture import concat
from ipsecstats._source import ByteSource
from ipsecstats.formats import wnode

GUID = np.frombuffer(layout.GUID_BYTES, np.uint8)


def _written(fixed: bool, ansi: bool, per_buffer: int) -> bytes:
    recs = records_from([values(i) for i in range(6)])
    ts = np.repeat(np.datetime64("2024-01-01", "ns") + np.arange(3) * np.timedelta64(10, "s"), 2)
    return write_wnode(recs, ts, [A, "caf\xe9"] * 3, fixed_instance_size=fixed, ansi_names=ansi,
                       nodes_per_buffer=per_buffer)


BASES = [
    all_data_fixed([(A, values(1)), (B, values(2)), (C, values(3))]),
    all_data_pairs([(A, values(4)), (B, values(5))]),
    chain(single_instance(A, values(1)), single_instance(B, values(2), index=1, ansi=True)),
    chain(all_data_fixed([(A, values(1))]), all_data_pairs([(B, values(2))], ticks=TICKS0 + 1),
          all_data_fixed([(C, values(3))], guid=OTHER_GUID)),
    all_data_fixed([(A, values(1))]) + too_small(512) + single_instance(A, values(2)),
    _written(True, False, 1),
    _written(False, True, 3),
]

# wmistr.h field offsets worth aiming at, and values that break them in interesting ways
FIELDS = [0, 12, 16, 20, 44, 48, 52, 56, 60, 64, 68, 72]
HOSTILE_U32 = [0, 1, 2, 7, 8, 47, 48, 52, 60, 63, 64, 72, 128, 167, 168, 169, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFF8, 0xFFFFFFFF]


def node_starts(buf: bytes) -> list[int]:
    """Start of every WNODE of a valid buffer (walked with the wmistr.h offsets)."""
    starts, pos = [], 0
    while pos < len(buf):
        node = pos
        while True:
            starts.append(node)
            size, link = struct.unpack_from("<I8xI", buf, node)
            if link == 0:
                break
            node += link
        pos = node + size
    return starts


mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    st.tuples(st.just("set32"), st.integers(0, 15), st.sampled_from(FIELDS),
              st.one_of(st.sampled_from(HOSTILE_U32), st.integers(0, 2**32 - 1))),
    st.tuples(st.just("size_relative"), st.integers(0, 15), st.sampled_from(FIELDS), st.integers(-200, 200)),
    st.tuples(st.just("linkage"), st.integers(0, 15), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("gap"), st.integers(0, 15), st.integers(0, 600)),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("append"), st.binary(max_size=80)),
)


def mutate(buf: bytes, ops: list[tuple]) -> bytes:
    raw = bytearray(buf)
    starts = node_starts(buf)
    for op in ops:
        kind = op[0]
        if kind == "flip" and raw:
            raw[int(op[1] * len(raw))] ^= op[2]
        elif kind in ("set32", "size_relative", "linkage", "gap"):
            node = starts[op[1] % len(starts)]
            if kind == "linkage":
                field, value = 12, op[2]
            elif kind == "gap":  # Linkage = BufferSize + gap: legal only within the padding to 8
                field, value = 12, struct.unpack_from("<I", buf, node)[0] + op[2]
            elif kind == "set32":
                field, value = op[2], op[3]
            else:  # an offset near the WNODE's own size: the edges of every bounds check
                field = op[2]
                value = (struct.unpack_from("<I", buf, node)[0] + op[3]) % 2**32
            if node + field + 4 <= len(raw):
                struct.pack_into("<I", raw, node + field, value)
        elif kind == "truncate":
            del raw[int(op[1] * len(raw)):]
        elif kind == "append":
            raw += op[1]
    return bytes(raw)


def outcome(buf: bytes, allow_partial: bool):
    """read_wnode's result, checked equal to the streaming reader's over tiny windows."""
    whole = _outcome(buf, allow_partial, None)
    for window, chunk_records in STREAMS:
        assert _outcome(buf, allow_partial, (window, chunk_records)) == whole, (window, chunk_records)
    return whole


STREAMS = [(1, 1), (64, 3), (200, 16384)]  # (window bytes, chunk records)


def _outcome(buf: bytes, allow_partial: bool, stream: tuple[int, int] | None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WnodeWarning)
        try:
            if stream is None:
                cap = read_wnode(buf, allow_partial=allow_partial)
            else:
                saved = wnode.WINDOW_BYTES
                wnode.WINDOW_BYTES = stream[0]
                try:
                    reader = wnode.WnodeReader(ByteSource(buf, "read_wnode()"), chunk_records=stream[1],
                                               allow_partial=allow_partial)
                    chunks = list(reader)
                finally:
                    wnode.WINDOW_BYTES = saved
                for c in chunks:
                    assert 0 < len(c) <= stream[1]
                cap = concat(chunks) if chunks else read_wnode(b"")
        except WnodeFormatError as exc:
            assert 0 <= exc.offset <= len(buf) and exc.field, str(exc)
            return ("error", str(exc), exc.offset, exc.field)
    check_capture(cap, buf)
    return ("ok", cap.records.tobytes(), cap.timestamps.tobytes(), list(cap.instances))


def check_capture(cap: ipsecstats.Capture, buf: bytes) -> None:
    n = len(cap)
    assert cap.records.shape == cap.timestamps.shape == cap.instance_codes.shape == (n,)
    assert n * 168 <= len(buf)
    if n:
        assert 0 <= cap.instance_codes.min() and cap.instance_codes.max() < len(cap.instance_names)
    for row in cap.records.view(np.uint8).reshape(n, 168)[:64]:
        assert row.tobytes() in buf
    ns = cap.timestamps.view(np.int64)
    lo, hi = [(t - layout.FILETIME_UNIX_EPOCH) * 100 for t in (layout.TICKS_MIN, layout.TICKS_MAX)]
    assert np.all(np.isnat(cap.timestamps) | ((ns >= lo) & (ns <= hi)))


def walk_parity(buf: bytes) -> None:
    if FAST is None:
        return
    arr = np.frombuffer(buf, np.uint8)
    for skip in (False, True):
        counted = FAST.wnode_count(arr, GUID, skip)
        assert counted == _slow.wnode_count(arr, GUID, skip)
        n = counted[5]
        outs = []
        for kernel in (FAST, _slow):
            out = (np.zeros((n, 168), np.uint8), np.zeros(n, np.int64), np.zeros(n, np.int64),
                   np.zeros((max(n, 1), 3), np.int64))
            slots = np.zeros(1 << (2 * max(n, 1)).bit_length(), np.int64)
            outs.append((kernel.wnode_fill(arr, GUID, skip, *out, slots), out))
        assert outs[0][0] == outs[1][0]
        for x, y in zip(outs[0][1], outs[1][1]):
            assert np.array_equal(x, y)


@given(base=st.sampled_from(range(len(BASES))), ops=st.lists(mutation, min_size=1, max_size=4),
       allow_partial=st.booleans())
@example(base=0, ops=[("linkage", 0, 8)], allow_partial=False)
@example(base=3, ops=[("linkage", 1, 2**32 - 64)], allow_partial=True)
@example(base=2, ops=[("set32", 0, 48, 0xFFFFFFFF)], allow_partial=False)
@example(base=1, ops=[("truncate", 0.5)], allow_partial=True)
@example(base=6, ops=[("gap", 0, 448)], allow_partial=True)  # skips the whole second WNODE
def test_mutated_buffers(base, ops, allow_partial):
    buf = mutate(BASES[base], ops)
    walk_parity(buf)
    results = []
    for name in sorted(KERNELS):
        with using_kernel(KERNELS[name]):
            results.append(outcome(buf, allow_partial))
    assert all(r == results[0] for r in results)


@given(base=st.sampled_from(range(len(BASES))), node=st.integers(0, 15), gap=st.integers(1, 600))
@example(base=6, node=0, gap=448)  # Linkage onto the third WNODE: the second would be dropped
@example(base=2, node=0, gap=1)
def test_linkage_past_the_padding_is_always_an_error(base, node, gap):
    """A Linkage beyond align8(BufferSize) fails at that Linkage, even with allow_partial."""
    buf = BASES[base]
    start = node_starts(buf)[node % len(node_starts(buf))]
    size = struct.unpack_from("<I", buf, start)[0]
    link = (size + 7) // 8 * 8 + gap
    raw = bytearray(buf)
    struct.pack_into("<I", raw, start + 12, link)
    walk_parity(bytes(raw))
    for name in sorted(KERNELS):
        with using_kernel(KERNELS[name]):
            kind, message, offset, field = outcome(bytes(raw), True)
            assert (kind, offset, field) == ("error", start + 12, "Linkage"), message


@given(data=st.binary(max_size=400), allow_partial=st.booleans())
def test_random_bytes_after_a_valid_header(data, allow_partial):
    """Junk after a plausible header: offsets and counts come from random bytes."""
    head = bytearray(BASES[0][:48])
    struct.pack_into("<I", head, 0, 48 + len(data))
    struct.pack_into("<I", head, 12, 0)
    buf = bytes(head) + data
    walk_parity(buf)
    results = []
    for name in sorted(KERNELS):
        with using_kernel(KERNELS[name]):
            results.append(outcome(buf, allow_partial))
    assert all(r == results[0] for r in results)


def test_the_bases_are_valid():
    for buf in BASES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", WnodeWarning)
            assert len(read_wnode(buf, allow_partial=True)) > 0
