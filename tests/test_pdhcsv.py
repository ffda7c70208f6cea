"""Perfmon PDH-CSV / PDH-TSV logs of MSiSCSI_MMIPSECStats: golden files, hostile input, kernel parity, CLI.

The logs are built byte for byte in the shape typeperf and relog write them (pdh's
log_text.c: the header cell ``(PDH-CSV 4.0) (zone)(bias)``, times ``"%2.2d/%2.2d/%2.2d
%2.2d:%2.2d:%2.2d.%3.3d"`` in local time, values ``"%.20g"`` of a double, ``" "`` for a
missing sample, every cell quoted, CRLF, the ANSI code page) from the raw logs of
``ipsecstats._generate.generate``, and must give back the same records.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import KERNELS, call_outcome, require_fast, using_kernel
from test_cli import SCRIPT, one_error_line, run

import ipsecstats
from ipsecstats import _pdh_layout as PL
from ipsecstats import _slow, formats
from ipsecstats._capture import concat
from ipsecstats._generate import generate
from ipsecstats._schema import FIELD_NAMES
from ipsecstats._source import ByteSource
from ipsecstats.formats._base import FormatError
from ipsecstats.formats.pdhcsv import PdhCsvFormatError, PdhCsvReader, PdhCsvWarning, read_pdh_csv

HOST = "ISCSI-HOST1"
PDOS = ("ROOT\\ISCSIPRT\\0000_0", "PCI\\VEN_8086&DEV_10FB&SUBSYS_000C8086\\3&1_0", "ROOT\\ISCSIPRT\\0001_0")
START_LOCAL = np.datetime64("2024-06-03T08:00:00.000", "ns")
OTHER = [("Processor(_Total)", "% Processor Time"), ("Memory", "Available MBytes")]


def u64(recs: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(recs).view("<u8").reshape(-1, 21)


def pdh_time(t: np.datetime64) -> str:
    """pdh's ``%2.2d/%2.2d/%2.2d %2.2d:%2.2d:%2.2d.%3.3d`` (month, day, year, ..., ms)."""
    s = str(t.astype("datetime64[ms]"))  # YYYY-MM-DDTHH:MM:SS.mmm
    return f"{s[5:7]}/{s[8:10]}/{s[0:4]} {s[11:23]}"


def g20(v: int) -> str:
    """``%.20g`` of the double perfmon holds for the counter value ``v``."""
    return "%.20g" % float(v)


def pdh_log(recs: np.ndarray, k: int, *, names: tuple[str, ...] = PDOS, host: str = HOST, bias: int = 240,
            zone: bytes = b"Eastern Daylight Time", interval_s: int = 10, delimiter: str = ",",
            blank: set[tuple[int, int, int]] = frozenset(), others: bool = True, order_seed: int | None = 1,
            cell: dict[tuple[int, int, int], str] | None = None, encoding: str = "cp1252",
            tsv: bool = False, times: np.ndarray | None = None) -> bytes:
    """A PDH log of ``recs`` (``k`` instances interleaved, as from ``generate(n, instances=k)``).

    ``blank``: (sample, instance, field) cells written as ``" "``; ``cell``: cells with other
    text; ``others``: columns of other objects mixed in; ``order_seed``: shuffle the columns;
    ``times``: the rows' local times (default ``local_times``).
    """
    vals = u64(recs).reshape(-1, k, 21)
    cols: list[tuple[str, tuple[int, int] | None]] = []
    for i in range(k):
        for f in range(21):
            cols.append((f"\\\\{host}\\MSiSCSI_MMIPSECStats({names[i]})\\{FIELD_NAMES[f]}", (i, f)))
    if others:
        for obj, counter in OTHER:
            cols.append((f"\\\\{host}\\{obj}\\{counter}", None))
    if order_seed is not None:
        rng = np.random.default_rng(order_seed)
        cols = [cols[j] for j in rng.permutation(len(cols))]
        # the instances' order of first appearance is then that of their first column
    kind = b"PDH-TSV" if tsv else b"PDH-CSV"
    sep = ("\t" if tsv else delimiter).encode()
    first = b'"(' + kind + b" 4.0) (" + zone + b")(" + str(bias).encode() + b')"'
    lines = [sep.join([first] + [f'"{name}"'.encode(encoding) for name, _ in cols])]
    for s in range(vals.shape[0]):
        t = (START_LOCAL + np.timedelta64(interval_s * s, "s") + np.timedelta64(7 * s % 1000, "ms")
             if times is None else times[s])
        cells = [pdh_time(t)]
        for _, where in cols:
            if where is None:
                cells.append("%.20g" % (12.5 + s / 3))
                continue
            i, f = where
            if cell and (s, i, f) in cell:
                cells.append(cell[s, i, f])
            elif (s, i, f) in blank:
                cells.append(" ")
            else:
                cells.append(g20(int(vals[s, i, f])))
        lines.append(sep.join(f'"{c}"'.encode(encoding) for c in cells))
    return b"\r\n".join(lines) + b"\r\n"


