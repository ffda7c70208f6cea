/* The ipsecstats delta kernel, included by _fast.pyx.
 *
 * For every item of n rows (21 little-endian uint64 per 168-byte row), with
 * p = previous, c = current, d = (c - p) mod 2^64, dec = counter && c < p:
 *
 *     policy WRAP   out = d
 *     policy RESET  out = dec ? c : d              restart: growth since 0
 *     policy ZERO   out = dec ? 0 : d
 *     policy AUTO   out = dec && d > 2^63 ? c : d  a fall < 2^63 is a restart
 *
 * Gauges are never `dec`, so their d read as int64 is the signed change.
 * mask[k] = dec (if mask != NULL); the return value counts the decs.
 *
 * p, c and out are contiguous runs of n * 168 bytes at any alignment. The policy
 * is branch-free (compare and blend): a branch on "did it fall" costs 4x when
 * decreases are frequent. With `streaming` set (the caller sets it when the output
 * is larger than the last-level cache), a 16-byte aligned output goes out through
 * non-temporal stores, which skip the read-for-ownership of every output line.
 */
#ifndef IPSECSTATS_KERNEL_H
#define IPSECSTATS_KERNEL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define IPS_NFIELDS 21
#define IPS_ROW_BYTES 168

enum { IPS_WRAP = 0, IPS_RESET = 1, IPS_ZERO = 2, IPS_AUTO = 3 };

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define IPS_LE64(x) __builtin_bswap64(x)
#else
#define IPS_LE64(x) (x)
#endif

/* Compiler portability: gcc, clang (also clang-cl, which defines _MSC_VER and __clang__)
 * and MSVC. MSVC has no target attribute: it compiles the intrinsics of any ISA without
 * /arch, so its IPS_TARGET is empty; gcc and clang need the attribute on every function
 * that uses instructions beyond the build's baseline. */
#if defined(_MSC_VER) && !defined(__clang__)
#define IPS_FORCE_INLINE static __forceinline
#define IPS_NOINLINE __declspec(noinline)
#define IPS_TARGET(isa)
#define IPS_ALIGN32 __declspec(align(32))
#define IPS_RESTRICT __restrict
#else
#define IPS_FORCE_INLINE static inline __attribute__((always_inline))
#define IPS_NOINLINE __attribute__((noinline))
#define IPS_TARGET(isa) __attribute__((target(isa)))
#define IPS_ALIGN32 _Alignas(32)
#define IPS_RESTRICT restrict
#endif

/* Vector paths, chosen at run time (ips_cpu_path): the build targets the compiler's
 * baseline (plain x86-64: SSE2), so the module loads on any x86-64 CPU. Where the CPU
 * allows, the hand-written AVX2 kernels run; without AVX2 but with SSE4.2 + POPCNT
 * (x86-64-v2), the statistics pass runs a copy compiled for it (its 64-bit compares and
 * blends vectorize to pcmpgtq / pblendvb: 1.3-1.7x the baseline copy). The other
 * portable loops gain nothing from SSE4.2 (the compiler emits the same scalar code), so
 * they have one copy. Callers pass the path; tests can lower it. */
enum { IPS_PATH_PORTABLE = 0, IPS_PATH_SSE42 = 1, IPS_PATH_AVX2 = 2 };

#if (defined(__x86_64__) || defined(_M_X64)) && !defined(_M_ARM64EC) \
    && (defined(__GNUC__) || defined(__clang__) || defined(_MSC_VER))
#define IPS_HAVE_AVX2_PATH 1
#include <immintrin.h>
#if defined(_MSC_VER) && defined(__clang__)
/* clang-cl's immintrin.h (clang 14 at least, as tools/windows-check.sh finds) leaves out
 * the AVX, AVX2 and XSAVE declarations unless /arch enables them; the target-attributed
 * functions need them all the same. */
#include <avxintrin.h>
#include <avx2intrin.h>
#include <xsaveintrin.h>
#endif
#else
#define IPS_HAVE_AVX2_PATH 0
#endif

/* The SSE4.2 copies matter only where the compiler vectorizes for a target attribute. */
#if IPS_HAVE_AVX2_PATH && (defined(__GNUC__) || defined(__clang__))
#define IPS_HAVE_SSE42_PATH 1
#define IPS_SSE42 IPS_TARGET("sse4.2,popcnt")
#else
#define IPS_HAVE_SSE42_PATH 0
#endif

static inline uint64_t ips_load_le64(const unsigned char *src)
{
    uint64_t v;
    memcpy(&v, src, 8);
    return IPS_LE64(v);
}

/* Portable path: items [k0, k1) of the run, one at a time. */
static inline uint64_t ips_delta_items(const unsigned char *p, const unsigned char *c,
                                       unsigned char *out, uint8_t *mask, size_t k0, size_t k1,
                                       int policy, const uint64_t *counter)
{
    uint64_t ndec = 0;
    for (size_t k = k0; k < k1; k++) {
        uint64_t pv = ips_load_le64(p + 8 * k);
        uint64_t cv = ips_load_le64(c + 8 * k);
        uint64_t d = cv - pv;
        uint64_t dec = (0 - (uint64_t)(cv < pv)) & counter[k % IPS_NFIELDS];
        uint64_t take_c;
        switch (policy) {
        case IPS_RESET: take_c = dec; break;
        case IPS_AUTO: take_c = dec & (0 - (uint64_t)(d > 0x8000000000000000ULL)); break;
        default: take_c = 0; break;
        }
        uint64_t keep_d = policy == IPS_ZERO ? ~dec : ~take_c;
        uint64_t v = IPS_LE64((cv & take_c) | (d & keep_d));
        memcpy(out + 8 * k, &v, 8);
        if (mask) mask[k] = (uint8_t)(dec & 1);
        ndec += dec & 1;
    }
    return ndec;
}

#if IPS_HAVE_AVX2_PATH
/* A non-temporal 32-byte store: one AVX store at a 32-byte aligned address
 * (streaming == 1), two SSE stores at a 16-byte aligned one (streaming == 2). */
IPS_FORCE_INLINE IPS_TARGET("avx2") void ips_stream_32(unsigned char *dst, __m256i v, const int streaming)
{
    if (streaming == 1) {
        _mm256_stream_si256((__m256i *)dst, v);
    } else {
        _mm_stream_si128((__m128i *)dst, _mm256_castsi256_si128(v));
        _mm_stream_si128((__m128i *)(dst + 16), _mm256_extracti128_si256(v, 1));
    }
}

/* Four rows (84 items = 21 vectors of 4) per block, so the per-item counter lanes
 * repeat every block and a 32-byte aligned output stays aligned block after block. */
IPS_FORCE_INLINE IPS_TARGET("avx2")
uint64_t ips_delta_blocks_avx2_t(const unsigned char *p, const unsigned char *c,
                                 unsigned char *out, uint8_t *mask, size_t nblocks,
                                 const int policy, const uint64_t *lanes,
                                 const int streaming, const int want_mask)
{
    static const uint32_t bytes_of_bits[16] = {
        0x00000000, 0x00000001, 0x00000100, 0x00000101, 0x00010000, 0x00010001, 0x00010100, 0x00010101,
        0x01000000, 0x01000001, 0x01000100, 0x01000101, 0x01010000, 0x01010001, 0x01010100, 0x01010101};
    const __m256i sign = _mm256_set1_epi64x((long long)0x8000000000000000ULL);
    __m256i acc = _mm256_setzero_si256();
    /* Streaming masks are staged for 8 blocks (672 bytes = 21 x 32) in L1, then
     * streamed out in 32-byte stores: 4-byte non-temporal stores were slower. */
    IPS_ALIGN32 uint8_t staged[8 * 4 * IPS_NFIELDS];
    for (size_t b = 0; b < nblocks; b++) {
        const size_t base = b * 4 * IPS_ROW_BYTES;
        if (streaming) {  /* hint ahead; a prefetch never faults, even past the end */
            for (int q = 0; q < 4 * IPS_ROW_BYTES; q += 64) {
                _mm_prefetch((const char *)(c + base + 2048 + q), _MM_HINT_T0);
            }
        }
        for (int v = 0; v < IPS_NFIELDS; v++) {
            const size_t off = base + 32 * (size_t)v;
            __m256i pv = _mm256_loadu_si256((const __m256i *)(p + off));
            __m256i cv = _mm256_loadu_si256((const __m256i *)(c + off));
            __m256i d = _mm256_sub_epi64(cv, pv);
            __m256i lt = _mm256_cmpgt_epi64(_mm256_xor_si256(pv, sign), _mm256_xor_si256(cv, sign));
            __m256i dec = _mm256_and_si256(lt, _mm256_loadu_si256((const __m256i *)(lanes + 4 * v)));
            __m256i r;
            if (policy == IPS_RESET) {
                r = _mm256_blendv_epi8(d, cv, dec);
            } else if (policy == IPS_AUTO) {
                /* unsigned d > 2^63  <=>  signed (d ^ sign) > 0 */
                __m256i big = _mm256_cmpgt_epi64(_mm256_xor_si256(d, sign), _mm256_setzero_si256());
                r = _mm256_blendv_epi8(d, cv, _mm256_and_si256(dec, big));
            } else if (policy == IPS_ZERO) {
                r = _mm256_andnot_si256(dec, d);
            } else {
                r = d;
            }
            if (streaming) {
                ips_stream_32(out + off, r, streaming);
            } else {
                _mm256_storeu_si256((__m256i *)(out + off), r);
            }
            if (want_mask) {
                uint32_t bytes = bytes_of_bits[_mm256_movemask_pd(_mm256_castsi256_pd(dec))];
                if (streaming) {
                    memcpy(staged + (b % 8) * 4 * IPS_NFIELDS + 4 * (size_t)v, &bytes, 4);
                } else {
                    memcpy(mask + b * 4 * IPS_NFIELDS + 4 * (size_t)v, &bytes, 4);
                }
            }
            acc = _mm256_sub_epi64(acc, dec);
        }
        if (want_mask && streaming && b % 8 == 7) {  /* alignment checked by the caller */
            uint8_t *dst = mask + (b - 7) * 4 * IPS_NFIELDS;
            for (int q = 0; q < 8 * 4 * IPS_NFIELDS; q += 32) {
                ips_stream_32(dst + q, _mm256_load_si256((const __m256i *)(staged + q)), streaming);
            }
        }
    }
    if (want_mask && streaming && nblocks % 8) {
        size_t first = nblocks - nblocks % 8;
        memcpy(mask + first * 4 * IPS_NFIELDS, staged, (nblocks % 8) * 4 * IPS_NFIELDS);
    }
    uint64_t lanes_sum[4];
    _mm256_storeu_si256((__m256i *)lanes_sum, acc);
    return lanes_sum[0] + lanes_sum[1] + lanes_sum[2] + lanes_sum[3];
}

