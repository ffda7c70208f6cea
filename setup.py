"""Build the optional Cython kernel ``ipsecstats._fast``.

Lenient for users, strict for CI:

* a failed compile prints a loud warning and installs the pure-Python twin;
* ``IPSECSTATS_REQUIRE_EXTENSIONS=1`` turns that failure into an install error;
* ``IPSECSTATS_NO_EXTENSIONS=1`` skips the extension altogether;
* ``IPSECSTATS_DEBUG_BUILD=1`` builds a checking extension for fuzzing: Cython
  ``boundscheck``/``wraparound`` on (where no function turns them off), every load of the
  WNODE walker re-checked (``IPSECSTATS_DEBUG_BOUNDS``: abort on a bad offset), and
  AddressSanitizer (``-fsanitize=address``; run Python with ``LD_PRELOAD=$(gcc
  -print-file-name=libasan.so)``). Its C file goes to ``build/cython-debug``, so a later
  normal build never reuses it.
"""

import os
import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

TRUTHY = {"1", "true", "yes", "on"}


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUTHY


NO_EXTENSIONS = env_flag("IPSECSTATS_NO_EXTENSIONS")
REQUIRE_EXTENSIONS = env_flag("IPSECSTATS_REQUIRE_EXTENSIONS")
DEBUG_BUILD = env_flag("IPSECSTATS_DEBUG_BUILD")
DEBUG_COMPILE_ARGS = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address"]

BANNER = "*" * 75


def compile_args() -> list[str]:
    if sys.platform == "win32":
        return ["/O2"]
    if DEBUG_BUILD:
        return list(DEBUG_COMPILE_ARGS)
    args = ["-O3"]
    # x86-64-v2 (SSE4.2, POPCNT) is numpy 2's own baseline, so this is no less
    # portable than numpy; it lets gcc vectorize the 64-bit compares of the
    # restart policy, which plain x86-64 cannot do.
    if platform.machine().lower() in {"x86_64", "amd64"}:
        args.append("-march=x86-64-v2")
    return args


class OptionalBuildExt(build_ext):
    """build_ext that degrades to the pure twin unless the build must succeed."""

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
            "several times slower. Install a C compiler and reinstall for the fast path;\n"
            "set IPSECSTATS_REQUIRE_EXTENSIONS=1 to make this an error.\n"
            f"{BANNER}\n"
        )
        print(message, file=sys.stderr)


def extensions() -> list[Extension]:
    if NO_EXTENSIONS:
        print("IPSECSTATS_NO_EXTENSIONS is set: skipping the Cython kernel.", file=sys.stderr)
        return []
    try:
        import numpy
        from Cython.Build import cythonize
    except ImportError as exc:
        if REQUIRE_EXTENSIONS:
            raise
        print(f"\n{BANNER}\nWARNING: cannot build the Cython kernel ({exc});"
              f" using the pure-Python twin.\n{BANNER}\n", file=sys.stderr)
        return []
    ext = Extension(
        "ipsecstats._fast",
        ["src/ipsecstats/_fast.pyx"],
        include_dirs=[numpy.get_include(), "src/ipsecstats"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")]
        + ([("IPSECSTATS_DEBUG_BOUNDS", "1")] if DEBUG_BUILD else []),
        extra_compile_args=compile_args(),
        extra_link_args=["-fsanitize=address"] if DEBUG_BUILD and sys.platform != "win32" else [],
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


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
