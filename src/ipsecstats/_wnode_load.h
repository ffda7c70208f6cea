/* Bounds-aware little-endian loads for the WNODE walker in _fast.pyx.
 *
 * Every load takes the buffer b[0:n] and an offset o that the walker has already
 * checked; built with IPSECSTATS_DEBUG_BOUNDS (IPSECSTATS_DEBUG_BUILD=1), every load
 * re-checks its bounds and aborts, so a fuzzer finds any check the walker missed.
 */
#ifndef IPSECSTATS_WNODE_LOAD_H
#define IPSECSTATS_WNODE_LOAD_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef IPSECSTATS_DEBUG_BOUNDS
#define IPS_WN_CHECK(n, o, k) do { if ((o) < 0 || (o) > (n) || (n) - (o) < (int64_t)(k)) abort(); } while (0)
#else
#define IPS_WN_CHECK(n, o, k) ((void)0)
#endif
/* Little-endian loads at any alignment from b[0:n] at offset o. */
static inline int64_t ips_wn_u16(const uint8_t *b, int64_t n, int64_t o) {
    IPS_WN_CHECK(n, o, 2);
    return (int64_t)b[o] | ((int64_t)b[o + 1] << 8);
}
static inline int64_t ips_wn_u32(const uint8_t *b, int64_t n, int64_t o) {
    IPS_WN_CHECK(n, o, 4);
    return (int64_t)((uint32_t)b[o] | ((uint32_t)b[o + 1] << 8) |
                     ((uint32_t)b[o + 2] << 16) | ((uint32_t)b[o + 3] << 24));
}
static inline int64_t ips_wn_i64(const uint8_t *b, int64_t n, int64_t o) {
    uint64_t v = 0;
    IPS_WN_CHECK(n, o, 8);
    for (int k = 7; k >= 0; k--) v = (v << 8) | b[o + k];
    return (int64_t)v;
}
static inline void ips_wn_copy(uint8_t *dst, const uint8_t *b, int64_t n, int64_t o, int64_t k) {
    IPS_WN_CHECK(n, o, k);
    memcpy(dst, b + o, (size_t)k);
}
static inline int ips_wn_same(const uint8_t *b, int64_t n, int64_t o1, int64_t o2, int64_t k) {
    IPS_WN_CHECK(n, o1, k);
    IPS_WN_CHECK(n, o2, k);
    return memcmp(b + o1, b + o2, (size_t)k) == 0;
}
static inline int ips_wn_match(const uint8_t *b, int64_t n, int64_t o, const uint8_t *other, int64_t k) {
    IPS_WN_CHECK(n, o, k);
    return memcmp(b + o, other, (size_t)k) == 0;
}
/* The byte count of b[o:o+k] without its trailing NUL units (unit 1 or 2 bytes). */
static inline int64_t ips_wn_strip(const uint8_t *b, int64_t n, int64_t o, int64_t k, int64_t unit) {
    IPS_WN_CHECK(n, o, k);
    while (k >= unit && b[o + k - 1] == 0 && b[o + k - unit] == 0) k -= unit;
    return k;
}
/* SipHash-1-3 over b[o:o+k] keyed by (k0, k1): a fresh random key per walk, so crafted
 * names cannot be made to collide in the name table (the unkeyed FNV-1a could). */
#define IPS_WN_ROTL(x, r) (uint64_t)(((x) << (r)) | ((x) >> (64 - (r))))
#define IPS_WN_SIPROUND do { \
    v0 += v1; v1 = IPS_WN_ROTL(v1, 13); v1 ^= v0; v0 = IPS_WN_ROTL(v0, 32); \
    v2 += v3; v3 = IPS_WN_ROTL(v3, 16); v3 ^= v2; \
    v0 += v3; v3 = IPS_WN_ROTL(v3, 21); v3 ^= v0; \
    v2 += v1; v1 = IPS_WN_ROTL(v1, 17); v1 ^= v2; v2 = IPS_WN_ROTL(v2, 32); } while (0)
static inline uint64_t ips_wn_hash(const uint8_t *b, int64_t n, int64_t o, int64_t k, uint64_t k0, uint64_t k1) {
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t m, last = (uint64_t)k << 56;
    int64_t i = 0;
    IPS_WN_CHECK(n, o, k);
    for (; i + 8 <= k; i += 8) {
        memcpy(&m, b + o + i, 8);
        v3 ^= m; IPS_WN_SIPROUND; v0 ^= m;
    }
    for (int j = 0; i + j < k; j++) last |= (uint64_t)b[o + i + j] << (8 * j);
    v3 ^= last; IPS_WN_SIPROUND; v0 ^= last;
    v2 ^= 0xff; IPS_WN_SIPROUND; IPS_WN_SIPROUND; IPS_WN_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

#endif