/* One specialised copy of the loop per (policy, streaming, mask) combination. */
IPS_TARGET("avx2")
static uint64_t ips_delta_blocks_avx2(const unsigned char *p, const unsigned char *c,
                                      unsigned char *out, uint8_t *mask, size_t nblocks,
                                      int policy, const uint64_t *lanes, int streaming)
{
#define IPS_CASE(POL)                                                                              \
    case POL:                                                                                      \
        if (streaming == 1) {                                                                      \
            return mask ? ips_delta_blocks_avx2_t(p, c, out, mask, nblocks, POL, lanes, 1, 1)      \
                        : ips_delta_blocks_avx2_t(p, c, out, mask, nblocks, POL, lanes, 1, 0);     \
        }                                                                                          \
        if (streaming == 2) {                                                                      \
            return mask ? ips_delta_blocks_avx2_t(p, c, out, mask, nblocks, POL, lanes, 2, 1)      \
                        : ips_delta_blocks_avx2_t(p, c, out, mask, nblocks, POL, lanes, 2, 0);     \
        }                                                                                          \
        return mask ? ips_delta_blocks_avx2_t(p, c, out, mask, nblocks, POL, lanes, 0, 1)          \
                    : ips_delta_blocks_avx2_t(p, c, out, mask, nblocks, POL, lanes, 0, 0);
    switch (policy) {
        IPS_CASE(IPS_RESET)
        IPS_CASE(IPS_ZERO)
        IPS_CASE(IPS_AUTO)
        default:
        IPS_CASE(IPS_WRAP)
    }
#undef IPS_CASE
}

#endif

#if IPS_HAVE_AVX2_PATH && defined(_MSC_VER)
#include <intrin.h>
/* XCR0 (which register states the OS saves); clang-cl's _xgetbv needs the xsave target. */
IPS_TARGET("xsave") static unsigned long long ips_xcr0(void) { return _xgetbv(0); }
#endif

/* The best vector path of this CPU (IPS_PATH_*). AVX2 needs the CPU flag and the OS's
 * saving of the YMM state (OSXSAVE, XCR0 bits 1-2), which __builtin_cpu_supports checks too. */
static int ips_cpu_path(void)
{
    int path = IPS_PATH_PORTABLE;
#if IPS_HAVE_AVX2_PATH && defined(_MSC_VER)
    int r[4];
    __cpuid(r, 0);
    const int max_leaf = r[0];
    __cpuid(r, 1);
    if ((r[2] >> 20 & 1) && (r[2] >> 23 & 1)) path = IPS_PATH_SSE42;   /* SSE4.2, POPCNT */
    if (max_leaf >= 7 && (r[2] >> 27 & 1) && (r[2] >> 28 & 1) && (ips_xcr0() & 6) == 6) {  /* OSXSAVE, AVX */
        __cpuidex(r, 7, 0);
        if (r[1] >> 5 & 1) path = IPS_PATH_AVX2;
    }
#elif IPS_HAVE_AVX2_PATH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt")) path = IPS_PATH_SSE42;
    if (__builtin_cpu_supports("avx2")) path = IPS_PATH_AVX2;
#endif
#if !IPS_HAVE_SSE42_PATH
    if (path == IPS_PATH_SSE42) path = IPS_PATH_PORTABLE;   /* no such copy in this build */
#endif
    return path;
}

/* The whole run of n rows. path: the caller's IPS_PATH_* (ips_cpu_path, or lower in tests). */
static inline uint64_t ips_delta_run(const unsigned char *p, const unsigned char *c,
                                     unsigned char *out, uint8_t *mask, size_t nrows,
                                     int policy, const uint64_t *counter, int streaming, int path)
{
    size_t done_rows = 0;
    uint64_t ndec = 0;
#if IPS_HAVE_AVX2_PATH
    if (path >= IPS_PATH_AVX2 && nrows >= 4) {
        uint64_t lanes[4 * IPS_NFIELDS];
        for (int k = 0; k < 4 * IPS_NFIELDS; k++) lanes[k] = counter[k % IPS_NFIELDS];
        size_t nblocks = nrows / 4;
        /* 1: out and mask 32-byte aligned; 2: 16-byte aligned (numpy's own allocations). */
        uintptr_t misalign = ((uintptr_t)out | (uintptr_t)mask) & 31;
        streaming = !streaming ? 0 : misalign == 0 ? 1 : (misalign & 15) == 0 ? 2 : 0;
        ndec = ips_delta_blocks_avx2(p, c, out, mask, nblocks, policy, lanes, streaming);
        if (streaming) _mm_sfence();
        done_rows = nblocks * 4;
    }
#else
    (void)streaming;
    (void)path;
#endif
    ndec += ips_delta_items(p, c, out, mask, done_rows * IPS_NFIELDS, nrows * IPS_NFIELDS,
                            policy, counter);
    return ndec;
}

/* Rates: out[i, j] = (double)values[i, cols[j]] / seconds[i * seconds_step].
 *
 * The uint64 to double conversion is the C one (correctly rounded), then one IEEE
 * division: bit for bit what numpy computes for np.divide(uint64 column, float64).
 * seconds_step is 0 for one interval for every row, 1 for a time step per row. */
static inline void ips_rates_run(const uint64_t *values, const uint8_t *cols, int ncols,
                                 const double *seconds, size_t seconds_step, double *out, size_t nrows)
{
    for (size_t i = 0; i < nrows; i++) {
        const uint64_t *row = values + i * IPS_NFIELDS;
        double *dst = out + i * (size_t)ncols;
        const double s = seconds[i * seconds_step];
        for (int j = 0; j < ncols; j++) {
            dst[j] = (double)row[cols[j]] / s;
        }
    }
}

/* ==================================================================================
 * Columnar transpose (decode_columns / delta_columns), separate from the delta kernel.
 *
 *     out[j * ld + i] = item j of row i = le64(src + i * stride + 8 * j)
 *
 * for i < nrows, j < 21. Rows sit at any byte stride (negative or 0 too) and any
 * alignment: every load is an unaligned SSE2 load or a memcpy. Rows go 8 at a time, so
 * one block reads 8 x 168 bytes (in L1) and writes 64 bytes to each of the 21 columns:
 * a whole cache line when the column starts on a 64-byte boundary. `ld` is the
 * distance between columns in items (any sign). With `streaming` (the caller sets it
 * when the output is larger than the last-level cache) and 16-byte aligned columns,
 * the SSE2 path writes with non-temporal stores, which skip the read-for-ownership.
 * ================================================================================== */

#if defined(__SSE2__) || defined(_M_X64)
#define IPS_HAVE_SSE2_TRANSPOSE 1
#include <emmintrin.h>
#define IPS_SPECIALIZE IPS_FORCE_INLINE
#else
#define IPS_HAVE_SSE2_TRANSPOSE 0
#endif

/* Rows [i0, i1), one item at a time: the tail and the portable path. */
static inline void ips_transpose_scalar(const unsigned char *src, ptrdiff_t stride,
                                        size_t i0, size_t i1, uint64_t *out, ptrdiff_t ld)
{
    for (size_t i = i0; i < i1; i++) {
        const unsigned char *row = src + (ptrdiff_t)i * stride;
        for (ptrdiff_t j = 0; j < IPS_NFIELDS; j++) {
            out[j * ld + (ptrdiff_t)i] = ips_load_le64(row + 8 * j);
        }
    }
}

#if IPS_HAVE_SSE2_TRANSPOSE
/* Blocks of 8 rows: items (2k, 2k+1) of rows (q, q+1) are one 2x2 transpose of
 * 64-bit lanes (unpacklo / unpackhi); item 20 pairs two 8-byte loads. */
