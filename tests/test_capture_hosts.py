"""Instances of several hosts: labels "HOST NAME", ``instance_hosts``, and the ``host`` column of exports."""

from __future__ import annotations

import numpy as np
import pytest

from ipsecstats._capture import Capture, NameTable, concat, instance_label
from ipsecstats._export import Layout, write_table
from ipsecstats._generate import generate
from ipsecstats._pipeline import CaptureReader, iter_capture, row_columns

PDO = "ROOT\\ISCSIPRT\\0000_0"


def two_hosts(n: int = 8) -> Capture:
    """Two hosts with the same PDO name, alternating, each host's counters its own series."""
    table = NameTable()
    codes = np.array([table.code(PDO, ("SRV1", "SRV2")[k % 2]) for k in range(n)], dtype=np.intp)
    records = generate(n, instances=2, seed=5)
    return Capture(records, None, codes, table.names, 0, table.hosts)


def test_the_same_name_on_two_hosts_is_two_instances():
    cap = two_hosts()
    assert cap.instance_names == ("SRV1 " + PDO, "SRV2 " + PDO)
    assert cap.instance_hosts == ("SRV1", "SRV2") and cap.bare_names() == (PDO, PDO)
    by = cap.by_instance()
    assert list(by) == list(cap.instance_names) and by["SRV2 " + PDO].instance_hosts == ("SRV2",)
    deltas = cap.deltas(on_decrease="raise")  # each host paired with itself: no false restart
    assert [len(d) for d in deltas.values()] == [3, 3]


def test_a_table_without_hosts_has_none_and_rows_without_a_host_keep_the_bare_name():
    table = NameTable()
    assert table.code(PDO) == 0 and table.hosts is None
    assert table.code(PDO, "") == 0  # an empty host is no host: the same instance
    assert table.code(PDO, "SRV1") == 1 and table.hosts == ("", "SRV1")
    assert instance_label(PDO, None) == instance_label(PDO, "") == PDO


def test_capture_checks_hosts():
    cap = two_hosts(2)
    with pytest.raises(TypeError, match="instance_hosts"):
        Capture(cap.records, None, cap.instance_codes, cap.instance_names, 0, ("SRV1",))
    with pytest.raises(ValueError, match="labels 'HOST NAME'"):
        Capture(cap.records, None, cap.instance_codes, cap.instance_names, 0, ("SRV1", "OTHER"))


def test_concat_keeps_hosts_and_refuses_a_mix():
    cap = two_hosts()
    half = Capture(cap.records[:4], None, cap.instance_codes[:4], cap.instance_names, 0, cap.instance_hosts)
    rest = Capture(cap.records[4:], None, cap.instance_codes[4:], cap.instance_names, 4, cap.instance_hosts)
    whole = concat([half, rest])
    assert whole.instance_hosts == cap.instance_hosts and whole.records.tobytes() == cap.records.tobytes()
    plain = Capture(cap.records[4:], None, np.zeros(4, np.intp), (PDO,), 4)
    with pytest.raises(ValueError, match="different streams"):
        concat([half, plain])


def test_exports_get_a_host_column(tmp_path):
    cap = two_hosts()
    cols = row_columns(cap, np.arange(len(cap)))
    assert list(cols) == ["record", "host", "instance"]
    assert cols["host"].tolist() == ["SRV1", "SRV2"] * 4 and cols["instance"].tolist() == [PDO] * 8
    (chunk,) = iter_capture(CaptureReader(cap).capture, "deltas")
    assert chunk.instances.tolist() == ["SRV1 " + PDO, "SRV2 " + PDO] * 3
    out = tmp_path / "x.csv"
    write_table([(0, cap.records, cols)], str(out), "csv", Layout("records", columns=cols), cap.records.dtype, {})
    header, first = out.read_text().splitlines()[:2]
    assert header.startswith("record,host,instance,") and first.startswith(f"0,SRV1,{PDO},")


def test_a_host_named_only_after_rows_without_one_is_kept_apart():
    """A CIM CSV whose first rows have an empty PSComputerName (a local query) and whose later
    rows name another host with the same PDO name: two instances, no false restart."""
    from test_cimcsv import export_csv

    from ipsecstats import read_cim_csv

    def rising(k: int) -> list[int]:
        return [k * 100 + j for j in range(21)]

    hosts = ["", "", "", "SRV2", "SRV2", "SRV2"]
    values = [rising(10 + k) for k in range(3)] + [rising(k) for k in range(3)]  # SRV2 starts lower
    rows = [(PDO, v) for v in values]
    data = export_csv(rows, extra={"PSComputerName": lambda k: hosts[k]}).encode()
    cap = read_cim_csv(data)
    assert cap.instance_names == (PDO, "SRV2 " + PDO) and cap.instance_hosts == ("", "SRV2")
    deltas = cap.deltas(on_decrease="raise")  # merged, SRV2's lower values would be a restart
    assert [len(d) for d in deltas.values()] == [2, 2]
