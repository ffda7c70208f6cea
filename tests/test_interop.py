"""to_arrow / to_pandas / to_polars and their from_* inverses: exact, zero-copy, typed."""

from __future__ import annotations

import io
import sys

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import ipsecstats
from ipsecstats import _interop
from ipsecstats._schema import FIELD_NAMES, GAUGES

from conftest import EDGES, H63, MASK64, random_values, records_from

TO = {"arrow": ipsecstats.to_arrow, "pandas": ipsecstats.to_pandas, "polars": ipsecstats.to_polars}
FROM = {"arrow": ipsecstats.from_arrow, "pandas": ipsecstats.from_pandas, "polars": ipsecstats.from_polars}
LIBS = sorted(TO)
MODULES = {"arrow": "pyarrow", "pandas": "pandas", "polars": "polars"}


def column_numpy(table, name: str) -> np.ndarray:
    """The column's values as numpy, zero-copy where the library allows it."""
    if isinstance(table, pa.Table):
        col = table.column(name)
        assert col.num_chunks == 1
        return col.chunk(0).to_numpy(zero_copy_only=col.type.id != pa.timestamp("ns").id)
    if isinstance(table, pd.DataFrame):
        return table[name].to_numpy()
    return table[name].to_numpy()


def column_type(table, name: str) -> str:
    if isinstance(table, pa.Table):
        return str(table.schema.field(name).type)
    if isinstance(table, pd.DataFrame):
        return str(table[name].dtype)
    return str(table.schema[name]).lower()


@pytest.fixture
def edge_records() -> np.ndarray:
    """Every field passes 0, 2**63 and 2**64 - 1 (and the other edges) in some row."""
    values = [[EDGES[(i + j) % len(EDGES)] for j in range(21)] for i in range(len(EDGES))]
    return records_from(values)


@pytest.mark.parametrize("lib", LIBS)
def test_records_at_uint64_edges_are_exact_unsigned_columns(lib, edge_records):
    table = TO[lib](edge_records)
    for name in FIELD_NAMES:
        assert column_type(table, name) == "uint64", (lib, name)
        got = [int(v) for v in column_numpy(table, name)]
        assert got == [int(v) for v in edge_records[name]], (lib, name)
    assert {0, 2**63, 2**64 - 1} <= {int(v) for v in column_numpy(table, "KeyUpdates")}


@pytest.mark.parametrize("lib", LIBS)
def test_records_round_trip_exactly(lib, edge_records):
    back = FROM[lib](TO[lib](edge_records))
    assert back.dtype == ipsecstats.RECORD_DTYPE
    assert back.tobytes() == edge_records.tobytes()


@pytest.mark.parametrize("lib", LIBS)
def test_deltas_keep_unsigned_counters_and_signed_gauges(lib, rng):
    records = records_from(random_values(rng, 50))
    d = ipsecstats.deltas(records, stride=2, on_decrease="wrap")
    table = TO[lib](d)
    for name in FIELD_NAMES:
        assert column_type(table, name) == ("int64" if name in GAUGES else "uint64"), (lib, name)
        assert np.array_equal(column_numpy(table, name), d[name])
    back = FROM[lib](table, what="deltas")
    assert back.dtype == d.dtype and back.tobytes() == d.tobytes()


@pytest.mark.parametrize("lib", LIBS)
def test_kinds_override_round_trips(lib, rng):
    records = records_from(random_values(rng, 20))
    kinds = {"KeyUpdates": "gauge", "ActiveAcquire": "counter"}
    d = ipsecstats.deltas(records, kinds=kinds)
    back = FROM[lib](TO[lib](d), what="deltas", kinds=kinds)
    assert back.dtype == d.dtype and back.tobytes() == d.tobytes()
    assert back.dtype["KeyUpdates"] == np.int64 and back.dtype["ActiveAcquire"] == np.uint64


@pytest.mark.parametrize("lib", LIBS)
def test_columns_are_wrapped_without_a_copy(lib, rng):
    cols = ipsecstats.decode_columns(records_from(random_values(rng, 64)))
    table = TO[lib](cols)
    for name in FIELD_NAMES:
        assert np.shares_memory(column_numpy(table, name), cols[name]), (lib, name)
    dcols = ipsecstats.delta_columns(records_from(random_values(rng, 64)))
    table = TO[lib](dcols)
    for name in FIELD_NAMES:
        assert np.shares_memory(column_numpy(table, name), dcols[name]), (lib, name)