IPS_SPECIALIZE void ips_transpose_blocks_sse2_t(const unsigned char *src, ptrdiff_t stride, size_t nblocks,
                                 uint64_t *out, ptrdiff_t ld, const int streaming)
{
    for (size_t b = 0; b < nblocks; b++) {
        const unsigned char *rows = src + (ptrdiff_t)(8 * b) * stride;
        uint64_t *dst = out + 8 * b;
        for (ptrdiff_t j = 0; j < IPS_NFIELDS - 1; j += 2) {
            uint64_t *c0 = dst + j * ld;
            uint64_t *c1 = c0 + ld;
            for (ptrdiff_t q = 0; q < 8; q += 2) {
                const unsigned char *r0 = rows + q * stride + 8 * j;
                __m128i a = _mm_loadu_si128((const __m128i *)r0);
                __m128i c = _mm_loadu_si128((const __m128i *)(r0 + stride));
                __m128i lo = _mm_unpacklo_epi64(a, c);
                __m128i hi = _mm_unpackhi_epi64(a, c);
                if (streaming) {
                    _mm_stream_si128((__m128i *)(c0 + q), lo);
                    _mm_stream_si128((__m128i *)(c1 + q), hi);
                } else {
                    _mm_storeu_si128((__m128i *)(c0 + q), lo);
                    _mm_storeu_si128((__m128i *)(c1 + q), hi);
                }
            }
        }
        uint64_t *last = dst + (IPS_NFIELDS - 1) * ld;
        for (ptrdiff_t q = 0; q < 8; q += 2) {
            const unsigned char *r0 = rows + q * stride + 8 * (IPS_NFIELDS - 1);
            __m128i v = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)r0),
                                           _mm_loadl_epi64((const __m128i *)(r0 + stride)));
            if (streaming) {
                _mm_stream_si128((__m128i *)(last + q), v);
            } else {
                _mm_storeu_si128((__m128i *)(last + q), v);
            }
        }
    }
}
#endif

/* The whole run of nrows rows. */
static inline void ips_transpose_run(const unsigned char *src, ptrdiff_t stride, size_t nrows,
                                     uint64_t *out, ptrdiff_t ld, int streaming)
{
    size_t done = 0;
#if IPS_HAVE_SSE2_TRANSPOSE
    size_t nblocks = nrows / 8;
    streaming = streaming && (((uintptr_t)out) & 15) == 0 && (ld & 1) == 0;
    if (streaming) {
        ips_transpose_blocks_sse2_t(src, stride, nblocks, out, ld, 1);
        _mm_sfence();
    } else {
        ips_transpose_blocks_sse2_t(src, stride, nblocks, out, ld, 0);
    }
    done = nblocks * 8;
#else
    (void)streaming;
#endif
    ips_transpose_scalar(src, stride, done, nrows, out, ld);
}

/* ==================================================================================
 * Fused statistics pass (stats_rows): one read of each record feeds the report.
 *
 * Record i of the chunk (global index g = start + i, poll g / stride, bin
 * poll / width) adds to its bin row: the exact sum (lo, hi: a 128-bit carry count),
 * min and max of each of the 21 items, and one record. When it has an earlier record
 * (i - stride in the chunk, or prev[i] for i < stride when prev holds stride rows),
 * each counter's increase under the policy (the delta kernel's arithmetic) adds,
 * 128-bit, to the pending sum of its poll; a fall is a restart when p - c < 2^63,
 * else a wrap. When the poll changes (or `final`), the pending poll's sums go into
 * its bin's sums and raise the bin's peaks (128-bit compares: no float).
 *
 * Speed: the record statistics of a run of rows in one bin go through 84 lanes (four
 * rows: every item lands on a fixed lane), kept in locals, so the compiler vectorizes
 * them; the increases are branch-free. Both loops are compiled twice, the second time
 * for AVX2, chosen at run time as the delta kernel is.
 * ================================================================================== */

enum {
    IPS_ST_RESTARTS = 0, IPS_ST_WRAPS = 21, IPS_ST_PLO = 42, IPS_ST_PHI = 63,
    IPS_ST_EVENTS = 84, IPS_ST_RESTART_EVENTS = 85, IPS_ST_PENDING = 86, IPS_ST_ROWS = 87,
    IPS_ST_ACC = 88,
    IPS_SB_CLO = 0, IPS_SB_CHI = 21, IPS_SB_FLO = 42, IPS_SB_FHI = 63, IPS_SB_MIN = 84,
    IPS_SB_MAX = 105, IPS_SB_POLLS = 126, IPS_SB_RECORDS = 127, IPS_SB_PLO = 128, IPS_SB_PHI = 149,
    IPS_SB_WIDTH = 170
};

#define IPS_LANES (4 * IPS_NFIELDS)
#define IPS_STATS_BLOCK 384   /* rows: 64 KB */

typedef struct {
    const unsigned char *cur, *prev;
    size_t n, nprev, stride, nbins, nevents;
    uint64_t start, width;
    const uint64_t *counter;
    int policy, final, parts;   /* parts: IPS_STATS_RECORDS | IPS_STATS_PAIRS */
    uint64_t *acc, *bins;
    int64_t *events;
} ips_stats_args;

#define IPS_STATS_RECORDS 1   /* the record statistics: sums, min, max, records */
#define IPS_STATS_PAIRS 2     /* the increases: sums, peaks, polls, restarts, wraps, events */

static inline void ips_add128(uint64_t *lo, uint64_t *hi, uint64_t v)
{
    uint64_t s = *lo + v;
    *hi += s < v;
    *lo = s;
}

/* A poll's sums (lo, hi) into its bin row: added to the bin's sums, and its peak raised.
 * Only the counters' columns (cols[0..ncols)): the other sums are zero. */
static inline void ips_stats_close(uint64_t *bin, const uint64_t *lo, const uint64_t *hi,
                                   const uint8_t *cols, int ncols)
{
    for (int j = 0; j < ncols; j++) {
        int k = cols[j];
        ips_add128(&bin[IPS_SB_CLO + k], &bin[IPS_SB_CHI + k], lo[k]);
        bin[IPS_SB_CHI + k] += hi[k];
        uint64_t ph = bin[IPS_SB_PHI + k], pl = bin[IPS_SB_PLO + k];
        int above = hi[k] > ph || (hi[k] == ph && lo[k] > pl);
        bin[IPS_SB_PHI + k] = above ? hi[k] : ph;
        bin[IPS_SB_PLO + k] = above ? lo[k] : pl;
    }
    bin[IPS_SB_POLLS] += 1;
}

/* ips_stats_close on the run's bin held in locals: every column (a non-counter's sums are 0). */
IPS_FORCE_INLINE void ips_stats_close_local(
    uint64_t *IPS_RESTRICT clo, uint64_t *IPS_RESTRICT chi, uint64_t *IPS_RESTRICT klo, uint64_t *IPS_RESTRICT khi,
    const uint64_t *IPS_RESTRICT lo, const uint64_t *IPS_RESTRICT hi)
{
    for (int k = 0; k < IPS_NFIELDS; k++) {
        uint64_t s = clo[k] + lo[k];
        chi[k] += hi[k] + (s < lo[k]);
        clo[k] = s;
        uint64_t above = (uint64_t)0 - (uint64_t)((hi[k] > khi[k]) | ((hi[k] == khi[k]) & (lo[k] > klo[k])));
        khi[k] = (hi[k] & above) | (khi[k] & ~above);
        klo[k] = (lo[k] & above) | (klo[k] & ~above);
    }
}

#define IPS_PAD 24   /* 21 fields as 6 vectors of 4 (lanes 21-23: no counter) */

#if IPS_HAVE_AVX2_PATH

/* Whole polls of rows [i, i1) of `cur` (i the first row of a poll, i >= stride: every row's
 * previous record is stride rows back in `cur`), in which no counter fell: each poll's
 * increases (cv - pv, masked by cm) summed to 128 bits, added to the bin's sums
 * (clo/chi) and raising its peaks (klo/khi), field k in lane k of 6 vectors. Stops before
 * the first poll in which a counter fell (the caller's scalar loop takes it) or the first
 * one not whole in [i, i1). Returns the rows taken (a multiple of stride). The sums' high
 * words count carries (at most the rows of the log), so signed compares order them. */
