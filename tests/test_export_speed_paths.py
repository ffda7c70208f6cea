"""The compiled text rows of the CSV and JSON Lines writers (``format_rows``): both backends
byte for byte, against ``str``/``repr``/``json``/``csv`` themselves, and alike on misuse."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ipsecstats
from ipsecstats import _export, _slow
from ipsecstats._export import Layout, write_table
from ipsecstats._generate import generate

from conftest import require_fast

U64_EDGES = [0, 1, 9, 10, 99, 100, 2**32, 2**53 + 1, 10**19 - 1, 10**19, 2**63, 2**64 - 1]
I64_EDGES = [0, -1, 1, -(2**63), 2**63 - 1, -10, -99, -100, 10**18]
F64_EDGES = [0.0, -0.0, 0.1, 1.0, 1e16, 1e-5, 1.5e-5, 0.0001, 123456789012345680.0, 1e22, 5e-324,
             1.7976931348623157e308, math.inf, -math.inf, math.nan, 2.0**64, 1 / 3, 2.5, 9007199254740993.0]


def _reference(columns, kinds, tables, seps, term, start, stop) -> bytes:
    out = []
    for i in range(start, stop):
        row = []
        for col, kind, table, sep in zip(columns, kinds, tables, seps):
            if kind == 0:
                text = str(int(col[i]))
            elif kind == 1:
                text = str(int(col.view(np.int64)[i]))
            elif kind in (2, 3):
                x = float(col.view(np.float64)[i])
                text = ("null" if kind == 3 else "") if math.isnan(x) else \
                    "null" if kind == 3 and math.isinf(x) else repr(x)
            elif kind == 4:
                text = table[int(col[i])].decode()
            elif kind in (7, 8):
                stamp = col.view(np.int64)[i: i + 1].view("datetime64[ns]")
                iso = str(np.datetime_as_string(stamp, unit={0: "s", 3: "ms", 6: "us", 9: "ns"}[table],
                                                timezone="UTC")[0])
                text = ("null" if kind == 8 else "") if np.isnat(stamp[0]) else json.dumps(iso) if kind == 8 else iso
            else:
                raw = bytes(col[i]).rstrip(b"\0").decode()
                text = raw if kind == 5 else json.dumps(raw) if raw else "null"
            row.append(sep.decode() + text)
        out.append("".join(row) + term.decode())
    return "".join(out).encode()


@settings(max_examples=200, deadline=None)
@given(m=st.integers(0, 9), data=st.data(),
       kinds=st.lists(st.integers(0, 8), min_size=1, max_size=8))
def test_both_backends_write_what_python_writes(m, data, kinds):
    fast = require_fast()
    columns, tables, seps = [], [], []
    for j, kind in enumerate(kinds):
        table = None
        if kind == 0:
            vals = data.draw(st.lists(st.sampled_from(U64_EDGES) | st.integers(0, 2**64 - 1), min_size=m, max_size=m))
            col = np.array(vals, np.uint64)
        elif kind == 1:
            vals = data.draw(st.lists(st.sampled_from(I64_EDGES) | st.integers(-(2**63), 2**63 - 1),
                                      min_size=m, max_size=m))
            col = np.array(vals, np.int64).view(np.uint64)
        elif kind in (2, 3):
            vals = data.draw(st.lists(st.sampled_from(F64_EDGES) | st.floats(width=64), min_size=m, max_size=m))
            col = np.array(vals, np.float64).view(np.uint64)
        elif kind == 4:
            table = tuple(t.encode() for t in data.draw(st.lists(st.text(max_size=5), min_size=1, max_size=4)))
            col = np.array(data.draw(st.lists(st.integers(0, len(table) - 1), min_size=m, max_size=m)),
                           np.int64).view(np.uint64)
        elif kind in (7, 8):
            table = data.draw(st.sampled_from([0, 3, 6, 9]))
            ns = data.draw(st.lists(st.sampled_from([-(2**63), -(2**63) + 1, 2**63 - 1, -1, 0, 10**9 - 1,
                                                     951782400 * 10**9, 4107542399 * 10**9 + 999999999])
                                    | st.integers(-(2**63) + 1, 2**63 - 1), min_size=m, max_size=m))
            col = np.array(ns, np.int64).view(np.uint64)
        else:
            texts = data.draw(st.lists(st.text("0123456789-:TZ.", max_size=6), min_size=m, max_size=m))
            col = np.array([t.encode() for t in texts], "S6").view(np.uint8).reshape(m, 6)
        if kind not in (5, 6) and data.draw(st.booleans()) and m:  # a strided view, as a structured field is
            wide = np.zeros((m, 3), np.uint64)
            wide[:, 1] = col
            col = wide[:, 1]
        columns.append(col)
        tables.append(table)
        seps.append(data.draw(st.sampled_from([b"", b",", b'{"a":', b',"SomeLongFieldNameHereForJSON":' * 2])))
    term = data.draw(st.sampled_from([b"\n", b"}\n"]))
    start = data.draw(st.integers(0, m))
    stop = data.draw(st.integers(start, m))
    args = (columns, bytes(kinds), tables, seps, term, start, stop)
    got_fast, got_slow = fast.format_rows(*args), _slow.format_rows(*args)
    assert type(got_fast) is type(got_slow) is bytearray
    assert bytes(got_fast) == bytes(got_slow) == _reference(*args)


@pytest.mark.parametrize("case", ["code out of range", "negative code", "too few rows", "kind 7", "lengths differ",
                                  "stop < start", "sep not bytes", "table not bytes", "int64 column",
                                  "fixed not C", "None columns", "a None column", "time unit 2"])
def test_misuse_is_refused_alike(case):
    fast = require_fast()
    m = 4
    columns = [np.arange(m, dtype=np.uint64), np.zeros(m, np.uint64), np.zeros((m, 3), np.uint8)]
    kinds, tables, seps, term, start, stop = bytes([0, 4, 5]), [None, (b"a",), None], [b"", b",", b","], b"\n", 0, m
    if case == "code out of range":
        columns[1] = np.array([0, 0, 1, 0], np.uint64)
    elif case == "negative code":
        columns[1] = np.array([0, -1, 0, 0], np.int64).view(np.uint64)
    elif case == "too few rows":
        columns[0] = columns[0][:2]
    elif case == "kind 7":
        kinds = bytes([0, 4, 7])
    elif case == "lengths differ":
        seps = seps[:2]
    elif case == "stop < start":
        start, stop = 3, 2
    elif case == "sep not bytes":
        seps[1] = ","
    elif case == "table not bytes":
        tables[1] = ("a",)
    elif case == "int64 column":
        columns[0] = columns[0].view(np.int64)
    elif case == "fixed not C":
        columns[2] = np.zeros((m, 6), np.uint8)[:, ::2]
    elif case == "time unit 2":
        kinds, tables = bytes([0, 4, 7]), [None, (b"a",), 2]
        columns[2] = np.zeros(m, np.uint64)
    elif case == "a None column":
        columns[0], start, stop = None, 0, 0
    else:
        columns = None
    outcomes = []
    for kernel in (fast, _slow):
        try:
            outcomes.append(("ok", bytes(kernel.format_rows(columns, kinds, tables, seps, term, start, stop))))
        except (TypeError, ValueError) as exc:
            outcomes.append((type(exc).__name__, ""))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] != "ok"


def _python_csv(layout, arr) -> str:
    """What the csv module writes for the table (the writer before the compiled rows)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    lead = layout.leading(0, arr.shape[0])
    w.writerow([*lead, *arr.dtype.names])
    cols = [c.tolist() for c in lead.values()] + [arr[n].tolist() for n in arr.dtype.names]
    w.writerows([["" if isinstance(v, float) and math.isnan(v) else v for v in row] for row in zip(*cols)])
    return buf.getvalue()


