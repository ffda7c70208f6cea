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
                           int policy, const uint64_t *counter, int streaming, int path)
    enum:
        IPS_PATH_PORTABLE
    int ips_cpu_path()

cdef enum:
    NF = 21              # items per record
    RECORD_BYTES = 168   # NF * 8

from ._alloc import STREAMING_THRESHOLD  # read at each call: tests lower it

cdef dict _POLICIES = {"wrap": IPS_WRAP, "reset": IPS_RESET, "zero": IPS_ZERO, "auto": IPS_AUTO}
cdef tuple _PATHS = ("portable", "sse4.2", "avx2")  # indexed by IPS_PATH_*
cdef int _path = ips_cpu_path()


def vector_path():
    """The SIMD path the kernel takes on this CPU: "avx2", "sse4.2" or "portable"."""
    return _PATHS[_path]


def _set_vector_path(path):
    """Tests only: True for this CPU's best path, False for the portable (baseline) loop,
    or a path name of ``vector_path``, which this CPU must support."""
    global _path
    cdef int best = ips_cpu_path()
    if not isinstance(path, str):
        _path = best if path else IPS_PATH_PORTABLE
    elif path in _PATHS and _PATHS.index(path) <= best:
        _path = _PATHS.index(path)
    else:
        raise ValueError(f"vector path {path!r} is not one of {_PATHS[:best + 1]} (this CPU's)")


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
                             policy, counter, streaming, _path)
    for i in range(m):
        ndec += ips_delta_run(&prev[i, 0], &cur[i, 0], &out[i, 0],
                              mask + i * NF if mask != NULL else NULL, 1,
                              policy, counter, 0, _path)
    return ndec


def delta_rows(prev, cur, counters, str policy not None, out, resets=None):
    """``out[i] = policy(cur[i] - prev[i])`` for every row; return how many counters fell.

    ``prev``/``cur``: (m, 168) uint8 views of records (any row stride, any alignment).
    ``counters``: (21,) uint8, nonzero where the item is a counter.
    ``policy``: "wrap", "reset", "zero" or "auto" (arithmetic in ``_kernel.h``).
    ``out``: (m, 168) C-contiguous uint8, receives 21 little-endian uint64 per row.
    ``resets``: optional (m, 21) C-contiguous uint8, set to 1 where a counter fell.
    """
    if prev is None or cur is None or counters is None or out is None:
        raise TypeError("prev, cur, counters and out must be arrays, not None")
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


# --- Instance-keyed deltas -------------------------------------------------------------

from libc.stdint cimport int64_t as _i64
from libc.stdlib cimport free, malloc

cdef extern from "_kernel.h" nogil:
    ctypedef struct ips_keyed_args:
        const unsigned char *cur
        Py_ssize_t stride
        size_t n
        const Py_ssize_t *codes
        const _i64 *ticks
        const unsigned char *state_rows
        const _i64 *state_ticks
        size_t nstates
        Py_ssize_t *last
        unsigned char *out
        uint8_t *mask
        Py_ssize_t *earlier
        Py_ssize_t *later
        _i64 *earlier_ticks
        const uint64_t *counter
        int policy
        size_t m
        uint64_t ndec
        Py_ssize_t bad
    void ips_keyed_init(Py_ssize_t *last, const uint8_t *state_seen, size_t nstates)
    void ips_keyed_run(ips_keyed_args *a, int streaming, int path)
    void ips_keyed_commit(const unsigned char *cur, Py_ssize_t stride, const _i64 *ticks,
                          const Py_ssize_t *last, size_t nstates, unsigned char *state_rows,
                          _i64 *state_ticks, uint8_t *state_seen)


cdef _check_len(name, Py_ssize_t got, Py_ssize_t want):
    if got != want:
        raise ValueError(f"{name} must have shape ({want},), got ({got},)")


def keyed_delta_rows(cur, codes, ticks, state_rows, state_ticks, state_seen, counters, str policy not None,
                     out, resets, earlier, later, earlier_ticks):
    """Each record against the previous record of its instance; return ``(m, ndec)``.

    ``cur``: (n, 168) uint8 rows (any row stride). ``codes``: (n,) intp instance codes,
    each checked to be in [0, K). ``ticks``: (n,) int64 timestamps or None.
    ``state_rows`` (K, 168) uint8, ``state_ticks`` (K,) int64, ``state_seen`` (K,) uint8:
    the last record of every instance so far, updated in place after a successful pass.
    ``counters``, ``policy``: as in ``delta_rows``. Outputs, one row per record that has a
    previous record of its instance, in the order of the later record (the first ``m``
    rows of each): ``out`` (n, 168) uint8 C-contiguous, ``resets`` (n, 21) uint8 or None,
    ``earlier``/``later`` (n,) intp (``earlier`` -1: the state row), ``earlier_ticks``
    (n,) int64 (required with ``ticks``; untouched without). ``ndec``: counters that fell.
    """
    if (cur is None or codes is None or state_rows is None or state_ticks is None or state_seen is None
            or counters is None or out is None or earlier is None or later is None):
        raise TypeError("cur, codes, state_rows, state_ticks, state_seen, counters, out, earlier "
                        "and later must be arrays, not None")
    if ticks is not None and earlier_ticks is None:
        raise TypeError("earlier_ticks must be an array when ticks are given")
    cdef const uint8_t[:, ::view.contiguous] c = cur
    cdef const Py_ssize_t[::1] cd = codes
    cdef const _i64[::1] tk
    cdef uint8_t[:, ::1] srows = state_rows
    cdef _i64[::1] sticks = state_ticks
    cdef uint8_t[::1] sseen = state_seen
    cdef const uint8_t[::1] kinds = counters
    cdef uint8_t[:, ::1] o = out
    cdef uint8_t[:, ::1] r
    cdef Py_ssize_t[::1] ea = earlier
    cdef Py_ssize_t[::1] la = later
    cdef _i64[::1] et
    if ticks is not None:
        tk = ticks
        et = earlier_ticks
    if resets is not None:
        r = resets
    if policy not in _POLICIES:
        raise ValueError(f"policy must be one of {', '.join(_POLICIES)}, got {policy!r}")
    cdef Py_ssize_t n = c.shape[0], nstates = srows.shape[0], j
    _check_rows("cur", c.shape, n, RECORD_BYTES)
    _check_len("codes", cd.shape[0], n)
    if ticks is not None:
        _check_len("ticks", tk.shape[0], n)
    _check_rows("state_rows", srows.shape, nstates, RECORD_BYTES)
    _check_len("state_ticks", sticks.shape[0], nstates)
    _check_len("state_seen", sseen.shape[0], nstates)
    if kinds.shape[0] != NF:
        raise ValueError(f"counters must have shape ({NF},), got ({kinds.shape[0]},)")
    _check_rows("out", o.shape, n, RECORD_BYTES)
    if resets is not None:
        _check_rows("resets", r.shape, n, NF)
    _check_len("earlier", ea.shape[0], n)
    _check_len("later", la.shape[0], n)
    if ticks is not None:
        _check_len("earlier_ticks", et.shape[0], n)
    if n == 0:
        return 0, 0
    cdef uint64_t counter[NF]
    for j in range(NF):
        counter[j] = 0xFFFFFFFFFFFFFFFFULL if kinds[j] else 0
    cdef ips_keyed_args a
    a.cur = &c[0, 0]
    a.stride = c.strides[0]
    a.n = <size_t>n
    a.codes = &cd[0]
    a.ticks = &tk[0] if ticks is not None else NULL
    a.state_rows = &srows[0, 0] if nstates else NULL
    a.state_ticks = &sticks[0] if nstates else NULL
    a.nstates = <size_t>nstates
    a.out = &o[0, 0]
    a.mask = &r[0, 0] if resets is not None else NULL
    a.earlier = &ea[0]
    a.later = &la[0]
    a.earlier_ticks = &et[0] if ticks is not None else NULL
    a.counter = counter
    a.policy = _POLICIES[policy]
    cdef int streaming = n * RECORD_BYTES > STREAMING_THRESHOLD
    a.last = <Py_ssize_t *>malloc((nstates + 1) * sizeof(Py_ssize_t))
    if a.last == NULL:
        raise MemoryError()
    try:
        with nogil:
            if nstates:
                ips_keyed_init(a.last, &sseen[0], <size_t>nstates)
            ips_keyed_run(&a, streaming, _path)
            if a.bad < 0 and nstates:
                ips_keyed_commit(a.cur, a.stride, a.ticks, a.last, <size_t>nstates,
                                 &srows[0, 0], &sticks[0], &sseen[0])
    finally:
        free(a.last)
    if a.bad >= 0:
        raise ValueError(f"codes[{a.bad}] = {cd[a.bad]} is out of range: the state holds {nstates} instance(s)")
    return <Py_ssize_t>a.m, a.ndec


# --- Rates ------------------------------------------------------------------------------

cdef extern from "_kernel.h" nogil:
    void ips_rates_run(const uint64_t *values, const uint8_t *cols, int ncols,
                       const double *seconds, size_t seconds_step, double *out, size_t nrows)
    void ips_rates_dispatch(const uint64_t *values, const uint8_t *cols, int ncols, const double *seconds,
                            size_t seconds_step, double *out, size_t nrows, int streaming, int path)


cdef Py_ssize_t _rate_seconds_step(Py_ssize_t m, const uint8_t[::1] cols, const double[::1] sec,
                                   double[:, ::1] o) except -1:
    """The checks both rate kernels make of ``columns``, ``seconds`` and ``out`` for ``m`` rows;
    returns the step of ``seconds`` from row to row (0: one interval for every row)."""
    cdef Py_ssize_t j
    _check_rows("out", o.shape, m, cols.shape[0])
    if sec.shape[0] != m and sec.shape[0] != 1:
        raise ValueError(f"seconds must have shape ({m},) or (1,), got ({sec.shape[0]},)")
    for j in range(cols.shape[0]):
        if cols[j] >= NF:
            raise ValueError(f"columns must be < {NF}, got {cols[j]}")
    return 1 if sec.shape[0] == m and m > 1 else 0


def rate_rows(values, columns, seconds, out):
    """``out[i, j] = values[i, columns[j]] / seconds[i]`` in float64 (``seconds`` of length 1: one
    interval for every row); the uint64 is rounded once to the nearest float64.

    ``values``: (m, 21) C-contiguous uint64 deltas. ``columns``: (k,) uint8 indices < 21.
    ``seconds``: (m,) or (1,) C-contiguous float64. ``out``: (m, k) C-contiguous float64.
    """
    if values is None or columns is None or seconds is None or out is None:
        raise TypeError("values, columns, seconds and out must be arrays, not None")
    cdef const uint64_t[:, ::1] v = values
    cdef const uint8_t[::1] cols = columns
    cdef const double[::1] sec = seconds
    cdef double[:, ::1] o = out
    cdef Py_ssize_t m = v.shape[0], k = cols.shape[0]
    _check_rows("values", v.shape, m, NF)
    cdef Py_ssize_t sstep = _rate_seconds_step(m, cols, sec, o)
    if m == 0 or k == 0:
        return
    if (<char *>&o[0, 0] < <char *>&v[0, 0] + m * NF * 8 and
            <char *>&v[0, 0] < <char *>&o[0, 0] + m * k * 8):
        raise ValueError("out must not overlap values")
    cdef int streaming = m * k * 8 > STREAMING_THRESHOLD
    with nogil:
        ips_rates_dispatch(&v[0, 0], &cols[0], <int>k, &sec[0], sstep, &o[0, 0], <size_t>m, streaming, _path)