IPS_TARGET("avx2") static size_t ips_stats_polls_avx2(
    const unsigned char *cur, size_t i, size_t i1, size_t stride, const uint64_t *cm,
    uint64_t *clo, uint64_t *chi, uint64_t *klo, uint64_t *khi)
{
    const __m256i sign = _mm256_set1_epi64x((long long)0x8000000000000000ULL);
    const __m256i last = _mm256_setr_epi64x(-1, 0, 0, 0);   /* field 20 of the sixth vector */
    const size_t back = stride * IPS_ROW_BYTES;
    __m256i m[6], lo[6], hi[6], plo[6], phi[6];
    for (int v = 0; v < 6; v++) {
        m[v] = _mm256_loadu_si256((const __m256i *)(cm + 4 * v));
        lo[v] = _mm256_loadu_si256((const __m256i *)(clo + 4 * v));
        hi[v] = _mm256_loadu_si256((const __m256i *)(chi + 4 * v));
        plo[v] = _mm256_loadu_si256((const __m256i *)(klo + 4 * v));
        phi[v] = _mm256_loadu_si256((const __m256i *)(khi + 4 * v));
    }
    size_t start = i;
    for (; i + stride <= i1; i += stride) {
        __m256i slo[6], shi[6], fell = _mm256_setzero_si256();
        for (int v = 0; v < 6; v++) {
            slo[v] = _mm256_setzero_si256();
            shi[v] = _mm256_setzero_si256();
        }
        for (size_t r = 0; r < stride; r++) {
            const unsigned char *c = cur + (i + r) * IPS_ROW_BYTES;
            for (int v = 0; v < 6; v++) {
                __m256i cv, pv;
                if (v < 5) {
                    cv = _mm256_loadu_si256((const __m256i *)(c + 32 * v));
                    pv = _mm256_loadu_si256((const __m256i *)(c - back + 32 * v));
                } else {   /* the row's last 8 bytes only: never past the buffer */
                    cv = _mm256_maskload_epi64((const long long *)(c + 160), last);
                    pv = _mm256_maskload_epi64((const long long *)(c - back + 160), last);
                }
                __m256i cs = _mm256_xor_si256(cv, sign);
                fell = _mm256_or_si256(fell, _mm256_and_si256(_mm256_cmpgt_epi64(_mm256_xor_si256(pv, sign), cs), m[v]));
                __m256i d = _mm256_and_si256(_mm256_sub_epi64(cv, pv), m[v]);
                __m256i s = _mm256_add_epi64(slo[v], d);
                /* carry: s < d unsigned */
                shi[v] = _mm256_sub_epi64(shi[v], _mm256_cmpgt_epi64(_mm256_xor_si256(d, sign), _mm256_xor_si256(s, sign)));
                slo[v] = s;
            }
        }
        if (!_mm256_testz_si256(fell, fell))
            break;
        for (int v = 0; v < 6; v++) {
            __m256i s = _mm256_add_epi64(lo[v], slo[v]);
            __m256i carry = _mm256_cmpgt_epi64(_mm256_xor_si256(slo[v], sign), _mm256_xor_si256(s, sign));
            hi[v] = _mm256_sub_epi64(_mm256_add_epi64(hi[v], shi[v]), carry);
            lo[v] = s;
            __m256i above = _mm256_or_si256(
                _mm256_cmpgt_epi64(shi[v], phi[v]),
                _mm256_and_si256(_mm256_cmpeq_epi64(shi[v], phi[v]),
                                 _mm256_cmpgt_epi64(_mm256_xor_si256(slo[v], sign), _mm256_xor_si256(plo[v], sign))));
            plo[v] = _mm256_blendv_epi8(plo[v], slo[v], above);
            phi[v] = _mm256_blendv_epi8(phi[v], shi[v], above);
        }
    }
    for (int v = 0; v < 6; v++) {
        _mm256_storeu_si256((__m256i *)(clo + 4 * v), lo[v]);
        _mm256_storeu_si256((__m256i *)(chi + 4 * v), hi[v]);
        _mm256_storeu_si256((__m256i *)(klo + 4 * v), plo[v]);
        _mm256_storeu_si256((__m256i *)(khi + 4 * v), phi[v]);
    }
    return i - start;
}
#endif

static inline int ips_stats_columns(const uint64_t *counter, uint8_t *cols)
{
    int n = 0;
    for (int k = 0; k < IPS_NFIELDS; k++)
        if (counter[k])
            cols[n++] = (uint8_t)k;
    return n;
}

/* The pending poll of acc (acc[IPS_ST_PENDING] - 1) into its bin. */
static void ips_stats_flush(ips_stats_args *a)
{
    uint64_t *acc = a->acc;
    if (!acc[IPS_ST_PENDING])
        return;
    uint64_t *bin = a->bins + (acc[IPS_ST_PENDING] - 1) / a->width * IPS_SB_WIDTH;
    uint8_t cols[IPS_NFIELDS];
    int ncols = ips_stats_columns(a->counter, cols);
    ips_stats_close(bin, acc + IPS_ST_PLO, acc + IPS_ST_PHI, cols, ncols);
    for (int k = 0; k < IPS_NFIELDS; k++)
        acc[IPS_ST_PLO + k] = acc[IPS_ST_PHI + k] = 0;
    acc[IPS_ST_PENDING] = 0;
}

/* Rows [0, n) of `cur`, all in the bin row `bin`. */
IPS_FORCE_INLINE void ips_stats_records_t(const unsigned char *cur, size_t n, uint64_t *bin)
{
    uint64_t lo[IPS_LANES], hi[IPS_LANES], mn[IPS_LANES], mx[IPS_LANES];
    for (int q = 0; q < IPS_LANES; q++) {
        lo[q] = 0; hi[q] = 0; mn[q] = ~(uint64_t)0; mx[q] = 0;
    }
    size_t blocks = n / 4, i;
    for (i = 0; i < blocks; i++) {
        const unsigned char *c = cur + i * 4 * IPS_ROW_BYTES;
        for (int q = 0; q < IPS_LANES; q++) {
            uint64_t v = ips_load_le64(c + 8 * q);
            uint64_t s = lo[q] + v;
            hi[q] += s < v;
            lo[q] = s;
            mn[q] = v < mn[q] ? v : mn[q];
            mx[q] = v > mx[q] ? v : mx[q];
        }
    }
    for (i = blocks * 4; i < n; i++) {
        const unsigned char *c = cur + i * IPS_ROW_BYTES;
        for (int k = 0; k < IPS_NFIELDS; k++) {
            uint64_t v = ips_load_le64(c + 8 * k);
            uint64_t s = lo[k] + v;
            hi[k] += s < v;
            lo[k] = s;
            mn[k] = v < mn[k] ? v : mn[k];
            mx[k] = v > mx[k] ? v : mx[k];
        }
    }
    for (int q = 0; q < IPS_LANES; q++) {
        int k = q % IPS_NFIELDS;
        ips_add128(&bin[IPS_SB_FLO + k], &bin[IPS_SB_FHI + k], lo[q]);
        bin[IPS_SB_FHI + k] += hi[q];
        if (mn[q] < bin[IPS_SB_MIN + k]) bin[IPS_SB_MIN + k] = mn[q];
        if (mx[q] > bin[IPS_SB_MAX + k]) bin[IPS_SB_MAX + k] = mx[q];
    }
    bin[IPS_SB_RECORDS] += n;
}

/* The policy's state for ips_stats_row: masks of which falls give c (RESET: every fall,
 * AUTO: a restart) and which give 0 (ZERO). */
typedef struct {
    uint64_t take_dec, take_restart, zero_dec;
} ips_stats_policy;

/* One row's increases under the policy (the delta kernel's arithmetic, cm[k]: all ones for a
 * counter) into o[]; its falls counted as restarts (nr) or wraps (nw) and, if any, kept as
 * event g (record, restart bits, wrap bits) while fewer than nevents are kept. */
IPS_FORCE_INLINE void ips_stats_row(const unsigned char *p, const unsigned char *c, const uint64_t *cm,
                                    ips_stats_policy pol, uint64_t *o, uint64_t *nr, uint64_t *nw, uint64_t g,
                                    int64_t *events, size_t nevents, uint64_t *nev, uint64_t *nrev)
{
    static const uint64_t bit[IPS_NFIELDS] = {1u << 0, 1u << 1, 1u << 2, 1u << 3, 1u << 4, 1u << 5, 1u << 6,
        1u << 7, 1u << 8, 1u << 9, 1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15, 1u << 16,
        1u << 17, 1u << 18, 1u << 19, 1u << 20};   /* a table, not 1 << k: the loop vectorizes */
    uint64_t rbits = 0, wbits = 0;
    for (int k = 0; k < IPS_NFIELDS; k++) {
        uint64_t pv = ips_load_le64(p + 8 * k), cv = ips_load_le64(c + 8 * k);
        uint64_t d = cv - pv;
        uint64_t dec = ((uint64_t)0 - (uint64_t)(cv < pv)) & cm[k];   /* all ones on a fall */
        uint64_t wrap = dec & ((uint64_t)0 - ((pv - cv) >> 63));
        uint64_t restart = dec & ~wrap;
        uint64_t to_c = (dec & pol.take_dec) | (restart & pol.take_restart);
        uint64_t to_0 = dec & pol.zero_dec;
        o[k] = ((cv & to_c) | (d & ~to_c & ~to_0)) & cm[k];
        nr[k] += restart & 1;
        nw[k] += wrap & 1;
        rbits |= restart & bit[k];
        wbits |= wrap & bit[k];
    }
    if (rbits | wbits) {
        if (*nev < nevents) {
            events[3 * *nev] = (int64_t)g;
            events[3 * *nev + 1] = (int64_t)rbits;
            events[3 * *nev + 2] = (int64_t)wbits;
        }
        ++*nev;
        *nrev += rbits != 0;
    }
}

