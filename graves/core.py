"""The functional core: every update formula of the book has exactly one home
here.

Each step function updates flat, contiguous, same-dtype numpy arrays *in place*
and returns nothing.  Its optimizer state is a small ``NamedTuple`` of such
arrays.  ``scratch`` is a caller-owned array of shape ``(2, w.size)`` and the
same dtype that the function may overwrite: passing it in keeps a step free of
temporaries, so the blocked driver in :mod:`graves.blocks` can hand every
function a cache-sized slice of the parameters with a cache-sized scratch.

Names follow Graves (2013), section 4, eqs. 38-41, and Chainer: ``n`` is the
average of squared gradients, ``g`` the average of gradients, ``delta`` the
momentum buffer Δ; ``lr`` is the learning rate η, ``alpha`` the decay ρ,
``momentum`` μ and ``eps`` the stabilizer ε (the book's names for Graves'
constants); the gradient, his ε_i, is ``grad`` (∇ in the book).  ``s`` is the
spread n − g², which the recursive form of the centered step keeps instead of n.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class SGDState(NamedTuple):
    """State of (heavy-ball) gradient descent: the velocity ``v``."""

    velocity: np.ndarray


class RMSpropState(NamedTuple):
    """State of uncentered RMSprop: the running mean ``n`` of squared
    gradients."""

    n: np.ndarray


class CenteredState(NamedTuple):
    """State of centered RMSprop (Graves' eqs. 38-41).

    ``n``: running mean of squared gradients (eq. 38);
    ``g``: running mean of gradients (eq. 39);
    ``delta``: momentum buffer Δ (eq. 40).
    """

    n: np.ndarray
    g: np.ndarray
    delta: np.ndarray


class SpreadState(NamedTuple):
    """State of centered RMSprop when the spread is kept by its recursion
    (chapter 4).

    ``s``: the spread n − g² itself, in place of ``n``;
    ``g``: running mean of gradients (eq. 39);
    ``delta``: momentum buffer Δ (eq. 40).
    """

    s: np.ndarray
    g: np.ndarray
    delta: np.ndarray


#: How a centered step keeps the spread n − g², and the state each way needs.
SPREAD_STATES = {"difference": CenteredState, "recursive": SpreadState}


class CenteredVariant(NamedTuple):
    """Where the libraries place the constants of centered RMSprop.

    Graves and Chainer are the defaults.  ``eps_in_sqrt=False`` divides by
    ``sqrt(n - g**2) + eps`` (PyTorch); ``lr_in_buffer=False`` accumulates the
    unscaled step in Δ and multiplies by ``lr`` on the way out (PyTorch);
    ``nesterov`` adds the look-ahead of Optax's ``trace`` (only with
    ``lr_in_buffer``, the one combination a library offers); ``bias_correction``
    divides both averages by ``1 - alpha**t`` before use (Optax's option,
    computed as Optax computes it).

    ``centered=False`` is uncentered RMSprop: ``g`` is neither updated nor used
    and the denominator is built from ``n`` alone (every library's default).

    ``spread="recursive"`` keeps the spread s = n − g² in the state
    (:class:`SpreadState`) and updates it as s ← ρs + ρ(1−ρ)(∇ − g′)², with
    g′ the mean before the step: equal to n − g² in exact arithmetic, never
    negative in floating point (centered only, without bias correction);
    ``"difference"`` keeps n and subtracts g² (Graves, every library).
    """

    eps_in_sqrt: bool = True
    lr_in_buffer: bool = True
    nesterov: bool = False
    bias_correction: bool = False
    centered: bool = True
    spread: str = "difference"


GRAVES = CenteredVariant()
GRAVES_RECURSIVE = CenteredVariant(spread="recursive")


def check_variant(variant: CenteredVariant) -> None:
    """A ValueError unless ``variant.spread`` is one of :data:`SPREAD_STATES`
    and, if recursive, combines with the rest of ``variant``."""
    if variant.spread not in SPREAD_STATES:
        raise ValueError(
            f"spread must be one of {list(SPREAD_STATES)}, got "
            f"{variant.spread!r}"
        )
    if variant.spread == "recursive" and not variant.centered:
        raise ValueError(
            "spread='recursive' keeps the centered spread n - g**2; it needs "
            "centered=True"
        )
    if variant.spread == "recursive" and variant.bias_correction:
        # the corrected spread n/S - (g/S)**2 is a difference again, whatever s
        # holds
        raise ValueError(
            "spread='recursive' does not combine with bias_correction=True"
        )


def new_scratch(w: np.ndarray) -> np.ndarray:
    """Scratch space for one step on ``w``: two rows of ``w``'s length and
    dtype."""
    return np.empty((2, w.size), dtype=w.dtype)


def ema_update(
    average: np.ndarray, x: np.ndarray, decay: float, scratch: np.ndarray
) -> None:
    """Exponentially weighted moving average, in place.

        average ← decay · average + (1 − decay) · x

    ``scratch`` may be ``x`` itself when ``x`` is no longer needed.
    """
    np.multiply(x, 1.0 - decay, out=scratch)
    np.multiply(average, decay, out=average)
    np.add(average, scratch, out=average)


def sgd_step(w, grad, state: SGDState, *, lr, momentum, scratch=None) -> None:
    """Gradient descent with heavy-ball momentum, in place.

        velocity ← momentum · velocity − lr · grad
        w        ← w + velocity

    With ``momentum = 0`` this is plain gradient descent, ``w ← w − lr · grad``.
    The learning rate sits inside the velocity, as in Graves' eq. 40.
    """
    s = (new_scratch(w) if scratch is None else scratch)[0]
    v = state.velocity
    np.multiply(grad, lr, out=s)
    np.multiply(v, momentum, out=v)
    np.subtract(v, s, out=v)
    np.add(w, v, out=w)


def rmsprop_step(
    w, grad, state: RMSpropState, *, lr, alpha, eps, scratch=None
) -> None:
    """Uncentered RMSprop with ``eps`` inside the root (the source document's
    code), in place.

        n ← alpha · n + (1 − alpha) · grad²
        w ← w − lr · grad / √(n + eps)
    """
    s = (new_scratch(w) if scratch is None else scratch)[0]
    np.multiply(grad, grad, out=s)
    ema_update(state.n, s, alpha, scratch=s)
    np.add(state.n, eps, out=s)
    np.sqrt(s, out=s)
    np.divide(grad, s, out=s)
    np.multiply(s, lr, out=s)
    np.subtract(w, s, out=w)


def centered_rmsprop_step(
    w,
    grad,
    state: CenteredState | SpreadState,
    *,
    lr,
    alpha,
    momentum,
    eps,
    variant: CenteredVariant = GRAVES,
    step: int = 1,
    scratch=None,
) -> None:
    """Centered RMSprop with momentum (Graves 2013, eqs. 38-41), in place.

    With the default ``variant`` (Graves, Chainer):

        n     ← alpha · n + (1 − alpha) · grad²                    (eq. 38)
        g     ← alpha · g + (1 − alpha) · grad                     (eq. 39)
        delta ← momentum · delta − lr · grad / √(n − g² + eps)     (eq. 40)
        w     ← w + delta                                          (eq. 41)

    ``variant`` moves ``eps`` out of the root, ``lr`` out of Δ, adds Nesterov's
    look-ahead or bias correction, drops the centering, or keeps the spread
    s = n − g² by its recursion (see :class:`CenteredVariant`; the state is
    then a :class:`SpreadState`); ``step`` is the 1-based step count that bias
    correction needs.
    """
    check_variant(variant)
    tmp, tmp2 = new_scratch(w) if scratch is None else scratch
    g, delta = state.g, state.delta

    if variant.spread == "recursive":
        # n − g² = alpha (n′ − g′²) + alpha (1 − alpha)(grad − g′)², g′ the mean
        # before the step (chapter 4): a sum of non-negative terms, so s never
        # rounds below 0
        spread = state.s
        np.subtract(grad, g, out=tmp)
        np.multiply(tmp, tmp, out=tmp)
        np.multiply(tmp, alpha * (1.0 - alpha), out=tmp)
        np.multiply(spread, alpha, out=spread)
        np.add(spread, tmp, out=spread)
        ema_update(g, grad, alpha, scratch=tmp)  # eq. 39
    else:
        # eqs. 38 and 39
        n, spread = state.n, tmp
        np.multiply(grad, grad, out=tmp)
        ema_update(n, tmp, alpha, scratch=tmp)
        if variant.centered:
            ema_update(g, grad, alpha, scratch=tmp)

        # the spread n - g² (uncentered: n alone), the denominator's argument
        if variant.bias_correction:
            # as Optax computes it: 1 - alpha**step in float32 (float64 for
            # float64 w), and XLA turns the division by that scalar into a
            # product with its reciprocal
            dt = np.result_type(w.dtype, np.float32).type
            inverse = w.dtype.type(1) / w.dtype.type(
                dt(1) - dt(alpha) ** dt(step)
            )
        if not variant.centered:
            if variant.bias_correction:
                np.multiply(n, inverse, out=tmp)
            else:
                np.copyto(tmp, n)
        elif variant.bias_correction:
            np.multiply(g, inverse, out=tmp)
            np.multiply(tmp, tmp, out=tmp)
            np.multiply(n, inverse, out=tmp2)
            np.subtract(tmp2, tmp, out=tmp)
        else:
            np.multiply(g, g, out=tmp)
            np.subtract(n, tmp, out=tmp)
    if variant.eps_in_sqrt:
        np.add(spread, eps, out=tmp)
        np.sqrt(tmp, out=tmp)
    else:
        np.sqrt(spread, out=tmp)
        np.add(tmp, eps, out=tmp)
    np.divide(grad, tmp, out=tmp)

    # eq. 40, and eq. 41 with the sign folded into the buffer
    if variant.lr_in_buffer:
        np.multiply(tmp, lr, out=tmp)
        np.multiply(delta, momentum, out=delta)
        np.subtract(delta, tmp, out=delta)
        if variant.nesterov:  # Optax's trace: w ← w + μΔ − η∇/d
            np.multiply(delta, momentum, out=tmp2)
            np.subtract(tmp2, tmp, out=tmp)
            np.add(w, tmp, out=w)
        else:
            np.add(w, delta, out=w)
    else:  # PyTorch: Δ ← μΔ + ∇/d, w ← w − ηΔ
        np.multiply(delta, momentum, out=delta)
        np.add(delta, tmp, out=delta)
        np.multiply(delta, lr, out=tmp)
        np.subtract(w, tmp, out=w)


def graves_step(
    w, grad, state: CenteredState, *, lr, alpha, momentum, eps, scratch=None
) -> None:
    """Graves' RMSprop (eqs. 38-41), in place: :func:`centered_rmsprop_step` as
    published."""
    centered_rmsprop_step(
        w,
        grad,
        state,
        lr=lr,
        alpha=alpha,
        momentum=momentum,
        eps=eps,
        variant=GRAVES,
        scratch=scratch,
    )


def graves_recursive_step(
    w, grad, state: SpreadState, *, lr, alpha, momentum, eps, scratch=None
) -> None:
    """Graves' RMSprop with the spread kept by its recursion, in place:
    :func:`centered_rmsprop_step` with ``spread="recursive"``; equal to
    :func:`graves_step` in exact arithmetic."""
    centered_rmsprop_step(
        w,
        grad,
        state,
        lr=lr,
        alpha=alpha,
        momentum=momentum,
        eps=eps,
        variant=GRAVES_RECURSIVE,
        scratch=scratch,
    )
