"""Write the golden vectors in this directory: small record files and ``golden.json``.

Run by hand only (``python tests/data/make_golden.py``); the tests read the files on
disk and never regenerate them. This script does not import ipsecstats: the records
are packed with ``struct`` (21 little-endian uint64 per 168-byte record), and every
expected number below was worked out by hand from the arithmetic in the comment
beside it (H = 2**63, M = 2**64). Expected integers are stored as decimal strings so
that no JSON reader can round them; ``null`` in a rates row stands for NaN.

Fields not named in a record keep their BASE value in every record, so their
expected delta is 0 (and their rate 0.0).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent

# MSiSCSI_MMIPSECStats in WmiDataId order (see DOMAIN.md); G marks the 5 gauges.
NAMES = (
    "ActiveAcquire",  # G
    "ActiveReceive",  # G
    "AcquireFailures",
    "ReceiveFailures",
    "SendFailures",
    "AcquireHeapSize",  # G
    "ReceiveHeapSize",  # G
    "NegotiationFailures",
    "AuthenticationFailures",
    "InvalidCookiesReceived",
    "TotalGetSPI",
    "KeyAdditions",
    "KeyUpdates",
    "GetSPIFailures",
    "KeyAdditionFailures",
    "KeyUpdateFailures",
    "ConnectionListSize",  # G
    "OakleyMainMode",
    "OakleyQuickMode",
    "InvalidPackets",
    "SoftAssociations",
)
BASE = {name: 1000 * (i + 1) for i, name in enumerate(NAMES)}  # constant unless overridden

H = 2**63
M = 2**64
POLICIES = ("auto", "wrap", "reset", "zero")


def pack(records: list[dict[str, int]]) -> bytes:
    """168 bytes per record: BASE overridden by the record's own values."""
    out = b""
    for rec in records:
        unknown = set(rec) - set(NAMES)
        assert not unknown, unknown
        out += struct.pack("<21Q", *(rec.get(name, BASE[name]) for name in NAMES))
    return out


def full(sparse: dict[str, list[int]], nrows: int) -> dict[str, list[str]]:
    """All 21 fields as decimal strings; fields not listed are 0 in every row."""
    for name, col in sparse.items():
        assert name in NAMES and len(col) == nrows, (name, col)
    return {name: [str(v) for v in sparse.get(name, [0] * nrows)] for name in NAMES}


def full_rates(sparse: dict[str, list[float | None]], nrows: int, counters: list[str],
               nan_rows: tuple[int, ...] = ()) -> dict[str, list[float | None]]:
    """Counter fields only; unlisted fields are 0.0, or NaN (None) in ``nan_rows``."""
    default = [None if i in nan_rows else 0.0 for i in range(nrows)]
    return {name: sparse.get(name, default) for name in counters}


# --------------------------------------------------------------------------------------
# decrease.bin: 3 records, stride 1. Wrap, restart and gauge cases at the uint64 edges.
DECREASE = [
    {"ActiveAcquire": 5, "ActiveReceive": 0, "AcquireFailures": 10, "ReceiveFailures": M - 1,
     "SendFailures": H + 5, "AcquireHeapSize": H - 1, "ReceiveHeapSize": 0,
     "NegotiationFailures": H + 4, "AuthenticationFailures": 1, "InvalidCookiesReceived": M - 1,
     "TotalGetSPI": 0, "ConnectionListSize": 100, "OakleyMainMode": 50},
    {"ActiveAcquire": 3, "ActiveReceive": M - 1, "AcquireFailures": 7, "ReceiveFailures": 4,
     "SendFailures": 5, "AcquireHeapSize": H, "ReceiveHeapSize": H,
     "NegotiationFailures": 5, "AuthenticationFailures": 2**32 + 1, "InvalidCookiesReceived": M - 1,
     "TotalGetSPI": M - 1, "ConnectionListSize": 100, "OakleyMainMode": 60},
    {"ActiveAcquire": 5, "ActiveReceive": 0, "AcquireFailures": 9, "ReceiveFailures": 4,
     "SendFailures": 6, "AcquireHeapSize": H - 1, "ReceiveHeapSize": 0,
     "NegotiationFailures": 5, "AuthenticationFailures": 2**32 + 1, "InvalidCookiesReceived": M - 1,
     "TotalGetSPI": M - 1, "ConnectionListSize": 7, "OakleyMainMode": 1},
]