# --- Columnar transpose (decode_columns / delta_columns) ------------------------------


cdef extern from "_kernel.h" nogil:
    void ips_transpose_run(const unsigned char *src, Py_ssize_t stride, size_t nrows,
                           uint64_t *out, Py_ssize_t ld, int streaming)


def transpose_rows(src, out, bint streaming=False):
    """``out[j, i]`` = item ``j`` of row ``i``: 21 uint64 columns from record rows.

    ``src``: (m, 168) uint8 rows of 21 little-endian uint64 (any row stride, any
    alignment; the bytes of one row contiguous). ``out``: (21, m) uint64, each row
    contiguous (a C-contiguous array, or a column slice of a wider one).
    ``streaming``: use non-temporal stores (set it when the output exceeds the cache).
    """
    if src is None or out is None:
        raise TypeError("src and out must be arrays, not None")
    # strided rows, contiguous items: `::1` alone would demand a fully C-contiguous array
    cdef const uint8_t[:, ::view.contiguous] s = src
    cdef uint64_t[:, ::view.contiguous] o = out
    cdef Py_ssize_t m = s.shape[0]
    cdef Py_ssize_t ld
    if s.shape[1] != RECORD_BYTES:
        raise ValueError(f"src must have shape (m, {RECORD_BYTES}), got ({m}, {s.shape[1]})")
    _check_rows("out", o.shape, NF, m)
    if o.strides[0] % 8:
        raise ValueError(f"out rows must be a whole number of items apart, got stride {o.strides[0]}")
    if m == 0:
        return
    if <size_t>&o[0, 0] % 8:
        raise ValueError("out must be 8-byte aligned")
    ld = o.strides[0] // 8
    with nogil:
        ips_transpose_run(&s[0, 0], s.strides[0], <size_t>m, &o[0, 0], ld, streaming)


# --- Fused statistics pass (report / info / plot) --------------------------------------

cdef extern from "_kernel.h" nogil:
    enum:
        IPS_ST_ACC
        IPS_ST_PENDING
        IPS_SB_WIDTH
    ctypedef struct ips_stats_args:
        const unsigned char *cur
        const unsigned char *prev
        size_t n, nprev, stride, nbins, nevents
        uint64_t start, width
        const uint64_t *counter
        int policy, final, parts
        uint64_t *acc
        uint64_t *bins
        _i64 *events
    void ips_stats_run(ips_stats_args *a, int path)

STATS_ACC = IPS_ST_ACC
STATS_BIN = IPS_SB_WIDTH


def stats_rows(cur, prev, counters, str policy not None, Py_ssize_t stride, Py_ssize_t start, Py_ssize_t width,
               bint final, acc, bins, events, int parts=3):
    """Accumulate the statistics of record rows ``cur`` (arithmetic in ``_kernel.h``, ``ips_stats_run``).

    ``cur``: (n, 168) C-contiguous uint8 records, the first being record ``start`` of the
    stream; ``prev``: (0 or stride, 168) the stride records before it. Poll = record //
    ``stride``, bin = poll // ``width``. ``acc``: (STATS_ACC,) uint64 running state;
    ``bins``: (B, STATS_BIN) uint64 (per bin: 128-bit sums, min, max, counts, peak polls);
    ``events``: (E, 3) int64, the first E rows in which a counter fell (record, restart
    bits). ``final``: close the pending poll. ``parts``: 1 the record statistics only (sums,
    min, max, records: the bin columns ``SB_FLO`` to ``SB_POLLS`` and ``SB_RECORDS``), 2 the
    increases only (everything else, and ``acc``/``events``), 3 both; two calls with 1 and 2
    on separate ``bins`` arrays give, column by column, what one call with 3 gives.
    """
    if cur is None or prev is None or counters is None or acc is None or bins is None or events is None:
        raise TypeError("arrays must not be None")
    if parts < 1 or parts > 3:
        raise ValueError(f"parts must be 1, 2 or 3, got {parts}")
    cdef const uint8_t[:, ::1] c = cur
    cdef const uint8_t[:, ::1] p = prev
    cdef const uint8_t[::1] kinds = counters
    cdef uint64_t[::1] a = acc
    cdef uint64_t[:, ::1] b = bins
    cdef _i64[:, ::1] ev = events
    cdef uint64_t counter[NF]
    cdef ips_stats_args args
    cdef Py_ssize_t n = c.shape[0], nb = b.shape[0], j
    if policy not in _POLICIES:
        raise ValueError(f"policy must be one of {', '.join(_POLICIES)}, got {policy!r}")
    if stride < 1 or start < 0 or width < 1:
        raise ValueError(f"stride and width must be >= 1 and start >= 0, got {stride}, {width}, {start}")
    _check_rows("cur", c.shape, n, RECORD_BYTES)
    if p.shape[1] != RECORD_BYTES or (p.shape[0] != 0 and p.shape[0] != stride):
        raise ValueError(f"prev must have shape (0 or {stride}, {RECORD_BYTES}), got ({p.shape[0]}, {p.shape[1]})")
    if kinds.shape[0] != NF:
        raise ValueError(f"counters must have shape ({NF},), got ({kinds.shape[0]},)")
    if a.shape[0] != IPS_ST_ACC:
        raise ValueError(f"acc must have shape ({IPS_ST_ACC},), got ({a.shape[0]},)")
    _check_rows("bins", b.shape, nb, IPS_SB_WIDTH)
    _check_rows("events", ev.shape, ev.shape[0], 3)
    if n and (start + n - 1) // stride // width >= nb:
        raise ValueError(f"record {start + n - 1} falls beyond the {nb} bins of width {width}")
    if a[IPS_ST_PENDING] and (a[IPS_ST_PENDING] - 1) // <uint64_t>width >= <uint64_t>nb:
        raise ValueError(f"the pending poll falls beyond the {nb} bins of width {width}")
    for j in range(NF):
        counter[j] = 0xFFFFFFFFFFFFFFFFULL if kinds[j] else 0
    args.cur = &c[0, 0] if n else NULL
    args.prev = &p[0, 0] if p.shape[0] else NULL
    args.n, args.nprev, args.stride, args.nbins = n, p.shape[0], stride, nb
    args.nevents = ev.shape[0]
    args.start, args.width = start, width
    args.counter = counter
    args.policy, args.final, args.parts = _POLICIES[policy], final, parts
    args.acc = &a[0]
    args.bins = &b[0, 0] if nb else NULL
    args.events = &ev[0, 0] if ev.shape[0] else NULL
    with nogil:
        ips_stats_run(&args, _path)


# ---------------------------------------------------------------------------------------
# WNODE walker (raw WMI buffers, wmistr.h). The layout and the status codes come from
# ``_wnode_layout`` (shared with the ``_slow`` twin); ``_wnode`` validates arguments,
# formats the one error message and builds the ``Capture``. Every offset and length read
# from the data is checked against the WNODE and the buffer before it is used, in int64
# (the data holds uint32 at most, so nothing overflows); each WNODE moves the walk strictly
# forward by at least 48 bytes, and a hard cap on the number of WNODEs backs that up.
# Built with IPSECSTATS_DEBUG_BUILD=1, every load also re-checks its bounds and aborts.

from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memset

from . import _wnode_layout as _wl

cdef extern from "_wnode_load.h":
    int64_t ips_wn_u16(const uint8_t *b, int64_t n, int64_t o) noexcept nogil
    int64_t ips_wn_u32(const uint8_t *b, int64_t n, int64_t o) noexcept nogil
    int64_t ips_wn_i64(const uint8_t *b, int64_t n, int64_t o) noexcept nogil
    void ips_wn_copy(uint8_t *dst, const uint8_t *b, int64_t n, int64_t o, int64_t k) noexcept nogil
    int ips_wn_same(const uint8_t *b, int64_t n, int64_t o1, int64_t o2, int64_t k) noexcept nogil
    int ips_wn_match(const uint8_t *b, int64_t n, int64_t o, const uint8_t *other, int64_t k) noexcept nogil
    int64_t ips_wn_strip(const uint8_t *b, int64_t n, int64_t o, int64_t k, int64_t unit) noexcept nogil
    uint64_t ips_wn_hash(const uint8_t *b, int64_t n, int64_t o, int64_t k, uint64_t k0, uint64_t k1) noexcept nogil

cdef enum:
    WN_HINTS = 64        # instance positions whose last name id is remembered (a fast path only)
    WN_MEMO = 64         # _wl.NAME_MEMO: name offsets remembered (bounds the name work, see _wnode_layout)

cdef int64_t _WN_BUFFER_SIZE = _wl.BUFFER_SIZE
cdef int64_t _WN_LINKAGE = _wl.LINKAGE
cdef int64_t _WN_TIMESTAMP = _wl.TIMESTAMP
cdef int64_t _WN_GUID = _wl.GUID
cdef int64_t _WN_FLAGS = _wl.FLAGS
cdef int64_t _WN_SIZE_NEEDED = _wl.TOO_SMALL_SIZE_NEEDED
cdef int64_t _WN_ALL_BLOCK = _wl.ALL_DATA_BLOCK_OFFSET
cdef int64_t _WN_ALL_COUNT = _wl.ALL_INSTANCE_COUNT
cdef int64_t _WN_ALL_NAMES = _wl.ALL_NAME_OFFSETS
cdef int64_t _WN_ALL_SIZES = _wl.ALL_FIXED_INSTANCE_SIZE   # also where the offset/length pairs start
cdef int64_t _WN_SINGLE_NAME = _wl.SINGLE_NAME_OFFSET
cdef int64_t _WN_SINGLE_INDEX = _wl.SINGLE_INSTANCE_INDEX
cdef int64_t _WN_SINGLE_BLOCK = _wl.SINGLE_DATA_BLOCK_OFFSET
cdef int64_t _WN_SINGLE_SIZE = _wl.SINGLE_SIZE_DATA_BLOCK
cdef int64_t WN_HEADER = _wl.HEADER_SIZE
cdef int64_t WN_ALL_MIN = _wl.ALL_DATA_MIN_SIZE
cdef int64_t WN_SINGLE_MIN = _wl.SINGLE_MIN_SIZE
cdef int64_t WN_TOO_SMALL_MIN = _wl.TOO_SMALL_MIN_SIZE
cdef int64_t WN_INSTANCE = _wl.INSTANCE_SIZE
cdef int64_t WN_ALIGN = _wl.DATA_ALIGNMENT
cdef int64_t WN_NODE_ALIGN = _wl.NODE_ALIGNMENT
cdef int64_t WN_TICKS_MIN = _wl.TICKS_MIN
cdef int64_t WN_TICKS_MAX = _wl.TICKS_MAX
cdef int64_t F_ALL = _wl.FLAG_ALL_DATA
cdef int64_t F_SINGLE = _wl.FLAG_SINGLE_INSTANCE
cdef int64_t F_FIXED = _wl.FLAG_FIXED_INSTANCE_SIZE
cdef int64_t F_TOO_SMALL = _wl.FLAG_TOO_SMALL
cdef int64_t F_ANSI = _wl.FLAG_ANSI_INSTANCENAMES
cdef int E_HEADER_TRUNCATED = _wl.HEADER_TRUNCATED
cdef int E_BUFFER_SIZE_PAST_END = _wl.BUFFER_SIZE_PAST_END
cdef int E_LINKAGE_PAST_END = _wl.LINKAGE_PAST_END
cdef int E_BUFFER_SIZE_SMALL = _wl.BUFFER_SIZE_SMALL
cdef int E_NODE_TOO_SHORT = _wl.NODE_TOO_SHORT
cdef int E_LINKAGE_OVERLAP = _wl.LINKAGE_OVERLAP
cdef int E_LINKAGE_GAP = _wl.LINKAGE_GAP
cdef int E_FLAGS_KIND = _wl.FLAGS_KIND
cdef int E_TOO_SMALL = _wl.TOO_SMALL
cdef int E_TIMESTAMP_RANGE = _wl.TIMESTAMP_RANGE
cdef int E_FIXED_SIZE = _wl.FIXED_SIZE
cdef int E_INSTANCE_LENGTH = _wl.INSTANCE_LENGTH
cdef int E_SIZE_DATA_BLOCK = _wl.SIZE_DATA_BLOCK
cdef int E_INSTANCE_COUNT_RANGE = _wl.INSTANCE_COUNT_RANGE
cdef int E_DATA_OFFSET_RANGE = _wl.DATA_OFFSET_RANGE
cdef int E_DATA_MISALIGNED = _wl.DATA_MISALIGNED
cdef int E_NAME_OFFSETS_RANGE = _wl.NAME_OFFSETS_RANGE
cdef int E_NAME_OFFSET_RANGE = _wl.NAME_OFFSET_RANGE
cdef int E_NAME_LENGTH_RANGE = _wl.NAME_LENGTH_RANGE
cdef int E_NAME_ODD_LENGTH = _wl.NAME_ODD_LENGTH
cdef int E_NODE_LIMIT = _wl.NODE_LIMIT
cdef int E_CAPACITY = _wl.CAPACITY
cdef int E_NAMES_FULL = _wl.NAMES_FULL
cdef int E_INSTANCE_DATA_RANGE = _wl.INSTANCE_DATA_RANGE
cdef int E_INSTANCE_DATA_MISALIGNED = _wl.INSTANCE_DATA_MISALIGNED
cdef int E_INSTANCE_NAME_OFFSET_RANGE = _wl.INSTANCE_NAME_OFFSET_RANGE
cdef int E_NAMES_OVERLAP = _wl.NAMES_OVERLAP
cdef int E_NAMES_PROBES = _wl.NAMES_PROBES
cdef int WN_MEMO_SHIFT = 64 - _wl.NAME_MEMO_BITS
cdef uint64_t WN_MEMO_MUL = _wl.NAME_MEMO_MUL
cdef int64_t WN_MAX_PROBES = _wl.NAME_MAX_PROBES
assert _wl.NAME_MEMO == WN_MEMO


