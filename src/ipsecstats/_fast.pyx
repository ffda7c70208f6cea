# cython: language_level=3, embedsignature=True, autotestdict=False
"""Compiled hot loop of ipsecstats; ``_slow`` is the pure-numpy twin with the same API.

Only the loop lives here (the arithmetic of one run is ``_kernel.h``). The caller
(``_deltas``) has validated dtypes and shapes already, but each entry point re-checks
the shapes it relies on, so no argument whatsoever makes the loop read or write out
of bounds.
"""

cimport cython
from cython cimport view
from libc.stdint cimport uint8_t, uint64_t

cdef extern from "_kernel.h" nogil:
    enum:
        IPS_WRAP
        IPS_RESET
        IPS_ZERO
        IPS_AUTO
    uint64_t ips_delta_run(const unsigned char *p, const unsigned char *c,
                           unsigned char *out, uint8_t *mask, size_t nrows,
                           int policy, const uint64_t *counter, int streaming, int use_avx2)
    int ips_cpu_has_avx2()

cdef enum:
    NF = 21              # items per record
    RECORD_BYTES = 168   # NF * 8

# Outputs larger than this (about the last-level cache) use non-temporal stores.
STREAMING_THRESHOLD = 8 * 1024 * 1024

cdef dict _POLICIES = {"wrap": IPS_WRAP, "reset": IPS_RESET, "zero": IPS_ZERO, "auto": IPS_AUTO}
cdef int _use_avx2 = ips_cpu_has_avx2()


def vector_path():
    """The SIMD path the kernel takes on this CPU: "avx2" or "portable"."""
    return "avx2" if _use_avx2 else "portable"


def _set_vector_path(bint avx2):
    """Tests only: force the portable loop (False) or allow AVX2 where the CPU has it."""
    global _use_avx2
    _use_avx2 = avx2 and ips_cpu_has_avx2()


cdef _check_rows(name, shape, Py_ssize_t rows, Py_ssize_t width):
    if shape[0] != rows or shape[1] != width:
        raise ValueError(f"{name} must have shape ({rows}, {width}), got ({shape[0]}, {shape[1]})")


@cython.boundscheck(False)
@cython.wraparound(False)
cdef uint64_t _delta_rows(
    const uint8_t[:, ::view.contiguous] prev,
    const uint8_t[:, ::view.contiguous] cur,
    uint8_t[:, ::1] out,
    uint8_t *mask,
    int policy,
    const uint64_t *counter,
    int streaming,
) noexcept nogil:
    """One run when both inputs are contiguous rows, else one run per row."""
    cdef Py_ssize_t m = prev.shape[0], i
    cdef uint64_t ndec = 0
    if prev.strides[0] == RECORD_BYTES and cur.strides[0] == RECORD_BYTES:
        return ips_delta_run(&prev[0, 0], &cur[0, 0], &out[0, 0], mask, <size_t>m,
                             policy, counter, streaming, _use_avx2)
    for i in range(m):
        ndec += ips_delta_run(&prev[i, 0], &cur[i, 0], &out[i, 0],
                              mask + i * NF if mask != NULL else NULL, 1,
                              policy, counter, 0, _use_avx2)
    return ndec


def delta_rows(prev, cur, counters, str policy, out, resets=None):
    """``out[i] = policy(cur[i] - prev[i])`` for every row; return how many counters fell.

    ``prev``/``cur``: (m, 168) uint8 views of records (any row stride, any alignment).
    ``counters``: (21,) uint8, nonzero where the item is a counter.
    ``policy``: "wrap", "reset", "zero" or "auto" (arithmetic in ``_kernel.h``).
    ``out``: (m, 168) C-contiguous uint8, receives 21 little-endian uint64 per row.
    ``resets``: optional (m, 21) C-contiguous uint8, set to 1 where a counter fell.
    """
    cdef const uint8_t[:, ::view.contiguous] p = prev   # rows of any stride
    cdef const uint8_t[:, ::view.contiguous] c = cur
    cdef const uint8_t[::1] kinds = counters
    cdef uint8_t[:, ::1] o = out
    cdef uint8_t[:, ::1] r
    cdef uint8_t *rp = NULL
    cdef Py_ssize_t m = p.shape[0]
    cdef uint64_t counter[NF]
    cdef uint64_t ndec
    cdef int code, streaming, j
    if policy not in _POLICIES:
        raise ValueError(f"policy must be one of {', '.join(_POLICIES)}, got {policy!r}")
    code = _POLICIES[policy]
    _check_rows("prev", p.shape, m, RECORD_BYTES)
    _check_rows("cur", c.shape, m, RECORD_BYTES)
    _check_rows("out", o.shape, m, RECORD_BYTES)
    if kinds.shape[0] != NF:
        raise ValueError(f"counters must have shape ({NF},), got ({kinds.shape[0]},)")
    if resets is not None:
        r = resets
        _check_rows("resets", r.shape, m, NF)
        if m:
            rp = &r[0, 0]
    if m == 0:
        return 0
    for j in range(NF):
        counter[j] = 0xFFFFFFFFFFFFFFFFULL if kinds[j] else 0
    streaming = m * RECORD_BYTES > STREAMING_THRESHOLD
    with nogil:
        ndec = _delta_rows(p, c, o, rp, code, counter, streaming)
    return ndec
