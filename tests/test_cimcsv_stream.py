"""The CIM CSV row kernel and the streaming reader: parity, chunking, hostile input.

* ``_fast.csv_rows`` and ``_slow.csv_rows`` agree on values, row bounds and errors on random
  CSV text (quotes, CRLF, ``,`` ``;`` tab, timestamps, uint64 edges);
* streaming gives exactly the whole-file result for every chunk size and block size (a
  7-byte block splits rows everywhere: inside quoted fields, between CR and LF), from a
  path, a file object, a pipe and bytes, errors included;
* hostile input: each fix has a test that failed before it.
"""

from __future__ import annotations

import io
import os
import threading
import time

import numpy as np
import pytest
from conftest import KERNELS, require_fast
from hypothesis import example, given
from hypothesis import strategies as st
from test_cimcsv import COLUMNS, ROWS, A, B, export_csv, expected_records, row_values

import ipsecstats
from ipsecstats import CimCsvFormatError, _csv_layout as CL, _slow, read_cim_csv
from ipsecstats._capture import concat
from ipsecstats._source import ByteSource
from ipsecstats.formats import cimcsv as fmt
from ipsecstats.formats.cimcsv import CimCsvReader

M64 = 2**64 - 1


# -- the kernel pair ---------------------------------------------------------------------------


def call(kernel, data: bytes, *, final=True, delim=",", roles=(0, 1, 2, -2, -1), nprops=2, cap=8, max_row=64,
         line=1):
    roles = np.array(roles, np.int64)
    nstrs = int(np.sum(roles >= nprops))
    rec = np.zeros((cap, 8 * nprops), np.uint8)
    strs = np.zeros((cap, nstrs, CL.STR_FIELDS), np.int64)
    stamps = np.zeros(cap, np.int64)
    lines = np.zeros(cap, np.int64)
    buf = np.frombuffer(data, np.uint8)
    res = kernel.csv_rows(buf, final, ord(delim), roles, nprops, rec, strs, stamps, lines, line, max_row)
    n = res[1]
    out = (tuple(res), rec[:n].tobytes(), strs[:n].tolist(), lines[:n].tolist())
    return out + ((stamps[:n].tolist(),) if -2 in roles.tolist() else ())


def both(data: bytes, **kw):
    fast = require_fast()
    a, b = call(fast, data, **kw), call(_slow, data, **kw)
    assert a == b
    return a


CELLS = st.sampled_from(["0", "1", "18446744073709551615", "18446744073709551616", "007", "", "-1", " 1", "x",
                         '"', '""', '"1"', '"a""b"', '"a,b"', '"x\r\ny"', "\r", "2024-05-06T07:08:09.1234567Z",
                         "2024-05-06T07:08:09+02:00", "2024-05-06 07:08:09-0530", "2024-02-29T00:00:00Z",
                         "2023-02-29T00:00:00Z", "2024-01-01T00:00:00+99:99", "2024-01-01T00:00:00+14:00",
                         "2262-04-11T23:47:16.854775807Z", "2262-04-11T23:47:16.854775808Z",
                         "1677-09-21T00:12:43.145224193Z", "1677-09-21T00:12:43.145224192Z", "133594528891234567",
                         "99999999999999999999", "0000-01-01T00:00:00Z", "2024-01-01T24:00:00Z", "\0", "a\0"])