cdef struct WnCounts:
    int64_t nrecords
    int64_t nnames
    int64_t nforeign
    int64_t foreign_first
    int64_t ntoo_small
    int64_t too_small_first
    int64_t too_small_needed


cdef struct WnCtx:
    const uint8_t *b          # the data, n bytes
    int64_t n
    const uint8_t *guid       # 16 bytes
    int skip_too_small
    int fill                  # 0: validate and count only
    uint8_t *records          # fill: cap rows of 168 bytes
    int64_t *ticks            # fill: cap
    int64_t *name_ids         # fill: cap
    int64_t cap
    int64_t *names            # fill: names_cap rows of (text offset, byte count, ansi)
    int64_t names_cap
    int64_t *slots            # fill: hash slots (entry + 1, 0 = empty), a power of two > names_cap
    int64_t slot_mask
    uint64_t key0             # fill: the SipHash key of the name table
    uint64_t key1
    int64_t hint[WN_HINTS]
    int64_t memo_at[WN_MEMO]  # name offsets looked up (-1 = none) and their ids
    int64_t memo_id[WN_MEMO]
    int64_t charged           # name bytes read in the current WNODE (at most its BufferSize)
    WnCounts run              # counts so far
    WnCounts done             # counts up to the last complete buffer
    int64_t good_end          # end of the last complete buffer
    int64_t status
    int64_t err_offset
    int64_t err_value
    int64_t err_bound


cdef inline int _wn_fail(WnCtx *c, int code, int64_t offset, int64_t value, int64_t bound) noexcept nogil:
    c.status = code
    c.err_offset = offset
    c.err_value = value
    c.err_bound = bound
    return code


cdef int _wn_intern(WnCtx *c, int64_t text, int64_t length, int64_t ansi, int64_t position,
                    int64_t name_field, int64_t *out_id) noexcept nogil:
    """The id of the name b[text:text+length] (ids in order of first appearance)."""
    cdef int64_t h, slot, e, k, probes
    if position < WN_HINTS:
        h = c.hint[position]
        if (h >= 0 and c.names[3 * h + 1] == length and c.names[3 * h + 2] == ansi
                and ips_wn_same(c.b, c.n, c.names[3 * h], text, length)):
            out_id[0] = h
            return 0
    slot = <int64_t>(ips_wn_hash(c.b, c.n, text, length, c.key0, c.key1 ^ <uint64_t>ansi)
                     & <uint64_t>c.slot_mask)
    probes = 0
    while True:
        e = c.slots[slot]
        if e == 0:
            break
        k = e - 1
        if (c.names[3 * k + 1] == length and c.names[3 * k + 2] == ansi
                and ips_wn_same(c.b, c.n, c.names[3 * k], text, length)):
            out_id[0] = k
            if position < WN_HINTS:
                c.hint[position] = k
            return 0
        probes += 1
        if probes >= WN_MAX_PROBES or probes > c.slot_mask:
            return _wn_fail(c, E_NAMES_PROBES, name_field, probes, WN_MAX_PROBES)
        slot = (slot + 1) & c.slot_mask
    if c.run.nnames >= c.names_cap:
        return _wn_fail(c, E_NAMES_FULL, name_field, c.names_cap, c.names_cap)
    k = c.run.nnames
    c.run.nnames += 1
    c.names[3 * k] = text
    c.names[3 * k + 1] = length
    c.names[3 * k + 2] = ansi
    c.slots[slot] = k + 1
    out_id[0] = k
    if position < WN_HINTS:
        c.hint[position] = k
    return 0


cdef int _wn_instance(WnCtx *c, int64_t node, int64_t size, int64_t header_end, int64_t src,
                      int64_t name_field, int name_code, int64_t ansi, int64_t ticks,
                      int64_t position) noexcept nogil:
    """Check one instance's name (its data block is checked by the caller); emit the record."""
    cdef int64_t name_off = ips_wn_u32(c.b, c.n, name_field)
    cdef int64_t length, text, unit, at, name_id = 0
    cdef int memo
    if name_off < header_end or name_off > size or size - name_off < 2:
        return _wn_fail(c, name_code, name_field, name_off, size)
    at = node + name_off
    length = ips_wn_u16(c.b, c.n, at)
    if length > size - name_off - 2:
        return _wn_fail(c, E_NAME_LENGTH_RANGE, at, length, size - name_off - 2)
    if not ansi and (length & 1):
        return _wn_fail(c, E_NAME_ODD_LENGTH, at, length, 0)
    memo = <int>((<uint64_t>at * WN_MEMO_MUL) >> WN_MEMO_SHIFT)
    if c.memo_at[memo] != at:  # a name offset not read lately: its bytes count against the WNODE
        c.charged += 2 + length
        if c.charged > size:
            return _wn_fail(c, E_NAMES_OVERLAP, at, c.charged, size)
    if not c.fill:
        c.memo_at[memo] = at
        c.run.nrecords += 1
        return 0
    if c.run.nrecords >= c.cap:
        return _wn_fail(c, E_CAPACITY, node, c.cap, c.cap)
    if c.memo_at[memo] == at:
        name_id = c.memo_id[memo]
    else:
        text = at + 2
        unit = 1 if ansi else 2
        length = ips_wn_strip(c.b, c.n, text, length, unit)
        if _wn_intern(c, text, length, ansi, position, at, &name_id):
            return c.status
        c.memo_at[memo] = at
        c.memo_id[memo] = name_id
    ips_wn_copy(c.records + c.run.nrecords * WN_INSTANCE, c.b, c.n, src, WN_INSTANCE)
    c.ticks[c.run.nrecords] = ticks
    c.name_ids[c.run.nrecords] = name_id
    c.run.nrecords += 1
    return 0


