#!/usr/bin/env bash
# Release check of the two artifacts, built from a clean export of a commit (default HEAD),
# so untracked or generated files in the work tree cannot leak into them:
#   1. `python -m build`: the sdist, then the wheel built from that sdist;
#   2. `twine check --strict`, the sdist's file list (every tracked file of src/, tests/,
#      benchmarks/, docs/ and the top-level files; nothing generated), the wheel's metadata,
#      `auditwheel show`;
#   3. a fresh venv without numpy or Cython: `pip install <sdist>[test]` (the build
#      isolation brings Cython), then the sdist's own tests, from the unpacked sdist,
#      against the installed package;
#   4. a fresh venv: `pip install <wheel>[test]`, then the suite from a copy of tests/ in a
#      scratch directory (what cibuildwheel's test-command runs);
#   5. the import-time advice: a compiler-less install (CC=false) falls back with the
#      warning, pip's cache would hand the same extension-less wheel back, and the rebuild
#      command the warning prints gets the compiled kernel.
# IPSECSTATS_REQUIRE_EXTENSIONS=1 throughout (except step 5's compiler-less install): a
# wheel without the compiled kernel fails the build, and a missing kernel fails the import.
# pip's cache is used (the test extras are the slow part); step 5 uses a private one.
#
# Usage: tools/package-check.sh [TREE-ISH]
#   PYTHON=python3.x            the interpreter (default python3)
#   PACKAGE_CHECK_SDIST_TESTS   pytest arguments for step 3 (default: tests, the whole suite)
#   PACKAGE_CHECK_WHEEL_TESTS   pytest arguments for step 4 (default: tests)
set -euo pipefail

REF="${1:-HEAD}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
START=$SECONDS
step() { echo "== [$((SECONDS - START))s] $*"; }
export IPSECSTATS_REQUIRE_EXTENSIONS=1
unset IPSECSTATS_NO_EXTENSIONS PYTHONPATH
PIP_QUIET=(--quiet --disable-pip-version-check)
read -r -a SDIST_TESTS <<< "${PACKAGE_CHECK_SDIST_TESTS:-tests}"
read -r -a WHEEL_TESTS <<< "${PACKAGE_CHECK_WHEEL_TESTS:-tests}"
run_suite() {  # $1 venv, $2 directory to run from, then pytest arguments
    local venv="$1" dir="$2" log
    shift 2
    log="$(mktemp -p "$SCRATCH")"
    if ! (cd "$dir" && PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" > "$log" 2>&1); then
        tail -60 "$log"
        exit 1
    fi
    tail -1 "$log"
}

step "export $REF ($(git -C "$ROOT" rev-parse --short "$REF"))"
mkdir "$SCRATCH/tree"
git -C "$ROOT" archive "$REF" | tar -x -C "$SCRATCH/tree"
git -C "$ROOT" ls-tree -r --name-only "$REF" > "$SCRATCH/tracked.txt"

step "tools venv (build, twine, auditwheel)"
"$PY" -m venv "$SCRATCH/tools"
"$SCRATCH/tools/bin/python" -m pip install "${PIP_QUIET[@]}" build twine auditwheel
TOOLS="$SCRATCH/tools/bin"

step "python -m build (the sdist, then the wheel from the sdist)"
(cd "$SCRATCH/tree" && "$TOOLS/python" -m build --outdir "$SCRATCH/dist" . > "$SCRATCH/build.log" 2>&1) \
    || { tail -40 "$SCRATCH/build.log"; exit 1; }
SDIST="$(ls "$SCRATCH"/dist/ipsecstats-*.tar.gz)"
WHEEL="$(ls "$SCRATCH"/dist/ipsecstats-*.whl)"
echo "$(basename "$SDIST") ($(du -k "$SDIST" | cut -f1) kB), $(basename "$WHEEL") ($(du -k "$WHEEL" | cut -f1) kB)"

step "twine check --strict"
"$TOOLS/twine" check --strict "$SDIST" "$WHEEL"

step "sdist and wheel contents, metadata"
"$TOOLS/python" - "$SDIST" "$WHEEL" "$SCRATCH/tracked.txt" "$SCRATCH/tree" <<'EOF'
import re, sys, tarfile, tomllib, zipfile
from email.parser import Parser
from pathlib import Path

sdist, wheel, tracked_list, tree = sys.argv[1:]
with tarfile.open(sdist) as tar:
    names = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()}
    top = tar.getmembers()[0].name.split("/")[0]
    pkg_info = Parser().parsestr(tar.extractfile(f"{top}/PKG-INFO").read().decode())
