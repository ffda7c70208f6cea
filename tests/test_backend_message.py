"""What ``import ipsecstats`` says when the compiled kernel is missing or broken.

Each case runs a fresh interpreter on a copy of the installed package in a scratch
directory: without ``_fast`` (an install where no compiler was found), or with a damaged
``_fast`` (a file the loader rejects). The real package is never touched.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ipsecstats
from ipsecstats._backend import REBUILD_COMMAND

PACKAGE = Path(ipsecstats.__file__).resolve().parent

# Imports the copy, records the warnings, and loads _fast once more by itself, so the test
# can compare the warning's reason with the loader's own.
PROBE = """
import importlib, json, sys, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        import ipsecstats
    except ImportError as exc:
        print(json.dumps({"raised": str(exc), "cause": repr(exc.__cause__)}))
        sys.exit(0)
try:
    importlib.import_module("ipsecstats._fast")
    direct = None
except ImportError as exc:
    direct = str(exc)
print(json.dumps({
    "file": ipsecstats.__file__,
    "backend": ipsecstats.BACKEND,
    "warnings": [[w.category.__name__, str(w.message)] for w in caught],
    "direct": direct,
}))
"""


def _copy_package(root: Path, *, broken: bool) -> Path:
    """``root/ipsecstats``: the package's Python files and data, with no compiled ``_fast``."""
    compiled = ["_fast" + suffix for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    shutil.copytree(PACKAGE, root / "ipsecstats", ignore=shutil.ignore_patterns("__pycache__", *compiled))
    if broken:  # a _fast the loader finds but cannot load: not a shared library at all
        (root / "ipsecstats" / compiled[0]).write_bytes(b"not a shared library\n" * 64)
    return root / "ipsecstats"


def _probe(root: Path, **env_flags: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IPSECSTATS_")}
    env.update(env_flags, PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=root, capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def _assert_advice(message: str) -> None:
    assert "partially initialized" not in message and "circular import" not in message
    assert "pure-numpy twin" in message
    assert "install a C compiler" in message
    assert f"\n    {REBUILD_COMMAND}\n" in message


@pytest.mark.parametrize("broken", [False, True], ids=["missing", "broken"])
def test_fallback_warning_says_why_and_how_to_rebuild(tmp_path: Path, broken: bool) -> None:
    copy = _copy_package(tmp_path, broken=broken)
    seen = _probe(tmp_path)
    assert Path(seen["file"]).resolve().parent == copy.resolve()
    assert seen["backend"] == "python"
    assert len(seen["warnings"]) == 1, seen["warnings"]
    category, message = seen["warnings"][0]
    assert category == "RuntimeWarning"
    _assert_advice(message)
    assert "runs on its pure-numpy twin instead" in message
    assert "IPSECSTATS_REQUIRE_EXTENSIONS=1" in message and "IPSECSTATS_NO_EXTENSIONS=1" in message
    if broken:
        assert seen["direct"]  # the loader's own reason, word for word
        assert f"ipsecstats._fast is installed but could not be loaded: {seen['direct']}. " in message
        assert "was not built" not in message
    else:
        assert "ipsecstats._fast was not built (this install has no such module). " in message
        assert "could not be loaded" not in message


@pytest.mark.parametrize("broken", [False, True], ids=["missing", "broken"])
def test_require_extensions_makes_it_an_import_error(tmp_path: Path, broken: bool) -> None:
    _copy_package(tmp_path, broken=broken)
    seen = _probe(tmp_path, IPSECSTATS_REQUIRE_EXTENSIONS="1")
    message = seen["raised"]
    _assert_advice(message)
    assert "IPSECSTATS_REQUIRE_EXTENSIONS is set, so this is an error" in message
    assert ("could not be loaded" if broken else "was not built") in message
    assert seen["cause"].startswith("ImportError(" if broken else "ModuleNotFoundError(")


def test_no_extensions_wins_and_is_quiet(tmp_path: Path) -> None:
    """IPSECSTATS_NO_EXTENSIONS chooses the twin: no warning, and no error even when required."""
    _copy_package(tmp_path, broken=True)
    seen = _probe(tmp_path, IPSECSTATS_NO_EXTENSIONS="1", IPSECSTATS_REQUIRE_EXTENSIONS="1")
    assert seen["backend"] == "python"
    assert seen["warnings"] == []


def test_the_build_banner_gives_the_same_rebuild_command():
    """setup.py cannot import the package (numpy is no build dependency): it keeps its own copy."""
    setup_py = Path(__file__).resolve().parents[1] / "setup.py"
    if not setup_py.exists():
        pytest.skip("no setup.py beside the tests (an installed copy of the tests)")
    assert f'REBUILD_COMMAND = "{REBUILD_COMMAND}"' in setup_py.read_text()
