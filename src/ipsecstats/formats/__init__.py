"""Input formats: one module per format, each a ``FORMAT`` with a sniff test and a chunk reader.

Like Pillow's plugins (``_accept(prefix)``) and xarray's backends (``guess_can_open``),
every format module defines ``FORMAT = Format(name, title, accept, reader)``:

* ``accept(prefix: bytes) -> bool`` looks at the first ``SNIFF_BYTES`` bytes only;
* ``reader(source: ByteSource, **options)`` returns a ``Reader``: an iterator of
  ``Capture`` chunks (records, timestamps, instance codes into a growing name table).

``detect`` peeks at a ``ByteSource`` and asks the formats in ``FORMATS`` order; the
reader then consumes the same stream from its first byte, so pipes and standard input
give exactly the file's result. A new format is one new module added to ``FORMATS``.
"""

from __future__ import annotations

from typing import Any

from .._source import ByteSource
from ._base import SNIFF_BYTES, Format, FormatError, FormatOptionError, Reader, is_text
from . import cimcsv, export_csv, export_jsonl, export_npy, export_parquet, pdhcsv, raw, wnode

__all__ = ["FORMATS", "SNIFF_BYTES", "Format", "FormatError", "FormatOptionError", "Reader", "by_name", "detect",
           "open_reader"]

#: Asked in this order; ``raw`` accepts any binary prefix, so it comes last. ipsecstats' own
#: exports (Parquet: the magic ``PAR1``; ``.npy``: ``\x93NUMPY``, refused; CSV: a header
#: ``record,...``; JSON Lines: ``{"record":``) never look like WNODE or a CIM CSV header.
FORMATS: tuple[Format, ...] = (export_parquet.FORMAT, export_npy.FORMAT, wnode.FORMAT, export_csv.FORMAT,
                               export_jsonl.FORMAT, pdhcsv.FORMAT, cimcsv.FORMAT, raw.FORMAT)
NAMES = tuple(f.name for f in FORMATS)


def by_name(name: str) -> Format:
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise ValueError(f"unknown input format {name!r}; choose one of {', '.join(NAMES)}")


def detect(source: ByteSource) -> Format:
    """The format of ``source``, from its first ``SNIFF_BYTES`` bytes (peeked, not consumed).

    Raises ``FormatError`` for text that no format accepts, and for a prefix that two
    formats could both read.
    """
    prefix = source.peek(SNIFF_BYTES)
    if pdhcsv.is_blg(source.name, prefix):  # a binary perfmon log: its reader says how to convert it
        return pdhcsv.FORMAT
    ask = f"pass --input-format {', '.join(NAMES[:-1])} or {NAMES[-1]}"
    for fmt in FORMATS:
        if fmt.accept(prefix):
            if fmt.name == "raw":
                doubt = wnode.ambiguity(prefix, source.size)
                if doubt == "wnode":
                    return wnode.FORMAT
                if doubt:
                    raise FormatError(f"{source.name}: cannot tell the input format: {doubt}; {ask}")
            return fmt
    first = next((line for line in is_text(prefix).splitlines() if line.strip()), "")[:60]  # type: ignore[union-attr]
    raise FormatError(f"{source.name}: cannot tell the input format: it is text, but its first line {first!r} is "
                      "neither a #TYPE line, a CSV header naming InstanceName and the 21 MSiSCSI_MMIPSECStats "
                      f"properties, a perfmon (PDH-CSV 4.0) header nor an ipsecstats export's header; {ask}")


def open_reader(source: Any, input_format: str = "auto", *, what: str = "input", **options: Any) -> Reader:
    """A ``Reader`` of ``source`` (a path, binary file object, bytes, or a ``ByteSource``).

    ``input_format``: a name from ``NAMES`` or "auto" (``detect``). ``options`` go to the
    format's reader; an option the format does not take, when set (not None), is a
    ``FormatOptionError`` (a TypeError and a ValueError) naming the format.
    """
    src = source if isinstance(source, ByteSource) else ByteSource(source, what)
    try:
        fmt = detect(src) if input_format == "auto" else by_name(input_format)
        return fmt.open(src, detected=input_format == "auto", **options)
    except BaseException:
        src.close()
        raise
