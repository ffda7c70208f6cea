"""The perfmon (PDH-CSV/TSV) row kernel's result codes and limits: one definition for both backends.

Imported by the Cython kernel (``_fast.pdh_rows``), its pure twin (``_slow.pdh_rows``) and
the reader (``formats.pdhcsv``). A leaf module (no imports from the package).

The kernel reports (code, rows done, bytes consumed, line, column, byte offset, length);
the reader turns a code into one message naming the line, the column and the counter.
"""

from __future__ import annotations

OK = 0
ROW_TOO_LONG = 1     # a row (or the bytes read of an unfinished one) longer than max_row
UNCLOSED_QUOTE = 2   # the line (or the data) ends inside a quoted field (offset: the opening quote)
BAD_QUOTE = 3        # a quote inside an unquoted field, or no delimiter after a closing quote (offset: that byte)
BARE_CR = 4          # a carriage return that is not followed by a line feed (offset: that byte)
FIELD_COUNT = 5      # the row's field count differs from the header's (length = the row's count)
NUL_BYTE = 6         # a NUL byte in a row (offset: that byte)
NOT_NUMBER = 7       # a value that is not a decimal number (offset, length: the field's text)
NOT_WHOLE = 8        # a number with a fractional part: a formatted rate, not a raw count
NEGATIVE = 9         # a number below zero
RANGE = 10           # a whole number above 2**64 (beyond what rounds to the double 2**64)
TIME_SYNTAX = 11     # not MM/DD/YYYY HH:MM:SS[.fff]
TIME_DATE = 12       # no such date (month 13, February 30, ...)
TIME_TIME = 13       # hour > 23, minute or second > 59
TIME_RANGE = 14      # outside the datetime64[ns] range

#: role of the timestamp column in ``roles`` (other columns: -1 ignored, k >= 0 a value slot).
ROLE_IGNORE = -1
ROLE_TIMESTAMP = -2
#: A whole number of 20 digits up to this one is what ``%.20g`` prints for the double 2**64
#: (or anything rounding to it): the counter was at most 2**64 - 1, which is kept.
ROUNDS_TO_2_64 = b"18446744073709553664"   # 2**64 + 2048: the upper half-way point (ties go to 2**64)
UINT64_MAX_TEXT = b"18446744073709551615"
#: exponents are clamped here while they are read (any larger one is out of range anyway)
EXPONENT_CLAMP = 1_000_000_000
