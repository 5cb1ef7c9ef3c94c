"""Graves' step as one compiled loop: the fast path, used when numba is
installed.

numpy evaluates eqs. 38-41 one operation at a time, so even the blocked driver
in :mod:`graves.blocks` makes 16 passes over every block.  A compiled loop makes
one pass, keeping each element's intermediate values in registers, and so
reads ``w, ∇, n, g, Δ`` and writes ``w, n, g, Δ`` once per step: the 9-pass
memory floor of chapter 11.

:func:`graves.core.graves_step` stays the one statement of the formula.  The
loop below is its compiled transcription, and a second loop transcribes
:func:`graves.core.graves_recursive_step` (the spread kept by its recursion):
the same operations on the same operands in the same order, with the
hyperparameters rounded to the parameter's dtype exactly as numpy rounds them,
so that both paths give the same bits (``tests/test_fused.py`` checks this on
random data, float32 and float64).  It is used only for float32 and float64;
anything else, and every other step function, runs on the numpy path.

numba is optional.  Without it, :data:`AVAILABLE` is False and the package runs
on numpy alone; an optimizer built with ``compiled=False`` does so as well.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from . import core

try:
    import numba
    from numba.extending import intrinsic
except ImportError:  # the pure-numpy path is complete on its own
    numba = None

#: True when the compiled kernels can be used in this environment.
AVAILABLE = numba is not None

#: dtypes the kernels are compiled for; float16 arithmetic stays with numpy,
#: which rounds every operation to float16 in a way numba does not reproduce.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _graves_loop(
    w, grad, n, g, delta, lr, alpha, one_minus_alpha, momentum, eps
):
    # The order of every operation is core.graves_step's, so the rounding is
    # too: ema_update computes (decay·average) + ((1 − decay)·x), and the step
    # divides ∇ by the root before multiplying by lr.
    for i in range(w.size):
        x = grad[i]
        n_i = n[i] * alpha + (x * x) * one_minus_alpha
        g_i = g[i] * alpha + x * one_minus_alpha
        d_i = delta[i] * momentum - (x / np.sqrt((n_i - g_i * g_i) + eps)) * lr
        n[i] = n_i
        g[i] = g_i
        delta[i] = d_i
        w[i] = w[i] + d_i


def _graves_recursive_loop(
    w,
    grad,
    s,
    g,
    delta,
    lr,
    alpha,
    one_minus_alpha,
    alpha_one_minus_alpha,
    momentum,
    eps,
):
    # core.centered_rmsprop_step's recursive branch, operation for operation:
    # s′·alpha + ((∇ − g′)²)·(alpha(1 − alpha)), with g′ read before g moves.
    for i in range(w.size):
        x = grad[i]
        d = x - g[i]
        s_i = s[i] * alpha + (d * d) * alpha_one_minus_alpha
        g_i = g[i] * alpha + x * one_minus_alpha
        d_i = delta[i] * momentum - (x / np.sqrt(s_i + eps)) * lr
        s[i] = s_i
        g[i] = g_i
        delta[i] = d_i
        w[i] = w[i] + d_i


def _any_nonfinite_loop(bits, exponent_mask):
    # A float is NaN or infinite exactly when its exponent bits are all ones,
    # so the largest masked exponent equals the mask exactly when one is.  An
    # integer maximum on the raw bits vectorises (a float comparison chain with
    # an early exit would not), and reading the two halves side by side keeps
    # twice the memory reads in flight that one forward run does: on a large
    # array the check is then limited by the memory, not by waiting for it.
    half = bits.size // 2
    low = high = exponent_mask ^ exponent_mask  # zero, of the bits' type
    for i in range(half):
        low = max(low, bits[i] & exponent_mask)
        high = max(high, bits[half + i] & exponent_mask)
    for i in range(2 * half, bits.size):
        low = max(low, bits[i] & exponent_mask)
    return max(low, high) == exponent_mask


# -- many arrays in one call ---------------------------------------------------
#
# The loops below reach many separate arrays through a table: ``w_at[k]`` and
# ``grad_at[k]`` are the addresses of parameter k's and gradient k's first
# elements, and its state is ``n[offsets[k]:offsets[k + 1]]`` (and so on) of
# flat state buffers.  Elements are numbered across all arrays, so a thread
# takes the elements ``first`` to ``last`` whatever arrays they fall in.
# :mod:`graves.segments` builds the table from arrays it has checked and holds
# references to them, so the addresses stay valid.

#: Elements a check reads forwards before stepping back to the chunk before
#: it.  Long enough (1 MiB of float32, 2 MiB of float64) for the hardware
#: prefetcher to stream each chunk at full speed, as it cannot on short chunks
#: taken backwards; short enough that the chunks read last are still in cache
#: when the step starts on them.
CHECK_CHUNK = 1 << 18


def _first_segment(offsets, first):
    # the segment holding element ``first``: the last k with offsets[k] <= first
    lo, hi = 0, offsets.size - 2
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if offsets[mid] <= first:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _stretch(at, offsets, k, first, last, like):
    # array k of the table (at ``at[k]``) where it meets elements first..last,
    # as elements of like's dtype, and their numbers there: lo..hi
    base = offsets[k]
    lo, hi = max(first, base), min(last, offsets[k + 1])
    whole = numba.carray(_pointer_like(at[k], like), offsets[k + 1] - base)
    return whole[lo - base : hi - base], lo, hi


def _any_nonfinite_segments_loop(
    grad_at, offsets, bits_like, exponent_mask, first, last
):
    # The check takes the chunks of the stretch last to first, so that when it
    # ends the start of the stretch, which the update reads first, is what the
    # caches hold.
    k = _first_segment(offsets, last - 1) if last > first else -1
    while k >= 0 and offsets[k + 1] > first:
        bits = _stretch(grad_at, offsets, k, first, last, bits_like)[0]
        stop = bits.size
        while stop > 0:
            start = max(0, stop - CHECK_CHUNK)
            if _any_nonfinite_kernel(bits[start:stop], exponent_mask):
                return True
            stop = start
        k -= 1
    return False


def _graves_segments_loop(w_at, grad_at, offsets, a, g, delta, c, first, last):
    # Graves' step on each stretch of an array among elements first..last of the
    # table.  The constants name the spread: five (lr, alpha, 1 − alpha,
    # momentum, eps) for the difference n − g², where ``a`` is n; six, with
    # alpha(1 − alpha) fourth, for the recursion, where ``a`` is s.
    k = _first_segment(offsets, first)
    while k < w_at.size and offsets[k] < last:
        w, lo, hi = _stretch(w_at, offsets, k, first, last, a)
        grad = _stretch(grad_at, offsets, k, first, last, a)[0]
        if c.size == 6:
            _graves_recursive_kernel(
                w, grad, a[lo:hi], g[lo:hi], delta[lo:hi],
                c[0], c[1], c[2], c[3], c[4], c[5],
            )
        else:
            _graves_kernel(
                w, grad, a[lo:hi], g[lo:hi], delta[lo:hi],
                c[0], c[1], c[2], c[3], c[4],
            )
        k += 1


def _graves_checked_segments_loop(
    w_at, grad_at, offsets, a, g, delta, c, bits_like, mask, first, last
):
    # the check, then the step if every gradient is finite: one thread's call;
    # True if it found a NaN or inf (and so wrote nothing)
    bad = _any_nonfinite_segments_kernel(
        grad_at, offsets, bits_like, mask, first, last
    )
    if not bad:
        _graves_segments_kernel(
            w_at, grad_at, offsets, a, g, delta, c, first, last
        )
    return bad


# -- what can change on an existing array --------------------------------------
#
# A call with the same array objects as the last one needs re-checking only for
# what can change on an existing array: its data pointer (ndarray.resize),
# shape, strides, dtype and flags.  Reading them attribute by attribute costs
# some 250 ns per array, more than the step on a 200-element array; the loop
# below reads them from each array's C header (numpy's PyArrayObject_fields:
# data, nd, dimensions, strides, base, descr, flags, after the object header),
# in a few nanoseconds.  The layout is checked once, at import, against what
# Python reports for probe arrays (:data:`HEADERS_READABLE`); where it differs,
# the attributes are read instead.  The loops read the fields through pointers
# typed by ``words`` and ``ints``: empty int64 and int32 arrays.

_HEADER = 16  # PyObject_HEAD: reference count and type
_DATA, _ND, _DIMENSIONS, _STRIDES, _DESCR, _FLAGS = (
    _HEADER + 8 * i for i in (0, 1, 2, 3, 5, 6)
)


def _header_length_loop(ids, words, ints):
    # int64s each array's record takes: data, nd, descr, flags, then its shape
    # and strides
    total = 0
    for k in range(ids.size):
        total += 4 + 2 * numba.carray(_pointer_like(ids[k] + _ND, ints), 1)[0]
    return total


def _read_headers_loop(ids, records, words, ints):
    # the records of the arrays whose object addresses (id()) are ``ids``, end
    # to end; returns False as soon as ``records`` would overflow
    at = 0
    for k in range(ids.size):
        a = ids[k]  # the array object's address
        nd = numba.carray(_pointer_like(a + _ND, ints), 1)[0]
        if at + 4 + 2 * nd > records.size:
            return False
        records[at] = numba.carray(_pointer_like(a + _DATA, words), 1)[0]
        records[at + 1] = nd
        records[at + 2] = numba.carray(_pointer_like(a + _DESCR, words), 1)[0]
        records[at + 3] = numba.carray(_pointer_like(a + _FLAGS, ints), 1)[0]
        shape_at = numba.carray(_pointer_like(a + _DIMENSIONS, words), 1)[0]
        strides_at = numba.carray(_pointer_like(a + _STRIDES, words), 1)[0]
        shape = numba.carray(_pointer_like(shape_at, words), nd)
        strides = numba.carray(_pointer_like(strides_at, words), nd)
        for d in range(nd):
            records[at + 4 + d] = shape[d]
            records[at + 4 + nd + d] = strides[d]
        at += 4 + 2 * nd
    return at == records.size


def _headers_unchanged_loop(ids, expected_ids, records, scratch, words, ints):
    # True if ``ids`` are ``expected_ids`` and their headers still read
    # ``records``
    if ids.size != expected_ids.size:
        return False
    for k in range(ids.size):
        if ids[k] != expected_ids[k]:
            return False
    if not _read_headers_kernel(ids, scratch, words, ints):
        return False
    for i in range(records.size):
        if scratch[i] != records[i]:
            return False
    return True


if AVAILABLE:

    @intrinsic
    def _pointer_like(typingctx, address, like):
        """The integer ``address`` as a pointer to elements of ``like``'s
        dtype."""
        pointer = numba.types.CPointer(like.dtype)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(pointer))

        return pointer(address, like), codegen

    # nogil: threads over chunks run in parallel.  error_model="numpy": x/0
    # gives inf or NaN as in numpy instead of raising.  cache: compile once per
    # machine.
    _jit = numba.njit(nogil=True, error_model="numpy", cache=True)
    _graves_kernel = _jit(_graves_loop)
    _graves_recursive_kernel = _jit(_graves_recursive_loop)
    _any_nonfinite_kernel = numba.njit(nogil=True, cache=True)(
        _any_nonfinite_loop
    )
    _first_segment = _jit(_first_segment)
    _stretch = _jit(_stretch)
    _any_nonfinite_segments_kernel = _jit(_any_nonfinite_segments_loop)
    _graves_segments_kernel = _jit(_graves_segments_loop)
    _graves_checked_segments_kernel = _jit(_graves_checked_segments_loop)
    _header_length_kernel = _jit(_header_length_loop)
    _read_headers_kernel = _jit(_read_headers_loop)
    _headers_unchanged_kernel = _jit(_headers_unchanged_loop)

_WORDS, _INTS = np.empty(0, np.int64), np.empty(0, np.int32)


def array_headers(arrays: list) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, records)``: the object addresses of ``arrays`` (plain ndarrays,
    kept alive by the caller) and what :func:`headers_unchanged` compares: each
    one's data pointer, dimensions, dtype object, flags, shape and strides
    (needs :data:`HEADERS_READABLE`)."""
    ids = np.fromiter(map(id, arrays), np.int64, len(arrays))
    records = np.empty(_header_length_kernel(ids, _WORDS, _INTS), np.int64)
    if not _read_headers_kernel(ids, records, _WORDS, _INTS):
        raise RuntimeError("an array changed while its header was read")
    return ids, records


