"""``report --by-instance`` and ``plot --by-instance`` on captures: each instance name (with its host)
alone, checked against the deltas of ``Capture.by_instance()``; and ``--by-instance`` and ``--from``/``--to``
through ``--scheduler`` equal to the same report made in this process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli import run

import ipsecstats
from ipsecstats import formats
from ipsecstats._capture import Capture, NameTable
from ipsecstats._generate import generate
from ipsecstats._schema import COUNTERS, FIELD_NAMES
from ipsecstats._stats import scan
from ipsecstats.formats.wnode import write_wnode

PDO = "ROOT\\ISCSIPRT\\0000_0"
T0 = np.datetime64("2024-06-03T00:00:00", "ns")


def hosts_capture(polls: int = 60, restart_at: int = 37) -> Capture:
    """Two hosts with the same PDO name plus one more PDO on the first host, one record each per
    minute; ``SRV2``'s counters start again from small values at poll ``restart_at``."""
    table = NameTable()
    keys = [(PDO, "SRV1"), (PDO, "SRV2"), ("ROOT\\ISCSIPRT\\0001_0", "SRV1")]
    codes = np.array([table.code(*keys[k % 3]) for k in range(3 * polls)], dtype=np.intp)
    records = generate(3 * polls, instances=3, seed=11)
    u = records.view("<u8").reshape(-1, len(FIELD_NAMES))
    later = np.arange(3 * polls) >= 3 * restart_at
    restart = later & (codes == 1)
    counters = [FIELD_NAMES.index(name) for name in COUNTERS]
    u[np.ix_(restart, counters)] -= u[3 * restart_at + 1, counters]  # SRV2's counters from zero again
    u[np.ix_(restart, counters)] += np.uint64(3)
    times = T0 + (np.arange(3 * polls) // 3).astype("timedelta64[m]").astype("timedelta64[ns]")
    return Capture(records, times, codes, table.names, 0, table.hosts)


def wnode_bytes(cap: Capture) -> bytes:
    return write_wnode(cap.records, cap.timestamps, [cap.instance_names[c] for c in cap.instance_codes])


def expected_increase(sub: Capture) -> list[int]:
    """Each counter's exact increase over one instance: the sum of its deltas (restarts count the new value)."""
    d = ipsecstats.deltas(sub.records, on_decrease="auto")
    return [sum(int(v) for v in d[name]) for name in COUNTERS]


@pytest.mark.parametrize("chunk_records", [None, 7, 64])
def test_each_instance_alone_equals_its_own_deltas(chunk_records):
    cap = hosts_capture()
    data = write_wnode(cap.records, cap.timestamps, list(cap.instance_names[c] for c in cap.instance_codes))
    reader = formats.open_reader(data, "wnode", chunk_records=chunk_records)
    stats = scan(reader, by_instance=True)
    names = [one.instance_names[0] for one in stats.instances]
    assert sorted(names) == sorted(cap.instance_names)
    by = cap.by_instance()
    for one in stats.instances:
        sub = by[one.instance_names[0]]
        assert one.increase == expected_increase(sub)
        u = sub.records.view("<u8").reshape(-1, len(FIELD_NAMES))
        assert one.field_min == u.min(axis=0).tolist() and one.field_max == u.max(axis=0).tolist()
        assert one.records == len(sub) == one.samples
        assert one.rows == len(sub) - 1
    totals = [sum(one.increase[k] for one in stats.instances) for k in range(len(COUNTERS))]
    assert totals == stats.increase


def test_a_restart_belongs_to_its_instance_only():
    cap = hosts_capture()
    stats = scan(formats.open_reader(wnode_bytes(cap), "wnode", chunk_records=16), by_instance=True)
    restarted = {one.instance_names[0]: sum(one.restarts) for one in stats.instances}
    assert restarted["SRV2 " + PDO] > 0
    assert restarted["SRV1 " + PDO] == 0 == restarted["SRV1 ROOT\\ISCSIPRT\\0001_0"]
    one = next(o for o in stats.instances if o.instance_names[0] == "SRV2 " + PDO)
    assert one.events and all(one.instance_label(e.instance) == "SRV2 " + PDO for e in one.events)
    assert [e.record for e in one.events] == [3 * 37 + 1]  # the record's index in the whole capture


def test_by_instance_memory_does_not_grow_with_the_log():
    """Each instance keeps a fixed number of fine bins, whatever the length of the capture."""
    from ipsecstats._stats import _INSTANCE_BINS

    cap = hosts_capture(polls=3000)
    stats = scan(formats.open_reader(wnode_bytes(cap), "wnode", chunk_records=500), by_instance=True, bins=50)
    for one in stats.instances:
        assert one.bin_counter_sums is not None and one.bin_counter_sums.shape == (50, len(COUNTERS))
        assert np.isclose(one.bin_counter_sums.sum(axis=0), one.increase).all()
    assert _INSTANCE_BINS <= 1024


def test_cli_report_by_instance_on_a_capture(tmp_path):
    cap = hosts_capture()
    path = tmp_path / "two-hosts.wnode"
    path.write_bytes(wnode_bytes(cap))
    done = run("report", str(path), "--by-instance", "--format", "json")
    assert done.returncode == 0, done.stderr
    report, = json.loads(done.stdout)["reports"]
    alone = {r["instance"]: r for r in report["by_instance"]}
    assert set(alone) == set(cap.instance_names)
    for name, r in alone.items():
        sub = cap.by_instance()[name]
        assert [r["counters"][k]["increase"] for k in COUNTERS] == expected_increase(sub)
        assert r["gauges"]["ConnectionListSize"]["max"] == int(sub.records["ConnectionListSize"].max())
    text = run("report", str(path), "--by-instance")
    assert text.returncode == 0, text.stderr
    assert "=== instance SRV2 ROOT\\ISCSIPRT\\0000_0 alone ===" in text.stdout
    assert "restart" in text.stdout.split("=== instance SRV2")[1].split("=== instance")[0]
    size = f"{path.stat().st_size:,} bytes"  # the buffers hold every instance: each section says so
    assert f"({size})" in text.stdout.splitlines()[0]
    sections = text.stdout.split("=== instance ")[1:]
    assert sections and all(f"(of the file's {size})" in s.splitlines()[1] for s in sections)


def test_cli_plot_by_instance_on_a_capture(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "two-hosts.wnode"
    path.write_bytes(wnode_bytes(hosts_capture()))
    out = tmp_path / "plot.png"
    done = run("plot", str(path), "--by-instance", "-o", str(out), "--bins", "20")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("window", [[], ["--from", "2024-06-03T00:20:00Z", "--to", "2024-06-03T00:45:00Z"]])
def test_scheduler_gives_the_same_report_with_by_instance_and_a_window(tmp_path, window):
    pytest.importorskip("dask")
    path = tmp_path / "two-hosts.wnode"
    path.write_bytes(wnode_bytes(hosts_capture()))
    here = run("report", str(path), "--by-instance", "--format", "json", *window)
    remote = run("report", str(path), "--by-instance", "--format", "json", "--scheduler", "synchronous", *window)
    assert here.returncode == remote.returncode == 0, (here.stderr, remote.stderr)
    a, b = json.loads(here.stdout)["reports"], json.loads(remote.stdout)["reports"]
    assert a == b
    if window:
        assert a[0]["records"] == 3 * 25 and a[0]["window"]["from"].startswith("2024-06-03T00:20")
        assert all(r["records"] == 25 for r in a[0]["by_instance"])


def test_scheduler_window_on_a_raw_log_uses_start_and_interval(tmp_path):
    pytest.importorskip("dask")
    path = tmp_path / "log.bin"
    path.write_bytes(generate(400, instances=2, seed=3).tobytes())
    flags = ["--stride", "2", "--start", "2024-06-03T00:00:00Z", "--interval", "60",
             "--from", "2024-06-03T01:00:00Z", "--to", "2024-06-03T02:00:00Z", "--format", "json"]
    here = run("report", str(path), *flags)
    remote = run("report", str(path), *flags, "--scheduler", "synchronous")
    assert here.returncode == remote.returncode == 0, (here.stderr, remote.stderr)
    assert json.loads(here.stdout)["reports"] == json.loads(remote.stdout)["reports"]
    assert json.loads(here.stdout)["reports"][0]["records"] == 2 * 60
    bare = run("report", str(path), "--stride", "2", "--from", "2024-06-03T01:00:00Z", "--scheduler", "synchronous")
    assert bare.returncode == 2 and "give --start ISO-8601 and --interval" in bare.stderr, bare.stderr


def test_iter_capture_window_takes_datetimes_strings_and_datetime64():
    import datetime as dt

    cap = hosts_capture()
    data = wnode_bytes(cap)
    forms = [("2024-06-03T00:10:00Z", "2024-06-03T00:20:00+00:00"),
             (dt.datetime(2024, 6, 3, 0, 10), dt.datetime(2024, 6, 3, 2, 20, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
             (T0 + np.timedelta64(10, "m"), T0 + np.timedelta64(20, "m"))]
    for lo, hi in forms:
        chunks = list(ipsecstats.iter_capture(data, "deltas", window_from=lo, window_to=hi, chunk_records=8))
        stamps = np.concatenate([c.timestamps for c in chunks])
        assert stamps.min() == T0 + np.timedelta64(11, "m")  # the first pair inside the window ends at :11
        assert stamps.max() == T0 + np.timedelta64(19, "m") and len(stamps) == 3 * 9
    with pytest.raises(ValueError, match="is not before window_to"):
        list(ipsecstats.iter_capture(data, window_from="2024-06-03T01:00:00", window_to="2024-06-03T00:00:00"))
    with pytest.raises(ValueError, match="needs times"):
        list(ipsecstats.iter_capture(generate(10).tobytes(), window_from="2024-06-03T01:00:00"))


def test_dataset_convert_with_a_window(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    pytest.importorskip("dask")
    cap = hosts_capture()
    a, b = tmp_path / "a.wnode", tmp_path / "b.wnode"
    a.write_bytes(wnode_bytes(cap))
    b.write_bytes(wnode_bytes(cap))
    out = tmp_path / "ds"
    done = run("convert", str(a), str(b), "--what", "deltas", "--from", "2024-06-03T00:10:00Z",
               "--to", "2024-06-03T00:20:00Z", "-o", f"{out}/")
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    assert table.num_rows == 2 * 3 * 9
    times = table.column("timestamp").to_numpy()
    assert times.min() == T0 + np.timedelta64(11, "m") and times.max() == T0 + np.timedelta64(19, "m")
    raw = tmp_path / "log.bin"
    raw.write_bytes(generate(20).tobytes())
    refused = run("convert", str(raw), str(raw), "--from", "2024-06-03T00:10:00Z", "-o", f"{tmp_path}/ds2/")
    assert refused.returncode == 2 and "need --start, which a Parquet dataset does not take" in refused.stderr