@pytest.mark.parametrize("what", ["records", "deltas", "rates"])
def test_streamed_chunks_equal_the_csv_module(tmp_path, monkeypatch, what):
    """Several chunks, each formatted in several blocks, give the csv module's bytes."""
    monkeypatch.setattr(_export, "TEXT_BLOCK", 500)
    recs = generate(400, instances=2, interval=10.0, restarts=2, seed=9, wrap=True)
    arr = {"records": recs, "deltas": ipsecstats.deltas(recs, stride=2),
           "rates": ipsecstats.rates(recs, stride=2, interval=3.0)}[what]
    if what == "rates":
        arr = arr.copy()
        arr["KeyAdditions"][::7] = np.nan
    layout = Layout(what, stride=2, first_record=0 if what == "records" else 2)
    chunks = [(s, arr[s:s + 64]) for s in range(0, arr.shape[0], 64)]
    write_table(iter(chunks), tmp_path / "x.csv", "csv", layout, arr.dtype)
    assert (tmp_path / "x.csv").read_text() == _python_csv(layout, arr)
    write_table(iter(chunks), tmp_path / "x.jsonl", "jsonl", layout, arr.dtype)
    lines = (tmp_path / "x.jsonl").read_text().splitlines()
    assert len(lines) == arr.shape[0]
    for i in (0, 7, arr.shape[0] - 1):
        row = json.loads(lines[i])
        for name in arr.dtype.names:
            v = arr[name][i].item()
            assert row[name] == (None if isinstance(v, float) and math.isnan(v) else v)
