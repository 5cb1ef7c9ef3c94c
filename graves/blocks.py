"""Drive a core step function over cache-sized blocks of flat arrays, on
threads.

The update is elementwise, so any partition of the parameters gives the same
result bit for bit.  Cutting the arrays into blocks of ``block_size`` elements
keeps the scratch rows, and the slices being worked on, in the CPU's caches:
each array then crosses the memory bus once per step instead of once per numpy
operation.  Blocks are independent, so threads may take them in any order;
numpy's ufuncs release the GIL while they loop, so threads run in parallel.

The defaults below are measured, not guessed: ``benchmarks/bench_blocks.py``
times block sizes and thread counts, and chapter 11 of the book shows the
figures.
"""

from __future__ import annotations

import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple

import numpy as np

from . import fused

#: Elements per block.  2**16 float64 values are 512 KiB per array; the few
#: arrays one numpy operation touches stay in the L2/L3 caches, and a block is
#: long enough that the ~1 µs cost of calling a ufunc is small beside its work.
DEFAULT_BLOCK_SIZE = 2**16

#: Arrays smaller than this run on one thread.  A thread needs at least a whole
#: block to gain more than handing it work costs (tens of microseconds).
MIN_PARALLEL_SIZE = 2 * DEFAULT_BLOCK_SIZE

#: Largest block size and thread count an optimizer accepts.  Scratch is never
#: larger than the arrays it serves, and the shared pool has 64 workers.
MAX_BLOCK_SIZE = 2**26
MAX_THREADS = 64

#: Fewest elements worth a thread of their own, whatever ``threads`` asks:
#: handing a thread its work and waiting for it costs tens of microseconds, what
#: a step on some 10^4 to 10^5 elements takes, so a step never uses more threads
#: than it has stretches of this many elements.
MIN_ELEMENTS_PER_THREAD = 2**15

#: Most threads used by default, so that a step does not take every core of a
#: large machine: memory bandwidth, which more cores share, bounds it anyway.
MAX_DEFAULT_THREADS = 4


def default_threads(size: int) -> int:
    """Threads for a step on ``size`` elements when the caller did not
    choose."""
    if size < MIN_PARALLEL_SIZE:
        return 1
    return max(1, min(_CPUS, MAX_DEFAULT_THREADS))


_CPUS = os.cpu_count() or 1