cdef int _wn_all_data(WnCtx *c, int64_t node, int64_t size, int64_t flags, int64_t ticks) noexcept nogil:
    cdef int64_t block = ips_wn_u32(c.b, c.n, node + _WN_ALL_BLOCK)
    cdef int64_t count = ips_wn_u32(c.b, c.n, node + _WN_ALL_COUNT)
    cdef int64_t names_at = ips_wn_u32(c.b, c.n, node + _WN_ALL_NAMES)
    cdef int64_t ansi = 1 if flags & F_ANSI else 0
    cdef int64_t fixed = flags & F_FIXED
    cdef int64_t header_end, value, pair, off, length, src, i
    cdef int rc
    if fixed:
        value = ips_wn_u32(c.b, c.n, node + _WN_ALL_SIZES)
        if value != WN_INSTANCE:
            return _wn_fail(c, E_FIXED_SIZE, node + _WN_ALL_SIZES, value, WN_INSTANCE)
        header_end = WN_ALL_MIN
        if count:
            if block < header_end or block > size:
                return _wn_fail(c, E_DATA_OFFSET_RANGE, node + _WN_ALL_BLOCK, block, size)
            if block % WN_ALIGN:
                return _wn_fail(c, E_DATA_MISALIGNED, node + _WN_ALL_BLOCK, block, WN_ALIGN)
            if count > (size - block) // WN_INSTANCE:
                return _wn_fail(c, E_INSTANCE_COUNT_RANGE, node + _WN_ALL_COUNT, count,
                                (size - block) // WN_INSTANCE)
    else:
        if count > (size - _WN_ALL_SIZES) // 8:
            return _wn_fail(c, E_INSTANCE_COUNT_RANGE, node + _WN_ALL_COUNT, count,
                            (size - _WN_ALL_SIZES) // 8)
        header_end = _WN_ALL_SIZES + 8 * count
    if count:
        if names_at < header_end or names_at > size or count > (size - names_at) // 4:
            return _wn_fail(c, E_NAME_OFFSETS_RANGE, node + _WN_ALL_NAMES, names_at, size)
    for i in range(count):
        if fixed:
            src = node + block + i * WN_INSTANCE
        else:
            pair = node + _WN_ALL_SIZES + 8 * i
            off = ips_wn_u32(c.b, c.n, pair)
            length = ips_wn_u32(c.b, c.n, pair + 4)
            if length != WN_INSTANCE:
                return _wn_fail(c, E_INSTANCE_LENGTH, pair + 4, length, WN_INSTANCE)
            if off < header_end or off > size or size - off < WN_INSTANCE:
                return _wn_fail(c, E_INSTANCE_DATA_RANGE, pair, off, size)
            if off % WN_ALIGN:
                return _wn_fail(c, E_INSTANCE_DATA_MISALIGNED, pair, off, WN_ALIGN)
            src = node + off
        rc = _wn_instance(c, node, size, header_end, src, node + names_at + 4 * i,
                          E_INSTANCE_NAME_OFFSET_RANGE, ansi, ticks, i)
        if rc:
            return rc
    return 0


cdef int _wn_single(WnCtx *c, int64_t node, int64_t size, int64_t flags, int64_t ticks) noexcept nogil:
    cdef int64_t value = ips_wn_u32(c.b, c.n, node + _WN_SINGLE_SIZE)
    cdef int64_t block, index
    if value != WN_INSTANCE:
        return _wn_fail(c, E_SIZE_DATA_BLOCK, node + _WN_SINGLE_SIZE, value, WN_INSTANCE)
    block = ips_wn_u32(c.b, c.n, node + _WN_SINGLE_BLOCK)
    if block < WN_SINGLE_MIN or block > size or size - block < WN_INSTANCE:
        return _wn_fail(c, E_DATA_OFFSET_RANGE, node + _WN_SINGLE_BLOCK, block, size)
    if block % WN_ALIGN:
        return _wn_fail(c, E_DATA_MISALIGNED, node + _WN_SINGLE_BLOCK, block, WN_ALIGN)
    index = ips_wn_u32(c.b, c.n, node + _WN_SINGLE_INDEX)
    return _wn_instance(c, node, size, WN_SINGLE_MIN, node + block, node + _WN_SINGLE_NAME,
                        E_NAME_OFFSET_RANGE, 1 if flags & F_ANSI else 0, ticks, index)


cdef int _wn_node(WnCtx *c, int64_t node, int64_t size) noexcept nogil:
    """One WNODE of the class GUID: TOO_SMALL, ALL_DATA or SINGLE_INSTANCE."""
    cdef int64_t flags = ips_wn_u32(c.b, c.n, node + _WN_FLAGS)
    cdef int64_t kind, ticks, needed
    c.charged = 0
    if flags & F_TOO_SMALL:
        if size < WN_TOO_SMALL_MIN:
            return _wn_fail(c, E_NODE_TOO_SHORT, node, size, WN_TOO_SMALL_MIN)
        needed = ips_wn_u32(c.b, c.n, node + _WN_SIZE_NEEDED)
        if not c.skip_too_small:
            return _wn_fail(c, E_TOO_SMALL, node + _WN_SIZE_NEEDED, needed, size)
        c.run.ntoo_small += 1
        if c.run.too_small_first < 0:
            c.run.too_small_first = node
        if needed > c.run.too_small_needed:
            c.run.too_small_needed = needed
        return 0
    kind = flags & (F_ALL | F_SINGLE)
    if kind != F_ALL and kind != F_SINGLE:
        return _wn_fail(c, E_FLAGS_KIND, node + _WN_FLAGS, flags, 0)
    ticks = ips_wn_i64(c.b, c.n, node + _WN_TIMESTAMP)
    if ticks != 0 and (ticks < WN_TICKS_MIN or ticks > WN_TICKS_MAX):
        return _wn_fail(c, E_TIMESTAMP_RANGE, node + _WN_TIMESTAMP, ticks, 0)
    if kind == F_ALL:
        if size < WN_ALL_MIN:
            return _wn_fail(c, E_NODE_TOO_SHORT, node, size, WN_ALL_MIN)
        return _wn_all_data(c, node, size, flags, ticks)
    if size < WN_SINGLE_MIN:
        return _wn_fail(c, E_NODE_TOO_SHORT, node, size, WN_SINGLE_MIN)
    return _wn_single(c, node, size, flags, ticks)


cdef int _wn_walk(WnCtx *c) noexcept nogil:
    """Buffers back to back from offset 0; each a chain of WNODEs linked by Linkage."""
    cdef int64_t n = c.n, pos = 0, node, size, link, padded, nodes = 0
    cdef int64_t max_nodes = n // WN_HEADER + 1
    cdef int rc
    while pos < n:
        node = pos
        while True:
            nodes += 1
            if nodes > max_nodes:
                return _wn_fail(c, E_NODE_LIMIT, node, nodes, max_nodes)
            if n - node < WN_HEADER:
                return _wn_fail(c, E_HEADER_TRUNCATED, node, n - node, WN_HEADER)
            size = ips_wn_u32(c.b, n, node + _WN_BUFFER_SIZE)
            if size < WN_HEADER:
                return _wn_fail(c, E_BUFFER_SIZE_SMALL, node, size, WN_HEADER)
            if size > n - node:
                return _wn_fail(c, E_BUFFER_SIZE_PAST_END, node, size, n - node)
            link = ips_wn_u32(c.b, n, node + _WN_LINKAGE)
            if link != 0 and link < size:
                return _wn_fail(c, E_LINKAGE_OVERLAP, node + _WN_LINKAGE, link, size)
            padded = (size + WN_NODE_ALIGN - 1) & -WN_NODE_ALIGN  # align8(BufferSize)
            if link > padded:
                return _wn_fail(c, E_LINKAGE_GAP, node + _WN_LINKAGE, link, padded)
            if ips_wn_match(c.b, n, node + _WN_GUID, c.guid, 16):
                rc = _wn_node(c, node, size)
                if rc:
                    return rc
            else:
                c.run.nforeign += 1
                if c.run.foreign_first < 0:
                    c.run.foreign_first = node
            if link == 0:
                break
            if link >= n - node:
                return _wn_fail(c, E_LINKAGE_PAST_END, node + _WN_LINKAGE, link, n - node)
            node += link
        pos = node + size
        c.done = c.run
        c.good_end = pos
    return 0



cdef tuple _wn_result(WnCtx *c):
    """The 12 integers of ``_wnode_layout.WalkResult``."""
    cdef WnCounts *d = &c.done
    if c.status == 0:
        d = &c.run
    return (c.status, c.err_offset, c.err_value, c.err_bound, c.good_end, d.nrecords, d.nnames,
            d.nforeign, d.foreign_first, d.ntoo_small, d.too_small_first, d.too_small_needed)


cdef void _wn_init(WnCtx *c, const uint8_t[::1] buf, const uint8_t[::1] guid, bint skip_too_small) except *:
    cdef Py_ssize_t i
    if guid.shape[0] != 16:
        raise ValueError(f"guid must hold 16 bytes, got {guid.shape[0]}")
    memset(c, 0, sizeof(WnCtx))
    c.b = &buf[0] if buf.shape[0] else NULL
    c.n = buf.shape[0]
    c.guid = &guid[0]
    c.skip_too_small = skip_too_small
    c.run.foreign_first = -1
    c.run.too_small_first = -1
    c.done = c.run
    for i in range(WN_HINTS):
        c.hint[i] = -1
    for i in range(WN_MEMO):
        c.memo_at[i] = -1


def wnode_count(const uint8_t[::1] buf not None, const uint8_t[::1] guid not None, bint skip_too_small):
    """Validate the WNODE buffers in ``buf`` and count their records; a ``WalkResult`` tuple.

    ``guid``: the 16 GUID bytes of the class (other WNODEs are counted as foreign).
    ``skip_too_small``: count WNODE_TOO_SMALL nodes instead of stopping at the first.
    """
    cdef WnCtx c
    _wn_init(&c, buf, guid, skip_too_small)
    with nogil:
        _wn_walk(&c)
    return _wn_result(&c)


def wnode_fill(const uint8_t[::1] buf not None, const uint8_t[::1] guid not None, bint skip_too_small,
               uint8_t[:, ::1] records not None, int64_t[::1] ticks not None, int64_t[::1] name_ids not None,
               int64_t[:, ::1] names not None, int64_t[::1] slots not None, uint64_t seed=0):
    """Walk as ``wnode_count`` and write the records out; a ``WalkResult`` tuple.

    ``records``: (cap, 168) uint8, receives each instance's data block in order.
    ``ticks``, ``name_ids``: (cap,) int64, the WNODE TimeStamp and the name id per record.
    ``names``: (K, 3) int64, receives (byte offset, byte count, ansi) of each distinct name
    (trailing NULs stripped), ids in order of first appearance; a full table stops the walk
    with NAMES_FULL. ``slots``: (S,) int64 scratch, S a power of two larger than K.
    ``seed``: the key of the name table's hash (pass a random one: ``secrets.randbits(64)``);
    results do not depend on it. A lookup that probes too long stops with NAMES_PROBES.
    """
    cdef WnCtx c
    cdef Py_ssize_t cap = records.shape[0]
    cdef Py_ssize_t nslots = slots.shape[0]
    if records.shape[1] != WN_INSTANCE:
        raise ValueError(f"records must have shape ({cap}, 168), got ({cap}, {records.shape[1]})")
    if ticks.shape[0] != cap or name_ids.shape[0] != cap:
        raise ValueError(f"ticks and name_ids must have shape ({cap},), "
                         f"got ({ticks.shape[0]},) and ({name_ids.shape[0]},)")
    if names.shape[1] != 3:
        raise ValueError(f"names must have shape (K, 3), got ({names.shape[0]}, {names.shape[1]})")
    if nslots < 1 or (nslots & (nslots - 1)) or nslots <= names.shape[0]:
        raise ValueError(f"slots must have a power-of-two length larger than {names.shape[0]}, got {nslots}")
    _wn_init(&c, buf, guid, skip_too_small)
    c.fill = 1
    c.cap = cap
    c.records = &records[0, 0] if cap else NULL
    c.ticks = &ticks[0] if cap else NULL
    c.name_ids = &name_ids[0] if cap else NULL
    c.names_cap = names.shape[0]
    c.names = &names[0, 0] if names.shape[0] else NULL
    c.slots = &slots[0]
    c.slot_mask = nslots - 1
    c.key0 = seed
    c.key1 = (seed ^ 0x9E3779B97F4A7C15ULL) * 0xBF58476D1CE4E5B9ULL
    memset(c.slots, 0, nslots * sizeof(int64_t))
    with nogil:
        _wn_walk(&c)
    return _wn_result(&c)


# ---------------------------------------------------------------------------------------
# CIM CSV rows (PowerShell Export-Csv). The codes and limits come from ``_csv_layout``
# (shared with the ``_slow`` twin); ``formats.cimcsv`` reads the header, validates the
# arguments, keeps the unfinished tail of a block for the next one, and turns a code into
# one message. Each row is found first (its terminating LF: memchr, the quote parity
# counted between LFs, at most max_row + 1 bytes looked at), then split into fields inside
# those bounds, so every byte is looked at a bounded number of times and nothing is read
# outside [0, len(buf)).

from libc.string cimport memchr, memcmp

from . import _csv_layout as _cl

cdef int C_OK = _cl.OK
cdef int C_ROW_TOO_LONG = _cl.ROW_TOO_LONG
cdef int C_UNCLOSED_QUOTE = _cl.UNCLOSED_QUOTE
cdef int C_BAD_QUOTE = _cl.BAD_QUOTE
cdef int C_BARE_CR = _cl.BARE_CR
cdef int C_FIELD_COUNT = _cl.FIELD_COUNT
cdef int C_NOT_UINT64 = _cl.NOT_UINT64
cdef int C_UINT64_RANGE = _cl.UINT64_RANGE
cdef int C_TS_SYNTAX = _cl.TS_SYNTAX
cdef int C_TS_TICKS_RANGE = _cl.TS_TICKS_RANGE
cdef int C_TS_DATE = _cl.TS_DATE
cdef int C_TS_TIME = _cl.TS_TIME
cdef int C_TS_OFFSET = _cl.TS_OFFSET
cdef int C_TS_RANGE = _cl.TS_RANGE
cdef int64_t C_ROLE_TS = _cl.ROLE_TIMESTAMP
cdef int64_t C_WINDOW = _cl.NAME_WINDOW
cdef int64_t C_MAX_OFFSET = _cl.MAX_OFFSET_MINUTES
cdef int64_t C_NAT = _cl.NAT
cdef int64_t C_TICKS_MIN = _wl.TICKS_MIN
cdef int64_t C_TICKS_MAX = _wl.TICKS_MAX
cdef int64_t C_FILETIME_EPOCH = _wl.FILETIME_UNIX_EPOCH

cdef enum:
    CSV_MAX_WANTED = 64   # _cl.MAX_WANTED: the per-row field table lives on the stack
    CSV_STR_FIELDS = 4    # _cl.STR_FIELDS

assert CSV_MAX_WANTED == _cl.MAX_WANTED and CSV_STR_FIELDS == _cl.STR_FIELDS


cdef inline int _csv_digits(const uint8_t *t, int64_t k, uint64_t *out) noexcept nogil:
    """1..20 ASCII digits -> 0 and the value; else -1 (not a uint64) or -2 (above 2**64 - 1)."""
    cdef uint64_t v = 0, d
    cdef int64_t i
    if k < 1 or k > 20:
        return -1
    for i in range(k):
        if t[i] < 48 or t[i] > 57:
            return -1
    for i in range(k):
        d = t[i] - 48
        if v > 1844674407370955161ULL or (v == 1844674407370955161ULL and d > 5):
            return -2
        v = v * 10 + d
    out[0] = v
    return 0


cdef inline int _csv_two(const uint8_t *t, int64_t *out) noexcept nogil:
    if t[0] < 48 or t[0] > 57 or t[1] < 48 or t[1] > 57:
        return -1
    out[0] = (t[0] - 48) * 10 + (t[1] - 48)
    return 0


cdef int _csv_timestamp(const uint8_t *t, int64_t k, int64_t *out) noexcept nogil:
    """ISO 8601 with Z or +-hh[:]mm (up to 9 fraction digits) or FILETIME ticks -> ns; 0 or a code."""
    cdef uint64_t ticks
    cdef int64_t y, y2, mo, d, h, mi, s, oh, om, off, frac, nfrac, i, dim, era, yoe, doy, doe, days, secs
    cdef int r
    if k == 0:
        out[0] = C_NAT
        return 0
    r = _csv_digits(t, k, &ticks)
    if r == 0 or (r == -2):
        if r == -2 or ticks < <uint64_t>C_TICKS_MIN or ticks > <uint64_t>C_TICKS_MAX:
            return C_TS_TICKS_RANGE
        out[0] = (<int64_t>ticks - C_FILETIME_EPOCH) * 100
        return 0
    # YYYY-MM-DD[T ]hh:mm:ss[.f{1,9}](Z|[+-]hh[:]mm)
    if k < 20:
        return C_TS_SYNTAX
    if (_csv_two(t, &y) or _csv_two(t + 2, &y2) or t[4] != 45 or _csv_two(t + 5, &mo) or t[7] != 45
            or _csv_two(t + 8, &d) or (t[10] != 84 and t[10] != 32) or _csv_two(t + 11, &h) or t[13] != 58
            or _csv_two(t + 14, &mi) or t[16] != 58 or _csv_two(t + 17, &s)):
        return C_TS_SYNTAX
    y = y * 100 + y2
    i = 19
    frac = 0
    if t[i] == 46:  # '.'
        i += 1
        nfrac = 0
        while i < k and t[i] >= 48 and t[i] <= 57 and nfrac < 10:
            frac = frac * 10 + (t[i] - 48)
            nfrac += 1
            i += 1
        if nfrac == 0 or nfrac > 9:
            return C_TS_SYNTAX
        while nfrac < 9:
            frac *= 10
            nfrac += 1
    off = 0
    oh = 0
    om = 0
    if i < k and t[i] == 90 and i + 1 == k:  # 'Z'
        pass
    elif i < k and (t[i] == 43 or t[i] == 45):  # '+' '-'
        if k - i == 6 and t[i + 3] == 58:
            if _csv_two(t + i + 1, &oh) or _csv_two(t + i + 4, &om):
                return C_TS_SYNTAX
        elif k - i == 5:
            if _csv_two(t + i + 1, &oh) or _csv_two(t + i + 3, &om):
                return C_TS_SYNTAX
        else:
            return C_TS_SYNTAX
        off = oh * 60 + om
        if t[i] == 45:
            off = -off
    else:
        return C_TS_SYNTAX
    if mo == 2:
        dim = 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    elif mo == 4 or mo == 6 or mo == 9 or mo == 11:
        dim = 30
    else:
        dim = 31
    if y < 1 or mo < 1 or mo > 12 or d < 1 or d > dim:
        return C_TS_DATE
    if h > 23 or mi > 59 or s > 59:
        return C_TS_TIME
    if om > 59 or oh * 60 + om > C_MAX_OFFSET:
        return C_TS_OFFSET
    y2 = y - (1 if mo <= 2 else 0)   # days from civil (H. Hinnant); y2 >= 0 here
    era = y2 // 400
    yoe = y2 - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    secs = ((days * 24 + h) * 60 + mi - off) * 60 + s
    # ns = secs * 10**9 + frac must lie in [-(2**63 - 1), 2**63 - 1], computed without overflow
    if secs >= 0:
        if secs > 9223372036LL or (secs == 9223372036LL and frac > 854775807):
            return C_TS_RANGE
        out[0] = secs * 1000000000LL + frac
    else:
        if secs < -9223372037LL or (secs == -9223372037LL and frac < 145224193):
            return C_TS_RANGE
        out[0] = (secs + 1) * 1000000000LL - (1000000000LL - frac)
    return 0


cdef struct CsvCtx:
    const uint8_t *b
    int64_t n
    int final
    uint8_t delim
    const int64_t *roles
    int64_t ncols
    int64_t nprops
    int64_t nstrs
    int64_t cap
    int64_t rec_stride
    uint8_t *records
    int64_t *strs
    int64_t *stamps
    int64_t *lines
    int64_t line
    int64_t max_row
    int64_t slot_col[CSV_MAX_WANTED]
    int64_t ts_col
    # result
    int64_t nrows
    int64_t consumed
    int err_code
    int64_t err_column
    int64_t err_offset
    int64_t err_length
    int64_t err_value


cdef inline int _csv_fail(CsvCtx *c, int code, int64_t row_start, int64_t column, int64_t offset,
                          int64_t length, int64_t value) noexcept nogil:
    c.consumed = row_start
    c.err_code = code
    c.err_column = column
    c.err_offset = offset
    c.err_length = length
    c.err_value = value
    return code


cdef int _csv_run(CsvCtx *c) noexcept nogil:
    cdef const uint8_t *b = c.b
    cdef const uint8_t *hit
    cdef int64_t n = c.n, p = 0, s, limit, q, seg, e, ce, nl, parity, f, k, after, j, role, off, ln
    cdef int64_t ts_off = 0, ts_len = 0, ts_esc = 0, slot, back, ref, o2, lastrow
    cdef int64_t fo[CSV_MAX_WANTED]
    cdef int64_t fl[CSV_MAX_WANTED]
    cdef int64_t fe[CSV_MAX_WANTED]
    cdef int esc, last, r
    cdef uint8_t ch, delim = c.delim
    cdef uint64_t v
    cdef uint8_t *row
    cdef int64_t *sp
    cdef int64_t *prev
    cdef int64_t width = c.nprops + c.nstrs
    for k in range(width):
        fo[k] = 0
        fl[k] = 0
        fe[k] = 0
    c.nrows = 0
    c.err_code = C_OK
    c.err_column = 0
    c.err_offset = 0
    c.err_length = 0
    c.err_value = 0
    while True:
        if c.nrows == c.cap or p == n:
            c.consumed = p
            return C_OK
        s = p
        # 1. the row's end: the first LF with an even number of quotes before it
        limit = n if n - s <= c.max_row + 1 else s + c.max_row + 1
        q = s
        parity = 0
        nl = 0
        e = -1
        while True:
            hit = <const uint8_t *>memchr(b + q, 10, <size_t>(limit - q))
            seg = limit if hit == NULL else hit - b
            for k in range(q, seg):
                parity ^= (b[k] == 34)
            if hit == NULL:
                break
            nl += 1
            if parity == 0:
                e = seg
                break
            q = seg + 1
        if e < 0:
            if n - s > c.max_row:
                return _csv_fail(c, C_ROW_TOO_LONG, s, 0, s, 0, 0)
            if not c.final:
                c.consumed = s
                return C_OK
            if parity:
                return _csv_fail(c, C_UNCLOSED_QUOTE, s, 0, s, 0, 0)
            e = n
        ce = e - 1 if (e > s and b[e - 1] == 13) else e
        if ce == s:  # a blank line
            c.line += nl
            p = e + 1 if e < n else n
            continue
        # 2. the fields, inside [s, ce)
        j = 0
        f = s
        while True:
            if f < ce and b[f] == 34:
                k = f + 1
                esc = 0
                while True:
                    hit = <const uint8_t *>memchr(b + k, 34, <size_t>(ce - k))
                    if hit == NULL:
                        return _csv_fail(c, C_UNCLOSED_QUOTE, s, j + 1, f, 0, 0)
                    k = hit - b
                    if k + 1 < ce and b[k + 1] == 34:
                        esc = 1
                        k += 2
                        continue
                    break
                off = f + 1
                ln = k - f - 1
                after = k + 1
                if after == ce:
                    last = 1
                elif b[after] == delim:
                    last = 0
                else:
                    return _csv_fail(c, C_BAD_QUOTE, s, j + 1, after, 0, 0)
            else:
                k = f
                while k < ce:
                    ch = b[k]
                    if ch == delim:
                        break
                    if ch == 34:
                        return _csv_fail(c, C_BAD_QUOTE, s, j + 1, k, 0, 0)
                    if ch == 13:
                        return _csv_fail(c, C_BARE_CR, s, j + 1, k, 0, 0)
                    k += 1
                off = f
                ln = k - f
                esc = 0
                after = k
                last = k == ce
            if j < c.ncols:
                role = c.roles[j]
                if role >= 0:
                    fo[role] = off
                    fl[role] = ln
                    fe[role] = esc
                elif role == C_ROLE_TS:
                    ts_off = off
                    ts_len = ln
                    ts_esc = esc
            j += 1
            if last:
                break
            f = after + 1
        if j != c.ncols:
            return _csv_fail(c, C_FIELD_COUNT, s, 0, s, 0, j)
        # 3. the values
        row = c.records + c.nrows * c.rec_stride
        for k in range(c.nprops):
            r = _csv_digits(b + fo[k], fl[k], &v)
            if r:
                return _csv_fail(c, C_NOT_UINT64 if r == -1 else C_UINT64_RANGE, s, c.slot_col[k] + 1, fo[k],
                                 fl[k], fe[k])
            for j in range(8):  # little-endian whatever the host
                row[8 * k + j] = <uint8_t>(v >> (8 * j))
        if c.ts_col >= 0:
            r = _csv_timestamp(b + ts_off, ts_len, c.stamps + c.nrows)
            if r:
                return _csv_fail(c, r, s, c.ts_col + 1, ts_off, ts_len, ts_esc)
        for k in range(c.nstrs):
            slot = c.nprops + k
            off = fo[slot]
            ln = fl[slot]
            ref = c.nrows
            lastrow = c.nrows - C_WINDOW if c.nrows > C_WINDOW else 0
            back = c.nrows - 1
            while back >= lastrow:
                prev = c.strs + (back * c.nstrs + k) * CSV_STR_FIELDS
                if prev[1] == ln and memcmp(b + prev[0], b + off, <size_t>ln) == 0:
                    ref = prev[3]
                    break
                back -= 1
            sp = c.strs + (c.nrows * c.nstrs + k) * CSV_STR_FIELDS
            sp[0] = off
            sp[1] = ln
            sp[2] = fe[slot]
            sp[3] = ref
        c.lines[c.nrows] = c.line
        c.nrows += 1
        c.line += nl
        p = e + 1 if e < n else n


@cython.boundscheck(False)
@cython.wraparound(False)
def csv_rows(const uint8_t[::1] buf, bint final, int delimiter, const int64_t[::1] roles, Py_ssize_t nprops,
             uint8_t[:, ::1] records, int64_t[:, :, ::1] strs, int64_t[::1] stamps, int64_t[::1] lines,
             int64_t line, int64_t max_row):
    """Parse the whole CSV rows at the start of ``buf``: a tuple (code, nrows, consumed, line,
    column, offset, length, value), codes from ``_csv_layout``.

    ``roles[j]`` says what column j is: -1 ignored, -2 the timestamp, k in [0, nprops) the
    uint64 written little-endian at byte 8k of each ``records`` row, k in [nprops, nprops + S)
    string slot k - nprops of ``strs`` (cap, S, 4): offset, length, has-"" flag, reference row
    (an earlier row of this call with the same bytes, or the row itself). ``len(roles)`` is
    the header's field count. ``stamps``: ns per row (NaT for an empty field). ``lines``: the
    line each row starts on. Stops after ``records.shape[0]`` rows, at the end of the data,
    before an unfinished row (unless ``final``) or at an error; ``consumed`` is where it
    stopped (an erroneous row's start), ``line`` the line there.
    """
    cdef CsvCtx c
    cdef Py_ssize_t cap = records.shape[0]
    cdef Py_ssize_t ncols = roles.shape[0]
    cdef Py_ssize_t nstrs = strs.shape[1]
    cdef Py_ssize_t j, want = nprops + nstrs, nts = 0
    cdef int64_t role
    if delimiter < 0 or delimiter > 255 or delimiter == 34 or delimiter == 10 or delimiter == 13:
        raise ValueError(f"delimiter must be a byte other than '\"', CR and LF, got {delimiter}")
    if nprops < 0 or want > CSV_MAX_WANTED:
        raise ValueError(f"nprops + strs.shape[1] must lie in [0, {CSV_MAX_WANTED}], got {nprops} + {nstrs}")
    if records.shape[1] < 8 * nprops:
        raise ValueError(f"records must have at least {8 * nprops} columns, got {records.shape[1]}")
    if strs.shape[0] != cap or strs.shape[2] != CSV_STR_FIELDS or lines.shape[0] != cap:
        raise ValueError(f"strs must have shape ({cap}, S, {CSV_STR_FIELDS}) and lines ({cap},)")
    if max_row < 1:
        raise ValueError(f"max_row must be >= 1, got {max_row}")
    for j in range(want):
        c.slot_col[j] = -1
    c.ts_col = -1
    for j in range(ncols):
        role = roles[j]
        if role >= want or role < C_ROLE_TS or (role >= 0 and c.slot_col[role] != -1) or (
                role == C_ROLE_TS and c.ts_col != -1):
            c.ts_col = -3
            break
        if role >= 0:
            c.slot_col[role] = j
        elif role == C_ROLE_TS:
            c.ts_col = j
    for j in range(want):
        if c.slot_col[j] == -1:
            c.ts_col = -3
    if c.ts_col == -3:
        raise ValueError("roles must name each slot 0 .. nprops + S - 1 once, the timestamp (-2) at most once, "
                         "and -1 elsewhere")
    if c.ts_col >= 0 and stamps.shape[0] < cap:
        raise ValueError(f"stamps must have at least {cap} entries")
    c.b = &buf[0] if buf.shape[0] else <const uint8_t *>b""
    c.n = buf.shape[0]
    c.final = final
    c.delim = <uint8_t>delimiter
    c.roles = &roles[0] if ncols else NULL
    c.ncols = ncols
    c.nprops = nprops
    c.nstrs = nstrs
    c.cap = cap
    c.rec_stride = records.shape[1]
    c.records = &records[0, 0] if cap and records.shape[1] else NULL
    c.strs = &strs[0, 0, 0] if cap and nstrs else NULL
    c.stamps = &stamps[0] if stamps.shape[0] else NULL
    c.lines = &lines[0] if cap else NULL
    c.line = line
    c.max_row = max_row
    with nogil:
        _csv_run(&c)
    return (c.err_code, c.nrows, c.consumed, c.line, c.err_column, c.err_offset, c.err_length, c.err_value)


# =======================================================================================
# Perfmon PDH-CSV / PDH-TSV rows (``formats.pdhcsv``): codes and limits in ``_pdh_layout``,
# the twin is ``_slow.pdh_rows``. One pass per row: each field is scanned once to its end
# (no line break may sit inside quotes, so a row is one line), then its value is read from
# the bytes just scanned. Everything is bounded by ``max_row`` per row: linear time.
# =======================================================================================

from libc.string cimport memcmp as _p_memcmp
from libc.stdint cimport int64_t as _p_int64_t

from . import _pdh_layout as _pl

cdef int P_OK = _pl.OK
cdef int P_ROW_TOO_LONG = _pl.ROW_TOO_LONG
cdef int P_UNCLOSED_QUOTE = _pl.UNCLOSED_QUOTE
cdef int P_BAD_QUOTE = _pl.BAD_QUOTE
cdef int P_BARE_CR = _pl.BARE_CR
cdef int P_FIELD_COUNT = _pl.FIELD_COUNT
cdef int P_NUL_BYTE = _pl.NUL_BYTE
cdef int P_NOT_NUMBER = _pl.NOT_NUMBER
cdef int P_NOT_WHOLE = _pl.NOT_WHOLE
cdef int P_NEGATIVE = _pl.NEGATIVE
cdef int P_RANGE = _pl.RANGE
cdef int P_TIME_SYNTAX = _pl.TIME_SYNTAX
cdef int P_TIME_DATE = _pl.TIME_DATE
cdef int P_TIME_TIME = _pl.TIME_TIME
cdef int P_TIME_RANGE = _pl.TIME_RANGE
cdef _p_int64_t P_ROLE_TS = _pl.ROLE_TIMESTAMP
cdef _p_int64_t P_EXP_CLAMP = _pl.EXPONENT_CLAMP
cdef bytes _P_MAX_BYTES = _pl.UINT64_MAX_TEXT
cdef bytes _P_ROUND_BYTES = _pl.ROUNDS_TO_2_64
cdef const char *P_MAX_TEXT = _P_MAX_BYTES
cdef const char *P_ROUND_TEXT = _P_ROUND_BYTES

assert len(_P_MAX_BYTES) == 20 and len(_P_ROUND_BYTES) == 20


cdef int _pdh_value(const uint8_t *t, _p_int64_t k, uint64_t *out, uint8_t *missing) noexcept nogil:
    """A cell as a uint64: ``%.20g`` text of a whole number -> 0; spaces only -> 0 with ``missing``; else a code.

    The value is exact from the decimal text (no double): digits times a power of ten.
    20-digit values between 2**64 - 1 and 2**64 + 2048 are what rounds to the double
    2**64: the counter was at most 2**64 - 1, which is kept.
    """
    cdef _p_int64_t i = 0, P = -1, m = 0, a = -1, z = -1, e = 0, x, L, pos, d
    cdef int neg = 0, eneg = 0
    cdef uint8_t ch
    cdef char digs[20]
    cdef uint64_t v
    while i < k and t[i] == 32:
        i += 1
    if i == k and k:  # " ": no sample (an empty cell is no number: a row cut short)
        missing[0] = 1
        out[0] = 0
        return P_OK
    missing[0] = 0
    i = 0
    if t[0] == 45 or t[0] == 43:  # '-' '+'
        neg = t[0] == 45
        i = 1
    while i < k:
        ch = t[i]
        if ch >= 48 and ch <= 57:
            if ch != 48:
                if a < 0:
                    a = m
                z = m
            m += 1
        elif ch == 46 and P < 0:  # '.'
            P = m
        else:
            break
        i += 1
    if m == 0:
        return P_NOT_NUMBER
    if P < 0:
        P = m
    if i < k:
        if t[i] != 101 and t[i] != 69:  # 'e' 'E'
            return P_NOT_NUMBER
        i += 1
        if i < k and (t[i] == 43 or t[i] == 45):
            eneg = t[i] == 45
            i += 1
        if i == k:
            return P_NOT_NUMBER
        while i < k:
            ch = t[i]
            if ch < 48 or ch > 57:
                return P_NOT_NUMBER
            if e < P_EXP_CLAMP:
                e = e * 10 + (ch - 48)
            i += 1
        if e > P_EXP_CLAMP:
            e = P_EXP_CLAMP
        if eneg:
            e = -e
    if a < 0:  # zero, whatever its sign
        out[0] = 0
        return P_OK
    if neg:
        return P_NEGATIVE
    x = P - 1 - z + e   # the power of ten of the last nonzero digit
    if x < 0:
        return P_NOT_WHOLE
    L = P - a + e       # the digits of the whole number
    if L > 20:
        return P_RANGE
    pos = 0
    d = 0
    i = 1 if (t[0] == 45 or t[0] == 43) else 0
    while d <= z:
        ch = t[i]
        i += 1
        if ch == 46:
            continue
        if d >= a:
            digs[pos] = <char>ch
            pos += 1
        d += 1
    while pos < L:
        digs[pos] = 48
        pos += 1
    if L == 20 and _p_memcmp(digs, P_MAX_TEXT, 20) > 0:
        if _p_memcmp(digs, P_ROUND_TEXT, 20) > 0:
            return P_RANGE
        out[0] = 0xFFFFFFFFFFFFFFFFULL
        return P_OK
    v = 0
    for pos in range(L):
        v = v * 10 + <uint64_t>(digs[pos] - 48)
    out[0] = v
    return P_OK


cdef inline int _pdh_two(const uint8_t *t, _p_int64_t *out) noexcept nogil:
    if t[0] < 48 or t[0] > 57 or t[1] < 48 or t[1] > 57:
        return -1
    out[0] = (t[0] - 48) * 10 + (t[1] - 48)
    return 0


cdef int _pdh_time(const uint8_t *t, _p_int64_t k, _p_int64_t *out) noexcept nogil:
    """``MM/DD/YYYY HH:MM:SS[.f{1,9}]`` (perfmon's local time) -> ns since 1970 read as UTC; 0 or a code."""
    cdef _p_int64_t mo, d, y, y2, h, mi, s, frac = 0, nfrac = 0, i, dim, era, yoe, doy, doe, days, secs
    if k < 19:
        return P_TIME_SYNTAX
    if (_pdh_two(t, &mo) or t[2] != 47 or _pdh_two(t + 3, &d) or t[5] != 47 or _pdh_two(t + 6, &y)
            or _pdh_two(t + 8, &y2) or t[10] != 32 or _pdh_two(t + 11, &h) or t[13] != 58
            or _pdh_two(t + 14, &mi) or t[16] != 58 or _pdh_two(t + 17, &s)):
        return P_TIME_SYNTAX
    y = y * 100 + y2
    if k > 19:
        if t[19] != 46 or k == 20 or k > 29:
            return P_TIME_SYNTAX
        for i in range(20, k):
            if t[i] < 48 or t[i] > 57:
                return P_TIME_SYNTAX
            frac = frac * 10 + (t[i] - 48)
            nfrac += 1
        while nfrac < 9:
            frac *= 10
            nfrac += 1
    if mo == 2:
        dim = 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    elif mo == 4 or mo == 6 or mo == 9 or mo == 11:
        dim = 30
    else:
        dim = 31
    if y < 1 or mo < 1 or mo > 12 or d < 1 or d > dim:
        return P_TIME_DATE
    if h > 23 or mi > 59 or s > 59:
        return P_TIME_TIME
    y2 = y - (1 if mo <= 2 else 0)   # days from civil (H. Hinnant); y2 >= 0 here
    era = y2 // 400
    yoe = y2 - era * 400
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    secs = ((days * 24 + h) * 60 + mi) * 60 + s
    if secs >= 0:
        if secs > 9223372036LL or (secs == 9223372036LL and frac > 854775807):
            return P_TIME_RANGE
        out[0] = secs * 1000000000LL + frac
    else:
        if secs < -9223372037LL or (secs == -9223372037LL and frac < 145224193):
            return P_TIME_RANGE
        out[0] = (secs + 1) * 1000000000LL - (1000000000LL - frac)
    return 0


cdef struct PdhCtx:
    const uint8_t *b
    _p_int64_t n
    int final
    uint8_t delim
    const _p_int64_t *roles
    _p_int64_t ncols
    _p_int64_t nslots
    _p_int64_t cap
    uint64_t *values
    uint8_t *missing
    _p_int64_t *stamps
    _p_int64_t *lines
    _p_int64_t line
    _p_int64_t max_row
    # result
    _p_int64_t nrows
    _p_int64_t consumed
    int err_code
    _p_int64_t err_column
    _p_int64_t err_offset
    _p_int64_t err_length


cdef inline int _pdh_fail(PdhCtx *c, int code, _p_int64_t row_start, _p_int64_t column, _p_int64_t offset,
                          _p_int64_t length) noexcept nogil:
    c.consumed = row_start
    c.err_code = code
    c.err_column = column
    c.err_offset = offset
    c.err_length = length
    return code


cdef int _pdh_run(PdhCtx *c) noexcept nogil:
    cdef const uint8_t *b = c.b
    cdef _p_int64_t n = c.n, p = 0, s, limit, f, k, off, ln, after, j, role, e
    cdef uint8_t ch, delim = c.delim
    cdef int r, more, parsed
    cdef uint64_t *vrow
    cdef uint64_t v
    cdef uint8_t *mrow
    cdef uint8_t qstop[256]   # bytes that end a quoted field's scan
    cdef uint8_t ustop[256]   # ... an unquoted field's
    for k in range(256):
        qstop[k] = 0
        ustop[k] = 0
    qstop[34] = qstop[10] = qstop[13] = qstop[0] = 1
    ustop[34] = ustop[10] = ustop[13] = ustop[0] = 1
    ustop[delim] = 1
    c.nrows = 0
    c.err_code = P_OK
    c.err_column = 0
    c.err_offset = 0
    c.err_length = 0
    while True:
        if c.nrows == c.cap or p == n:
            c.consumed = p
            return P_OK
        s = p
        if b[s] == 10:  # a blank line
            c.line += 1
            p = s + 1
            continue
        if b[s] == 13:
            if s + 1 < n:
                if b[s + 1] == 10:
                    c.line += 1
                    p = s + 2
                    continue
                return _pdh_fail(c, P_BARE_CR, s, 0, s, 0)
            if not c.final:
                c.consumed = s
                return P_OK
            p = n
            continue
        limit = n if n - s <= c.max_row else s + c.max_row
        vrow = c.values + c.nrows * c.nslots
        mrow = c.missing + c.nrows * c.nslots
        j = 0
        f = s
        e = -1
        while True:
            parsed = 0
            if f < limit and b[f] == 34:
                k = f + 1
                if j < c.ncols and c.roles[j] >= 0:
                    # the common cell: "<1..19 digits>" read in the scan (what _pdh_value gives for it)
                    v = 0
                    while k < limit and <uint8_t>(b[k] - 48) <= 9:
                        v = v * 10 + (b[k] - 48)
                        k += 1
                    if k < limit and b[k] == 34 and 1 <= k - f - 1 <= 19:
                        vrow[c.roles[j]] = v
                        mrow[c.roles[j]] = 0
                        parsed = 1
                while k < limit and not qstop[b[k]]:
                    k += 1
                if k < limit:
                    if b[k] == 0:
                        return _pdh_fail(c, P_NUL_BYTE, s, j + 1, k, 0)
                    if b[k] != 34:
                        return _pdh_fail(c, P_UNCLOSED_QUOTE, s, j + 1, f, 0)
                elif limit < n:
                    return _pdh_fail(c, P_ROW_TOO_LONG, s, 0, s, 0)
                elif not c.final:
                    c.consumed = s
                    return P_OK
                else:
                    return _pdh_fail(c, P_UNCLOSED_QUOTE, s, j + 1, f, 0)
                off = f + 1
                ln = k - f - 1
                after = k + 1
            else:
                k = f
                while k < limit and not ustop[b[k]]:
                    k += 1
                if k < limit:
                    if b[k] == 34:
                        return _pdh_fail(c, P_BAD_QUOTE, s, j + 1, k, 0)
                    if b[k] == 0:
                        return _pdh_fail(c, P_NUL_BYTE, s, j + 1, k, 0)
                off = f
                ln = k - f
                after = k
            more = 0
            if after >= limit:
                if limit < n:
                    return _pdh_fail(c, P_ROW_TOO_LONG, s, 0, s, 0)
                if not c.final:
                    c.consumed = s
                    return P_OK
                e = n
            else:
                ch = b[after]
                if ch == delim:
                    more = 1
                elif ch == 10:
                    e = after + 1
                elif ch == 13:
                    if after + 1 < n:
                        if b[after + 1] != 10:
                            return _pdh_fail(c, P_BARE_CR, s, j + 1, after, 0)
                        e = after + 2
                    elif not c.final:
                        c.consumed = s
                        return P_OK
                    else:
                        e = n
                elif ch == 0:
                    return _pdh_fail(c, P_NUL_BYTE, s, j + 1, after, 0)
                else:
                    return _pdh_fail(c, P_BAD_QUOTE, s, j + 1, after, 0)
            if j < c.ncols:
                role = c.roles[j]
                if role >= 0 and not parsed:
                    r = _pdh_value(b + off, ln, vrow + role, mrow + role)
                    if r:
                        return _pdh_fail(c, r, s, j + 1, off, ln)
                elif role == P_ROLE_TS:
                    r = _pdh_time(b + off, ln, c.stamps + c.nrows)
                    if r:
                        return _pdh_fail(c, r, s, j + 1, off, ln)
            j += 1
            if not more:
                break
            f = after + 1
        if j != c.ncols:
            return _pdh_fail(c, P_FIELD_COUNT, s, 0, s, j)
        c.lines[c.nrows] = c.line
        c.nrows += 1
        c.line += 1
        p = e


@cython.boundscheck(False)
@cython.wraparound(False)
def pdh_rows(const uint8_t[::1] buf not None, bint final, int delimiter, const _p_int64_t[::1] roles not None,
             uint64_t[:, ::1] values not None, uint8_t[:, ::1] missing not None, _p_int64_t[::1] stamps not None,
             _p_int64_t[::1] lines not None, _p_int64_t line, _p_int64_t max_row):
    """Parse the whole perfmon rows at the start of ``buf``: a tuple (code, nrows, consumed,
    line, column, offset, length), codes from ``_pdh_layout``.

    ``roles[j]`` says what column j is: -1 ignored, -2 the time (exactly one column), k in
    [0, S) value slot k of each ``values`` row (S = ``values.shape[1]``, each slot once).
    A blank cell (spaces only) sets ``missing`` and the value 0. ``stamps``: the local time
    of each row in ns, read as if UTC. ``lines``: the line of each row. A row is one line
    (a line break inside quotes is an error), at most ``max_row`` bytes. Stops after
    ``values.shape[0]`` rows, at the end of the data, before an unfinished row (unless
    ``final``) or at an error; ``consumed`` is where it stopped (an erroneous row's start),
    ``line`` the line there; ``column`` is 1-based (0: the whole row), ``length`` the
    field count for FIELD_COUNT.
    """
    cdef PdhCtx c
    cdef Py_ssize_t cap = values.shape[0]
    cdef Py_ssize_t nslots = values.shape[1]
    cdef Py_ssize_t ncols = roles.shape[0]
    cdef Py_ssize_t j, nts = 0
    cdef _p_int64_t role
    cdef bytearray seen
    if delimiter < 1 or delimiter > 255 or delimiter == 34 or delimiter == 10 or delimiter == 13:
        raise ValueError(f"delimiter must be a byte other than NUL, '\"', CR and LF, got {delimiter}")
    if missing.shape[0] != cap or missing.shape[1] != nslots:
        raise ValueError(f"missing must have the shape of values ({cap}, {nslots})")
    if stamps.shape[0] != cap or lines.shape[0] != cap:
        raise ValueError(f"stamps and lines must have shape ({cap},)")
    if max_row < 1:
        raise ValueError(f"max_row must be >= 1, got {max_row}")
    seen = bytearray(nslots)
    for j in range(ncols):
        role = roles[j]
        if role == P_ROLE_TS:
            nts += 1
        elif role >= nslots or role < -1 or (role >= 0 and seen[role]):
            nts = -1
            break
        elif role >= 0:
            seen[role] = 1
    if nts != 1 or (nslots and seen.count(0)):
        raise ValueError("roles must name each value slot 0 .. values.shape[1] - 1 once, the time (-2) once, "
                         "and -1 elsewhere")
    c.b = &buf[0] if buf.shape[0] else <const uint8_t *>b""
    c.n = buf.shape[0]
    c.final = final
    c.delim = <uint8_t>delimiter
    c.roles = &roles[0]
    c.ncols = ncols
    c.nslots = nslots
    c.cap = cap
    c.values = &values[0, 0] if cap and nslots else NULL
    c.missing = &missing[0, 0] if cap and nslots else NULL
    c.stamps = &stamps[0] if cap else NULL
    c.lines = &lines[0] if cap else NULL
    c.line = line
    c.max_row = max_row
    with nogil:
        _pdh_run(&c)
    return (c.err_code, c.nrows, c.consumed, c.line, c.err_column, c.err_offset, c.err_length)


# --- Deltas fused with rates (rates() without a full array of deltas) -------------------

cdef extern from "_kernel.h" nogil:
    void ips_delta_rates_run(const unsigned char *p, const unsigned char *c, size_t nrows,
                                 int policy, const uint64_t *counter, const uint8_t *cols, int ncols,
                                 const double *seconds, size_t seconds_step, double *out,
                                 uint64_t *scratch, size_t scratch_rows, int streaming, int path)

cdef enum:
    _RATE_BLOCK = 256  # rows of deltas per block: 43 KB, stays in the L1/L2 cache


def delta_rate_rows(prev, cur, counters, str policy not None, columns, seconds, out):
    """``out[i, j] = policy(cur[i] - prev[i])[columns[j]] / seconds[i]``.

    ``delta_rows`` then ``rate_rows`` in one pass, without an array of deltas (AVX2: in
    registers, else cache-sized blocks): the same bits. ``prev``/``cur``: (m, 168) uint8 rows (any row stride);
    ``counters``: (21,) uint8; ``columns``: (k,) uint8 < 21; ``seconds``: (m,) or (1,)
    float64; ``out``: (m, k) C-contiguous float64.
    """
    if prev is None or cur is None or counters is None or columns is None or seconds is None or out is None:
        raise TypeError("prev, cur, counters, columns, seconds and out must be arrays, not None")
    cdef const uint8_t[:, ::view.contiguous] p = prev
    cdef const uint8_t[:, ::view.contiguous] c = cur
    cdef const uint8_t[::1] kinds = counters
    cdef const uint8_t[::1] cols = columns
    cdef const double[::1] sec = seconds
    cdef double[:, ::1] o = out
    cdef Py_ssize_t m = p.shape[0], k = cols.shape[0], i, j, sstep
    cdef uint64_t counter[NF]
    cdef uint64_t *scratch
    cdef int code, streaming
    if policy not in _POLICIES:
        raise ValueError(f"policy must be one of {', '.join(_POLICIES)}, got {policy!r}")
    code = _POLICIES[policy]
    _check_rows("prev", p.shape, m, RECORD_BYTES)
    _check_rows("cur", c.shape, m, RECORD_BYTES)
    if kinds.shape[0] != NF:
        raise ValueError(f"counters must have shape ({NF},), got ({kinds.shape[0]},)")
    sstep = _rate_seconds_step(m, cols, sec, o)
    if m == 0:
        return
    if k and ((<char *>&o[0, 0] < <char *>&p[m - 1, 0] + RECORD_BYTES and <char *>&p[0, 0] < <char *>&o[0, 0] + m * k * 8)
              or (<char *>&o[0, 0] < <char *>&c[m - 1, 0] + RECORD_BYTES
                  and <char *>&c[0, 0] < <char *>&o[0, 0] + m * k * 8)):
        raise ValueError("out must not overlap prev or cur")
    for j in range(NF):
        counter[j] = 0xFFFFFFFFFFFFFFFFULL if kinds[j] else 0
    streaming = m * k * 8 > STREAMING_THRESHOLD
    scratch = <uint64_t *>malloc(_RATE_BLOCK * NF * 8)
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil:
            if p.strides[0] == RECORD_BYTES and c.strides[0] == RECORD_BYTES:
                ips_delta_rates_run(&p[0, 0], &c[0, 0], <size_t>m, code, counter,
                                           &cols[0] if k else NULL, <int>k, &sec[0], sstep,
                                           &o[0, 0] if k else NULL, scratch, _RATE_BLOCK, streaming, _path)
            else:
                for i in range(m):
                    ips_delta_rates_run(&p[i, 0], &c[i, 0], 1, code, counter,
                                                &cols[0] if k else NULL, <int>k, &sec[i * sstep], 0,
                                                &o[i, 0] if k else NULL, scratch, 1, 0, _path)
    finally:
        free(scratch)


# --- Text rows for the CSV and JSON Lines writers ----------------------------------------

from libc.stdint cimport int64_t as _t_int64_t
from libc.string cimport memcpy as _t_memcpy
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport strlen as _t_strlen
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_Resize

cdef extern from "Python.h":
    char *PyOS_double_to_string(double val, char format_code, int precision, int flags, int *ptype) except NULL
    void PyMem_Free(void *p)
    int Py_DTSF_ADD_DOT_0

cdef extern from "_kernel.h" nogil:
    size_t ips_u64_text(uint64_t v, char *dst)
    size_t ips_i64_text(_t_int64_t v, char *dst)
    size_t ips_time_text(_t_int64_t ns, int frac_digits, char *dst)

cdef enum:
    T_U64 = 0        # uint64: str(int)
    T_I64 = 1        # int64: str(int)
    T_F64_CSV = 2    # float64: repr; NaN -> empty
    T_F64_JSON = 3   # float64: repr; NaN, inf -> null
    T_DICT = 4       # codes (int64 as uint64) into a table of texts
    T_FIXED_CSV = 5  # (m, w) bytes, NUL-padded: as they are
    T_FIXED_JSON = 6  # quoted; an empty one -> null
    T_TIME_CSV = 7   # int64 ns since the epoch (as uint64): ISO 8601 UTC; NaT -> empty
    T_TIME_JSON = 8  # the same, quoted; NaT -> null
    T_FLOAT_MAX = 32  # longest float text (repr of a double is at most 24 bytes)


cdef _text_check(list columns, bytes kinds, list tables, list seps, bytes term, Py_ssize_t start, Py_ssize_t stop):
    cdef Py_ssize_t k = len(kinds), j
    if len(columns) != k or len(tables) != k or len(seps) != k:
        raise ValueError(f"columns, kinds, tables and seps must have the same length, got "
                         f"{len(columns)}, {k}, {len(tables)}, {len(seps)}")
    if start < 0 or stop < start:
        raise ValueError(f"need 0 <= start <= stop, got {start}, {stop}")
    for j in range(k):
        if kinds[j] > T_TIME_JSON:
            raise ValueError(f"kinds[{j}] must be 0..8, got {kinds[j]}")
        if columns[j] is None:
            raise TypeError(f"columns[{j}] must be an array, not None")
        if type(seps[j]) is not bytes:
            raise TypeError(f"seps[{j}] must be bytes")
        if kinds[j] == T_DICT:
            if type(tables[j]) is not tuple or any(type(t) is not bytes for t in tables[j]):
                raise TypeError(f"tables[{j}] must be a tuple of bytes")
        if kinds[j] >= T_TIME_CSV and (type(tables[j]) is not int or tables[j] not in (0, 3, 6, 9)):
            raise ValueError(f"tables[{j}] must be the digits of a second: 0, 3, 6 or 9")


def format_rows(list columns not None, bytes kinds not None, list tables not None, list seps not None,
                bytes term not None, Py_ssize_t start, Py_ssize_t stop):
    """Rows ``start`` to ``stop`` as text (a bytearray): for each row, ``seps[j]`` then
    column ``j``'s value for every ``j``, then ``term``.

    ``kinds[j]`` (``columns[j]``): 0 uint64 / 1 int64 (1-D uint64 view, any stride): the
    decimal integer; 2 / 3 float64 (uint64 view of its bits): ``repr`` (Python's shortest
    round trip), NaN empty (2) or any non-finite ``null`` (3); 4 (int64 codes viewed as
    uint64): ``tables[j][code]``; 5 / 6 ((m, w) uint8, NUL-padded): the bytes as they
    are (5), or quoted and ``null`` when empty (6); 7 / 8 (int64 nanoseconds viewed as
    uint64): ISO 8601 UTC with ``tables[j]`` digits of the second, as numpy's
    ``datetime_as_string(..., timezone="UTC")`` (years 1678-2261), NaT empty (7) or
    ``null`` (8), quoted in 8.
    """
    _text_check(columns, kinds, tables, seps, term, start, stop)
    cdef Py_ssize_t k = len(kinds), j, i, w, n
    cdef list keep = []
    cdef const uint64_t[:] col
    cdef const uint8_t[:, ::1] fcol
    cdef size_t rowmax = PyBytes_GET_SIZE(term)
    cdef uint64_t code
    if k > 256:
        raise ValueError(f"at most 256 columns, got {k}")
    cdef const char *ptrs[256]
    cdef Py_ssize_t strides[256]
    cdef Py_ssize_t widths[256]
    cdef const char *sep_text[256]
    cdef Py_ssize_t sep_len[256]
    cdef int kind_of[256]
    cdef char sep_pad[256][32]  # short separators, copied 32 bytes at a time (the output has slack)
    for j in range(k):
        rowmax += PyBytes_GET_SIZE(seps[j])
        sep_text[j] = PyBytes_AS_STRING(seps[j])
        sep_len[j] = PyBytes_GET_SIZE(seps[j])
        kind_of[j] = kinds[j]
        if sep_len[j] <= 32:
            _t_memcpy(sep_pad[j], sep_text[j], sep_len[j])
        if kinds[j] == T_FIXED_CSV or kinds[j] == T_FIXED_JSON:
            fcol = columns[j]
            if fcol.shape[0] < stop:
                raise ValueError(f"columns[{j}] has {fcol.shape[0]} rows, fewer than stop={stop}")
            rowmax += fcol.shape[1] + 2
            keep.append(fcol)
            ptrs[j] = <const char *>&fcol[0, 0] if fcol.shape[0] and fcol.shape[1] else NULL
            strides[j] = fcol.strides[0]
            widths[j] = fcol.shape[1]
        else:
            col = columns[j]
            if col.shape[0] < stop:
                raise ValueError(f"columns[{j}] has {col.shape[0]} rows, fewer than stop={stop}")
            if kinds[j] == T_DICT:
                rowmax += max([len(t) for t in tables[j]], default=0)
                for i in range(start, stop):
                    if col[i] >= <uint64_t>len(tables[j]):
                        raise ValueError(f"columns[{j}][{i}]: code {<_t_int64_t>col[i]} is not in its table of "
                                         f"{len(tables[j])}")
            else:
                rowmax += T_FLOAT_MAX
            if kinds[j] >= T_TIME_CSV:
                widths[j] = tables[j]
            keep.append(col)
            ptrs[j] = <const char *>&col[0] if col.shape[0] else NULL
            strides[j] = col.strides[0]
            if kinds[j] < T_TIME_CSV:
                widths[j] = 8
    rowmax = max(rowmax, 4)  # "null" for a fixed column
    if stop == start:
        return bytearray()
    cdef bytearray buf = PyByteArray_FromStringAndSize(NULL, rowmax * (stop - start) + 32)
    cdef char *out = PyByteArray_AS_STRING(buf)
    cdef char *o = out
    cdef char *f
    cdef const char *src
    cdef double x
    cdef bytes t
    cdef tuple table
    cdef int kind
    for i in range(start, stop):
        for j in range(k):
            if sep_len[j] <= 32:
                _t_memcpy(o, sep_pad[j], 32)
            else:
                _t_memcpy(o, sep_text[j], sep_len[j])
            o += sep_len[j]
            kind = kind_of[j]
            src = ptrs[j] + i * strides[j]
            if kind <= T_DICT or kind >= T_TIME_CSV:
                _t_memcpy(&code, src, 8)
            if kind == T_U64:
                o += ips_u64_text(code, o)
            elif kind == T_I64:
                o += ips_i64_text(<_t_int64_t>code, o)
            elif kind == T_F64_CSV or kind == T_F64_JSON:
                _t_memcpy(&x, &code, 8)
                if x != x or (kind == T_F64_JSON and x - x != 0.0):  # NaN; or inf in JSON
                    if kind == T_F64_JSON:
                        _t_memcpy(o, b"null", 4)
                        o += 4
                else:
                    f = PyOS_double_to_string(x, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
                    n = _t_strlen(f)
                    _t_memcpy(o, f, n)
                    PyMem_Free(f)
                    o += n
            elif kind >= T_TIME_CSV:
                if code == 0x8000000000000000ULL:  # NaT
                    if kind == T_TIME_JSON:
                        _t_memcpy(o, b"null", 4)
                        o += 4
                elif kind == T_TIME_JSON:
                    o[0] = 34
                    n = ips_time_text(<_t_int64_t>code, <int>widths[j], o + 1)
                    o[n + 1] = 34
                    o += n + 2
                else:
                    o += ips_time_text(<_t_int64_t>code, <int>widths[j], o)
            elif kind == T_DICT:
                table = <tuple>tables[j]
                t = <bytes>table[code]
                _t_memcpy(o, PyBytes_AS_STRING(t), PyBytes_GET_SIZE(t))
                o += PyBytes_GET_SIZE(t)
            else:
                w = widths[j]
                while w > 0 and src[w - 1] == 0:
                    w -= 1
                if kind == T_FIXED_JSON and w == 0:
                    _t_memcpy(o, b"null", 4)
                    o += 4
                elif kind == T_FIXED_JSON:
                    o[0] = 34
                    _t_memcpy(o + 1, src, w)
                    o[w + 1] = 34
                    o += w + 2
                elif w:
                    _t_memcpy(o, src, w)
                    o += w
        _t_memcpy(o, PyBytes_AS_STRING(term), PyBytes_GET_SIZE(term))
        o += PyBytes_GET_SIZE(term)
    PyByteArray_Resize(buf, o - out)
    return buf