# Fields that behave the same under every policy (no counter decrease in them).
DECREASE_COMMON = {
    "ActiveAcquire": [-2, 2],  # gauge 5 -> 3 -> 5
    "ActiveReceive": [-1, 1],  # gauge 0 -> M-1 (as int64: -1) -> 0
    "AcquireHeapSize": [1, -1],  # gauge H-1 -> H -> H-1
    "ReceiveHeapSize": [-9223372036854775808, -9223372036854775808],  # gauge 0 -> H -> 0: +-H is -H in int64
    "AuthenticationFailures": [4294967296, 0],  # 1 -> 2**32 + 1: +2**32
    "TotalGetSPI": [18446744073709551615, 0],  # 0 -> M-1: the largest possible increase
    "ConnectionListSize": [0, -93],  # gauge 100 -> 100 -> 7
}
# Row 0 decreases: AcquireFailures 10 -> 7 (fall 3), ReceiveFailures M-1 -> 4 (fall M-5),
# SendFailures H+5 -> 5 (fall exactly H), NegotiationFailures H+4 -> 5 (fall H-1).
# Row 1 decrease: OakleyMainMode 60 -> 1 (fall 59). Row 0 of OakleyMainMode: 50 -> 60 = 10.
DECREASE_BY_POLICY = {
    "wrap": {  # (cur - prev) mod M
        "AcquireFailures": [18446744073709551613, 2],  # M - 3; then 7 -> 9
        "ReceiveFailures": [5, 0],  # 4 - (M-1) + M
        "SendFailures": [9223372036854775808, 1],  # 5 - (H+5) + M = H; then 5 -> 6
        "NegotiationFailures": [9223372036854775809, 0],  # 5 - (H+4) + M = H + 1
        "OakleyMainMode": [10, 18446744073709551557],  # M - 59
    },
    "reset": {  # cur
        "AcquireFailures": [7, 2],
        "ReceiveFailures": [4, 0],
        "SendFailures": [5, 1],
        "NegotiationFailures": [5, 0],
        "OakleyMainMode": [10, 1],
    },
    "zero": {
        "AcquireFailures": [0, 2],
        "ReceiveFailures": [0, 0],
        "SendFailures": [0, 1],
        "NegotiationFailures": [0, 0],
        "OakleyMainMode": [10, 0],
    },
    "auto": {  # fall < H: cur (restart); fall >= H: wrap
        "AcquireFailures": [7, 2],  # fall 3: restart
        "ReceiveFailures": [5, 0],  # fall M-5: wrap
        "SendFailures": [9223372036854775808, 1],  # fall exactly H: wrap
        "NegotiationFailures": [5, 0],  # fall H-1: restart
        "OakleyMainMode": [10, 1],  # fall 59: restart
    },
}
DECREASE_RESETS = [[0, "AcquireFailures"], [0, "ReceiveFailures"], [0, "SendFailures"],
                   [0, "NegotiationFailures"], [1, "OakleyMainMode"]]
DECREASE_RAISE = {"type": "CounterResetError", "row": 0, "field": "AcquireFailures",
                  "previous": "10", "current": "7"}

# The same file with kinds={"ActiveAcquire": "counter", "AcquireFailures": "gauge"}:
# ActiveAcquire 5 -> 3 -> 5 becomes a counter (fall 2), AcquireFailures 10 -> 7 -> 9 a gauge.
KINDS_OVERRIDE = {"ActiveAcquire": "counter", "AcquireFailures": "gauge"}
KINDS_BY_POLICY = {
    "wrap": {"ActiveAcquire": [18446744073709551614, 2], "AcquireFailures": [-3, 2]},  # M - 2
    "reset": {"ActiveAcquire": [3, 2], "AcquireFailures": [-3, 2]},
    "zero": {"ActiveAcquire": [0, 2], "AcquireFailures": [-3, 2]},
    "auto": {"ActiveAcquire": [3, 2], "AcquireFailures": [-3, 2]},
}
KINDS_RESETS = [[0, "ActiveAcquire"], [0, "ReceiveFailures"], [0, "SendFailures"],
                [0, "NegotiationFailures"], [1, "OakleyMainMode"]]