def local_times(samples: int, interval_s: int = 10) -> np.ndarray:
    s = np.arange(samples)
    return START_LOCAL + s * np.timedelta64(interval_s, "s") + (7 * s % 1000) * np.timedelta64(1, "ms")


def first_columns(data: bytes, k: int, names: tuple[str, ...] = PDOS) -> list[int]:
    """Instances in the order of their first column in the header."""
    header = data.split(b"\r\n", 1)[0].decode("cp1252")
    return sorted(range(k), key=lambda i: header.index(f"({names[i]})"))


def read_quiet(data: bytes, **kw) -> ipsecstats.Capture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PdhCsvWarning)
        return read_pdh_csv(data, **kw)


# --------------------------------------------------------------------------- golden logs


@pytest.mark.parametrize("tsv", [False, True], ids=["csv", "tsv"])
def test_golden_log_gives_the_raw_records_and_utc_times(tsv: bool) -> None:
    k, samples = 3, 40
    recs = generate(k * samples, instances=k, interval=10.0, restarts=1, seed=3)
    data = pdh_log(recs, k, tsv=tsv)
    with pytest.warns(PdhCsvWarning, match=r"ignored 2 column\(s\) that are not MSiSCSI_MMIPSECStats") as caught:
        cap = read_pdh_csv(data)
    assert "Processor (1)" in str(caught[0].message) and "Memory (1)" in str(caught[0].message)
    order = first_columns(data, k)
    expected = u64(recs).reshape(samples, k, 21)[:, order].reshape(-1, 21)
    assert u64(cap.records).tobytes() == expected.tobytes()
    assert cap.instance_names == tuple(f"{HOST} {PDOS[i]}" for i in order)
    assert cap.instance_hosts == (HOST,) * k and cap.bare_names() == tuple(PDOS[i] for i in order)
    utc = local_times(samples) + np.timedelta64(240, "m")  # local = UTC - bias
    assert np.array_equal(cap.timestamps, np.repeat(utc, k))
    assert str(cap.timestamps[0]) == "2024-06-03T12:00:00.000000000"
    assert cap.instance_codes.tolist() == list(range(k)) * samples


def test_negative_bias_and_columns_in_header_order() -> None:
    recs = generate(20, instances=2, seed=5)
    data = pdh_log(recs, 2, bias=-330, zone=b"India Standard Time", others=False, order_seed=None)
    cap = read_pdh_csv(data)  # no warning: nothing ignored, no gaps
    assert u64(cap.records).tobytes() == u64(recs).tobytes()
    assert np.array_equal(cap.timestamps, np.repeat(local_times(10) - np.timedelta64(330, "m"), 2))


def test_gaps_skip_the_pair_and_deltas_span_them() -> None:
    k, samples = 2, 12
    recs = generate(k * samples, instances=k, seed=6)
    blank = {(5, 1, 3)} | {(7, 0, f) for f in range(21)}
    data = pdh_log(recs, k, blank=blank, order_seed=None, others=False)
    with pytest.warns(PdhCsvWarning, match=r"skipped 2 \(instance, sample\) pair\(s\).*1 of them with some"):
        cap = read_pdh_csv(data)
    keep = np.ones((samples, k), bool)
    keep[5, 1] = keep[7, 0] = False
    assert u64(cap.records).tobytes() == u64(recs).reshape(samples, k, 21)[keep].tobytes()
    sub = cap.by_instance()[f"{HOST} {PDOS[1]}"]
    steps = np.diff(sub.timestamps) / np.timedelta64(1, "ms")
    assert steps.tolist().count(20_000 + 14) == 1  # the real step across the gap (10 s and 7 ms per sample)
    d = cap.deltas()[f"{HOST} {PDOS[1]}"]
    own = u64(recs).reshape(samples, k, 21)[keep[:, 1], 1]
    assert d["TotalGetSPI"].tolist() == np.diff(own[:, FIELD_NAMES.index("TotalGetSPI")].astype(np.int64)).tolist()


