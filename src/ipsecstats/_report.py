"""The wording of ``report`` and ``info``: plain data and text built from ``LogStats``.

The statistics come from one streaming pass (``_stats.scan``); this module only turns
them into rates, findings and tables.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import textwrap
from typing import Any


from ._backend import BACKEND
from ._schema import COUNTERS, FIELD_NAMES, GAUGES, RECORD_SIZE
from ._stats import Event, LogStats

__all__ = ["LogStats", "build_info", "build_report", "format_info", "format_report"]



# --------------------------------------------------------------------------- time helpers


def sample_time(start: dt.datetime | None, interval: float | None, sample: int) -> dt.datetime | None:
    if start is None or interval is None:
        return None
    return start + dt.timedelta(seconds=sample * interval)


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _human_time(t: dt.datetime) -> str:
    text = t.strftime("%Y-%m-%d %H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond:06d}".rstrip("0")
    offset = t.utcoffset()
    if offset is None:
        return text
    return text + (" UTC" if not offset else t.strftime(" %z"))


def human_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    minutes = int(round(seconds / 60))
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes and not days:
        parts.append(f"{minutes} min")
    return " ".join(parts) or "0 min"


# --------------------------------------------------------------------------- report


def _rate(value: float, interval: float | None) -> float:
    return value / interval if interval else value


def build_report(stats: LogStats, *, interval: float | None, start: dt.datetime | None,
                 trailing_bytes: int = 0, sample: bool = False) -> dict[str, Any]:
    """The report as plain data (exact ints, floats, strings): what ``--format json`` prints."""
    span = stats.intervals
    real_time = stats.seconds is not None  # a capture with timestamps: rates by real time steps
    counters = {}
    for k, name in enumerate(COUNTERS):
        total = stats.increase[k]
        if real_time:
            mean = total / stats.seconds if stats.seconds else None
            peak = float(stats.peak[k]) if stats.seconds else None
        else:
            mean = _rate(total / span, interval) if span else None
            peak = _rate(float(stats.peak[k]), interval) if span else None
        counters[name] = {
            "increase": total,
            "mean_rate": mean,
            "peak_rate": peak,
            "restarts": stats.restarts[k],
            "wraps": stats.wraps[k],
        }
    gauges = {}
    for name in GAUGES:
        j = FIELD_NAMES.index(name)
        gauges[name] = {
            "min": stats.field_min[j] if stats.records else None,
            "mean": stats.field_sum[j] / stats.records if stats.records else None,
            "max": stats.field_max[j] if stats.records else None,
        }
    report: dict[str, Any] = {
        "file": stats.path,
        "sample_log": sample,
        "input_format": stats.input_format,
        "bytes": _bytes(stats, trailing_bytes),
        "records": stats.records,
        "trailing_bytes": trailing_bytes,
        "instances": stats.stride,
        "instance_names": list(stats.instance_names) if stats.instance_names is not None else None,
        "samples": stats.samples,
        "interval_seconds": interval,
        "median_step_seconds": stats.median_step,
        **_span(stats, interval, start),
        "on_decrease": stats.on_decrease,
        "backend": BACKEND,
        "rate_unit": "per second" if interval or real_time else "per interval",
        "counters": counters,
        "gauges": gauges,
        "restart_events": stats.event_count,
        "restart_count": stats.restart_event_count,
        "restarts": [
            {"record": e.record, "instance": stats.instance_label(e.instance) if stats.instance_names else e.instance,
             "sample": e.sample, "time": _iso(_event_time(e, start, interval)), "counters_restarted": e.restarts,
             "counters_wrapped": e.wraps}
            for e in stats.events
        ],
    }
    report["findings"] = findings(stats, report, interval, start)
    return report


def _bytes(stats: LogStats, trailing_bytes: int) -> int:
    """The input's size: a raw log's records and trailing bytes, a capture's file size."""
    return stats.bytes_at_start if stats.instance_names is not None else stats.records * RECORD_SIZE + trailing_bytes


def _span(stats: LogStats, interval: float | None, start: dt.datetime | None) -> dict[str, Any]:
    """start, end and duration_seconds: from a capture's timestamps, else from ``start``/``interval``."""
    if stats.first_time is not None and stats.last_time is not None:
        return {"start": _iso(stats.first_time), "end": _iso(stats.last_time),
                "duration_seconds": (stats.last_time - stats.first_time).total_seconds()}
    last = stats.samples - 1 if stats.records else 0
    return {
        "start": _iso(sample_time(start, interval, 0)) if stats.records else None,
        "end": _iso(sample_time(start, interval, last)) if stats.records else None,
        "duration_seconds": last * interval if interval is not None and stats.records else None,
    }


