"""decode / encode: every buffer type, zero copy, read-only flags, truncation, round trips."""

from __future__ import annotations

import array
import mmap
import warnings

import numpy as np
import pytest
from conftest import DATA, EDGES, as_u64, random_values, records_from
from hypothesis import example, given
from hypothesis import strategies as st

import ipsecstats
from ipsecstats import RECORD_DTYPE, PartialRecordWarning, TruncatedRecordError, decode, encode


def sample_bytes(n: int = 5) -> bytes:
    values = np.arange(n * 21, dtype="<u8") * np.uint64(0x0101_0101_0101_0101)
    return values.tobytes()


# --- golden files --------------------------------------------------------------------

def test_golden_layout_little_endian(golden: dict) -> None:
    raw = (DATA / golden["layout"]["file"]).read_bytes()
    rec = decode(raw)
    assert rec.shape == (1,) and rec.dtype == RECORD_DTYPE
    for name, text in golden["layout"]["values"].items():
        assert int(rec[name][0]) == int(text), name
    assert encode(rec) == raw


def test_golden_truncated(golden: dict) -> None:
    spec = golden["truncated"]
    raw = (DATA / spec["file"]).read_bytes()
    with pytest.raises(TruncatedRecordError) as info:
        decode(raw)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.records == spec["records"] and err.trailing_bytes == spec["trailing_bytes"]
    msg = str(err)
    assert f"{spec['trailing_bytes']} trailing byte" in msg
    assert f"byte offset {spec['offset']}" in msg
    assert f"{spec['records']} complete record" in msg
    assert "allow_partial" in msg

    with pytest.warns(PartialRecordWarning) as caught:
        rec = decode(raw, allow_partial=True)
    assert len(caught) == 1
    assert caught[0].filename == __file__  # the warning points at the caller of decode()
    warning = caught[0].message
    assert isinstance(warning, PartialRecordWarning)
    assert warning.records == spec["records"] and warning.trailing_bytes == spec["trailing_bytes"]
    assert f"{spec['trailing_bytes']} trailing byte" in str(warning)
    assert rec.shape == (spec["records"],)
    assert encode(rec) == raw[: spec["records"] * 168]


