"""``convert --format openmetrics``: the text, and a backfill through the real ``promtool``.

The promtool tests skip only when promtool is absent and ``CI`` is not set (``.ci/run``
installs Debian's ``prometheus`` package, which brings promtool).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ipsecstats
from ipsecstats import cli
from ipsecstats._capture import InstanceLabels
from ipsecstats._export import Layout, format_for, write_table
from ipsecstats._generate import generate
from ipsecstats._openmetrics import metric_name
from ipsecstats._schema import FIELDS, RECORD_DTYPE

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None and not os.environ.get("CI"),
                                    reason="promtool not installed (apt-get install prometheus)")
SAMPLE = re.compile(r'^(\w+)\{([^}]*)\} (\S+) (\S+)$')


def test_metric_names_are_snake_case_with_the_prefix() -> None:
    assert metric_name("TotalGetSPI") == "ipsec_total_get_spi"
    assert metric_name("GetSPIFailures") == "ipsec_get_spi_failures"
    assert metric_name("ActiveAcquire") == "ipsec_active_acquire"
    assert metric_name("OakleyMainMode") == "ipsec_oakley_main_mode"
    names = [metric_name(f.name) for f in FIELDS]
    assert len(set(names)) == 21 and all(re.fullmatch(r"ipsec_[a-z_]+", n) for n in names)


def test_times_are_exact_decimal_seconds_before_and_after_1970() -> None:
    from ipsecstats._openmetrics import _seconds

    ns = np.array([0, 1, -1, -500_000_000, 1_717_372_800_250_000_000, -1_500_000_000, 10**9], np.int64)
    assert _seconds(ns) == ["0", "0.000000001", "-0.000000001", "-0.5", "1717372800.25", "-1.5", "1"]


def test_suffixes_choose_openmetrics() -> None:
    assert format_for("x.om") == format_for("x.prom") == format_for("x", "openmetrics") == "openmetrics"


def _capture_chunks(n: int = 6) -> tuple[Layout, list[tuple[Any, ...]], np.ndarray, np.ndarray]:
    """Two chunks of a capture with hosts, fractional times and a quote in a name; a counter at 2**64 - 1."""
    recs = np.zeros(n, RECORD_DTYPE)
    for j, f in enumerate(FIELDS):
        recs[f.name] = np.arange(n, dtype=np.uint64) * np.uint64(j + 1)
    recs["KeyAdditions"][-1] = 2**64 - 1
    recs["TotalGetSPI"][1] = 2**53 + 1
    stamps = (np.datetime64("2024-06-03T00:00:00", "ns") + np.arange(n) * np.timedelta64(1_250_000_000, "ns"))
    codes = np.arange(n, dtype=np.intp) % 2
    cols = {"record": np.arange(n, dtype=np.uint64), "timestamp": stamps,
            "host": InstanceLabels(codes, ("SRV1", "")), "instance": InstanceLabels(codes, ('a"b\\c', "plain"))}
    layout = Layout("records", columns={k: v[:0] for k, v in cols.items()})
    half = n // 2
    chunks = [(0, recs[:half], {k: v[:half] for k, v in cols.items()}),
              (half, recs[half:], {k: v[half:] for k, v in cols.items()})]
    return layout, chunks, recs, stamps


def test_text_groups_families_prints_exact_integers_and_ends_with_eof(tmp_path: Path) -> None:
    layout, chunks, recs, _ = _capture_chunks()
    out = tmp_path / "x.om"
    write_table(iter(chunks), out, "openmetrics", layout, RECORD_DTYPE)
    lines = out.read_text("utf-8").splitlines()
    assert lines[-1] == "# EOF" and lines.count("# EOF") == 1
    types = [line.split()[2:] for line in lines if line.startswith("# TYPE")]
    assert types == [[metric_name(f.name), f.kind] for f in FIELDS]
    family = None
    seen: list[str] = []
    for line in lines[:-1]:
        if line.startswith("# TYPE"):
            family = line.split()[2]
            seen.append(family)
            continue
        if line.startswith("# HELP"):
            continue
        name = SAMPLE.match(line).group(1)  # type: ignore[union-attr]
        assert name in (family, f"{family}_total")  # every sample under its own family
    assert len(seen) == len(set(seen)) == 21
    assert 'ipsec_key_additions_total{instance="plain"} 18446744073709551615 1717372806.25' in lines
    assert 'ipsec_total_get_spi_total{instance="plain",host="SRV1"}' not in "\n".join(lines)
    assert f'ipsec_total_get_spi_total{{instance="plain"}} {2**53 + 1} 1717372801.25' in lines
    assert 'ipsec_active_acquire{instance="a\\"b\\\\c",host="SRV1"} 0 1717372800' in lines
    assert sum(1 for line in lines if SAMPLE.match(line)) == 21 * len(recs)


def test_a_record_without_a_time_is_named(tmp_path: Path) -> None:
    layout, chunks, _, _ = _capture_chunks()
    chunks[1][2]["timestamp"][1] = np.datetime64("NaT", "ns")
    with pytest.raises(ValueError, match="record 4 has no timestamp"):
        write_table(iter(chunks), tmp_path / "x.om", "openmetrics", layout, RECORD_DTYPE)
    assert not list(tmp_path.iterdir())  # nothing half written


def test_cli_refuses_deltas_and_a_raw_log_without_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "x.bin"
    log.write_bytes(generate(8, instances=2, interval=10.0, seed=1).tobytes())
    assert cli.main([ "convert", str(log), "-o", str(tmp_path / "x.om"), "--what", "deltas",
                     "--start", "2024-06-03T00:00:00Z", "--interval", "10"]) == 2
    assert "--what records" in capsys.readouterr().err
    assert cli.main(["convert", str(log), "-o", str(tmp_path / "x.prom")]) == 2
    assert "--start and --interval" in capsys.readouterr().err
    assert not (tmp_path / "x.om").exists() and not (tmp_path / "x.prom").exists()


# --------------------------------------------------------------------------- the real promtool


def _backfill(om: Path, tmp_path: Path) -> list[tuple[str, dict[str, str], str, int]]:
    """``om`` backfilled with promtool, then dumped: (name, labels, value text, ms) per sample."""
    assert PROMTOOL is not None, "CI must have promtool (.ci/run installs the prometheus package)"
    db = tmp_path / "tsdb"
    done = subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(om), str(db)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr + done.stdout
    (db / "wal").mkdir(exist_ok=True)  # `tsdb dump` opens the WAL too
    dump = subprocess.run([PROMTOOL, "tsdb", "dump", str(db)], capture_output=True, text=True, timeout=300)
    assert dump.returncode == 0, dump.stderr
    samples = []
    for line in dump.stdout.splitlines():
        labels_text, value, ms = line.rsplit(" ", 2)
        labels = {k: re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)
                  for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels_text)}
        samples.append((labels.pop("__name__"), labels, value, int(ms)))
    return samples


def _series(samples: list[tuple[str, dict[str, str], str, int]]) -> dict[tuple[Any, ...], list[tuple[int, float]]]:
    series: dict[tuple[Any, ...], list[tuple[int, float]]] = {}
    for name, labels, value, ms in samples:
        series.setdefault((name, *sorted(labels.items())), []).append((ms, float(value)))
    return series


@needs_promtool
def test_promtool_backfills_a_generated_wnode_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wnode, om = tmp_path / "c.wnode", tmp_path / "c.om"
    assert cli.main(["generate", str(wnode), "--format", "wnode", "--records", "600", "--instances", "3",
                     "--interval", "10", "--restarts", "2", "--wrap", "--seed", "7"]) == 0
    assert cli.main(["convert", str(wnode), "-o", str(om)]) == 0, capsys.readouterr().err
    cap = ipsecstats.read_capture(wnode)
    series = _series(_backfill(om, tmp_path))
    assert len(series) == 21 * 3
    assert sum(len(v) for v in series.values()) == 21 * 600
    ms = (cap.timestamps.astype("datetime64[ms]").view(np.int64))
    for field in ("KeyAdditions", "ConnectionListSize", "AcquireFailures", "SoftAssociations"):
        kind = next(f.kind for f in FIELDS if f.name == field)
        for code, name in enumerate(cap.instance_names):
            rows = np.flatnonzero(cap.instance_codes == code)
            key = (metric_name(field) + ("_total" if kind == "counter" else ""), ("instance", name))
            want = list(zip(ms[rows].tolist(), cap.records[field][rows].astype(np.float64).tolist()))
            assert series[key] == want, (field, name)
    wrapped = [v for f in FIELDS for v in cap.records[f.name].tolist() if v > 2**60]
    assert wrapped, "the capture should hold a counter near 2**64"


@needs_promtool
def test_promtool_backfills_a_raw_log_and_a_capture_with_hosts(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    log, om = tmp_path / "x.bin", tmp_path / "x.prom"
    recs = generate(40, instances=2, interval=10.0, restarts=1, seed=3)
    log.write_bytes(recs.tobytes())
    assert cli.main(["convert", str(log), "-o", str(om), "--stride", "2", "--start", "2024-06-03T00:00:00.5Z",
                     "--interval", "2.5"]) == 0, capsys.readouterr().err
    series = _series(_backfill(om, tmp_path / "a"))
    assert len(series) == 42
    got = series[("ipsec_oakley_quick_mode_total", ("instance", "1"))]
    base = 1717372800500
    assert got == [(base + 2500 * k, float(recs["OakleyQuickMode"][2 * k + 1])) for k in range(20)]

    layout, chunks, recs2, stamps = _capture_chunks(8)
    om2 = tmp_path / "h.om"
    write_table(iter(chunks), om2, "openmetrics", layout, RECORD_DTYPE)
    series = _series(_backfill(om2, tmp_path / "b"))
    assert len(series) == 42
    ms = stamps.astype("datetime64[ms]").view(np.int64).tolist()
    got = series[("ipsec_key_additions_total", ("host", "SRV1"), ("instance", 'a"b\\c'))]
    assert got == [(ms[i], float(recs2["KeyAdditions"][i])) for i in range(0, 8, 2)]
    got = series[("ipsec_key_additions_total", ("instance", "plain"))]
    assert got[-1] == (ms[7], float(2**64 - 1))
