"""Pick the kernel: the Cython ``_fast`` module, or its pure twin ``_slow``.

``IPSECSTATS_NO_EXTENSIONS`` set to one of 1/true/yes/on forces the twin ("0" and
"" do not). ``BACKEND`` says what actually loaded: "cython" or "python".
"""

from __future__ import annotations

import os
import platform
import warnings
from types import ModuleType

from . import _slow

TRUTHY = frozenset({"1", "true", "yes", "on"})


def env_flag(name: str) -> bool:
    """True when the environment variable holds an explicit truthy value."""
    return os.environ.get(name, "").strip().lower() in TRUTHY


def _load() -> tuple[ModuleType, str]:
    if env_flag("IPSECSTATS_NO_EXTENSIONS") or platform.python_implementation() != "CPython":
        return _slow, "python"
    try:
        from . import _fast
    except ImportError as exc:
        warnings.warn(
            f"ipsecstats: the Cython kernel is not available ({exc}); running on the "
            "pure-Python twin, several times slower. Reinstall with a C compiler, or set "
            "IPSECSTATS_NO_EXTENSIONS=1 to choose the twin and silence this warning.",
            RuntimeWarning,
            stacklevel=2,
        )
        return _slow, "python"
    return _fast, "cython"


KERNEL, BACKEND = _load()
