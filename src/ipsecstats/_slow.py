"""Pure-numpy twin of ``_fast``: the same kernel signature, no compiled code of ours.

It is the oracle the tests compare the Cython kernel against, and the fallback where
the extension is not built. The arithmetic is stated in ``_kernel.h``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._schema import NFIELDS, RECORD_SIZE

_HALF = np.uint64(1 << 63)
_POLICIES = ("wrap", "reset", "zero", "auto")


def _check_rows(name: str, shape: tuple[int, ...], rows: int, width: int) -> None:
    if len(shape) != 2 or shape[0] != rows or shape[1] != width:
        raise ValueError(f"{name} must have shape ({rows}, {width}), got {shape}")


def delta_rows(
    prev: npt.NDArray[np.uint8],
    cur: npt.NDArray[np.uint8],
    counters: npt.NDArray[np.uint8],
    policy: str,
    out: npt.NDArray[np.uint8],
    resets: npt.NDArray[np.uint8] | None = None,
) -> int:
    """``out[i] = policy(cur[i] - prev[i])`` for every row; return how many counters fell."""
    if policy not in _POLICIES:
        raise ValueError(f"policy must be one of {', '.join(_POLICIES)}, got {policy!r}")
    m = prev.shape[0]
    _check_rows("prev", prev.shape, m, RECORD_SIZE)
    _check_rows("cur", cur.shape, m, RECORD_SIZE)
    _check_rows("out", out.shape, m, RECORD_SIZE)
    if counters.shape != (NFIELDS,):
        raise ValueError(f"counters must have shape ({NFIELDS},), got {counters.shape}")
    if resets is not None:
        _check_rows("resets", resets.shape, m, NFIELDS)
    if m == 0:
        return 0
    p = prev.view("<u8")
    c = cur.view("<u8")
    d = out.view("<u8")
    np.subtract(c, p, out=d)
    dec = np.less(c, p)
    dec &= counters.astype(bool)
    ndec = int(np.count_nonzero(dec))
    if ndec and policy != "wrap":
        if policy == "zero":
            np.copyto(d, np.uint64(0), where=dec)
        else:
            if policy == "auto":
                dec_restart = np.greater(d, _HALF)
                dec_restart &= dec
            else:
                dec_restart = dec
            np.copyto(d, c, where=dec_restart)
    if resets is not None:
        np.copyto(resets, dec, casting="unsafe")
    return ndec