def headers_unchanged(
    arrays: list, ids: np.ndarray, records: np.ndarray, scratch: np.ndarray
) -> bool:
    """True if ``arrays`` are the arrays whose :func:`array_headers` gave
    ``(ids, records)``, with the same data pointer, shape, strides, dtype object
    and flags; ``scratch`` is an int64 array as long as ``records``."""
    now = np.fromiter(map(id, arrays), np.int64, len(arrays))
    return bool(
        _headers_unchanged_kernel(now, ids, records, scratch, _WORDS, _INTS)
    )


def _headers_readable() -> bool:
    # the header layout assumed above, checked against what Python reports
    if not AVAILABLE:
        return False
    try:
        base = np.arange(24.0)
        probes = [
            base,
            base.reshape(2, 3, 4)[:, ::2, 1:],
            np.zeros(3, np.float32),
            base[5:6],
            np.zeros((0, 2)),
        ]
        probes[2].flags.writeable = False
        ids, records = array_headers(probes)
        at = 0
        for a in probes:
            nd = a.ndim
            expected = [
                a.__array_interface__["data"][0],
                nd,
                id(a.dtype),
                a.flags.num,
                *a.shape,
                *a.strides,
            ]
            if list(records[at : at + 4 + 2 * nd]) != expected:
                return False
            at += 4 + 2 * nd
        return at == records.size and headers_unchanged(
            probes, ids, records, np.empty_like(records)
        )
    except Exception:  # any surprise: read the attributes instead
        return False


