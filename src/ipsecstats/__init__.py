"""ipsecstats: decode Windows iSCSI ``MSiSCSI_MMIPSECStats`` records at memory speed.

A record is 21 little-endian uint64 items, 168 bytes (see ``FIELDS``). ``decode``
turns raw bytes into a numpy structured array; ``deltas`` and ``rates`` difference
them with exact uint64 arithmetic. ``BACKEND`` says which kernel runs them.
"""

from ._alloc import release_buffers
from ._backend import BACKEND
from ._version import __version__
from ._columns import Columns, decode_columns, delta_columns
from ._decode import decode, encode
from ._deltas import ON_DECREASE, deltas, rates
from ._errors import CounterResetError, PartialRecordWarning, TruncatedRecordError
from ._keyed import InstanceState, KeyedDeltas, keyed_deltas
from ._io import iter_deltas, iter_rates, iter_records, read
from ._pipeline import TableChunk, iter_capture, read_capture
from ._interop import from_arrow, from_pandas, from_polars, to_arrow, to_pandas, to_polars
from ._schema import COUNTERS, FIELDS, GAUGES, RECORD_DTYPE, RECORD_SIZE, Field
from .formats.cimcsv import CimCsvFormatError, read_cim_csv
from .formats.pdhcsv import PdhCsvFormatError, PdhCsvWarning, read_pdh_csv
from ._capture import Capture
from .formats.wnode import WnodeFormatError, WnodeWarning, read_wnode, write_wnode

__all__ = [
    "__version__",
    "release_buffers",
    "BACKEND",
    "COUNTERS",
    "Capture",
    "CimCsvFormatError",
    "Columns",
    "CounterResetError",
    "FIELDS",
    "Field",
    "GAUGES",
    "InstanceState",
    "KeyedDeltas",
    "ON_DECREASE",
    "PartialRecordWarning",
    "PdhCsvFormatError",
    "PdhCsvWarning",
    "RECORD_DTYPE",
    "RECORD_SIZE",
    "TruncatedRecordError",
    "WnodeFormatError",
    "WnodeWarning",
    "decode",
    "decode_columns",
    "delta_columns",
    "deltas",
    "encode",
    "from_arrow",
    "from_pandas",
    "from_polars",
    "TableChunk",
    "iter_capture",
    "iter_deltas",
    "keyed_deltas",
    "iter_rates",
    "iter_records",
    "rates",
    "read",
    "read_capture",
    "read_cim_csv",
    "read_pdh_csv",
    "read_wnode",
    "to_arrow",
    "to_pandas",
    "to_polars",
    "write_wnode",
]
