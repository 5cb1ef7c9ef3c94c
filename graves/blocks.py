"""Drive a core step function over cache-sized blocks of flat arrays.

The update is elementwise, so any partition of the parameters gives the same
result bit for bit.  Cutting the arrays into blocks of ``block_size`` elements
keeps the scratch rows, and the slices being worked on, inside the CPU cache:
each array is then read from and written to main memory once per step instead
of once per numpy operation.  Blocks are independent, so threads may take them
in any order; numpy's ufuncs release the GIL, so threads run in parallel.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple, Sequence

import numpy as np

#: Elements per block: 2**14 float64 values are 128 KiB, so the two scratch
#: rows and the five array slices of a centered step stay within a typical L2.
DEFAULT_BLOCK_SIZE = 2**14


def block_bounds(size: int, block_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(size)`` in blocks of ``block_size``."""
    return [(start, min(start + block_size, size)) for start in range(0, size, block_size)]


class BlockRunner:
    """Runs a step function block by block, on ``threads`` threads.

    One runner owns one scratch buffer per thread and dtype, allocated once and
    reused, so a step allocates nothing in proportion to the model.
    """

    def __init__(self, block_size: int = DEFAULT_BLOCK_SIZE, threads: int = 1):
        self.block_size = int(block_size)
        self.threads = int(threads)
        self._scratch: dict[tuple[int, np.dtype], np.ndarray] = {}
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def scratch(self, thread: int, dtype: np.dtype) -> np.ndarray:
        key = (thread, np.dtype(dtype))
        if key not in self._scratch:
            self._scratch[key] = np.empty((2, self.block_size), dtype=dtype)
        return self._scratch[key]

    def run(self, step: Callable, w: np.ndarray, grad: np.ndarray, state: NamedTuple, **hyper) -> None:
        """Apply ``step(w, grad, state, scratch=..., **hyper)`` to flat ``w``, block by block."""
        bounds = block_bounds(w.size, self.block_size)

        def work(thread: int, chunk: Sequence[tuple[int, int]]) -> None:
            scratch = self.scratch(thread, w.dtype)
            for start, stop in chunk:
                part = slice(start, stop)
                step(
                    w[part],
                    grad[part],
                    type(state)(*(a[part] for a in state)),
                    scratch=scratch[:, : stop - start],
                    **hyper,
                )

        if self._pool is None or len(bounds) < 2:
            work(0, bounds)
            return
        # contiguous runs of blocks, one per thread, so each thread streams memory
        chunks = [c for c in np.array_split(np.arange(len(bounds)), self.threads) if c.size]
        futures = [
            self._pool.submit(work, t, [bounds[i] for i in chunk]) for t, chunk in enumerate(chunks)
        ]
        for f in futures:
            f.result()
