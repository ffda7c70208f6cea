"""The bytes of a capture as one stream, whatever holds them: ``ByteSource``.

A source is a path, a binary file object (a pipe or standard input included) or a
bytes-like object. Detection ``peek``s at the first bytes; the reader then consumes the
same stream from its first byte, so nothing is read twice and nothing is lost on a pipe,
a FIFO, process substitution or standard input. Only a regular file opened here reports
a ``size`` (FIFOs, ``/proc`` files and devices are streams: their ``st_size`` means
nothing), and only a regular file can shrink under the reader, which is an error.
"""

from __future__ import annotations

import io
import mmap
import os
import stat
from typing import Any

import numpy as np

__all__ = ["ByteSource", "fill_view"]


class ByteSource:
    """One capture's bytes, read front to back with ``readinto``; ``peek`` looks ahead.

    ``name``: for messages. ``start``: the position where reading began (a file object
    handed over mid-file), so ``offset`` (``start`` plus the bytes consumed) is a
    position in the file. ``size``: the size of a regular file opened here, else None.
    """

    def __init__(self, source: Any, what: str = "input"):
        self._data: memoryview | None = None
        self._file: Any = None
        self._owned = False
        self._prefix = b""
        self.consumed = 0
        self.start = 0
        self.size: int | None = None
        self.regular = False
        if isinstance(source, (str, os.PathLike)):
            self.name = os.fsdecode(os.fspath(source))
            self._file = open(self.name, "rb", buffering=0)  # noqa: SIM115 - closed by close()
            self._owned = True
            st = os.fstat(self._file.fileno())
            if stat.S_ISDIR(st.st_mode):
                self.close()
                raise IsADirectoryError(f"{self.name}: is a directory")
            if stat.S_ISREG(st.st_mode):
                self.regular = True
                self.size = st.st_size
            return
        if isinstance(source, (bytes, bytearray, memoryview, mmap.mmap)) or _is_byte_array(source):
            view = memoryview(source)
            if not view.c_contiguous:
                raise ValueError(f"{what} needs a C-contiguous buffer")
            self._data = view.cast("B") if (view.format != "B" or view.ndim != 1) else view
            self.name = f"{what}"
            self.size = len(self._data)
            return
        if isinstance(source, io.TextIOBase):
            raise TypeError(f"{what} needs a binary file object: open the file with mode 'rb'")
        if not (hasattr(source, "readinto") or hasattr(source, "read")):
            raise TypeError(f"{what} takes a path, a binary file object or bytes, not {type(source).__name__}")
        name = getattr(source, "name", None)
        self.name = name if isinstance(name, str) else f"<{type(source).__name__}>"
        self._file = source
        try:  # where the bytes begin: offsets in messages are positions in the file
            self.start = int(source.tell())
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self.start = 0

    # -- reading ------------------------------------------------------------------------

    @property
    def offset(self) -> int:
        """The position in the file of the next byte to be consumed."""
        return self.start + self.consumed

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes from the current position, not consumed (fewer only at the end)."""
        if self._data is not None:
            return bytes(self._data[self.consumed: self.consumed + n])
        while len(self._prefix) < n:
            more = self._read(n - len(self._prefix))
            if not more:
                break
            self._prefix += more
        return self._prefix[:n]

    def readinto(self, view: Any) -> int:
        """Fill ``view`` (a writable buffer) as far as the source goes; the bytes read.

        Fewer than ``len(view)`` means the source ended. A regular file that is now shorter
        than what was already read from it raises ``OSError`` (it was truncated under us).
        """
        out = memoryview(view).cast("B")
        size = len(out)
        if self._data is not None:
            got = min(size, len(self._data) - self.consumed)
            out[:got] = self._data[self.consumed: self.consumed + got]
            self.consumed += got
            return got
        filled = 0
        if self._prefix:
            k = min(size, len(self._prefix))
            out[:k] = self._prefix[:k]
            self._prefix = self._prefix[k:]
            filled = k
        filled += fill_view(self._file, out[filled:], self.name)
        self.consumed += filled
        if filled < size:
            self.check_not_shrunk()
        return filled

    def _read(self, n: int) -> bytes:
        data = self._file.read(n)
        if data is None:
            raise OSError(f"{self.name}: the file object is non-blocking and had no data ready")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"{self.name}: read() returned {type(data).__name__}, not bytes: "
                            "open the file in binary mode ('rb')")
        return bytes(data)

    def check_not_shrunk(self) -> None:
        """Raise ``OSError`` when a regular file is shorter than the bytes already read from it."""
        if self._file is None:
            return
        try:
            st = os.fstat(self._file.fileno())
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return  # an in-memory stream: nothing to compare with
        if stat.S_ISREG(st.st_mode) and st.st_size < self.offset:
            raise OSError(f"{self.name}: the file shrank to {st.st_size} bytes while it was read "
                          f"(at byte offset {self.offset})")

    def close(self) -> None:
        if self._owned and self._file is not None:
            self._file.close()
        self._file = None
        self._data = None

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fill_view(file: Any, view: memoryview, name: str) -> int:
    """Read from ``file`` (``readinto`` or ``read``) into ``view`` until it is full or the file
    ends; the number of bytes read. A non-blocking file with no data ready is an ``OSError``."""
    size = len(view)
    filled = 0
    readinto = getattr(file, "readinto", None)
    while filled < size:
        if readinto is not None:
            got = readinto(view[filled:])
        else:
            data = file.read(size - filled)
            got = None if data is None else len(data)
            if got:
                view[filled: filled + got] = data
        if got is None:
            raise OSError(f"{name}: the file object is non-blocking and had no data ready")
        if got == 0:
            break
        filled += got
    return filled


def _is_byte_array(obj: Any) -> bool:
    return isinstance(obj, np.ndarray) and obj.dtype == np.uint8 and obj.ndim == 1