KINDS_RAISE = {"type": "CounterResetError", "row": 0, "field": "ActiveAcquire",
               "previous": "5", "current": "3"}

# --------------------------------------------------------------------------------------
# stride2.bin: two interleaved instances A, B (records A0 B0 A1 B1 A2 B2), stride 2.
#   KeyAdditions        A: 100, 150, 10          B: 1000, 1001, 1003
#   ConnectionListSize  A: 5, 3, 8  (gauge)      B: 0, 0, M-1
#   InvalidPackets      A: 7, 7, 7               B: M-2, 1, 2
STRIDE2 = [
    {"KeyAdditions": 100, "ConnectionListSize": 5, "InvalidPackets": 7},  # A0
    {"KeyAdditions": 1000, "ConnectionListSize": 0, "InvalidPackets": M - 2},  # B0
    {"KeyAdditions": 150, "ConnectionListSize": 3, "InvalidPackets": 7},  # A1
    {"KeyAdditions": 1001, "ConnectionListSize": 0, "InvalidPackets": 1},  # B1
    {"KeyAdditions": 10, "ConnectionListSize": 8, "InvalidPackets": 7},  # A2
    {"KeyAdditions": 1003, "ConnectionListSize": M - 1, "InvalidPackets": 2},  # B2
]
# Rows: 0 = A1-A0, 1 = B1-B0, 2 = A2-A1, 3 = B2-B1.
STRIDE2_COMMON = {"ConnectionListSize": [-2, 0, 5, -1]}  # 5->3, 0->0, 3->8, 0->M-1 (int64 -1)
STRIDE2_BY_POLICY = {
    # KeyAdditions row 2: 150 -> 10 (fall 140). InvalidPackets row 1: M-2 -> 1 (fall M-3).
    "wrap": {"KeyAdditions": [50, 1, 18446744073709551476, 2],  # M - 140
             "InvalidPackets": [0, 3, 0, 1]},  # 1 - (M-2) + M = 3
    "reset": {"KeyAdditions": [50, 1, 10, 2], "InvalidPackets": [0, 1, 0, 1]},
    "zero": {"KeyAdditions": [50, 1, 0, 2], "InvalidPackets": [0, 0, 0, 1]},
    "auto": {"KeyAdditions": [50, 1, 10, 2],  # fall 140 < H: restart
             "InvalidPackets": [0, 3, 0, 1]},  # fall M-3 >= H: wrap
}
STRIDE2_RESETS = [[1, "InvalidPackets"], [2, "KeyAdditions"]]
STRIDE2_RAISE = {"type": "CounterResetError", "row": 1, "field": "InvalidPackets",
                 "previous": "18446744073709551614", "current": "1"}

# stride2_previous.bin: the last sample of the preceding batch (PA, PB), used as
# previous= with stride2.bin: 6 rows, rows 0-1 against it, rows 2-5 = stride2 rows 0-3.
#   PA: KeyAdditions 90, ConnectionListSize 6, InvalidPackets 8
#   PB: KeyAdditions 1000, ConnectionListSize 0, InvalidPackets M-2
STRIDE2_PREVIOUS = [
    {"KeyAdditions": 90, "ConnectionListSize": 6, "InvalidPackets": 8},  # PA
    {"KeyAdditions": 1000, "ConnectionListSize": 0, "InvalidPackets": M - 2},  # PB
]
STRIDE2_PREV_COMMON = {"ConnectionListSize": [-1, 0, -2, 0, 5, -1]}  # A0-PA: 5-6
STRIDE2_PREV_BY_POLICY = {
    # Row 0 InvalidPackets: 8 -> 7 (fall 1). KeyAdditions row 0: 90 -> 100 = 10.
    "wrap": {"KeyAdditions": [10, 0, 50, 1, 18446744073709551476, 2],
             "InvalidPackets": [18446744073709551615, 0, 0, 3, 0, 1]},  # M - 1
    "reset": {"KeyAdditions": [10, 0, 50, 1, 10, 2], "InvalidPackets": [7, 0, 0, 1, 0, 1]},
    "zero": {"KeyAdditions": [10, 0, 50, 1, 0, 2], "InvalidPackets": [0, 0, 0, 0, 0, 1]},
    "auto": {"KeyAdditions": [10, 0, 50, 1, 10, 2], "InvalidPackets": [7, 0, 0, 3, 0, 1]},
}
STRIDE2_PREV_RESETS = [[0, "InvalidPackets"], [3, "InvalidPackets"], [4, "KeyAdditions"]]
STRIDE2_PREV_RAISE = {"type": "CounterResetError", "row": 0, "field": "InvalidPackets",
                      "previous": "8", "current": "7"}