@st.composite
def csv_text(draw):
    delim = draw(st.sampled_from([",", ";", "\t"]))
    ncols = draw(st.integers(1, 5))
    nrows = draw(st.integers(0, 6))
    rows = []
    for _ in range(nrows):
        width = ncols if draw(st.integers(0, 5)) else draw(st.integers(1, 6))
        cells = [draw(CELLS) for _ in range(width)]
        if draw(st.booleans()):
            cells = [c if c.startswith('"') else '"' + c.replace('"', '""') + '"' for c in cells]
        rows.append(delim.join(cells))
        if not draw(st.integers(0, 4)):
            rows.append("")
    text = draw(st.sampled_from(["\r\n", "\n"])).join(rows) + draw(st.sampled_from(["", "\n", "\r\n", "\r"]))
    roles = [-1] * ncols
    order = draw(st.permutations(range(ncols)))
    nprops = draw(st.integers(0, ncols))
    slots = list(range(ncols))
    for slot, col in zip(slots, order):
        roles[col] = slot
    if draw(st.booleans()):
        roles[order[-1]] = -2
        nprops = min(nprops, ncols - 1)
    wanted = sorted(r for r in roles if r >= 0)
    remap = {r: i for i, r in enumerate(wanted)}
    roles = [remap.get(r, r) for r in roles]
    return text.encode(), delim, tuple(roles), min(nprops, len(wanted))


@given(csv_text(), st.booleans(), st.integers(1, 200), st.integers(1, 5))
@example((b'1,2,"a",2024-01-01T00:00:00Z,x\r\n', ",", (0, 1, 2, -2, -1), 2), True, 64, 8)
@example((b'"1";"18446744073709551615"\r\n\r\n"2";"3"', ";", (0, 1), 2), False, 64, 8)
@example((b'1\t"a\r\n""b"\tc\n', "\t", (0, 1, -1), 1), True, 64, 8)
def test_kernel_and_twin_agree(case, final, max_row, cap):
    data, delim, roles, nprops = case
    both(data, final=final, delim=delim, roles=roles, nprops=nprops, max_row=max_row, cap=cap)


@given(st.binary(max_size=80), st.booleans())
def test_kernel_and_twin_agree_on_any_bytes(data, final):
    both(data, final=final, roles=(0, 1, -2), nprops=1, max_row=40)


@pytest.mark.parametrize("value", [0, 1, 2**32, 2**63, M64])
def test_uint64_edges_exact_on_both(value):
    got = both(f'{value},"{value}"\r\n'.encode(), roles=(0, 1), nprops=2)
    assert got[0][:3] == (CL.OK, 1, len(str(value)) * 2 + 5)
    assert np.frombuffer(got[1], "<u8").tolist() == [value, value]


def test_kernel_misuse_is_refused_by_both():
    for kernel in KERNELS.values():
        with pytest.raises(ValueError):
            call(kernel, b"1\n", roles=(0, 0), nprops=1)  # slot 0 twice
        with pytest.raises(ValueError):
            call(kernel, b"1\n", roles=(-1,), nprops=1)  # slot 0 missing
        with pytest.raises(ValueError):
            call(kernel, b"1\n", delim='"', roles=(0,), nprops=1)
        with pytest.raises(ValueError):
            call(kernel, b"1\n", roles=(0,), nprops=1, max_row=0)


def test_unfinished_row_is_left_for_the_next_block():
    data = b'1,2,"a",2024-01-01T00:00:00Z,x\r\n3,4,"b\r\n'
    res = both(data, final=False)[0]
    assert res[:4] == (CL.OK, 1, data.index(b"3,4"), 2)
    assert both(data, final=True)[0][0] == CL.UNCLOSED_QUOTE
    cr = b"1,2,a,,x\r"  # between CR and LF: not finished
    assert both(cr, final=False)[0][:3] == (CL.OK, 0, 0)


def test_name_references_point_at_the_first_equal_row():
    data = b"".join(b"1,%s\n" % name for name in [b"a", b"b", b"a", b"b", b"c", b"a"])
    _, _, strs, _ = both(data, roles=(0, 1), nprops=1)
    assert [s[0][3] for s in strs] == [0, 1, 0, 1, 4, 0]


# -- streaming equals whole ------------------------------------------------------------------------


STAMPED = COLUMNS + ["Timestamp"]
STAMPS = ["2024-05-06T07:08:09.1234567Z", "", "133594528891234567", "2024-05-06T09:08:09+02:00"]


