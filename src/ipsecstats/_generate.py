"""Synthetic but realistic logs of MSiSCSI_MMIPSECStats records, for demos, tests and benchmarks.

Each instance (an HBA) sees a load that follows the time of day (lowest at midnight,
sample 0) plus random bursts that rise over a few samples and decay. From the load:

* counters grow by Poisson-distributed events per interval, at rates proportional to
  the load (quick-mode SAs and key additions/updates move together, failures are rare
  and cluster in bursts, authentication failures climb over the last 40% of the log
  on instance 0, a few soft (plaintext) associations appear);
* gauges are levels: ``ActiveAcquire`` is typically 1, the heaps and the connection
  list follow a smoothed load, so they rise under load and decay after it.

A restart sets that instance's counters back to 0 (they grow again from there) and
its connection list and heaps warm up again. ``wrap=True`` starts instance 0's
``TotalGetSPI`` just below 2**64 so that it wraps within the first 40% of the log.

Everything is vectorized numpy over blocks of samples, so millions of records take
seconds; the output depends only on the arguments (the block size is fixed).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from ._checks import check_int
from ._schema import FIELD_NAMES, NFIELDS, RECORD_DTYPE

__all__ = ["BLOCK_SAMPLES", "generate", "generate_blocks"]

BLOCK_SAMPLES = 16384  # samples per generated block (fixed: the output must not depend on it)

# Events per second at load 1, drawn independently (Poisson).
_LOAD_RATES = {
    "OakleyMainMode": 0.02,
    "OakleyQuickMode": 0.08,
    "InvalidCookiesReceived": 0.001,
    "InvalidPackets": 0.0005,
    "AcquireFailures": 0.0001,
    "GetSPIFailures": 0.00005,
}
# Events per second per unit of *burst* load (zero between bursts).
_BURST_RATES = {
    "ReceiveFailures": 0.0006,
    "SendFailures": 0.0003,
    "KeyAdditionFailures": 0.0002,
    "KeyUpdateFailures": 0.0001,
    "NegotiationFailures": 0.001,
}
_NEGOTIATION_FAILURE_SHARE = 0.015  # of main-mode SAs, on top of the bursts
_SOFT_SA_RATE = 0.0001  # per second, load-independent
_AUTH_BASE_RATE = 0.0002  # per second
_AUTH_CAMPAIGN_RATE = 0.01  # per second reached at the end of the log, instance 0
_SPI_EXTRA_RATE = 0.005  # GetSPI calls beyond one per quick-mode SA

_BURST_RISE = 4.0  # samples: burst shape (j / rise) * exp(1 - j / rise)
_BURST_TAPS = 48
_HEAP_DECAY = 12.0  # samples: exponential smoothing of the load for the heaps
_HEAP_TAPS = 96
_WARMUP = 30.0  # samples for the connection list to refill after a restart
_BURSTS_PER_SECOND = 1 / 5400.0  # one burst per 90 minutes on average

_COL = {name: j for j, name in enumerate(FIELD_NAMES)}


def _kernels() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    j = np.arange(_BURST_TAPS, dtype=np.float64)
    burst = (j / _BURST_RISE) * np.exp(1.0 - j / _BURST_RISE)  # peak 1 at j = rise
    heap = np.exp(-np.arange(_HEAP_TAPS, dtype=np.float64) / _HEAP_DECAY)
    return burst, heap / heap.sum()


def _restart_schedule(
    rng: np.random.Generator, samples: int, instances: int, restarts: int
) -> list[npt.NDArray[np.int64]]:
    """Per instance, the sorted sample indices at which it restarts (never sample 0)."""
    if restarts == 0:
        return [np.empty(0, np.int64) for _ in range(instances)]
    lo = max(1, samples // 10)
    hi = max(lo, samples - samples // 10)
    slots = (hi - lo) * instances
    if restarts > slots:
        raise ValueError(f"restarts={restarts} do not fit in {samples} samples x {instances} instance(s)")
    picks = rng.choice(slots, size=restarts, replace=False)
    times, owners = lo + picks // instances, picks % instances
    return [np.sort(times[owners == k]).astype(np.int64) for k in range(instances)]


def generate_blocks(
    records: int,
    *,
    instances: int = 1,
    interval: float = 60.0,
    restarts: int = 0,
    seed: int = 0,
    wrap: bool = False,
) -> Iterator[npt.NDArray[np.void]]:
    """The records of a synthetic log, block by block (``RECORD_DTYPE``, interleaved).

    ``records`` in all (a multiple of ``instances``): ``records // instances`` samples,
    each with one record per instance in instance order, ``interval`` seconds apart.
    """
    records = check_int("records", records, 0)
    instances = check_int("instances", instances, 1)
    restarts = check_int("restarts", restarts, 0)
    seed = check_int("seed", seed, 0)
    if records % instances:
        raise ValueError(f"records ({records}) must be a multiple of instances ({instances})")
    try:
        interval = float(interval)
    except (TypeError, ValueError):
        raise TypeError(f"interval must be a number of seconds, not {interval!r}") from None
    if not (interval > 0 and math.isfinite(interval)):
        raise ValueError(f"interval must be a finite number of seconds > 0, got {interval!r}")
    samples = records // instances
    rng = np.random.default_rng(seed)
    return _blocks(rng, samples, instances, interval, _restart_schedule(rng, samples, instances, restarts), wrap)


def generate(
    records: int,
    *,
    instances: int = 1,
    interval: float = 60.0,
    restarts: int = 0,
    seed: int = 0,
    wrap: bool = False,
) -> npt.NDArray[np.void]:
    """A synthetic log in memory: the concatenated ``generate_blocks``."""
    blocks = list(generate_blocks(records, instances=instances, interval=interval, restarts=restarts,
                                  seed=seed, wrap=wrap))
    # dtype=: numpy's promotion would make the rows native-endian on a big-endian host
    return np.concatenate(blocks, dtype=RECORD_DTYPE) if blocks else np.empty(0, dtype=RECORD_DTYPE)


def _start_values(rng: np.random.Generator, instances: int, interval: float, samples: int,
                  wrap: bool) -> npt.NDArray[np.uint64]:
    """Counter values at the first sample: as if each instance had run for a while."""
    uptime = rng.integers(2_000, 200_000, size=instances).astype(np.float64) * interval  # seconds
    per_second = np.zeros(NFIELDS)
    for name, rate in _LOAD_RATES.items():
        per_second[_COL[name]] = rate
    for name, rate in _BURST_RATES.items():
        per_second[_COL[name]] = rate * 0.3
    qm = _LOAD_RATES["OakleyQuickMode"]
    for name in ("KeyAdditions", "KeyUpdates"):
        per_second[_COL[name]] = qm
    per_second[_COL["TotalGetSPI"]] = qm + _SPI_EXTRA_RATE
    per_second[_COL["AuthenticationFailures"]] = _AUTH_BASE_RATE
    per_second[_COL["SoftAssociations"]] = 0.0  # none before the log: the ones in it are news
    start = np.round(uptime[:, None] * per_second[None, :]).astype(np.uint64)
    if wrap:
        # 15% of the log's GetSPI growth at full load below 2**64: the load never drops
        # under 0.4, so it wraps within the first 40% of the log
        expected = (qm + _SPI_EXTRA_RATE) * interval * samples
        room = max(1, int(expected * 0.15))
        start[0, _COL["TotalGetSPI"]] = np.uint64(2**64 - room)
    return start


def _blocks(
    rng: np.random.Generator,
    samples: int,
    instances: int,
    interval: float,
    restart_times: list[npt.NDArray[np.int64]],
    wrap: bool,
) -> Iterator[npt.NDArray[np.void]]:
    burst_kernel, heap_kernel = _kernels()
    phase = rng.uniform(-0.02, 0.02, size=instances)
    values = _start_values(rng, instances, interval, samples, wrap)  # last counter values
    gauge_cols = [j for j, n in enumerate(FIELD_NAMES) if n in
                  ("ActiveAcquire", "ActiveReceive", "AcquireHeapSize", "ReceiveHeapSize", "ConnectionListSize")]
    counter_mask = np.ones(NFIELDS, dtype=bool)
    counter_mask[gauge_cols] = False
    burst_tail = np.zeros((_BURST_TAPS - 1, instances))
    load_tail: npt.NDArray[np.float64] | None = None
    base_connections = 20.0 + 15.0 * np.arange(instances)
    p_burst = min(1.0, _BURSTS_PER_SECOND * interval)

    for t0 in range(0, samples, BLOCK_SAMPLES):
        b = min(BLOCK_SAMPLES, samples - t0)
        t = np.arange(t0, t0 + b, dtype=np.float64)
        day = t * interval / 86400.0
        diurnal = 1.0 + 0.6 * np.sin(2 * np.pi * (day[:, None] - 0.25 + phase[None, :]))  # (b, K)

        impulses = (rng.random((b, instances)) < p_burst) * rng.uniform(1.5, 6.0, size=(b, instances))
        padded = np.concatenate([burst_tail, impulses])
        burst = np.stack([np.convolve(padded[:, k], burst_kernel, "valid") for k in range(instances)], axis=1)
        burst_tail = padded[-(_BURST_TAPS - 1):]
        load = diurnal * (1.0 + burst)
        if load_tail is None:
            load_tail = np.repeat(load[:1], _HEAP_TAPS - 1, axis=0)
        padded_load = np.concatenate([load_tail, load])
        heap = np.stack([np.convolve(padded_load[:, k], heap_kernel, "valid") for k in range(instances)], axis=1)
        load_tail = padded_load[-(_HEAP_TAPS - 1):]

        # counter increments per interval: (b, K, 21) int64, gauges left at 0
        inc = np.zeros((b, instances, NFIELDS), dtype=np.int64)
        for name, rate in _LOAD_RATES.items():
            inc[:, :, _COL[name]] = rng.poisson(rate * interval * load)
        for name, rate in _BURST_RATES.items():
            inc[:, :, _COL[name]] = rng.poisson(rate * interval * burst * diurnal)
        inc[:, :, _COL["NegotiationFailures"]] += rng.binomial(inc[:, :, _COL["OakleyMainMode"]],
                                                              _NEGOTIATION_FAILURE_SHARE)
        qm = inc[:, :, _COL["OakleyQuickMode"]]
        inc[:, :, _COL["KeyAdditions"]] = qm - np.minimum(qm, inc[:, :, _COL["KeyAdditionFailures"]])
        inc[:, :, _COL["KeyUpdates"]] = qm - np.minimum(qm, inc[:, :, _COL["KeyUpdateFailures"]])
        inc[:, :, _COL["TotalGetSPI"]] = qm + rng.poisson(_SPI_EXTRA_RATE * interval, size=(b, instances))
        campaign = np.clip((t / max(samples - 1, 1) - 0.6) / 0.4, 0.0, 1.0)
        auth = np.full((b, instances), _AUTH_BASE_RATE * interval)
        auth[:, 0] += _AUTH_CAMPAIGN_RATE * interval * campaign
        inc[:, :, _COL["AuthenticationFailures"]] = rng.poisson(auth)
        inc[:, :, _COL["SoftAssociations"]] = rng.poisson(_SOFT_SA_RATE * interval, size=(b, instances))

        cs = np.cumsum(inc.astype(np.uint64), axis=0, dtype=np.uint64)
        block_values = values[None, :, :] + cs  # uint64 arrays wrap modulo 2**64, as counters do
        warm = np.ones((b, instances))
        for k in range(instances):
            times = restart_times[k]
            for tr in times[(times >= t0) & (times < t0 + b)]:
                i = int(tr - t0)
                before = cs[i - 1, k] if i > 0 else np.zeros(NFIELDS, np.uint64)
                block_values[i:, k, :] = cs[i:, k, :] - before  # counting from 0 again
            if times.size:
                idx = np.searchsorted(times, t, side="right") - 1
                since = np.where(idx >= 0, t - times[np.maximum(idx, 0)], np.inf)
                warm[:, k] = 1.0 - np.exp(-since / _WARMUP)
        values = block_values[-1].copy()

        out = np.where(counter_mask[None, None, :], block_values, np.uint64(0))
        extra = np.maximum(burst, 0.0)
        out[:, :, _COL["ActiveAcquire"]] = 1 + rng.poisson(0.3 * extra)
        out[:, :, _COL["ActiveReceive"]] = rng.poisson(0.5 * load)
        out[:, :, _COL["AcquireHeapSize"]] = np.round(6.0 * heap * warm) + rng.poisson(0.5, size=(b, instances))
        out[:, :, _COL["ReceiveHeapSize"]] = np.round(3.0 * heap * warm) + rng.poisson(0.5, size=(b, instances))
        connections = (base_connections[None, :] + 60.0 * heap) * warm
        out[:, :, _COL["ConnectionListSize"]] = np.round(connections) + rng.poisson(2.0, size=(b, instances))
        yield np.ascontiguousarray(out, dtype="<u8").reshape(-1).view(RECORD_DTYPE)
