"""Raw WMI buffers: read_wnode and the streaming WnodeReader beside the raw-record paths.

Input: ``IPSECSTATS_BENCH_RECORDS`` records (default 2,000,000: 1,000,000 samples of 2
instances), one WNODE_ALL_DATA per sample (fixed instance size, PnP-style UTF-16 names,
a FILETIME per sample), buffers back to back, as ``write_wnode`` lays them out. The smoke
pass (``--benchmark-disable``) shrinks it to a few thousand records.

The raw-record path is ``decode(raw, copy=True)`` of the same records as contiguous
168-byte blocks (no time, no names). ``extra_info`` holds ``records_per_s`` and, for
read_wnode, ``x_raw``: raw-path time / read_wnode time (1.0 = as fast as the raw path).

Streaming: ``WnodeReader`` over a WNODE file, chunks consumed and dropped, beside
``RawReader`` over a file of the same records (``x_raw`` printed and kept). Peak memory:
``VmHWM`` of consuming the stream of a quarter of the file and of the whole file, reset
before each through ``/proc/self/clear_refs`` (``ru_maxrss`` cannot be reset): it must not
grow with the file.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import LARGE, SMOKE, cached_log, run, smoke

import ipsecstats
from ipsecstats import _backend, _slow
from ipsecstats._source import ByteSource
from ipsecstats.formats import raw as raw_format
from ipsecstats.formats import wnode

INSTANCES = ("PCI\\VEN_8086&DEV_10FB&SUBSYS_000C8086&REV_01\\4&1B2C3D4E&0&0010_0",
             "ROOT\\ISCSIPRT\\0000_0")
TWIN_MAX_RECORDS = 100_000  # the pure walker is a Python loop per WNODE: time a slice
_RAW_MEDIAN: dict[int, float] = {}
_RAW_STREAM_MEDIAN: dict[int, float] = {}
_INPUTS: dict[int, tuple[bytes, bytes]] = {}


def inputs(n: int) -> tuple[bytes, bytes]:
    """(raw records, WNODE buffers) holding the same n records, 2 instances per sample."""
    if n not in _INPUTS:
        records = cached_log(n)
        samples = n // len(INSTANCES)
        stamps = np.datetime64("2024-01-01T00:00:00", "ns") + np.arange(samples) * np.timedelta64(10, "s")
        wnode = ipsecstats.write_wnode(records, np.repeat(stamps, len(INSTANCES)), INSTANCES * samples)
        _INPUTS[n] = (records.view(np.uint8).tobytes(), wnode)
    return _INPUTS[n]


@pytest.fixture(scope="module")
def nrecords(request: pytest.FixtureRequest) -> int:
    n = SMOKE if smoke(request.config) else LARGE
    return n - n % len(INSTANCES)


def _records_per_s(benchmark, n: int) -> float | None:
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return None
    rate = n / stats.stats.median
    benchmark.extra_info["records_per_s"] = rate
    return stats.stats.median


def bench_raw_records_decode(benchmark, nrecords):
    raw, _ = inputs(nrecords)
    out = run(benchmark, lambda: ipsecstats.decode(raw, copy=True), op="records from bytes",
              impl="raw decode(copy=True)", nbytes=len(raw))
    assert out.shape == (nrecords,)
    median = _records_per_s(benchmark, nrecords)
    if median is not None:
        _RAW_MEDIAN[nrecords] = median


def bench_read_wnode(benchmark, nrecords):
    raw, wnode = inputs(nrecords)
    benchmark.extra_info["wnode_bytes"] = len(wnode)
    cap = run(benchmark, lambda: ipsecstats.read_wnode(wnode), op="records from bytes",
              impl=f"read_wnode ({_backend.BACKEND})", nbytes=len(raw))
    assert len(cap) == nrecords and cap.records.tobytes() == raw
    assert cap.instance_names == INSTANCES
    median = _records_per_s(benchmark, nrecords)
    if median is not None and nrecords in _RAW_MEDIAN:
        benchmark.extra_info["x_raw"] = _RAW_MEDIAN[nrecords] / median


def bench_read_wnode_twin(benchmark, nrecords, monkeypatch):
    monkeypatch.setattr(_backend, "KERNEL", _slow)
    n = min(nrecords, TWIN_MAX_RECORDS)
    raw, wnode = inputs(n)
    cap = run(benchmark, lambda: ipsecstats.read_wnode(wnode), op="records from bytes",
              impl="read_wnode (pure twin)", nbytes=len(raw), rounds=3)
    assert len(cap) == n
    _records_per_s(benchmark, n)


# --- streaming -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(nrecords, tmp_path_factory) -> tuple[str, str]:
    """(raw records file, WNODE file) of the same records."""
    raw, data = inputs(nrecords)
    folder = tmp_path_factory.mktemp("stream")
    paths = (str(folder / "records.bin"), str(folder / "capture.wnode"))
    for path, content in zip(paths, (raw, data)):
        with open(path, "wb") as f:
            f.write(content)
    return paths


def _consume(reader) -> int:
    n = 0
    for chunk in reader:
        n += len(chunk)
    return n


def bench_stream_raw_records(benchmark, nrecords, files):
    n = run(benchmark, lambda: _consume(raw_format.RawReader(ByteSource(files[0]))), op="stream from a file",
            impl="RawReader", nbytes=nrecords * 168)
    assert n == nrecords
    median = _records_per_s(benchmark, nrecords)
    if median is not None:
        _RAW_STREAM_MEDIAN[nrecords] = median


def bench_stream_wnode(benchmark, nrecords, files):
    n = run(benchmark, lambda: _consume(wnode.WnodeReader(ByteSource(files[1]))), op="stream from a file",
            impl=f"WnodeReader ({_backend.BACKEND})", nbytes=nrecords * 168)
    assert n == nrecords
    median = _records_per_s(benchmark, nrecords)
    if median is not None and nrecords in _RAW_STREAM_MEDIAN:
        ratio = _RAW_STREAM_MEDIAN[nrecords] / median
        benchmark.extra_info["x_raw"] = ratio
        print(f"\nWnodeReader: {nrecords / median:,.0f} records/s, RawReader: "
              f"{nrecords / _RAW_STREAM_MEDIAN[nrecords]:,.0f} records/s, x_raw {ratio:.2f}")


_PEAK_SCRIPT = """
import re, sys
from ipsecstats._source import ByteSource
from ipsecstats.formats import wnode

