#!/usr/bin/env bash
# The wheel on older and newer x86-64 CPUs, under qemu user-mode emulation:
#
#   core2duo  SSSE3, no SSE4.1: below x86-64-v2, still above numpy 2.0's baseline (SSE3)
#   Nehalem   SSE4.2 + POPCNT (x86-64-v2), no AVX
#   Haswell   AVX2
#
# A scratch venv gets numpy 2.0.0 (the declared minimum; later numpy releases raised
# their own CPU baseline, so only 2.0.x still imports on a Core 2) and this project's
# wheel, built on the host with IPSECSTATS_REQUIRE_EXTENSIONS=1. Under each model the
# interpreter imports ipsecstats with the Cython kernel (an instruction the CPU lacks
# kills the process with SIGILL, which no fallback can catch), checks that the kernel
# picked the vector path the model allows, decodes records and checks deltas and rates
# against values worked out by hand, and checks every path the model can run against the
# numpy twin (deltas, keyed deltas, rates, the statistics pass).
#
# Usage: tools/old-cpu-smoke.sh [GIT-REV]   (default: the working tree; a revision is
# built from `git archive`, e.g. to see an old build fail). Installs Debian's qemu-user
# if qemu-x86_64 is missing. Exit status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PYTHON="${PYTHON:-python3}"
REV="${1:-}"

if ! command -v qemu-x86_64 >/dev/null 2>&1; then
    echo "== apt-get install qemu-user"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null
fi

SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
mkdir "$SCRATCH/src" "$SCRATCH/dist"
if [ -n "$REV" ]; then
    git archive "$REV" | tar -x -C "$SCRATCH/src"
else  # tracked and new (not ignored) files, as they are now: no build products
    git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$SCRATCH/src"
fi

echo "== venv with numpy 2.0.0 ($("$PYTHON" --version))"
"$PYTHON" -m venv "$SCRATCH/venv"
VPY="$SCRATCH/venv/bin/python"
"$VPY" -m pip install --quiet --upgrade pip
"$VPY" -m pip install --quiet "numpy==2.0.0"

echo "== wheel (IPSECSTATS_REQUIRE_EXTENSIONS=1)"
if ! IPSECSTATS_REQUIRE_EXTENSIONS=1 "$VPY" -m pip wheel --no-deps -w "$SCRATCH/dist" "$SCRATCH/src" \
        >"$SCRATCH/build.log" 2>&1; then
    cat "$SCRATCH/build.log"
    echo "FAIL: the wheel did not build"
    exit 1
fi
"$VPY" -m pip install --quiet "$SCRATCH"/dist/ipsecstats-*.whl
"$VPY" -c "import numpy; assert numpy.__version__ == '2.0.0', numpy.__version__"

cat >"$SCRATCH/smoke.py" <<'EOF'
import os
import sys

import numpy as np

import ipsecstats

assert ipsecstats.BACKEND == "cython", f"backend {ipsecstats.BACKEND!r}: the extension did not load"
from ipsecstats import _backend, _fast, _slow  # noqa: E402

want_path = os.environ["EXPECT_PATH"]
assert _fast.vector_path() == want_path, f"vector path {_fast.vector_path()!r}, expected {want_path!r}"
M64 = 1 << 64
kinds = [f.kind for f in ipsecstats.FIELDS]
names = [f.name for f in ipsecstats.FIELDS]
k0 = kinds.index("counter")
k1 = kinds.index("counter", k0 + 1)

# Hand-made records: everything rises by 5 + k, except a restart of counter k0 (100 -> 3)
# and a wrap of counter k1 (2**64 - 10 -> 5) between records 1 and 2.
rows = [[100 + 10 * k for k in range(21)]]
rows.append([v + 5 + k for k, v in enumerate(rows[0])])
rows[1][k1] = M64 - 10
rows.append([v + 5 + k for k, v in enumerate(rows[1])])
rows[2][k0], rows[2][k1] = 3, 5
raw = b"".join(v.to_bytes(8, "little") for row in rows for v in row)
recs = ipsecstats.decode(raw)
assert [[int(recs[i][n]) for n in names] for i in range(3)] == rows

