"""The chunk type every reader yields: ``Capture``, records with their time and instance.

A reader turns a capture file into a stream of ``Capture`` chunks; a whole file is one
``Capture`` (``concat`` of its chunks). ``instance_codes`` index ``instance_names``, a
table that only grows: every chunk carries the whole table as it stood after its last
record, so a code means the same name in every chunk of a stream (``NameTable`` keeps
it). ``start`` is the index in the source of the chunk's first record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from ._decode import as_record_array, record_bytes_2d
from ._deltas import deltas as _deltas
from ._deltas import rates as _rates
from ._schema import RECORD_DTYPE

__all__ = ["Capture", "InstanceLabels", "NameTable", "as_datetime_ns", "concat", "instance_label"]


@dataclass(frozen=True)
class InstanceLabels:
    """A column of instance names kept as ``codes`` into ``names`` (no Python string per row)."""

    codes: npt.NDArray[np.intp]
    names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def __getitem__(self, rows: Any) -> InstanceLabels:
        return InstanceLabels(self.codes[rows], self.names)

    def tolist(self) -> list[str]:
        return np.array(self.names, dtype=object)[self.codes].tolist()  # type: ignore[no-any-return]


def instance_label(name: str, host: str | None) -> str:
    """The label of an instance: its name, or ``"HOST NAME"`` when the source names a host
    (host names hold no space, so the first space splits a label again)."""
    return f"{host} {name}" if host else name


class NameTable:
    """Instance labels in order of first appearance, each with a stable code.

    Lookups go through a Python dict (keyed SipHash: crafted names cannot flood it).
    ``names`` is the table as a tuple, rebuilt only after a label was added. A source
    that names hosts (a CSV's ``PSComputerName``, a perfmon path's ``\\\\HOST``) adds
    ``(name, host)`` pairs: the label is ``instance_label(name, host)`` and ``hosts``
    gives the host of every code ("" where a row named none); else ``hosts`` is None.
    """

    __slots__ = ("_hosts", "_index", "_names")

    def __init__(self, names: Iterable[str] = ()):
        self._index: dict[str, int] = {}
        self._hosts: list[str] | None = None
        for name in names:
            self.code(name)
        self._names: tuple[str, ...] = tuple(self._index)

    def code(self, name: str, host: str | None = None) -> int:
        """The code of instance ``name`` (of ``host``, when the source names hosts), added when new."""
        label = instance_label(name, host)
        code = self._index.get(label)
        if code is None:
            code = self._index[label] = len(self._index)
            if host is not None and self._hosts is None:
                self._hosts = [""] * code
            if self._hosts is not None:
                self._hosts.append(host or "")
        return code

    def codes(self, names: Sequence[str]) -> npt.NDArray[np.intp]:
        """The code of each of ``names``."""
        return np.fromiter((self.code(s) for s in names), dtype=np.intp, count=len(names))

    @property
    def names(self) -> tuple[str, ...]:
        if len(self._names) != len(self._index):
            self._names = tuple(self._index)
        return self._names

    @property
    def hosts(self) -> tuple[str, ...] | None:
        return None if self._hosts is None else tuple(self._hosts)

    def __len__(self) -> int:
        return len(self._index)


@dataclass(frozen=True, eq=False)
class Capture:
    """Records with the time and the instance of each: what WNODE buffers and CIM CSV carry.

    ``records``: 1-D ``RECORD_DTYPE``; ``timestamps``: datetime64[ns] UTC per record (NaT where
    the source had none) or None; ``instance_codes``: per record an index into
    ``instance_names`` (distinct names in order of first appearance). ``instances`` gives the
    name of every record. Records keep the order of the source; ``start`` is the index
    in the source of the first one (a chunk of a stream; 0 for a whole file). A chunk
    carries the whole name table of its stream, so names may outnumber the codes used.

    ``instance_hosts``: for sources that name hosts (several computers in one CSV, perfmon
    paths), the host of each entry of ``instance_names``, whose entries are then labels
    ``"HOST NAME"`` (``instance_label``): two hosts' equal PDO names stay apart. None
    for sources without hosts.
    """

    records: npt.NDArray[np.void]
    timestamps: npt.NDArray[np.datetime64] | None
    instance_codes: npt.NDArray[np.intp]
    instance_names: tuple[str, ...]
    start: int = 0
    instance_hosts: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        recs, codes, names = self.records, self.instance_codes, self.instance_names
        if not isinstance(recs, np.ndarray) or recs.dtype != RECORD_DTYPE or recs.ndim != 1:
            raise TypeError("Capture.records must be a 1-D array of ipsecstats.RECORD_DTYPE")
        n = recs.shape[0]
        ts = self.timestamps
        if ts is not None and (not isinstance(ts, np.ndarray) or ts.dtype != np.dtype("datetime64[ns]")
                               or ts.shape != (n,)):
            raise TypeError(f"Capture.timestamps must be None or datetime64[ns] of shape ({n},)")
        if not isinstance(codes, np.ndarray) or codes.dtype != np.intp or codes.shape != (n,):
            raise TypeError(f"Capture.instance_codes must be an intp array of shape ({n},)")
        if not isinstance(names, tuple) or not all(isinstance(s, str) for s in names):
            raise TypeError("Capture.instance_names must be a tuple of str")
        if len(set(names)) != len(names):
            raise ValueError("Capture.instance_names must be distinct")
        if isinstance(self.start, bool) or not isinstance(self.start, int) or self.start < 0:
            raise TypeError(f"Capture.start must be an int >= 0, got {self.start!r}")
        if n and (int(codes.min()) < 0 or int(codes.max()) >= len(names)):
            raise ValueError(f"Capture.instance_codes must lie in [0, {len(names)})")
        hosts = self.instance_hosts
        if hosts is not None:
            if not isinstance(hosts, tuple) or len(hosts) != len(names) or not all(isinstance(h, str) for h in hosts):
                raise TypeError("Capture.instance_hosts must be None or a tuple of str, one per instance name")
            if any(h and not label.startswith(h + " ") for h, label in zip(hosts, names)):
                raise ValueError("Capture.instance_names must be the labels 'HOST NAME' of their instance_hosts")

    def bare_names(self) -> tuple[str, ...]:
        """``instance_names`` without their host (the sources' own instance names)."""
        if self.instance_hosts is None:
            return self.instance_names
        return tuple(label[len(h) + 1:] if h else label for h, label in zip(self.instance_hosts, self.instance_names))

    @classmethod
    def from_instances(cls, records: Any, timestamps: Any, instances: Any) -> Capture:
        """A Capture from records, timestamps (datetime64 or None) and one name per record."""
        recs = as_record_array(records, "Capture.from_instances()")
        n = recs.shape[0]
        names_in = [instances] * n if isinstance(instances, str) else list(instances)
        if len(names_in) != n or not all(isinstance(s, str) for s in names_in):
            raise ValueError(f"instances must hold one str per record ({n})")
        index: dict[str, int] = {}
        codes = np.fromiter((index.setdefault(s, len(index)) for s in names_in), dtype=np.intp, count=n)
        ts = None
        if timestamps is not None:
            ts = as_datetime_ns(timestamps, n, "timestamps")
        return cls(recs, ts, codes, tuple(index))

    def __len__(self) -> int:
        return int(self.records.shape[0])

    @property
    def instances(self) -> npt.NDArray[np.object_]:
        """The instance name of every record (an object array of str)."""
        return np.array(self.instance_names, dtype=object)[self.instance_codes]

    def by_instance(self) -> dict[str, Capture]:
        """One Capture per instance name (first-appearance order), records in source order."""
        if len(self.instance_names) == 1:
            return {self.instance_names[0]: self}
        order = np.argsort(self.instance_codes, kind="stable")
        bounds = np.cumsum(np.bincount(self.instance_codes, minlength=len(self.instance_names)))
        rows = record_bytes_2d(self.records)
        out: dict[str, Capture] = {}
        start = 0
        for code, name in enumerate(self.instance_names):
            idx = order[start: bounds[code]]
            start = int(bounds[code])
            recs = rows[idx].view(RECORD_DTYPE).reshape(-1)
            ts = None if self.timestamps is None else self.timestamps[idx]
            host = None if self.instance_hosts is None else (self.instance_hosts[code],)
            out[name] = Capture(recs, ts, np.zeros(idx.shape[0], dtype=np.intp), (name,), 0, host)
        return out

    def deltas(self, **kwargs: Any) -> dict[str, Any]:
        """``ipsecstats.deltas`` of each instance's own series: {name: deltas}.

        Row ``i`` of an instance covers its samples ``i`` and ``i + 1`` (``by_instance()``
        gives the timestamps). Keyword arguments go to ``ipsecstats.deltas``.
        """
        return {name: _deltas(sub.records, **kwargs) for name, sub in self.by_instance().items()}

    def rates(self, *, interval: float | None = None, **kwargs: Any) -> dict[str, npt.NDArray[np.void]]:
        """``ipsecstats.rates`` of each instance: {name: per-second rates}.

        The time step comes from the timestamps (NaT or a step <= 0 gives NaN in that row),
        or from ``interval`` seconds when given or when the capture has no timestamps.
        """
        if interval is None and self.timestamps is None:
            raise ValueError("this capture has no timestamps: pass interval= (seconds per sample)")
        out = {}
        for name, sub in self.by_instance().items():
            if interval is not None:
                out[name] = _rates(sub.records, interval=interval, **kwargs)
            else:
                out[name] = _rates(sub.records, timestamps=sub.timestamps, **kwargs)
        return out


# Nanoseconds per unit of the linear datetime64 units; "Y" and "M" (calendar) go through "D".
_NS_PER_UNIT = {"W": Fraction(604_800 * 10**9), "D": Fraction(86_400 * 10**9), "h": Fraction(3_600 * 10**9),
                "m": Fraction(60 * 10**9), "s": Fraction(10**9), "ms": Fraction(10**6), "us": Fraction(10**3),
                "ns": Fraction(1), "ps": Fraction(1, 10**3), "fs": Fraction(1, 10**6), "as": Fraction(1, 10**9)}
_INT64_MAX = 2**63 - 1
_NS_RANGE = "1677-09-21T00:12:43.145224193..2262-04-11T23:47:16.854775807"


def _within_ns(ts: npt.NDArray[np.datetime64]) -> npt.NDArray[np.bool_]:
    """Where ``ts`` (NaT aside) lies in datetime64[ns]'s range, decided in its own unit, before
    any cast: ``|value| * (ns per unit) <= 2**63 - 1`` (-2**63 is NaT). numpy < 2.5 wraps an
    overflowing cast, numpy >= 2.5 raises OverflowError."""
    unit, count = np.datetime_data(ts.dtype)
    if unit == "generic":  # a unitless datetime64 array holds only NaT
        return np.ones(ts.shape, dtype=bool)
    v = ts.view(np.int64)
    if unit in ("Y", "M"):
        # +-292 years around 1970 bound the ns range; within +-1000 years the cast to days is safe
        bound = 1000 * (1 if unit == "Y" else 12) // count
        near = (v >= -bound) & (v <= bound)
        days = np.where(near, ts, np.array("NaT", ts.dtype)).astype("datetime64[D]")
        return near & _within_ns(days)
    limit = int(_INT64_MAX // (_NS_PER_UNIT[unit] * count))
    return (v >= -limit) & (v <= limit)


def _ns_ratio(dtype: np.dtype[Any]) -> Fraction | None:
    """ns per unit as p / q in lowest terms; None for calendar units ("Y", "M") and "generic"."""
    unit, count = np.datetime_data(dtype)
    return None if unit in ("generic", "Y", "M") else _NS_PER_UNIT[unit] * count


def _show(ts: npt.NDArray[np.datetime64], i: int) -> str:
    """``ts[i]`` as text; numpy >= 2.5 cannot print some values of units like 1000000ps."""
    try:
        return str(ts[i])
    except OverflowError:
        unit, count = np.datetime_data(ts.dtype)
        return f"{int(ts.view(np.int64)[i])} x {count}{unit}"


def as_datetime_ns(timestamps: Any, n: int, what: str) -> npt.NDArray[np.datetime64]:
    """``timestamps`` as datetime64[ns] of shape (n,), refusing lossy or overflowing casts.

    Range and exactness are checked in the input's unit before any cast, so a bad value is the
    same ValueError on every numpy version: ``|value| <= floor((2**63 - 1) / (ns per unit))``,
    and a unit finer than 1 ns must hold whole ns."""
    ts = np.asarray(timestamps)
    if ts.dtype.kind != "M":
        raise TypeError(f"{what} must be datetime64 values, got dtype {ts.dtype}")
    if ts.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), got {ts.shape}")
    nat = np.isnat(ts)
    inside = _within_ns(ts) | nat
    if not inside.all():
        i = int(np.argmin(inside))
        raise ValueError(f"{what}[{i}] = {_show(ts, i)} is outside the datetime64[ns] range {_NS_RANGE}: "
                         "not representable as datetime64[ns] exactly")
    ratio = _ns_ratio(ts.dtype)
    if ratio is None or ratio.denominator == 1:  # whole ns per unit: numpy's cast multiplies, exactly
        return ts.astype("datetime64[ns]")
    # A unit finer than 1 ns: whole ns only (a multiple of q), converted here as (v // q) * p,
    # since numpy's own floor-dividing cast overflows for values near -2**63.
    v = ts.view(np.int64)
    exact = (v % ratio.denominator == 0) | nat
    if not exact.all():
        i = int(np.argmin(exact))
        raise ValueError(f"{what}[{i}] = {_show(ts, i)} is not representable as datetime64[ns] exactly")
    ns = v // ratio.denominator * ratio.numerator
    ns[nat] = np.iinfo(np.int64).min  # NaT
    return ns.view("datetime64[ns]")


def concat(chunks: Iterable[Capture]) -> Capture:
    """One Capture of consecutive chunks of one stream (codes index the last chunk's table)."""
    parts = list(chunks)
    if not parts:
        return Capture(np.empty(0, RECORD_DTYPE), None, np.empty(0, np.intp), ())
    names, hosts = parts[-1].instance_names, parts[-1].instance_hosts
    for p in parts:
        if names[: len(p.instance_names)] != p.instance_names or (p.instance_hosts is None) != (hosts is None):
            raise ValueError("chunks of different streams: their name tables disagree")
    stamped = [p.timestamps is not None for p in parts]
    if any(stamped) and not all(stamped):
        raise ValueError("chunks of different streams: some have timestamps, some not")
    if len(parts) == 1:
        return parts[0]
    timestamps = np.concatenate([p.timestamps for p in parts]) if all(stamped) else None  # type: ignore[misc]
    # dtype=: numpy's promotion would make the rows native-endian on a big-endian host
    return Capture(np.concatenate([p.records for p in parts], dtype=RECORD_DTYPE), timestamps,
                   np.concatenate([p.instance_codes for p in parts]), names, parts[0].start, hosts)
