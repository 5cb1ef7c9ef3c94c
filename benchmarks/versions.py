"""The versions of one centered step that the benchmarks compare.

All compute Graves' eqs. 38-41 with Chainer's constants (lr inside Δ, eps
under the root) and agree to rounding; chapter 11 derives them one from the
other.
"""

from __future__ import annotations

import numpy as np

from graves import core, fused
from graves.blocks import BlockRunner

HYPER = dict(lr=1e-4, alpha=0.95, momentum=0.9, eps=1e-4)


def naive_step(w, grad, n, g, delta, lr, alpha, momentum, eps):
    """The equations typed in as numpy expressions: every operation makes a new
    array.  Returns the new state; ``w`` is updated in place."""
    n = alpha * n + (1 - alpha) * grad**2
    g = alpha * g + (1 - alpha) * grad
    delta = momentum * delta - lr * grad / np.sqrt(n - g**2 + eps)
    w += delta
    return n, g, delta


class PerKeyLoop:
    """The source document's structure: one state entry per key, a Python loop
    over the keys, and numpy expressions (with their temporaries) inside."""

    def __init__(self, lr=1e-4, alpha=0.95, momentum=0.9, eps=1e-4):
        self.hyper = dict(lr=lr, alpha=alpha, momentum=momentum, eps=eps)
        self.n, self.g, self.delta = {}, {}, {}

    def update(self, params, grads):
        for key in params:
            if key not in self.n:
                self.n[key] = np.zeros_like(params[key])
                self.g[key] = np.zeros_like(params[key])
                self.delta[key] = np.zeros_like(params[key])
            self.n[key], self.g[key], self.delta[key] = naive_step(
                params[key], grads[key], self.n[key], self.g[key], self.delta[key], **self.hyper
            )


class WholeArrays:
    """In-place ufuncs (``out=``) over whole arrays: no new arrays, but a
    scratch as large as the parameters, and every operation one pass over memory."""

    def __init__(self, w):
        self.scratch = core.new_scratch(w)

    def step(self, w, grad, state):
        core.graves_step(w, grad, state, scratch=self.scratch, **HYPER)


class Blocked:
    """The package's numpy driver on one flat array: cache-sized blocks,
    ``threads`` threads (``compiled=False``: never the compiled kernel)."""

    def __init__(self, threads, block_size):
        self.runner = BlockRunner(block_size, threads, compiled=False)

    def step(self, w, grad, state):
        self.runner.run(core.graves_step, w, grad, state, **HYPER)


class Compiled:
    """The package's compiled one-pass kernel (:mod:`graves.fused`) on one flat
    array, one contiguous stretch per thread, as ``RMSpropGraves.update`` runs it."""

    def __init__(self, threads):
        if fused.kernel_for(core.graves_step, np.float64) is None:
            raise RuntimeError("numba is not installed: the compiled kernel is not available")
        self.runner = BlockRunner(threads=threads, compiled=True)

    def step(self, w, grad, state):
        self.runner.run(core.graves_step, w, grad, state, **HYPER)
