"""A Capture in to_arrow / to_pandas / to_polars: records, deltas and rates with their
timestamp and instance per row, paired by instance name; and the TypeError that points
ipsecstats.deltas / rates / encode at the right call."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import ipsecstats
from ipsecstats import Capture, _interop
from ipsecstats._schema import FIELD_NAMES, GAUGES

from conftest import EDGES, H63, MASK64, records_from

TO = {"arrow": ipsecstats.to_arrow, "pandas": ipsecstats.to_pandas, "polars": ipsecstats.to_polars}
LIBS = sorted(TO)
A, B, C = "ROOT\\ISCSIPRT\\0000_0", "ROOT\\ISCSIPRT\\0001_0", "\u00e9t\u00e9"
NAMES = [A, B, A, C, A, B, B, C, A]  # irregular: not an interleaving of a fixed stride
SECONDS = [0, 0, 60, 61, 130, 125, 100, 300, 250]  # per-record times; B steps back once


def _values(n: int) -> list[list[int]]:
    """Rows whose every field passes 0, 2**63 and 2**64 - 1, rising or falling across pairs."""
    return [[EDGES[(3 * i + j) % len(EDGES)] for j in range(21)] for i in range(n)]


@pytest.fixture
def cap() -> Capture:
    ts = np.datetime64("2024-06-03T00:00:00", "ns") + np.array(SECONDS, "timedelta64[s]")
    ts[NAMES.index(C)] = np.datetime64("NaT", "ns")
    return Capture.from_instances(records_from(_values(len(NAMES))), ts, NAMES)


def _pairs(names: list[str]) -> list[tuple[int, int]]:
    """(earlier, later) for each record with an earlier record of its name, in record order."""
    last: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        if name in last:
            out.append((last[name], i))
        last[name] = i
    return out


def frame_of(table) -> dict[str, list]:
    """Every column of a table of any library as Python values; pandas' index as ``timestamp``."""
    if isinstance(table, pa.Table):
        return {name: table.column(name).to_pylist() for name in table.column_names}
    if isinstance(table, pd.DataFrame):
        cols = {name: table[name].tolist() for name in table.columns}
        if isinstance(table.index, pd.DatetimeIndex):
            cols["timestamp"] = list(table.index)
        return cols
    return {name: table[name].to_list() for name in table.columns}


def stamps(cols: dict[str, list]) -> list[np.datetime64]:
    """The ``timestamp`` column as datetime64[ns], None/NaT as NaT."""
    out = []
    for v in cols["timestamp"]:
        if v is None or v is pd.NaT:
            out.append(np.datetime64("NaT", "ns"))
        else:
            out.append(np.datetime64(pd.Timestamp(v).as_unit("ns").to_datetime64(), "ns"))
    return out


def same_times(got: list[np.datetime64], want: np.ndarray) -> bool:
    return [str(x) for x in got] == [str(np.datetime64(x, "ns")) for x in want]


@pytest.mark.parametrize("lib", LIBS)
def test_records_carry_timestamp_and_instance_exactly(lib, cap):
    table = TO[lib](cap)
    cols = frame_of(table)
    assert cols["instance"] == NAMES
    assert same_times(stamps(cols), cap.timestamps)
    for name in FIELD_NAMES:
        assert cols[name] == [int(v) for v in cap.records[name]], name
    assert {0, H63, MASK64} <= set(cols["KeyUpdates"])


def test_column_types_and_order(cap):
    table = ipsecstats.to_arrow(cap)
    assert table.column_names == ["timestamp", "instance", *FIELD_NAMES]
    assert table.schema.field("timestamp").type == pa.timestamp("ns")
    assert pa.types.is_dictionary(table.schema.field("instance").type)
    assert table.column("instance").chunk(0).dictionary.to_pylist() == [A, B, C]
    assert all(table.schema.field(name).type == pa.uint64() for name in FIELD_NAMES)
    frame = ipsecstats.to_pandas(cap)
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.name == "timestamp"
    assert isinstance(frame["instance"].dtype, pd.CategoricalDtype)
    assert list(frame["instance"].cat.categories) == [A, B, C]
    assert list(frame.columns) == ["instance", *FIELD_NAMES]
    assert all(frame[name].dtype == np.uint64 for name in FIELD_NAMES)
    df = ipsecstats.to_polars(cap)
    assert df.columns == ["timestamp", "instance", *FIELD_NAMES]
    assert df.schema["timestamp"] == pl.Datetime("ns") and df.schema["instance"] == pl.Enum([A, B, C])
    assert all(df.schema[name] == pl.UInt64 for name in FIELD_NAMES)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("policy", ["wrap", "auto"])
