"""The figures the performance chapter promises, each ratio taken within this one run.

1. 10M parameters in one array, float64 and float32: ``RMSpropGraves.update``
   (default threads) against the 9-pass floor measured on the same number of
   threads, and against the naive transcription; the driver alone and a
   one-thread update for comparison.
2. 5,000 arrays of 200 float64 elements: the source document's per-key loop,
   the package on 5,000 separate arrays, and the package on packed views
   (``graves.packing.pack``).
3. Extra memory per step (``tracemalloc`` peak, after a first step has made
   the state and the scratch) of the naive step and of ``update``.

    .venv/bin/python benchmarks/bench_targets.py

Writes benchmarks/results/targets.json.
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import graves  # noqa: E402
from graves import core, packing  # noqa: E402

from common import bandwidth_from, best_times, floor_seconds, save, stream_functions  # noqa: E402
from versions import HYPER, Blocked, PerKeyLoop, naive_step  # noqa: E402

SIZE = 10_000_000
KEYS, KEY_SIZE = 5_000, 200
REPEAT = 11  # best of 11 interleaved repetitions


def one_array(dtype) -> dict:
    rng = np.random.default_rng(0)
    w = rng.standard_normal(SIZE).astype(dtype)
    grad = rng.standard_normal(SIZE).astype(dtype)
    params, grads = {"w": w}, {"w": grad}
    opt = graves.RMSpropGraves(**HYPER)
    opt1 = graves.RMSpropGraves(**HYPER, threads=1)
    threads = opt._runner.threads_for(SIZE)
    driver = Blocked(threads, graves.blocks.DEFAULT_BLOCK_SIZE)
    driver_state = core.CenteredState(*(np.zeros(SIZE, dtype) for _ in range(3)))
    naive_state = [np.zeros(SIZE, dtype) for _ in range(3)]

    def naive():
        naive_state[:] = naive_step(w, grad, *naive_state, **HYPER)

    streams_n, moved_n = stream_functions(SIZE, dtype, threads, f", {threads} threads")
    streams_1, moved_1 = stream_functions(SIZE, dtype, 1, ", 1 thread")
    times = best_times(
        {
            "naive": naive,
            "update": lambda: opt.update(params, grads),
            "update, 1 thread": lambda: opt1.update(params, grads),
            "driver alone": lambda: driver.step(w, grad, driver_state),
            **streams_n,
            **streams_1,
        },
        repeat=REPEAT,
    )
    bw_n, bw_1 = bandwidth_from(times, moved_n), bandwidth_from(times, moved_1)
    times = {k: v for k, v in times.items() if not k.startswith("stream")}
    floor_n = floor_seconds(SIZE, dtype, bw_n["best"])
    floor_1 = floor_seconds(SIZE, dtype, bw_1["best"])
    ratios = {
        "update / floor (same threads)": times["update"] / floor_n,
        "driver alone / floor (same threads)": times["driver alone"] / floor_n,
        "update, 1 thread / floor, 1 thread": times["update, 1 thread"] / floor_1,
        "naive / update": times["naive"] / times["update"],
    }
    return {
        "dtype": np.dtype(dtype).name,
        "size": SIZE,
        "threads": threads,
        "seconds": times,
        "floor_seconds": {"default threads": floor_n, "1 thread": floor_1},
        "bandwidth": {"default threads": bw_n, "1 thread": bw_1},
        "ratios": ratios,
    }


def many_arrays() -> dict:
    rng = np.random.default_rng(1)
    keys = [f"layer{i}" for i in range(KEYS)]
    params = {k: rng.standard_normal(KEY_SIZE) for k in keys}
    grads = {k: rng.standard_normal(KEY_SIZE) for k in keys}
    loop_params = {k: v.copy() for k, v in params.items()}
    sep_params = {k: v.copy() for k, v in params.items()}
    _, packed_params = packing.pack(params)
    _, packed_grads = packing.pack(grads)
    loop = PerKeyLoop(**HYPER)
    separate = graves.RMSpropGraves(**HYPER)
    packed = graves.RMSpropGraves(**HYPER)
    times = best_times(
        {
            "document-style loop": lambda: loop.update(loop_params, grads),
            "update, separate arrays": lambda: separate.update(sep_params, grads),
            "update, packed views": lambda: packed.update(packed_params, packed_grads),
        },
        repeat=REPEAT,
    )
    for k in keys:  # same inputs, same steps: the packed run equals the per-key run
        np.testing.assert_array_equal(sep_params[k], packed_params[k])
    return {
        "keys": KEYS,
        "key_size": KEY_SIZE,
        "dtype": "float64",
        "seconds": times,
        "ratios": {
            "document-style loop / packed": times["document-style loop"] / times["update, packed views"],
            "document-style loop / separate": times["document-style loop"] / times["update, separate arrays"],
        },
    }


def peak_bytes(step) -> int:
    """``tracemalloc`` peak of one call of ``step``, above what was allocated before it."""
    step()  # a first step allocates the state and the scratch
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def memory() -> dict:
    rng = np.random.default_rng(2)
    w = rng.standard_normal(SIZE)
    grad = rng.standard_normal(SIZE)
    naive_state = [np.zeros(SIZE) for _ in range(3)]

    def naive():
        naive_state[:] = naive_step(w, grad, *naive_state, **HYPER)

    opt = graves.RMSpropGraves(**HYPER)
    params, grads = {"w": w}, {"w": grad}
    peaks = {"naive": peak_bytes(naive), "update": peak_bytes(lambda: opt.update(params, grads))}
    keys = {f"layer{i}": rng.standard_normal(KEY_SIZE) for i in range(KEYS)}
    _, packed_params = packing.pack(keys)
    _, packed_grads = packing.pack({k: rng.standard_normal(KEY_SIZE) for k in keys})
    opt2 = graves.RMSpropGraves(**HYPER)
    peaks["update, 5000 packed arrays"] = peak_bytes(lambda: opt2.update(packed_params, packed_grads))
    return {
        "size": SIZE,
        "dtype": "float64",
        "array_bytes": SIZE * 8,
        "threads": opt._runner.threads_for(SIZE),
        "block_size": graves.blocks.DEFAULT_BLOCK_SIZE,
        "peak_bytes": peaks,
    }


def main() -> None:
    out = {"one_array": [], "many_arrays": None, "memory": None}
    for dtype in (np.float64, np.float32):
        r = one_array(dtype)
        out["one_array"].append(r)
        print(f"  {r['dtype']} 10M, {r['threads']} threads: " + ", ".join(f"{k} {v:.2f}" for k, v in r["ratios"].items()), flush=True)
    out["many_arrays"] = m = many_arrays()
    print("  5000 arrays: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in m["seconds"].items()) + ", "
          + ", ".join(f"{k} {v:.1f}x" for k, v in m["ratios"].items()), flush=True)
    out["memory"] = mem = memory()
    print("  peak extra memory per step: " + ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in mem["peak_bytes"].items()))
    path = save("targets", out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