def test_arrow_buffers_are_the_kernel_block_and_aligned(rng):
    cols = ipsecstats.decode_columns(records_from(random_values(rng, 10)))
    table = ipsecstats.to_arrow(cols)
    for name in FIELD_NAMES:
        buf = table.column(name).chunk(0).buffers()[1]
        assert buf.address == cols[name].ctypes.data
        assert buf.address % 64 == 0


@pytest.mark.parametrize("lib", LIBS)
def test_rates_convert_as_float_columns(lib, rng):
    r = ipsecstats.rates(records_from(random_values(rng, 30)), interval=10.0)
    table = TO[lib](r)
    for name in r.dtype.names:
        assert column_type(table, name) in ("double", "float64"), (lib, name)
        assert np.array_equal(column_numpy(table, name), r[name], equal_nan=True)


def test_to_arrow_timestamp_and_instance_columns(rng):
    records = records_from(random_values(rng, 6))
    ts = np.datetime64("2025-03-01T12:00:00", "ms") + np.arange(6) * np.timedelta64(500, "ms")
    table = ipsecstats.to_arrow(records, timestamps=ts, instance=2)
    assert table.column_names[:3] == ["timestamp", "instance", "ActiveAcquire"]
    assert table.schema.field("timestamp").type == pa.timestamp("ms")
    assert table.column("timestamp").to_numpy().tolist() == ts.tolist()
    assert table.column("instance").to_pylist() == [0, 1, 0, 1, 0, 1]


def test_to_pandas_datetime_index_and_instance(rng):
    records = records_from(random_values(rng, 6))
    ts = np.datetime64("2025-03-01", "D") + np.arange(6)  # days become exact seconds
    df = ipsecstats.to_pandas(records, timestamps=ts, instance=3)
    assert isinstance(df.index, pd.DatetimeIndex) and df.index.name == "timestamp"
    assert df.index.to_numpy().astype("datetime64[s]").tolist() == ts.astype("datetime64[s]").tolist()
    assert df.columns[0] == "instance" and df["instance"].tolist() == [0, 1, 2, 0, 1, 2]
    assert str(df["KeyUpdates"].dtype) == "uint64"
    without = ipsecstats.to_pandas(records)
    assert isinstance(without.index, pd.RangeIndex) and "instance" not in without.columns


def test_to_polars_timestamp_and_labels(rng):
    records = records_from(random_values(rng, 4))
    ts = np.datetime64("2025-03-01T00:00:00", "s") + np.arange(4)
    df = ipsecstats.to_polars(records, timestamps=ts, instance=["hba0", "hba1", "hba0", "hba1"])
    assert df.columns[:2] == ["timestamp", "instance"]
    assert df.schema["timestamp"] == pl.Datetime("ms")
    assert df["timestamp"].to_numpy().astype("datetime64[s]").tolist() == ts.tolist()
    assert df["instance"].to_list() == ["hba0", "hba1", "hba0", "hba1"]


@pytest.mark.parametrize("lib", LIBS)
def test_empty_input_gives_empty_typed_tables(lib):
    empty = np.empty(0, ipsecstats.RECORD_DTYPE)
    table = TO[lib](empty)
    assert column_type(table, "KeyUpdates") == "uint64" and len(column_numpy(table, "KeyUpdates")) == 0
    back = FROM[lib](table)
    assert back.dtype == ipsecstats.RECORD_DTYPE and back.shape == (0,)


@pytest.mark.parametrize("lib", LIBS)
def test_bad_timestamps_and_instance_are_rejected(lib):
    records = records_from(np.zeros((3, 21)))
    with pytest.raises(TypeError, match="datetime64"):
        TO[lib](records, timestamps=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="one entry per row"):
        TO[lib](records, timestamps=np.array(["2025-01-01"] * 2, dtype="datetime64[s]"))
    with pytest.raises(ValueError, match="finer than nanoseconds"):
        TO[lib](records, timestamps=np.zeros(3, dtype="datetime64[ps]"))
    with pytest.raises(ValueError, match="instance"):
        TO[lib](records, instance=0)
    with pytest.raises(ValueError, match="one label per row"):
        TO[lib](records, instance=["a", "b"])


@pytest.mark.parametrize("lib", LIBS)
def test_missing_library_names_the_extra(lib, monkeypatch, edge_records):
    monkeypatch.setitem(sys.modules, MODULES[lib], None)  # makes `import <module>` fail
    with pytest.raises(ImportError, match=rf'pip install "ipsecstats\[{lib}\]"'):
        TO[lib](edge_records)
    with pytest.raises(ImportError, match=rf'pip install "ipsecstats\[{lib}\]"'):
        FROM[lib](object())