/* The increases of rows [i0, i1) of the chunk, all in the bin row `bin`. */
IPS_FORCE_INLINE void ips_stats_pairs_t(ips_stats_args *a, size_t i0, size_t i1, uint64_t *bin, const int vec)
{
    uint64_t *acc = a->acc;
    const unsigned char *cur = a->cur, *prev = a->prev;
    const size_t stride = a->stride, nprev = a->nprev, nevents = a->nevents;
    int64_t *events = a->events;
    uint64_t plo[IPS_NFIELDS], phi[IPS_NFIELDS], nr[IPS_NFIELDS], nw[IPS_NFIELDS], cm[IPS_PAD];
    uint8_t cols[IPS_NFIELDS];
    int ncols = ips_stats_columns(a->counter, cols);
    const ips_stats_policy pol = {a->policy == IPS_RESET ? ~(uint64_t)0 : 0, a->policy == IPS_AUTO ? ~(uint64_t)0 : 0,
                                  a->policy == IPS_ZERO ? ~(uint64_t)0 : 0};
    uint64_t pending = acc[IPS_ST_PENDING], nev = acc[IPS_ST_EVENTS], nrev = acc[IPS_ST_RESTART_EVENTS];
    uint64_t rows = 0, closed = 0;
    uint64_t g = a->start + i0, poll = g / stride, pos = g % stride;   /* no division per row */
    uint64_t first_poll = (uint64_t)(bin - a->bins) / IPS_SB_WIDTH * a->width;   /* of this bin */
    uint64_t clo[IPS_PAD], chi[IPS_PAD], klo[IPS_PAD], khi[IPS_PAD];
    for (int k = IPS_NFIELDS; k < IPS_PAD; k++)   /* the vector path's padding lanes */
        cm[k] = clo[k] = chi[k] = klo[k] = khi[k] = 0;
    for (int k = 0; k < IPS_NFIELDS; k++) {
        plo[k] = acc[IPS_ST_PLO + k]; phi[k] = acc[IPS_ST_PHI + k]; nr[k] = 0; nw[k] = 0;
        cm[k] = a->counter[k] ? ~(uint64_t)0 : 0;
        clo[k] = bin[IPS_SB_CLO + k]; chi[k] = bin[IPS_SB_CHI + k];
        klo[k] = bin[IPS_SB_PLO + k]; khi[k] = bin[IPS_SB_PHI + k];
    }
    if (stride == 1 && !vec) {   /* every row its own poll: closed at once, but the run's last, which stays pending */
        for (size_t i = i0; i < i1; i++, g++) {
            const unsigned char *c = cur + i * IPS_ROW_BYTES;
            const unsigned char *p = i >= 1 ? c - IPS_ROW_BYTES : (nprev ? prev : NULL);
            if (!p)
                continue;
            if (pending) {   /* a poll left pending by the previous run or call */
                if (pending > first_poll) {
                    ips_stats_close_local(clo, chi, klo, khi, plo, phi);
                    closed++;
                } else {
                    ips_stats_close(a->bins + (pending - 1) / a->width * IPS_SB_WIDTH, plo, phi, cols, ncols);
                }
                pending = 0;
            }
            uint64_t o[IPS_NFIELDS];
            ips_stats_row(p, c, cm, pol, o, nr, nw, g, events, nevents, &nev, &nrev);
            rows++;
            if (i + 1 < i1) {   /* one row's sums fit 64 bits: a 64-bit peak compare */
                for (int k = 0; k < IPS_NFIELDS; k++) {
                    uint64_t s = clo[k] + o[k];
                    chi[k] += s < o[k];
                    clo[k] = s;
                    uint64_t above = (uint64_t)0 - (uint64_t)((khi[k] == 0) & (o[k] > klo[k]));
                    klo[k] = (o[k] & above) | (klo[k] & ~above);
                }
                closed++;
            } else {
                for (int k = 0; k < IPS_NFIELDS; k++) {
                    plo[k] = o[k]; phi[k] = 0;
                }
                pending = g + 1;
            }
        }
        i1 = i0;   /* done: skip the general loop */
    }
    for (size_t i = i0; i < i1; i++, g++) {
#if IPS_HAVE_AVX2_PATH
        if (vec && pos == 0 && i >= stride && i + stride <= i1) {   /* whole polls, no fall: vectors */
            if (pending > first_poll) {
                ips_stats_close_local(clo, chi, klo, khi, plo, phi);
                closed++;
            } else if (pending) {
                ips_stats_close(a->bins + (pending - 1) / a->width * IPS_SB_WIDTH, plo, phi, cols, ncols);
            }
            if (pending) {
                for (int k = 0; k < IPS_NFIELDS; k++) {
                    plo[k] = 0; phi[k] = 0;
                }
                pending = 0;
            }
            size_t taken = ips_stats_polls_avx2(cur, i, i1, stride, cm, clo, chi, klo, khi);
            closed += taken / stride;
            rows += taken;
            i += taken;
            g += taken;
            poll += taken / stride;
            if (i == i1)
                break;
        }
#endif
        const unsigned char *c = cur + i * IPS_ROW_BYTES, *p;
        if (i >= stride) p = c - stride * IPS_ROW_BYTES;
        else if (nprev) p = prev + i * IPS_ROW_BYTES;
        else p = NULL;
        if (p) {
            if (pending != poll + 1) {
                if (pending > first_poll) {   /* pending - 1 is a poll of this bin */
                    ips_stats_close_local(clo, chi, klo, khi, plo, phi);
                    closed++;
                } else if (pending) {
                    ips_stats_close(a->bins + (pending - 1) / a->width * IPS_SB_WIDTH, plo, phi, cols, ncols);
                }
                pending = poll + 1;
                for (int k = 0; k < IPS_NFIELDS; k++) {
                    plo[k] = 0; phi[k] = 0;
                }
            }
            uint64_t fell = 0;   /* the common row: no counter fell, each increase is cv - pv */
            for (int k = 0; k < IPS_NFIELDS; k++)
                fell |= ((uint64_t)0 - (uint64_t)(ips_load_le64(c + 8 * k) < ips_load_le64(p + 8 * k))) & cm[k];
            if (!fell) {
                for (int k = 0; k < IPS_NFIELDS; k++) {
                    uint64_t out = (ips_load_le64(c + 8 * k) - ips_load_le64(p + 8 * k)) & cm[k];
                    uint64_t s = plo[k] + out;
                    phi[k] += s < out;
                    plo[k] = s;
                }
            } else {
                uint64_t o[IPS_NFIELDS];
                ips_stats_row(p, c, cm, pol, o, nr, nw, g, events, nevents, &nev, &nrev);
                for (int k = 0; k < IPS_NFIELDS; k++) {
                    uint64_t s = plo[k] + o[k];
                    phi[k] += s < o[k];
                    plo[k] = s;
                }
            }
            rows++;
        }
        if (++pos == stride) {
            pos = 0;
            poll++;
        }
    }
    for (int k = 0; k < IPS_NFIELDS; k++) {
        acc[IPS_ST_PLO + k] = plo[k]; acc[IPS_ST_PHI + k] = phi[k];
        acc[IPS_ST_RESTARTS + k] += nr[k]; acc[IPS_ST_WRAPS + k] += nw[k];
        bin[IPS_SB_CLO + k] = clo[k]; bin[IPS_SB_CHI + k] = chi[k];
        bin[IPS_SB_PLO + k] = klo[k]; bin[IPS_SB_PHI + k] = khi[k];
    }
    bin[IPS_SB_POLLS] += closed;
    acc[IPS_ST_PENDING] = pending;
    acc[IPS_ST_EVENTS] = nev;
    acc[IPS_ST_RESTART_EVENTS] = nrev;
    acc[IPS_ST_ROWS] += rows;
}

static void ips_stats_records_portable(const unsigned char *cur, size_t n, uint64_t *bin)
{
    ips_stats_records_t(cur, n, bin);
}

static void ips_stats_pairs_portable(ips_stats_args *a, size_t i0, size_t i1, uint64_t *bin)
{
    ips_stats_pairs_t(a, i0, i1, bin, 0);
}

#if IPS_HAVE_SSE42_PATH
IPS_SSE42 static void ips_stats_records_sse42(const unsigned char *cur, size_t n, uint64_t *bin)
{
    ips_stats_records_t(cur, n, bin);
}

IPS_SSE42 static void ips_stats_pairs_sse42(ips_stats_args *a, size_t i0, size_t i1, uint64_t *bin)
{
    ips_stats_pairs_t(a, i0, i1, bin, 0);
}
#endif

#if IPS_HAVE_AVX2_PATH
IPS_TARGET("avx2") static void ips_stats_records_avx2(const unsigned char *cur, size_t n, uint64_t *bin)
{
    ips_stats_records_t(cur, n, bin);
}

IPS_TARGET("avx2") static void ips_stats_pairs_avx2(ips_stats_args *a, size_t i0, size_t i1,
                                                  uint64_t *bin)
{
    ips_stats_pairs_t(a, i0, i1, bin, 1);
}
#endif

static void ips_stats_run(ips_stats_args *a, int path)
{
    size_t i = 0;
    while (i < a->n) {
        uint64_t b = (a->start + i) / a->stride / a->width;
        uint64_t end_g = (b + 1) * a->width * a->stride;   /* first record of the next bin */
        size_t i1 = end_g - a->start < a->n ? (size_t)(end_g - a->start) : a->n;
        if (i1 - i > IPS_STATS_BLOCK)   /* both loops read the rows while they are in L1/L2 */
            i1 = i + IPS_STATS_BLOCK;
        uint64_t *bin = a->bins + b * IPS_SB_WIDTH;
#if IPS_HAVE_AVX2_PATH
        if (path >= IPS_PATH_AVX2) {
            if (a->parts & IPS_STATS_RECORDS)
                ips_stats_records_avx2(a->cur + i * IPS_ROW_BYTES, i1 - i, bin);
            if (a->parts & IPS_STATS_PAIRS)
                ips_stats_pairs_avx2(a, i, i1, bin);
        } else
#endif
#if IPS_HAVE_SSE42_PATH
        if (path == IPS_PATH_SSE42) {
            if (a->parts & IPS_STATS_RECORDS)
                ips_stats_records_sse42(a->cur + i * IPS_ROW_BYTES, i1 - i, bin);
            if (a->parts & IPS_STATS_PAIRS)
                ips_stats_pairs_sse42(a, i, i1, bin);
        } else
#endif
        {
            if (a->parts & IPS_STATS_RECORDS)
                ips_stats_records_portable(a->cur + i * IPS_ROW_BYTES, i1 - i, bin);
            if (a->parts & IPS_STATS_PAIRS)
                ips_stats_pairs_portable(a, i, i1, bin);
        }
        i = i1;
    }
    if (a->final && (a->parts & IPS_STATS_PAIRS))
        ips_stats_flush(a);
}

