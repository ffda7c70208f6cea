"""The WNODE layout of wmistr.h and the walker's result codes: one definition for every backend.

Imported by the Cython walker (``_fast``), its pure twin (``_slow``) and the reader
(``_wnode``), so the offsets, flags and error codes cannot drift apart. No imports
from the package: ``_fast`` loads this while ``ipsecstats`` is still importing.

Offsets are from the start of one WNODE; all integers are little-endian.
"""

from __future__ import annotations

from typing import NamedTuple

# WNODE_HEADER (48 bytes)
BUFFER_SIZE = 0         # uint32: the whole WNODE
PROVIDER_ID = 4         # uint32
VERSION = 8             # uint32
LINKAGE = 12            # uint32: offset from this WNODE to the next one of the chain, 0 = last
TIMESTAMP = 16          # int64 FILETIME: 100 ns ticks since 1601-01-01 UTC
GUID = 24               # 16 bytes: Data1 (uint32), Data2, Data3 (uint16) little-endian, Data4 bytes
CLIENT_CONTEXT = 40     # uint32
FLAGS = 44              # uint32
HEADER_SIZE = 48

# WNODE_ALL_DATA
ALL_DATA_BLOCK_OFFSET = 48          # uint32: first instance (fixed size: instance i at + i * size)
ALL_INSTANCE_COUNT = 52             # uint32
ALL_NAME_OFFSETS = 56               # uint32: offset of uint32[InstanceCount] name offsets
ALL_FIXED_INSTANCE_SIZE = 60        # uint32, when FLAG_FIXED_INSTANCE_SIZE
ALL_DATA_AND_LENGTH = 60            # {uint32 OffsetInstanceData, uint32 LengthInstanceData}[InstanceCount]
ALL_DATA_MIN_SIZE = 64              # the fixed part, FixedInstanceSize included

# WNODE_SINGLE_INSTANCE
SINGLE_NAME_OFFSET = 48             # uint32: offset of the counted instance name
SINGLE_INSTANCE_INDEX = 52          # uint32
SINGLE_DATA_BLOCK_OFFSET = 56       # uint32
SINGLE_SIZE_DATA_BLOCK = 60         # uint32
SINGLE_MIN_SIZE = 64

# WNODE_TOO_SMALL
TOO_SMALL_SIZE_NEEDED = 48          # uint32
TOO_SMALL_MIN_SIZE = 52

FLAG_ALL_DATA = 0x00000001
FLAG_SINGLE_INSTANCE = 0x00000002
FLAG_FIXED_INSTANCE_SIZE = 0x00000010
FLAG_TOO_SMALL = 0x00000020
FLAG_STATIC_INSTANCE_NAMES = 0x00000080
FLAG_ANSI_INSTANCENAMES = 0x00004000
FLAG_PDO_INSTANCE_NAMES = 0x00010000

# MSiSCSI_MMIPSECStats: GUID 36b58ea2-c461-4bb0-ac8e-952f59d251ed as laid out in a WNODE.
CLASS_GUID = "36b58ea2-c461-4bb0-ac8e-952f59d251ed"
GUID_BYTES = bytes.fromhex("a28eb53661c4b04b" "ac8e952f59d251ed")
INSTANCE_SIZE = 168
DATA_ALIGNMENT = 8
# A chained WNODE starts right after the previous one, padded to NODE_ALIGNMENT bytes:
# BufferSize <= Linkage <= align8(BufferSize). A larger Linkage would skip bytes unread.
NODE_ALIGNMENT = 8

# FILETIME <-> datetime64[ns]: ns = (ticks - FILETIME_UNIX_EPOCH) * 100, exact in int64 when
# |ticks - FILETIME_UNIX_EPOCH| <= TICKS_SPAN (so the result never reaches NaT, -2**63).
FILETIME_UNIX_EPOCH = 116_444_736_000_000_000  # 1970-01-01 in 100 ns ticks since 1601-01-01
TICKS_SPAN = (2**63 - 1) // 100
TICKS_MIN = FILETIME_UNIX_EPOCH - TICKS_SPAN
TICKS_MAX = FILETIME_UNIX_EPOCH + TICKS_SPAN
TICKS_UNSET = 0  # a TimeStamp of 0 means "not stamped": NaT

