"""One figure of a log: counter rates over time, the gauges, restarts marked.

The log is reduced in one streaming pass (``_stats.scan``) to at most ``bins``
points per series, so a log of any size plots quickly. A counter's line is its mean
rate over the bin (all instances added), with a lighter band up to the bin's peak poll
(peak increase / interval, or the peak per-second rate of a capture). A gauge is drawn
per instance: the mean line over the bin and a band from the least to the greatest
value any instance held, so no peak is averaged away (the band's top is the report's
max). matplotlib is imported here only (the ``plot`` extra).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import numpy as np
import numpy.typing as npt

from ._report import LogStats, sample_time
from ._schema import COUNTERS, GAUGES

__all__ = ["DEFAULT_BINS", "render"]

DEFAULT_BINS = 500

_SA_SERIES = ("OakleyMainMode", "OakleyQuickMode", "KeyAdditions", "KeyUpdates", "TotalGetSPI")
_FAILURE_SERIES = ("AuthenticationFailures", "NegotiationFailures", "SoftAssociations", "ReceiveFailures",
                   "SendFailures", "InvalidPackets", "InvalidCookiesReceived")
_OTHER_FAILURES = ("AcquireFailures", "GetSPIFailures", "KeyAdditionFailures", "KeyUpdateFailures")
_QUEUE_SERIES = ("ActiveAcquire", "ActiveReceive", "AcquireHeapSize", "ReceiveHeapSize")
_STYLES = {"KeyAdditions": (0, (4, 2)), "KeyUpdates": (0, (1, 2))}


def _matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError('plots need matplotlib: pip install "ipsecstats[plot]"') from None
    return Figure, FigureCanvasAgg


def _bin_centres(stats: LogStats) -> npt.NDArray[np.float64]:
    """The sample index at the middle of each bin."""
    total = stats.expected_samples
    edges = np.arange(stats.bins + 1) * total / stats.bins
    return (edges[:-1] + edges[1:]) / 2 - 0.5


def render(stats: LogStats, out: Any, *, interval: float | None, start: dt.datetime | None,
           title: str | None = None) -> None:
    """Draw the figure of ``stats`` (scanned with ``bins`` > 0) as PNG into ``out`` (a binary file)."""
    Figure, FigureCanvasAgg = _matplotlib()
    assert stats.bin_counter_sums is not None and stats.bin_samples is not None
    assert stats.bin_gauge_sums is not None and stats.bin_gauge_samples is not None
    centres = _bin_centres(stats)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_interval = stats.bin_counter_sums / stats.bin_samples[:, None]
        gauges = stats.bin_gauge_sums / stats.bin_gauge_samples[:, None]
    per_interval[stats.bin_samples == 0] = np.nan
    gauges /= max(stats.stride, 1)  # the mean of one instance
    gauges[stats.bin_gauge_samples == 0] = np.nan
    g_lo, g_hi = _gauge_band(stats)
    if stats.bin_seconds is not None:  # a capture with timestamps: real time per bin
        interval = stats.median_step
        with np.errstate(invalid="ignore", divide="ignore"):
            rates = stats.bin_counter_sums / stats.bin_seconds[:, None]
        rates[~(stats.bin_seconds > 0)] = np.nan
        peaks = stats.bin_counter_peak
    else:
        rates = per_interval / interval if interval else per_interval
        peaks = None if stats.bin_counter_peak is None else (
            stats.bin_counter_peak / interval if interval else stats.bin_counter_peak)
    if peaks is not None:
        peaks = np.where(stats.bin_samples[:, None] > 0, peaks, np.nan)
    rate_unit = "per second" if interval else "per interval"

    times = _bin_datetimes(stats)
    if times is not None:
        x: Any = times
        xlabel = "time (UTC)"
    elif start is not None and interval is not None:
        x = np.array([start + dt.timedelta(seconds=float(c) * interval) for c in centres])
        xlabel = f"time ({start.tzname() or 'UTC'})"
    elif interval is not None:
        unit_seconds, xlabel = _elapsed_unit(stats, interval)
        x = centres * interval / unit_seconds
    else:
        x, xlabel = centres, "sample"

    fig = Figure(figsize=(11, 10.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True, height_ratios=[3, 3, 2.2, 1.8])
    ax_sa, ax_fail, ax_queue, ax_conn = axes

    for name in _SA_SERIES:
        k = COUNTERS.index(name)
        (line,) = ax_sa.plot(x, rates[:, k], label=name, linewidth=1.1, linestyle=_STYLES.get(name, "solid"))
        if peaks is not None:
            ax_sa.fill_between(x, rates[:, k], peaks[:, k], color=line.get_color(), alpha=0.15, linewidth=0)
    ax_sa.set_ylabel(f"SAs {rate_unit}")
    peak_note = ": mean line, band up to the peak poll of each bin" if peaks is not None else ""
    ax_sa.set_title(f"Security associations and SPI requests{peak_note}", loc="left", fontsize=10)

    # rare events: a moving window (an hour when the interval is known) instead of raw bins
    window, window_text = _failure_window(stats, interval)
    counts = _moving_sum(stats.bin_counter_sums, window)
    spans = _moving_sum(stats.bin_samples[:, None], window)[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        per_sample = counts / spans[:, None]
    scale, unit = (3600.0 / interval, "per hour") if interval else (1.0, rate_unit)
    quiet = []
    series = [(name, [name]) for name in _FAILURE_SERIES] + [("other failures", list(_OTHER_FAILURES))]
    for label, names in series:
        cols = [COUNTERS.index(n) for n in names]
        if not any(stats.increase[k] for k in cols):
            quiet.append(label)
            continue
        if len(names) > 1:
            label = "other: " + " + ".join(n.replace("Failures", "") for n in names if stats.increase[COUNTERS.index(n)])
        ax_fail.plot(x, per_sample[:, cols].sum(axis=1) * scale, label=label, linewidth=1.1)
    ax_fail.set_ylabel(f"events {unit}")
    note = f"; zero throughout: {', '.join(quiet)}" if quiet else ""
    ax_fail.set_title(f"Failures and anomalies ({window_text}{note})", loc="left", fontsize=10)

    band = "per instance: mean line, min-max band" if g_lo is not None else "per instance, mean"
    for name in _QUEUE_SERIES:
        j = GAUGES.index(name)
        (line,) = ax_queue.plot(x, gauges[:, j], label=name, linewidth=1.0)
        if g_lo is not None and g_hi is not None:
            ax_queue.fill_between(x, g_lo[:, j], g_hi[:, j], color=line.get_color(), alpha=0.18, linewidth=0)
    ax_queue.set_ylabel("entries")
    ax_queue.set_title(f"Queues and heaps (gauges, {band})", loc="left", fontsize=10)

    j = GAUGES.index("ConnectionListSize")
    ax_conn.plot(x, gauges[:, j], label="ConnectionListSize", color="tab:purple", linewidth=1.1)
    if g_lo is not None and g_hi is not None:
        ax_conn.fill_between(x, g_lo[:, j], g_hi[:, j], color="tab:purple", alpha=0.2, linewidth=0,
                             label=f"min-max (peak {int(np.nanmax(g_hi[:, j])):,})" if np.isfinite(g_hi[:, j]).any()
                             else "min-max")
    ax_conn.set_ylabel("entries")
    ax_conn.set_title(f"Quick-mode state entries (ConnectionListSize, gauge, {band})", loc="left", fontsize=10)
    _by_instance(stats, x, interval, ax_sa, ax_conn)
    ax_conn.set_xlabel(xlabel)

    _mark_restarts(stats, axes, start, interval, times is not None)
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        if ax.get_legend_handles_labels()[0]:  # outside the axes: it never hides a restart label
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0.0)
    if times is not None or (start is not None and interval is not None):
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator()
        ax_conn.xaxis.set_major_locator(locator)
        ax_conn.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))

    instances = f", {stats.stride} instances added" if stats.stride > 1 else ""
    every = f", one sample every {interval:g} s" if interval else ""
    if stats.bin_seconds is not None and interval:
        every = f", one sample every {interval:g} s (median)"
    if title:
        heading = f"{title} ({instances[2:]})" if instances else title
    else:
        heading = f"{os.path.basename(stats.path)}: {stats.records:,} records{instances}{every}"
    fig.suptitle(heading, fontsize=12)
    fig.savefig(out, format="png")


def _by_instance(stats: LogStats, x: Any, interval: float | None, ax_sa: Any, ax_conn: Any) -> None:
    """``plot --by-instance``: each instance's quick-mode SA rate and ConnectionListSize mean, one line each."""
    j, k = GAUGES.index("ConnectionListSize"), COUNTERS.index("OakleyQuickMode")
    for one in stats.instances or []:
        if one.bin_gauge_sums is None or one.bin_gauge_samples is None or one.bin_counter_sums is None \
                or one.bin_samples is None or one.bin_gauge_sums.shape[0] != len(x):
            continue  # a log too short for the same bins
        with np.errstate(invalid="ignore", divide="ignore"):
            level = one.bin_gauge_sums[:, j] / one.bin_gauge_samples
            rate = one.bin_counter_sums[:, k] / one.bin_samples / (interval or 1.0)
        name = one.instance_names[0] if one.instance_names else one.instance
        ax_conn.plot(x, level, linewidth=0.9, linestyle=(0, (3, 1)), label=f"instance {name}")
        ax_sa.plot(x, rate, linewidth=0.9, linestyle=(0, (3, 1)), label=f"OakleyQuickMode, instance {name}")


