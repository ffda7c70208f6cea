"""What every input format module shares: ``Format``, the ``Reader`` protocol, text sniffing."""

from __future__ import annotations

import codecs
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .._capture import Capture
from .._source import ByteSource

__all__ = ["SNIFF_BYTES", "BlockBuffer", "Format", "FormatError", "FormatOptionError", "Reader", "is_text",
           "option_spelling"]

#: Bytes that detection peeks at (and that ``accept`` sees).
SNIFF_BYTES = 4096

_TEXT_CONTROLS = {c: None for c in [*range(32), 127] if chr(c) not in "\t\n\r\f"}  # binary when present


class FormatError(ValueError):
    """The input's format cannot be told, or an option does not fit it."""


class FormatOptionError(FormatError, TypeError):
    """A reader option the input's format does not take (a TypeError, as for any stray keyword,
    and a FormatError: which options fit depends on the file)."""


class Reader(Protocol):
    """A stream of ``Capture`` chunks from one source.

    ``format``: the format's name; ``name``: the source, for messages; ``has_timestamps``:
    whether chunks carry times (known once the reader is open); ``has_hosts``: whether
    chunks carry ``instance_hosts`` (a source with a host column or host paths);
    ``stride``: the instances of a raw log (None for formats whose records carry instance
    names); ``source``: the ``ByteSource`` (its ``offset`` and ``size`` give progress).
    """

    format: str
    name: str
    has_timestamps: bool
    has_hosts: bool
    stride: int | None
    source: ByteSource

    def __iter__(self) -> Iterator[Capture]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Format:
    """An input format: its name (``--input-format``), a title for messages, a sniff test on
    the first bytes, and a reader factory ``reader(source, **options) -> Reader``."""

    name: str
    title: str
    accept: Callable[[bytes], bool]
    reader: Callable[..., Any]  # returns a Reader

    def options(self) -> frozenset[str]:
        """The keyword options the reader takes."""
        params = inspect.signature(self.reader).parameters.values()
        return frozenset(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)

    def open(self, source: ByteSource, *, detected: bool = False, **options: Any) -> Reader:
        """``reader(source, **options)``, refusing set options the format does not take.

        ``allow_partial`` (lenience towards a truncated end) is dropped for formats without
        one: text formats have no partial records to allow. So is ``option_style`` (how
        messages name options) for formats that take no options it would name.
        """
        taken = self.options()
        name = _flag if options.get("option_style") == "flag" else str
        for lenient in ("allow_partial", "option_style"):
            if lenient not in taken:
                options.pop(lenient, None)
        stray = sorted(k for k, v in options.items() if k not in taken and v is not None)
        if stray:
            how = " (detected)" if detected else ""
            verb = "does" if len(stray) == 1 else "do"
            raise FormatOptionError(f"{source.name}: {', '.join(map(name, stray))} {verb} not apply to "
                                    f"{self.title}{how}")
        return self.reader(source, **{k: v for k, v in options.items() if k in taken})


def option_spelling(option_style: str | None) -> Callable[[str], str]:
    """How a reader's messages name an option: ``timezone=`` ("keyword", the default: the
    Python API) or ``--timezone`` ("flag": the command line)."""
    if option_style not in (None, "keyword", "flag"):
        raise ValueError(f"option_style must be 'keyword' or 'flag', got {option_style!r}")
    return _flag if option_style == "flag" else _keyword


def _keyword(name: str) -> str:
    return f"{name}="


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def is_text(prefix: bytes) -> str | None:
    """``prefix`` as text (UTF-8, UTF-16 with a BOM, or else the Windows ANSI code page cp1252
    that PowerShell's ``-Encoding Default`` and perfmon write), or None when it is binary:
    not decodable, or holding NUL or control characters other than tab, line ends and form feed."""
    if prefix.startswith((b"\xff\xfe", b"\xfe\xff")):
        decoder = codecs.getincrementaldecoder("utf-16")()
    elif b"\0" in prefix:
        return None
    else:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        text = decoder.decode(prefix, final=False)
    except UnicodeDecodeError:
        if prefix.startswith((b"\xff\xfe", b"\xfe\xff")):
            return None
        try:
            text = prefix.decode("cp1252")
        except UnicodeDecodeError:  # one of the five bytes cp1252 leaves undefined
            return None
    return None if text.translate(_TEXT_CONTROLS) != text else text


class BlockBuffer:
    """A text source read block by block: ``arr[pos:filled]`` is read and not yet parsed;
    ``base`` is the stream offset of ``arr[0]``.

    ``fill`` keeps the unparsed tail, moves it to the front and reads after it, doubling the
    buffer while the tail fills half of it (a row longer than a block), so every read is at
    least half a buffer and re-parsing an unfinished row costs linear time in all.
    ``source``: anything with ``readinto``.
    """

    def __init__(self, source: Any, block: int):
        self.source = source
        self.arr = np.empty(block, np.uint8)
        self.pos = self.filled = self.base = 0
        self.eof = False

    def fill(self) -> None:
        tail = self.filled - self.pos
        if 2 * tail > len(self.arr):
            grown = np.empty(2 * len(self.arr), np.uint8)
            grown[:tail] = self.arr[self.pos: self.filled]
            self.arr = grown
        elif self.pos:
            self.arr[:tail] = self.arr[self.pos: self.filled].copy()
        self.base += self.pos
        self.pos, self.filled = 0, tail
        want = len(self.arr) - tail
        got = self.source.readinto(self.arr[tail:])
        self.filled += got
        self.eof = got < want
