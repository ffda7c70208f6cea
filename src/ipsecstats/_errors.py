"""Exceptions and warnings raised by ipsecstats (shared by both backends)."""

from __future__ import annotations

import os
import sys
import types
import warnings

from ._schema import RECORD_SIZE

__all__ = ["CounterResetError", "PartialRecordWarning", "TruncatedRecordError", "describe_error",
           "report_partial_record"]


class _Picklable:
    """Exceptions with keyword-rich constructors survive pickling (process pools, Dask),
    notes (``add_note``) included."""

    _args: tuple[object, ...]

    def __reduce__(self) -> tuple[type, tuple[object, ...], dict[str, object]]:
        return (type(self), self._args, vars(self))


class _PartialRecord(_Picklable, Exception):
    """A trailing partial record: ``records`` whole ones, then ``trailing_bytes`` at byte ``offset``.

    ``start``: the byte offset in the source where the records began (a file object that
    was not at its start), so that ``offset`` is a position in the file.
    Subclasses say what became of it in ``_template`` (formatted with these attributes).
    """

    _template: str

    def __init__(self, records: int, trailing_bytes: int, record_size: int, source: str = "input", start: int = 0):
        self._args = (records, trailing_bytes, record_size, source, start)
        self.records = records
        self.trailing_bytes = trailing_bytes
        self.offset = start + records * record_size
        self.source = source
        super().__init__(self._template.format(record_size=record_size, **vars(self)))


class TruncatedRecordError(_PartialRecord, ValueError):
    """The input length is not a whole number of 168-byte records."""

    _template = ("{source}: {trailing_bytes} trailing byte(s) at byte offset {offset} do not form a "
                 "whole {record_size}-byte record (after {records} complete record(s)); "
                 "pass allow_partial=True to decode the complete records and be warned")


class PartialRecordWarning(_PartialRecord, UserWarning):
    """Complete records were decoded and a trailing partial record was left over."""

    _template = ("{source}: ignored {trailing_bytes} trailing byte(s) at byte offset {offset} "
                 "(a partial {record_size}-byte record) after {records} complete record(s)")


def report_partial_record(records: int, trailing_bytes: int, allow_partial: bool, source: str,
                          start: int = 0) -> None:
    """The partial-record rule: ``trailing_bytes`` after ``records`` whole records raise
    ``TruncatedRecordError``, or with ``allow_partial`` warn ``PartialRecordWarning``; 0 is fine.

    The warning names the first caller outside ipsecstats, however deep in readers and
    generators the tail was found.
    """
    if not trailing_bytes:
        return
    if not allow_partial:
        raise TruncatedRecordError(records, trailing_bytes, RECORD_SIZE, source, start)
    warnings.warn(PartialRecordWarning(records, trailing_bytes, RECORD_SIZE, source, start),
                  stacklevel=_caller_outside_package())


def _caller_outside_package() -> int:
    """The ``stacklevel`` (as seen by this module's caller of ``warnings.warn``) of the
    nearest frame whose code is not in the ipsecstats package."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame: types.FrameType | None = sys._getframe(1)  # the caller of warnings.warn: stacklevel 1
    level = 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == package:
        frame = frame.f_back
        level += 1
    return level


class CounterResetError(_Picklable, ValueError):
    """A counter went down and ``on_decrease="raise"`` was asked for.

    ``stride``: records between the pair in a raw log, or None when records were paired by
    instance (``deltas(instances=...)``).
    """

    def __init__(self, row: int, field: str, previous: int, current: int, stride: int | None = 1):
        self._args = (row, field, previous, current, stride)
        self.row = row
        self.field = field
        self.previous = previous
        self.current = current
        self.stride = stride
        super().__init__(
            f"counter {field} went down in delta row {row}: from {previous} to {current} "
            f"({'against the previous record of its instance' if stride is None else f'stride {stride}'}); "
            f"choose on_decrease='auto', 'reset', 'wrap' or 'zero' to accept it"
        )

    def shifted(self, rows: int) -> CounterResetError:
        """The same decrease with its delta row ``rows`` later: a chunk's error in whole-log rows.

        Raise it ``from None``: the chunk-relative original adds nothing.
        """
        moved = type(self)(self.row + rows, self.field, self.previous, self.current, self.stride)
        for name, value in vars(self).items():  # notes and attributes added on the way
            if name not in vars(moved):
                setattr(moved, name, value)
        return moved


def describe_error(path: str, exc: BaseException, stride: int = 1, where: object = None) -> str:
    """One line naming the file and the problem, for the command line and ``dask.map_files``.

    ``where``: a callable mapping the delta row of a ``CounterResetError`` to the place it
    names (for a capture: its record, instance and time); by default row ``r`` is record
    ``r + stride`` of a stride-interleaved log.
    """
    if isinstance(exc, TruncatedRecordError):
        return (f"{exc.source}: {exc.trailing_bytes} trailing byte(s) at byte offset {exc.offset} do not form a whole "
                f"{RECORD_SIZE}-byte record (after {exc.records:,} complete records); pass --allow-partial to use "
                "the complete records")
    if isinstance(exc, CounterResetError):
        if callable(where):
            place = str(where(exc.row))
        else:
            record = exc.row + stride
            place = f"record {record:,}" + (f" (instance {record % stride})" if stride > 1 else "")
        return (f"{path}: counter {exc.field} went down at {place}, from {exc.previous} to {exc.current}; "
                "choose --on-decrease auto, reset, wrap or zero to accept decreases")
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename or path}: {exc.strerror}"
    text = " ".join(str(exc).split())
    return text if path in text else f"{path}: {text}"