tracked = set(Path(tracked_list).read_text().split())
shipped = {n for n in tracked if n.split("/")[0] in {"src", "tests", "benchmarks", "docs"}}
shipped |= {"LICENSE", "README.md", "pyproject.toml", "setup.py", "MANIFEST.in"}
missing = shipped - names
assert not missing, f"tracked files missing from the sdist: {sorted(missing)}"
generated = {"PKG-INFO", "setup.cfg"} | {n for n in names if n.startswith("src/ipsecstats.egg-info/")}
extra = names - shipped - generated
assert not extra, f"files in the sdist that are not tracked sources: {sorted(extra)}"
bad = [n for n in names if re.search(r"\.(c|so|pyd|dylib|o|obj|pyc)$|__pycache__|(^|/)build/", n)]
assert not bad, f"generated files in the sdist: {bad}"
for need in ("tests/conftest.py", "tests/data/golden.json", "LICENSE", "src/ipsecstats/_fast.pyx",
             "src/ipsecstats/_kernel.h", "src/ipsecstats/_fast.pyi", "src/ipsecstats/py.typed"):
    assert need in names, need
dirs = sorted({n.rsplit("/", 1)[0] if "/" in n else "." for n in names})
print(f"sdist: {len(names)} files; directories: {', '.join(dirs)}")

with zipfile.ZipFile(wheel) as zf:
    wnames = zf.namelist()
    meta_name = next(n for n in wnames if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(zf.read(meta_name).decode())
kernels = [n for n in wnames if re.fullmatch(r"ipsecstats/_fast\..*(so|pyd)", n)]
assert kernels, "the wheel has no compiled ipsecstats._fast"
assert not [n for n in wnames if n.endswith(".c")], "the wheel ships C files"
assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wnames), "the wheel lacks LICENSE"
version = re.search(r'__version__ = "([^"]+)"', Path(tree, "src/ipsecstats/_version.py").read_text())[1]
for m in (meta, pkg_info):
    assert m["Version"] == version, (m["Version"], version)
    assert m["License-Expression"] == "MIT", m["License-Expression"]
    assert m["License-File"] == "LICENSE", m["License-File"]
    assert "Programming Language :: Cython" in m.get_all("Classifier")
    assert not [c for c in m.get_all("Classifier") if c.startswith("License ::")]
# `all` is the union of every user extra (not `test`)
project = tomllib.loads(Path(tree, "pyproject.toml").read_text())["project"]
extras = project["optional-dependencies"]
union = {r for name, reqs in extras.items() if name not in ("all", "test") for r in reqs}
assert set(extras["all"]) == union, (sorted(set(extras["all"]) ^ union))
build_requires = tomllib.loads(Path(tree, "pyproject.toml").read_text())["build-system"]["requires"]
assert not [r for r in build_requires if r.lower().startswith("numpy")], build_requires
print(f"wheel: {len(wnames)} files, kernel {kernels[0]}; version {version}, License-Expression MIT, "
      f"{len(meta.get_all('Classifier'))} classifiers, extras {meta.get_all('Provides-Extra')}")
EOF

step "auditwheel show"
"$TOOLS/auditwheel" show "$WHEEL" | tee "$SCRATCH/auditwheel.txt"
grep -q "manylinux" "$SCRATCH/auditwheel.txt"