/* ==================================================================================
 * Instance-keyed deltas (keyed_delta_rows). Record i (row cur + i * stride, instance
 * codes[i]) pairs with the previous record of the same instance: an earlier record of
 * this chunk, or the state row of that instance (the last record of an earlier chunk,
 * when state_seen), or nothing. A paired record gives output row m (in the order of the
 * later records) with the arithmetic of ips_delta_items, and
 *
 *     later[m] = i,  earlier[m] = index of the earlier record, or -1 (the state row),
 *     earlier_ticks[m] = its timestamp (if ticks != NULL).
 *
 * One pass; per instance only an index is kept (`last`: IPS_KEY_NONE, IPS_KEY_STATE or
 * the index of its last record), and the state is written back once at the end
 * (ips_keyed_commit), so no record is copied during the pass. Every code is checked
 * against nstates before it indexes anything: the first one out of range stops the
 * pass (its index is returned) and the state is then left alone.
 * ================================================================================== */

#define IPS_KEY_NONE ((ptrdiff_t)-2)
#define IPS_KEY_STATE ((ptrdiff_t)-1)
#define IPS_NAT INT64_MIN

/* last[k] for the pass: the state row when instance k has one, else none. */
static inline void ips_keyed_init(ptrdiff_t *last, const uint8_t *state_seen, size_t nstates)
{
    for (size_t k = 0; k < nstates; k++) last[k] = state_seen[k] ? IPS_KEY_STATE : IPS_KEY_NONE;
}

/* After a whole pass: the last record of every instance seen in the chunk becomes its state.
 * memmove: harmless even if a caller passed rows that alias the state. */
static inline void ips_keyed_commit(const unsigned char *cur, ptrdiff_t stride, const int64_t *ticks,
                                    const ptrdiff_t *last, size_t nstates, unsigned char *state_rows,
                                    int64_t *state_ticks, uint8_t *state_seen)
{
    for (size_t k = 0; k < nstates; k++) {
        ptrdiff_t i = last[k];
        if (i < 0) continue;
        memmove(state_rows + k * IPS_ROW_BYTES, cur + i * stride, IPS_ROW_BYTES);
        state_ticks[k] = ticks ? ticks[i] : IPS_NAT;
        state_seen[k] = 1;
    }
}

/* Arguments of one keyed pass; m and ndec accumulate, bad is -1 or the first bad index. */
typedef struct {
    const unsigned char *cur;
    ptrdiff_t stride;
    size_t n;
    const ptrdiff_t *codes;
    const int64_t *ticks;            /* n, or NULL */
    const unsigned char *state_rows; /* nstates rows of 168 bytes */
    const int64_t *state_ticks;
    size_t nstates;
    ptrdiff_t *last;                 /* nstates, from ips_keyed_init */
    unsigned char *out;              /* n rows of 168 bytes */
    uint8_t *mask;                   /* n rows of 21, or NULL */
    ptrdiff_t *earlier;
    ptrdiff_t *later;
    int64_t *earlier_ticks;          /* n, or NULL; set only together with ticks */
    const uint64_t *counter;         /* 21 lanes: all ones where the item is a counter */
    int policy;
    size_t m;
    uint64_t ndec;
    ptrdiff_t bad;
} ips_keyed_args;

/* The pairing step of record i: the earlier row, or NULL (no pair, or a bad code). */
IPS_FORCE_INLINE const unsigned char *ips_keyed_pair(ips_keyed_args *a, size_t i)
{
    const ptrdiff_t code = a->codes[i];
    if ((size_t)code >= a->nstates) {  /* negative codes too */
        a->bad = (ptrdiff_t)i;
        return NULL;
    }
    const ptrdiff_t e = a->last[code];
    a->last[code] = (ptrdiff_t)i;
    if (e == IPS_KEY_NONE) return NULL;
    /* regular stores: 8-byte non-temporal ones (movnti) measured slower here */
    a->earlier[a->m] = e;
    a->later[a->m] = (ptrdiff_t)i;
    if (a->earlier_ticks) a->earlier_ticks[a->m] = e >= 0 ? a->ticks[e] : a->state_ticks[code];
    return e >= 0 ? a->cur + e * a->stride : a->state_rows + (size_t)code * IPS_ROW_BYTES;
}

/* A function of its own: inlined into the caller's loop it ran 1.2x slower (measured). */
IPS_NOINLINE static void ips_keyed_portable(ips_keyed_args *a)
{
    for (size_t i = 0; i < a->n; i++) {
        const unsigned char *p = ips_keyed_pair(a, i);
        if (a->bad >= 0) return;
        if (!p) continue;
        a->ndec += ips_delta_items(p, a->cur + (ptrdiff_t)i * a->stride, a->out + a->m * IPS_ROW_BYTES,
                                   a->mask ? a->mask + a->m * IPS_NFIELDS : NULL, 0, IPS_NFIELDS,
                                   a->policy, a->counter);
        a->m++;
    }
}

#if IPS_HAVE_AVX2_PATH
#define IPS_KEY_STAGE 32  /* rows staged for streaming: 32 x 168 and 32 x 21 bytes, both x 32 */

/* Items 0..19 of a row as 5 vectors, item 20 by ips_delta_items; the ips_delta_blocks
 * arithmetic. Outputs rows go through an L1 staging area when streaming: a compacted row
 * is 168 bytes (not a multiple of 32), 32 rows are, so they leave in aligned
 * non-temporal stores that skip the read-for-ownership of every output line. */
IPS_FORCE_INLINE IPS_TARGET("avx2")
void ips_keyed_avx2_t(ips_keyed_args *a, const int policy, const int streaming, const int want_mask)
{
    static const uint32_t bytes_of_bits[16] = {
        0x00000000, 0x00000001, 0x00000100, 0x00000101, 0x00010000, 0x00010001, 0x00010100, 0x00010101,
        0x01000000, 0x01000001, 0x01000100, 0x01000101, 0x01010000, 0x01010001, 0x01010100, 0x01010101};
    IPS_ALIGN32 unsigned char staged[IPS_KEY_STAGE * IPS_ROW_BYTES];
    IPS_ALIGN32 uint8_t staged_mask[IPS_KEY_STAGE * IPS_NFIELDS];
    const __m256i sign = _mm256_set1_epi64x((long long)0x8000000000000000ULL);
    __m256i lanes[5];
    for (int v = 0; v < 5; v++) lanes[v] = _mm256_loadu_si256((const __m256i *)(a->counter + 4 * v));
    __m256i acc = _mm256_setzero_si256();
    uint64_t ndec = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (streaming) {  /* hint ahead, as ips_delta_blocks does; a prefetch never faults */
            _mm_prefetch((const char *)(a->cur + (ptrdiff_t)(i + 12) * a->stride), _MM_HINT_T0);
            _mm_prefetch((const char *)(a->cur + (ptrdiff_t)(i + 12) * a->stride + 64), _MM_HINT_T0);
            _mm_prefetch((const char *)(a->cur + (ptrdiff_t)(i + 12) * a->stride + 128), _MM_HINT_T0);
        }
        const unsigned char *p = ips_keyed_pair(a, i);
        if (a->bad >= 0) break;
        if (!p) continue;
        const unsigned char *c = a->cur + (ptrdiff_t)i * a->stride;
        const size_t slot = a->m % IPS_KEY_STAGE;
        unsigned char *dst = streaming ? staged + slot * IPS_ROW_BYTES : a->out + a->m * IPS_ROW_BYTES;
        uint8_t *mdst = !want_mask ? NULL
                      : streaming ? staged_mask + slot * IPS_NFIELDS : a->mask + a->m * IPS_NFIELDS;
        for (int v = 0; v < 5; v++) {
            __m256i pv = _mm256_loadu_si256((const __m256i *)(p + 32 * v));
            __m256i cv = _mm256_loadu_si256((const __m256i *)(c + 32 * v));
            __m256i d = _mm256_sub_epi64(cv, pv);
            __m256i lt = _mm256_cmpgt_epi64(_mm256_xor_si256(pv, sign), _mm256_xor_si256(cv, sign));
            __m256i dec = _mm256_and_si256(lt, lanes[v]);
            __m256i r;
            if (policy == IPS_RESET) {
                r = _mm256_blendv_epi8(d, cv, dec);
            } else if (policy == IPS_AUTO) {
                __m256i big = _mm256_cmpgt_epi64(_mm256_xor_si256(d, sign), _mm256_setzero_si256());
                r = _mm256_blendv_epi8(d, cv, _mm256_and_si256(dec, big));
            } else if (policy == IPS_ZERO) {
                r = _mm256_andnot_si256(dec, d);
            } else {
                r = d;
            }
            _mm256_storeu_si256((__m256i *)(dst + 32 * v), r);
            if (want_mask) {
                uint32_t bytes = bytes_of_bits[_mm256_movemask_pd(_mm256_castsi256_pd(dec))];
                memcpy(mdst + 4 * v, &bytes, 4);
            }
            acc = _mm256_sub_epi64(acc, dec);
        }
        ndec += ips_delta_items(p, c, dst, mdst, IPS_NFIELDS - 1, IPS_NFIELDS, policy, a->counter);
        a->m++;
        if (streaming && slot == IPS_KEY_STAGE - 1) {
            unsigned char *o = a->out + (a->m - IPS_KEY_STAGE) * IPS_ROW_BYTES;
            for (int q = 0; q < IPS_KEY_STAGE * IPS_ROW_BYTES; q += 32) {
                ips_stream_32(o + q, _mm256_load_si256((const __m256i *)(staged + q)), streaming);
            }
            if (want_mask) {
                uint8_t *mo = a->mask + (a->m - IPS_KEY_STAGE) * IPS_NFIELDS;
                for (int q = 0; q < IPS_KEY_STAGE * IPS_NFIELDS; q += 32) {
                    ips_stream_32(mo + q, _mm256_load_si256((const __m256i *)(staged_mask + q)), streaming);
                }
            }
        }
    }
    if (streaming) {
        const size_t rest = a->m % IPS_KEY_STAGE;
        memcpy(a->out + (a->m - rest) * IPS_ROW_BYTES, staged, rest * IPS_ROW_BYTES);
        if (want_mask) memcpy(a->mask + (a->m - rest) * IPS_NFIELDS, staged_mask, rest * IPS_NFIELDS);
        _mm_sfence();
    }
    uint64_t lanes_sum[4];
    _mm256_storeu_si256((__m256i *)lanes_sum, acc);
    a->ndec += ndec + lanes_sum[0] + lanes_sum[1] + lanes_sum[2] + lanes_sum[3];
}