def _gauge_band(stats: LogStats) -> tuple[Any, Any]:
    """Each bin's least and greatest gauge value (any instance) as float, NaN where a bin is empty."""
    if stats.bin_gauge_min is None or stats.bin_gauge_max is None:
        return None, None
    empty = ~(stats.bin_gauge_samples > 0) if stats.bin_gauge_samples is not None else False
    lo = stats.bin_gauge_min.astype(np.float64)
    hi = stats.bin_gauge_max.astype(np.float64)
    lo[empty], hi[empty] = np.nan, np.nan
    return lo, hi


def _elapsed_unit(stats: LogStats, interval: float) -> tuple[float, str]:
    """Seconds per axis unit and the axis label: hours since the first sample, or days when the log
    spans more than three days."""
    if stats.expected_samples * interval > 3 * 86400:
        return 86400.0, "days since the first sample (pass --start for dates)"
    return 3600.0, "hours since the first sample"


def _failure_window(stats: LogStats, interval: float | None) -> tuple[int, str]:
    """Bins per moving window for the failure panel, and how to describe it."""
    samples_per_bin = stats.expected_samples / stats.bins
    if interval:
        window = max(1, round(3600 / (interval * samples_per_bin)))
        seconds = window * samples_per_bin * interval
        return window, f"moving window of {seconds / 60:.0f} min"
    window = max(1, stats.bins // 50)
    return window, f"moving window of {window * samples_per_bin:.0f} samples"


def _moving_sum(values: npt.NDArray[np.float64], window: int) -> npt.NDArray[np.float64]:
    """Centred moving sums of each column over ``window`` rows (shorter at the edges)."""
    if window <= 1:
        return values
    padded = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    n = values.shape[0]
    lo = np.clip(np.arange(n) - window // 2, 0, n)
    hi = np.clip(np.arange(n) - window // 2 + window, 0, n)
    return padded[hi] - padded[lo]


def _bin_datetimes(stats: LogStats) -> npt.NDArray[np.object_] | None:
    """A capture's mean time per bin as datetimes, or None."""
    if stats.bin_times is None:
        return None
    ns = stats.bin_times.view(np.int64).tolist()
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return np.array([epoch + dt.timedelta(microseconds=v // 1000) for v in ns])


def _mark_restarts(stats: LogStats, axes: Any, start: dt.datetime | None, interval: float | None,
                   real_times: bool = False) -> None:
    """A dashed red line per restart (at most 50), labelled on the top panel."""
    events = [e for e in stats.events if e.restarts and (e.time is not None or not real_times)][:50]
    for i, e in enumerate(events):
        if real_times:
            xpos: Any = e.time
        elif start is not None and interval is not None:
            xpos = sample_time(start, interval, e.sample)
        elif interval is not None:
            xpos = e.sample * interval / _elapsed_unit(stats, interval)[0]
        else:
            xpos = e.sample
        for ax in axes:
            ax.axvline(xpos, color="tab:red", linestyle="--", linewidth=1.0, alpha=0.8,
                       label="restart" if (i == 0 and ax is axes[0]) else None)
        if len(events) <= 10:
            axes[0].annotate(f"restart, instance {stats.instance_label(e.instance)}", xy=(xpos, 1.0), xycoords=("data", "axes fraction"),
                             xytext=(3, -12 - 11 * (i % 3)), textcoords="offset points", color="tab:red", fontsize=8)
