"""ipsecstats: decode Windows iSCSI ``MSiSCSI_MMIPSECStats`` records at memory speed.

A record is 21 little-endian uint64 items, 168 bytes (see ``FIELDS``). ``decode``
turns raw bytes into a numpy structured array; ``deltas`` and ``rates`` difference
them with exact uint64 arithmetic. ``BACKEND`` says which kernel runs them.
"""

from ._backend import BACKEND
from ._decode import decode, encode
from ._deltas import ON_DECREASE, deltas, rates
from ._errors import CounterResetError, PartialRecordWarning, TruncatedRecordError
from ._schema import COUNTERS, FIELDS, GAUGES, RECORD_DTYPE, RECORD_SIZE, Field

__version__ = "0.1.0"

__all__ = [
    "BACKEND",
    "COUNTERS",
    "CounterResetError",
    "FIELDS",
    "Field",
    "GAUGES",
    "ON_DECREASE",
    "PartialRecordWarning",
    "RECORD_DTYPE",
    "RECORD_SIZE",
    "TruncatedRecordError",
    "decode",
    "deltas",
    "encode",
    "rates",
]