# Walker status codes. The walker reports (code, byte offset of the field, value, bound);
# ``_wnode`` turns them into one message. Codes in TRUNCATION mean "the data ends too soon".
OK = 0
HEADER_TRUNCATED = 1        # fewer than 48 bytes left for a WNODE header
BUFFER_SIZE_PAST_END = 2    # BufferSize runs past the end of the data
LINKAGE_PAST_END = 3        # Linkage points at or past the end of the data
BUFFER_SIZE_SMALL = 4       # BufferSize below the 48-byte header
NODE_TOO_SHORT = 5          # BufferSize below the fixed part of the WNODE kind (bound = minimum)
LINKAGE_OVERLAP = 6         # 0 < Linkage < BufferSize: the next WNODE would overlap this one
FLAGS_KIND = 7              # neither (or both) of ALL_DATA and SINGLE_INSTANCE
TOO_SMALL = 8               # a WNODE_TOO_SMALL: the query buffer was too small (value = SizeNeeded)
TIMESTAMP_RANGE = 9         # TimeStamp outside datetime64[ns] (value = ticks as int64)
FIXED_SIZE = 10             # FixedInstanceSize != 168
INSTANCE_LENGTH = 11        # LengthInstanceData != 168
SIZE_DATA_BLOCK = 12        # SizeDataBlock != 168
INSTANCE_COUNT_RANGE = 13   # InstanceCount does not fit in the WNODE (bound = the largest that fits)
DATA_OFFSET_RANGE = 14      # DataBlockOffset: data outside [header end, BufferSize) (bound = BufferSize)
DATA_MISALIGNED = 15        # DataBlockOffset not a multiple of 8
NAME_OFFSETS_RANGE = 16     # OffsetInstanceNameOffsets array outside the WNODE (bound = BufferSize)
NAME_OFFSET_RANGE = 17      # OffsetInstanceName outside the WNODE (bound = BufferSize)
NAME_LENGTH_RANGE = 18      # a name's byte count runs past the WNODE (bound = bytes available)
NAME_ODD_LENGTH = 19        # a UTF-16 name with an odd byte count
NODE_LIMIT = 20             # more WNODEs than the data can hold (a Linkage loop; never expected)
CAPACITY = 21               # the output arrays are too small (bound = their length)
NAMES_FULL = 22             # the name table is full (bound = its length); the caller retries larger
INSTANCE_DATA_RANGE = 23    # OffsetInstanceData: data outside [header end, BufferSize) (bound = BufferSize)
INSTANCE_DATA_MISALIGNED = 24  # OffsetInstanceData not a multiple of 8
INSTANCE_NAME_OFFSET_RANGE = 25  # an entry of the name offsets array outside the WNODE (bound = BufferSize)
LINKAGE_GAP = 26            # Linkage > align8(BufferSize): skips more than padding (bound = align8(BufferSize))
NAMES_OVERLAP = 27          # the names read in one WNODE exceed its BufferSize (value = bytes, bound = BufferSize)
NAMES_PROBES = 28           # fill: a name-table lookup probed NAME_MAX_PROBES slots; the caller retries

# Resource statuses of ``wnode_fill``: not a fault of the data. The walk stopped at a
# buffer boundary (``good_end``); the caller keeps what it got and walks on, with a larger
# output (CAPACITY), a larger name table (NAMES_FULL) or a fresh hash key (NAMES_PROBES).
RESOURCE = frozenset({CAPACITY, NAMES_FULL, NAMES_PROBES})

# The name work of a walk is bounded by the input: every instance name is looked up through a
# memo of NAME_MEMO slots keyed by its byte offset (slot = the top bits of offset * NAME_MEMO_MUL
# mod 2**64). A memo hit costs nothing; a miss reads (hashes, compares, strips) the 2-byte count
# and the text and charges them to its WNODE, whose charges may not exceed its BufferSize (names
# that do not overlap never do). So 100,000 instances naming one long name read it once, and
# names packed into each other's bytes fail with NAMES_OVERLAP instead of costing quadratic time.
NAME_MEMO_BITS = 6
NAME_MEMO = 1 << NAME_MEMO_BITS
NAME_MEMO_MUL = 0x9E3779B97F4A7C15
NAME_MAX_PROBES = 64  # linear probes per name-table lookup (keyed hash, load <= 1/2: never in practice)

TRUNCATION = frozenset({HEADER_TRUNCATED, BUFFER_SIZE_PAST_END, LINKAGE_PAST_END})


class WalkResult(NamedTuple):
    """What one walk over WNODE buffers found; both kernels return these 12 integers.

    On an error the walk stops: ``good_end`` is the start of the buffer (chain) it was in,
    and the counts cover only the complete buffers before it.
    """

    status: int
    err_offset: int
    err_value: int
    err_bound: int
    good_end: int
    nrecords: int
    nnames: int
    nforeign: int
    foreign_first: int
    ntoo_small: int
    too_small_first: int
    too_small_needed: int