def test_instance_appearing_mid_log_is_labelled_when_it_appears() -> None:
    k, samples = 3, 15
    recs = generate(k * samples, instances=k, seed=7)
    late = 2 if first_columns(pdh_log(recs[:k], k), k)[0] != 2 else 1  # not the first column's instance
    blank = {(s, late, f) for s in range(6) for f in range(21)}
    data = pdh_log(recs, k, blank=blank)
    with pytest.warns(PdhCsvWarning):
        cap = read_pdh_csv(data)
    order = first_columns(data, k)
    keep = np.ones((samples, k), bool)
    keep[:6, late] = False
    expected = u64(recs).reshape(samples, k, 21)[:, order][keep[:, order]]
    assert u64(cap.records).tobytes() == expected.tobytes()
    early = [i for i in order if i != late]
    assert cap.instance_names == tuple(f"{HOST} {PDOS[i]}" for i in early + [late])


def test_values_above_2_53_keep_the_nearest_integer() -> None:
    recs = generate(6, instances=1, seed=8)
    f = FIELD_NAMES.index("TotalGetSPI")
    text = {(0, 0, f): "18446744073709551616", (1, 0, f): "1.8446744073709552e+19",
            (2, 0, f): g20(2**60 + 1), (3, 0, f): "18446744073709551615", (4, 0, f): "9007199254740993"}
    data = pdh_log(recs, 1, cell=text, others=False, order_seed=None)
    with pytest.warns(PdhCsvWarning, match=r"5 value\(s\) above 2\*\*53 may be inexact"):
        cap = read_pdh_csv(data)
    got = [int(v) for v in cap.records["TotalGetSPI"]]
    assert got == [2**64 - 1, 2**64 - 1, 2**60, 2**64 - 1, 2**53 + 1, int(recs["TotalGetSPI"][5])]


def test_formatted_rate_is_an_error_naming_line_column_and_counter() -> None:
    recs = generate(4, instances=1, seed=9)
    f = FIELD_NAMES.index("KeyAdditions")
    data = pdh_log(recs, 1, cell={(2, 0, f): "0.58593838652458987"}, others=False, order_seed=None)
    with pytest.raises(PdhCsvFormatError) as err:
        read_pdh_csv(data)
    e = err.value
    assert (e.line, e.column) == (4, f + 2) and e.counter.endswith("\\KeyAdditions")
    assert "line 4, column" in str(e) and "not a whole number" in str(e) and "formatted rates" in str(e)
    assert "\n" not in str(e)


def test_log_without_the_object_names_what_it_holds() -> None:
    data = (b'"(PDH-CSV 4.0) (Pacific Standard Time)(480)","\\\\H\\Processor(_Total)\\% Processor Time",'
            b'"\\\\H\\Memory\\Available MBytes","\\\\H\\Processor(0)\\% Idle Time"\r\n'
            b'"01/02/2024 03:04:05.678","12.5","1024"," "\r\n')
    with pytest.raises(PdhCsvFormatError, match=r"without MSiSCSI_MMIPSECStats counters; it holds "
                                                r"Processor \(2 columns\), Memory \(1 column\)$"):
        read_pdh_csv(data)


def test_missing_counters_of_the_object_are_named() -> None:
    recs = generate(2, instances=1)
    data = pdh_log(recs, 1, others=False, order_seed=None)
    header, rest = data.split(b"\r\n", 1)
    cells = header.split(b",")
    drop = [1 + FIELD_NAMES.index("KeyUpdates"), 1 + FIELD_NAMES.index("SoftAssociations")]
    rows = [b",".join(c for j, c in enumerate(r.split(b",")) if j not in drop) for r in rest.split(b"\r\n") if r]
    data = b"\r\n".join([b",".join(c for j, c in enumerate(cells) if j not in drop), *rows]) + b"\r\n"
    with pytest.raises(PdhCsvFormatError, match=r"lacks counter\(s\) KeyUpdates, SoftAssociations"):
        read_pdh_csv(data)