# --------------------------------------------------------------------------------------
# layout.bin: one record whose item j (WmiDataId j+1) is the bytes [j+1, 0, 0, 0, 0, 0, 0, 0x80]:
# read little-endian that is H + (j+1); read big-endian it would be something else entirely.
LAYOUT_BYTES = b"".join(bytes([j + 1, 0, 0, 0, 0, 0, 0, 0x80]) for j in range(21))
LAYOUT_VALUES = dict(zip(NAMES, [
    "9223372036854775809", "9223372036854775810", "9223372036854775811", "9223372036854775812",
    "9223372036854775813", "9223372036854775814", "9223372036854775815", "9223372036854775816",
    "9223372036854775817", "9223372036854775818", "9223372036854775819", "9223372036854775820",
    "9223372036854775821", "9223372036854775822", "9223372036854775823", "9223372036854775824",
    "9223372036854775825", "9223372036854775826", "9223372036854775827", "9223372036854775828",
    "9223372036854775829",
]))

# truncated.bin: the first two records of decrease.bin and 5 stray bytes.
TRUNCATED_TAIL = b"\xff\xee\xdd\xcc\xbb"


def delta_case(name: str, file: str, stride: int, nrows: int, common: dict, by_policy: dict,
               resets: list, raise_error: dict, previous: str | None = None,
               kinds: dict | None = None) -> dict:
    policies: dict = {}
    for policy in POLICIES:
        policies[policy] = {"values": full({**common, **by_policy[policy]}, nrows), "resets": resets}
    policies["raise"] = {"error": raise_error}
    return {"name": name, "file": file, "previous": previous, "stride": stride, "kinds": kinds,
            "rows": nrows, "policies": policies}