def _event_time(e: Event, start: dt.datetime | None, interval: float | None) -> dt.datetime | None:
    return e.time if e.time is not None else sample_time(start, interval, e.sample)


def _per_hour(count: int, stats: LogStats, interval: float | None) -> str:
    seconds = stats.seconds if stats.seconds is not None else (stats.intervals * interval if interval else 0)
    if not seconds:
        return ""
    hours = seconds / 3600
    return f" ({count / hours:.3g} per hour)" if hours else ""


#: The kinds of findings, as ``report --fail-on finding:KIND`` names them (``finding:warning``: any warning).
FINDING_RULES = {
    "too-few-records": "too few records for any interval",
    "authentication-failures-rising": "authentication failures rising (last quarter > 2x the first, and >= 5)",
    "authentication-failures": "authentication failures, not rising",
    "no-authentication-failures": "no authentication failures (ok)",
    "soft-associations": "negotiations fell back to plaintext (SoftAssociations grew)",
    "soft-associations-before-log": "SoftAssociations above 0 before the log began, not growing",
    "no-soft-associations": "no soft associations (ok)",
    "negotiation-failures-high": "negotiation failures above 5% of main-mode SAs",
    "negotiation-failures": "negotiation failures at most 5% of main-mode SAs",
    "negotiation-failures-no-main-mode": "negotiation failures and no main-mode SA",
    "no-negotiations": "no main-mode SAs and no negotiation failures",
    "transport-failures": "receive or send failures (ReceiveFailures, SendFailures)",
    "no-transport-failures": "no receive or send failures (ok)",
    "other-failures": "other failure counters grew",
    "restart": "a counter restarted (fell by less than 2**63)",
    "interleaved": "counters fell in so many intervals that the log may interleave instances (--stride)",
    "wrap": "a counter wrapped past 2**64",
}


def findings(stats: LogStats, report: dict[str, Any], interval: float | None,
             start: dt.datetime | None) -> list[dict[str, str]]:
    """Plain-language findings, most pressing first: ``{"level": "warning"|"ok"|"info", "rule": ..., "text": ...}``.

    ``rule`` names the kind of finding (``FINDING_RULES``), stable across versions: ``report --fail-on``
    takes it as a rule that fires when the finding is made.
    """
    out: list[dict[str, str]] = []
    inc = {name: stats.increase[k] for k, name in enumerate(COUNTERS)}

    def add(level: str, kind: str, text: str) -> None:
        assert kind in FINDING_RULES, kind
        out.append({"level": level, "rule": "finding:" + kind, "text": text})

    if stats.rows == 0:
        add("info", "too-few-records", f"Too few records for any interval (need more than {stats.stride}).")
        return out

    auth = inc["AuthenticationFailures"]
    q = stats.quarters[:, COUNTERS.index("AuthenticationFailures")]
    if auth == 0:
        add("ok", "no-authentication-failures", "No authentication failures.")
    elif q[-1] >= 5 and q[-1] > 2 * q[0]:
        add("warning", "authentication-failures-rising",
            f"Authentication failures are rising: {int(q[-1])} in the last quarter of the log against "
            f"{int(q[0])} in the first ({auth:,} in all). Check for a peer with a wrong pre-shared key, "
            "certificate or Kerberos identity, or someone guessing credentials.")
    else:
        add("info", "authentication-failures",
            f"{auth:,} authentication failures{_per_hour(auth, stats, interval)}, not rising.")

    soft = inc["SoftAssociations"]
    soft_col = FIELD_NAMES.index("SoftAssociations")
    if soft:
        add("warning", "soft-associations",
            f"{soft:,} negotiations fell back to plaintext (SoftAssociations): that traffic was not "
            "encrypted. Check whether the IPsec policy allows fallback to clear.")
    elif stats.field_max[soft_col]:
        add("info", "soft-associations-before-log",
            f"SoftAssociations stood at {stats.field_max[soft_col]} before the log began and did not grow.")
    else:
        add("ok", "no-soft-associations", "No soft (plaintext) associations.")

    nego, mm = inc["NegotiationFailures"], inc["OakleyMainMode"]
    if mm:
        share = 100.0 * nego / mm
        level = "warning" if share > 5 else "info"
        add(level, "negotiation-failures-high" if level == "warning" else "negotiation-failures",
            f"Negotiation failures were {share:.1f}% of main-mode SAs ({nego:,} failures, {mm:,} main-mode SAs)"
            + ("; above 5% points at mismatched IKE proposals or unreachable peers." if level == "warning" else "."))
    elif nego:
        add("warning", "negotiation-failures-no-main-mode",
            f"{nego} negotiation failures and no successful main-mode SA.")
    else:
        add("info", "no-negotiations", "No main-mode SAs and no negotiation failures in the log.")

    recv, send = inc["ReceiveFailures"], inc["SendFailures"]
    if recv or send:
        add("warning", "transport-failures",
            f"The TCP stack failed to receive {recv:,} and to send {send:,} IKE messages: check the network "
            "path and the HBA.")
    else:
        add("ok", "no-transport-failures", "No receive or send failures.")

    others = [f"{name} {inc[name]:,}" for name in ("AcquireFailures", "GetSPIFailures", "KeyAdditionFailures",
                                                  "KeyUpdateFailures", "InvalidPackets", "InvalidCookiesReceived")
              if inc[name]]
    if others:
        add("info", "other-failures", "Other failures: " + ", ".join(others) + ".")

    restart_events = [e for e in stats.events if e.restarts]
    if restart_events:
        count = stats.restart_event_count
        shown = "; ".join(
            f"instance {stats.instance_label(e.instance)} at {_where(e, start, interval)}, {len(e.restarts)} counters fell"
            for e in restart_events[:5]
        )
        tail = f"; {count - 5:,} more" if count > 5 else ""
        policy = stats.on_decrease
        meaning = ("increases after a restart are counted from zero" if policy in ("auto", "reset") else
                   "a fall counts as 0" if policy == "zero" else "a fall is a modular (wrapped) difference")
        plural = "restart" if count == 1 else "restarts"
        add("warning", "restart", f"{count:,} {plural}: {shown}{tail}. The service or the HBA restarted; "
            f"{meaning} (--on-decrease {policy}).")
        hint = stride_hint(stats)
        if hint:
            add("warning", "interleaved", hint)
    wrap_events = [e for e in stats.events if e.wraps]
    if wrap_events:
        shown = "; ".join(f"{', '.join(e.wraps)} on instance {stats.instance_label(e.instance)} at "
                          f"{_where(e, start, interval)}"
                          for e in wrap_events[:5])
        add("info", "wrap", f"{sum(stats.wraps)} counter wrap(s) past 2**64: {shown}.")
    return out