def stamped_export(nrows=9, **kw) -> str:
    rows = [((A, B, 'Quote "q"\r\nline')[k % 3], row_values(k)) for k in range(nrows)]
    return export_csv(rows, columns=STAMPED, extra={"Timestamp": lambda k: STAMPS[k % 4]}, **kw)


def stream(data, *, block, chunk, ts="Timestamp", delimiter=None):
    reader = CimCsvReader(ByteSource(data), timestamp_column=ts, chunk_records=chunk, delimiter=delimiter)
    reader._block = block
    chunks = list(reader)
    assert all(len(c) <= chunk for c in chunks) and all(len(c) for c in chunks)
    assert [c.start for c in chunks] == list(np.cumsum([0] + [len(c) for c in chunks[:-1]]))
    return concat(chunks)


def same(a, b):
    assert a.records.tobytes() == b.records.tobytes()
    assert a.instance_codes.tolist() == b.instance_codes.tolist() and a.instance_names == b.instance_names
    assert (a.timestamps is None) == (b.timestamps is None)
    if a.timestamps is not None:
        assert a.timestamps.view(np.int64).tolist() == b.timestamps.view(np.int64).tolist()


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
@pytest.mark.parametrize("quote", [True, False])
def test_streaming_equals_whole_for_every_block_and_chunk(kernel, newline, quote):
    columns = STAMPED if quote else [c for c in STAMPED if c != "CimInstanceProperties"]
    rows = [((A, B, 'Quote "q"\r\nline')[k % 3] if quote else (A, B)[k % 2], row_values(k)) for k in range(9)]
    text = export_csv(rows, columns=columns, quote=quote, newline=newline,
                      extra={"Timestamp": lambda k: STAMPS[k % 4]})
    data = b"\xef\xbb\xbf" + text.encode()
    whole = read_cim_csv(data, timestamp_column="Timestamp")
    assert len(whole) == 9 and whole.instance_names[:2] == (A, B)
    assert whole.records.tobytes() == expected_records(rows).tobytes()
    for block in [4, 7, 13, 64, 1000]:
        for chunk in [1, 2, 4, 9, 100]:
            same(stream(data, block=block, chunk=chunk), whole)


def test_every_split_point_of_a_quoted_crlf_export(kernel):
    data = stamped_export(5).encode()
    whole = read_cim_csv(data, timestamp_column="Timestamp")
    for block in range(4, 40):
        same(stream(data, block=block, chunk=3), whole)


@pytest.mark.parametrize("how", ["path", "binary file", "pipe", "bytes", "text file", "utf-16 bytes"])
def test_sources(how, tmp_path):
    text = stamped_export(7)
    whole = read_cim_csv(text.encode(), timestamp_column="Timestamp")
    path = tmp_path / "x.csv"
    path.write_bytes(text.encode())
    if how == "path":
        source = path
    elif how == "binary file":
        source = open(path, "rb")  # noqa: SIM115
    elif how == "pipe":
        r, w = os.pipe()
        threading.Thread(target=lambda: (os.write(w, text.encode()), os.close(w)), daemon=True).start()
        source = os.fdopen(r, "rb")
    elif how == "text file":
        source = io.StringIO(text, newline="")
    elif how == "utf-16 bytes":
        source = text.encode("utf-16")
    else:
        source = text.encode()
    try:
        same(read_cim_csv(source, timestamp_column="Timestamp"), whole)
    finally:
        if hasattr(source, "close"):
            source.close()


def test_utf16_streams_in_small_blocks():
    text = stamped_export(6)
    whole = read_cim_csv(text.encode(), timestamp_column="Timestamp")
    for order in ["utf-16-le", "utf-16-be"]:
        data = ("\ufeff" + text).encode(order)
        for block in [4, 7, 33]:
            same(stream(data, block=block, chunk=4), whole)