# --- 3. the sdist in a fresh venv without numpy or Cython -------------------------------
step "fresh venv: pip install <sdist>[test] (no numpy, no Cython beforehand)"
"$PY" -m venv "$SCRATCH/venv-sdist"
VS="$SCRATCH/venv-sdist/bin/python"
"$VS" -m pip install "${PIP_QUIET[@]}" --upgrade pip
! "$VS" -c "import numpy" 2>/dev/null || { echo "numpy is preinstalled"; exit 1; }
"$VS" -m pip install "${PIP_QUIET[@]}" "${SDIST}[test]"
! "$VS" -c "import Cython" 2>/dev/null || { echo "Cython leaked from the build into the venv"; exit 1; }
mkdir "$SCRATCH/unpacked"
tar -xzf "$SDIST" -C "$SCRATCH/unpacked"
SDIST_DIR="$(ls -d "$SCRATCH"/unpacked/ipsecstats-*)"
check_installed() {  # $1 python, $2 cwd: the installed package, not a source tree, with its kernel
    (cd "$2" && "$1" -c "
import sys, sysconfig, ipsecstats
from pathlib import Path
site = Path(sysconfig.get_paths()['purelib']).resolve()
assert Path(ipsecstats.__file__).resolve().is_relative_to(site), (ipsecstats.__file__, str(site))
assert ipsecstats.BACKEND == 'cython', ipsecstats.BACKEND
print('imported', ipsecstats.__file__, '| BACKEND', ipsecstats.BACKEND)")
}
check_installed "$VS" "$SDIST_DIR"
step "the sdist's own tests, from $(basename "$SDIST_DIR")/, against the installed package"
run_suite "$SCRATCH/venv-sdist" "$SDIST_DIR" "${SDIST_TESTS[@]}"

# --- 4. the wheel in a fresh venv, tests from a copy ----------------------------------------
step "fresh venv: pip install <wheel>[test]"
"$PY" -m venv "$SCRATCH/venv-wheel"
VW="$SCRATCH/venv-wheel/bin/python"
"$VW" -m pip install "${PIP_QUIET[@]}" --upgrade pip
"$VW" -m pip install "${PIP_QUIET[@]}" "${WHEEL}[test]"
mkdir "$SCRATCH/wheel-test"
# the files of test-sources in [tool.cibuildwheel] (test_cli_help reads the README, a build
# test reads setup.py; pyproject.toml holds the pytest configuration)
cp -r "$SCRATCH/tree/tests" "$SCRATCH/tree/README.md" "$SCRATCH/tree/pyproject.toml" "$SCRATCH/tree/setup.py" \
    "$SCRATCH/wheel-test/"
check_installed "$VW" "$SCRATCH/wheel-test"
step "the suite against the wheel, from a copy of tests/ (cibuildwheel's test-command)"
run_suite "$SCRATCH/venv-wheel" "$SCRATCH/wheel-test" "${WHEEL_TESTS[@]}"

# --- 5. the fallback warning's advice, followed ------------------------------------------
step "compiler-less install (CC=false), then the rebuild command the warning prints"
export PIP_CACHE_DIR="$SCRATCH/pip-cache"  # private: an extension-less wheel gets cached here
# A local index stand-in: the sdist and the build requirements, nothing else.
mkdir "$SCRATCH/index"
cp "$SDIST" "$SCRATCH/index/"
mapfile -t BUILD_REQUIRES < <("$TOOLS/python" -c "
import tomllib, sys; print(*tomllib.load(open(sys.argv[1], 'rb'))['build-system']['requires'], sep='\n')
" "$SCRATCH/tree/pyproject.toml")
"$VS" -m pip download "${PIP_QUIET[@]}" --only-binary :all: -d "$SCRATCH/index" "${BUILD_REQUIRES[@]}"
FROM_INDEX=(--no-index --find-links "$SCRATCH/index")
lenient() { env -u IPSECSTATS_REQUIRE_EXTENSIONS "$@"; }
expect_backend() {  # $1: "cython" or "python", $2: what was just done
    local got
    got="$(lenient "$VS" -W ignore::RuntimeWarning -c "import ipsecstats; print(ipsecstats.BACKEND)")"
    [ "$got" = "$1" ] || { echo "after $2: BACKEND $got, expected $1"; exit 1; }
}
lenient CC=false "$VS" -m pip install "${PIP_QUIET[@]}" --force-reinstall --no-deps --no-binary ipsecstats \
    "${FROM_INDEX[@]}" ipsecstats 2> "$SCRATCH/nocc.log"
WARNING="$(lenient "$VS" -c "import ipsecstats" 2>&1)"
echo "$WARNING" | grep -q "ipsecstats._fast was not built" || { echo "$WARNING"; exit 1; }
expect_backend python "the install without a compiler"
read -r -a REBUILD <<< "$(echo "$WARNING" | grep -m1 '^ *pip install ')"
echo "the warning says: ${REBUILD[*]}"
# Without --no-cache-dir pip hands back the extension-less wheel it cached: the flag is needed.
CACHED=()
for arg in "${REBUILD[@]:2}"; do [ "$arg" = --no-cache-dir ] || CACHED+=("$arg"); done
lenient "$VS" -m pip install "${PIP_QUIET[@]}" "${CACHED[@]}" "${FROM_INDEX[@]}"
expect_backend python "the printed command without --no-cache-dir"
echo "the same without --no-cache-dir: still the twin (pip reused the wheel it had cached)"
"$VS" -m pip "${REBUILD[@]:1}" "${PIP_QUIET[@]}" "${FROM_INDEX[@]}"
expect_backend cython "the printed command"
echo "the printed command, with a compiler and IPSECSTATS_REQUIRE_EXTENSIONS=1: BACKEND cython"

step "done in $((SECONDS - START))s"
