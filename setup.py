"""Build the optional Cython kernel ``ipsecstats._fast``.

Lenient for users, strict for CI:

* a failed compile prints a loud warning and installs the pure-Python twin;
* ``IPSECSTATS_REQUIRE_EXTENSIONS=1`` turns that failure into an install error;
* ``IPSECSTATS_NO_EXTENSIONS=1`` skips the extension altogether;
* ``IPSECSTATS_DEBUG_BUILD=1`` builds a checking extension for fuzzing: Cython
  ``boundscheck``/``wraparound`` on (where no function turns them off), every load of the
  WNODE walker re-checked (``IPSECSTATS_DEBUG_BOUNDS``: abort on a bad offset), and
  AddressSanitizer with a unix compiler (``-fsanitize=address``; run Python with ``LD_PRELOAD=$(gcc
  -print-file-name=libasan.so)``). Its C file goes to ``build/cython-debug``, so a later
  normal build never reuses it.

Flags follow the compiler that builds the extension (``compiler_type``, known only in
``build_extensions``), never the host: ``/O2`` for MSVC (and clang-cl), ``-O3`` for gcc and
clang (unix, mingw32, cygwin), the AddressSanitizer flags for ``unix`` compilers only. No
``-march``: the extension targets the compiler's baseline (plain x86-64 on x86-64, where
numpy 2.0 needs only SSE3), and the loops that gain from newer instructions carry
function-level ``target`` attributes chosen at run time (``_kernel.h``), so the wheel loads
on any CPU numpy loads on. numpy is not needed to build: ``_fast.pyx`` uses typed
memoryviews only, no numpy C API.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

TRUTHY = {"1", "true", "yes", "on"}


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUTHY


NO_EXTENSIONS = env_flag("IPSECSTATS_NO_EXTENSIONS")
REQUIRE_EXTENSIONS = env_flag("IPSECSTATS_REQUIRE_EXTENSIONS")
DEBUG_BUILD = env_flag("IPSECSTATS_DEBUG_BUILD")
DEBUG_COMPILE_ARGS = ["-O1", "-g", "-fno-omit-frame-pointer"]
ASAN_ARGS = ["-fsanitize=address"]

# What the banners advise; ipsecstats._backend.REBUILD_COMMAND says the same at import.
REBUILD_COMMAND = "pip install --no-cache-dir --force-reinstall --no-deps --no-binary ipsecstats ipsecstats"
BANNER = "*" * 75


def compile_args(compiler_type: str, debug: bool = False) -> list[str]:
    """Compile flags for a compiler of this distutils ``compiler_type`` (never a -march)."""
    if compiler_type == "msvc":
        return ["/O2"]
    if debug:
        return DEBUG_COMPILE_ARGS + (ASAN_ARGS if compiler_type == "unix" else [])
    return ["-O3"]


def link_args(compiler_type: str, debug: bool = False) -> list[str]:
    """Link flags: the AddressSanitizer runtime for a unix compiler's debug build, else none."""
    return list(ASAN_ARGS) if debug and compiler_type == "unix" else []


class OptionalBuildExt(build_ext):
    """build_ext that degrades to the pure twin unless the build must succeed."""

    def build_extensions(self) -> None:
        compiler_type = self.compiler.compiler_type
        for ext in self.extensions:
            ext.extra_compile_args = compile_args(compiler_type, DEBUG_BUILD)
            ext.extra_link_args = link_args(compiler_type, DEBUG_BUILD)
        super().build_extensions()

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure
            self._failed(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        if REQUIRE_EXTENSIONS:
            raise
        message = (
            f"\n{BANNER}\nWARNING: the ipsecstats Cython kernel could not be built:\n"
            f"  {exc!r}\nipsecstats will run on its pure-Python/numpy twin, which is\n"
            "several times slower. Install a C compiler, then rebuild for the fast path:\n"
            f"  {REBUILD_COMMAND}\n"
            "Set IPSECSTATS_REQUIRE_EXTENSIONS=1 to make this an error.\n"
            f"{BANNER}\n"
        )
        print(message, file=sys.stderr)


def extensions() -> list[Extension]:
    if NO_EXTENSIONS:
        print("IPSECSTATS_NO_EXTENSIONS is set: skipping the Cython kernel.", file=sys.stderr)
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        if REQUIRE_EXTENSIONS:
            raise
        print(f"\n{BANNER}\nWARNING: cannot build the Cython kernel ({exc});"
              f" using the pure-Python twin.\nTo rebuild later: {REBUILD_COMMAND}\n{BANNER}\n", file=sys.stderr)
        return []
    ext = Extension(
        "ipsecstats._fast",
        ["src/ipsecstats/_fast.pyx"],
        include_dirs=["src/ipsecstats"],
        define_macros=[("IPSECSTATS_DEBUG_BOUNDS", "1")] if DEBUG_BUILD else [],
    )
    debug = dict(compiler_directives={"boundscheck": True, "wraparound": True},
                 build_dir="build/cython-debug") if DEBUG_BUILD else {}
    try:
        return cythonize([ext], language_level=3, quiet=True, **debug)
    except Exception as exc:  # noqa: BLE001 - Cython itself failed
        if REQUIRE_EXTENSIONS:
            raise
        print(f"\n{BANNER}\nWARNING: cythonize failed ({exc!r});"
              f" using the pure-Python twin.\n{BANNER}\n", file=sys.stderr)
        return []


if __name__ == "__main__":  # as setuptools runs it; tests import the flag choice alone
    setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