BAD_ROWS = [
    ("AuthenticationFailures", "x"), ("KeyUpdates", "18446744073709551616"), ("Timestamp", "2024-02-30T00:00:00Z"),
    ("CimClass", "root/wmi:Other"), ("InstanceName", "a\0b"),
]


@pytest.mark.parametrize("column,bad", BAD_ROWS)
def test_errors_are_the_same_whatever_the_blocks(kernel, column, bad):
    rows = [(A, row_values(k)) for k in range(6)]
    def cell(k):
        return bad if k == 4 else STAMPS[k % 4]
    extra = {"Timestamp": cell} if column == "Timestamp" else {"Timestamp": lambda k: STAMPS[k % 4]}
    text = export_csv(rows, columns=STAMPED, extra=extra)
    if column != "Timestamp":
        lines = text.split("\r\n")
        cells = lines[6].split('","')
        j = STAMPED.index(column)
        cells[j] = ('"' if j == 0 else "") + bad + ('"' if j == len(cells) - 1 else "")
        lines[6] = '","'.join(cells)
        text = "\r\n".join(lines)
    with pytest.raises(CimCsvFormatError) as whole:
        read_cim_csv(text.encode(), timestamp_column="Timestamp")
    assert (whole.value.line, whole.value.column, whole.value.field) == (7, STAMPED.index(column) + 1, column)
    for block in [5, 7, 64]:
        for chunk in [1, 3, 100]:
            with pytest.raises(CimCsvFormatError) as err:
                stream(text.encode(), block=block, chunk=chunk)
            assert str(err.value).split(": ", 1)[1] == str(whole.value).split(": ", 1)[1]


# -- hostile input: each failed before its fix -------------------------------------------------------


def test_utc_offsets_out_of_range_are_errors(kernel):
    rows = [(A, row_values(0))]
    for bad in ["2024-01-01T00:00:00+99:99", "2024-01-01T00:00:00+14:01", "2024-01-01T00:00:00-00:60"]:
        text = export_csv(rows, columns=STAMPED, extra={"Timestamp": lambda k, bad=bad: bad})
        with pytest.raises(CimCsvFormatError, match="UTC offset out of range") as err:
            read_cim_csv(text.encode(), timestamp_column="Timestamp")
        assert (err.value.line, err.value.field) == (3, "Timestamp")
    text = export_csv(rows, columns=STAMPED, extra={"Timestamp": lambda k: "2024-01-01T00:00:00-14:00"})
    assert str(read_cim_csv(text.encode(), timestamp_column="Timestamp").timestamps[0]) == "2024-01-01T14:00:00.000000000"


def test_a_bom_in_a_text_mode_source_is_stripped(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + export_csv(ROWS, type_line=False).encode())
    with open(path, encoding="utf-8", newline="") as f:  # text mode keeps U+FEFF
        cap = read_cim_csv(f)
    assert cap.records.tobytes() == expected_records().tobytes()
    cap = read_cim_csv(io.StringIO("\ufeff" + export_csv(ROWS), newline=""))
    assert len(cap) == 4


@pytest.mark.parametrize("encoding,order", [("utf-16-le", "LE"), ("utf-16-be", "BE")])
def test_utf16_without_a_bom_is_named(encoding, order):
    with pytest.raises(CimCsvFormatError, match=f"UTF-16{order} text without a byte order mark"):
        read_cim_csv(export_csv(ROWS).encode(encoding))


def test_nul_in_instance_names_like_wnode(kernel):
    rows = [(A + "\0\0", row_values(1)), (A, row_values(2)), (B + "\0", row_values(3))]
    cap = read_cim_csv(export_csv(rows).encode())
    assert cap.instance_names == (A, B) and cap.instance_codes.tolist() == [0, 0, 1]
    rows = [(A, row_values(1)), ("ROOT\0EVIL", row_values(2))]
    with pytest.raises(CimCsvFormatError, match="NUL character inside the instance name") as err:
        read_cim_csv(export_csv(rows).encode())
    assert (err.value.line, err.value.column, err.value.field) == (4, COLUMNS.index("InstanceName") + 1,
                                                                   "InstanceName")


