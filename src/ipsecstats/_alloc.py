"""Output buffers aligned for the kernel's 32-byte non-temporal stores."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

ALIGNMENT = 64  # one cache line; the kernels stream only to 16-byte aligned outputs

# Outputs larger than this (about the last-level cache) go out with non-temporal stores;
# below it, regular stores are faster (the output is read again while still cached).
STREAMING_THRESHOLD = 8 * 1024 * 1024


def aligned_empty(shape: int | tuple[int, ...], dtype: Any) -> npt.NDArray[Any]:
    """``np.empty(shape, dtype)`` whose data starts on a 64-byte boundary."""
    dt = np.dtype(dtype)
    shape_t = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = int(np.prod(shape_t, dtype=np.int64)) * dt.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGNMENT
    return raw[start : start + nbytes].view(dt).reshape(shape_t)
