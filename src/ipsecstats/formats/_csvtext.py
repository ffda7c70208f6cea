"""CIM CSV text: its error type, the source as UTF-8 bytes, and the block buffer.

``_Decoded`` turns UTF-16 (with a BOM) or a code page into UTF-8 block by block (the row
kernel reads UTF-8 only); ``_TextSource`` does the same for a text-mode file object;
``_Buffer`` holds the bytes read and not yet parsed. Split from ``formats.cimcsv``, which
re-exports ``CimCsvFormatError``.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Any

from .._source import ByteSource
from ._base import BlockBuffer

__all__ = ["BLOCK_BYTES", "CimCsvFormatError", "_Buffer", "_Decoded", "_TextSource", "_nul_verdict", "parse_encoding"]

#: Bytes read at a time (the buffer doubles while one unfinished row fills half of it).
BLOCK_BYTES = 1 << 20


def parse_encoding(name: str | None, spell: Callable[[str], str]) -> str | None:
    """``None``, or the codec name of a text encoding (``codecs.lookup``); a ValueError for an
    unknown name or a codec that is no text encoding (rot13, zlib, hex: what ``str.encode`` refuses)."""
    if name is None:
        return None
    try:
        info = codecs.lookup(name)
        if not getattr(info, "_is_text_encoding", True):
            raise LookupError(name)
    except (LookupError, TypeError):
        raise ValueError(f"{spell('encoding')} {name!r}: no such text encoding (e.g. utf-8, utf-16, cp1252, "
                         "cp1250)") from None
    return info.name


class CimCsvFormatError(ValueError):
    """A CIM CSV value or line that cannot be read; ``line`` and ``column`` are 1-based."""

    def __init__(self, message: str, *, line: int, column: int | None = None, field: str | None = None):
        self.line = line
        self.column = column
        self.field = field
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:  # keyword-only fields: pickle by hand
        return (_rebuild_error, (str(self), self.line, self.column, self.field))


def _rebuild_error(message: str, line: int, column: int | None, field: str | None) -> CimCsvFormatError:
    return CimCsvFormatError(message, line=line, column=column, field=field)


# -- byte streams: UTF-8 as is, UTF-16 and text files re-encoded to UTF-8 ------------------------


class _Recoded:
    """A ``readinto`` stream of UTF-8 made piece by piece by ``_more`` (None at the end)."""

    def __init__(self, name: str):
        self.name = name
        self._pending = b""
        self._at = 0
        self._done = False

    def _more(self) -> bytes | None:
        raise NotImplementedError

    def readinto(self, view: Any) -> int:
        out = memoryview(view).cast("B")
        filled = 0
        while filled < len(out):
            if self._at == len(self._pending):
                piece = None if self._done else self._more()
                if piece is None:
                    self._done = True
                    break
                self._pending, self._at = piece, 0
                continue
            k = min(len(out) - filled, len(self._pending) - self._at)
            out[filled: filled + k] = self._pending[self._at: self._at + k]
            filled += k
            self._at += k
        return filled


class _Decoded(_Recoded):
    """Text in ``encoding`` (UTF-16 with a BOM, a Windows code page, ...) as UTF-8, block by block."""

    def __init__(self, source: ByteSource, block: int, encoding: str, spell: Any):
        super().__init__(source.name)
        self._source = source
        self._raw = bytearray(block)
        self._encoding = encoding
        self._decoder = codecs.getincrementaldecoder(encoding)()
        self._spell = spell
        self._lines = 1

    def _more(self) -> bytes | None:
        while True:
            at = self._source.offset
            got = self._source.readinto(self._raw)
            final = got < len(self._raw)
            try:
                text = self._decoder.decode(self._raw[:got], final=final)
            except UnicodeDecodeError as exc:
                line = self._lines + self._decoder_lines(exc)
                raise CimCsvFormatError(
                    f"{self.name}: line {line}: not valid {self._encoding} ({exc.reason} at byte offset "
                    f"{at + exc.start}); pass {self._spell('encoding')} with the file's encoding", line=line) from None
            self._lines += text.count("\n")
            if text or final:
                return text.encode("utf-8", "surrogatepass") if text else None

    def _decoder_lines(self, exc: UnicodeDecodeError) -> int:
        """Line ends before the bad byte in the block that failed."""
        try:
            return codecs.decode(bytes(exc.object[: exc.start]), self._encoding, "replace").count("\n")
        except (UnicodeError, LookupError):
            return 0


class _TextSource(_Recoded):
    """A text-mode file object (``read()`` gives str) as UTF-8; a leading U+FEFF goes with the BOM rule."""

    def __init__(self, file: Any, block: int = BLOCK_BYTES):
        name = getattr(file, "name", None)
        super().__init__(name if isinstance(name, str) else f"<{type(file).__name__}>")
        self._file = file
        self._block = block
        self.offset = 0

    def _more(self) -> bytes | None:
        text = self._file.read(self._block)
        if not isinstance(text, str):
            raise TypeError(f"{self.name}: read() returned {type(text).__name__}, not str")
        self.offset += len(text)
        return text.encode("utf-8", "surrogatepass") if text else None

    def close(self) -> None:
        pass


def _nul_verdict(prefix: bytes, name: str) -> None:
    """Refuse input that is not UTF-8 text: UTF-16 without a BOM, or binary (NUL-heavy) data."""
    if prefix.count(0) * 8 <= len(prefix):
        return  # a few NULs (in an instance name, say): the rows say where
    even, odd = prefix[0::2], prefix[1::2]
    for zeros, other, order in ((odd, even, "LE"), (even, odd, "BE")):
        if zeros and zeros.count(0) >= 0.9 * len(zeros) and other.count(0) < 0.5 * len(other):
            raise CimCsvFormatError(
                f"{name}: UTF-16{order} text without a byte order mark (NUL bytes at every other position); "
                "export with -Encoding UTF8, or keep the BOM that -Encoding Unicode writes", line=1)
    raise CimCsvFormatError(f"{name}: binary data ({prefix.count(0)} NUL bytes in the first {len(prefix)}), "
                            "not CSV text", line=1)


_Buffer = BlockBuffer  # the block buffer every text format shares