@pytest.mark.parametrize("nbytes", [1, 7, 167, 169, 335, 337])
def test_truncation_counts(nbytes: int) -> None:
    raw = bytes(nbytes)
    with pytest.raises(TruncatedRecordError) as info:
        decode(raw)
    assert (info.value.records, info.value.trailing_bytes) == divmod(nbytes, 168)
    with pytest.warns(PartialRecordWarning, match=f"{nbytes % 168} trailing byte"):
        assert decode(raw, allow_partial=True).shape == (nbytes // 168,)


def test_whole_records_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode(sample_bytes(3), allow_partial=True).shape == (3,)
        assert decode(b"").shape == (0,)


# --- buffer types, zero copy and flags --------------------------------------------

def test_bytes_is_zero_copy_and_read_only() -> None:
    raw = sample_bytes()
    rec = decode(raw)
    assert np.shares_memory(rec, np.frombuffer(raw, dtype=np.uint8))
    assert not rec.flags.writeable
    assert rec.dtype == RECORD_DTYPE and rec.shape == (5,)
    assert int(rec["ActiveReceive"][1]) == 22 * 0x0101_0101_0101_0101


def test_bytearray_is_zero_copy_and_writeable() -> None:
    buf = bytearray(sample_bytes())
    rec = decode(buf)
    assert rec.flags.writeable
    assert np.shares_memory(rec, np.frombuffer(buf, dtype=np.uint8))
    buf[0] = 0x2A  # a view: the change shows through
    assert int(rec["ActiveAcquire"][0]) == 0x2A


@pytest.mark.parametrize("offset", range(8))
def test_memoryview_at_any_offset(offset: int) -> None:
    raw = sample_bytes(4)
    buf = bytearray(offset + len(raw) + 3)
    buf[offset : offset + len(raw)] = raw
    view = memoryview(buf)[offset : offset + len(raw)]
    rec = decode(view)
    assert np.shares_memory(rec, np.frombuffer(buf, dtype=np.uint8))
    assert encode(rec) == raw
    assert as_u64(rec).tolist() == np.frombuffer(raw, "<u8").reshape(4, 21).tolist()
    ro = decode(memoryview(bytes(buf))[offset : offset + len(raw)])
    assert not ro.flags.writeable and encode(ro) == raw


def test_memoryview_of_other_formats() -> None:
    raw = sample_bytes(2)
    words = array.array("Q", raw)
    assert encode(decode(memoryview(words))) == raw
    assert encode(decode(words)) == raw


def test_mmap_writeable_and_read_only(tmp_path) -> None:
    raw = sample_bytes(3)
    anon = mmap.mmap(-1, len(raw))
    anon.write(raw)
    rec = decode(anon)
    assert rec.flags.writeable and encode(rec) == raw
    del rec
    anon.close()

    path = tmp_path / "log.bin"
    path.write_bytes(raw)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as ro_map:
        ro = decode(ro_map)
        assert not ro.flags.writeable
        assert encode(ro) == raw
        owned = decode(ro_map, copy=True)
        del ro
    assert encode(owned) == raw


def test_uint8_array_zero_copy() -> None:
    raw = np.frombuffer(sample_bytes(), dtype=np.uint8).copy()
    rec = decode(raw)
    assert np.shares_memory(rec, raw) and rec.flags.writeable
    raw.flags.writeable = False
    assert not decode(raw).flags.writeable


@pytest.mark.parametrize("source", ["bytes", "bytearray", "memoryview", "uint8"])
def test_copy_is_owned_and_writeable(source: str) -> None:
    raw = sample_bytes()
    data = {"bytes": raw, "bytearray": bytearray(raw), "memoryview": memoryview(raw)[0:],
            "uint8": np.frombuffer(raw, np.uint8)}[source]
    rec = decode(data, copy=True)
    assert rec.flags.writeable and rec.flags.owndata and rec.flags.c_contiguous
    assert not np.shares_memory(rec, np.frombuffer(raw, np.uint8))
    assert rec.dtype == RECORD_DTYPE and encode(rec) == raw


def test_out_buffer() -> None:
    raw = sample_bytes(3)
    out = np.zeros(3, dtype=RECORD_DTYPE)
    got = decode(raw, out=out)
    assert got is out and encode(out) == raw
    for bad in (np.zeros(2, RECORD_DTYPE), np.zeros(3, np.uint64), np.zeros(6, RECORD_DTYPE)[::2],
                np.zeros((3, 1), RECORD_DTYPE)):
        with pytest.raises(ValueError, match="out"):
            decode(raw, out=bad)
    ro = np.zeros(3, RECORD_DTYPE)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        decode(raw, out=ro)


@pytest.mark.parametrize("bad", ["text", 5, 1.5, None])
def test_non_buffers_are_type_errors(bad: object) -> None:
    with pytest.raises(TypeError, match="bytes-like"):
        decode(bad)  # type: ignore[arg-type]


def test_bad_arrays() -> None:
    with pytest.raises(TypeError, match="uint8"):
        decode(np.zeros(21, np.uint64))
    with pytest.raises(ValueError, match="1-D"):
        decode(np.zeros((2, 168), np.uint8))
    with pytest.raises(ValueError, match="contiguous"):
        decode(np.zeros(336 * 2, np.uint8)[::2])
    with pytest.raises(ValueError, match="contiguous"):
        decode(memoryview(bytes(336 * 2))[::2])


# --- encode ----------------------------------------------------------------------------

def test_encode_inputs(rng: np.random.Generator) -> None:
    values = random_values(rng, 9)
    raw = values.astype("<u8").tobytes()
    rec = decode(raw)
    assert encode(rec) == raw
    assert encode(values) == raw  # (n, 21) uint64
    assert encode(values.astype(">u8")) == raw  # byte order converted, values kept
    assert encode(raw) == raw and encode(bytearray(raw)) == raw
    assert encode(rec[::2]) == values[::2].astype("<u8").tobytes()
    assert encode(rec[::-1]) == values[::-1].astype("<u8").tobytes()
    assert encode(rec[:0]) == b"" and encode(decode(b"")) == b""
    big = np.dtype({"names": list(RECORD_DTYPE.names), "formats": [">u8"] * 21})
    assert encode(rec.astype(big)) == raw


def test_encode_rejects_other_dtypes() -> None:
    with pytest.raises(TypeError):
        encode(np.zeros((2, 21), np.int64))
    with pytest.raises(TypeError):
        encode(np.zeros((2, 20), np.uint64))
    with pytest.raises(TypeError):
        encode(np.zeros(2, dtype=[("a", "<u8")]))
    with pytest.raises(ValueError):
        encode(np.zeros((2, 2), RECORD_DTYPE))


def test_decode_encode_leave_input_unchanged() -> None:
    raw = bytearray(sample_bytes(4))
    before = bytes(raw)
    decode(raw, copy=True)
    rec = decode(raw)
    encode(rec)
    encode(rec[::-1])
    assert bytes(raw) == before


@given(st.binary(max_size=168 * 6).map(lambda b: b[: len(b) - len(b) % 168]))
@example(b"")
@example(np.array([EDGES[i % len(EDGES)] for i in range(42)], dtype="<u8").tobytes())
def test_encode_decode_round_trip(raw: bytes) -> None:
    rec = decode(raw)
    assert rec.shape == (len(raw) // 168,)
    assert encode(rec) == raw
    assert encode(decode(raw, copy=True)) == raw
    assert decode(encode(as_u64(rec))).tobytes() == raw


def test_records_from_helper_round_trips() -> None:
    values = np.array([[v] * 21 for v in EDGES], dtype=np.uint64)
    assert as_u64(records_from(values)).tolist() == values.tolist()
    assert ipsecstats.encode(records_from(values)) == values.astype("<u8").tobytes()


def test_deltas_and_encode_take_a_uint8_array_of_raw_bytes():
    raw = np.arange(3 * 168, dtype=np.uint8)
    expected = ipsecstats.deltas(raw.tobytes())
    assert ipsecstats.deltas(raw).tobytes() == expected.tobytes()
    assert ipsecstats.encode(raw) == raw.tobytes()
    with pytest.raises(ipsecstats.TruncatedRecordError):
        ipsecstats.deltas(raw[:-1])
