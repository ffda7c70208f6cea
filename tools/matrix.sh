#!/usr/bin/env bash
# The trimmed version matrix for CI (noxfile.py has the whole one), in two lanes that run
# side by side, one per core (the suite itself is single-threaded):
#   lane 1: numpy_min-3.11                  numpy 2.0.0 (the declared minimum), both backends
#   lane 2: tests-3.12(backend='cython')    the newest numpy for 3.12, compiled kernel
#           tests-3.13(backend='python')    the newest numpy for 3.13, pure-numpy twin
# With .ci/run's own runs (3.11, newest numpy, both backends) every Python and both numpy
# ends are covered, and each Python runs the compiled kernel at least once.
#
# The installs run first, one after the other: each builds the package in the source tree
# (build/, the generated _fast.c), which two builds at once would both write.
#
# Usage: tools/matrix.sh                  the two lanes above
#        tools/matrix.sh SESSION ...      these nox sessions, one after the other
# MATRIX_ENVDIR: where the session venvs live (default ~/.cache/ipsecstats-nox), kept
# between runs so a second run only rebuilds the package. MATRIX_PYTEST_ARGS: passed to
# pytest (e.g. a test file, for a quick check of the script itself).
# Interpreters: python3.11/3.12/3.13 on PATH, or pyenv's (noxfile.py finds those).
set -euo pipefail
cd "$(dirname "$0")/.."

ENVDIR="${MATRIX_ENVDIR:-$HOME/.cache/ipsecstats-nox}"
TOOLS="$ENVDIR/nox-tool"
read -r -a PYTEST_ARGS <<< "${MATRIX_PYTEST_ARGS:-}"
LANE1=("numpy_min-3.11")
LANE2=("tests-3.12(backend='cython')" "tests-3.13(backend='python')")
if [ "$#" -gt 0 ]; then
    LANE1=("$@")
    LANE2=()
fi

if [ ! -x "$TOOLS/bin/nox" ]; then
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install --quiet --upgrade pip "nox>=2024.3"
fi
NOX=("$TOOLS/bin/nox" --envdir "$ENVDIR" --error-on-missing-interpreters)
export IPSECSTATS_REQUIRE_EXTENSIONS=1

start=$SECONDS
echo "== matrix: install ${LANE1[*]} ${LANE2[*]}"
"${NOX[@]}" --install-only -s "${LANE1[@]}" "${LANE2[@]}"
echo "== matrix: installed in $((SECONDS - start)) s"

lane() {  # run sessions one after the other; report each
    local status=0 t session
    for session in "$@"; do
        t=$SECONDS
        if "${NOX[@]}" --no-install -s "$session" -- "${PYTEST_ARGS[@]}"; then
            echo "== matrix: $session passed in $((SECONDS - t)) s"
        else
            echo "== matrix: $session FAILED in $((SECONDS - t)) s"
            status=1
        fi
    done
    return "$status"
}

LOG="$(mktemp -d)"
trap 'rm -rf "$LOG"' EXIT
status=0
if [ "${#LANE2[@]}" -gt 0 ]; then
    lane "${LANE2[@]}" > "$LOG/lane2" 2>&1 &
    pid=$!
    lane "${LANE1[@]}" || status=1
    wait "$pid" || status=1
    echo "== matrix: lane 2 output"
    cat "$LOG/lane2"
else
    lane "${LANE1[@]}" || status=1
fi
echo "== matrix: done in $((SECONDS - start)) s, $([ "$status" -eq 0 ] && echo passed || echo FAILED)"
exit "$status"
