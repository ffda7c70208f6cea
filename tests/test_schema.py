"""The record schema: one definition of names, ids, offsets, kinds and the dtype."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
from conftest import DATA

import ipsecstats
from ipsecstats import COUNTERS, FIELDS, GAUGES, RECORD_DTYPE, RECORD_SIZE
from ipsecstats._deltas import delta_dtype, rate_dtype, resolve_kinds

# DOMAIN.md section 1, in WmiDataId order: written out here, not derived from the package.
MOF_ORDER = (
    "ActiveAcquire", "ActiveReceive", "AcquireFailures", "ReceiveFailures", "SendFailures",
    "AcquireHeapSize", "ReceiveHeapSize", "NegotiationFailures", "AuthenticationFailures",
    "InvalidCookiesReceived", "TotalGetSPI", "KeyAdditions", "KeyUpdates", "GetSPIFailures",
    "KeyAdditionFailures", "KeyUpdateFailures", "ConnectionListSize", "OakleyMainMode",
    "OakleyQuickMode", "InvalidPackets", "SoftAssociations",
)
DOMAIN_GAUGES = ("ActiveAcquire", "ActiveReceive", "AcquireHeapSize", "ReceiveHeapSize", "ConnectionListSize")


def test_record_size_and_dtype_layout() -> None:
    assert RECORD_SIZE == 168
    assert RECORD_DTYPE.itemsize == 168
    assert RECORD_DTYPE.names == MOF_ORDER
    for i, name in enumerate(MOF_ORDER):
        fdt, offset = RECORD_DTYPE.fields[name][:2]
        assert fdt == np.dtype("<u8") and fdt.str == "<u8", name
        assert offset == 8 * i, name


def test_fields_in_wmi_order() -> None:
    assert len(FIELDS) == 21
    assert tuple(f.name for f in FIELDS) == MOF_ORDER
    assert [f.wmi_id for f in FIELDS] == list(range(1, 22))
    assert [f.offset for f in FIELDS] == [8 * i for i in range(21)]
    for f in FIELDS:
        assert f.kind in ("counter", "gauge")
        assert isinstance(f.description, str) and f.description.strip(), f.name


def test_counters_and_gauges_match_domain_notes() -> None:
    assert GAUGES == DOMAIN_GAUGES
    assert COUNTERS == tuple(n for n in MOF_ORDER if n not in DOMAIN_GAUGES)
    assert len(COUNTERS) == 16 and len(GAUGES) == 5
    assert {f.name for f in FIELDS if f.kind == "gauge"} == set(GAUGES)


def test_fields_are_immutable() -> None:
    f = FIELDS[0]
    with pytest.raises((AttributeError, dataclasses.FrozenInstanceError)):
        f.kind = "counter"  # type: ignore[misc]
    with pytest.raises(TypeError):
        FIELDS[0] = f  # type: ignore[index]
    assert isinstance(FIELDS, tuple) and isinstance(COUNTERS, tuple) and isinstance(GAUGES, tuple)


def test_golden_files_use_the_same_names(golden: dict) -> None:
    assert tuple(golden["fields"]) == MOF_ORDER
    assert golden["record_size"] == RECORD_SIZE


def test_public_names() -> None:
    expected = {"RECORD_SIZE", "RECORD_DTYPE", "FIELDS", "COUNTERS", "GAUGES", "BACKEND", "decode",
                "encode", "deltas", "rates", "ON_DECREASE", "TruncatedRecordError",
                "PartialRecordWarning", "CounterResetError"}
    assert expected <= set(ipsecstats.__all__)
    for name in ipsecstats.__all__:
        assert hasattr(ipsecstats, name), name
    assert ipsecstats.BACKEND in ("cython", "python")
    assert set(ipsecstats.ON_DECREASE) == {"auto", "reset", "wrap", "zero", "raise"}


def test_error_classes() -> None:
    assert issubclass(ipsecstats.TruncatedRecordError, ValueError)
    assert issubclass(ipsecstats.CounterResetError, ValueError)
    assert issubclass(ipsecstats.PartialRecordWarning, Warning)


def test_delta_and_rate_dtypes() -> None:
    kinds = resolve_kinds(None)
    dd = delta_dtype(kinds)
    assert dd.names == MOF_ORDER
    for name in MOF_ORDER:
        expected = "<i8" if name in DOMAIN_GAUGES else "<u8"
        assert dd.fields[name][0].str == expected, name
    rd = rate_dtype(kinds)
    assert rd.names == tuple(n for n in MOF_ORDER if n not in DOMAIN_GAUGES)
    assert all(rd.fields[n][0] == np.dtype(np.float64) for n in rd.names)  # rates: native float64

    swapped = resolve_kinds({"ActiveAcquire": "counter", "TotalGetSPI": "gauge"})
    assert swapped[0] == "counter" and swapped[MOF_ORDER.index("TotalGetSPI")] == "gauge"
    sd = delta_dtype(swapped)
    assert sd.fields["ActiveAcquire"][0].str == "<u8"
    assert sd.fields["TotalGetSPI"][0].str == "<i8"
    assert "ActiveAcquire" in rate_dtype(swapped).names
    assert "TotalGetSPI" not in rate_dtype(swapped).names


def test_golden_files_are_what_their_script_writes(tmp_path) -> None:  # noqa: ANN001
    """The script beside the golden files reproduces them (run into a scratch directory)."""
    spec = importlib.util.spec_from_file_location("make_golden", DATA / "make_golden.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.HERE = tmp_path
    script.main()
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in DATA.iterdir() if p.suffix in (".bin", ".json"))
    for name in written:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), name