def test_deltas_pair_each_record_with_the_previous_of_its_name(lib, cap, policy, kernel):
    cols = frame_of(TO[lib](cap, what="deltas", on_decrease=policy))
    pairs = _pairs(NAMES)
    assert cols["instance"] == [NAMES[later] for _, later in pairs]
    assert same_times(stamps(cols), cap.timestamps[[later for _, later in pairs]])
    rows = cap.records
    for name in FIELD_NAMES:
        want = []
        for earlier, later in pairs:
            diff = int(rows[name][later]) - int(rows[name][earlier])
            if name in GAUGES:
                want.append(diff)  # these edges differ by less than 2**63 where they matter
            elif diff >= 0 or policy == "wrap" or -diff >= H63:
                want.append(diff & MASK64)
            else:  # auto: a fall of less than 2**63 is a restart, the delta is the new value
                want.append(int(rows[name][later]))
        if name in GAUGES:
            want = [((w + H63) & MASK64) - H63 for w in want]  # int64 two's complement
        assert cols[name] == want, (lib, name)


@pytest.mark.parametrize("lib", LIBS)
def test_deltas_and_rates_agree_with_the_per_instance_methods(lib, cap):
    per_deltas = cap.deltas(on_decrease="wrap")
    per_rates = cap.rates(on_decrease="wrap")
    for what, per in (("deltas", per_deltas), ("rates", per_rates)):
        cols = frame_of(TO[lib](cap, what=what, on_decrease="wrap"))
        for inst, expected in per.items():
            mine = [k for k, v in enumerate(cols["instance"]) if v == inst]
            for name in expected.dtype.names:
                got = np.array([cols[name][k] for k in mine], dtype=expected.dtype[name])
                assert got.tobytes() == np.ascontiguousarray(expected[name]).tobytes(), (what, inst, name)


def test_rates_divide_by_the_real_step_or_interval(cap):
    table = ipsecstats.to_pandas(cap, what="rates", on_decrease="wrap")
    deltas = ipsecstats.to_pandas(cap, what="deltas", on_decrease="wrap")
    pairs = _pairs(NAMES)
    steps = np.array([SECONDS[later] - SECONDS[earlier] for earlier, later in pairs], dtype=float)
    got, d = table["KeyUpdates"].to_numpy(), deltas["KeyUpdates"].to_numpy()
    valid = steps > 0
    valid[[k for k, (e, l) in enumerate(pairs) if C in (NAMES[e], NAMES[l])]] = False  # NaT in C
    assert np.array_equal(got[valid], d[valid].astype(float) / steps[valid])
    assert np.isnan(got[~valid]).all() and (~valid).sum() == 2  # B's step back and C's NaT
    fixed = ipsecstats.to_pandas(cap, what="rates", on_decrease="wrap", interval=30.0)
    assert np.array_equal(fixed["KeyUpdates"].to_numpy(), d.astype(float) / 30.0)


def test_capture_without_timestamps(kernel):
    cap = Capture.from_instances(records_from(_values(4)), None, [A, B, A, B])
    table = ipsecstats.to_arrow(cap, what="deltas", on_decrease="wrap")
    assert table.column_names[0] == "instance" and table.column("instance").to_pylist() == [A, B]
    assert isinstance(ipsecstats.to_pandas(cap).index, pd.RangeIndex)
    assert "timestamp" not in ipsecstats.to_polars(cap).columns
    with pytest.raises(ValueError, match="no timestamps: pass interval="):
        ipsecstats.to_polars(cap, what="rates")
    assert ipsecstats.to_polars(cap, what="rates", interval=2.0, on_decrease="wrap").height == 2


