"""Time per parameter of one centered step against the number of parameters.

Versions: the naive transcription (a new array per operation), in-place ufuncs
over whole arrays, the blocked numpy driver on one thread, and the package's
update on its default threads in both paths: ``RMSpropGraves(compiled=False)``
(blocked numpy) and ``RMSpropGraves`` as shipped (the compiled one-pass
kernel); and the floor, 9 passes over
memory at the streaming bandwidth measured at the same size, on one thread and
on the package's default number of threads.  float64, one parameter array.

    .venv/bin/python benchmarks/bench_roofline.py [--max-size 1e8]

Writes benchmarks/results/roofline.json.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import graves  # noqa: E402
from graves import core  # noqa: E402
from graves.blocks import default_threads  # noqa: E402

from common import bandwidth_from, best_times, floor_seconds, save, stream_arrays, stream_functions  # noqa: E402
from versions import HYPER, Blocked, WholeArrays, naive_step  # noqa: E402

SIZES = [10**3, 3 * 10**3, 10**4, 3 * 10**4, 10**5, 3 * 10**5, 10**6, 3 * 10**6, 10**7, 3 * 10**7, 10**8]


def measure(size: int, dtype=np.float64) -> dict:
    rng = np.random.default_rng(0)
    grad = rng.standard_normal(size).astype(dtype)
    w = rng.standard_normal(size).astype(dtype)
    zeros = lambda: core.CenteredState(*(np.zeros(size, dtype) for _ in range(3)))  # noqa: E731

    naive_state = list(zeros())

    def naive():
        naive_state[:] = naive_step(w, grad, *naive_state, **HYPER)

    opt, opt_numpy = graves.RMSpropGraves(**HYPER), graves.RMSpropGraves(**HYPER, compiled=False)
    params, grads = {"w": w}, {"w": grad}
    opt.update(params, grads)  # makes the state (and compiles the kernel, or loads it from numba's cache)
    whole, blocked = WholeArrays(w), Blocked(1, graves.blocks.DEFAULT_BLOCK_SIZE)
    # the optimizer's state serves the two drivers too, to fit 1e8 parameters in memory: values do not matter
    whole_state = blocked_state = opt.state["w"]
    fns = {
        "naive": naive,
        "in-place, whole arrays": lambda: whole.step(w, grad, whole_state),
        "blocked, 1 thread": lambda: blocked.step(w, grad, blocked_state),
        "RMSpropGraves(compiled=False).update": lambda: opt_numpy.update(params, grads),
        "RMSpropGraves.update": lambda: opt.update(params, grads),
    }
    repeat = 3 if size >= 3 * 10**7 else 5
    threads = default_threads(size)
    # two arrays of the step's footprint (stream_functions' rule), shared by the streams of both
    # thread counts: on smaller ones the streams would find part of them in cache
    pair = stream_arrays(size, dtype)
    streams_1, moved_1 = stream_functions(size, dtype, 1, ", 1 thread", pair)
    streams_n, moved_n = stream_functions(size, dtype, threads, ", update's threads", pair) if threads > 1 else ({}, {})
    times = best_times({**fns, **streams_1, **streams_n}, repeat)
    bw1 = bandwidth_from(times, moved_1)
    bwn = bandwidth_from(times, moved_n) if threads > 1 else bw1
    times = {k: v for k, v in times.items() if not k.startswith("stream")}
    times["floor, 1 thread"] = floor_seconds(size, dtype, bw1["best"])
    times["floor, update's threads"] = floor_seconds(size, dtype, bwn["best"])
    return {
        "size": size,
        "update_threads": threads,
        "seconds": times,
        "bandwidth_1_thread": bw1,
        "bandwidth_default_threads": bwn,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-size", type=float, default=1e8)
    args = parser.parse_args(argv)
    rows = []
    for size in SIZES:
        if size > args.max_size:
            continue
        t0 = time.perf_counter()
        row = measure(size)
        gc.collect()
        rows.append(row)
        per = {k: f"{v / size * 1e9:.2f}" for k, v in row["seconds"].items()}
        print(f"{size:>11,d}  ns/parameter {per}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    path = save("roofline", {"dtype": "float64", "passes": 9, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
