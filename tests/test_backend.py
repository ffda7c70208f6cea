"""Backend selection: the flag tells the truth, and a missing extension fails CI.

CI installs with IPSECSTATS_REQUIRE_EXTENSIONS=1 and runs the suite twice: plainly (the
Cython kernel must have loaded) and with IPSECSTATS_NO_EXTENSIONS=1 (the twin must run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
from conftest import FAST

import ipsecstats
from ipsecstats import _backend, _slow
from ipsecstats._backend import env_flag


def test_extension_loaded_when_it_should_have() -> None:
    """Fails when the extension should have loaded (CI) but did not, and vice versa."""
    if env_flag("IPSECSTATS_NO_EXTENSIONS"):
        assert ipsecstats.BACKEND == "python"
        assert _backend.KERNEL is _slow
    elif env_flag("IPSECSTATS_REQUIRE_EXTENSIONS"):
        assert ipsecstats.BACKEND == "cython", (
            "IPSECSTATS_REQUIRE_EXTENSIONS is set, yet ipsecstats runs on the pure-Python twin: "
            "the Cython extension did not build or did not import")
        assert _backend.KERNEL is FAST
    else:  # lenient install: the flag must still say what actually loaded
        assert ipsecstats.BACKEND == ("cython" if FAST is not None else "python")
    assert _backend.BACKEND == ipsecstats.BACKEND
    assert _backend.KERNEL.__name__ == {"cython": "ipsecstats._fast", "python": "ipsecstats._slow"}[
        ipsecstats.BACKEND]


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", " On ", "1\n"])
def test_truthy_values(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("IPSECSTATS_NO_EXTENSIONS", value)
    assert env_flag("IPSECSTATS_NO_EXTENSIONS")
    assert _backend._load() == (_slow, "python")


@pytest.mark.parametrize("value", ["0", "", "false", "no", "off", "2", "n"])
def test_other_values_are_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("IPSECSTATS_NO_EXTENSIONS", value)
    assert not env_flag("IPSECSTATS_NO_EXTENSIONS")
    if FAST is None:
        pytest.skip("the extension is not built here, so 'off' falls back to the twin")
    assert _backend._load() == (FAST, "cython")


def test_unset_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IPSECSTATS_NO_EXTENSIONS", raising=False)
    assert not env_flag("IPSECSTATS_NO_EXTENSIONS")


def test_missing_extension_falls_back_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IPSECSTATS_NO_EXTENSIONS", raising=False)
    monkeypatch.delenv("IPSECSTATS_REQUIRE_EXTENSIONS", raising=False)  # it would raise instead
    monkeypatch.setitem(sys.modules, "ipsecstats._fast", None)  # makes the import fail
    monkeypatch.delattr(ipsecstats, "_fast", raising=False)
    with pytest.warns(RuntimeWarning, match="IPSECSTATS_NO_EXTENSIONS"):
        assert _backend._load() == (_slow, "python")


def test_other_interpreters_use_the_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IPSECSTATS_NO_EXTENSIONS", raising=False)
    monkeypatch.setattr(_backend.platform, "python_implementation", lambda: "PyPy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _backend._load() == (_slow, "python")


def _backend_in_subprocess(value: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "IPSECSTATS_NO_EXTENSIONS"}
    env["IPSECSTATS_NO_EXTENSIONS"] = value
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import ipsecstats; print(ipsecstats.BACKEND)"],
        env=env, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_env_var_at_import_time_in_a_fresh_interpreter() -> None:
    assert _backend_in_subprocess("1") == "python"
    if FAST is None:
        if env_flag("IPSECSTATS_REQUIRE_EXTENSIONS"):
            pytest.fail("IPSECSTATS_REQUIRE_EXTENSIONS is set but ipsecstats._fast does not import")
        pytest.skip("the extension is not built here")
    assert _backend_in_subprocess("0") == "cython"  # "0" means off, not on


def test_vector_path_switch(fast) -> None:  # noqa: ANN001 - fixture from conftest
    before = fast.vector_path()
    assert before in ("avx2", "sse4.2", "portable")
    try:
        fast._set_vector_path(False)
        assert fast.vector_path() == "portable"
        fast._set_vector_path(True)
        assert fast.vector_path() == before  # True means "the best path this CPU has"
    finally:
        fast._set_vector_path(before)


def test_twin_is_importable_beside_the_extension() -> None:
    assert callable(_slow.delta_rows)
    if FAST is not None:
        assert callable(FAST.delta_rows)
        assert isinstance(FAST.STREAMING_THRESHOLD, int) and FAST.STREAMING_THRESHOLD > 0