def test_from_arrow_rejects_floats_nulls_and_missing_columns(edge_records):
    table = ipsecstats.to_arrow(edge_records)
    i = table.column_names.index("KeyUpdates")
    as_float = table.set_column(i, "KeyUpdates", table.column("KeyUpdates").cast(pa.float64(), safe=False))
    with pytest.raises(TypeError, match="KeyUpdates.*float"):
        ipsecstats.from_arrow(as_float)
    nulls = pa.array([1, None, 3] + [0] * (len(edge_records) - 3), type=pa.uint64())
    with pytest.raises(ValueError, match="KeyUpdates has 1 missing value.*row 1"):
        ipsecstats.from_arrow(table.set_column(i, "KeyUpdates", nulls))
    with pytest.raises(ValueError, match="lacks field column.*KeyUpdates"):
        ipsecstats.from_arrow(table.drop_columns(["KeyUpdates"]))
    with pytest.raises(TypeError):
        ipsecstats.from_arrow({"KeyUpdates": [1]})


def test_from_arrow_takes_record_batches_and_several_chunks(edge_records):
    table = ipsecstats.to_arrow(edge_records)
    batch = table.to_batches()[0]
    assert ipsecstats.from_arrow(batch).tobytes() == edge_records.tobytes()
    two = pa.concat_tables([table.slice(0, 4), table.slice(4)])
    assert two.column("KeyUpdates").num_chunks == 2
    assert ipsecstats.from_arrow(two).tobytes() == edge_records.tobytes()


def test_from_pandas_accepts_nullable_and_arrow_dtypes_without_missing_values(edge_records):
    df = ipsecstats.to_pandas(edge_records)
    nullable = df.astype("UInt64")
    assert ipsecstats.from_pandas(nullable).tobytes() == edge_records.tobytes()
    arrow_backed = df.astype("uint64[pyarrow]")
    assert ipsecstats.from_pandas(arrow_backed).tobytes() == edge_records.tobytes()
    nullable.loc[2, "TotalGetSPI"] = pd.NA
    with pytest.raises(ValueError, match="TotalGetSPI has 1 missing value.*row 2"):
        ipsecstats.from_pandas(nullable)
    with pytest.raises(TypeError, match="float"):
        ipsecstats.from_pandas(df.astype({"TotalGetSPI": "float64"}))
    with pytest.raises(TypeError):
        ipsecstats.from_pandas(edge_records)


def test_from_polars_rejects_nulls_and_lazy_frames(edge_records):
    df = ipsecstats.to_polars(edge_records)
    with_null = df.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("GetSPIFailures"))
                                .alias("GetSPIFailures"))
    with pytest.raises(ValueError, match="GetSPIFailures has 1 missing value.*row 3"):
        ipsecstats.from_polars(with_null)
    with pytest.raises(TypeError, match="LazyFrame"):
        ipsecstats.from_polars(df.lazy())
    with pytest.raises(TypeError, match="String|str"):
        ipsecstats.from_polars(df.with_columns(pl.col("GetSPIFailures").cast(pl.String)))


def test_narrower_unsigned_columns_widen_exactly():
    df = pd.DataFrame({name: np.array([0, 7, 2**32 - 1], dtype=np.uint32) for name in FIELD_NAMES})
    back = ipsecstats.from_pandas(df)
    assert back.dtype == ipsecstats.RECORD_DTYPE
    assert [int(v) for v in back["OakleyMainMode"]] == [0, 7, 2**32 - 1]


def test_extra_columns_are_ignored_on_the_way_back(edge_records):
    ts = np.datetime64("2025-01-01T00:00:00", "s") + np.arange(len(edge_records))
    for lib in LIBS:
        table = TO[lib](edge_records, timestamps=ts, instance=2)
        assert FROM[lib](table).tobytes() == edge_records.tobytes()


def test_mapping_and_bytes_inputs(edge_records):
    raw = ipsecstats.encode(edge_records)
    assert ipsecstats.from_arrow(ipsecstats.to_arrow(raw)).tobytes() == raw
    mapping = {"a": np.array([1, 2], dtype=np.uint64), "b": [3, 4]}
    table = ipsecstats.to_arrow(mapping)
    assert table.column_names == ["a", "b"] and table.column("a").to_pylist() == [1, 2]
    with pytest.raises(ValueError, match="rows"):
        ipsecstats.to_pandas({"a": [1, 2], "b": [1]})
    with pytest.raises(TypeError):
        ipsecstats.to_arrow(np.zeros((3, 21), dtype=np.float64))


# ---- what= / kinds=: the field types come from the caller, never from the column types --