@pytest.mark.parametrize("lib", LIBS)
def test_empty_and_single_record_captures(lib):
    empty = Capture.from_instances(records_from(np.zeros((0, 21))), None, [])
    single = Capture.from_instances(records_from(np.zeros((1, 21))), np.zeros(1, "datetime64[ns]"), [A])
    for what in ("records", "deltas"):
        assert len(TO[lib](empty, what=what)) == 0
    assert len(TO[lib](single)) == 1 and len(TO[lib](single, what="deltas")) == 0


@pytest.mark.parametrize("lib", LIBS)
def test_field_columns_wrap_the_kernel_block_without_a_copy(lib, cap, monkeypatch):
    seen = []
    table_columns = _interop.table_columns

    def spy(data):
        seen.append(table_columns(data))
        return seen[-1]

    monkeypatch.setattr(_interop, "table_columns", spy)
    for what in ("records", "deltas"):
        table = TO[lib](cap, what=what, **({"on_decrease": "wrap"} if what == "deltas" else {}))
        cols = seen.pop()
        assert isinstance(cols, ipsecstats.Columns)
        for name in FIELD_NAMES:
            if lib == "arrow":
                got = table.column(name).chunk(0).to_numpy(zero_copy_only=True)
            else:
                got = table[name].to_numpy()
            assert np.shares_memory(got, cols[name]), (lib, what, name)


@pytest.mark.parametrize("lib", LIBS)
def test_round_trip_through_from(lib, cap):
    back = {"arrow": ipsecstats.from_arrow, "pandas": ipsecstats.from_pandas, "polars": ipsecstats.from_polars}[lib]
    assert back(TO[lib](cap)).tobytes() == cap.records.tobytes()
    pairs = _pairs(NAMES)
    stacked = cap.records[[e for e, _ in pairs] + [later for _, later in pairs]]
    expected = ipsecstats.deltas(stacked, stride=len(pairs), on_decrease="wrap")
    d = back(TO[lib](cap, what="deltas", on_decrease="wrap"), what="deltas")
    assert d.dtype == expected.dtype and d.tobytes() == expected.tobytes()


@pytest.mark.parametrize("lib", LIBS)
def test_argument_misuse_is_refused(lib, cap):
    n = len(cap)
    with pytest.raises(TypeError, match="carries its own timestamps"):
        TO[lib](cap, timestamps=cap.timestamps)
    with pytest.raises(TypeError, match="carries its own timestamps"):
        TO[lib](cap, instance=2)
    with pytest.raises(ValueError, match="what must be 'records', 'deltas' or 'rates'"):
        TO[lib](cap, what="delta")
    with pytest.raises(ValueError, match="on_decrease"):
        TO[lib](cap, what="deltas", on_decrease="sideways")
    with pytest.raises(TypeError, match="apply to|choose a Capture's table"):
        TO[lib](cap.records, what="deltas")
    with pytest.raises(TypeError, match="choose a Capture's table"):
        TO[lib](cap.records, interval=1.0)
    assert len(TO[lib](cap.records, timestamps=cap.timestamps, instance=2)) == n  # the plain path still works


@pytest.mark.parametrize("call", [ipsecstats.deltas, ipsecstats.rates, ipsecstats.encode])
def test_public_functions_point_a_capture_at_the_right_call(call, cap):
    with pytest.raises(TypeError) as err:
        call(cap)
    message = str(err.value)
    assert "Capture" in message and ".deltas()" in message and "capture.records" in message
    assert "bytes-like" not in message


def test_decode_and_decode_columns_point_a_capture_elsewhere():
    import ipsecstats as ips

    cap = ips.read_wnode(ips.write_wnode(ips.decode(bytes(168 * 2)),
                                         np.array(["2024-01-01", "2024-01-01T00:01"], "M8[ns]"), ["a", "a"]))
    for fn in (ips.decode, ips.decode_columns):
        with pytest.raises(TypeError, match=r"capture\.records for the raw records"):
            fn(cap)


@pytest.mark.parametrize("lib", sorted(TO))
def test_delta_options_with_records_are_refused(lib, cap):
    for options in ({"on_decrease": "wrap"}, {"interval": 10.0}, {"on_decrease": "bogus"}):
        with pytest.raises(TypeError, match="apply to what='deltas' or 'rates'"):
            TO[lib](cap, what="records", **options)
