#!/usr/bin/env bash
# Run the test suite on other CPUs under qemu-user: aarch64 (little-endian) and s390x
# (big-endian) by default.
#
#   tools/cross-test.sh [ARCH...]          ARCH: aarch64 s390x ppc64le (default: aarch64 s390x)
#
# For each ARCH it builds a scratch sysroot under ${CROSS_DIR:-/tmp/ipsecstats-cross}/ARCH
# from Debian packages of that architecture (Python ${CROSS_PYTHON:-3.14}, numpy, pandas,
# pytest, hypothesis from Debian ${CROSS_SUITE:-sid}), unpacked with `dpkg -x`: the system's
# Python and dpkg database are never touched (no `dpkg --add-architecture`; apt runs on
# a private state directory). PyPI has no numpy 2 wheels for s390x, hence Debian's; sid
# rather than trixie for numpy 2.4 (sid builds it for Python 3.14 and 3.15, no longer 3.13).
# The Cython kernel is cythonized on the host once and compiled with the cross gcc
# against the target's Python headers. The suite then runs under qemu on both backends:
# the Cython kernel (checked to have loaded) and IPSECSTATS_NO_EXTENSIONS=1, with
# IPSECSTATS_UNDER_QEMU=1 for the tests that must tell an emulator's bug from their own.
#
# Environment: CROSS_DIR (scratch and download cache; a rerun reuses it), CROSS_SUITE,
# CROSS_BACKENDS ("cython python", the default, or one of them), CROSS_TESTS (test paths
# or pytest options instead of the whole suite; "byte-order" for the CI subset below),
# PYTHON (host Python with Cython; a scratch venv is made if it has none), CROSS_QEMU_CPU
# (the emulated CPU model; default below).
# Exit status: non-zero if any run fails. Needs root for apt-get (qemu-user, cross gcc).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
CROSS_DIR="${CROSS_DIR:-/tmp/ipsecstats-cross}"
SUITE="${CROSS_SUITE:-sid}"
BACKENDS="${CROSS_BACKENDS:-cython python}"
PYTHON="${PYTHON:-python3}"
PYVER="${CROSS_PYTHON:-3.14}"
ARCHS=("$@")
# The emulated CPU. qemu-aarch64's default, "max", computes pointer authentication with
# QARMA in software, and Debian's arm64 binaries sign every return address: the suite then
# runs about eight times slower than on a real model. Neoverse N1 (ARMv8.2: AWS Graviton2,
# Ampere Altra) is a common server core without it. Other targets use qemu's default.
declare -A QEMU_CPU=([aarch64]=neoverse-n1)
[ ${#ARCHS[@]} -gt 0 ] || ARCHS=(aarch64 s390x)

# Test modules that cannot run on the target, and why. Debian has no pyarrow or polars,
# and its dask/distributed (2024.12) are older than the test extra's dask>=2025.1.
DESELECT_MODULES=(
    tests/test_interop.py          # imports pyarrow and polars at module level
    tests/test_capture_interop.py  # imports pyarrow and polars at module level
    tests/test_export.py           # imports pyarrow at module level
    tests/test_dask.py             # dask>=2025.1 and pyarrow
    tests/test_dask_captures.py    # dask>=2025.1 and pyarrow
    tests/test_cli_scheduler.py    # distributed>=2025.1
)
# Single tests elsewhere that import pyarrow (Parquet output/input), or dask.
DESELECT_TESTS=(
    tests/test_cli.py::test_parquet_from_the_command_line
    tests/test_cli_cimcsv.py::test_csv_flags_reach_a_scheduler_and_a_dataset
    "tests/test_pipeline.py::test_memory_does_not_grow_with_the_capture["{wnode,cim-csv}-parquet-150]
    tests/test_wnode.py::test_to_pandas_and_to_arrow_carry_timestamp_and_instance
)
# CROSS_TESTS=byte-order: the modules where a byte-order mistake shows (rates, columns, the
# CSV readers' rows, the dtypes), for a CI run that fits in minutes rather than hours.
BYTE_ORDER_TESTS="tests/test_byte_order.py tests/test_rates.py tests/test_rate_vector.py tests/test_columns.py
    tests/test_cimcsv.py tests/test_pdhcsv.py tests/test_schema.py"
[ "${CROSS_TESTS:-}" != byte-order ] || CROSS_TESTS="$BYTE_ORDER_TESTS"

# Debian packages of the target (apt resolves their dependencies): matplotlib for the plot
# tests, setuptools for the test that loads setup.py.
PACKAGES=("python$PYVER" "libpython$PYVER-dev" python3-numpy python3-pandas python3-pytest
          python3-hypothesis python3-tqdm python3-matplotlib python3-setuptools)

declare -A DEB_ARCH=([aarch64]=arm64 [s390x]=s390x [ppc64le]=ppc64el)
declare -A TRIPLET=([aarch64]=aarch64-linux-gnu [s390x]=s390x-linux-gnu [ppc64le]=powerpc64le-linux-gnu)

need_host_tools() {
    local missing=()
    for arch in "${ARCHS[@]}"; do
        [ -n "${DEB_ARCH[$arch]:-}" ] || { echo "unknown ARCH $arch (know: ${!DEB_ARCH[*]})" >&2; exit 2; }
        command -v "qemu-$arch" >/dev/null || missing+=(qemu-user)
        command -v "${TRIPLET[$arch]}-gcc" >/dev/null || missing+=("gcc-${TRIPLET[$arch]}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# The kernel's C file, generated once on the host (the same for every target).
cythonize_once() {
    CSRC="$CROSS_DIR/build/_fast.c"
    mkdir -p "$CROSS_DIR/build"
    local py="$PYTHON"
    if ! "$py" -c "import Cython" 2>/dev/null; then
        py="$CROSS_DIR/hostvenv/bin/python"
        [ -x "$py" ] || { python3 -m venv "$CROSS_DIR/hostvenv" && "$py" -m pip install -q "Cython>=3.0"; }
    fi
    if [ ! -f "$CSRC" ] || [ src/ipsecstats/_fast.pyx -nt "$CSRC" ] || [ src/ipsecstats/_kernel.h -nt "$CSRC" ] \
        || [ src/ipsecstats/_wnode_load.h -nt "$CSRC" ]; then
        echo "== cythonize _fast.pyx"
        "$py" -m cython -3 --module-name ipsecstats._fast -I src/ipsecstats -o "$CSRC" src/ipsecstats/_fast.pyx 2>&1 | grep -v "^performance hint" || true
        [ -s "$CSRC" ]
    fi
}

# apt on a private state directory for one architecture: downloads only.
sysroot() {
    local arch="$1" deb="${DEB_ARCH[$1]}"
    local apt_dir="$CROSS_DIR/apt-$SUITE-$deb" root="$CROSS_DIR/$arch/sysroot"
    if [ -x "$root/usr/bin/python$PYVER" ] && [ -f "$root/.packages" ] \
        && [ "$(cat "$root/.packages")" = "$SUITE ${PACKAGES[*]}" ]; then
        return
    fi
    echo "== $arch: Debian $SUITE $deb packages into $root"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d" \
        "$apt_dir/preferences.d"
    : > "$apt_dir/status"
    # The system's Debian sources, pointed at $SUITE.
    local src
    src=/etc/apt/sources.list.d/debian.sources
    [ -f "$src" ] || { echo "no /etc/apt/sources.list.d/debian.sources to copy" >&2; exit 2; }
    if [ "$SUITE" = sid ] || [ "$SUITE" = unstable ]; then  # no -updates, no -security
        awk -v suite="$SUITE" 'BEGIN { RS = ""; ORS = "\n\n" } !/security/ {
            sub(/Suites:[^\n]*/, "Suites: " suite); print }' "$src"
    else
        sed -E "s/\b(bookworm|trixie|forky)(-updates|-security)?\b/$SUITE\2/g" "$src"
    fi > "$apt_dir/sources.list.d/debian.sources"
    local opts=(-o "APT::Architecture=$deb" -o "APT::Architectures::=$deb" -o "Dir::State=$apt_dir"
                -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::status=$apt_dir/status"
                -o "Dir::Cache=$apt_dir/cache" -o "Dir::Etc::SourceList=/dev/null"
                -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
                -o "Dir::Etc::PreferencesParts=$apt_dir/preferences.d" -o Debug::NoLocking=1)
    apt-get "${opts[@]}" update -qq
    apt-get "${opts[@]}" install -qq -y --download-only --no-install-recommends "${PACKAGES[@]}" >/dev/null
    rm -rf "$root"
    mkdir -p "$root"
    local pkg
    for pkg in "$apt_dir"/cache/archives/*.deb; do
        dpkg -x "$pkg" "$root"
    done
    # merged /usr: the loader's path (/lib/ld64.so.1, /lib/ld-linux-aarch64.so.1) is /usr/lib
    local d
    for d in lib lib64 bin sbin; do
        [ -e "$root/$d" ] || [ ! -d "$root/usr/$d" ] || ln -s "usr/$d" "$root/$d"
    done
    # what update-alternatives would link (numpy needs libblas.so.3, liblapack.so.3)
    local lib
    for lib in "$root"/usr/lib/*/blas/lib*.so.* "$root"/usr/lib/*/lapack/lib*.so.*; do
        [ -e "$lib" ] && ln -sfn "$(basename "$(dirname "$lib")")/$(basename "$lib")" "$(dirname "$(dirname "$lib")")/"
    done
    echo "$SUITE ${PACKAGES[*]}" > "$root/.packages"
}

# A copy of the tree with the kernel cross-compiled (and the files tests read: setup.py,
# README.md), and wrappers named like a venv's:
# bin/python3 (sys.executable of the tests, which start subprocesses with it) and
# bin/ipsecstats (the console script the CLI tests run).
prepare_tree() {
    local arch="$1" root="$CROSS_DIR/$1/sysroot" tree="$CROSS_DIR/$1/tree" bin="$CROSS_DIR/$1/bin"
    rm -rf "$tree"
    mkdir -p "$tree" "$bin"
    tar -c --exclude='*.so' --exclude=__pycache__ --exclude='*.c' src tests pyproject.toml setup.py README.md \
        | tar -x -C "$tree"
    local suffix cpu="${CROSS_QEMU_CPU:-${QEMU_CPU[$arch]:-}}"
    cpu="${cpu:+-cpu $cpu}"
    suffix="$(ls "$root/usr/lib/python$PYVER/lib-dynload/" | grep -m1 -o '\.cpython-[^.]*\.so$')"
    echo "== $arch: cross-compile _fast$suffix"
    "${TRIPLET[$arch]}-gcc" -O3 -shared -fPIC -fno-strict-overflow -DNDEBUG \
        -I"$root/usr/include/python$PYVER" -I"$root/usr/include" -I"$root/usr/include/${TRIPLET[$arch]}/python$PYVER" \
        -I"$root/usr/include/${TRIPLET[$arch]}" -Isrc/ipsecstats \
        -o "$tree/src/ipsecstats/_fast$suffix" "$CSRC"
    cat > "$bin/python3" <<EOF
#!/bin/sh
exec qemu-$arch $cpu -L "$root" -0 "\$0" "$root/usr/bin/python$PYVER" "\$@"
EOF
    cat > "$bin/ipsecstats" <<EOF
#!/bin/sh
exec "$bin/python3" -c 'import sys; from ipsecstats.cli import main; sys.argv[0] = "ipsecstats"; sys.exit(main())' "\$@"
EOF
    chmod +x "$bin/python3" "$bin/ipsecstats"
}

run_suite() {
    local arch="$1" backend="$2" tree="$CROSS_DIR/$1/tree" bin="$CROSS_DIR/$1/bin" log
    log="$CROSS_DIR/$arch/pytest-$backend.log"
    local env=(env "PATH=$bin:$PATH" "PYTHONPATH=$tree/src" "PYTHONHOME=$CROSS_DIR/$arch/sysroot/usr"
               PYTHONDONTWRITEBYTECODE=1 "HOME=$CROSS_DIR/$arch" IPSECSTATS_UNDER_QEMU=1)
    if [ "$backend" = python ]; then
        env+=(IPSECSTATS_NO_EXTENSIONS=1)
    else
        env+=(IPSECSTATS_REQUIRE_EXTENSIONS=1)
        # The kernel must have loaded, on the target's byte order.
        (cd "$tree" && "${env[@]}" "$bin/python3" -c "import sys, ipsecstats; \
print('$arch:', sys.byteorder, 'endian, Python', sys.version.split()[0], 'numpy', __import__('numpy').__version__, \
'backend', ipsecstats.BACKEND); sys.exit(ipsecstats.BACKEND != 'cython')") \
            || { echo "$arch $backend: the Cython kernel did not load"; return 1; }
    fi
    local args=(-q -p no:cacheprovider -o addopts="--strict-markers --strict-config -ra")
    local m t
    for m in "${DESELECT_MODULES[@]}"; do args+=(--ignore "$m"); done
    for t in "${DESELECT_TESTS[@]}"; do args+=(--deselect "$t"); done
    # shellcheck disable=SC2086
    if (cd "$tree" && "${env[@]}" "$bin/python3" -m pytest "${args[@]}" ${CROSS_TESTS:-tests}) > "$log" 2>&1; then
        status=0
    else
        status=$?
    fi
    echo "$arch $backend: $(grep -E '^(=+ )?[0-9]+ (passed|failed|error)|no tests ran|^(=+ )?[0-9]+ (skipped|deselected)' "$log" | tail -1) (log: $log)"
    return $status
}

need_host_tools
cythonize_once
failed=0
for arch in "${ARCHS[@]}"; do
    sysroot "$arch"
    prepare_tree "$arch"
    for backend in $BACKENDS; do
        start=$SECONDS
        run_suite "$arch" "$backend" || failed=1
        echo "   ($((SECONDS - start)) s)"
    done
done
exit $failed