def vm(field):
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\\s+(\\d+) kB", f.read(), re.M).group(1))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM to the current RSS
before = vm("VmRSS")
n = sum(len(chunk) for chunk in wnode.WnodeReader(ByteSource(sys.argv[1])))
print(n, (vm("VmHWM") - before) / 1024)
"""


def _stream_peak_mib(path: str, nrecords: int) -> float:
    """Peak RSS above the RSS before, in MiB, of consuming the stream of ``path`` in a fresh
    process (this one holds the inputs, and its allocator keeps freed memory)."""
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, path], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    n, mib = out.stdout.split()
    assert int(n) == nrecords
    return float(mib)


def bench_stream_wnode_peak_memory(benchmark, nrecords, files, tmp_path):
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs /proc/self/clear_refs (Linux)")
    _, data = inputs(nrecords)
    quarter = str(tmp_path / "quarter.wnode")
    with open(quarter, "wb") as f:  # equal WNODEs back to back: any whole number of them is a capture
        per_node = len(data) // (nrecords // 2)
        f.write(data[: per_node * (nrecords // 8)])
    small = _stream_peak_mib(quarter, 2 * (nrecords // 8))
    large = run(benchmark, lambda: _stream_peak_mib(files[1], nrecords), op="stream peak memory",
                impl=f"WnodeReader ({_backend.BACKEND})", nbytes=nrecords * 168, rounds=1)
    benchmark.extra_info.update(peak_mib_quarter=small, peak_mib_whole=large, wnode_bytes=len(data))
    print(f"\npeak RSS growth consuming the stream: {small:.1f} MiB ({len(data) // 4 / 2**20:.0f} MiB file), "
          f"{large:.1f} MiB ({len(data) / 2**20:.0f} MiB file)")
    assert large < small + 16 and large < 64  # the window and a chunk or two, whatever the file size