#: True when :func:`array_headers` reads numpy's array headers as this numpy
#: lays them out.
HEADERS_READABLE = _headers_readable()

#: Unsigned integer views and exponent masks of the dtypes in DTYPES.
EXPONENT_BITS = {
    np.dtype(np.float32): (np.uint32, np.uint32(0x7F800000)),
    np.dtype(np.float64): (np.uint64, np.uint64(0x7FF0000000000000)),
}


def any_nonfinite(x: np.ndarray) -> bool:
    """True if the flat, contiguous float32 or float64 array ``x`` holds a NaN
    or an infinity, found in one compiled pass (needs :data:`AVAILABLE`)."""
    unsigned, mask = EXPONENT_BITS[x.dtype]
    return bool(_any_nonfinite_kernel(x.view(unsigned), mask))


def graves_step(
    w,
    grad,
    state: core.CenteredState,
    *,
    lr,
    alpha,
    momentum,
    eps,
    scratch=None,
) -> None:
    """:func:`graves.core.graves_step` in one compiled pass (same arguments,
    same bits).

    ``scratch`` is accepted for the driver's sake and not needed: the loop keeps
    its temporaries in registers.
    """
    dt = w.dtype.type
    # rounded to the array's dtype, as numpy rounds a Python float operand
    # (NEP 50)
    _graves_kernel(
        w,
        grad,
        state.n,
        state.g,
        state.delta,
        dt(lr),
        dt(alpha),
        dt(1.0 - alpha),
        dt(momentum),
        dt(eps),
    )


