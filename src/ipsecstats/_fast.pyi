# Hand-written stub for the Cython kernel; kept honest by `python -m mypy.stubtest ipsecstats._fast`.
import numpy as np
import numpy.typing as npt

STREAMING_THRESHOLD: int

def vector_path() -> str: ...
def _set_vector_path(path: bool | str) -> None: ...
def delta_rows(
    prev: npt.NDArray[np.uint8],
    cur: npt.NDArray[np.uint8],
    counters: npt.NDArray[np.uint8],
    policy: str,
    out: npt.NDArray[np.uint8],
    resets: npt.NDArray[np.uint8] | None = None,
) -> int: ...
def keyed_delta_rows(
    cur: npt.NDArray[np.uint8],
    codes: npt.NDArray[np.intp],
    ticks: npt.NDArray[np.int64] | None,
    state_rows: npt.NDArray[np.uint8],
    state_ticks: npt.NDArray[np.int64],
    state_seen: npt.NDArray[np.uint8],
    counters: npt.NDArray[np.uint8],
    policy: str,
    out: npt.NDArray[np.uint8],
    resets: npt.NDArray[np.uint8] | None,
    earlier: npt.NDArray[np.intp],
    later: npt.NDArray[np.intp],
    earlier_ticks: npt.NDArray[np.int64] | None,
) -> tuple[int, int]: ...
def transpose_rows(
    src: npt.NDArray[np.uint8],
    out: npt.NDArray[np.uint64],
    streaming: bool = False,
) -> None: ...
STATS_ACC: int
STATS_BIN: int

def stats_rows(
    cur: npt.NDArray[np.uint8],
    prev: npt.NDArray[np.uint8],
    counters: npt.NDArray[np.uint8],
    policy: str,
    stride: int,
    start: int,
    width: int,
    final: bool,
    acc: npt.NDArray[np.uint64],
    bins: npt.NDArray[np.uint64],
    events: npt.NDArray[np.int64],
    parts: int = 3,
) -> None: ...
def wnode_count(
    buf: npt.NDArray[np.uint8] | bytes, guid: npt.NDArray[np.uint8] | bytes, skip_too_small: bool
) -> tuple[int, ...]: ...
def wnode_fill(
    buf: npt.NDArray[np.uint8] | bytes,
    guid: npt.NDArray[np.uint8] | bytes,
    skip_too_small: bool,
    records: npt.NDArray[np.uint8],
    ticks: npt.NDArray[np.int64],
    name_ids: npt.NDArray[np.int64],
    names: npt.NDArray[np.int64],
    slots: npt.NDArray[np.int64],
    seed: int = ...,
) -> tuple[int, ...]: ...
def rate_rows(
    values: npt.NDArray[np.uint64],
    columns: npt.NDArray[np.uint8],
    seconds: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
) -> None: ...
def csv_rows(
    buf: npt.NDArray[np.uint8] | bytes,
    final: bool,
    delimiter: int,
    roles: npt.NDArray[np.int64],
    nprops: int,
    records: npt.NDArray[np.uint8],
    strs: npt.NDArray[np.int64],
    stamps: npt.NDArray[np.int64],
    lines: npt.NDArray[np.int64],
    line: int,
    max_row: int,
) -> tuple[int, int, int, int, int, int, int, int]: ...

# --- perfmon PDH-CSV / PDH-TSV rows (formats.pdhcsv) ---
def pdh_rows(
    buf: npt.NDArray[np.uint8] | bytes,
    final: bool,
    delimiter: int,
    roles: npt.NDArray[np.int64],
    values: npt.NDArray[np.uint64],
    missing: npt.NDArray[np.uint8],
    stamps: npt.NDArray[np.int64],
    lines: npt.NDArray[np.int64],
    line: int,
    max_row: int,
) -> tuple[int, int, int, int, int, int, int]: ...

# --- deltas fused with rates ---
def delta_rate_rows(
    prev: npt.NDArray[np.uint8],
    cur: npt.NDArray[np.uint8],
    counters: npt.NDArray[np.uint8],
    policy: str,
    columns: npt.NDArray[np.uint8],
    seconds: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
) -> None: ...

# --- text rows (CSV, JSON Lines) ---
def format_rows(
    columns: list[npt.NDArray[np.uint64] | npt.NDArray[np.uint8]],
    kinds: bytes,
    tables: list[tuple[bytes, ...] | None],
    seps: list[bytes],
    term: bytes,
    start: int,
    stop: int,
) -> bytearray: ...