def from_frame(lib: str, df: pd.DataFrame, **kwargs) -> np.ndarray:
    """``from_<lib>`` of a pandas frame, converted to that library first (dtypes kept)."""
    if lib == "pandas":
        return ipsecstats.from_pandas(df, **kwargs)
    if lib == "arrow":
        return ipsecstats.from_arrow(pa.Table.from_pandas(df, preserve_index=False), **kwargs)
    return ipsecstats.from_polars(pl.from_pandas(df), **kwargs)


def through_csv(table: pd.DataFrame) -> pd.DataFrame:
    """What ``pd.read_csv`` gives back for a frame written with ``to_csv``."""
    return pd.read_csv(io.StringIO(table.to_csv(index=False)))


@pytest.fixture
def csv_records() -> np.ndarray:
    """Even fields stay below 2**63 (read_csv: int64), odd fields reach 2**64-1 (read_csv: uint64)."""
    small = [0, 1, H63 - 1, 7]
    large = [0, H63, MASK64, H63 - 1]
    return records_from([[(small if j % 2 == 0 else large)[i] for j in range(21)] for i in range(4)])


@pytest.mark.parametrize("lib", LIBS)
def test_records_survive_a_csv_round_trip_exactly(lib, csv_records):
    df = through_csv(ipsecstats.to_pandas(csv_records))
    assert {str(df[name].dtype) for name in FIELD_NAMES[0::2]} == {"int64"}
    assert {str(df[name].dtype) for name in FIELD_NAMES[1::2]} == {"uint64"}
    back = from_frame(lib, df, what="records")
    assert back.dtype == ipsecstats.RECORD_DTYPE
    assert back.tobytes() == csv_records.tobytes()
    assert from_frame(lib, df).tobytes() == csv_records.tobytes()  # "records" is the default
    assert [int(v) for v in back["AcquireFailures"]] == [0, 1, H63 - 1, 7]
    assert [int(v) for v in back["ReceiveFailures"]] == [0, H63, MASK64, H63 - 1]


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize(("values", "row"), [([0, 5, -1, 7], 2), ([0, -(2**63), -1, 5], 1)])
def test_negative_value_in_a_records_column_names_column_row_and_value(lib, values, row):
    df = pd.DataFrame({name: np.array([0, 1, 2, 3], dtype=np.int64) for name in FIELD_NAMES})
    df["AcquireFailures"] = np.array(values, dtype=np.int64)
    with pytest.raises(ValueError, match=rf"column AcquireFailures holds {values[row]} in row {row}.*uint64"):
        from_frame(lib, df, what="records")
    narrow = df.assign(AcquireFailures=np.array(values, dtype=np.int64).clip(-128, 127).astype(np.int8))
    with pytest.raises(ValueError, match=rf"AcquireFailures holds {max(values[row], -128)} in row {row}"):
        from_frame(lib, narrow)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("what", ["records", "deltas"])
def test_float_columns_are_rejected_even_when_integral(lib, what):
    small = records_from([[i + j for j in range(21)] for i in range(4)])  # fits records and deltas
    df = ipsecstats.to_pandas(small).astype({"KeyUpdates": np.float64})
    assert from_frame(lib, ipsecstats.to_pandas(small), what=what).tobytes() == small.tobytes()
    with pytest.raises(TypeError, match=r"column KeyUpdates has type (float64|double|Float64).*lost"):
        from_frame(lib, df, what=what)
    cells = ipsecstats.to_pandas(small).to_csv(index=False).splitlines()
    cells[2] = ",".join(["", *cells[2].split(",")[1:]])  # an empty cell: read_csv makes it a float NaN
    with pytest.raises(TypeError, match="column ActiveAcquire has type"):
        from_frame(lib, pd.read_csv(io.StringIO("\n".join(cells))), what=what)


@pytest.mark.parametrize("lib", LIBS)
def test_deltas_with_negative_gauges_survive_a_csv_round_trip(lib, rng):
    values = random_values(rng, 40)
    values[::3, FIELD_NAMES.index("KeyUpdates")] = EDGES[-1]  # counter deltas reach 2**63 and beyond
    d = ipsecstats.deltas(records_from(values), on_decrease="wrap")
    assert any(int(v) < 0 for v in d["ActiveAcquire"]) and any(int(v) >= H63 for v in d["KeyUpdates"])
    df = through_csv(ipsecstats.to_pandas(d))
    back = from_frame(lib, df, what="deltas")
    assert back.dtype == d.dtype and back.tobytes() == d.tobytes()
    with pytest.raises(ValueError, match="column ActiveAcquire holds -?[0-9]+ in row [0-9]+, but a records field"):
        from_frame(lib, df, what="records")