def graves_recursive_step(
    w, grad, state: core.SpreadState, *, lr, alpha, momentum, eps, scratch=None
) -> None:
    """:func:`graves.core.graves_recursive_step` in one compiled pass (same
    arguments, same bits)."""
    dt = w.dtype.type
    _graves_recursive_kernel(
        w,
        grad,
        state.s,
        state.g,
        state.delta,
        dt(lr),
        dt(alpha),
        dt(1.0 - alpha),
        dt(alpha * (1.0 - alpha)),
        dt(momentum),
        dt(eps),
    )


_KERNELS: dict[Callable, Callable] = (
    {
        core.graves_step: graves_step,
        core.graves_recursive_step: graves_recursive_step,
    }
    if AVAILABLE
    else {}
)


def kernel_for(step: Callable, dtype: np.dtype) -> Callable | None:
    """The compiled equivalent of the core function ``step`` for ``dtype``, or
    None."""
    if np.dtype(dtype) not in DTYPES:
        return None
    return _KERNELS.get(step)


class SegmentKernels(NamedTuple):
    """The compiled segment loops of one step function (see
    :class:`graves.segments.Table`)."""

    # (table, first, last) -> True if a gradient element among them is NaN or
    # inf
    check: Callable
    # (table, constants, first, last): the step on them
    step: Callable
    # (table, constants, first, last) -> the check, then the step if the check
    # found no NaN or inf; True if it found one
    checked_step: Callable
    # (table, constants, first, last) -> (loop, arguments): checked_step as a
    # loop and the arguments of one call
    checked_call: Callable


