"""read_cim_csv on text in the exact shape PowerShell's Export-Csv writes.

Windows PowerShell 5.1 ``Get-CimInstance -Namespace root\\wmi -ClassName
MSiSCSI_MMIPSECStats | Export-Csv x.csv`` writes a ``#TYPE`` line, then a header and rows
with every value double-quoted, CRLF line ends; PowerShell 7 drops the ``#TYPE`` line by
default (and ``-UseQuotes AsNeeded`` drops the quotes).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import records_from

import ipsecstats
from ipsecstats import FIELDS, CimCsvFormatError, read_cim_csv

TYPE_LINE = "#TYPE Microsoft.Management.Infrastructure.CimInstance#root/wmi/MSiSCSI_MMIPSECStats"
PROPS = sorted(f.name for f in FIELDS)  # CIM lists a WMI class's properties by name
COLUMNS = ["Active", "InstanceName", *PROPS, "PSComputerName", "CimClass", "CimInstanceProperties",
           "CimSystemProperties"]
A, B = "ROOT\\ISCSIPRT\\0000_0", "PCI\\VEN_8086&DEV_10FB&SUBSYS_000C8086\\3&1_0"
M64 = 2**64 - 1


def row_values(seed: int) -> list[int]:
    return [M64 - seed if j == 20 else seed * 100 + j for j in range(21)]


def export_csv(rows, *, type_line=True, quote=True, extra=None, newline="\r\n", columns=COLUMNS) -> str:
    """Rows of (instance, 21 values in FIELDS order), as Export-Csv writes them."""
    def q(v: str) -> str:
        return '"' + v.replace('"', '""') + '"' if quote else v
    lines = [TYPE_LINE] if type_line else []
    lines.append(",".join(q(c) for c in columns))
    by_name = {f.name: j for j, f in enumerate(FIELDS)}
    for k, (instance, vals) in enumerate(rows):
        cell = {"Active": "True", "InstanceName": instance, "PSComputerName": "",  # local Get-CimInstance: no host
                "CimClass": "root/wmi:MSiSCSI_MMIPSECStats",
                "CimInstanceProperties": "{Active, AcquireFailures, AcquireHeapSize, ActiveAcquire...}",
                "CimSystemProperties": "Microsoft.Management.Infrastructure.CimSystemProperties"}
        cell.update({name: str(vals[j]) for name, j in by_name.items()})
        if extra:
            cell.update({name: fn(k) for name, fn in extra.items()})
        lines.append(",".join(q(cell[c]) for c in columns))
    return newline.join(lines) + newline


ROWS = [(A, row_values(1)), (B, row_values(2)), (A, row_values(3)), (B, row_values(4))]


def expected_records(rows=ROWS) -> np.ndarray:
    return records_from([v for _, v in rows])


def test_export_csv_shape_reads_exactly():
    cap = read_cim_csv(export_csv(ROWS).encode("ascii"))
    assert cap.records.tobytes() == expected_records().tobytes()
    assert list(cap.instances) == [A, B, A, B] and cap.instance_names == (A, B)
    assert cap.timestamps is None
    assert cap.records["SoftAssociations"].tolist() == [M64 - 1, M64 - 2, M64 - 3, M64 - 4]


@pytest.mark.parametrize("variant", ["no #TYPE", "unquoted", "LF", "column order", "utf-8 BOM", "utf-16 BOM",
                                     "str", "text file", "binary file"])
def test_variants_of_the_same_export(variant, tmp_path):
    kwargs = {}
    if variant == "no #TYPE":
        kwargs = dict(type_line=False)
    elif variant == "unquoted":
        kwargs = dict(quote=False, columns=[c for c in COLUMNS if c != "CimInstanceProperties"])
    elif variant == "LF":
        kwargs = dict(newline="\n")
    elif variant == "column order":
        kwargs = dict(columns=list(reversed(COLUMNS)))
    text = export_csv(ROWS, **kwargs)
    path = tmp_path / "x.csv"
    if variant == "utf-8 BOM":
        source = b"\xef\xbb\xbf" + text.encode()
    elif variant == "utf-16 BOM":
        source = text.encode("utf-16")
    elif variant == "str":
        path.write_text(text, newline="")
        source = str(path)
    elif variant == "text file":
        source = io.StringIO(text, newline="")
    elif variant == "binary file":
        source = io.BytesIO(text.encode())
    else:
        path.write_bytes(text.encode())
        source = path
    cap = read_cim_csv(source)
    assert cap.records.tobytes() == expected_records().tobytes()
    assert list(cap.instances) == [A, B, A, B]


def test_semicolon_export_with_use_culture():
    text = export_csv(ROWS).replace('","', '";"')
    assert read_cim_csv(text.encode(), delimiter=";").records.tobytes() == expected_records().tobytes()
    assert read_cim_csv(text.encode()).records.tobytes() == expected_records().tobytes()  # told from the header
    with pytest.raises(CimCsvFormatError, match=r"line 2: .*delimiter ',' \(given\).*pass delimiter="):
        read_cim_csv(text.encode(), delimiter=",")


def _cell_error(bad: str, field: str = "AuthenticationFailures"):
    rows = [(A, row_values(1)), (A, row_values(2))]
    text = export_csv(rows)
    lines = text.split("\r\n")
    col = COLUMNS.index(field)
    cells = lines[3].split('","')
    cells[col] = ('"' if col == 0 else "") + bad + ('"' if col == len(cells) - 1 else "")
    lines[3] = '","'.join(cells)
    with pytest.raises(CimCsvFormatError) as err:
        read_cim_csv("\r\n".join(lines).encode())
    return err.value, col + 1


@pytest.mark.parametrize("bad", ["abc", "-1", "+1", " 1", "1 ", "1.0", "1e3", "", "0x10", "1_000", "\u0661",
                                 "18446744073709551616", "99999999999999999999999"])
def test_a_bad_uint64_names_line_and_column(bad):
    err, column = _cell_error(bad)
    assert (err.line, err.column, err.field) == (4, column, "AuthenticationFailures")
    assert f"line 4, column {column} (AuthenticationFailures)" in str(err)
    assert isinstance(err, ValueError)


def test_errors_pickle_with_line_and_column():
    import pickle

    err, column = _cell_error("x")
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.line, back.column, back.field) == (str(err), 4, column, "AuthenticationFailures")


def test_the_uint64_bounds_are_exact():
    rows = [(A, [0] * 20 + [M64]), (A, [M64] * 21)]
    cap = read_cim_csv(export_csv(rows).encode())
    assert cap.records.view("<u8").reshape(-1, 21).tolist() == [v for _, v in rows]


def test_structural_errors():
    with pytest.raises(CimCsvFormatError, match="lacks column.*KeyUpdates"):
        read_cim_csv(export_csv(ROWS, columns=[c for c in COLUMNS if c != "KeyUpdates"]).encode())
    with pytest.raises(CimCsvFormatError, match="lacks column.*InstanceName"):
        read_cim_csv(export_csv(ROWS, columns=[c for c in COLUMNS if c != "InstanceName"]).encode())
    with pytest.raises(CimCsvFormatError, match="appears twice"):
        read_cim_csv(export_csv(ROWS, columns=COLUMNS + ["Active"]).encode())
    with pytest.raises(CimCsvFormatError, match="names class Win32_Process"):
        read_cim_csv(export_csv(ROWS).replace("wmi/MSiSCSI_MMIPSECStats", "cimv2/Win32_Process", 1).encode())
    text = export_csv(ROWS).replace("root/wmi:MSiSCSI_MMIPSECStats", "root/wmi:MSiSCSI_Other", 1)
    with pytest.raises(CimCsvFormatError, match=r"line 3, column \d+ \(CimClass\)"):
        read_cim_csv(text.encode())
    lines = export_csv(ROWS).split("\r\n")
    lines[4] = lines[4] + ',"extra"'
    with pytest.raises(CimCsvFormatError, match=r"line 5: 28 field\(s\), the header has 27"):
        read_cim_csv("\r\n".join(lines).encode())
    with pytest.raises(CimCsvFormatError, match="no header"):
        read_cim_csv(b"")
    with pytest.raises(CimCsvFormatError, match="line 3: not valid UTF-8.*pass encoding="):
        read_cim_csv(export_csv(ROWS).encode().replace(b"True", b"\xff", 1), encoding="utf-8")
    with pytest.raises(TypeError):
        read_cim_csv(3.5)


def test_selected_objects_type_line_is_accepted():
    text = export_csv(ROWS).replace(TYPE_LINE, "#TYPE Selected.Microsoft.Management.Infrastructure.CimInstance")
    assert len(read_cim_csv(text.encode())) == 4


def test_empty_export_has_no_records():
    cap = read_cim_csv(export_csv([]).encode())
    assert len(cap) == 0 and cap.records.dtype == ipsecstats.RECORD_DTYPE


STAMPS = ["2024-05-06T09:08:09.1234567+02:00", "2024-05-06T07:08:09.1234567Z", "2024-05-06T07:08:19Z",
          "133594528891234567"]


def test_timestamps_from_a_named_column_are_exact():
    rows = [(A, row_values(i)) for i in range(4)]
    text = export_csv(rows, columns=COLUMNS + ["Timestamp"], extra={"Timestamp": lambda k: STAMPS[k]})
    cap = read_cim_csv(text.encode(), timestamp_column="Timestamp")
    want = np.array(["2024-05-06T07:08:09.123456700", "2024-05-06T07:08:09.123456700", "2024-05-06T07:08:19",
                     "2024-05-06T07:08:09.123456700"], "datetime64[ns]")
    assert cap.timestamps.tolist() == want.tolist()
    assert cap.rates()[A]["AcquireFailures"][1] == pytest.approx(100 / (9.8765433))


def test_timestamps_empty_cell_is_nat_and_bad_cells_name_line_and_column():
    rows = [(A, row_values(i)) for i in range(2)]
    cols = COLUMNS + ["When"]
    text = export_csv(rows, columns=cols, extra={"When": lambda k: ["", "2024-01-01T00:00:00-05:30"][k]})
    cap = read_cim_csv(text.encode(), timestamp_column="When")
    assert np.isnat(cap.timestamps[0]) and str(cap.timestamps[1]) == "2024-01-01T05:30:00.000000000"
    for bad in ["5/6/2024 7:08:09 AM", "2024-02-30T00:00:00Z", "2024-01-01T24:00:00Z",
                "2300-01-01T00:00:00Z", "1700000000"]:
        text = export_csv(rows, columns=cols, extra={"When": lambda k, bad=bad: bad})
        with pytest.raises(CimCsvFormatError) as err:
            read_cim_csv(text.encode(), timestamp_column="When")
        assert (err.value.line, err.value.column, err.value.field) == (3, len(cols), "When")
    with pytest.raises(CimCsvFormatError, match="lacks column.*When"):
        read_cim_csv(export_csv(rows).encode(), timestamp_column="When")


def test_deltas_group_by_instance_name():
    cap = read_cim_csv(export_csv(ROWS).encode())
    d = cap.deltas()
    assert d[A]["KeyAdditions"].tolist() == [200] and d[B]["KeyAdditions"].tolist() == [200]
    assert cap.rates(interval=10.0)[A]["KeyAdditions"].tolist() == [20.0]
