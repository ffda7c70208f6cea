"""to_arrow / to_pandas / to_polars and their from_* inverses: exact, zero-copy, typed."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import ipsecstats
from ipsecstats._schema import FIELD_NAMES, GAUGES

from conftest import EDGES, random_values, records_from

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
    back = FROM[lib](table)
    assert back.dtype == d.dtype and back.tobytes() == d.tobytes()


@pytest.mark.parametrize("lib", LIBS)
def test_kinds_override_round_trips(lib, rng):
    records = records_from(random_values(rng, 20))
    d = ipsecstats.deltas(records, kinds={"KeyUpdates": "gauge", "ActiveAcquire": "counter"})
    back = FROM[lib](TO[lib](d))
    assert back.dtype == d.dtype and back.tobytes() == d.tobytes()


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
