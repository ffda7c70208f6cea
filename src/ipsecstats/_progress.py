"""Progress bars for the command line: tqdm on standard error, never on standard output.

``--progress auto`` (the default) shows a bar only when standard error is a terminal,
and only for work that runs longer than a couple of seconds; ``always`` forces it
(and needs tqdm); ``never`` turns it off.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

__all__ = ["MODES", "Progress"]

MODES = ("auto", "always", "never")
_AUTO_DELAY = 2.0  # seconds before an auto bar appears: quick jobs stay silent


_WARNED: set[str] = set()


def _warn_once(text: str) -> None:
    if text not in _WARNED:
        _WARNED.add(text)
        print(f"ipsecstats: warning: {text}", file=sys.stderr)


class Progress:
    """A byte counter that drives a tqdm bar when one is wanted, and does nothing otherwise."""

    def __init__(self, total: int | None, desc: str, mode: str = "auto", unit: str = "B"):
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {', '.join(MODES)}, got {mode!r}")
        self._bar: Any = None
        if mode == "never" or (mode == "auto" and not _stderr_is_terminal()):
            return
        try:
            from tqdm import tqdm
        except ImportError:
            if mode == "always":
                _warn_once('progress bars need tqdm (pip install "ipsecstats[cli]"): going on without one')
            return
        self._bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=True,
            unit_divisor=1024 if unit == "B" else 1000,
            file=sys.stderr,
            delay=_AUTO_DELAY if mode == "auto" else 0.0,
            leave=False,
            dynamic_ncols=True,
        )

    @property
    def active(self) -> bool:
        return self._bar is not None

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