def any_nonfinite_segments(table, first: int, last: int) -> bool:
    """True if a gradient element among elements ``first`` to ``last`` of
    ``table`` (a :class:`graves.segments.Table`) is NaN or infinite, read in
    chunks of :data:`CHECK_CHUNK`, the last chunk first; nothing is written."""
    return bool(
        _any_nonfinite_segments_kernel(
            table.grad_at,
            table.offsets,
            table.bits_like,
            table.mask,
            first,
            last,
        )
    )


def _segment_kernels(step_loop, checked_loop) -> SegmentKernels:
    def step(table, constants, first, last):
        step_loop(
            table.w_at,
            table.grad_at,
            table.offsets,
            *table.state,
            constants,
            first,
            last,
        )

    def checked_call(table, constants, first, last):
        # the compiled loop and its arguments, to be called as loop(*arguments),
        # step after step
        return checked_loop, (
            table.w_at,
            table.grad_at,
            table.offsets,
            *table.state,
            constants,
            table.bits_like,
            table.mask,
            first,
            last,
        )

    def checked_step(table, constants, first, last):
        loop, arguments = checked_call(table, constants, first, last)
        return bool(loop(*arguments))

    return SegmentKernels(
        any_nonfinite_segments, step, checked_step, checked_call
    )


def constants(
    step: Callable, dtype: np.dtype, *, lr, alpha, momentum, eps
) -> np.ndarray:
    """The hyperparameters as the segment kernels of ``step`` take them: rounded
    to ``dtype`` as numpy rounds a Python float operand (NEP 50), in an array of
    ``dtype``."""
    if step is core.graves_recursive_step:
        values = (lr, alpha, 1.0 - alpha, alpha * (1.0 - alpha), momentum, eps)
    else:
        values = (lr, alpha, 1.0 - alpha, momentum, eps)
    return np.array([np.dtype(dtype).type(v) for v in values], dtype=dtype)


# One set of loops for both spreads: the constants say which step they take.
_SEGMENT_KERNELS: dict[Callable, SegmentKernels] = (
    dict.fromkeys(
        (core.graves_step, core.graves_recursive_step),
        _segment_kernels(
            _graves_segments_kernel, _graves_checked_segments_kernel
        ),
    )
    if AVAILABLE
    else {}
)


def segments_kernels_for(
    step: Callable, dtype: np.dtype
) -> SegmentKernels | None:
    """The compiled many-array loops of the core function ``step`` for
    ``dtype``, or None."""
    if np.dtype(dtype) not in DTYPES:
        return None
    return _SEGMENT_KERNELS.get(step)
