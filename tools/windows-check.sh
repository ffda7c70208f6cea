#!/usr/bin/env bash
# Windows builds of the C kernel (_kernel.h, _wnode_load.h), checked with what Linux has:
#
#  1. mingw-w64 gcc (MSYS2 / mingw builds): a harness that calls every entry point of the
#     kernel is compiled at -O3 -Wall -Werror and linked into an .exe, so the AVX2 and
#     SSE4.2 copies really go through code generation (target-attribute mismatches only
#     show there) and __builtin_cpu_supports resolves in mingw's libgcc.
#  2. clang for x86_64-pc-windows-msvc, as clang-cl compiles it (_MSC_VER and __clang__
#     both defined): the same harness compiled to a COFF object, which exercises the
#     _MSC_VER run-time check (__cpuid, __cpuidex, _xgetbv from <intrin.h>/<immintrin.h>).
#  3. The same target with __clang__ undefined, -fsyntax-only: the header's branch for
#     MSVC's own cl.exe (__forceinline, __declspec(align), __restrict, no target
#     attributes), parsed as MSVC would see it. Syntax only: without target attributes
#     clang would refuse to generate AVX2 code, which cl.exe does generate.
#
# No MSVC or Windows SDK headers exist here. clang's own resource headers give stddef.h,
# stdint.h, intrin.h, immintrin.h (-ffreestanding: stdint.h defines its types itself
# instead of looking for the SDK's). string.h and stdlib.h come from a stub directory with
# the few declarations the headers use (memcpy, memmove, memcmp, memset, abort), written
# below; nothing else is stubbed. The harness #errors if the expected paths are not
# compiled in, so a guard that silently drops the AVX2 path fails the check.
#
# Installs (Debian) gcc-mingw-w64-x86-64 and clang when missing. Exit status: non-zero if
# any compile fails.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="$PWD/src/ipsecstats"

