"""Shared fixtures: the two kernels, record builders, uint64 edge values, hypothesis profile.

The suite runs once per backend (CI: plain, then ``IPSECSTATS_NO_EXTENSIONS=1``); most
tests use whatever ``ipsecstats.BACKEND`` loaded. The parity tests call both kernels
side by side by swapping ``ipsecstats._backend.KERNEL``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import ipsecstats
from ipsecstats import _backend, _slow
from ipsecstats._backend import env_flag

DATA = Path(__file__).resolve().parent / "data"

M64 = 2**64
MASK64 = M64 - 1
H63 = 2**63
# uint64 values where wrong arithmetic shows: plain random draws almost never hit them.
EDGES = (0, 1, 2, 2**32 - 1, 2**32, 2**32 + 1, H63 - 1, H63, H63 + 1, M64 - 2, M64 - 1)
POLICIES = ("auto", "wrap", "reset", "zero")
#: Peak-RSS allowance under qemu-user (tools/cross-test.sh sets IPSECSTATS_UNDER_QEMU=1): the
#: emulator's translated code grows as new code paths first run, inside the measured process
#: (8.5 MiB and 64 MiB against bounds of 6.2 and 60 under qemu-aarch64, pure backend). Bounds
#: that compare two sizes need none; natively it is 0.
EMULATOR_RSS_MIB = 16 if env_flag("IPSECSTATS_UNDER_QEMU") else 0

settings.register_profile(
    "ipsecstats",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ipsecstats")


def load_fast() -> ModuleType | None:
    """The Cython kernel module, or None where it is not built."""
    try:
        return importlib.import_module("ipsecstats._fast")
    except ImportError:
        return None


FAST = load_fast()
KERNELS: dict[str, ModuleType] = {"python": _slow}
if FAST is not None:
    KERNELS["cython"] = FAST


def require_fast() -> ModuleType:
    """``ipsecstats._fast``; missing, it fails under IPSECSTATS_REQUIRE_EXTENSIONS, else skips."""
    if FAST is not None:
        return FAST
    if env_flag("IPSECSTATS_REQUIRE_EXTENSIONS"):
        pytest.fail("IPSECSTATS_REQUIRE_EXTENSIONS is set but ipsecstats._fast does not import")
    pytest.skip("ipsecstats._fast is not built (set IPSECSTATS_REQUIRE_EXTENSIONS=1 to make this fail)")


@contextlib.contextmanager
def using_kernel(kernel: ModuleType) -> Iterator[None]:
    """Route the public API through ``kernel`` for the duration of the block."""
    saved = _backend.KERNEL
    _backend.KERNEL = kernel
    try:
        yield
    finally:
        _backend.KERNEL = saved


def records_from(values: Any) -> np.ndarray:
    """A fresh RECORD_DTYPE array from an (n, 21) array-like of Python ints < 2**64."""
    arr = np.asarray(values, dtype=np.uint64).reshape(-1, 21)
    return arr.astype("<u8").view(ipsecstats.RECORD_DTYPE).reshape(-1).copy()


def concat_rows(parts: list[np.ndarray], dtype: Any = None) -> np.ndarray:
    """The parts (all of one dtype, checked) end to end, in that dtype.

    ``np.concatenate`` alone promotes, and promotion makes a byte order native: on a
    big-endian host the little-endian record and deltas rows would come out big-endian.
    ``dtype`` is for no parts at all.
    """
    if not parts:
        return np.empty(0, dtype=dtype)
    want = parts[0].dtype
    assert all(p.dtype == want for p in parts), [p.dtype for p in parts]
    return np.concatenate(parts, dtype=want)


def as_u64(records: np.ndarray) -> np.ndarray:
    """(n, 21) uint64 copy of any record array (contiguous or not)."""
    return np.ascontiguousarray(records).view("<u8").reshape(-1, 21)


def random_values(rng: np.random.Generator, n: int, *, edge_fraction: float = 0.3,
                  fall_fraction: float = 0.3) -> np.ndarray:
    """(n, 21) uint64: mostly rising counters, with edge values and falls mixed in."""
    steps = rng.integers(0, 1000, size=(n, 21), dtype=np.uint64)
    start = rng.integers(0, M64, size=(1, 21), dtype=np.uint64, endpoint=False)
    values = np.cumsum(np.concatenate([start, steps[1:]]), axis=0, dtype=np.uint64)  # wraps mod 2**64
    falls = rng.random((n, 21)) < fall_fraction
    values[falls] = rng.integers(0, M64, size=int(falls.sum()), dtype=np.uint64, endpoint=False)
    edges = rng.random((n, 21)) < edge_fraction
    values[edges] = np.array(EDGES, dtype=np.uint64)[rng.integers(0, len(EDGES), size=int(edges.sum()))]
    return values


def edge_pairs_values() -> np.ndarray:
    """(2 * len(EDGES)**2, 21) uint64 in which every column passes every ordered pair of edges.

    Column j walks the pairs in a rotated order, so different fields see each pair in
    different rows.
    """
    pairs = [(a, b) for a in EDGES for b in EDGES]
    cols = []
    for j in range(21):
        rot = pairs[j % len(pairs):] + pairs[: j % len(pairs)]
        cols.append([v for pair in rot for v in pair])
    return np.array(cols, dtype=np.uint64).T.copy()


def call_outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """("ok", result) or ("raised", type, message): comparable across backends."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - the point is to compare any exception
        return ("raised", type(exc), str(exc))


def assert_same_result(a: Any, b: Any) -> None:
    """Equal values, dtypes and shapes (arrays compared as bytes, so NaN == NaN)."""
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_result(x, y)
        return
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        assert a.dtype == b.dtype, (a.dtype, b.dtype)
        assert a.shape == b.shape, (a.shape, b.shape)
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
        return
    assert type(a) is type(b) and a == b, (a, b)


def load_golden() -> dict[str, Any]:
    return json.loads((DATA / "golden.json").read_text())


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    return load_golden()


@pytest.fixture(scope="session")
def fast() -> ModuleType:
    return require_fast()


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded from the test's name: reproducible, different per test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(params=sorted(KERNELS))
def kernel(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """Each available kernel in turn, routed through the public API."""
    with using_kernel(KERNELS[request.param]):
        yield KERNELS[request.param]
