"""Columnar decode: ``decode_columns`` / ``delta_columns`` and the ``transpose_rows`` kernel."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import ipsecstats
from ipsecstats import _columns
from ipsecstats._schema import FIELD_NAMES

from conftest import EDGES, KERNELS, POLICIES, call_outcome, random_values, records_from

SIZES = (0, 1, 2, 7, 8, 9, 15, 16, 17, 100, 1001)


def make_records(rng: np.random.Generator, n: int) -> np.ndarray:
    """n records of rising counters, falls and uint64 edge values (n may be 0)."""
    return records_from(random_values(rng, max(n, 1)))[:n].copy()


def expected_columns(records: np.ndarray) -> dict[str, list[int]]:
    """Field -> Python ints, read record by record (no numpy transpose involved)."""
    return {name: [int(rec[name]) for rec in records] for name in FIELD_NAMES}


def assert_columns_equal(cols: ipsecstats.Columns, reference: np.ndarray) -> None:
    assert list(cols) == list(reference.dtype.names)
    for name in reference.dtype.names:
        col = cols[name]
        assert col.dtype == reference.dtype[name].newbyteorder("="), name  # columns are native
        assert col.shape == (reference.shape[0],)
        assert col.flags.c_contiguous
        assert np.array_equal(col, reference[name]), name


def hostile_views(records: np.ndarray) -> dict[str, np.ndarray]:
    """The same records as unaligned, strided, reversed, read-only and broadcast views."""
    n = records.shape[0]
    raw = np.zeros(n * 168 * 2 + 5, dtype=np.uint8)
    unaligned = raw[3 : 3 + n * 168].view(ipsecstats.RECORD_DTYPE)
    unaligned[...] = records
    doubled = np.repeat(records, 2)  # stride 336 after [::2]
    read_only = records.copy()
    read_only.flags.writeable = False
    views = {
        "contiguous": records,
        "unaligned": unaligned,
        "strided": doubled[::2],
        "reversed": records[::-1],
        "read_only": read_only,
    }
    if n:
        views["broadcast"] = np.broadcast_to(records[:1], (n,))
    return views


# ---- the kernel, both backends side by side ---------------------------------------------


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("streaming", [False, True])
def test_transpose_rows_kernels_agree_on_hostile_layouts(rng, n, streaming):
    records = make_records(rng, n)
    for label, view in hostile_views(records).items():
        rows = view.view(np.dtype((np.uint8, (168,))))
        expected = np.array([[int(r[f]) for r in view] for f in FIELD_NAMES], dtype=np.uint64).reshape(21, n)
        for name, kernel in KERNELS.items():
            # a column slice of a wider block: rows contiguous but 8 items further apart than n
            out = np.full((21, n + 8), 0xAB, dtype=np.uint64)[:, 3 : 3 + n]
            kernel.transpose_rows(rows, out, streaming)
            assert np.array_equal(out, expected), (name, label)
            c_out = np.empty((21, n), dtype=np.uint64)
            kernel.transpose_rows(rows, c_out, streaming)
            assert np.array_equal(c_out, expected), (name, label)


def test_transpose_rows_writes_nothing_outside_out():
    records = records_from(np.arange(33 * 21).reshape(33, 21))
    rows = records.view(np.dtype((np.uint8, (168,))))
    for kernel in KERNELS.values():
        wide = np.full((23, 50), 7, dtype=np.uint64)
        kernel.transpose_rows(rows, wide[1:22, 9:42])
        untouched = wide.copy()
        untouched[1:22, 9:42] = 7
        assert (untouched == 7).all()


@pytest.mark.parametrize(
    ("src_shape", "out_shape"),
    [((4, 167), (21, 4)), ((4, 169), (21, 4)), ((4, 168), (21, 5)), ((4, 168), (20, 4)), ((4, 168), (22, 4))],
)
def test_transpose_rows_rejects_wrong_shapes_in_every_kernel(src_shape, out_shape):
    src = np.zeros(src_shape, dtype=np.uint8)
    out = np.zeros(out_shape, dtype=np.uint64)
    for name, kernel in KERNELS.items():
        with pytest.raises(ValueError):
            kernel.transpose_rows(src, out)
        assert not out.any(), name


def test_transpose_rows_rejects_an_unaligned_out():
    raw = np.zeros(21 * 4 * 8 + 8, dtype=np.uint8)
    out = raw[3 : 3 + 21 * 4 * 8].view(np.uint64).reshape(21, 4)
    assert not out.flags.aligned
    for kernel in KERNELS.values():
        with pytest.raises(ValueError, match="aligned"):
            kernel.transpose_rows(np.zeros((4, 168), np.uint8), out)
    with pytest.raises(ValueError, match="aligned"):
        ipsecstats.decode_columns(np.zeros(4 * 168, np.uint8), out=out)


def test_transpose_rows_rejects_wrong_dtypes_and_misaligned_rows():
    for kernel in KERNELS.values():
        with pytest.raises(ValueError):
            kernel.transpose_rows(np.zeros((2, 168), np.uint8), np.zeros((21, 2), np.int64))
        with pytest.raises(ValueError):
            kernel.transpose_rows(np.zeros((2, 21), np.uint64), np.zeros((21, 2), np.uint64))
        with pytest.raises((ValueError, TypeError)):
            kernel.transpose_rows(np.zeros((2, 168), np.uint8), np.zeros((2, 21), np.uint64).T)


# ---- decode_columns -------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
def test_decode_columns_equals_decode_for_every_layout(kernel, rng, n):
    records = make_records(rng, n)
    for label, view in hostile_views(records).items():
        before = view.tobytes()
        assert_columns_equal(ipsecstats.decode_columns(view), view.copy())
        assert view.tobytes() == before, label  # the input is never modified


def test_decode_columns_at_uint64_edges(kernel):
    values = np.array([[EDGES[(i + j) % len(EDGES)] for j in range(21)] for i in range(len(EDGES))],
                      dtype=np.uint64)
    cols = ipsecstats.decode_columns(values.astype("<u8").tobytes())  # raw records are little-endian
    expected = expected_columns(records_from(values))
    for name in FIELD_NAMES:
        assert [int(v) for v in cols[name]] == expected[name]
    assert int(cols["ActiveAcquire"][EDGES.index(2**64 - 1)]) == 2**64 - 1


@given(st.lists(st.lists(st.sampled_from(EDGES) | st.integers(0, 2**64 - 1), min_size=21, max_size=21),
                max_size=40))
@example([[2**64 - 1] * 21, [0] * 21, [2**63] * 21])
def test_decode_columns_property(values):
    records = records_from(values) if values else np.empty(0, ipsecstats.RECORD_DTYPE)
    cols = ipsecstats.decode_columns(ipsecstats.encode(records))
    expected = expected_columns(records)
    for name in FIELD_NAMES:
        assert [int(v) for v in cols[name]] == expected[name]


def test_decode_columns_takes_bytes_memoryview_uint8_and_n_by_21(rng):
    values = random_values(rng, 9)
    raw = values.astype("<u8").tobytes()
    reference = records_from(values)
    for data in (raw, bytearray(raw), memoryview(raw), np.frombuffer(raw, np.uint8), values):
        assert_columns_equal(ipsecstats.decode_columns(data), reference)
    small = (values % 1000).astype(np.uint16)
    assert_columns_equal(ipsecstats.decode_columns(small), records_from(small))


def test_decode_columns_block_layout():
    cols = ipsecstats.decode_columns(np.arange(13 * 21, dtype="<u8").tobytes())
    assert len(cols) == 21 and cols.nrows == 13
    assert cols.block.shape == (21, 13) and cols.block.dtype == np.uint64
    for j, name in enumerate(FIELD_NAMES):
        assert np.shares_memory(cols[name], cols.block)
        assert cols[name].ctypes.data % 64 == 0  # every column starts on a cache line
        assert np.array_equal(cols[name], np.arange(13) * 21 + j)
    assert "13 rows" in repr(cols)


def test_decode_columns_partial_record_rule():
    raw = np.arange(3 * 21, dtype="<u8").tobytes() + b"\x01\x02\x03"
    with pytest.raises(ipsecstats.TruncatedRecordError) as info:
        ipsecstats.decode_columns(raw)
    assert info.value.records == 3 and info.value.trailing_bytes == 3 and info.value.offset == 504
    with pytest.warns(ipsecstats.PartialRecordWarning):
        cols = ipsecstats.decode_columns(raw, allow_partial=True)
    assert cols.nrows == 3 and int(cols["SoftAssociations"][2]) == 62


def test_decode_columns_out_is_filled_and_checked(kernel, rng):
    records = records_from(random_values(rng, 20))
    out = np.zeros((21, 28), dtype=np.uint64)[:, 4:24]
    cols = ipsecstats.decode_columns(records, out=out)
    assert cols.block is out
    assert_columns_equal(cols, records)
    for bad in (np.zeros((21, 19), np.uint64), np.zeros((21, 20), np.int64), np.zeros((20, 21), np.uint64).T):
        with pytest.raises(ValueError):
            ipsecstats.decode_columns(records, out=bad)
    read_only = np.zeros((21, 20), np.uint64)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        ipsecstats.decode_columns(records, out=read_only)


def test_decode_columns_rejects_bad_input():
    with pytest.raises(TypeError):
        ipsecstats.decode_columns("not bytes")
    with pytest.raises(TypeError):
        ipsecstats.decode_columns(np.zeros((3, 21), dtype=np.float64))
    with pytest.raises(TypeError):
        ipsecstats.decode_columns(np.zeros((3, 20), dtype=np.uint64))


def test_decode_columns_streaming_path_matches(kernel, rng, monkeypatch):
    monkeypatch.setattr(_columns, "STREAMING_THRESHOLD", 0)
    records = records_from(random_values(rng, 37))
    assert_columns_equal(ipsecstats.decode_columns(records[3:]), records[3:])


# ---- delta_columns --------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("run_rows", [1, 5, 8192])
def test_delta_columns_equals_deltas(kernel, rng, monkeypatch, policy, stride, run_rows):
    monkeypatch.setattr(_columns, "DELTA_RUN_ROWS", run_rows)
    records = records_from(random_values(rng, 41))
    kinds = {"KeyUpdates": "gauge", "ActiveAcquire": "counter"}
    for kw in ({}, {"kinds": kinds}):
        expected = ipsecstats.deltas(records, stride=stride, on_decrease=policy, **kw)
        assert_columns_equal(ipsecstats.delta_columns(records, stride=stride, on_decrease=policy, **kw), expected)
        prev, rest = records[:stride], records[stride:]
        expected = ipsecstats.deltas(rest, stride=stride, on_decrease=policy, previous=prev, **kw)
        got = ipsecstats.delta_columns(rest, stride=stride, on_decrease=policy, previous=prev, **kw)
        assert_columns_equal(got, expected)


def test_delta_columns_dtypes_and_gauge_sign():
    values = np.zeros((2, 21), dtype=np.uint64)
    values[0, 0], values[1, 0] = 5, 3  # ActiveAcquire is a gauge: -2
    values[0, 2], values[1, 2] = 2**64 - 1, 0  # AcquireFailures wraps under "wrap": +1
    cols = ipsecstats.delta_columns(records_from(values), on_decrease="wrap")
    assert cols["ActiveAcquire"].dtype == np.int64 and int(cols["ActiveAcquire"][0]) == -2
    assert cols["AcquireFailures"].dtype == np.uint64 and int(cols["AcquireFailures"][0]) == 1
    assert np.shares_memory(cols["ActiveAcquire"], cols.block)


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_delta_columns_short_inputs(n):
    records = records_from(np.arange(n * 21).reshape(n, 21))
    for stride in (1, 2, 3):
        expected = ipsecstats.deltas(records, stride=stride)
        assert_columns_equal(ipsecstats.delta_columns(records, stride=stride), expected)
        prev = records_from(np.zeros((stride, 21)))
        expected = ipsecstats.deltas(records, stride=stride, previous=prev)
        assert_columns_equal(ipsecstats.delta_columns(records, stride=stride, previous=prev), expected)


@pytest.mark.parametrize("run_rows", [2, 8192])
def test_delta_columns_raise_names_the_absolute_row(monkeypatch, run_rows):
    monkeypatch.setattr(_columns, "DELTA_RUN_ROWS", run_rows)
    values = np.cumsum(np.ones((12, 21), dtype=np.uint64), axis=0)
    values[9, 4] = 1  # SendFailures falls between rows 8 and 9
    records = records_from(values)
    with pytest.raises(ipsecstats.CounterResetError) as info:
        ipsecstats.delta_columns(records, on_decrease="raise")
    with pytest.raises(ipsecstats.CounterResetError) as reference:
        ipsecstats.deltas(records, on_decrease="raise")
    assert (info.value.row, info.value.field) == (reference.value.row, reference.value.field) == (8, "SendFailures")
    assert str(info.value) == str(reference.value)


def test_delta_columns_errors_match_deltas():
    records = records_from(np.arange(4 * 21).reshape(4, 21))
    for kw in ({"stride": 0}, {"on_decrease": "sometimes"}, {"kinds": {"Nope": "gauge"}},
               {"previous": records[:2]}, {"stride": True}):
        got = call_outcome(ipsecstats.delta_columns, records, **kw)
        expected = call_outcome(ipsecstats.deltas, records, **kw)
        assert got[0] == "raised" and got[1:] == expected[1:], kw


def test_both_backends_give_identical_columns(rng):
    from conftest import using_kernel

    records = records_from(random_values(rng, 300))
    results = {}
    for name, kernel in KERNELS.items():
        with using_kernel(kernel):
            d = ipsecstats.delta_columns(records[1::2], stride=2, on_decrease="auto")
            r = ipsecstats.decode_columns(records[::-3])
        results[name] = (d.block.tobytes(), r.block.tobytes())
    assert len(set(results.values())) == 1