def test_ansi_code_pages_and_hosts() -> None:
    """The zone name in cp1251 (Russian Windows), an instance name in cp1252, two hosts with equal PDOs."""
    recs = generate(8, instances=2, seed=10)
    zone = "RTZ 2 (зима)".encode("cp1251")
    data = pdh_log(recs, 2, names=("Gerät_0", "Gerät_0"), zone=zone, others=False, order_seed=None)
    header = data.split(b"\r\n", 1)[0]
    second = header.replace(b"\\\\" + HOST.encode() + b"\\MSiSCSI_MMIPSECStats(Ger\xe4t_0)", b"\\\\HOST2\\MSiSCSI_MMIPSECStats(Ger\xe4t_0)")
    # the second half of the columns belongs to instance 1: move it to HOST2
    cells = header.split(b",")
    cells = cells[:22] + [c.replace(HOST.encode(), b"HOST2") for c in cells[22:]]
    data = b",".join(cells) + data[len(header):]
    assert second != header and b"\xe4" in data
    with ByteSource(data) as src:
        assert formats.detect(src).name == "pdh-csv"
    cap = read_pdh_csv(data)
    assert cap.instance_names == (f"{HOST} Gerät_0", "HOST2 Gerät_0") and cap.instance_hosts == (HOST, "HOST2")
    assert u64(cap.records).tobytes() == u64(recs).tobytes()
    # the same log in UTF-8 reads the same
    assert read_pdh_csv(data.replace(b"\xe4", "ä".encode())).instance_names == cap.instance_names


@pytest.mark.parametrize("block", [4, 7, 64, 1000])
def test_streaming_equals_whole_for_small_blocks(block: int) -> None:
    k, samples = 3, 30
    recs = generate(k * samples, instances=k, seed=11)
    blank = {(s, 1, 0) for s in (3, 4, 17)} | {(s, 2, f) for s in range(9) for f in range(21)}
    data = pdh_log(recs, k, blank=blank)
    whole = read_quiet(data)
    reader = PdhCsvReader(ByteSource(data), chunk_records=5)
    reader._block = block
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chunks = list(reader)
    assert len(chunks) > 5 and all(len(c) <= 6 for c in chunks)
    assert sum(isinstance(w.message, PdhCsvWarning) for w in caught) == 2
    cap = concat(chunks)
    assert cap.records.tobytes() == whole.records.tobytes()
    assert np.array_equal(cap.timestamps, whole.timestamps)
    assert cap.instances.tolist() == whole.instances.tolist() and cap.instance_hosts == whole.instance_hosts
    assert [c.start for c in chunks] == np.cumsum([0] + [len(c) for c in chunks[:-1]]).tolist()


def test_header_only_and_blank_lines() -> None:
    recs = generate(4, instances=1)
    data = pdh_log(recs, 1, others=False, order_seed=None)
    header = data.split(b"\r\n", 1)[0] + b"\r\n"
    cap = read_pdh_csv(header)
    assert len(cap) == 0 and cap.timestamps is not None
    spaced = data.replace(b"\r\n", b"\r\n\r\n", 2) + b"\r\n\n"
    assert read_pdh_csv(spaced).records.tobytes() == recs.tobytes()
    assert read_pdh_csv(data.rstrip(b"\r\n")).records.tobytes() == recs.tobytes()  # no final line end
    assert read_pdh_csv(data.replace(b"\r\n", b"\n")).records.tobytes() == recs.tobytes()  # LF only


# --------------------------------------------------------------------------- detection and BLG


def test_detection() -> None:
    recs = generate(4, instances=2)
    for tsv in (False, True):
        with ByteSource(pdh_log(recs, 2, tsv=tsv)) as src:
            assert formats.detect(src).name == "pdh-csv"
    assert "pdh-csv" in formats.NAMES
    assert formats.NAMES.index("pdh-csv") < formats.NAMES.index("cim-csv") < formats.NAMES.index("raw")


BLG = b'"(PDH-BIN 4.0)"\r\n\0\0' + b"BL\x01\x00" + bytes(range(256)) * 4


