"""Records as OpenMetrics text, for ``promtool tsdb create-blocks-from openmetrics``.

Every field is one metric family named ``ipsec_`` + its snake_case name: counters are
``counter`` families (samples ``ipsec_key_additions_total``), gauges ``gauge`` families.
Each sample is the raw value (an exact integer, 2**64 - 1 printed as
18446744073709551615; Prometheus stores it as a float64) with the record's time in
seconds (decimals as needed) and labels ``instance`` and, when the source names hosts,
``host``. A counter that falls (a restart) is written as it is, so PromQL's ``resets()``
and ``rate()`` see the restart.

OpenMetrics keeps the samples of a family together, so the records are spooled to one
temporary file per family (bounded memory, any file size) and joined at the end,
followed by ``# EOF``. The lines are formatted by the kernel's ``format_rows`` (label
sets as a table per family, exact integers, the times rendered once per chunk).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterable
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from . import _backend
from ._capture import InstanceLabels
from ._schema import FIELDS

__all__ = ["PREFIX", "metric_name", "write_openmetrics"]

PREFIX = "ipsec_"


def metric_name(field: str) -> str:
    """``ipsec_`` + the field name in snake_case: ``TotalGetSPI`` -> ``ipsec_total_get_spi``."""
    words = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", field)
    return PREFIX + re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", words).lower()


def _label_value(text: str) -> str:
    """A label value quoted as OpenMetrics wants: backslash, double quote and line feed escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _seconds(ns: npt.NDArray[np.int64]) -> list[str]:
    """Nanoseconds since the epoch as seconds: ``1700000000``, ``1700000000.25`` or, before
    1970, ``-0.5`` (exact decimals)."""
    out = []
    for t in ns.tolist():
        sign, t = ("-", -t) if t < 0 else ("", t)
        s, f = divmod(t, 10**9)
        out.append(f"{sign}{s}.{f:09d}".rstrip("0") if f else f"{sign}{s}")
    return out


def _labels(leading: dict[str, Any], stride: int) -> tuple[npt.NDArray[np.int64], list[str]]:
    """The label set of every row as codes into label texts ``{instance="...",host="..."}``."""
    inst = leading.get("instance")
    host = leading.get("host")
    if isinstance(inst, InstanceLabels):
        names = [_label_value(n) for n in inst.names]
        if isinstance(host, InstanceLabels):
            table = [f"{{instance={n},host={_label_value(h)}}}" if h else f"{{instance={n}}}"
                     for n, h in zip(names, host.names)]
        else:
            table = [f"{{instance={n}}}" for n in names]
        return inst.codes.astype(np.int64), table
    record = np.asarray(leading["record"], dtype=np.uint64)
    present, codes = np.unique(record % np.uint64(stride), return_inverse=True)
    return codes.reshape(-1).astype(np.int64), [f'{{instance="{i}"}}' for i in present.tolist()]


def _times(leading: dict[str, Any], first_record: int) -> npt.NDArray[np.int64]:
    """The time of every row in integer nanoseconds; an error names the first row without one."""
    stamps = leading.get("timestamp", leading.get("time"))
    if stamps is None:
        raise ValueError("OpenMetrics needs a time for every sample: this log has no timestamps "
                         "(a raw log: pass --start and --interval)")
    ns = np.asarray(stamps).astype("datetime64[ns]")
    nat = np.isnat(ns)
    if nat.any():
        at = int(np.flatnonzero(nat)[0])
        record = int(leading["record"][at]) if "record" in leading else first_record + at
        raise ValueError(f"record {record:,} has no timestamp: OpenMetrics needs a time for every sample")
    return ns.view(np.int64)


def write_openmetrics(f: IO[bytes], chunks: Iterable[tuple[dict[str, Any], npt.NDArray[np.void]]],
                      stride: int = 1) -> None:
    """Write ``(leading columns, records)`` chunks to ``f`` as one OpenMetrics exposition.

    ``leading``: ``record`` and ``timestamp`` (datetime64) or ``time``, and ``instance``
    (and ``host``) as ``InstanceLabels``; without ``instance`` labels, the instance of a
    row is ``record % stride`` (a raw log).
    """
    spools: list[IO[bytes]] = []
    try:
        for field in FIELDS:
            spools.append(tempfile.TemporaryFile())
        for leading, arr in chunks:
            m = arr.shape[0]
            if m == 0:
                continue
            times = np.array([t.encode() for t in _seconds(_times(leading, 0))], dtype=bytes)
            time_col = times.view(np.uint8).reshape(m, times.dtype.itemsize)
            codes, labels = _labels(leading, stride)
            for field, spool in zip(FIELDS, spools):
                sample = metric_name(field.name) + ("_total" if field.kind == "counter" else "")
                table = tuple(f"{sample}{lab} ".encode("utf-8") for lab in labels)
                values = np.asarray(arr[field.name]).astype(np.uint64, copy=False)
                spool.write(_backend.KERNEL.format_rows([codes.view(np.uint64), values, time_col], bytes([4, 0, 5]),
                                                        [table, None, None], [b"", b"", b" "], b"\n", 0, m))
        for field, spool in zip(FIELDS, spools):
            name = metric_name(field.name)
            help_text = field.description.replace("\\", "\\\\").replace("\n", "\\n")
            f.write(f"# TYPE {name} {field.kind}\n# HELP {name} {help_text}\n".encode("utf-8"))
            spool.seek(0)
            shutil.copyfileobj(spool, f, 1 << 20)
        f.write(b"# EOF\n")
    finally:
        for spool in spools:
            spool.close()
