"""PDH-CSV logs across daylight-saving changes: ``timezone`` (``--timezone``) against the header's bias.

Perfmon stamps rows in local wall time. The logs here are written the way pdh does: each
sample's UTC instant turned into the zone's wall time, so the repeated hour repeats and the
skipped hour is skipped. Read with the zone, every instant comes back exactly.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
import zoneinfo

import numpy as np
import pytest
from test_cli import one_error_line, run
from test_pdhcsv import pdh_log

from ipsecstats._generate import generate
from ipsecstats._source import ByteSource
from ipsecstats.formats._wallclock import WallClock, WallTimeError
from ipsecstats.formats.pdhcsv import PdhCsvFormatError, PdhCsvReader, PdhCsvWarning, read_pdh_csv

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
NS = 10**9
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def utc_ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


def walls(instants: np.ndarray, zone: dt.tzinfo) -> np.ndarray:
    """The local wall times (datetime64[ns], ms precision) pdh writes for UTC ``instants`` (int64 ns)."""
    out = []
    for ns in instants.tolist():
        local = (EPOCH + dt.timedelta(seconds=ns // NS)).astimezone(zone).replace(tzinfo=None)  # any year, any OS
        out.append(np.datetime64(local, "ns") + np.timedelta64(ns % NS, "ns"))
    return np.array(out, "datetime64[ns]")


def zone_log(instants: np.ndarray, zone: dt.tzinfo, *, k: int = 1, bias: int | None = None) -> tuple[bytes, np.ndarray]:
    """A log of ``k`` instances sampled at ``instants`` (ns UTC, ms precision); its records."""
    recs = generate(len(instants) * k, instances=k, seed=len(instants))
    first = (EPOCH + dt.timedelta(seconds=int(instants[0]) // NS)).astimezone(zone).utcoffset()
    assert first is not None
    bias = -int(first.total_seconds()) // 60 if bias is None else bias
    return pdh_log(recs, k, names=tuple(f"PDO{i}" for i in range(k)), bias=bias, times=walls(instants, zone),
                   others=False), recs


def read(data: bytes, **kw) -> tuple:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cap = read_pdh_csv(data, **kw)
    return cap, [str(w.message) for w in seen if issubclass(w.category, PdhCsvWarning)]


def every(start: str, count: int, step_s: float) -> np.ndarray:
    return utc_ns(start) + (np.arange(count) * round(step_s * 1000)).astype(np.int64) * 10**6


# --------------------------------------------------------------------------- the repeated hour


def test_fall_back_with_the_zone_keeps_every_instant_and_rate() -> None:
    # 2024-11-03: New York's clocks go back from 02:00 EDT to 01:00 EST (06:00 UTC)
    instants = every("2024-11-03T04:30:00", 19, 600)  # 00:30 EDT .. 02:30 EST, 10 min apart
    data, recs = zone_log(instants, NEW_YORK)
    cap, seen = read(data, timezone="America/New_York")
    assert seen == []
    assert cap.timestamps.astype(np.int64).tolist() == instants.tolist()
    rates = cap.rates()[cap.instance_names[0]]
    assert not np.isnan(rates["OakleyMainMode"].astype(float)).any()


def test_fall_back_without_the_zone_warns_and_leaves_that_interval_without_rate() -> None:
    instants = every("2024-11-03T04:30:00", 19, 600)
    data, _ = zone_log(instants, NEW_YORK)
    cap, seen = read(data)
    times = cap.timestamps.astype(np.int64)
    steps = np.diff(times) // NS
    # the header's bias (240: EDT) throughout: the repeated hour's second pass lands an hour early
    back = int(np.flatnonzero(steps < 0)[0]) + 1
    assert steps[back - 1] == 600 - 3600
    assert len(seen) == 1
    assert f"the time goes back 1 time(s), first at line {back + 2} (by 0:50:00)" in seen[0]
    assert "timezone=" in seen[0] and "daylight-saving" in seen[0]
    rates = cap.rates()[cap.instance_names[0]]
    assert np.isnan(rates["OakleyMainMode"][back - 1])


def test_hourly_samples_on_the_repeated_hour_are_an_hour_apart() -> None:
    # 01:30 EDT and 01:30 EST have the same wall time: the second is the later instant
    instants = every("2024-11-03T04:30:00", 4, 3600)  # 00:30 EDT, 01:30 EDT, 01:30 EST, 02:30 EST
    data, _ = zone_log(instants, NEW_YORK)
    assert data.count(b"11/03/2024 01:30:00.000") == 2
    cap, _ = read(data, timezone="America/New_York")
    assert cap.timestamps.astype(np.int64).tolist() == instants.tolist()


@pytest.mark.parametrize("rows_per_chunk", [1, 2, 3, 7])
def test_the_repeated_hour_across_chunk_boundaries(rows_per_chunk: int) -> None:
    instants = every("2024-11-03T05:00:00", 25, 300)  # 01:00 EDT .. 02:00 EST, 5 min apart
    data, _ = zone_log(instants, NEW_YORK, k=2)
    reader = PdhCsvReader(ByteSource(data), timezone="America/New_York", chunk_records=2 * rows_per_chunk)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chunks = list(reader)
    assert len(chunks) >= -(-25 // rows_per_chunk)  # the repeated hour is cut between chunks
    times = np.concatenate([c.timestamps.astype(np.int64) for c in chunks])
    assert times.tolist() == np.repeat(instants, 2).tolist()


# --------------------------------------------------------------------------- the skipped hour


def test_spring_forward_with_the_zone_keeps_the_real_step() -> None:
    # 2024-03-10: New York's clocks skip from 02:00 EST to 03:00 EDT (07:00 UTC)
    instants = every("2024-03-10T06:50:00", 4, 300)  # 01:50 EST, 01:55 EST, 03:00 EDT, 03:05 EDT
    data, recs = zone_log(instants, NEW_YORK)
    cap, seen = read(data, timezone="America/New_York")
    assert seen == [] and np.diff(cap.timestamps.astype(np.int64)).tolist() == [300 * NS] * 3
    without, seen = read(data)
    assert seen == []  # a step forward cannot be told from a pause in the log: hence timezone=
    assert np.diff(without.timestamps.astype(np.int64)).tolist() == [300 * NS, 3900 * NS, 300 * NS]


def test_a_time_the_zone_skips_is_an_error_naming_the_line() -> None:
    # the log was written in UTC-05:00 all year round, read as New York's
    fixed = dt.timezone(dt.timedelta(hours=-5))
    instants = every("2024-03-10T06:50:00", 6, 600)  # 01:50 .. 02:40 local: 02:00-02:59 does not exist in New York
    data, _ = zone_log(instants, fixed)
    with pytest.raises(PdhCsvFormatError) as err:
        read_pdh_csv(data, timezone="America/New_York")
    assert err.value.line == 3 and err.value.column == 1
    assert str(err.value).endswith("line 3, column 1: 2024-03-10 02:00:00 does not exist in time zone America/New_York "
                                   "(the clocks skip over it); is timezone= America/New_York the zone the log was "
                                   "written in?")
    cap, seen = read(data, timezone="-05:00")
    assert seen == [] and cap.timestamps.astype(np.int64).tolist() == instants.tolist()


# --------------------------------------------------------------------------- the header against the zone


def test_a_header_bias_that_disagrees_with_the_zone_is_named() -> None:
    instants = every("2024-07-01T12:00:00", 3, 60)
    data, _ = zone_log(instants, NEW_YORK, bias=300)  # says EST in July
    cap, seen = read(data, timezone="America/New_York")
    assert cap.timestamps.astype(np.int64).tolist() == instants.tolist()
    assert seen == ["read_pdh_csv(): the header's time zone 'Eastern Daylight Time' is UTC-05:00 (bias 300 "
                    "minutes), but America/New_York is UTC-04:00 at line 2: times follow timezone="]


def test_an_offset_with_seconds_is_shown_whole() -> None:
    instants = np.array([utc_ns("1880-06-01T17:00:00")])  # New York's local mean time: UTC-04:56:02
    data, _ = zone_log(instants, NEW_YORK, bias=300)
    cap, seen = read(data, timezone="America/New_York")
    assert cap.timestamps.astype(np.int64).tolist() == instants.tolist()
    assert seen == ["read_pdh_csv(): the header's time zone 'Eastern Daylight Time' is UTC-05:00 (bias 300 "
                    "minutes), but America/New_York is UTC-04:56:02 at line 2: times follow timezone="]


def test_times_that_go_back_are_counted_across_chunks() -> None:
    instants = every("2024-06-03T12:00:00", 6, 10)
    data, _ = zone_log(instants, dt.timezone.utc)
    lines = data.split(b"\r\n")
    lines[3], lines[5] = lines[5], lines[3]  # rows 2 and 4 swapped: back at lines 4 and 6
    for records in (1, 2, 16384):
        reader = PdhCsvReader(ByteSource(b"\r\n".join(lines)), chunk_records=records)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            list(reader)
        assert [str(w.message).split(":", 1)[1].split(": ", 1)[0] for w in seen] == \
               [" the time goes back 2 time(s), first at line 5 (by 0:00:10)"], records


# --------------------------------------------------------------------------- many zones, exactly


@pytest.mark.parametrize("zone,around,change", [
    ("America/New_York", "2024-11-03T06:00:00", 3600), ("America/New_York", "2024-03-10T07:00:00", 3600),
    ("Europe/Berlin", "2024-10-27T01:00:00", 3600), ("Europe/Berlin", "2024-03-31T01:00:00", 3600),
    ("Australia/Lord_Howe", "2024-04-06T15:00:00", 1800),   # a 30-minute change
    ("Europe/Dublin", "2024-10-27T01:00:00", 3600),          # tzdata's negative DST in winter
    ("America/Santiago", "2024-04-07T03:00:00", 3600), ("Asia/Kolkata", "2024-01-01T00:00:00", 3600),
    ("Pacific/Apia", "2011-12-30T10:00:00", 86400),          # a whole day skipped
])
def test_instants_come_back_exactly_through_wall_time(zone: str, around: str, change: int) -> None:
    # exact whenever samples are at most the change apart (see the next test for wider steps)
    rng = np.random.default_rng([ord(c) for c in zone + around])
    tz = zoneinfo.ZoneInfo(zone)
    for _ in range(6):
        step = float(rng.choice([s for s in (1, 7.5, 60, 599, 1800, 3600) if s <= change]))
        count = int(rng.integers(2, 40))
        start = utc_ns(around) - int(rng.integers(0, count)) * round(step * 1000) * 10**6
        instants = start + (np.arange(count) * round(step * 1000)).astype(np.int64) * 10**6
        data, recs = zone_log(instants, tz, k=int(rng.integers(1, 3)))
        reader = PdhCsvReader(ByteSource(data), timezone=zone, chunk_records=int(rng.integers(1, 9)))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            times = np.concatenate([c.timestamps.astype(np.int64) for c in reader])
        assert np.unique(times).tolist() == instants.tolist(), (zone, step, count)


def test_samples_wider_apart_than_the_change_take_the_first_occurrence() -> None:
    # Lord Howe goes back 30 minutes at 02:00 (+11:00 to +10:30, at 15:00 UTC). Hourly samples
    # at 14:00 and 15:00 UTC are written 01:00 and 01:30: 01:30 is also 14:30 UTC, half an hour
    # on, and nothing in the log tells the two apart. The first occurrence is taken.
    tz = zoneinfo.ZoneInfo("Australia/Lord_Howe")
    instants = every("2024-04-06T14:00:00", 3, 3600)
    data, _ = zone_log(instants, tz)
    assert b"04/07/2024 01:00:00.000" in data and b"04/07/2024 01:30:00.000" in data
    cap, seen = read(data, timezone="Australia/Lord_Howe")
    assert seen == []
    assert cap.timestamps.astype(np.int64).tolist() == [instants[0], instants[1] - 1800 * NS, instants[2]]


def test_a_log_that_starts_in_the_repeated_hour_takes_the_header_bias() -> None:
    instants = every("2024-11-03T06:10:00", 3, 600)  # 01:10, 01:20, 01:30 EST: also times of EDT
    data, _ = zone_log(instants, NEW_YORK)
    assert b"(300)" in data.split(b"\r\n", 1)[0]
    cap, seen = read(data, timezone="America/New_York")
    assert seen == [] and cap.timestamps.astype(np.int64).tolist() == instants.tolist()
    data, _ = zone_log(instants - 3600 * NS, NEW_YORK)  # 01:10 EDT: the header says 240
    cap, seen = read(data, timezone="America/New_York")
    assert seen == [] and cap.timestamps.astype(np.int64).tolist() == (instants - 3600 * NS).tolist()


def test_the_wall_clock_alone() -> None:
    clock = WallClock(NEW_YORK)
    local = np.array([utc_ns("2024-11-03T01:59:59"), utc_ns("2024-11-03T01:00:00")])
    assert (clock.to_utc(local) - local).tolist() == [4 * 3600 * NS, 5 * 3600 * NS]
    assert clock.last == local[1] + 5 * 3600 * NS
    assert clock.to_utc(np.array([utc_ns("2024-11-03T01:00:00")])).tolist() == [clock.last]  # fold 1 still
    with pytest.raises(WallTimeError) as err:
        WallClock(NEW_YORK).to_utc(np.array([0, utc_ns("2024-03-10T02:00:00")]))
    assert err.value.index == 1
    near_end = np.array([2**63 - 1 - 3600 * NS], np.int64)
    with pytest.raises(WallTimeError, match="outside the datetime64"):
        WallClock(dt.timezone(dt.timedelta(hours=-2))).to_utc(near_end)
    assert WallClock(dt.timezone.utc).to_utc(np.empty(0, np.int64)).size == 0


# --------------------------------------------------------------------------- the command line


def test_command_line_timezone_reaches_the_perfmon_reader(tmp_path) -> None:
    instants = every("2024-11-03T04:30:00", 19, 600)
    data, _ = zone_log(instants, NEW_YORK)
    path = tmp_path / "dst.csv"
    path.write_bytes(data)
    plain = run("report", str(path), "--format", "json")
    assert plain.returncode == 0 and "the time goes back 1 time(s)" in plain.stderr
    assert "--timezone with the zone" in plain.stderr
    zoned = run("report", str(path), "--format", "json", "--timezone", "America/New_York")
    assert zoned.returncode == 0 and zoned.stderr == "", zoned.stderr
    report = json.loads(zoned.stdout)
    assert report["reports"][0]["start"].startswith("2024-11-03T04:30:00")
    bad = run("info", str(path), "--timezone", "Mars/Olympus")
    assert bad.returncode == 2 and "no such time zone" in bad.stderr
    refused = run("info", str(path), "--delimiter", ";", "--timezone", "UTC")
    one_error_line(refused.stderr, "--delimiter applies to --input-format cim-csv only",
                   "perfmon PDH-CSV/TSV (detected")

