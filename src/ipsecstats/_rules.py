"""What a delta is, shared by the stride and the instance-keyed kernels: field kinds, the
output dtypes, the ``on_decrease`` policies, checks of ``out=`` arrays, exact time steps."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._schema import FIELD_NAMES, FIELDS, Kind

__all__ = ["DecreasePolicy", "ON_DECREASE", "check_apart", "check_out", "check_policy", "counter_lanes", "delta_dtype",
           "exact_int_difference", "rate_dtype", "resolve_kinds"]

DecreasePolicy = Literal["auto", "reset", "wrap", "zero", "raise"]
ON_DECREASE: tuple[str, ...] = ("auto", "reset", "wrap", "zero", "raise")
_KINDS = ("counter", "gauge")


def resolve_kinds(kinds: Mapping[str, str] | None) -> tuple[Kind, ...]:
    """Field kinds in record order: the defaults, overridden by ``kinds``."""
    resolved: list[Any] = [f.kind for f in FIELDS]
    if kinds is None:
        return tuple(resolved)
    if not isinstance(kinds, Mapping):
        raise TypeError(f"kinds must be a mapping of field name to 'counter'/'gauge', not {type(kinds).__name__}")
    for name, kind in kinds.items():
        if name not in FIELD_NAMES:
            raise ValueError(f"kinds: unknown field {name!r}; fields are {', '.join(FIELD_NAMES)}")
        if kind not in _KINDS:
            raise ValueError(f"kinds: field {name!r} has kind {kind!r}; use 'counter' or 'gauge'")
        resolved[FIELD_NAMES.index(name)] = kind
    return tuple(resolved)


@lru_cache(maxsize=64)
def delta_dtype(kinds: tuple[Kind, ...]) -> np.dtype[np.void]:
    """The deltas dtype: the 21 field names, counters '<u8', gauges '<i8'."""
    formats = ["<u8" if k == "counter" else "<i8" for k in kinds]
    return np.dtype({"names": list(FIELD_NAMES), "formats": formats})


@lru_cache(maxsize=64)
def rate_dtype(kinds: tuple[Kind, ...]) -> np.dtype[np.void]:
    """The rates dtype: the counter fields only, float64 per second, in native byte order
    (the kernels write native doubles; deltas and records keep the little-endian row)."""
    names = [n for n, k in zip(FIELD_NAMES, kinds) if k == "counter"]
    return np.dtype({"names": names, "formats": [np.float64] * len(names)})


@lru_cache(maxsize=64)
def counter_lanes(kinds: tuple[Kind, ...]) -> npt.NDArray[np.uint8]:
    """(21,) uint8 for the kernel: 1 where the item is a counter."""
    lanes = np.array([k == "counter" for k in kinds], dtype=np.uint8)
    lanes.flags.writeable = False
    return lanes


def check_policy(on_decrease: Any) -> DecreasePolicy:
    """``on_decrease`` as a plain ``str`` (a numpy string is one too), or ValueError."""
    if not isinstance(on_decrease, str) or on_decrease not in ON_DECREASE:
        raise ValueError(
            f"on_decrease must be one of {', '.join(repr(p) for p in ON_DECREASE)}; got {on_decrease!r}"
        )
    return str(on_decrease)  # type: ignore[return-value]


def check_apart(values: Any, resets: Any) -> None:
    """``out=(values, resets)`` must be two arrays that share no byte: the kernel writes both."""
    if resets is not None and np.may_share_memory(values, resets):
        raise ValueError("out[0] (values) and out[1] (resets) must not overlap")


def check_out(name: str, arr: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(arr).__name__}")
    if arr.shape != shape or arr.dtype != dtype:
        raise ValueError(f"{name} must have shape {shape} and dtype {dtype}, got {arr.shape} {arr.dtype}")
    if not (arr.flags.c_contiguous and arr.flags.writeable):
        raise ValueError(f"{name} must be C-contiguous and writeable")


def exact_int_difference(later: npt.NDArray[Any], earlier: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """``later - earlier`` of integer arrays, computed exactly and rounded once to float64.

    The magnitude of a difference of two 64-bit integers is below 2**64, so the modular
    uint64 difference, taken in the right order, is exact.
    """
    signed = later.dtype.kind == "i"
    lo = (later.astype(np.int64) if signed else later.astype(np.uint64)).view(np.uint64)
    eo = (earlier.astype(np.int64) if signed else earlier.astype(np.uint64)).view(np.uint64)
    forward = later >= earlier
    magnitude = np.where(forward, lo - eo, eo - lo).astype(np.float64)
    return np.where(forward, magnitude, -magnitude)
