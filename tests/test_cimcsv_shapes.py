"""Golden files: every shape Windows PowerShell 5.1 and PowerShell 7 write for MSiSCSI_MMIPSECStats.

Each file is built byte for byte from the writer's rules (PowerShell's ``CsvCommands.cs``):

* ``#TYPE <first type name>`` first (5.1 by default; 7 only with ``-IncludeTypeInformation``);
* the header: the property names in the object's order, each quoted (``-UseQuotes Always``);
* a row: each value's ``.ToString()`` (uint64 as digits, booleans ``True``, a DateTime in the
  culture's format, no offset), quoted with ``"`` doubled; a null is an empty unquoted field;
  ``-UseQuotes AsNeeded`` quotes only a value holding the delimiter, LF or ``"``; ``Never``
  quotes nothing; the delimiter is ``,`` or the culture's list separator (``-UseCulture``);
* lines end in CRLF; the encoding is ASCII (5.1 ``Export-Csv``: a non-ASCII character becomes
  ``?``), UTF-8 with a BOM (``-Encoding UTF8``), the ANSI code page (``-Encoding Default``),
  UTF-16LE with a BOM (``ConvertTo-Csv > file``: ``Out-File``), UTF-8 without a BOM (PS 7).

The records come from ``ipsecstats._generate.generate`` (k instances, a sample a minute);
each file must read back to exactly those records, the right instance names and hosts, and
the right UTC times, and stream in small blocks to the same result.
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
import zoneinfo

import numpy as np
import pytest
from conftest import as_u64
from hypothesis import given
from hypothesis import strategies as st

from ipsecstats import FIELDS, CimCsvFormatError, read_cim_csv
from ipsecstats._capture import concat
from ipsecstats._generate import generate
from ipsecstats._schema import COUNTERS, FIELD_NAMES
from ipsecstats._source import ByteSource
from ipsecstats._stats import scan
from ipsecstats.formats import detect
from ipsecstats.formats._csvtime import _fast_strptime, compile_format
from ipsecstats.formats.cimcsv import CimCsvReader, CimCsvWarning

PROPS = sorted(f.name for f in FIELDS)
INSTANCES = ("ROOT\\ISCSIPRT\\0000_0", "PCI\\VEN_8086&DEV_10FB&SUBSYS_000C8086&REV_01\\4&1B2C3D4E&0&0010_0")
CIM_TYPE = "Microsoft.Management.Infrastructure.CimInstance#root/wmi/MSiSCSI_MMIPSECStats"
WMI_TYPE = "System.Management.ManagementObject#root\\wmi\\MSiSCSI_MMIPSECStats"
SELECTED = "Selected.Microsoft.Management.Infrastructure.CimInstance"
#: Win32_PerfRawData's inherited properties, in WMI's order around the class's own.
PERF_HEAD = ["Caption", "Description", "Name", "Frequency_Object", "Frequency_PerfTime", "Frequency_Sys100NS"]
PERF_TAIL = ["Timestamp_Object", "Timestamp_PerfTime", "Timestamp_Sys100NS"]
CIM_COLUMNS = ["Active", *PERF_HEAD, "InstanceName", *PROPS, *PERF_TAIL, "PSComputerName", "CimClass",
               "CimInstanceProperties", "CimSystemProperties"]
WMI_SYSTEM = ["__GENUS", "__CLASS", "__SUPERCLASS", "__DYNASTY", "__RELPATH", "__PROPERTY_COUNT", "__DERIVATION",
              "__SERVER", "__NAMESPACE", "__PATH"]
WMI_COLUMNS = [*WMI_SYSTEM, "Active", *PERF_HEAD, "InstanceName", *PROPS, *PERF_TAIL, "PSComputerName", "Scope",
               "Path", "Options", "ClassPath", "Properties", "SystemProperties", "Qualifiers", "Site", "Container"]
START = dt.datetime(2024, 6, 3, 0, 0, tzinfo=dt.timezone.utc)  # the first poll, UTC
STEP = dt.timedelta(seconds=60)  # generate()'s default interval
FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


# -- the writer's rules ---------------------------------------------------------------------------


def field(value: str | None, delimiter: str, quotes: str) -> str:
    """One value as CsvCommands.cs writes it (None: a null, an empty unquoted field)."""
    if value is None:
        return ""
    if quotes == "Always" or (quotes == "AsNeeded" and any(c in value for c in (delimiter, "\n", '"'))):
        return '"' + value.replace('"', '""') + '"'
    return value


def export(objects: list[dict[str, str | None]], columns: list[str], *, type_name: str | None,
           delimiter: str = ",", quotes: str = "Always") -> str:
    """The text of ``Export-Csv``/``ConvertTo-Csv`` of ``objects`` (CRLF line ends)."""
    lines = [f"#TYPE {type_name}"] if type_name is not None else []
    lines.append(delimiter.join(field(c, delimiter, quotes) for c in columns))
    for obj in objects:
        lines.append(delimiter.join(field(obj.get(c), delimiter, quotes) for c in columns))
    return "".join(line + "\r\n" for line in lines)


def ticks(when: dt.datetime) -> int:
    return (when - FILETIME_EPOCH) // dt.timedelta(microseconds=1) * 10


def en_us(when: dt.datetime) -> str:
    """DateTime.ToString() in en-US: M/d/yyyy h:mm:ss tt."""
    return f"{when.month}/{when.day}/{when.year} {(when.hour + 11) % 12 + 1}:{when.minute:02}:{when.second:02} " \
           f"{'AM' if when.hour < 12 else 'PM'}"


def de_de(when: dt.datetime) -> str:
    """DateTime.ToString() in de-DE: dd.MM.yyyy HH:mm:ss."""
    return when.strftime("%d.%m.%Y %H:%M:%S")


def round_trip(when: dt.datetime) -> str:
    """Get-Date -Format o: yyyy-MM-ddTHH:mm:ss.fffffffzzz (local time and its offset)."""
    off = when.utcoffset()
    assert off is not None
    sign, off = ("-", -off) if off < dt.timedelta(0) else ("+", off)
    hh, mm = divmod(int(off.total_seconds()) // 60, 60)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{when.microsecond * 10:07d}{sign}{hh:02}:{mm:02}"


class Log:
    """A generated log: ``k`` instances polled ``samples`` times, one host or several."""

    def __init__(self, samples: int = 6, instances: int = 2, hosts: tuple[str, ...] = ("",), seed: int = 7):
        self.hosts = hosts
        self.k = instances * len(hosts)
        self.records = generate(samples * self.k, instances=self.k, seed=seed, restarts=0)
        self.values = as_u64(self.records)
        self.names = [INSTANCES[i % instances] for i in range(self.k)]
        self.row_hosts = [hosts[i // instances] for i in range(self.k)]
        self.times = [START + (r // self.k) * STEP for r in range(len(self.records))]

    def cim(self, r: int) -> dict[str, str | None]:
        """Row ``r`` as Get-CimInstance's object: the 21 properties, nulls for the perf ones."""
        obj: dict[str, str | None] = {name: str(int(self.values[r, FIELD_NAMES.index(name)])) for name in PROPS}
        host = self.row_hosts[r % self.k]
        obj.update({"Active": "True", "InstanceName": self.names[r % self.k], "PSComputerName": host or None,
                    "CimClass": "root/wmi:MSiSCSI_MMIPSECStats",
                    "CimInstanceProperties": "{Active, AcquireFailures, AcquireHeapSize, ActiveAcquire...}",
                    "CimSystemProperties": "Microsoft.Management.Infrastructure.CimSystemProperties"})
        return obj

    def wmi(self, r: int) -> dict[str, str | None]:
        """Row ``r`` as Get-WmiObject's object: system properties, filled perf timestamps."""
        obj = self.cim(r)
        host = self.row_hosts[r % self.k]
        name = self.names[r % self.k]
        relpath = 'MSiSCSI_MMIPSECStats.InstanceName="' + name.replace("\\", "\\\\") + '"'
        obj.update({"__GENUS": "2", "__CLASS": "MSiSCSI_MMIPSECStats", "__SUPERCLASS": "Win32_PerfRawData",
                    "__DYNASTY": "CIM_StatisticalInformation", "__RELPATH": relpath, "__PROPERTY_COUNT": "32",
                    "__DERIVATION": "System.String[]", "__SERVER": host, "__NAMESPACE": "root\\wmi",
                    "__PATH": f"\\\\{host}\\root\\wmi:{relpath}", "PSComputerName": host,
                    "Scope": "System.Management.ManagementScope", "Path": f"\\\\{host}\\root\\wmi:{relpath}",
                    "Options": "System.Management.ObjectGetOptions",
                    "ClassPath": f"\\\\{host}\\root\\wmi:MSiSCSI_MMIPSECStats",
                    "Properties": "System.Management.PropertyDataCollection",
                    "SystemProperties": "System.Management.PropertyDataCollection",
                    "Qualifiers": "System.Management.QualifierDataCollection", "Site": None, "Container": None,
                    "Frequency_Object": "0", "Frequency_PerfTime": "2531250", "Frequency_Sys100NS": "10000000",
                    "Timestamp_Object": "0", "Timestamp_PerfTime": str(1_000_000 + r // self.k * 151_875_000),
                    "Timestamp_Sys100NS": str(ticks(self.times[r]))})
        for k in ("CimClass", "CimInstanceProperties", "CimSystemProperties"):
            obj.pop(k)
        return obj

    def stamped(self, render) -> list[dict[str, str | None]]:
        """``Select-Object @{n='Timestamp';e={Get-Date}},*``: one Get-Date per poll."""
        return [{"Timestamp": render(self.times[r]), **self.cim(r)} for r in range(len(self.records))]

    def objects(self) -> list[dict[str, str | None]]:
        return [self.cim(r) for r in range(len(self.records))]

    def utc_ns(self) -> list[int]:
        return [(t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1) * 1000
                for t in self.times]


def local(zone):
    return lambda render: (lambda when: render(when.astimezone(zone)))


PLAIN = Log()
HOSTS = Log(hosts=("SRV-ISCSI01", "SRV-ISCSI02"))
GWMI = Log(hosts=("SRV-ISCSI01",))
ANSI = Log(hosts=("SRV-MÜNCHEN",))
STAMPED_COLUMNS = ["Timestamp", *CIM_COLUMNS]


def shapes() -> dict[str, tuple[bytes, Log, dict, bool]]:
    """name: (file bytes, the log it holds, read_cim_csv options, whether it has times)."""
    cim = export(PLAIN.objects(), CIM_COLUMNS, type_name=CIM_TYPE)
    per_poll = [export(PLAIN.objects()[i: i + PLAIN.k], CIM_COLUMNS, type_name=CIM_TYPE)
                for i in range(0, len(PLAIN.records), PLAIN.k)]
    de_culture = local(BERLIN)(de_de)
    us_culture = local(NEW_YORK)(en_us)
    select = ["InstanceName", *PROPS]
    return {
        "ps51 cim default": (cim.encode("ascii"), PLAIN, {}, False),
        "ps51 utf-8 bom": (b"\xef\xbb\xbf" + cim.encode("utf-8"), PLAIN, {}, False),
        "ps51 convertto-csv utf-16": (cim.encode("utf-16-le").join([b"\xff\xfe", b""]), PLAIN, {}, False),
        "utf-16 big-endian": (b"\xfe\xff" + cim.encode("utf-16-be"), PLAIN, {}, False),
        "ps51 gwmi": (export([GWMI.wmi(r) for r in range(len(GWMI.records))], WMI_COLUMNS,
                             type_name=WMI_TYPE).encode("ascii"), GWMI, {}, True),
        "ps51 use-culture de-DE": (export(PLAIN.objects(), CIM_COLUMNS, type_name=CIM_TYPE,
                                          delimiter=";").encode("ascii"), PLAIN, {}, False),
        "ps51 get-date en-US": (export(PLAIN.stamped(us_culture), STAMPED_COLUMNS, type_name=SELECTED).encode(),
                                PLAIN, {"timestamp_format": "%m/%d/%Y %I:%M:%S %p",
                                        "timezone": "America/New_York"}, True),
        "ps51 get-date de-DE": (export(PLAIN.stamped(de_culture), STAMPED_COLUMNS, type_name=SELECTED,
                                       delimiter=";").encode(),
                                PLAIN, {"timestamp_format": "%d.%m.%Y %H:%M:%S", "timezone": "Europe/Berlin"}, True),
        "ps51 format o": (export(PLAIN.stamped(local(BERLIN)(round_trip)), STAMPED_COLUMNS,
                                 type_name=SELECTED).encode(), PLAIN, {}, True),
        "ps51 concatenated get-content": ("".join(per_poll).encode("utf-16-le").join([b"\xff\xfe", b""]), PLAIN,
                                          {}, False),
        "ps51 concatenated copy /b": ("".join(per_poll).encode("ascii"), PLAIN, {}, False),
        "ps51 two hosts": (export(HOSTS.objects(), CIM_COLUMNS, type_name=CIM_TYPE).encode("ascii"), HOSTS, {},
                           False),
        "ps51 cp1252 host": (export(ANSI.objects(), CIM_COLUMNS, type_name=CIM_TYPE).encode("cp1252"), ANSI, {},
                             False),
        "ps7 default": (export(PLAIN.objects(), CIM_COLUMNS, type_name=None).encode(), PLAIN, {}, False),
        "ps7 usequotes asneeded": (export(PLAIN.objects(), CIM_COLUMNS, type_name=None,
                                          quotes="AsNeeded").encode(), PLAIN, {}, False),
        "ps7 usequotes never": (export([{c: o[c] for c in select} for o in PLAIN.objects()], select,
                                       type_name=None, quotes="Never").encode(), PLAIN, {}, False),
        "ps7 include-type utc iso": (export(PLAIN.stamped(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")),
                                            STAMPED_COLUMNS, type_name=CIM_TYPE).encode(), PLAIN, {}, True),
    }


SHAPES = shapes()


def read(data: bytes, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CimCsvWarning)
        return read_cim_csv(data, **options)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_shape_reads_the_records_it_was_made_from(shape):
    data, log, options, timed = SHAPES[shape]
    assert detect(ByteSource(data)).name == "cim-csv"
    cap = read(data, **options)
    assert cap.records.tobytes() == log.records.tobytes()
    hosted = any(log.hosts)
    want_names = [f"{h} {n}" if h else n for h, n in zip(log.row_hosts, log.names)]
    assert cap.instances.tolist() == [want_names[r % log.k] for r in range(len(cap))]
    if not hosted:  # a host column of empty cells (a local query): hosts "", labels the bare names
        assert cap.instance_hosts is None or set(cap.instance_hosts) == {""}
    if hosted:
        assert cap.instance_hosts == tuple(log.row_hosts)
        assert cap.bare_names() == tuple(log.names)
    if timed:
        assert cap.timestamps is not None and cap.timestamps.view(np.int64).tolist() == log.utc_ns()
    else:
        assert cap.timestamps is None


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("block,chunk", [(7, 1), (64, 5), (1000, 3)])
def test_each_shape_streams_in_small_blocks_to_the_same_result(shape, block, chunk):
    data, log, options, timed = SHAPES[shape]
    whole = read(data, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CimCsvWarning)
        reader = CimCsvReader(ByteSource(data), chunk_records=chunk, **options)
        reader._block = block
        chunks = list(reader)
    assert all(len(c) <= chunk for c in chunks)
    got = concat(chunks)
    assert got.records.tobytes() == whole.records.tobytes()
    assert got.instance_codes.tolist() == whole.instance_codes.tolist()
    assert got.instance_names == whole.instance_names and got.instance_hosts == whole.instance_hosts
    assert (got.timestamps is None) == (whole.timestamps is None)
    if got.timestamps is not None:
        assert got.timestamps.view(np.int64).tolist() == whole.timestamps.view(np.int64).tolist()


def test_two_hosts_report_per_host_truth():
    """Get-CimInstance -ComputerName SRV1,SRV2: equal PDO names, told apart by PSComputerName."""
    data = SHAPES["ps51 two hosts"][0]
    stats = scan(CimCsvReader(ByteSource(data)), on_decrease="auto")
    assert stats.restarts == [0] * len(COUNTERS)
    per_instance = HOSTS.values.reshape(-1, HOSTS.k, 21)
    truth = [int((per_instance[-1, :, FIELD_NAMES.index(c)] - per_instance[0, :, FIELD_NAMES.index(c)]).sum())
             for c in COUNTERS]
    assert stats.increase == truth
    # what merging the hosts did before: the other host's values read as restarts
    merged = read(data.replace(b'"SRV-ISCSI02"', b'"SRV-ISCSI01"'))
    assert len(merged.instance_names) == 2
    assert sum(scan(CimCsvReader(ByteSource(data.replace(b'"SRV-ISCSI02"', b'"SRV-ISCSI01"')))).restarts) > 0


def test_gwmi_times_come_from_timestamp_sys100ns_with_a_note():
    data = SHAPES["ps51 gwmi"][0]
    reader = CimCsvReader(ByteSource(data))
    assert reader.has_timestamps
    assert reader.notes == [f"{reader.name}: times from column Timestamp_Sys100NS (FILETIME ticks, UTC)"]
    cap = concat(list(reader))
    assert cap.timestamps.view(np.int64).tolist() == GWMI.utc_ns()


def test_a_timestamp_column_is_found_by_name_with_a_note():
    data = SHAPES["ps51 format o"][0].replace(b'"Timestamp"', b'"TimeStamp"', 1)
    reader = CimCsvReader(ByteSource(data))
    assert "'TimeStamp' (pass timestamp_column= to choose another)" in reader.notes[0]
    cap = concat(list(reader))
    assert cap.timestamps.view(np.int64).tolist() == PLAIN.utc_ns()


def test_cp1252_is_assumed_with_one_warning_and_encoding_chooses():
    data = SHAPES["ps51 cp1252 host"][0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cap = read_cim_csv(data)
    said = [w for w in caught if issubclass(w.category, CimCsvWarning)]
    assert len(said) == 1 and "cp1252" in str(said[0].message) and "encoding=" in str(said[0].message)
    assert cap.instance_hosts[0] == "SRV-MÜNCHEN"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_cim_csv(data, encoding="cp1252").instance_hosts == cap.instance_hosts
        # cp1250 (Central Europe) reads the byte 0xdc as Ü too; cp1251 makes it Cyrillic
        assert read_cim_csv(data, encoding="cp1251").instance_hosts[0] == "SRV-MЬNCHEN"


def test_culture_dates_are_never_guessed():
    data = SHAPES["ps51 get-date en-US"][0]
    with pytest.raises(CimCsvFormatError, match=r"line 3, column 1 \(Timestamp\): '6/2/2024 8:00:00 PM' is a "
                                                r"culture date.*pass timestamp_format=.*'%m/%d/%Y %I:%M:%S %p'"):
        read(data)
    de = SHAPES["ps51 get-date de-DE"][0]
    with pytest.raises(CimCsvFormatError, match=r"'03\.06\.2024 02:00:00' .*'%d\.%m\.%Y %H:%M:%S' \(day first"):
        read(de)
    with pytest.raises(CimCsvFormatError, match="does not match timestamp_format="):
        read(data, timestamp_format="%d.%m.%Y %H:%M:%S")


def test_naive_times_without_a_zone_are_utc_with_one_warning():
    log = PLAIN
    data = export(log.stamped(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S")), STAMPED_COLUMNS, type_name=None).encode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cap = read_cim_csv(data)
    said = [str(w.message) for w in caught if issubclass(w.category, CimCsvWarning)]
    assert len(said) == 1 and "no UTC offset" in said[0] and "timezone=" in said[0]
    assert cap.timestamps.view(np.int64).tolist() == log.utc_ns()
    berlin = read(export(log.stamped(local(BERLIN)(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S"))), STAMPED_COLUMNS,
                         type_name=None).encode(), timezone="Europe/Berlin")
    assert berlin.timestamps.view(np.int64).tolist() == log.utc_ns()
    fixed = read(export(log.stamped(lambda t: (t + dt.timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")),
                        STAMPED_COLUMNS, type_name=None).encode(), timezone="+02:00")
    assert fixed.timestamps.view(np.int64).tolist() == log.utc_ns()


def _one_time(text: str, **options) -> int:
    rows = [{"Timestamp": text, **PLAIN.cim(0)}]
    return int(read(export(rows, STAMPED_COLUMNS, type_name=None).encode(), **options).timestamps.view(np.int64)[0])


def test_daylight_saving_rule():
    """Europe/Berlin, 2024: 31 March 02:00 -> 03:00 (02:30 never happens), 27 October 03:00 -> 02:00
    (02:30 happens twice: read as the first, summer time, UTC+2)."""
    utc = dt.datetime(2024, 10, 27, 0, 30, tzinfo=dt.timezone.utc)
    first = (utc - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(seconds=1) * 10**9
    assert _one_time("27.10.2024 02:30:00", timestamp_format="%d.%m.%Y %H:%M:%S", timezone="Europe/Berlin") == first
    assert _one_time("2024-10-27T02:30:00", timezone="Europe/Berlin") == first
    assert _one_time("2024-10-27T03:30:00", timezone="Europe/Berlin") == first + 2 * 3600 * 10**9  # UTC+1 again
    with pytest.raises(CimCsvFormatError, match=r"line 2, column 1 \(Timestamp\): '2024-03-31T02:30:00' does not "
                                                r"exist in time zone Europe/Berlin .*timezone="):
        _one_time("2024-03-31T02:30:00", timezone="Europe/Berlin")


def test_a_repeated_wall_time_is_named_in_one_warning():
    rows = [{"Timestamp": text, **PLAIN.cim(0)} for text in ("2024-10-27T02:50:00", "2024-10-27T02:10:00",
                                                             "2024-10-27T02:20:00", "2024-10-27T03:00:00")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_cim_csv(export(rows, STAMPED_COLUMNS, type_name=None).encode(), timezone="Europe/Berlin")
    said = [str(w.message) for w in caught if issubclass(w.category, CimCsvWarning)]
    assert said == ["read_cim_csv(): times in column 'Timestamp' such as '2024-10-27T02:50:00' occur twice in time zone "
                    "Europe/Berlin (the clocks go back) and are read as their first occurrence: rates across the "
                    "repeated hour are off; times with a UTC offset (Get-Date -Format o) are never ambiguous"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the hour after: no warning
        read_cim_csv(export(rows[3:], STAMPED_COLUMNS, type_name=None).encode(), timezone="Europe/Berlin")


def test_iso_with_an_offset_ignores_the_zone_and_ticks_are_utc():
    assert _one_time("2024-06-03T02:00:00.0000001+02:00", timezone="America/New_York") == \
        _one_time("2024-06-03T00:00:00Z") + 100
    assert _one_time(str(ticks(START))) == PLAIN.utc_ns()[0]


def test_a_different_header_in_mid_file_names_its_line():
    first = export(PLAIN.objects()[:2], CIM_COLUMNS, type_name=CIM_TYPE)
    other = export(PLAIN.objects()[2:4], [c for c in CIM_COLUMNS if c != "Caption"], type_name=CIM_TYPE)
    with pytest.raises(CimCsvFormatError, match=r"line 6: a header different from the first one \(line 2\)"):
        read((first + other).encode())
    with pytest.raises(CimCsvFormatError, match="line 5: the #TYPE line names class Win32_Process"):
        read((first + "#TYPE System.Management.ManagementObject#root\\cimv2\\Win32_Process\r\n").encode())


def test_the_delimiter_is_told_from_the_header_or_forced():
    data = SHAPES["ps51 use-culture de-DE"][0]
    tab = export(PLAIN.objects(), CIM_COLUMNS, type_name=CIM_TYPE, delimiter="\t").encode()
    assert read(tab).records.tobytes() == PLAIN.records.tobytes()
    with pytest.raises(CimCsvFormatError, match=r"line 2:.*delimiter ',' \(given\); pass delimiter="):
        read(data, delimiter=",")
    with pytest.raises(ValueError, match="delimiter= must be one ASCII character"):
        read(data, delimiter=";;")


def test_a_byte_cp1252_leaves_undefined_names_line_and_encoding():
    data = SHAPES["ps51 cp1252 host"][0]
    bad = data[: len(data) // 2] + data[len(data) // 2:].replace("Ü".encode("cp1252"), b"\x81", 1)
    at = bad.index(b"\x81")
    line = bad[:at].count(b"\n") + 1
    with pytest.raises(CimCsvFormatError, match=rf"line {line}: not valid cp1252 .* at byte offset {at}\); "
                                                "pass encoding="):
        read(bad)


def test_a_later_time_of_another_form_names_the_options():
    rows = [{"Timestamp": t, **PLAIN.cim(0)} for t in ("2024-06-03T00:00:00Z", "2024-06-03 00:01:00")]
    with pytest.raises(CimCsvFormatError, match=r"line 3, column 1 \(Timestamp\).*timestamp_format= or timezone="):
        read(export(rows, STAMPED_COLUMNS, type_name=None).encode())


FAST_FORMATS = ["%d.%m.%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S.%f",
                "%d-%m-%Y  %I:%M %p", "%m/%d/%Y"]


@given(st.sampled_from(FAST_FORMATS), st.datetimes(min_value=dt.datetime(1700, 1, 1)), st.booleans())
def test_the_fast_format_path_reads_as_strptime(fmt, when, unpadded):
    text = when.strftime(fmt)
    if unpadded:
        text = re.sub(r"(?<!\d)0(\d)", r"\1", text)
    fast = compile_format(fmt)
    assert fast is not None
    m = fast.fullmatch(text)
    assert m is not None and _fast_strptime(m) == dt.datetime.strptime(text, fmt)


@given(st.sampled_from(FAST_FORMATS), st.text("0123456789./-: APM", max_size=24))
def test_the_fast_format_path_refuses_what_strptime_refuses(fmt, text):
    fast = compile_format(fmt)
    try:
        want = dt.datetime.strptime(text, fmt)
    except ValueError:
        want = None
    m = fast.fullmatch(text)
    try:
        got = _fast_strptime(m) if m is not None else None
    except ValueError:
        got = None
    if m is not None or want is None:  # no match: strptime itself reads the text
        assert got == want


def test_formats_outside_the_fast_path_go_to_strptime():
    for fmt in ("%Y%m%d", "%d %B %Y", "%d.%m.%Y %H:%M:%S %z", "%d.%d", "%j"):
        assert compile_format(fmt) is None
    assert _one_time("3 June 2024 02:00:00", timestamp_format="%d %B %Y %H:%M:%S") == PLAIN.utc_ns()[0] + 2 * 3600 * 10**9
    assert _one_time("03.06.2024 02:00:00 +0200", timestamp_format="%d.%m.%Y %H:%M:%S %z") == PLAIN.utc_ns()[0]


def test_never_quoting_a_value_with_the_delimiter_says_so():
    data = export(PLAIN.objects(), CIM_COLUMNS, type_name=None, quotes="Never").encode()
    with pytest.raises(CimCsvFormatError, match=r"line 2: 39 field\(s\), the header has 36 \(an unquoted value "
                                                r"holding the delimiter ','\? .*-UseQuotes Never"):
        read(data)
