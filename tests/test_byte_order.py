"""Byte order: record rows are little-endian on every host; what users compute is native.

``RECORD_DTYPE`` rows and the deltas rows state ``'<u8'``/``'<i8'``; rates, columns and the
rows read from CSV are converted, never reinterpreted. On a little-endian host a native
view of a little-endian row reads the right numbers by luck, so these tests also feed
big-endian (``'>u8'``) inputs, and check every output's dtype against the native one. On
a big-endian host (``tools/cross-test.sh s390x``) they catch any native view of a
little-endian row. Expected values are computed here with Python integers.
"""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pytest

import ipsecstats
from ipsecstats import FIELDS, RECORD_DTYPE, from_pandas, read_cim_csv, read_pdh_csv
from ipsecstats._interop import table_columns

NATIVE_U8 = np.dtype(np.uint64)
NATIVE_I8 = np.dtype(np.int64)
NATIVE_F8 = np.dtype(np.float64)
NAMES = [f.name for f in FIELDS]
COUNTER = [f.kind == "counter" for f in FIELDS]
M64 = 2**64

# three samples of one instance: counters grow by known steps, one gauge falls
VALUES = [[1000 * j + 7 for j in range(21)],
          [1000 * j + 7 + 50 * (j + 1) for j in range(21)],
          [1000 * j + 7 + 50 * (j + 1) + (2**40 + j) for j in range(21)]]
VALUES[2][NAMES.index("ConnectionListSize")] = 3  # a gauge that falls: a negative delta


def raw(values: list[list[int]]) -> bytes:
    """The 168-byte little-endian rows, as Windows writes them."""
    return b"".join(struct.pack("<21Q", *row) for row in values)


def expected_deltas(values: list[list[int]], stride: int = 1) -> list[list[int]]:
    out = []
    for i in range(len(values) - stride):
        row = []
        for j in range(21):
            d = (values[i + stride][j] - values[i][j]) % M64
            row.append(d if COUNTER[j] or d < 2**63 else d - M64)  # gauges: int64
        out.append(row)
    return out


def field_dtypes(arr: np.ndarray) -> list[np.dtype]:
    return [arr.dtype.fields[name][0] for name in arr.dtype.names]


@pytest.fixture
def records() -> np.ndarray:
    return ipsecstats.decode(raw(VALUES))


def test_records_rows_state_little_endian(records: np.ndarray) -> None:
    assert all(dt == np.dtype("<u8") for dt in field_dtypes(records))
    assert ipsecstats.encode(records) == raw(VALUES)
    assert [[int(records[n][i]) for n in NAMES] for i in range(3)] == VALUES


@pytest.mark.parametrize("on_decrease", ["auto", "raise"])  # the kernel's one pass; deltas, then divide
def test_rates_are_native_and_exact(records: np.ndarray, on_decrease: str) -> None:
    kinds = {"ConnectionListSize": "counter"} if on_decrease == "raise" else None
    if on_decrease == "raise":  # a counter must not fall: keep the gauge's value growing here
        values = [row[:] for row in VALUES]
        values[2][NAMES.index("ConnectionListSize")] = values[1][NAMES.index("ConnectionListSize")] + 9
        records = ipsecstats.decode(raw(values))
    else:
        values = VALUES
    out = ipsecstats.rates(records, interval=2.0, on_decrease=on_decrease, kinds=kinds)
    assert all(dt == NATIVE_F8 for dt in field_dtypes(out))
    counters = list(out.dtype.names)
    want = expected_deltas(values)
    for i in range(2):
        for name in counters:
            assert out[name][i] == float(want[i][NAMES.index(name)]) / 2.0


def test_rates_with_big_endian_timestamps(records: np.ndarray) -> None:
    seconds = np.array([0.0, 4.0, 5.0], dtype=">f8")
    out = ipsecstats.rates(records, timestamps=seconds)
    want = expected_deltas(VALUES)
    name = "OakleyMainMode"
    assert out[name].tolist() == [want[0][NAMES.index(name)] / 4.0, want[1][NAMES.index(name)] / 1.0]
    big_ns = np.array([0, 4 * 10**9, 5 * 10**9], dtype=">i8").astype(">M8[ns]")
    assert ipsecstats.rates(records, timestamps=big_ns).tobytes() == out.tobytes()


def test_iter_rates_of_a_file_equals_rates(records: np.ndarray, tmp_path) -> None:
    path = tmp_path / "log.bin"
    path.write_bytes(raw(VALUES))
    chunks = list(ipsecstats.iter_rates(path, interval=2.0, chunk_records=2))
    assert all(dt == NATIVE_F8 for c in chunks for dt in field_dtypes(c))
    assert np.concatenate(chunks).tobytes() == ipsecstats.rates(records, interval=2.0).tobytes()
    assert np.concatenate(chunks)["OakleyQuickMode"][0] == 50.0 * (NAMES.index("OakleyQuickMode") + 1) / 2.0