/* One specialised copy of the loop per (policy, streaming, mask) combination. */
IPS_TARGET("avx2")
static void ips_keyed_avx2(ips_keyed_args *a, int streaming)
{
#define IPS_KCASE(POL)                                                                           \
    case POL:                                                                                    \
        if (streaming == 1) {                                                                    \
            if (a->mask) ips_keyed_avx2_t(a, POL, 1, 1); else ips_keyed_avx2_t(a, POL, 1, 0);    \
        } else if (streaming == 2) {                                                             \
            if (a->mask) ips_keyed_avx2_t(a, POL, 2, 1); else ips_keyed_avx2_t(a, POL, 2, 0);    \
        } else {                                                                                 \
            if (a->mask) ips_keyed_avx2_t(a, POL, 0, 1); else ips_keyed_avx2_t(a, POL, 0, 0);    \
        }                                                                                        \
        return;
    switch (a->policy) {
        IPS_KCASE(IPS_RESET)
        IPS_KCASE(IPS_ZERO)
        IPS_KCASE(IPS_AUTO)
        default:
        IPS_KCASE(IPS_WRAP)
    }
#undef IPS_KCASE
}
#endif

/* The whole keyed pass (after ips_keyed_init). streaming / path as in ips_delta_run. */
static inline void ips_keyed_run(ips_keyed_args *a, int streaming, int path)
{
    a->m = 0;
    a->ndec = 0;
    a->bad = -1;
#if IPS_HAVE_AVX2_PATH
    if (path >= IPS_PATH_AVX2) {
        uintptr_t misalign = ((uintptr_t)a->out | (uintptr_t)a->mask) & 31;
        streaming = !streaming ? 0 : misalign == 0 ? 1 : (misalign & 15) == 0 ? 2 : 0;
        ips_keyed_avx2(a, streaming);
        return;
    }
#endif
    (void)streaming;
    (void)path;
    ips_keyed_portable(a);
}

/* ==================================================================================
 * Rates in the vector unit, and deltas fused with rates (cache-sized blocks).
 *
 * uint64 -> float64, exact then rounded once: with v = hi * 2^32 + lo (32-bit halves),
 * the doubles with bits 0x4330000000000000 | lo and 0x4530000000000000 | hi are
 * 2^52 + lo and 2^84 + hi * 2^32 exactly; subtracting 2^52 and 2^84 leaves lo and
 * hi * 2^32 exactly, and only their sum rounds (to nearest, ties to even): the correctly
 * rounded double of v, bit for bit the C cast that numpy uses. One IEEE division follows.
 */
#if IPS_HAVE_AVX2_PATH
IPS_FORCE_INLINE IPS_TARGET("avx2") __m256d ips_u64_to_f64_avx2(__m256i v)
{
    const __m256i lo_exp = _mm256_set1_epi64x(0x4330000000000000LL);
    const __m256i hi_exp = _mm256_set1_epi64x(0x4530000000000000LL);
    __m256i lo = _mm256_blend_epi32(v, lo_exp, 0xAA);  /* low half of v, high half 0x43300000 */
    __m256i hi = _mm256_or_si256(_mm256_srli_epi64(v, 32), hi_exp);
    __m256d lo_d = _mm256_sub_pd(_mm256_castsi256_pd(lo), _mm256_set1_pd(4503599627370496.0));
    __m256d hi_d = _mm256_sub_pd(_mm256_castsi256_pd(hi), _mm256_set1_pd(19342813113834066795298816.0));
    return _mm256_add_pd(hi_d, lo_d);
}

#define IPS_RATE_MAX_GROUPS 64

/* Groups of 4 output columns: one load where the 4 source columns are consecutive,
 * else a gather; the ncols % 4 last columns one at a time. streaming: out is 32-byte
 * aligned and ncols % 4 == 0, stores are non-temporal. */
IPS_TARGET("avx2")
static void ips_rates_avx2(const uint64_t *values, const uint8_t *cols, int ncols, const double *seconds,
                           size_t seconds_step, double *out, size_t nrows, int streaming)
{
    const int ngroups = ncols / 4;
    __m256i index[IPS_RATE_MAX_GROUPS];
    int first[IPS_RATE_MAX_GROUPS];
    for (int g = 0; g < ngroups; g++) {
        const uint8_t *q = cols + 4 * g;
        first[g] = (q[1] == q[0] + 1 && q[2] == q[0] + 2 && q[3] == q[0] + 3) ? q[0] : -1;
        index[g] = _mm256_set_epi64x(q[3], q[2], q[1], q[0]);
    }
    for (size_t i = 0; i < nrows; i++) {
        const uint64_t *row = values + i * IPS_NFIELDS;
        double *dst = out + i * (size_t)ncols;
        const double s = seconds[i * seconds_step];
        const __m256d sv = _mm256_set1_pd(s);
        for (int g = 0; g < ngroups; g++) {
            __m256i v = first[g] >= 0 ? _mm256_loadu_si256((const __m256i *)(row + first[g]))
                                      : _mm256_i64gather_epi64((const long long *)row, index[g], 8);
            __m256d r = _mm256_div_pd(ips_u64_to_f64_avx2(v), sv);
            if (streaming) {
                _mm256_stream_pd(dst + 4 * g, r);
            } else {
                _mm256_storeu_pd(dst + 4 * g, r);
            }
        }
        for (int j = 4 * ngroups; j < ncols; j++) {
            dst[j] = (double)row[cols[j]] / s;
        }
    }
}
#endif

/* ips_rates_run, in the vector unit where the CPU allows (path, as in ips_delta_run). */
static inline void ips_rates_dispatch(const uint64_t *values, const uint8_t *cols, int ncols,
                                      const double *seconds, size_t seconds_step, double *out, size_t nrows,
                                      int streaming, int path)
{
#if IPS_HAVE_AVX2_PATH
    if (path >= IPS_PATH_AVX2 && ncols / 4 <= IPS_RATE_MAX_GROUPS) {
        streaming = streaming && ncols % 4 == 0 && ((uintptr_t)out & 31) == 0;
        ips_rates_avx2(values, cols, ncols, seconds, seconds_step, out, nrows, streaming);
        if (streaming) _mm_sfence();
        return;
    }
#endif
    (void)streaming;
    (void)path;
    ips_rates_run(values, cols, ncols, seconds, seconds_step, out, nrows);
}

/* One item's delta under the policy (the arithmetic of ips_delta_items), native order. */
static inline uint64_t ips_delta_one(uint64_t pv, uint64_t cv, int policy, uint64_t counter)
{
    uint64_t d = cv - pv;
    int dec = counter && cv < pv;
    if (!dec || policy == IPS_WRAP) return d;
    if (policy == IPS_ZERO) return 0;
    if (policy == IPS_AUTO && d <= 0x8000000000000000ULL) return d;
    return cv;
}

#if IPS_HAVE_AVX2_PATH
/* Deltas and rates straight from the records, in registers: only the output columns are
 * read, no deltas are stored. The policy is the compare-and-blend of the delta kernel. */
