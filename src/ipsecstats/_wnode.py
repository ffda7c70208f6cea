"""Compatibility shim: the WNODE format lives in ``ipsecstats.formats.wnode``.

Kept only because ``cli`` (``_wnode_encoder``) and ``_log`` still import ``write_wnode`` /
``read_wnode`` from here; remove once they import from ``formats.wnode``.
"""

from __future__ import annotations

from .formats.wnode import WnodeFormatError, WnodeWarning, read_wnode, write_wnode

__all__ = ["WnodeFormatError", "WnodeWarning", "read_wnode", "write_wnode"]