@pytest.mark.parametrize("lib", LIBS)
def test_deltas_check_counters_unsigned_and_gauges_within_int64(lib):
    base = {name: np.array([0, 3, 1], dtype=np.uint64) for name in FIELD_NAMES}
    assert from_frame(lib, pd.DataFrame(base), what="deltas").dtype == ipsecstats.deltas(
        np.zeros(2, ipsecstats.RECORD_DTYPE)).dtype  # unsigned gauge columns below 2**63 are fine
    too_big = pd.DataFrame({**base, "ConnectionListSize": np.array([0, H63 - 1, H63], dtype=np.uint64)})
    with pytest.raises(ValueError, match=r"ConnectionListSize holds 9223372036854775808 in row 2.*int64.*kinds"):
        from_frame(lib, too_big, what="deltas")
    back = from_frame(lib, too_big, what="deltas", kinds={"ConnectionListSize": "counter"})
    assert back.dtype["ConnectionListSize"] == np.uint64 and int(back["ConnectionListSize"][2]) == H63
    negative_counter = pd.DataFrame({**base, "InvalidPackets": np.array([0, -4, 1], dtype=np.int64)})
    with pytest.raises(ValueError, match=r"InvalidPackets holds -4 in row 1.*counter delta.*kinds"):
        from_frame(lib, negative_counter, what="deltas")
    back = from_frame(lib, negative_counter, what="deltas", kinds={"InvalidPackets": "gauge"})
    assert [int(v) for v in back["InvalidPackets"]] == [0, -4, 1]


@pytest.mark.parametrize("lib", LIBS)
def test_what_and_kinds_are_validated(lib, csv_records):
    df = ipsecstats.to_pandas(csv_records)
    with pytest.raises(ValueError, match="what must be 'records' or 'deltas'"):
        from_frame(lib, df, what="auto")
    with pytest.raises(ValueError, match="kinds= applies to what='deltas' only"):
        from_frame(lib, df, kinds={"KeyUpdates": "gauge"})
    with pytest.raises(ValueError, match="unknown field 'Nope'"):
        from_frame(lib, df, what="deltas", kinds={"Nope": "gauge"})


def test_nullable_signed_columns_follow_the_same_rules():
    df = pd.DataFrame({name: pd.array([0, 2, H63 - 1], dtype="Int64") for name in FIELD_NAMES})
    assert [int(v) for v in ipsecstats.from_pandas(df)["SendFailures"]] == [0, 2, H63 - 1]
    df.loc[1, "SendFailures"] = -2
    with pytest.raises(ValueError, match="SendFailures holds -2 in row 1"):
        ipsecstats.from_pandas(df)
    df.loc[0, "SendFailures"] = pd.NA
    with pytest.raises(ValueError, match="SendFailures has 1 missing value.*row 0"):
        ipsecstats.from_pandas(df)


def test_duplicate_field_columns_are_rejected(csv_records):
    df = ipsecstats.to_pandas(csv_records)
    doubled = pd.concat([df, df[["KeyUpdates"]]], axis=1)
    with pytest.raises(ValueError, match="more than one column named KeyUpdates"):
        ipsecstats.from_pandas(doubled)
    table = ipsecstats.to_arrow(csv_records)
    with pytest.raises(ValueError, match="more than one column named KeyUpdates"):
        ipsecstats.from_arrow(table.append_column("KeyUpdates", table.column("KeyUpdates")))


@pytest.mark.parametrize("lib", LIBS)
def test_from_reads_the_columns_without_copying_them(lib, rng, monkeypatch):
    """Each field column reaches the row assembly as a view of the table's own buffer."""
    seen: dict[str, np.ndarray] = {}
    assemble = _interop.assemble_records

    def spy(columns, dtype):
        seen.update(columns)
        return assemble(columns, dtype)

    monkeypatch.setattr(_interop, "assemble_records", spy)
    cols = ipsecstats.decode_columns(records_from(random_values(rng, 32)))
    FROM[lib](TO[lib](cols))
    assert all(np.shares_memory(seen[name], cols[name]) for name in FIELD_NAMES)
    if lib == "pandas":  # an int64 column (read_csv) becomes uint64 by reinterpretation, not a copy
        df = ipsecstats.to_pandas(cols).astype(np.int64) & np.int64(H63 - 1)
        ipsecstats.from_pandas(df)
        assert all(np.shares_memory(seen[name], df[name].to_numpy()) for name in FIELD_NAMES)
