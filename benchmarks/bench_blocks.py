"""Block size and thread count of the blocked driver.

1. Block sizes from 2**10 to 2**22 elements, on 1 thread and on every core, for
   10M float64 and float32 parameters: the driver alone (``BlockRunner.run`` of
   ``core.graves_step``), against the 9-pass floor on the same threads.
2. One thread against two (or all cores) for sizes 2**12 to 2**23: where
   threads start to pay, which sets ``graves.blocks.MIN_PARALLEL_SIZE``.

    .venv/bin/python benchmarks/bench_blocks.py

Writes benchmarks/results/blocks.json.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graves import core  # noqa: E402
from graves.blocks import DEFAULT_BLOCK_SIZE, MAX_DEFAULT_THREADS  # noqa: E402

from common import bandwidth_from, best_times, floor_seconds, save, stream_functions  # noqa: E402
from versions import Blocked  # noqa: E402

SIZE = 10_000_000
BLOCK_SIZES = [2**k for k in range(10, 23, 1)]


def arrays(size, dtype):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(size).astype(dtype)
    grad = rng.standard_normal(size).astype(dtype)
    return w, grad, core.CenteredState(*(np.zeros(size, dtype) for _ in range(3)))


def block_sweep(dtype, threads) -> dict:
    w, grad, state = arrays(SIZE, dtype)
    runners = {bs: Blocked(threads, bs) for bs in BLOCK_SIZES}
    streams, moved = stream_functions(SIZE, dtype, threads)
    fns = {str(bs): (lambda r=r: r.step(w, grad, state)) for bs, r in runners.items()}
    times = best_times({**fns, **streams}, repeat=3)
    bw = bandwidth_from(times, moved)
    return {
        "dtype": np.dtype(dtype).name,
        "threads": threads,
        "seconds": {bs: times[bs] for bs in fns},
        "floor_seconds": floor_seconds(SIZE, dtype, bw["best"]),
        "bandwidth": bw,
    }


def thread_sweep(dtype, many) -> dict:
    rows = []
    for k in range(12, 24):
        size = 2**k
        w, grad, state = arrays(size, dtype)
        one, par = Blocked(1, DEFAULT_BLOCK_SIZE), Blocked(many, DEFAULT_BLOCK_SIZE)
        times = best_times({"1": lambda: one.step(w, grad, state), str(many): lambda: par.step(w, grad, state)}, repeat=5)
        rows.append({"size": size, "seconds": times})
        print(f"  threads: {size:>9,d}  1 thread {times['1'] * 1e6:9.1f} us   {many} threads {times[str(many)] * 1e6:9.1f} us", flush=True)
    return {"dtype": np.dtype(dtype).name, "threads": many, "block_size": DEFAULT_BLOCK_SIZE, "rows": rows}


def main() -> None:
    many = max(2, min(os.cpu_count() or 1, MAX_DEFAULT_THREADS))
    sweeps = []
    for dtype in (np.float64, np.float32):
        for threads in (1, many):
            s = block_sweep(dtype, threads)
            best = min(s["seconds"], key=s["seconds"].get)
            print(
                f"  blocks: {s['dtype']} {threads} thread(s): best block {best}, "
                f"{s['seconds'][best] / s['floor_seconds']:.2f}x the floor",
                flush=True,
            )
            sweeps.append(s)
    crossover = thread_sweep(np.float64, many)
    path = save("blocks", {"size": SIZE, "block_sweeps": sweeps, "thread_sweep": crossover})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
