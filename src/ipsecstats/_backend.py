"""Pick the kernel: the Cython ``_fast`` module, or its pure twin ``_slow``.

``IPSECSTATS_NO_EXTENSIONS`` set to one of 1/true/yes/on forces the twin ("0" and
"" do not). Otherwise a ``_fast`` that fails to import falls back to the twin with a
RuntimeWarning saying why and how to rebuild, or, under ``IPSECSTATS_REQUIRE_EXTENSIONS``,
raises ImportError. ``BACKEND`` says what actually loaded: "cython" or "python".
"""

from __future__ import annotations

import importlib
import os
import platform
import warnings
from types import ModuleType

from . import _slow

TRUTHY = frozenset({"1", "true", "yes", "on"})
FAST_MODULE = "ipsecstats._fast"
# --no-binary: build from the sdist; --force-reinstall: the same version is installed
# already; --no-deps: leave numpy and the rest alone; --no-cache-dir: pip would otherwise
# reuse the extension-less wheel it built and cached the first time.
REBUILD_COMMAND = "pip install --no-cache-dir --force-reinstall --no-deps --no-binary ipsecstats ipsecstats"


def env_flag(name: str) -> bool:
    """True when the environment variable holds an explicit truthy value."""
    return os.environ.get(name, "").strip().lower() in TRUTHY


def missing_extension_message(exc: ImportError, *, required: bool = False) -> str:
    """Why ``ipsecstats._fast`` did not load, what follows, and how to rebuild it.

    A ModuleNotFoundError for ``ipsecstats._fast`` itself means the install has no
    compiled module (no compiler, or IPSECSTATS_NO_EXTENSIONS, at build time); any other
    ImportError means the module is there but cannot load (wrong platform or Python,
    missing symbol, damaged file), and its own message is the reason. ``required``: the
    message of the ImportError raised under IPSECSTATS_REQUIRE_EXTENSIONS.
    """
    if isinstance(exc, ModuleNotFoundError) and exc.name == FAST_MODULE:
        what = f"the compiled extension {FAST_MODULE} was not built (this install has no such module)"
    else:
        what = f"the compiled extension {FAST_MODULE} is installed but could not be loaded: {exc}"
    if required:
        outcome = ("IPSECSTATS_REQUIRE_EXTENSIONS is set, so this is an error rather than a "
                   "fall-back to the pure-numpy twin")
        switches = "Unset IPSECSTATS_REQUIRE_EXTENSIONS to run on the twin."
    else:
        outcome = "ipsecstats runs on its pure-numpy twin instead: the same numbers, several times slower"
        switches = ("Set IPSECSTATS_REQUIRE_EXTENSIONS=1 to make a missing extension an error (at "
                    "build and at import time), or IPSECSTATS_NO_EXTENSIONS=1 to choose the twin "
                    "and silence this warning.")
    return (
        f"ipsecstats: {what}. {outcome}. To build the extension, install a C compiler, then "
        f"rebuild from source with\n    {REBUILD_COMMAND}\n(from a source checkout: the same "
        f"options with '.' in place of '--no-binary ipsecstats ipsecstats'). {switches}"
    )


def _load() -> tuple[ModuleType, str]:
    if env_flag("IPSECSTATS_NO_EXTENSIONS") or platform.python_implementation() != "CPython":
        return _slow, "python"
    try:
        # import_module, not `from . import _fast`: while the package is initializing, the
        # latter reports a missing module as a "partially initialized module ... circular
        # import", which hides the real reason.
        fast = importlib.import_module(FAST_MODULE)
    except ImportError as exc:
        if env_flag("IPSECSTATS_REQUIRE_EXTENSIONS"):
            raise ImportError(missing_extension_message(exc, required=True), name=FAST_MODULE) from exc
        warnings.warn(missing_extension_message(exc), RuntimeWarning, stacklevel=2)
        return _slow, "python"
    return fast, "cython"


KERNEL, BACKEND = _load()