def test_deltas_rows_read_the_exact_values(records: np.ndarray) -> None:
    d = ipsecstats.deltas(records)
    assert [[int(d[n][i]) for n in NAMES] for i in range(2)] == expected_deltas(VALUES)


@pytest.mark.parametrize("source", ["records", "big-endian (n, 21)", "big-endian rows", "bytes"])
def test_decode_columns_are_native(records: np.ndarray, source: str) -> None:
    data = {"records": records, "bytes": raw(VALUES),
            "big-endian (n, 21)": np.array(VALUES, dtype=">u8"),
            "big-endian rows": records.astype([(n, ">u8") for n in NAMES])}[source]
    cols = ipsecstats.decode_columns(data)
    for j, name in enumerate(NAMES):
        assert cols[name].dtype == NATIVE_U8
        assert cols[name].tolist() == [row[j] for row in VALUES]


@pytest.mark.parametrize("big_endian_input", [False, True])
def test_delta_columns_are_native(records: np.ndarray, big_endian_input: bool) -> None:
    data = np.array(VALUES, dtype=">u8") if big_endian_input else records
    cols = ipsecstats.delta_columns(data)
    want = expected_deltas(VALUES)
    for j, name in enumerate(NAMES):
        assert cols[name].dtype == (NATIVE_U8 if COUNTER[j] else NATIVE_I8)
        assert cols[name].tolist() == [row[j] for row in want]


@pytest.mark.parametrize("order", ["<", ">"])
def test_table_columns_of_rows_in_either_order(records: np.ndarray, order: str) -> None:
    """A 168-byte row array goes through the kernel's transpose only if it is little-endian."""
    d = ipsecstats.deltas(records)
    rows = d.astype([(n, order + d.dtype.fields[n][0].str[1:]) for n in NAMES])
    cols = table_columns(rows)
    want = expected_deltas(VALUES)
    for j, name in enumerate(NAMES):
        assert cols[name].dtype.isnative
        assert cols[name].tolist() == [row[j] for row in want]


@pytest.mark.parametrize("what", ["records", "deltas"])
def test_pandas_round_trip_is_bit_exact(records: np.ndarray, what: str) -> None:
    data = records if what == "records" else ipsecstats.deltas(records)
    frame = ipsecstats.to_pandas(data)
    assert all(frame[name].dtype == (NATIVE_U8 if what == "records" or COUNTER[j] else NATIVE_I8)
               for j, name in enumerate(NAMES))
    back = from_pandas(frame, what=what)
    assert back.dtype == data.dtype
    assert back.tobytes() == data.tobytes()


def test_from_pandas_of_big_endian_columns(records: np.ndarray) -> None:
    frame = pd.DataFrame({name: np.array([row[j] for row in VALUES], dtype=">u8") for j, name in enumerate(NAMES)})
    back = from_pandas(frame)
    assert back.dtype == RECORD_DTYPE
    assert ipsecstats.encode(back) == raw(VALUES)


def test_rates_round_trip_through_pandas(records: np.ndarray) -> None:
    out = ipsecstats.rates(records, interval=0.5)
    frame = ipsecstats.to_pandas(out)
    assert all(frame[name].dtype == NATIVE_F8 for name in out.dtype.names)
    assert frame["OakleyMainMode"].tolist() == out["OakleyMainMode"].tolist()


def test_cim_csv_rows_are_little_endian() -> None:
    header = ",".join(f'"{n}"' for n in ["InstanceName", *NAMES])
    lines = [header] + [",".join(['"ROOT\\ISCSIPRT\\0000_0"'] + [f'"{v}"' for v in row]) for row in VALUES]
    cap = read_cim_csv(("\r\n".join(lines) + "\r\n").encode())
    assert cap.records.dtype == RECORD_DTYPE
    assert ipsecstats.encode(cap.records) == raw(VALUES)


def test_pdh_csv_rows_are_little_endian() -> None:
    obj = "\\\\HOST\\MSiSCSI_MMIPSECStats(ROOT\\ISCSIPRT\\0000_0)\\"
    header = ['"(PDH-CSV 4.0) (Coordinated Universal Time)(0)"'] + [f'"{obj}{n}"' for n in NAMES]
    lines = [",".join(header)]
    for i, row in enumerate(VALUES[:2]):  # values below 2**53: perfmon's doubles hold them exactly
        lines.append(",".join([f'"06/03/2024 08:00:{10 * i:02d}.000"'] + [f'"{v}"' for v in row]))
    cap = read_pdh_csv(("\r\n".join(lines) + "\r\n").encode())
    assert cap.records.dtype == RECORD_DTYPE
    assert ipsecstats.encode(cap.records) == raw(VALUES[:2])