def bounded_threads(requested: int, size: int) -> int:
    """The threads a step on ``size`` elements uses when ``requested`` are
    allowed: at most one per :data:`MIN_ELEMENTS_PER_THREAD` elements, and at
    least one."""
    return max(1, min(requested, size // MIN_ELEMENTS_PER_THREAD))


def block_bounds(size: int, block_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(size)`` in blocks of
    ``block_size``."""
    return [
        (start, min(start + block_size, size))
        for start in range(0, size, block_size)
    ]


# One pool for the whole process, shared by every runner, created on first use.
# Its worker threads start only when needed and are reused by later steps.
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def shared_pool() -> ThreadPoolExecutor:
    """The process-wide thread pool that runs blocks."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=MAX_THREADS, thread_name_prefix="graves-blocks"
            )
        return _pool


def _forget_pool_after_fork() -> None:
    # a forked child has the pool object but none of its threads
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _submit(fn, *args):
    """Run ``fn(*args)`` on the shared pool, in a copy of the caller's context,
    so that numpy's error settings (``np.errstate``) hold in the worker as
    well."""
    return shared_pool().submit(contextvars.copy_context().run, fn, *args)


class BlockRunner:
    """Runs a step function block by block, on ``threads`` threads.

    ``threads="auto"`` picks :func:`default_threads` for each array's size. The
    runner owns one scratch buffer per thread and dtype, allocated once and
    reused, so a step allocates nothing in proportion to the model: its extra
    memory is ``threads × 2 × block_size`` elements at most (a scratch row is
    never longer than the longest array run so far).  :meth:`reserve` allocates
    it ahead of a step, so that the step itself allocates nothing.

    With ``compiled=True`` a step that has a compiled one-pass kernel
    (:mod:`graves.fused`) runs that instead, on one contiguous stretch per
    thread: it needs neither blocks nor scratch.
    """

    def __init__(
        self,
        block_size: int = DEFAULT_BLOCK_SIZE,
        threads: int | str = "auto",
        compiled: bool = True,
    ):
        self.block_size = int(block_size)
        self.threads = "auto" if threads == "auto" else int(threads)
        self.compiled = bool(compiled)
        self._scratch: dict[tuple[int, np.dtype], np.ndarray] = {}

    def threads_for(self, size: int) -> int:
        """Threads a step on ``size`` elements uses: the setting, bounded by the
        work (:func:`bounded_threads`), so that no setting makes a small step
        slow."""
        return bounded_threads(
            default_threads(size) if self.threads == "auto" else self.threads,
            size,
        )

    def scratch(
        self, thread: int, dtype: np.dtype, length: int | None = None
    ) -> np.ndarray:
        """Thread ``thread``'s scratch for ``dtype``, rows of at least
        ``length`` elements (default: a whole block)."""
        key = (thread, np.dtype(dtype))
        length = (
            self.block_size if length is None else min(length, self.block_size)
        )
        held = self._scratch.get(key)
        if held is None or held.shape[1] < length:
            held = self._scratch[key] = np.empty((2, length), dtype=dtype)
        return held

    def all_compiled(self, step: Callable, dtypes) -> bool:
        """True if ``step`` runs as a compiled kernel for every dtype in
        ``dtypes``."""
        return self.compiled and all(
            fused.kernel_for(step, dtype) is not None for dtype in dtypes
        )

    def reserve(self, step: Callable, w: np.ndarray) -> None:
        """Allocate the scratch that :meth:`run` of ``step`` on ``w`` will
        use."""
        if self.compiled and fused.kernel_for(step, w.dtype) is not None:
            return  # the compiled kernel needs none
        threads = min(
            self.threads_for(w.size), max(1, -(-w.size // self.block_size))
        )
        for t in range(threads):
            self.scratch(t, w.dtype, w.size)

    def run(
        self,
        step: Callable,
        w: np.ndarray,
        grad: np.ndarray,
        state: NamedTuple,
        **hyper,
    ) -> None:
        """Apply ``step(w, grad, state, scratch=..., **hyper)`` to flat ``w``,
        block by block."""
        kernel = fused.kernel_for(step, w.dtype) if self.compiled else None
        if kernel is not None:
            self._run_stretches(kernel, w, grad, state, hyper)
            return
        bounds = block_bounds(w.size, self.block_size)
        threads = min(self.threads_for(w.size), len(bounds))

        def work(thread: int, blocks: list[tuple[int, int]]) -> None:
            scratch = self.scratch(thread, w.dtype, w.size)
            for start, stop in blocks:
                part = slice(start, stop)
                step(
                    w[part],
                    grad[part],
                    type(state)(*(a[part] for a in state)),
                    scratch=scratch[:, : stop - start],
                    **hyper,
                )

        if threads <= 1:
            work(0, bounds)
            return
        # one contiguous run of blocks per thread, so each thread streams its
        # own stretch of memory; the calling thread takes the first run itself
        cuts = [len(bounds) * t // threads for t in range(threads + 1)]
        runs = [bounds[cuts[t] : cuts[t + 1]] for t in range(threads)]
        # scratch is created here, not in the workers
        for t in range(1, threads):
            self.scratch(t, w.dtype, w.size)
        futures = [_submit(work, t, runs[t]) for t in range(1, threads)]
        try:
            work(0, runs[0])
        finally:
            # wait for every thread before returning or raising
            for f in futures:
                f.exception()
        for f in futures:
            f.result()

    def _run_stretches(
        self, kernel: Callable, w, grad, state: NamedTuple, hyper: dict
    ) -> None:
        # a one-pass kernel keeps nothing in cache between passes, so it gains
        # nothing from blocks; each thread streams one contiguous stretch
        threads = self.threads_for(w.size)
        cuts = [w.size * t // threads for t in range(threads + 1)]

        def work(t: int) -> None:
            part = slice(cuts[t], cuts[t + 1])
            kernel(
                w[part],
                grad[part],
                type(state)(*(a[part] for a in state)),
                **hyper,
            )

        futures = [_submit(work, t) for t in range(1, threads)]
        try:
            work(0)
        finally:
            for f in futures:
                f.exception()
        for f in futures:
            f.result()

    def all_finite_segments(self, kernels, table) -> bool:
        """True if no gradient of ``table`` (:class:`graves.segments.Table`)
        holds NaN or inf, one stretch per thread, each read last chunk first
        (:func:`graves.fused.any_nonfinite_segments`)."""
        cuts = _cuts(table.size, self.threads_for(table.size))
        return not any(_per_range(kernels.check, table, cuts))

    def run_segments(self, kernels, table, constants: np.ndarray) -> None:
        """The segment step on every element of ``table``, the same stretches
        per thread as :meth:`all_finite_segments`, each read forwards: a stretch
        starts with what the check read last, still in cache."""
        cuts = _cuts(table.size, self.threads_for(table.size))
        _per_range(kernels.step, table, cuts, constants)

    def run_checked_segments(
        self, kernels, table, constants: np.ndarray
    ) -> bool:
        """:meth:`all_finite_segments`, then, if it holds, :meth:`run_segments`;
        on one thread, one compiled call.  Returns whether it stepped."""
        threads = self.threads_for(table.size)
        if threads == 1:
            return not kernels.checked_step(table, constants, 0, table.size)
        cuts = _cuts(table.size, threads)
        if any(_per_range(kernels.check, table, cuts)):
            return False
        _per_range(kernels.step, table, cuts, constants)
        return True

    def all_finite(self, x: np.ndarray) -> bool:
        """True if the flat array ``x`` surely holds no NaN or infinity.

        One pass: the sum of ``x`` is NaN or infinite whenever an element is.
        ``False`` means "look closer": the sum may also overflow on finite
        values.  Large arrays are summed in one stretch per thread.  (Not
        ``np.dot(x, x)``, a faster pass: BLAS's own threads keep spinning after
        it and slow the step that follows.)  On the compiled path an exact
        test of the exponent bits replaces the sum
        (:func:`graves.fused.any_nonfinite`), cheaper still.
        """
        threads = min(
            self.threads_for(x.size), max(1, x.size // self.block_size)
        )
        if (
            self.compiled
            and fused.AVAILABLE
            and x.dtype in fused.DTYPES
            and x.flags.c_contiguous
        ):
            # exact, and cheaper than a sum: integer tests on the exponent bits
            return not any(_per_stretch(fused.any_nonfinite, x, threads))
        sums = _per_stretch(_sum, x, threads)
        with np.errstate(over="ignore", invalid="ignore"):
            return bool(np.isfinite(np.sum(sums)))


def _per_stretch(fn: Callable, x: np.ndarray, threads: int) -> list:
    """``fn`` of each of ``threads`` contiguous stretches of ``x``, in order;
    the calling thread takes the first stretch, the shared pool the others."""
    cuts = [x.size * t // threads for t in range(threads + 1)]
    parts = [x[cuts[t] : cuts[t + 1]] for t in range(threads)]
    futures = [_submit(fn, part) for part in parts[1:]]
    return [fn(parts[0])] + [f.result() for f in futures]


def _cuts(size: int, threads: int) -> list[int]:
    return [size * t // threads for t in range(threads + 1)]


def _per_range(fn: Callable, table, cuts: list[int], *args) -> list:
    """``fn(table, *args, first, last)`` for each stretch
    ``cuts[t]:cuts[t + 1]``, in order; the calling thread takes the first, the
    shared pool the others, and every thread has finished when this returns or
    raises."""
    futures = [
        _submit(fn, table, *args, cuts[t], cuts[t + 1])
        for t in range(1, len(cuts) - 1)
    ]
    try:
        first = fn(table, *args, cuts[0], cuts[1])
    finally:
        for f in futures:
            f.exception()
    return [first] + [f.result() for f in futures]


def _sum(x: np.ndarray):
    with np.errstate(over="ignore", invalid="ignore"):
        # float16 sums overflow early (at 65504): accumulate in float64
        return np.add.reduce(
            x, dtype=np.float64 if x.dtype.itemsize < 4 else None
        )
