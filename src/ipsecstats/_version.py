"""The package version, in one place: ``pyproject.toml`` reads it from here at build time.

A module of its own, free of imports, so the build reads it without importing numpy.
"""

__version__ = "0.1.0"
