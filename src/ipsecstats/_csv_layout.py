"""The CSV row kernel's result codes and limits: one definition for both backends.

Imported by the Cython kernel (``_fast.csv_rows``), its pure twin (``_slow.csv_rows``) and
the reader (``formats.cimcsv``), so the codes cannot drift apart. A leaf module (no
imports from the package): ``_fast`` loads it while ``ipsecstats`` is still importing.

The kernel reports (code, rows done, bytes consumed, line, column, byte offset, length,
value); the reader turns a code into one message naming the line and the column.
"""

from __future__ import annotations

OK = 0
ROW_TOO_LONG = 1     # a row (or the bytes read of an unfinished one) longer than max_row
UNCLOSED_QUOTE = 2   # the data ends inside a quoted field
BAD_QUOTE = 3        # a quote inside an unquoted field, or no delimiter after a closing quote (offset: that byte)
BARE_CR = 4          # a carriage return outside quotes that does not end the line (offset: that byte)
FIELD_COUNT = 5      # the row's field count differs from the header's (value = the row's count)
NOT_UINT64 = 6       # not 1..20 ASCII digits (offset, length: the field's text; value = 1 when it has "")
UINT64_RANGE = 7     # 20 digits above 2**64 - 1
TS_SYNTAX = 8        # neither ISO 8601 with Z or a UTC offset, nor FILETIME ticks
TS_TICKS_RANGE = 9   # FILETIME ticks outside the datetime64[ns] range
TS_DATE = 10         # no such date (year 0, month 13, February 30, ...)
TS_TIME = 11         # hour > 23, minute or second > 59
TS_OFFSET = 12       # a UTC offset beyond +-14:00 or with minutes > 59
TS_RANGE = 13        # the instant is outside the datetime64[ns] range

#: Property plus string columns one call can extract (the kernel keeps them on its stack).
MAX_WANTED = 64
#: A string column's value is compared with those of the previous NAME_WINDOW rows; a row
#: with no equal value among them is its own reference (``ref`` = its row).
NAME_WINDOW = 16
#: Per row and string column: byte offset, byte length, has-"" flag, reference row.
STR_FIELDS = 4
#: role of the timestamp column in ``roles`` (other columns: -1 ignored, k >= 0 a slot).
ROLE_IGNORE = -1
ROLE_TIMESTAMP = -2
#: UTC offsets reach +-14:00 (.NET DateTimeOffset, and every zone in use).
MAX_OFFSET_MINUTES = 14 * 60
NAT = -(2**63)
