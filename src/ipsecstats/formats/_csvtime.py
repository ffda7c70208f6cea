"""Times in a CIM CSV's time column, as ns since 1970 UTC: ISO 8601, FILETIME ticks, culture formats.

``TimeParser(fmt, zone, spell)`` parses one cell's text:

* ``YYYY-MM-DD[T ]hh:mm:ss[.f{1,9}]`` with ``Z`` or ``+-hh[:]mm`` (``Get-Date -Format o``):
  ns = (days * 86400 + h * 3600 + m * 60 + s - offset) * 10**9 + fraction, exact;
* the same without an offset, and a ``fmt`` (strptime) result without ``%z``: a local
  (wall) time of ``zone``; offset = ``zone.utcoffset(wall)``. A wall time that occurs twice
  (clocks go back) is read as its first occurrence (``fold=0``: the earlier instant); one
  that never occurs (clocks skip forward) is an error. Without a zone, UTC (the reader warns);
* 1..20 digits: FILETIME ticks (100 ns since 1601 UTC): ns = (ticks - 116444736000000000) * 100;
* anything else without ``fmt`` (``6/3/2024 2:00:00 AM``: June 3 or March 6?) is an error
  that shows a ``fmt`` for the value seen: the order of day and month is never guessed.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable

from .._wnode_layout import FILETIME_UNIX_EPOCH, TICKS_MAX, TICKS_MIN

__all__ = ["TimeError", "TimeParser", "compile_format", "is_kernel_time", "parse_zone", "suggest_formats"]

_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?\Z")
_TICKS = re.compile(r"[0-9]{1,20}\Z")
_FIXED = re.compile(r"(?:UTC|GMT)?([+-])(\d\d):?(\d\d)\Z")
_CULTURE = re.compile(r"(\d{1,4})([./-])(\d{1,2})\2(\d{1,4})(?:[ T]+(\d{1,2}):(\d\d)(?::(\d\d))?"
                      r"(?:[.,]\d+)?\s*([AaPp]\.?[Mm]\.?)?)?\s*\Z")
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()
_NS_MAX = 2**63 - 1  # -2**63 is NaT


class TimeError(ValueError):
    """A time cell that cannot be read (the reader adds line and column)."""


def parse_zone(text: str | None, spell: Callable[[str], str]) -> _dt.tzinfo | None:
    """``None``, ``UTC``/``Z``, a fixed offset ``+02:00`` / ``-0530``, or an IANA name (``zoneinfo``)."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"{spell('timezone')}: an IANA name such as Europe/Berlin or an offset such as +02:00, "
                        f"got {type(text).__name__}")
    if text in ("UTC", "Z", "utc"):
        return _dt.timezone.utc
    m = _FIXED.match(text)
    if m:
        hours, minutes = int(m.group(2)), int(m.group(3))
        if minutes > 59 or hours * 60 + minutes > 14 * 60:
            raise ValueError(f"{spell('timezone')} {text!r}: an offset is at most 14:00 either way, minutes below 60")
        delta = _dt.timedelta(hours=hours, minutes=minutes)
        return _dt.timezone(-delta if m.group(1) == "-" else delta)
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, a name too long
        raise ValueError(f"{spell('timezone')} {text!r}: no such time zone (an IANA name such as Europe/Berlin, "
                         "or an offset such as +02:00; pip install tzdata where the system has no zone "
                         "database)") from None


def is_kernel_time(text: str) -> bool:
    """Whether the row kernel reads ``text`` itself: ISO 8601 with an offset, or FILETIME ticks."""
    m = _ISO.match(text)
    return bool(m and m.group(8)) or bool(_TICKS.match(text))


def suggest_formats(text: str) -> list[tuple[str, str]]:
    """strptime formats that read ``text``, each with the culture that writes it (first: the likelier)."""
    m = _CULTURE.match(text.strip())
    if not m:
        return []
    a, sep, _, c = m.group(1), m.group(2), m.group(3), m.group(4)
    clock = ""
    if m.group(5):
        clock = " %I:%M" if m.group(8) else " %H:%M"
        clock += ":%S" if m.group(7) else ""
        clock += " %p" if m.group(8) else ""
    if len(a) == 4:
        return [(f"%Y{sep}%m{sep}%d{clock}", "year first")]
    year = "%Y" if len(c) == 4 else "%y"
    day_first = (f"%d{sep}%m{sep}{year}{clock}", "day first, e.g. de-DE, en-GB")
    month_first = (f"%m{sep}%d{sep}{year}{clock}", "month first, e.g. en-US")
    return [day_first, month_first] if sep == "." or int(a) > 12 else [month_first, day_first]


#: Directives the fast path reads itself (strptime's meaning; %p as in the C locale).
_FAST = {"d": r"(?P<d>\d{1,2})", "m": r"(?P<m>\d{1,2})", "Y": r"(?P<Y>\d{4})", "H": r"(?P<H>\d{1,2})",
         "I": r"(?P<I>\d{1,2})", "M": r"(?P<M>\d{1,2})", "S": r"(?P<S>\d{1,2})", "p": r"(?P<p>AM|PM)",
         "f": r"(?P<f>\d{1,6})"}


def compile_format(fmt: str) -> re.Pattern[str] | None:
    """A regex that reads ``fmt`` as strptime does, for formats of the ``_FAST`` directives each
    used once and each followed by a non-digit literal or the end (so no split is ambiguous);
    None for any other format (strptime itself reads those)."""
    parts, seen, i = [], set(), 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%":
            d = fmt[i + 1: i + 2]
            if d not in _FAST or d in seen:
                return None
            if i + 2 < len(fmt) and (fmt[i + 2] == "%" or fmt[i + 2].isdigit()):
                return None
            seen.add(d)
            parts.append(_FAST[d])
            i += 2
        elif c.isspace():
            while i < len(fmt) and fmt[i].isspace():
                i += 1
            parts.append(r"\s+")
        else:
            parts.append(re.escape(c))
            i += 1
    return re.compile("".join(parts), re.IGNORECASE | re.ASCII)