def main() -> None:
    counters = [n for n in NAMES if n not in
                ("ActiveAcquire", "ActiveReceive", "AcquireHeapSize", "ReceiveHeapSize",
                 "ConnectionListSize")]
    files = {
        "decrease.bin": pack(DECREASE),
        "stride2.bin": pack(STRIDE2),
        "stride2_previous.bin": pack(STRIDE2_PREVIOUS),
        "layout.bin": LAYOUT_BYTES,
        "truncated.bin": pack(DECREASE[:2]) + TRUNCATED_TAIL,
    }
    golden = {
        "record_size": 168,
        "fields": list(NAMES),
        "layout": {"file": "layout.bin", "values": LAYOUT_VALUES},
        "truncated": {"file": "truncated.bin", "records": 2, "trailing_bytes": 5, "offset": 336},
        "deltas": [
            delta_case("decrease", "decrease.bin", 1, 2, DECREASE_COMMON, DECREASE_BY_POLICY,
                       DECREASE_RESETS, DECREASE_RAISE),
            delta_case("decrease_kinds", "decrease.bin", 1, 2, DECREASE_COMMON,
                       {p: {**DECREASE_BY_POLICY[p], **KINDS_BY_POLICY[p]} for p in POLICIES},
                       KINDS_RESETS, KINDS_RAISE, kinds=KINDS_OVERRIDE),
            delta_case("stride2", "stride2.bin", 2, 4, STRIDE2_COMMON, STRIDE2_BY_POLICY,
                       STRIDE2_RESETS, STRIDE2_RAISE),
            delta_case("stride2_previous", "stride2.bin", 2, 6, STRIDE2_PREV_COMMON,
                       STRIDE2_PREV_BY_POLICY, STRIDE2_PREV_RESETS, STRIDE2_PREV_RAISE,
                       previous="stride2_previous.bin"),
            # Fewer than stride + 1 records: no rows, whatever the policy (even "raise").
            {"name": "stride6_empty", "file": "stride2.bin", "previous": None, "stride": 6,
             "kinds": None, "rows": 0,
             "policies": {p: {"values": full({}, 0), "resets": []} for p in (*POLICIES, "raise")}},
            {"name": "stride9_empty", "file": "stride2.bin", "previous": None, "stride": 9,
             "kinds": None, "rows": 0,
             "policies": {p: {"values": full({}, 0), "resets": []} for p in (*POLICIES, "raise")}},
        ],
        "rates": [
            # interval 2 s between two samples of one instance: delta / 2 (auto policy).
            {"name": "stride2_interval", "file": "stride2.bin", "stride": 2, "interval": 2.0,
             "timestamps": None, "on_decrease": "auto",
             "values": full_rates({"KeyAdditions": [25.0, 0.5, 5.0, 1.0],  # 50/2, 1/2, 10/2, 2/2
                                   "InvalidPackets": [0.0, 1.5, 0.0, 0.5]}, 4, counters)},  # 3/2, 1/2
            # float seconds, A and B of a sample share a time: steps 10, 10, 0, 0 -> NaN, NaN.
            {"name": "stride2_float_timestamps", "file": "stride2.bin", "stride": 2, "interval": None,
             "timestamps": [0.0, 0.0, 10.0, 10.0, 10.0, 10.0], "on_decrease": "auto",
             "values": full_rates({"KeyAdditions": [5.0, 0.1, None, None],  # 50/10, 1/10
                                   "InvalidPackets": [0.0, 0.3, None, None]}, 4, counters,  # 3/10
                                  nan_rows=(2, 3))},
            # datetime64[ms]: t, t, t+4s, t+4s, t+2s, t+2s: steps 4 s, 4 s, -2 s (NaN), -2 s (NaN).
            {"name": "stride2_datetime64", "file": "stride2.bin", "stride": 2, "interval": None,
             "timestamps": ["2024-01-01T00:00:00.000", "2024-01-01T00:00:00.000",
                            "2024-01-01T00:00:04.000", "2024-01-01T00:00:04.000",
                            "2024-01-01T00:00:02.000", "2024-01-01T00:00:02.000"],
             "timestamps_dtype": "datetime64[ms]", "on_decrease": "wrap",
             "values": full_rates({"KeyAdditions": [12.5, 0.25, None, None],  # 50/4, 1/4
                                   "InvalidPackets": [0.0, 0.75, None, None]}, 4, counters,  # 3/4
                                  nan_rows=(2, 3))},
            # interval 1 s, wrap: TotalGetSPI's M-1 rounds once, to the nearest float64, M.
            {"name": "decrease_wrap_interval", "file": "decrease.bin", "stride": 1, "interval": 1.0,
             "timestamps": None, "on_decrease": "wrap",
             "values": full_rates({
                 "AcquireFailures": [18446744073709551616.0, 2.0],  # M-3 -> M
                 "ReceiveFailures": [5.0, 0.0],
                 "SendFailures": [9223372036854775808.0, 1.0],  # H exactly
                 "NegotiationFailures": [9223372036854775808.0, 0.0],  # H+1 -> H
                 "AuthenticationFailures": [4294967296.0, 0.0],
                 "TotalGetSPI": [18446744073709551616.0, 0.0],  # M-1 -> M
                 "OakleyMainMode": [10.0, 18446744073709551616.0],  # M-59 -> M
             }, 2, counters)},
        ],
    }
    for name, data in files.items():
        (HERE / name).write_bytes(data)
    text = json.dumps(golden, indent=1)
    # one line per list of scalars (the strings hold no spaces), for a readable diff
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    (HERE / "golden.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