def test_cim_class_is_compared_exactly(kernel):
    for bad in ["root/wmi:EvilMSiSCSI_MMIPSECStats", "EvilMSiSCSI_MMIPSECStats", "MSiSCSI_MMIPSECStats"]:
        text = export_csv(ROWS).replace("root/wmi:MSiSCSI_MMIPSECStats", bad)
        with pytest.raises(CimCsvFormatError, match=r"line 3, column \d+ \(CimClass\)"):
            read_cim_csv(text.encode())
    text = export_csv(ROWS).replace("MSiSCSI_MMIPSECStats", "EvilMSiSCSI_MMIPSECStats", 1)  # the #TYPE line
    with pytest.raises(CimCsvFormatError, match="names class EvilMSiSCSI_MMIPSECStats"):
        read_cim_csv(text.encode())
    wmi = export_csv(ROWS).replace(
        "Microsoft.Management.Infrastructure.CimInstance#root/wmi/",
        "System.Management.ManagementObject#root\\wmi\\")  # Get-WmiObject: backslashes
    assert len(read_cim_csv(wmi.encode())) == 4


def test_dev_zero_is_refused_quickly():
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    t0 = time.perf_counter()
    with pytest.raises(CimCsvFormatError, match="binary data"):
        read_cim_csv("/dev/zero")
    assert time.perf_counter() - t0 < 5


def test_rows_are_capped(kernel):
    header = export_csv([], type_line=False)
    endless = io.BytesIO(header.encode() + b'"' + b"x" * (3 << 20))
    with pytest.raises(CimCsvFormatError, match="line 2: a row longer than 1,048,576 bytes"):
        read_cim_csv(endless)
    with pytest.raises(CimCsvFormatError, match="line 1: a line longer than"):
        read_cim_csv(b"I" * (3 << 20))


#: Bounds of the timing tests below, in seconds: quadratic work on these inputs takes hours.
#: Under an emulator (tools/cross-test.sh sets IPSECSTATS_UNDER_QEMU) linear work is 10-30x slower.
SLOWER = 10 if os.environ.get("IPSECSTATS_UNDER_QEMU") == "1" else 1


@pytest.mark.parametrize("case", ["quotes", "empty lines", "unclosed quote", "empty lines before the header"])
def test_no_input_takes_super_linear_time(kernel, case):
    header = export_csv([], type_line=False).encode()
    row = export_csv([(A, row_values(1))], type_line=False).encode()[len(header):]
    if case == "quotes":  # one field of 10 MB of quotes
        data = header + b'"' + b'"' * (10 << 20) + b'"\r\n'
    elif case == "empty lines":
        data = header + b"\r\n" * 2_000_000 + row
    elif case == "unclosed quote":
        data = header + b'"' + b"a\r\n" * (4 << 20)
    else:
        data = b"\n" * 2_000_000 + header + row
    t0 = time.perf_counter()
    if case.startswith("empty lines"):
        cap = read_cim_csv(data)
        assert len(cap) == 1
    else:
        with pytest.raises(CimCsvFormatError, match="row longer than"):
            read_cim_csv(data)
    assert time.perf_counter() - t0 < 10 * SLOWER


def test_block_size_does_not_make_long_rows_quadratic(kernel):
    data = export_csv([(A * 2000, row_values(1))] * 3).encode()  # rows of ~40 KB
    reader = CimCsvReader(ByteSource(data))
    reader._block = 16
    t0 = time.perf_counter()
    assert len(concat(reader)) == 3
    assert time.perf_counter() - t0 < 5 * SLOWER


def test_the_reader_is_the_format_reader():
    assert ipsecstats.formats.by_name("cim-csv").reader is CimCsvReader
    assert ipsecstats.read_cim_csv is read_cim_csv and fmt.CimCsvFormatError is CimCsvFormatError