def _fast_strptime(m: re.Match[str]) -> _dt.datetime:
    """The naive datetime strptime gives for a match of ``compile_format`` (ValueError if none exists)."""
    g = m.groupdict()
    hour = int(g["H"]) if g.get("H") is not None else 0
    if g.get("I") is not None:
        hour = int(g["I"])
        if not 1 <= hour <= 12:
            raise ValueError(f"hour {hour} is not 1..12")
        hour = hour % 12 + (12 if (g.get("p") or "AM").upper() == "PM" else 0)
    frac = g.get("f")
    return _dt.datetime(int(g["Y"]) if g.get("Y") is not None else 1900, int(g.get("m") or 1), int(g.get("d") or 1),
                        hour, int(g.get("M") or 0), int(g.get("S") or 0), int(frac.ljust(6, "0")) if frac else 0)


class TimeParser:
    """``parse(text) -> ns`` for one column (see the module docstring); ``naive_seen`` tells
    whether a wall time was read without a zone (as UTC); ``repeated`` is the first wall time
    read that the zone repeats (clocks going back), None until one is."""

    def __init__(self, fmt: str | None, zone: _dt.tzinfo | None, spell: Callable[[str], str]):
        self.fmt = fmt
        self._fast = compile_format(fmt) if fmt is not None else None
        self.zone = zone
        self.spell = spell
        self.naive_seen = False
        self.repeated: str | None = None

    def parse(self, text: str) -> int:
        if self.fmt is not None:
            m = self._fast.fullmatch(text) if self._fast is not None else None
            try:
                when = _fast_strptime(m) if m is not None else _dt.datetime.strptime(text, self.fmt)
            except ValueError as exc:
                raise TimeError(f"{text!r} does not match {self.spell('timestamp_format')} {self.fmt!r} ({exc})") \
                    from None
            offset = when.utcoffset()
            if offset is None:
                return self._local(when.replace(microsecond=0), when.microsecond * 1000, text)
            return _ns(when.replace(tzinfo=None, microsecond=0), when.microsecond * 1000,
                       int(offset.total_seconds()), text)
        m = _ISO.match(text)
        if m:
            y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
            frac = int((m.group(7) or "").ljust(9, "0"))
            try:
                wall = _dt.datetime(y, mo, d, h, mi, s)
            except ValueError as exc:
                raise TimeError(f"{text!r}: {exc}") from None
            off = m.group(8)
            if off is None:
                return self._local(wall, frac, text)
            if off == "Z":
                return _ns(wall, frac, 0, text)
            digits = off[1:].replace(":", "")
            oh, om = int(digits[:2]), int(digits[2:])
            if om > 59 or oh * 60 + om > 14 * 60:
                raise TimeError(f"{text!r}: UTC offset out of range (at most 14:00 either way, minutes below 60)")
            return _ns(wall, frac, (oh * 3600 + om * 60) * (-1 if off[0] == "-" else 1), text)
        if _TICKS.match(text):
            ticks = int(text)
            if not TICKS_MIN <= ticks <= TICKS_MAX:
                raise TimeError(f"{text} read as FILETIME ticks (100 ns since 1601, as from ToFileTimeUtc()) is "
                                "outside the datetime64[ns] range 1677..2262")
            return (ticks - FILETIME_UNIX_EPOCH) * 100
        formats = suggest_formats(text)
        flag = self.spell("timestamp_format")
        if formats:
            shown = " or ".join(f"{fmt!r} ({who})" for fmt, who in formats)
            raise TimeError(f"{text!r} is a culture date, not ISO 8601: the order of day and month is not guessed; "
                            f"pass {flag} with its format, e.g. {shown}")
        raise TimeError(f"{text!r} is neither ISO 8601 (Get-Date -Format o) nor FILETIME ticks "
                        f"((Get-Date).ToFileTimeUtc()); pass {flag} (strptime syntax) for other forms")

    def _local(self, wall: _dt.datetime, frac: int, text: str) -> int:
        zone = self.zone
        if zone is None:
            self.naive_seen = True
            return _ns(wall, frac, 0, text)
        if not 1678 <= wall.year <= 2261:
            raise TimeError(f"{text!r} is outside the datetime64[ns] range 1677..2262")
        first = wall.replace(tzinfo=zone).utcoffset()
        second = wall.replace(tzinfo=zone, fold=1).utcoffset()
        assert first is not None and second is not None
        if first < second:  # PEP 495: in a gap, fold=0 is the offset before, fold=1 the larger one after
            raise TimeError(f"{text!r} does not exist in time zone {zone} (the clocks skip that hour); "
                            f"is {self.spell('timezone')} the zone the times were written in?")
        if first > second:  # the repeated hour: fold=0, the earlier instant
            self.repeated = self.repeated or text
        return _ns(wall, frac, int(first.total_seconds()), text)


def _ns(wall: _dt.datetime, frac: int, offset: int, text: str) -> int:
    """ns since 1970 UTC of a wall time at UTC offset ``offset`` seconds, exact."""
    secs = (wall.toordinal() - _EPOCH_ORDINAL) * 86400 + wall.hour * 3600 + wall.minute * 60 + wall.second - offset
    ns = secs * 1_000_000_000 + frac
    if not -_NS_MAX <= ns <= _NS_MAX:
        raise TimeError(f"{text!r} is outside the datetime64[ns] range 1677..2262")
    return ns