need=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64)
command -v clang >/dev/null 2>&1 || need+=(clang)
if [ ${#need[@]} -gt 0 ]; then
    echo "== apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

cat >"$SCRATCH/harness.c" <<'EOF'
/* Calls every entry point of the kernel on small buffers, with the CPU's path. */
#ifdef CL_EXE_HEADERS
/* Check 3: MSVC's immintrin.h declares every intrinsic whatever /arch says; clang's
 * (under _MSC_VER) only what the target enables, so its sub-headers stand in here. */
#include <immintrin.h>
#include <avxintrin.h>
#include <avx2intrin.h>
#include <xsaveintrin.h>
#endif
#include "_kernel.h"
#include "_wnode_load.h"

#if !IPS_HAVE_AVX2_PATH
#error "the AVX2 path is not compiled for this compiler"
#endif
#if defined(EXPECT_SSE42_PATH) && IPS_HAVE_SSE42_PATH != EXPECT_SSE42_PATH
#error "the SSE4.2 copies are not what this compiler should get"
#endif
#if defined(EXPECT_MSVC) && !defined(_MSC_VER)
#error "_MSC_VER is not defined: the MSVC branch is not being checked"
#endif

#define ROWS 37
static unsigned char prev[ROWS * IPS_ROW_BYTES], cur[ROWS * IPS_ROW_BYTES], out[ROWS * IPS_ROW_BYTES];
static uint8_t mask[ROWS * IPS_NFIELDS];
static uint64_t counter[IPS_NFIELDS], values[ROWS * IPS_NFIELDS], columns[IPS_NFIELDS * ROWS];
static uint64_t scratch[8 * IPS_NFIELDS], acc[IPS_ST_ACC + IPS_NFIELDS], bins[4 * IPS_SB_WIDTH];
static double seconds[ROWS], rates[ROWS * IPS_NFIELDS];
static int64_t events[3 * 8], ticks[ROWS], state_ticks[2], earlier_ticks[ROWS];
static ptrdiff_t codes[ROWS], last[2], earlier[ROWS], later[ROWS];
static unsigned char state_rows[2 * IPS_ROW_BYTES];
static uint8_t state_seen[2], cols[IPS_NFIELDS];

uint64_t ips_harness(int path)
{
    uint64_t sum = 0;
    for (int k = 0; k < IPS_NFIELDS; k++) {
        counter[k] = k < 18 ? ~(uint64_t)0 : 0;
        cols[k] = (uint8_t)k;
    }
    for (int i = 0; i < ROWS; i++) {
        seconds[i] = 1.5;
        codes[i] = i % 2;
        ticks[i] = i;
    }
    for (int policy = IPS_WRAP; policy <= IPS_AUTO; policy++) {
        for (int streaming = 0; streaming <= 1; streaming++) {
            sum += ips_delta_run(prev, cur, out, mask, ROWS, policy, counter, streaming, path);
        }
        ips_delta_rates_run(prev, cur, ROWS, policy, counter, cols, IPS_NFIELDS, seconds, 1, rates,
                            scratch, 8, 0, path);
        ips_keyed_init(last, state_seen, 2);
        ips_keyed_args a = {cur, IPS_ROW_BYTES, ROWS, codes, ticks, state_rows, state_ticks, 2, last,
                            out, mask, earlier, later, earlier_ticks, counter, policy, 0, 0, -1};
        ips_keyed_run(&a, 1, path);
        ips_keyed_commit(cur, IPS_ROW_BYTES, ticks, last, 2, state_rows, state_ticks, state_seen);
        sum += a.ndec + a.m;
        ips_stats_args s = {cur, prev, ROWS, 1, 1, 4, 8, 0, 16, counter, policy, 1, IPS_STATS_RECORDS | IPS_STATS_PAIRS,
                             acc, bins, events};
        ips_stats_run(&s, path);
        sum += acc[IPS_ST_ROWS];
    }
    ips_rates_dispatch(values, cols, IPS_NFIELDS, seconds, 1, rates, ROWS, 1, path);
    ips_transpose_run(cur, IPS_ROW_BYTES, ROWS, columns, ROWS, 1);
    char text[32];
    sum += ips_u64_text(sum, text) + ips_i64_text(-1, text) + ips_time_text(0, 9, text);
    sum += (uint64_t)ips_wn_u32(cur, sizeof cur, 0) + (uint64_t)ips_wn_i64(cur, sizeof cur, 8);
    return sum + (uint64_t)rates[0] + columns[0];
}

int main(void)
{
    int path = ips_cpu_path();
    return (int)(ips_harness(path) & 1) + path * 0;
}
EOF

# Stubs for the two C library headers clang does not ship (see above).
mkdir -p "$SCRATCH/stub"
cat >"$SCRATCH/stub/string.h" <<'EOF'
#pragma once
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
EOF
cat >"$SCRATCH/stub/stdlib.h" <<'EOF'
#pragma once
#include <stddef.h>
__declspec(noreturn) void abort(void);
EOF

WARN=(-Wall -Wextra -Werror -Wno-unused-function -Wno-unused-parameter)
fail=0

echo "== 1. x86_64-w64-mingw32-gcc -O3: compile and link the kernel harness"
if x86_64-w64-mingw32-gcc -O3 -std=c11 "${WARN[@]}" -DEXPECT_SSE42_PATH=1 -I"$SRC" \
        "$SCRATCH/harness.c" -o "$SCRATCH/harness.exe"; then
    x86_64-w64-mingw32-objdump -d "$SCRATCH/harness.exe" >"$SCRATCH/harness.dis"
    if grep -q "vpcmpgtq" "$SCRATCH/harness.dis" && grep -q "[^v]pcmpgtq" "$SCRATCH/harness.dis"; then
        echo "ok: $(stat -c %s "$SCRATCH/harness.exe") bytes, with AVX2 (vpcmpgtq) and SSE4.2 (pcmpgtq) code"
    else
        echo "FAIL: the mingw build lacks the AVX2 or the SSE4.2 code"; fail=1
    fi
else
    echo "FAIL: mingw-w64 gcc"; fail=1
fi

MSVC_TARGET=(--target=x86_64-pc-windows-msvc -fms-compatibility -fms-extensions
             -fms-compatibility-version=19.30 -ffreestanding -isystem "$SCRATCH/stub" -I"$SRC" "${WARN[@]}")

echo "== 2. clang --target=x86_64-pc-windows-msvc (clang-cl): compile the harness to an object"
if clang "${MSVC_TARGET[@]}" -O2 -DEXPECT_MSVC=1 -DEXPECT_SSE42_PATH=1 -c "$SCRATCH/harness.c" \
        -o "$SCRATCH/harness.obj"; then
    OBJDUMP="$(command -v llvm-objdump || echo "$(dirname "$(readlink -f "$(command -v clang)")")/llvm-objdump")"
    "$OBJDUMP" -d "$SCRATCH/harness.obj" >"$SCRATCH/harness.obj.dis"
    if grep -q "cpuid" "$SCRATCH/harness.obj.dis" && grep -q "xgetbv" "$SCRATCH/harness.obj.dis" \
            && grep -q "vpcmpgtq" "$SCRATCH/harness.obj.dis"; then
        echo "ok: $(stat -c %s "$SCRATCH/harness.obj") bytes of COFF, with cpuid, xgetbv and AVX2 code"
    else
        echo "FAIL: the clang-cl object lacks the __cpuid/_xgetbv check or the AVX2 code"; fail=1
    fi
else
    echo "FAIL: clang, MSVC target"; fail=1
fi

echo "== 3. the same target as cl.exe sees the header (__clang__ undefined): -fsyntax-only"
if clang "${MSVC_TARGET[@]}" -Wno-builtin-macro-redefined -U__clang__ -DCL_EXE_HEADERS=1 -DEXPECT_MSVC=1 -DEXPECT_SSE42_PATH=0 \
        -fsyntax-only "$SCRATCH/harness.c"; then
    echo "ok"
else
    echo "FAIL: clang, MSVC target, cl.exe branch"; fail=1
fi

exit $fail