IPS_FORCE_INLINE IPS_TARGET("avx2")
void ips_delta_rates_avx2_t(const unsigned char *p, const unsigned char *c, size_t nrows,
                            const int policy, const uint64_t *counter, const uint8_t *cols,
                            int ncols, const double *seconds, size_t seconds_step, double *out,
                            const int streaming)
{
    const __m256i sign = _mm256_set1_epi64x((long long)0x8000000000000000ULL);
    const int ngroups = ncols / 4;
    __m256i index[IPS_RATE_MAX_GROUPS], lanes[IPS_RATE_MAX_GROUPS];
    int first[IPS_RATE_MAX_GROUPS], last[IPS_RATE_MAX_GROUPS], mode[IPS_RATE_MAX_GROUPS];
    for (int g = 0; g < ngroups; g++) {
        const uint8_t *q = cols + 4 * g;
        /* mode 0: 4 consecutive columns, one load; 1: 3 consecutive (the 4th item of that load
         * still inside the row) and one more, a load and a broadcast; 2: a gather */
        int run3 = q[1] == q[0] + 1 && q[2] == q[0] + 2;
        mode[g] = run3 && q[3] == q[0] + 3 ? 0 : run3 && q[0] + 3 < IPS_NFIELDS ? 1 : 2;
        first[g] = q[0];
        last[g] = q[3];
        index[g] = _mm256_set_epi64x(q[3], q[2], q[1], q[0]);
        lanes[g] = _mm256_set_epi64x((long long)counter[q[3]], (long long)counter[q[2]],
                                     (long long)counter[q[1]], (long long)counter[q[0]]);
    }
    for (size_t i = 0; i < nrows; i++) {
        const unsigned char *prow = p + i * IPS_ROW_BYTES, *crow = c + i * IPS_ROW_BYTES;
        double *dst = out + i * (size_t)ncols;
        const double s = seconds[i * seconds_step];
        const __m256d sv = _mm256_set1_pd(s);
        for (int g = 0; g < ngroups; g++) {
            __m256i pv, cv;
            if (mode[g] == 0) {
                pv = _mm256_loadu_si256((const __m256i *)(prow + 8 * first[g]));
                cv = _mm256_loadu_si256((const __m256i *)(crow + 8 * first[g]));
            } else if (mode[g] == 1) {
                pv = _mm256_blend_epi32(_mm256_loadu_si256((const __m256i *)(prow + 8 * first[g])),
                                        _mm256_set1_epi64x((long long)ips_load_le64(prow + 8 * last[g])), 0xC0);
                cv = _mm256_blend_epi32(_mm256_loadu_si256((const __m256i *)(crow + 8 * first[g])),
                                        _mm256_set1_epi64x((long long)ips_load_le64(crow + 8 * last[g])), 0xC0);
            } else {
                pv = _mm256_i64gather_epi64((const long long *)prow, index[g], 8);
                cv = _mm256_i64gather_epi64((const long long *)crow, index[g], 8);
            }
            __m256i d = _mm256_sub_epi64(cv, pv);
            __m256i r = d;
            if (policy != IPS_WRAP) {
                __m256i lt = _mm256_cmpgt_epi64(_mm256_xor_si256(pv, sign), _mm256_xor_si256(cv, sign));
                __m256i dec = _mm256_and_si256(lt, lanes[g]);
                if (policy == IPS_RESET) {
                    r = _mm256_blendv_epi8(d, cv, dec);
                } else if (policy == IPS_AUTO) {
                    __m256i big = _mm256_cmpgt_epi64(_mm256_xor_si256(d, sign), _mm256_setzero_si256());
                    r = _mm256_blendv_epi8(d, cv, _mm256_and_si256(dec, big));
                } else {
                    r = _mm256_andnot_si256(dec, d);
                }
            }
            __m256d q = _mm256_div_pd(ips_u64_to_f64_avx2(r), sv);
            if (streaming) {
                _mm256_stream_pd(dst + 4 * g, q);
            } else {
                _mm256_storeu_pd(dst + 4 * g, q);
            }
        }
        for (int j = 4 * ngroups; j < ncols; j++) {
            uint64_t v = ips_delta_one(ips_load_le64(prow + 8 * cols[j]), ips_load_le64(crow + 8 * cols[j]),
                                       policy, counter[cols[j]]);
            dst[j] = (double)v / s;
        }
    }
}

IPS_TARGET("avx2")
static void ips_delta_rates_avx2(const unsigned char *p, const unsigned char *c, size_t nrows, int policy,
                                 const uint64_t *counter, const uint8_t *cols, int ncols, const double *seconds,
                                 size_t seconds_step, double *out, int streaming)
{
#define IPS_RCASE(POL)                                                                                   \
    case POL:                                                                                            \
        if (streaming) {                                                                                 \
            ips_delta_rates_avx2_t(p, c, nrows, POL, counter, cols, ncols, seconds, seconds_step, out, 1); \
        } else {                                                                                         \
            ips_delta_rates_avx2_t(p, c, nrows, POL, counter, cols, ncols, seconds, seconds_step, out, 0); \
        }                                                                                                \
        return;
    switch (policy) {
        IPS_RCASE(IPS_RESET)
        IPS_RCASE(IPS_ZERO)
        IPS_RCASE(IPS_AUTO)
        default:
        IPS_RCASE(IPS_WRAP)
    }
#undef IPS_RCASE
}
#endif

/* Deltas and rates in one pass, out[i, j] = policy(c[i] - p[i])[cols[j]] / seconds[i]:
 * AVX2 straight from the records; else blocks of scratch_rows rows of deltas
 * (ips_delta_run, no mask) land in scratch (scratch_rows * 21 uint64, small enough to
 * stay in cache), then go through the rates loop; both on the path's copy. */
static inline void ips_delta_rates_run(const unsigned char *p, const unsigned char *c, size_t nrows,
                                           int policy, const uint64_t *counter, const uint8_t *cols, int ncols,
                                           const double *seconds, size_t seconds_step, double *out,
                                           uint64_t *scratch, size_t scratch_rows, int streaming, int path)
{
#if IPS_HAVE_AVX2_PATH
    if (path >= IPS_PATH_AVX2 && ncols / 4 <= IPS_RATE_MAX_GROUPS) {
        streaming = streaming && ncols % 4 == 0 && ((uintptr_t)out & 31) == 0;
        ips_delta_rates_avx2(p, c, nrows, policy, counter, cols, ncols, seconds, seconds_step, out, streaming);
        if (streaming) _mm_sfence();
        return;
    }
#endif
    for (size_t i = 0; i < nrows; i += scratch_rows) {
        size_t b = nrows - i < scratch_rows ? nrows - i : scratch_rows;
        ips_delta_run(p + i * IPS_ROW_BYTES, c + i * IPS_ROW_BYTES, (unsigned char *)scratch, NULL, b,
                      policy, counter, 0, path);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        for (size_t k = 0; k < b * IPS_NFIELDS; k++) scratch[k] = IPS_LE64(scratch[k]);
#endif
        if (ncols) {
            ips_rates_dispatch(scratch, cols, ncols, seconds + i * seconds_step, seconds_step,
                               out + i * (size_t)ncols, b, 0, path);
        }
    }
}

/* ==================================================================================
 * Decimal text of integers, for the CSV and JSON Lines writers: what Python's str(int)
 * gives, two digits at a time from a table. dst needs 20 bytes (21 for a signed value).
 */
static const char ips_digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static inline size_t ips_u64_text(uint64_t v, char *dst)
{
    char tmp[20];
    char *q = tmp + 20;
    while (v >= 100) {
        const unsigned r = (unsigned)(v % 100);
        v /= 100;
        q -= 2;
        memcpy(q, ips_digit_pairs + 2 * r, 2);
    }
    if (v >= 10) {
        q -= 2;
        memcpy(q, ips_digit_pairs + 2 * v, 2);
    } else {
        *--q = (char)('0' + v);
    }
    const size_t n = (size_t)(tmp + 20 - q);
    memcpy(dst, q, n);
    return n;
}

static inline size_t ips_i64_text(int64_t v, char *dst)
{
    if (v >= 0) return ips_u64_text((uint64_t)v, dst);
    dst[0] = '-';
    return 1 + ips_u64_text(0 - (uint64_t)v, dst + 1);  /* -2**63 too: its magnitude as uint64 */
}

/* ISO 8601 UTC text of nanoseconds since the epoch, as numpy's datetime_as_string(...,
 * timezone="UTC") writes a datetime64[ns] in years 1000..9999: "YYYY-MM-DDTHH:MM:SS" then
 * "." and frac_digits (3, 6 or 9) digits of the second when frac_digits > 0, then "Z".
 * Days to a civil date: H. Hinnant's days_from_civil, inverted. dst needs 30 bytes. */
static inline void ips_two_digits(char *dst, unsigned v) { memcpy(dst, ips_digit_pairs + 2 * v, 2); }

static inline size_t ips_time_text(int64_t ns, int frac_digits, char *dst)
{
    int64_t secs = ns / 1000000000, rem = ns % 1000000000;
    if (rem < 0) { rem += 1000000000; secs -= 1; }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) { sod += 86400; days -= 1; }
    const int64_t z = days + 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned day = doy - (153 * mp + 2) / 5 + 1;
    const unsigned month = mp < 10 ? mp + 3 : mp - 9;
    const int64_t year = (int64_t)yoe + era * 400 + (month <= 2);
    ips_two_digits(dst, (unsigned)(year / 100));
    ips_two_digits(dst + 2, (unsigned)(year % 100));
    dst[4] = '-';
    ips_two_digits(dst + 5, month);
    dst[7] = '-';
    ips_two_digits(dst + 8, day);
    dst[10] = 'T';
    ips_two_digits(dst + 11, (unsigned)(sod / 3600));
    dst[13] = ':';
    ips_two_digits(dst + 14, (unsigned)(sod / 60 % 60));
    dst[16] = ':';
    ips_two_digits(dst + 17, (unsigned)(sod % 60));
    size_t n = 19;
    if (frac_digits > 0) {
        char digits[9];
        uint64_t r = (uint64_t)rem;
        for (int q = 8; q >= 0; q--) { digits[q] = (char)('0' + r % 10); r /= 10; }
        dst[n++] = '.';
        memcpy(dst + n, digits, (size_t)frac_digits);
        n += (size_t)frac_digits;
    }
    dst[n++] = 'Z';
    return n;
}

#endif
