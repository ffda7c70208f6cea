"""Argument checks shared by the public functions."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_int"]


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as a Python int: a Python or numpy integer (not a bool) that is ``>= minimum``.

    Raises ``TypeError`` for any other type and ``ValueError`` below ``minimum``, naming ``name``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)