@pytest.mark.parametrize("name,data", [("perf.blg", BLG), ("perf.dat", BLG), ("perf.BLG", bytes(range(256)) * 8)])
def test_blg_is_refused_with_the_relog_command(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    stem = "perf" if name.lower().endswith(".blg") else "FILE"
    for fmt in ("auto", "pdh-csv"):
        with pytest.raises(FormatError, match=rf"perfmon binary log: convert it with `relog {stem}\.blg -f csv "
                                              rf"-o {stem}\.csv`"):
            formats.open_reader(str(path), fmt)
    with pytest.raises(ValueError, match="perfmon binary log"):
        read_pdh_csv(data if name.endswith("dat") else path)


# --------------------------------------------------------------------------- hostile input


def _good(samples: int = 5, k: int = 1) -> bytes:
    return pdh_log(generate(samples * k, instances=k, seed=12), k, others=False, order_seed=None)


def _error(data: bytes, **kw) -> PdhCsvFormatError:
    with pytest.raises(PdhCsvFormatError) as err:
        read_quiet(data, **kw)
    assert "\n" not in str(err.value)
    return err.value


def test_truncated_and_wrong_width_rows() -> None:
    data = _good()
    cut = data[: data.rindex(b'","') + 3]  # the last row ends in an open quote
    e = _error(cut)
    assert e.line == 6 and "not closed" in str(e)
    e = _error(data[: data.rindex(b'","') + 2])  # ... or after a delimiter: an empty cell is no number
    assert e.line == 6 and "'' is not a number" in str(e)
    e = _error(data[: data.rindex(b'","') + 1] + b"\r\n")  # the last row lacks its last field
    assert e.line == 6 and "21 field(s), the header has 22" in str(e)
    rows = data.split(b"\r\n")
    rows[3] += b',"1"'
    e = _error(b"\r\n".join(rows))
    assert e.line == 4 and "23 field(s)" in str(e)


@pytest.mark.parametrize("text,what", [
    ("abc", "is not a number"), ("1e", "is not a number"), ("--1", "is not a number"), ("inf", "is not a number"),
    ("1.#INF", "is not a number"), ("", "is not a number"), ("1 2", "is not a number"), ("0x10", "is not a number"),
    ("-3", "is negative"), ("2.5", "not a whole number"), ("1e-1", "not a whole number"),
    ("18446744073709553665", "beyond the uint64 range"), ("1e20", "beyond the uint64 range"),
    ("1e999999999999999999999", "beyond the uint64 range"),
])
def test_invalid_numbers(text: str, what: str) -> None:
    recs = generate(3, instances=1)
    f = 4
    data = pdh_log(recs, 1, cell={(1, 0, f): text}, others=False, order_seed=None)
    if text == "":
        data = data.replace(b'"",', b'"x",', 1).replace(b'"x",', b'"",', 1)  # an empty quoted cell is no number
    e = _error(data)
    assert (e.line, e.column) == (3, f + 2) and what in str(e) and FIELD_NAMES[f] in str(e)


@pytest.mark.parametrize("text,value", [
    ("0", 0), ("-0", 0), ("-0.000", 0), ("+7", 7), ("1e3", 1000), ("1.5e1", 15), ("100e-2", 1), ("12.000000", 12),
    ("0.000", 0), ("18446744073709551615", 2**64 - 1), ("18446744073709553664", 2**64 - 1), ("1e19", 10**19),
    ("0" * 30 + "42", 42), ("1" + "0" * 25 + "e-25", 1), ("1.e2", 100), (".5e1", 5), ("0e999999999999", 0),
])
def test_numbers_read_exactly(text: str, value: int) -> None:
    recs = generate(3, instances=1)
    data = pdh_log(recs, 1, cell={(1, 0, 0): text}, others=False, order_seed=None)
    assert int(read_quiet(data).records["ActiveAcquire"][1]) == value


@pytest.mark.parametrize("stamp,what", [
    ("13/01/2024 00:00:00.000", "no such date"), ("02/30/2024 00:00:00.000", "no such date"),
    ("01/01/2024 24:00:00.000", "time of day"), ("2024-01-01 00:00:00", "not a perfmon time"),
    ("01/01/2024 00:00:00.", "not a perfmon time"), (" ", "not a perfmon time"),
    ("01/01/2500 00:00:00.000", "datetime64[ns] range"),
])
def test_bad_times(stamp: str, what: str) -> None:
    data = _good()
    rows = data.split(b"\r\n")
    rows[2] = b'"' + stamp.encode() + rows[2][rows[2].index(b'",'):]
    e = _error(b"\r\n".join(rows))
    assert (e.line, e.column) == (3, 1) and what in str(e)


def test_bias_pushing_a_time_out_of_range() -> None:
    data = _good().replace(b"(240)", b"(-840)")
    rows = data.split(b"\r\n")
    rows[2] = b'"09/21/1677 00:12:44.000' + rows[2][rows[2].index(b'",'):]
    assert "time plus the bias" in str(_error(b"\r\n".join(rows)))


def test_nul_bytes_bare_cr_quotes() -> None:
    data = _good()
    at = data.index(b"\r\n") + 2 + 12
    e = _error(data[:at] + b"\0" + data[at + 1:])
    assert e.line == 2 and "NUL byte" in str(e)
    assert "NUL bytes in the header" in str(_error(data[:20] + b"\0" + data[21:]))
    e = _error(data[:at] + b"\r" + data[at + 1:])
    assert e.line == 2
    rows = data.split(b"\r\n")
    rows[4] = rows[4][:30] + b'"' + rows[4][30:]
    e = _error(b"\r\n".join(rows))
    assert e.line == 5
    rows = data.split(b"\r\n")
    rows[3] = rows[3].replace(b'","', b'"x,"', 1)
    e = _error(b"\r\n".join(rows))
    assert e.line == 4 and "malformed" in str(e)


def test_bad_headers() -> None:
    data = _good()
    assert "not '(PDH-CSV 4.0)" in str(_error(b'"(PDH-CSV 4.0) zone","x"\r\n'))
    assert "bias 5000 minutes" in str(_error(data.replace(b"(240)", b"(5000)")))
    header = data.split(b"\r\n", 1)[0]
    doubled = header + b"," + header.split(b",")[3]
    e = _error(doubled + b"\r\n")
    assert "appears twice (columns 4 and 23)" in str(e)
    assert "empty file" in str(_error(b"", ))


def test_huge_fields_and_rows_are_refused_in_linear_time() -> None:
    data = _good()
    header = data.split(b"\r\n", 1)[0] + b"\r\n"
    reader = PdhCsvReader(ByteSource(header + b'"' + b"1" * (3 << 20)), chunk_records=4)
    reader._block = 4096
    t0 = time.perf_counter()
    with pytest.raises(PdhCsvFormatError, match=r"line 2: a row longer than 1,048,576 bytes"):
        list(reader)
    assert time.perf_counter() - t0 < 20
    huge = header + b'"01/01/2024 00:00:00.000","' + b"9" * 100_000 + b'"' + b',"1"' * 20 + b"\r\n"
    assert "beyond the uint64 range" in str(_error(huge))
    zeros = header + b'"01/01/2024 00:00:00.000","0.' + b"0" * 100_000 + b'1"' + b',"1"' * 20 + b"\r\n"
    assert "not a whole number" in str(_error(zeros))


def test_error_pickles() -> None:
    e = PdhCsvFormatError("m", line=3, column=4, counter="\\\\H\\O(I)\\C")
    back = pickle.loads(pickle.dumps(e))
    assert (str(back), back.line, back.column, back.counter) == ("m", 3, 4, "\\\\H\\O(I)\\C")


# --------------------------------------------------------------------------- kernel parity


def _kernel_call(kernel, data: bytes, final: bool, roles: np.ndarray, cap: int, nslots: int, max_row: int):
    values = np.zeros((cap, nslots), np.uint64)
    missing = np.zeros((cap, nslots), np.uint8)
    stamps = np.zeros(cap, np.int64)
    lines = np.zeros(cap, np.int64)
    out = call_outcome(kernel.pdh_rows, np.frombuffer(data, np.uint8), final, 44, roles, values, missing, stamps,
                       lines, 2, max_row)
    if out[0] == "ok":
        n = out[1][1]
        return out, values[:n].tobytes(), missing[:n].tobytes(), stamps[:n].tobytes(), lines[:n].tobytes()
    return out


def _roles(k: int = 1, extra: int = 0) -> np.ndarray:
    return np.array([PL.ROLE_TIMESTAMP] + list(range(21 * k)) + [PL.ROLE_IGNORE] * extra, np.int64)


def test_parity_over_mutated_logs() -> None:
    fast = require_fast()
    rng = np.random.default_rng(13)
    base = _good(6).split(b"\r\n", 1)[1]
    alphabet = b'"\r\n,\0 .eE+-0123456789/:x\t'
    roles = _roles()
    seen = set()
    for trial in range(3000):
        data = bytearray(base)
        for _ in range(rng.integers(1, 4)):
            at = int(rng.integers(0, len(data)))
            op = rng.integers(0, 3)
            ch = alphabet[int(rng.integers(0, len(alphabet)))]
            if op == 0:
                data[at] = ch
            elif op == 1:
                data.insert(at, ch)
            else:
                del data[at]
        data = bytes(data[: int(rng.integers(0, len(data) + 1))] if trial % 3 == 0 else data)
        final = bool(trial % 2)
        cap = int(rng.integers(1, 8))
        max_row = int(rng.choice([40, 200, 10_000]))
        a = _kernel_call(fast, data, final, roles, cap, 21, max_row)
        b = _kernel_call(_slow, data, final, roles, cap, 21, max_row)
        assert a == b, (data, final, cap, max_row)
        seen.add(a[0][1][0] if a[0][0] == "ok" else -1)
    assert len(seen) >= 8, seen  # the mutations reach most of the error codes


NUMBERS = ["0", "-0", "7", "+7", "1e3", "1E+3", "1.5e1", "2.5", "1e-1", "100e-2", ".5e1", "1.", ".", "e1", "1e",
           "1e+", "--1", "-3", "inf", "nan", "1.#INF", " ", "", "   ", " 1", "1 ", "18446744073709551615",
           "18446744073709551616", "18446744073709553664", "18446744073709553665", "1.8446744073709552e+19",
           "1e19", "1e20", "99999999999999999999", "0" * 40 + "5", "5" + "0" * 19, "5" + "0" * 20, "1e999999999999",
           "1e-999999999999", "0.000000e+00", "12345678901234567890", "9007199254740993", "1.2.3", "1e1.5", "0x1"]


def test_parity_on_numbers_and_times() -> None:
    fast = require_fast()
    roles = np.array([PL.ROLE_TIMESTAMP, 0], np.int64)
    for text in NUMBERS:
        row = f'"01/02/2024 03:04:05.678","{text}"\r\n'.encode()
        a = _kernel_call(fast, row, True, roles, 2, 1, 1000)
        assert a == _kernel_call(_slow, row, True, roles, 2, 1, 1000), text
    for stamp in ["01/02/2024 03:04:05.678", "01/02/2024 03:04:05", "01/02/2024 03:04:05.123456789",
                  "01/02/2024 03:04:05.1234567890", "02/29/2023 00:00:00", "02/29/2024 00:00:00",
                  "12/31/9999 23:59:59.999", "01/01/0000 00:00:00", "09/21/1677 00:12:43.145224193",
                  "04/11/2262 23:47:16.854775807", "04/11/2262 23:47:16.854775808", "1/2/2024 03:04:05", ""]:
        row = f'"{stamp}","1"\n'.encode()
        a = _kernel_call(fast, row, True, roles, 2, 1, 1000)
        assert a == _kernel_call(_slow, row, True, roles, 2, 1, 1000), stamp


def test_kernel_misuse_raises_the_same_in_both() -> None:
    fast = require_fast()
    good = np.frombuffer(b'"01/02/2024 03:04:05","1"\r\n', np.uint8)

    def outcomes(**over):
        args = dict(buf=good, final=True, delimiter=44, roles=np.array([-2, 0], np.int64),
                    values=np.zeros((2, 1), np.uint64), missing=np.zeros((2, 1), np.uint8),
                    stamps=np.zeros(2, np.int64), lines=np.zeros(2, np.int64), line=1, max_row=100)
        args.update(over)
        return [call_outcome(k.pdh_rows, *args.values()) for k in (fast, _slow)]

    for over in [dict(delimiter=34), dict(delimiter=0), dict(delimiter=13), dict(delimiter=300),
                 dict(roles=np.array([0, 0], np.int64)), dict(roles=np.array([-2, -2, 0], np.int64)),
                 dict(roles=np.array([-2, 1], np.int64)), dict(roles=np.array([-2, -3, 0], np.int64)),
                 dict(roles=np.array([-2], np.int64)), dict(missing=np.zeros((3, 1), np.uint8)),
                 dict(stamps=np.zeros(1, np.int64)), dict(lines=np.zeros(3, np.int64)), dict(max_row=0)]:
        a, b = outcomes(**over)
        assert a[0] == "raised" and a[:2] == b[:2] and a[2] == b[2], (over, a, b)
    for over in [dict(values=np.zeros((2, 1), np.int64)), dict(roles=np.array([-2, 0], np.int32)),
                 dict(stamps=np.zeros(2, np.uint64)), dict(buf=np.zeros((2, 2), np.uint8)), dict(values=None),
                 dict(buf=None), dict(roles=None), dict(missing=None), dict(stamps=None), dict(lines=None)]:
        a, b = outcomes(**over)
        assert a[0] == b[0] == "raised" and a[1] is b[1], (over, a, b)  # the same type; dtype messages differ
    a, b = outcomes()
    assert a[0] == "ok" and a == b
    assert outcomes(missing=np.zeros((2, 1), bool)) == [a, a]


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_reader_errors_agree_across_backends(kernel: str) -> None:
    recs = generate(4, instances=1)
    data = pdh_log(recs, 1, cell={(2, 0, 3): "1.5"}, others=False, order_seed=None)
    with using_kernel(KERNELS[kernel]):
        e = _error(data)
    assert (e.line, e.column) == (4, 5)


# --------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def perfmon(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pdh")
    recs = generate(2 * 60, instances=2, interval=10.0, restarts=1, seed=14)
    paths = {"csv": d / "typeperf.csv", "tsv": d / "relog.tsv", "blg": d / "perf.blg", "none": d / "other.csv",
             "rate": d / "rate.csv"}
    paths["csv"].write_bytes(pdh_log(recs, 2, blank={(9, 1, 2)}))
    paths["tsv"].write_bytes(pdh_log(recs, 2, tsv=True, others=False))
    paths["blg"].write_bytes(BLG)
    paths["none"].write_bytes("\"(PDH-CSV 4.0) (RTZ 2 (зима))(-180)\",\"\\\\H\\Процессор(_Total)\\% загруженности\"\r\n"
                              "\"01/02/2024 03:04:05.678\",\"12.5\"\r\n".encode("cp1251"))
    paths["rate"].write_bytes(pdh_log(recs, 2, cell={(3, 0, 5): "0.25"}))
    return paths


def test_cli_info_report_convert(perfmon: dict[str, Path], tmp_path: Path) -> None:
    result = run("info", str(perfmon["csv"]), "--format", "json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)["files"][0]
    assert info["records"] == 119 and len(info["instance_names"]) == 2
    assert all(n.startswith(HOST + " ") for n in info["instance_names"])
    assert "ignored 2 column(s)" in result.stderr and "skipped 1 (instance, sample)" in result.stderr
    assert all(line.startswith("ipsecstats: warning: ") for line in result.stderr.splitlines())

    result = run("report", str(perfmon["tsv"]), "--input-format", "pdh-csv", "--format", "json")
    assert result.returncode == 0 and result.stderr == ""
    rep = json.loads(result.stdout)["reports"][0]
    assert rep["start"].startswith("2024-06-03T12:00:00")

    out = tmp_path / "d.csv"
    result = run("convert", str(perfmon["tsv"]), "-o", str(out), "--what", "deltas")
    assert result.returncode == 0, result.stderr
    rows = out.read_text().splitlines()
    cap = read_pdh_csv(perfmon["tsv"])
    assert len(rows) == 1 + len(cap) - 2
    assert rows[0].split(",")[:3] == ["record", "timestamp", "instance"] or "host" in rows[0]


def test_cli_data_errors_are_one_line(perfmon: dict[str, Path]) -> None:
    result = run("info", str(perfmon["blg"]))
    assert result.returncode == 1
    one_error_line(result.stderr, "perfmon binary log: convert it with `relog perf.blg -f csv -o perf.csv`")
    result = run("report", str(perfmon["none"]))
    assert result.returncode == 1
    # the ANSI code page is unknown: cp1251 bytes read as cp1252 (the default), but never as raw records
    one_error_line(result.stderr, "without MSiSCSI_MMIPSECStats counters", "Ïðîöåññîð (1 column)")
    result = run("info", str(perfmon["rate"]), "--input-format", "pdh-csv")
    assert result.returncode == 1
    line = [s for s in result.stderr.splitlines() if "error" in s]
    assert len(line) == 1 and "line 5, column" in line[0] and "not a whole number" in line[0]
    result = run("info", str(perfmon["csv"]), "--input-format", "pdh-csv", "--stride", "2")
    assert result.returncode == 2


def test_cli_text_output_stdin_and_options(perfmon: dict[str, Path]) -> None:
    result = run("report", str(perfmon["csv"]))
    assert result.returncode == 0, result.stderr
    assert "119 records from a perfmon PDH-CSV/TSV log" in result.stdout
    assert f"instances: {HOST} " in result.stdout and "2024-06-03 12:00:00 UTC" in result.stdout
    result = run("info", str(perfmon["tsv"]))
    assert result.returncode == 0 and "format      a perfmon PDH-CSV/TSV log" in result.stdout
    with open(perfmon["tsv"], "rb") as f:  # detected on a pipe too
        piped = subprocess.run([str(SCRIPT), "info", "-", "--format", "json"], stdin=f, capture_output=True,
                               text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["files"][0]["records"] == 120
    result = run("info", str(perfmon["tsv"]), "--timestamp-column", "Time")
    assert result.returncode == 2
    one_error_line(result.stderr, "--timestamp-column applies to --input-format cim-csv only",
                   "perfmon PDH-CSV/TSV (detected")
