"""Graves' step as one compiled loop: the fast path, used when numba is installed.

numpy evaluates eqs. 38-41 one operation at a time, so even the blocked driver
in :mod:`graves.blocks` makes 16 passes over every block.  A compiled loop makes
one pass, keeping each element's intermediate values in registers, and so
reads ``w, ∇, n, g, Δ`` and writes ``w, n, g, Δ`` once per step: the 9-pass
memory floor of chapter 11.

:func:`graves.core.graves_step` stays the one statement of the formula.  The
loop below is its compiled transcription, and a second loop transcribes
:func:`graves.core.graves_recursive_step` (the spread kept by its recursion):
the same operations on the same operands in the same order, with the hyperparameters rounded to the parameter's
dtype exactly as numpy rounds them, so that both paths give the same bits
(``tests/test_fused.py`` checks this on random data, float32 and float64).  It
is used only for float32 and float64; anything else, and every other step
function, runs on the numpy path.

numba is optional.  Without it, :data:`AVAILABLE` is False and the package runs
on numpy alone; an optimizer built with ``compiled=False`` does so as well.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import core

try:
    import numba
except ImportError:  # the pure-numpy path is complete on its own
    numba = None

#: True when the compiled kernels can be used in this environment.
AVAILABLE = numba is not None

#: dtypes the kernels are compiled for; float16 arithmetic stays with numpy,
#: which rounds every operation to float16 in a way numba does not reproduce.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _graves_loop(w, grad, n, g, delta, lr, alpha, one_minus_alpha, momentum, eps):
    # The order of every operation is core.graves_step's, so the rounding is too:
    # ema_update computes (decay·average) + ((1 − decay)·x), and the step
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


def _graves_recursive_loop(w, grad, s, g, delta, lr, alpha, one_minus_alpha, alpha_one_minus_alpha, momentum, eps):
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


def _count_nonfinite_loop(bits, exponent_mask):
    # A float is NaN or infinite exactly when its exponent bits are all ones.
    # Integer tests on the raw bits vectorise (a float comparison chain with an
    # early exit would not), so the check reads the array once at memory speed.
    count = 0
    for i in range(bits.size):
        count += (bits[i] & exponent_mask) == exponent_mask
    return count


if AVAILABLE:
    # nogil: threads over chunks run in parallel; error_model="numpy": x/0 gives
    # inf or NaN as in numpy instead of raising; cache: compile once per machine.
    _graves_kernel = numba.njit(nogil=True, error_model="numpy", cache=True)(_graves_loop)
    _graves_recursive_kernel = numba.njit(nogil=True, error_model="numpy", cache=True)(_graves_recursive_loop)
    _count_nonfinite_kernel = numba.njit(nogil=True, cache=True)(_count_nonfinite_loop)

#: Unsigned integer views and exponent masks of the dtypes in DTYPES.
_EXPONENT_BITS = {
    np.dtype(np.float32): (np.uint32, np.uint32(0x7F800000)),
    np.dtype(np.float64): (np.uint64, np.uint64(0x7FF0000000000000)),
}


def count_nonfinite(x: np.ndarray) -> int:
    """The number of NaN and infinite elements of the flat, contiguous float32 or
    float64 array ``x``, in one compiled pass (needs :data:`AVAILABLE`)."""
    unsigned, mask = _EXPONENT_BITS[x.dtype]
    return int(_count_nonfinite_kernel(x.view(unsigned), mask))


def graves_step(w, grad, state: core.CenteredState, *, lr, alpha, momentum, eps, scratch=None) -> None:
    """:func:`graves.core.graves_step` in one compiled pass (same arguments, same bits).

    ``scratch`` is accepted for the driver's sake and not needed: the loop keeps
    its temporaries in registers.
    """
    dt = w.dtype.type
    # numpy rounds a Python float operand to the array's dtype (NEP 50); so do we
    _graves_kernel(
        w, grad, state.n, state.g, state.delta, dt(lr), dt(alpha), dt(1.0 - alpha), dt(momentum), dt(eps)
    )


def graves_recursive_step(w, grad, state: core.SpreadState, *, lr, alpha, momentum, eps, scratch=None) -> None:
    """:func:`graves.core.graves_recursive_step` in one compiled pass (same arguments, same bits)."""
    dt = w.dtype.type
    _graves_recursive_kernel(
        w, grad, state.s, state.g, state.delta,
        dt(lr), dt(alpha), dt(1.0 - alpha), dt(alpha * (1.0 - alpha)), dt(momentum), dt(eps),
    )


_KERNELS: dict[Callable, Callable] = (
    {core.graves_step: graves_step, core.graves_recursive_step: graves_recursive_step} if AVAILABLE else {}
)


def kernel_for(step: Callable, dtype: np.dtype) -> Callable | None:
    """The compiled equivalent of the core function ``step`` for ``dtype``, or None."""
    if np.dtype(dtype) not in DTYPES:
        return None
    return _KERNELS.get(step)