d = ipsecstats.deltas(recs)  # on_decrease="auto": a fall of less than 2**63 is a restart
r = ipsecstats.rates(recs, interval=2.0)
for i in range(2):
    for k, n in enumerate(names):
        p, c = rows[i][k], rows[i + 1][k]
        want = (c - p) % M64
        if kinds[k] == "counter" and c < p and want > 1 << 63:
            want = c  # restart: the growth since 0
        if kinds[k] != "counter" and want >= 1 << 63:
            want -= M64  # a gauge's change, signed
        assert int(d[n][i]) == want, (i, n, int(d[n][i]), want)
        if kinds[k] == "counter":
            assert float(r[n][i]) == want / 2.0, (i, n, float(r[n][i]), want / 2.0)
assert int(d[names[k0]][1]) == 3 and int(d[names[k1]][1]) == 15

# Every path this CPU runs against the twin, on random rows with falls mixed in.
rng = np.random.default_rng(1)
u = np.cumsum(rng.integers(0, 1 << 40, size=(999, 21), dtype=np.uint64), axis=0)
u[rng.integers(0, 999, 40)] = rng.integers(0, 1 << 63, size=(40, 21), dtype=np.uint64) * 2
big = u.astype("<u8").view(ipsecstats.RECORD_DTYPE).reshape(-1)
big_rows = big.view(np.uint8).reshape(-1, 168)
codes = rng.integers(0, 3, big.shape[0]).astype(np.intp)
counters = np.array([k == "counter" for k in kinds], np.uint8)


def stats(kernel, stride):
    acc = np.zeros(kernel.STATS_ACC, np.uint64)
    bins = np.zeros((8, kernel.STATS_BIN), np.uint64)
    bins[:, 84:105] = M64 - 1  # the minima start at 2**64 - 1
    events = np.zeros((16, 3), np.int64)
    kernel.stats_rows(big_rows, np.zeros((0, 168), np.uint8), counters, "auto", stride, 0, 200, True,
                      acc, bins, events)
    return [acc.tobytes(), bins.tobytes(), events.tobytes()]


def outcome(kernel):
    _backend.KERNEL = kernel
    try:
        out = []
        for policy in ("auto", "wrap", "reset", "zero"):
            dd, resets = ipsecstats.deltas(big, stride=2, on_decrease=policy, return_resets=True)
            keyed = ipsecstats.keyed_deltas(big, codes, on_decrease=policy)
            rr = ipsecstats.rates(big, interval=1.5, on_decrease=policy)
            out += [dd.tobytes(), resets.tobytes(), keyed.values.tobytes(), rr.tobytes()]
        return out + stats(kernel, 1) + stats(kernel, 2)
    finally:
        _backend.KERNEL = _fast


want = outcome(_slow)
paths = ("portable", "sse4.2", "avx2")
for path in paths[: paths.index(want_path) + 1]:
    _fast._set_vector_path(path)
    assert outcome(_fast) == want, f"the {path} path differs from the numpy twin"
print(f"ok: numpy {np.__version__}, ipsecstats {ipsecstats.__version__} ({ipsecstats.BACKEND}), "
      f"best path {want_path}, checked {paths[: paths.index(want_path) + 1]}")
EOF

fail=0
for model in core2duo:portable Nehalem:sse4.2 Haswell:avx2; do
    cpu="${model%%:*}"
    echo "== qemu-x86_64 -cpu $cpu"
    start=$SECONDS
    # (qemu warns about Haswell features its emulator lacks, none of which matter here)
    if EXPECT_PATH="${model#*:}" qemu-x86_64 -cpu "$cpu" "$VPY" "$SCRATCH/smoke.py" \
            2> >(grep -v "TCG doesn't support requested feature" >&2); then
        echo "   ($((SECONDS - start)) s)"
    else
        status=$?
        echo "FAIL under -cpu $cpu: exit status $status$( [ "$status" = 132 ] && echo ' (SIGILL: illegal instruction)')"
        fail=1
    fi
done
exit $fail
