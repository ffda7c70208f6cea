#!/usr/bin/env bash
# The trimmed version matrix for CI (noxfile.py has the whole one):
#   numpy_min-3.11                  numpy 2.0.2 (the declared minimum), both backends
#   tests-3.12(backend='cython')    the newest numpy for 3.12, compiled kernel
#   tests-3.13(backend='python')    the newest numpy for 3.13, pure-numpy twin
# Together with .ci/run's own runs (3.11, newest numpy, both backends) every Python and
# both numpy ends are covered, and each Python runs the compiled kernel at least once.
#
# Usage: tools/matrix.sh [nox session ...]   (default: the three above)
# Needs pyenv's (or PATH's) python3.11/3.12/3.13; noxfile.py finds pyenv's versions.
# MATRIX_ENVDIR: where the session venvs live (default ~/.cache/ipsecstats-nox), kept
# between runs so a second run only rebuilds the package.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVDIR="${MATRIX_ENVDIR:-$HOME/.cache/ipsecstats-nox}"
TOOLS="$ENVDIR/nox-tool"
if [ "$#" -eq 0 ]; then
    set -- "numpy_min-3.11" "tests-3.12(backend='cython')" "tests-3.13(backend='python')"
fi

if [ ! -x "$TOOLS/bin/nox" ]; then
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install --quiet --upgrade pip "nox>=2024.3"
fi

export IPSECSTATS_REQUIRE_EXTENSIONS=1
status=0
for session in "$@"; do
    start=$SECONDS
    if "$TOOLS/bin/nox" --envdir "$ENVDIR" --error-on-missing-interpreters -s "$session"; then
        result=passed
    else
        result=FAILED
        status=1
    fi
    echo "== matrix: $session $result in $((SECONDS - start)) s"
done
exit "$status"
