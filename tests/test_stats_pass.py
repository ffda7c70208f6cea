"""The fused statistics pass (``stats_rows``, ``_stats._Fused``): both backends agree bit for bit,
and both agree with plain Python integer arithmetic (exact sums, min/max, peaks, decreases, events)."""

from __future__ import annotations

import functools
import itertools
import operator

import numpy as np
import pytest
from conftest import require_fast
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsecstats import _slow
from ipsecstats._schema import NFIELDS, RECORD_DTYPE, RECORD_SIZE

COUNTERS = np.zeros(NFIELDS, np.uint8)
COUNTERS[:16] = 1
U64 = (1 << 64) - 1
FIELDS = {"clo": 0, "chi": 21, "flo": 42, "fhi": 63, "min": 84, "max": 105, "polls": 126, "records": 127,
          "plo": 128, "phi": 149}


def _state(kernel, nbins, nevents=8):
    bins = np.zeros((nbins, kernel.STATS_BIN), np.uint64)
    bins[:, 84:105] = np.uint64(U64)
    return np.zeros(kernel.STATS_ACC, np.uint64), bins, np.zeros((nevents, 3), np.int64)


def run(kernel, recs, stride, policy, width, cuts, nevents=8, parts=3):
    """``stats_rows`` over ``recs`` cut at ``cuts`` (every piece but the first at least ``stride`` long
    after the first ``stride`` records, as the pipeline feeds it)."""
    rows = recs.view(np.uint8).reshape(-1, RECORD_SIZE)
    n = rows.shape[0]
    nbins = max((n - 1) // stride // width + 1, 1)
    acc, bins, events = _state(kernel, nbins, nevents)
    edges = [0, *cuts, n]
    prev = np.zeros((0, RECORD_SIZE), np.uint8)
    for i, (s, e) in enumerate(zip(edges[:-1], edges[1:])):
        kernel.stats_rows(rows[s:e], prev, COUNTERS, policy, stride, s, width, i == len(edges) - 2, acc, bins,
                          events, parts)
        if e >= stride:
            prev = rows[e - stride:e].copy()
    return acc, bins, events


values = st.one_of(st.integers(0, 40), st.integers(0, U64), st.sampled_from([0, 1, U64, U64 - 1, 1 << 63,
                                                                              (1 << 63) - 1, (1 << 63) + 1]))


@st.composite
def logs(draw):
    stride = draw(st.integers(1, 3))
    n = draw(st.integers(0, 24))
    flat = draw(st.lists(values, min_size=n * NFIELDS, max_size=n * NFIELDS))
    recs = np.array(flat, dtype="<u8").reshape(n, NFIELDS).view(RECORD_DTYPE)[:, 0] if n else \
        np.zeros(0, RECORD_DTYPE)
    cuts = sorted(set(draw(st.lists(st.integers(stride, max(n - 1, stride)), max_size=3)))) if n > stride else []
    cuts = [c for c in cuts if 0 < c < n]
    kept = []
    for c in cuts:  # pieces after the first at least stride long
        if not kept or c - kept[-1] >= stride:
            kept.append(c)
    if kept and n - kept[-1] < stride:
        kept.pop()
    return recs, stride, draw(st.sampled_from(["wrap", "reset", "zero", "auto"])), draw(st.integers(1, 4)), kept


@settings(max_examples=150, deadline=None)
@given(logs())
def test_the_twin_matches_exact_python_arithmetic(case):
    check(_slow, *case)


@settings(max_examples=300, deadline=None)
@given(logs())
def test_the_compiled_pass_matches_exact_python_arithmetic_and_the_twin(case):
    fast = require_fast()
    check(fast, *case)
    recs, stride, policy, width, cuts = case
    for a, b in zip(run(fast, recs, stride, policy, width, cuts), run(_slow, recs, stride, policy, width, cuts)):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("avx2", [False, True])
def test_both_vector_paths_agree_on_a_long_run(avx2):
    fast = require_fast()
    rng = np.random.default_rng(7)
    n = 5000
    u = np.cumsum(rng.integers(0, 1 << 40, size=(n, NFIELDS), dtype=np.uint64), axis=0)
    u[rng.integers(0, n, 50)] = rng.integers(0, 1 << 64, size=(50, NFIELDS), dtype=np.uint64)  # restarts, wraps
    recs = u.astype("<u8").view(RECORD_DTYPE)[:, 0]
    fast._set_vector_path(avx2)
    try:
        for stride, width in ((1, 7), (2, 300), (3, 1)):
            got = run(fast, recs, stride, "auto", width, [1000, 2500], nevents=20)
            want = run(_slow, recs, stride, "auto", width, [1000, 2500], nevents=20)
            assert all(a.tobytes() == b.tobytes() for a, b in zip(got, want))
    finally:
        fast._set_vector_path(True)


def test_sums_past_2_64_carry_exactly():
    recs = np.full((6, NFIELDS), U64, dtype="<u8").view(RECORD_DTYPE)[:, 0]
    for kernel in (_slow, require_fast()):
        acc, bins, _ = run(kernel, recs, 1, "auto", 8, [])
        assert _pair(bins, 42, 63)[0] == [6 * U64] * NFIELDS


@pytest.mark.parametrize("kernel_name", ["fast", "slow"])
def test_a_record_beyond_the_bins_is_refused(kernel_name):
    kernel = require_fast() if kernel_name == "fast" else _slow
    acc, bins, events = _state(kernel, 2)
    rows = np.zeros((5, RECORD_SIZE), np.uint8)
    with pytest.raises(ValueError, match="beyond"):
        kernel.stats_rows(rows, np.zeros((0, RECORD_SIZE), np.uint8), COUNTERS, "auto", 1, 0, 2, False, acc, bins,
                          events)
    with pytest.raises(ValueError, match="prev"):
        kernel.stats_rows(rows, np.zeros((3, RECORD_SIZE), np.uint8), COUNTERS, "auto", 2, 0, 4, False, acc, bins,
                          events)


def test_report_statistics_agree_between_the_fused_and_the_delta_path(tmp_path):
    """``scan`` of a raw log (fused) gives what the delta pipeline gives (``on_decrease="raise"`` takes
    the delta path, so compare on a log without decreases, and the decreases on a generated log)."""
    from ipsecstats import formats
    from ipsecstats._generate import generate_blocks
    from ipsecstats._stats import _GAUGE_COLS, _Scan, LogStats, scan

    data = b"".join(generate_blocks(3000, instances=3, interval=60, restarts=2, seed=5, wrap=False))
    path = tmp_path / "log.bin"
    path.write_bytes(data)
    fused = scan(formats.open_reader(str(path), "raw", stride=3), bins=64)

    # the delta path, run directly
    from ipsecstats._pipeline import iter_delta_chunks

    reader = formats.open_reader(str(path), "raw", stride=3)
    stats = LogStats(path=str(path), stride=3, on_decrease="auto", bytes_at_start=len(data), bins=64)
    acc = _Scan(stats, False)
    polls = 0
    for d in iter_delta_chunks(reader, on_decrease="auto"):
        n = len(d.chunk)
        acc.records(d.chunk.records.view("<u8").reshape(n, NFIELDS), d.sample, None)
        polls = int(d.sample[-1]) + 1
        acc.deltas(d)
    acc.finish(polls, 3)
    for name in ("records", "rows", "field_min", "field_max", "field_sum", "increase", "restarts", "wraps",
                 "event_count", "restart_event_count", "sample_count"):
        assert getattr(fused, name) == getattr(stats, name), name
    assert [(e.record, e.instance, e.sample, e.restarts, e.wraps) for e in fused.events] == \
        [(e.record, e.instance, e.sample, e.restarts, e.wraps) for e in stats.events]
    np.testing.assert_array_equal(fused.peak, stats.peak)
    np.testing.assert_array_equal(fused.quarters, stats.quarters)
    np.testing.assert_array_equal(fused.bin_counter_sums, stats.bin_counter_sums)
    np.testing.assert_array_equal(fused.bin_samples, stats.bin_samples)
    np.testing.assert_array_equal(fused.bin_gauge_sums, stats.bin_gauge_sums)
    np.testing.assert_array_equal(fused.bin_gauge_min, stats.bin_gauge_min)
    np.testing.assert_array_equal(fused.bin_gauge_max, stats.bin_gauge_max)
    np.testing.assert_array_equal(fused.bin_counter_peak, stats.bin_counter_peak)
    # the plot's band reaches the report's max
    assert fused.bin_gauge_max.max(axis=0).tolist() == [fused.field_max[g] for g in _GAUGE_COLS]


def test_by_instance_statistics_add_up_to_the_total(tmp_path):
    from ipsecstats import formats
    from ipsecstats._generate import generate_blocks
    from ipsecstats._stats import scan

    data = b"".join(generate_blocks(3003, instances=3, interval=60, restarts=3, seed=11, wrap=False))
    path = tmp_path / "log.bin"
    path.write_bytes(data)
    total = scan(formats.open_reader(str(path), "raw", stride=3), by_instance=True)
    parts = total.instances
    assert [p.instance for p in parts] == [0, 1, 2]
    assert sum(p.records for p in parts) == total.records
    for name in ("increase", "restarts", "wraps", "field_sum"):
        assert [sum(col) for col in zip(*(getattr(p, name) for p in parts))] == getattr(total, name), name
    assert [min(col) for col in zip(*(p.field_min for p in parts))] == total.field_min
    assert [max(col) for col in zip(*(p.field_max for p in parts))] == total.field_max
    # each instance alone is the stride-1 scan of its own records
    recs = np.frombuffer(data, RECORD_DTYPE)
    for k, part in enumerate(parts):
        alone = tmp_path / f"alone{k}.bin"
        alone.write_bytes(recs[k::3].tobytes())
        ref = scan(formats.open_reader(str(alone), "raw", stride=1))
        assert (part.increase, part.restarts, part.field_sum, part.rows) == \
            (ref.increase, ref.restarts, ref.field_sum, ref.rows)
        np.testing.assert_array_equal(part.peak, ref.peak)
        assert [(e.record, e.instance) for e in part.events] == [(e.record * 3 + k, k) for e in ref.events]
    restarts = sorted(e.record for p in parts for e in p.events)
    assert restarts == sorted(e.record for e in total.events)


def test_report_by_instance_in_text_and_json(tmp_path):
    import json
    import subprocess
    import sys

    from ipsecstats._generate import generate_blocks

    path = tmp_path / "log.bin"
    path.write_bytes(b"".join(generate_blocks(400, instances=2, interval=60, restarts=1, seed=3, wrap=False)))
    run = [sys.executable, "-m", "ipsecstats", "report", str(path), "--stride", "2", "--by-instance",
           "--progress", "never"]
    text = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert "=== instance 0 alone ===" in text and "=== instance 1 alone ===" in text
    data = json.loads(subprocess.run(run + ["--format", "json"], capture_output=True, text=True, check=True).stdout)
    report = data["reports"][0]
    parts = report["by_instance"]
    assert [p["instance"] for p in parts] == [0, 1]
    for name, c in report["counters"].items():
        assert sum(p["counters"][name]["increase"] for p in parts) == c["increase"]
    for name, g in report["gauges"].items():
        assert max(p["gauges"][name]["max"] for p in parts) == g["max"]


def test_the_plot_band_reaches_the_report_max(tmp_path):
    """A gauge's peak is never averaged away: the band's top in every bin count is the report's max."""
    from ipsecstats import formats
    from ipsecstats._generate import generate_blocks
    from ipsecstats._stats import _GAUGE_COLS, scan

    path = tmp_path / "log.bin"
    path.write_bytes(b"".join(generate_blocks(20000, instances=2, interval=60, restarts=0, seed=4, wrap=False)))
    for bins in (7, 500, 20000):
        stats = scan(formats.open_reader(str(path), "raw", stride=2), bins=bins)
        assert stats.bin_gauge_max is not None and stats.bin_counter_peak is not None
        assert stats.bin_gauge_max.max(axis=0).tolist() == [stats.field_max[g] for g in _GAUGE_COLS]
        assert stats.bin_gauge_min.min(axis=0).tolist() == [stats.field_min[g] for g in _GAUGE_COLS]
        np.testing.assert_array_equal(stats.bin_counter_peak.max(axis=0), stats.peak)


RECORD_COLUMNS = [*range(42, 126), 127]  # sums, min, max, records: what parts=1 fills


@settings(max_examples=100, deadline=None)
@given(logs())
def test_the_two_halves_of_the_pass_add_up_to_the_whole(case):
    """parts=1 (record statistics) and parts=2 (increases) on separate arrays give, column by
    column, what one pass gives, and leave the other's columns alone: both backends."""
    for kernel in (_slow, require_fast()):
        whole = run(kernel, *case, parts=3)
        _, records, no_events = run(kernel, *case, parts=1)
        acc, pairs, events = run(kernel, *case, parts=2)
        other = [c for c in range(kernel.STATS_BIN) if c not in RECORD_COLUMNS]
        fresh = _state(kernel, records.shape[0])[1]
        assert records[:, RECORD_COLUMNS].tobytes() == whole[1][:, RECORD_COLUMNS].tobytes()
        assert records[:, other].tobytes() == fresh[:, other].tobytes() and not no_events.any()
        assert pairs[:, other].tobytes() == whole[1][:, other].tobytes()
        assert pairs[:, RECORD_COLUMNS].tobytes() == fresh[:, RECORD_COLUMNS].tobytes()
        assert acc.tobytes() == whole[0].tobytes() and events.tobytes() == whole[2].tobytes()


@pytest.mark.parametrize("parts", [0, 4, -1])
def test_parts_out_of_range_is_the_same_error_on_both_backends(parts):
    messages = []
    for kernel in (_slow, require_fast()):
        acc, bins, events = _state(kernel, 2)
        with pytest.raises(ValueError, match="parts must be 1, 2 or 3") as info:
            kernel.stats_rows(np.zeros((1, RECORD_SIZE), np.uint8), np.zeros((0, RECORD_SIZE), np.uint8), COUNTERS,
                              "auto", 1, 0, 1, False, acc, bins, events, parts)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def expected(recs, stride, policy, width, nevents=8):
    """The same statistics in plain Python ints."""
    u = [[int(v) for v in row] for row in recs.view("<u8").reshape(-1, NFIELDS)]
    n = len(u)
    nbins = max((n - 1) // stride // width + 1, 1)
    fsum = [[0] * NFIELDS for _ in range(nbins)]
    fmin = [[U64] * NFIELDS for _ in range(nbins)]
    fmax = [[0] * NFIELDS for _ in range(nbins)]
    records = [0] * nbins
    polls: dict[int, list[int]] = {}
    restarts, wraps = [0] * NFIELDS, [0] * NFIELDS
    events = []
    restart_events = 0
    for g, row in enumerate(u):
        b = g // stride // width
        records[b] += 1
        for k, v in enumerate(row):
            fsum[b][k] += v
            fmin[b][k] = min(fmin[b][k], v)
            fmax[b][k] = max(fmax[b][k], v)
        if g < stride:
            continue
        p = u[g - stride]
        sums = polls.setdefault(g // stride, [0] * NFIELDS)
        rbits = wbits = 0
        for k in range(16):
            c, q = row[k], p[k]
            d = (c - q) % (1 << 64)
            if c < q:
                wrap = q - c >= 1 << 63
                if wrap:
                    wraps[k] += 1
                    wbits |= 1 << k
                else:
                    restarts[k] += 1
                    rbits |= 1 << k
                if policy == "reset" or (policy == "auto" and not wrap):
                    d = c
                elif policy == "zero":
                    d = 0
            sums[k] += d
        if rbits or wbits:
            events.append((g, rbits, wbits))
            restart_events += rbits != 0
    csum = [[0] * NFIELDS for _ in range(nbins)]
    peak = [[0] * NFIELDS for _ in range(nbins)]
    npolls = [0] * nbins
    for poll, sums in polls.items():
        b = poll // width
        npolls[b] += 1
        for k in range(NFIELDS):
            csum[b][k] += sums[k]
            peak[b][k] = max(peak[b][k], sums[k])
    return dict(fsum=fsum, fmin=fmin, fmax=fmax, records=records, csum=csum, peak=peak, polls=npolls,
                restarts=restarts, wraps=wraps, events=events[:nevents], event_count=len(events),
                restart_events=restart_events, rows=max(n - stride, 0))


def _pair(bins, lo, hi):
    return [[int(a) + (int(b) << 64) for a, b in zip(r[lo:lo + 21], r[hi:hi + 21])] for r in bins]


def check(kernel, recs, stride, policy, width, cuts):
    acc, bins, events = run(kernel, recs, stride, policy, width, cuts)
    want = expected(recs, stride, policy, width)
    assert _pair(bins, 42, 63) == want["fsum"]
    assert _pair(bins, 0, 21) == want["csum"]
    assert _pair(bins, 128, 149) == want["peak"]
    assert bins[:, 84:105].tolist() == want["fmin"]
    assert bins[:, 105:126].tolist() == want["fmax"]
    assert bins[:, 126].tolist() == want["polls"]
    assert bins[:, 127].tolist() == want["records"]
    assert acc[0:21].tolist() == want["restarts"]
    assert acc[21:42].tolist() == want["wraps"]
    assert int(acc[84]) == want["event_count"]
    assert int(acc[85]) == want["restart_events"]
    assert int(acc[86]) == 0  # the final call closed the pending poll
    assert int(acc[87]) == want["rows"]
    assert [tuple(e) for e in events[: len(want["events"])].tolist()] == want["events"]


@pytest.mark.parametrize("r", [1, 2, 3, 5])
def test_group_sums_add_each_group_left_to_right(r):
    from ipsecstats._stats import _group_sums

    rng = np.random.default_rng(r)
    values = rng.random((60 * r, 7)) * 10.0 ** rng.integers(-8, 8, size=(60 * r, 7))
    regular = np.arange(0, 60 * r, r)
    irregular = np.unique(np.r_[0, rng.integers(1, 60 * r, 25)])
    for starts in (regular, irregular):
        edges = [*starts.tolist(), values.shape[0]]
        # plain float adds, left to right (Python 3.12's sum() compensates, so not sum())
        want = np.array([[functools.reduce(operator.add, values[a:b, j].tolist()) for j in range(values.shape[1])]
                         for a, b in zip(edges[:-1], edges[1:])])
        assert _group_sums(values, starts).tobytes() == want.tobytes()


def test_column_stats_are_exact_on_both_backends():
    from ipsecstats import _backend
    from ipsecstats._stats import column_stats

    u = np.array([[U64] * NFIELDS, [U64 - 1] * NFIELDS, [5] * NFIELDS], dtype=np.uint64)
    u[:, 3] = [0, 1 << 63, 7]
    want = ([int(c) for c in u.astype(object).sum(axis=0)], u.min(axis=0).tolist(), u.max(axis=0).tolist())
    saved = _backend.KERNEL
    try:
        for kernel in (_slow, require_fast()):
            _backend.KERNEL = kernel
            assert column_stats(u.astype("<u8").view(RECORD_DTYPE)[:, 0]) == want
            assert column_stats(u[::-1][::-1]) == want  # any (n, 21) uint64 array
            assert column_stats(u.astype(">u8")) == want  # in either byte order
    finally:
        _backend.KERNEL = saved


@pytest.mark.parametrize("path", ["portable", "sse4.2", "avx2"])
@pytest.mark.parametrize("stride", [1, 2, 3, 5])
def test_a_fall_in_any_field_at_any_row_of_a_poll(path, stride):
    """The AVX2 path takes whole polls in which no counter fell in vectors and leaves a poll with a
    fall to the scalar loop: a fall of each field (the last one, field 20, sits alone in the sixth
    vector), at each row of a poll, on cuts that split polls, gives the twin's state bit for bit."""
    fast = require_fast()
    try:
        fast._set_vector_path(path)
    except ValueError:
        pytest.skip(f"this CPU has no {path} path")
    # steps of 2^61 + 3: bins' sums carry past 2^64, and each instance wraps once
    steps = np.cumsum(np.full((12 * stride + 7, NFIELDS), (1 << 61) + 3, np.uint64), axis=0)
    try:
        for field, n in itertools.product(range(NFIELDS), (12 * stride, 12 * stride + 7)):  # the last poll whole or not
            base = steps[:n]
            for row in (stride, stride + 1, 4 * stride - 1, n - 1):
                u = base.copy()
                u[row, field] = 1  # a restart (or a gauge's fall: no event)
                recs = u.astype("<u8").view(RECORD_DTYPE)[:, 0]
                for cuts in ([], [stride + 1], [2 * stride, 2 * stride + 3]):
                    got = run(fast, recs, stride, "auto", 3, cuts, nevents=4)
                    want = run(_slow, recs, stride, "auto", 3, cuts, nevents=4)
                    for a, b in zip(got, want):
                        assert a.tobytes() == b.tobytes(), (field, row, cuts)
    finally:
        fast._set_vector_path(True)


def _same_stats(a, b) -> None:
    for name, value in vars(a).items():
        other = getattr(b, name)
        if isinstance(value, np.ndarray):
            assert value.tobytes() == other.tobytes(), name
        else:
            assert value == other, name


@pytest.mark.parametrize("chunk_records", [997, 4096])
def test_chunks_shared_between_two_threads_give_the_one_chunk_result(tmp_path, chunk_records):
    """``scan`` of a raw log gives each chunk's record statistics to the reading thread or to
    the main one, in turn, and merges the two at the end; many small chunks, over a log long
    enough that the fine bins widen twice (at different chunks in the two threads), give
    exactly what one chunk gives."""
    from ipsecstats import formats
    from ipsecstats._stats import FINE_BINS, scan

    rng = np.random.default_rng(11)
    n = 2 * 4 * FINE_BINS + 1234  # stride 2: 4 fine-bin widths of polls, and some
    u = np.cumsum(rng.integers(0, 1 << 62, size=(n, NFIELDS), dtype=np.uint64), axis=0)  # wraps
    u[rng.integers(0, n, 30)] = rng.integers(0, 1 << 64, size=(30, NFIELDS), dtype=np.uint64)
    path = tmp_path / "log.bin"
    u.astype("<u8").tofile(path)
    got = scan(formats.open_reader(str(path), stride=2, chunk_records=chunk_records), bins=50)
    want = scan(formats.open_reader(str(path), stride=2, chunk_records=n), bins=50)
    _same_stats(got, want)


@pytest.mark.parametrize("timed", [True, False])
def test_a_capture_read_in_small_chunks_gives_the_one_chunk_result(timed):
    """The statistics of a capture (numpy accumulators whose scratch arrays are reused from chunk
    to chunk) are the same whatever the chunk size: three instances, one of which restarts, one
    missing from some polls (groups of unequal size), with and without timestamps."""
    from ipsecstats import formats, write_wnode
    from ipsecstats._generate import generate
    from ipsecstats._stats import scan

    records = generate(3 * 700, instances=3, restarts=2, seed=5)
    names = ["A", "B", "C"] * 700
    keep = np.ones(len(records), bool)
    keep[3 * np.arange(100, 160) + 2] = False  # C skips 60 polls
    t0 = np.datetime64("2024-06-03T00:00:00", "ns")
    times = t0 + (np.arange(len(records)) // 3).astype("timedelta64[m]").astype("timedelta64[ns]")
    data = write_wnode(records[keep], times[keep] if timed else None, [n for n, k in zip(names, keep) if k])
    got = scan(formats.open_reader(data, "wnode", chunk_records=7), bins=40, by_instance=True)
    want = scan(formats.open_reader(data, "wnode", chunk_records=10**6), bins=40, by_instance=True)
    assert len(got.instances) == len(want.instances) == 3
    for a, b in zip(got.instances, want.instances):
        _same_stats(a, b)
    got.instances = want.instances = None
    _same_stats(got, want)
