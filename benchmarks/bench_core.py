"""Core throughput: decode and deltas/rates beside memcpy, the pure twin and naive numpy.

Every benchmark of one size runs in one process after the memcpy of the same bytes
(`np.copyto` into a preallocated buffer), so `x_memcpy` compares like with like.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

import ipsecstats
from ipsecstats import _backend, _slow
from ipsecstats._deltas import delta_dtype, resolve_kinds

from conftest import cached_log, run

POLICIES = ["auto", "reset", "wrap", "zero", "raise"]


@pytest.fixture
def twin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_backend, "KERNEL", _slow)


def bench_memcpy(benchmark, records):
    src = records.view(np.uint8)
    dst = np.empty_like(src)
    run(benchmark, lambda: np.copyto(dst, src), op="memcpy", impl="memcpy", nbytes=src.nbytes)
    assert np.array_equal(dst, src)


def bench_memcpy_fresh(benchmark, records):
    """A copy into new memory: what any owned result pays in page faults."""
    src = records.view(np.uint8)
    out = run(benchmark, src.copy, op="memcpy into new memory", impl="numpy", nbytes=src.nbytes)
    assert out.nbytes == src.nbytes


def bench_decode_copy(benchmark, records):
    raw = records.view(np.uint8)
    out = run(benchmark, lambda: ipsecstats.decode(raw, copy=True), op="decode(copy=True)",
              impl="ipsecstats", nbytes=raw.nbytes)
    assert out.flags.owndata or out.base is not None
    assert np.array_equal(out.view(np.uint8), raw)


def bench_decode_out(benchmark, records):
    raw = records.view(np.uint8)
    out = np.empty_like(records)
    run(benchmark, lambda: ipsecstats.decode(raw, out=out), op="decode(out=buffer)",
        impl="ipsecstats", nbytes=raw.nbytes)
    assert np.array_equal(out.view(np.uint8), raw)


def bench_decode_numpy_structured_copy(benchmark, records):
    raw = records.view(np.uint8)
    run(benchmark, lambda: np.frombuffer(raw, ipsecstats.RECORD_DTYPE).copy(),
        op="decode(copy=True)", impl="numpy structured copy", nbytes=raw.nbytes, rounds=3)


def bench_decode_struct(benchmark, records):
    raw = records.view(np.uint8).tobytes()
    n = len(raw) // 168
    if n > 200_000:  # the 2M-record run takes minutes of pure Python: time a slice, scale
        raw = raw[: 200_000 * 168]
    rows = run(benchmark, lambda: list(struct.iter_unpack("<21Q", raw)),
               op="decode(copy=True)", impl="struct.iter_unpack", nbytes=len(raw), rounds=3)
    assert len(rows) == len(raw) // 168


@pytest.mark.parametrize("return_resets", [False, True], ids=["values", "resets"])
@pytest.mark.parametrize("policy", POLICIES)
def bench_deltas(benchmark, size, policy, return_resets):
    records = cached_log(size, restarts=0 if policy == "raise" else 4)
    result = run(benchmark, lambda: ipsecstats.deltas(records, on_decrease=policy, return_resets=return_resets),
                 op=f"deltas({policy}{', resets' if return_resets else ''})", impl="ipsecstats",
                 nbytes=records.nbytes)
    values = result[0] if return_resets else result
    assert values.shape == (size - 1,)


@pytest.mark.parametrize("impl", ["ipsecstats", "pure twin"])
@pytest.mark.parametrize("return_resets", [False, True], ids=["values", "resets"])
def bench_deltas_out(benchmark, records, monkeypatch, return_resets, impl):
    """Into reused buffers (what a streaming loop does): the kernel without page faults."""
    if impl == "pure twin":
        monkeypatch.setattr(_backend, "KERNEL", _slow)
    n = records.shape[0] - 1
    values = np.empty(n, delta_dtype(resolve_kinds(None)))
    resets = np.empty((n, 21), np.bool_)
    out = (values, resets) if return_resets else values
    run(benchmark, lambda: ipsecstats.deltas(records, return_resets=return_resets, out=out),
        op=f"deltas(auto{', resets' if return_resets else ''}, out=buffer)", impl=impl,
        nbytes=records.nbytes, rounds=5 if impl == "pure twin" else None)


@pytest.mark.parametrize("return_resets", [False, True], ids=["values", "resets"])
def bench_deltas_twin(benchmark, records, twin, return_resets):
    run(benchmark, lambda: ipsecstats.deltas(records, return_resets=return_resets),
        op=f"deltas(auto{', resets' if return_resets else ''})", impl="pure twin",
        nbytes=records.nbytes, rounds=5)


def bench_deltas_naive_diff(benchmark, records):
    """What a user writes first: np.diff per field (wrap semantics, no restart handling)."""
    names = records.dtype.names
    run(benchmark, lambda: {name: np.diff(records[name]) for name in names},
        op="deltas(auto)", impl="naive np.diff per field", nbytes=records.nbytes, rounds=3)


def bench_rates(benchmark, records):
    out = run(benchmark, lambda: ipsecstats.rates(records, interval=10.0), op="rates(interval)",
              impl="ipsecstats", nbytes=records.nbytes)
    assert out.shape == (records.shape[0] - 1,)


def bench_rates_twin(benchmark, records, twin):
    run(benchmark, lambda: ipsecstats.rates(records, interval=10.0), op="rates(interval)",
        impl="pure twin", nbytes=records.nbytes, rounds=5)
