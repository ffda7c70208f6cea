"""nox sessions: the test suite on Python 3.11-3.13, both backends, numpy min/latest.

    nox -l                          # list the sessions
    nox -s tests                    # 3.11/3.12/3.13 x cython/python, the newest numpy each
    nox -s numpy_min numpy_latest   # the oldest / newest numpy a Python has wheels for
    nox -s "tests-3.13(backend='python')"

Each session installs the package itself (not the source tree: ``src`` is not on the
path), built with ``--no-build-isolation`` against the session's numpy and Cython, and
with ``IPSECSTATS_REQUIRE_EXTENSIONS=1`` so a failed compile is an error. The ``python``
backend sets ``IPSECSTATS_NO_EXTENSIONS=1`` at run time only: the compiled kernel stays
importable, so the parity tests still compare both kernels.

Virtualenvs are reused (``reuse_venv``): a second run only rebuilds the package. They live
in ``.venv-nox/`` (ignored by git like every ``.venv*``).

Interpreters: nox looks for ``python3.X`` on ``PATH``. Under pyenv only the global
version's shims answer, so when ``PYENV_VERSION`` is unset this file sets it to every
installed 3.11/3.12/3.13 (the newest patch release of each), which is the same as running
``PYENV_VERSION=3.11.7:3.12.1:3.13.0 nox``.

numpy: the declared minimum is numpy 2.0 (``numpy>=2.0``). numpy 2.0.x has no CPython
3.13 wheels: 2.1.0 is the first, so it is 3.13's minimum. numpy 2.5 requires Python >= 3.12:
3.11's newest is 2.4.x.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

PYTHONS = ["3.11", "3.12", "3.13"]
# The oldest numpy each Python gets wheels for (never build numpy from source here).
NUMPY_MIN = {"3.11": "numpy==2.0.0", "3.13": "numpy==2.1.0"}
BUILD_TOOLS = ["setuptools>=64", "Cython>=3.0"]

nox.options.envdir = ".venv-nox"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests", "numpy_min", "numpy_latest"]


def _pyenv_versions() -> None:
    """Let pyenv's ``python3.X`` shims answer for every installed 3.X in PYTHONS."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if "PYENV_VERSION" in os.environ or not root.is_dir():
        return
    chosen = []
    for minor in PYTHONS:
        found = [p.name for p in root.iterdir()
                 if re.fullmatch(re.escape(minor) + r"\.\d+", p.name)
                 and (p / "bin" / f"python{minor}").exists()]
        if found:
            chosen.append(max(found, key=lambda v: int(v.rsplit(".", 1)[1])))
    if chosen:
        os.environ["PYENV_VERSION"] = ":".join(chosen)


_pyenv_versions()


def _install(session: nox.Session, numpy: str) -> None:
    """The build tools and ``numpy``, then the package with its test extras, compiled."""
    session.install("--upgrade", *BUILD_TOOLS, numpy)  # "numpy" alone: the newest, even in a reused venv
    session.install("--no-build-isolation", ".[test]", numpy,
                    env={"IPSECSTATS_REQUIRE_EXTENSIONS": "1"})
    session.run("python", "-c", "import ipsecstats, numpy, sys; "
                "print('ipsecstats', ipsecstats.__file__, ipsecstats.BACKEND, 'numpy', numpy.__version__);"
                "sys.exit(ipsecstats.BACKEND != 'cython' or 'site-packages' not in ipsecstats.__file__)")


def _pytest(session: nox.Session, backend: str) -> None:
    env = {"IPSECSTATS_REQUIRE_EXTENSIONS": "1"}
    if backend == "python":
        env["IPSECSTATS_NO_EXTENSIONS"] = "1"
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *session.posargs, env=env)


@nox.session(python=PYTHONS)
@nox.parametrize("backend", ["cython", "python"])
def tests(session: nox.Session, backend: str) -> None:
    """The suite on one backend with the newest numpy this Python has wheels for."""
    _install(session, "numpy")
    _pytest(session, backend)


@nox.session(python=list(NUMPY_MIN))
def numpy_min(session: nox.Session) -> None:
    """The oldest supported numpy (2.0.0; 2.1.0 on 3.13), both backends."""
    _install(session, NUMPY_MIN[str(session.python)])
    _pytest(session, "cython")
    _pytest(session, "python")


@nox.session(python=["3.13"])
def numpy_latest(session: nox.Session) -> None:
    """The newest numpy release on the newest Python, both backends in one venv."""
    _install(session, "numpy")
    _pytest(session, "cython")
    _pytest(session, "python")