def stride_hint(stats: LogStats) -> str | None:
    """The hint to read a raw log with ``--stride K`` when counters fell in over a quarter of the
    intervals (more than 2 times) of a log read as one instance, else None."""
    count, rows = stats.restart_event_count, stats.rows
    if stats.input_format == "raw" and stats.stride == 1 and count > 2 and 4 * count > rows:
        return (f"Counters fell in {count / rows:.0%} of the intervals: far more than restarts explain. "
                "If the log interleaves several instances, read it with --stride K.")
    return None


def _where(e: Event, start: dt.datetime | None, interval: float | None) -> str:
    when = _event_time(e, start, interval)
    return f"record {e.record:,}" + (f" ({_human_time(when)})" if when else f" (sample {e.sample:,})")


_FORMAT_TEXT = {"raw": "raw records", "wnode": "WNODE buffers", "cim-csv": "a CIM CSV export",
                "pdh-csv": "a perfmon PDH-CSV/TSV log",
                "ipsecstats-csv": "an ipsecstats CSV export", "ipsecstats-jsonl": "an ipsecstats JSON Lines export",
                "ipsecstats-parquet": "an ipsecstats Parquet export"}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _fmt_int(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def _fmt_rate(x: float | None) -> str:
    """One rate on its own (3 significant digits, thousands grouped); tables use ``rate_column``."""
    if x is None or math.isnan(x):
        return "-"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


_MAX_DECIMALS = 6
_MAX_FIXED = 1e15


def rate_column(values: list[float | None]) -> list[str]:
    """The rates of one table column in one number format: fixed point with the decimals that give
    the smallest non-zero value 3 significant digits (thousands grouped), or, when that needs more
    than 6 decimals or a value reaches 10**15, scientific notation with 3 significant digits for
    every value. Zero is ``0``; a missing value (None, NaN) is ``-``."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    decimals = 0
    scientific = False
    if finite:
        decimals = max(0, 2 - math.floor(math.log10(min(finite))))
        scientific = decimals > _MAX_DECIMALS or max(finite) >= _MAX_FIXED
    out = []
    for v in values:
        if v is None or math.isnan(v):
            out.append("-")
        elif v == 0:
            out.append("0")
        elif not math.isfinite(v):
            out.append(str(v))
        elif scientific:
            out.append(f"{v:.2e}")
        else:
            out.append(f"{v:,.{decimals}f}")
    return out


def _table(title: str, headers: list[str], rows: list[tuple[str, list[str]]], widths: list[int]) -> list[str]:
    """A table: the title and row names left-aligned in 26 columns (or wider), then each column
    right-aligned in ``widths[j]`` characters, widened to its widest value plus two spaces."""
    name_width = max([26, len(title) + 1] + [len(name) + 4 for name, _ in rows])
    cols = [max([w, len(h) + 2] + [len(cells[j]) + 2 for _, cells in rows])
            for j, (h, w) in enumerate(zip(headers, widths))]
    lines = [f"{title:<{name_width}}" + "".join(f"{h:>{w}}" for h, w in zip(headers, cols))]
    for name, cells in rows:
        lines.append(f"  {name:<{name_width - 2}}" + "".join(f"{c:>{w}}" for c, w in zip(cells, cols)))
    return lines


def window_text(window: dict[str, str | None]) -> str:
    """``--from``/``--to`` in words: which records a report or an info describes."""
    parts = [f"{word} {_human_time(dt.datetime.fromisoformat(t))}"
             for word, t in (("from", window.get("from")), ("before", window.get("to"))) if t]
    return "window: " + ", ".join(parts) + " (--from/--to); records numbered from the window's first"


def format_report(report: dict[str, Any], rules: list[str] | None = None) -> str:
    """The report as text for a terminal; with ``rules`` (``--fail-on``), a last section saying which fired."""
    lines = []
    name = os.path.basename(report["file"])
    k, samples = report["instances"], report["samples"]
    names = report.get("instance_names")
    if names is not None:  # a capture: instances by name
        size = f"{report['bytes']:,} bytes"
        if report.get("instance") is not None:  # one instance's records, from buffers it shares with the others
            size = f"of the file's {size}"
        head = (f"{name}: {_plural(report['records'], 'record')} from {_FORMAT_TEXT[report['input_format']]} "
                f"({size}), {_plural(k, 'instance')} x up to {_plural(samples, 'sample')}")
    else:
        head = f"{name}: {_plural(report['records'], 'record')} ({report['bytes']:,} bytes)"
        if k > 1:
            head += f", {k} interleaved instances x {_plural(samples, 'sample')}"
    if report["interval_seconds"] is not None:
        head += f", every {report['interval_seconds']:g} s"
    elif report.get("median_step_seconds") is not None:
        head += f", every {report['median_step_seconds']:g} s (median, from the timestamps)"
    lines.append(head)
    if names:
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        lines.append(f"  instances: {shown}")
    detail = []
    if report["start"] is not None:
        detail.append(f"from {_human_time(dt.datetime.fromisoformat(report['start']))} "
                      f"to {_human_time(dt.datetime.fromisoformat(report['end']))}")
    if report["duration_seconds"] is not None:
        detail.append(f"spanning {human_duration(report['duration_seconds'])}")
    detail.append(f"decreases read with --on-decrease {report['on_decrease']}")
    lines.append("  " + "; ".join(detail))
    if report.get("window"):
        lines.append("  " + window_text(report["window"]))
    if report["trailing_bytes"]:
        lines.append(f"  ignored {report['trailing_bytes']} trailing byte(s) of a partial record at the end")
    lines.append("")

    unit = "/s" if report["rate_unit"] == "per second" else "/interval"
    title = "Counters" + (" (all instances)" if k > 1 else "")
    counters = report["counters"]
    means = rate_column([c["mean_rate"] for c in counters.values()])
    peaks = rate_column([c["peak_rate"] for c in counters.values()])
    rows = [(cname, [_fmt_int(c["increase"]), mean, peak,
                     f"{c['restarts']:,}" + (f" +{c['wraps']:,} wrap" if c["wraps"] else "")])
            for (cname, c), mean, peak in zip(counters.items(), means, peaks)]
    lines += _table(title, ["increase", "mean" + unit, "peak" + unit, "restarts"], rows, [16, 14, 14, 10])
    lines.append("")
    title = "Gauges" + (" (per instance)" if k > 1 else "")
    gauges = report["gauges"]
    gmeans = rate_column([g["mean"] for g in gauges.values()])
    rows = [(gname, [_fmt_int(g["min"]), mean, _fmt_int(g["max"])])
            for (gname, g), mean in zip(gauges.items(), gmeans)]
    lines += _table(title, ["min", "mean", "max"], rows, [16, 14, 14])
    lines.append("")
    lines.append("Findings")
    marks = {"warning": "!", "info": "-", "ok": "+"}
    for f in report["findings"]:
        lines.append(textwrap.fill(f["text"], width=100, initial_indent=f"  {marks[f['level']]} ",
                                   subsequent_indent="    ", break_on_hyphens=False))
    if rules:
        lines.append("")
        lines.append("Rules (--fail-on)")
        fired = {f["rule"]: f for f in report.get("fired_rules", [])}
        for rule in rules:
            hit = fired.get(rule)
            if hit is None:
                lines.append(f"  + {rule}: not fired")
            elif "value" in hit:
                v = hit["value"]
                shown = f"{v:,}" if isinstance(v, int) else repr(v)
                lines.append(f"  ! {rule}: FIRED (value {shown})")
            else:
                lines.append(f"  ! {rule}: FIRED ({len(hit['findings'])} finding(s))")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- info


def build_info(stats: LogStats, *, trailing_bytes: int, interval: float | None,
               start: dt.datetime | None, stride_given: bool) -> dict[str, Any]:
    """What ``ipsecstats info`` prints, as plain data."""
    capture = stats.instance_names is not None
    known = stride_given or capture
    return {
        "file": stats.path,
        "input_format": stats.input_format,
        "bytes": _bytes(stats, trailing_bytes),
        "records": stats.records,
        "trailing_bytes": trailing_bytes,
        "instances": stats.stride if known else None,
        "instance_names": list(stats.instance_names) if capture else None,  # type: ignore[arg-type]
        "samples": stats.samples if known else None,
        "incomplete_last_sample": bool(stats.records % stats.stride) if known else None,
        "interval_seconds": interval,
        "median_step_seconds": stats.median_step,
        **_span(stats, interval, start),
        "decreasing_counters": {
            name: {"restarts": stats.restarts[k], "wraps": stats.wraps[k]}
            for k, name in enumerate(COUNTERS) if stats.restarts[k] or stats.wraps[k]
        },
        "decrease_events": stats.event_count,
        "hints": [h for h in [None if stride_given else stride_hint(stats)] if h],
    }


def format_info(info: dict[str, Any]) -> str:
    lines = [info["file"]]
    lines.append(f"  size        {info['bytes']:,} bytes")
    tail = f", plus {info['trailing_bytes']} trailing byte(s) (a partial record)" if info["trailing_bytes"] else ""
    lines.append(f"  records     {info['records']:,} of {RECORD_SIZE} bytes{tail}")
    if info.get("window"):
        lines.append(f"  window      {window_text(info['window'])[len('window: '):]}")
    if info.get("instance_names") is not None:
        lines.append(f"  format      {_FORMAT_TEXT[info['input_format']]}")
        lines.append(f"  instances   {info['instances']}, up to {info['samples']:,} samples each: "
                     + ", ".join(info["instance_names"][:8]) + (" ..." if len(info["instance_names"]) > 8 else ""))
    elif info["instances"] is not None:
        extra = " (the last one incomplete)" if info["incomplete_last_sample"] else ""
        lines.append(f"  instances   {info['instances']}, {info['samples']:,} samples{extra}")
    if info["duration_seconds"] is not None:
        span = human_duration(info["duration_seconds"])
        if info["start"] is not None:
            span = (f"{_human_time(dt.datetime.fromisoformat(info['start']))} to "
                    f"{_human_time(dt.datetime.fromisoformat(info['end']))} ({span})")
        lines.append(f"  time span   {span}")
    dec = info["decreasing_counters"]
    if dec:
        parts = []
        for name, d in dec.items():
            text = f"{name} ({d['restarts']}" + (f", {d['wraps']} wrap(s)" if d["wraps"] else "") + ")"
            parts.append(text)
        lines.append(f"  decreasing  {len(dec)} counter(s) fell, in {info['decrease_events']} row(s): " + ", ".join(parts))
    else:
        lines.append("  decreasing  no counter ever decreases")
    for hint in info.get("hints", []):
        lines.append(textwrap.fill(hint, width=100, initial_indent="  hint        ", subsequent_indent=" " * 14))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- by instance


def instance_reports(stats: LogStats, *, interval: float | None, start: dt.datetime | None) -> list[dict[str, Any]]:
    """``build_report`` of each instance alone (``scan(by_instance=True)``), each with its ``instance``:
    the number of an interleaved instance of a raw log, the name (with its host) in a capture."""
    reports = []
    for one in stats.instances or []:
        report = build_report(one, interval=interval, start=start)
        report["instance"] = one.instance_names[0] if one.instance_names else one.instance
        reports.append(report)
    return reports


def format_instances(reports: list[dict[str, Any]]) -> str:
    """The per-instance sections as text: each instance's report under a heading."""
    return "".join(f"\n=== instance {r['instance']} alone ===\n" + format_report(r) for r in reports)
