"""The figures the performance chapter promises, each ratio taken within this one run.

The package has two paths for Graves' step, and every figure is taken for both:
``RMSpropGraves.update`` as shipped (``compiled=True``, the one-pass numba
kernel of ``graves.fused``) and ``RMSpropGraves(compiled=False).update`` (the
blocked, threaded numpy driver, what runs without numba).

1. 10M parameters in one array, float64 and float32: each update (default
   threads) against the floor (36 or 72 bytes per parameter over the best
   streaming bandwidth measured in this run on the same number of threads; each
   ratio taken within each round of repetitions, and its median over the
   rounds kept, with the least and the largest),
   and against the naive transcription; the kernel and the numpy driver alone,
   the compiled finiteness check of the gradient alone, and one-thread updates,
   for comparison.
2. 5,000 arrays of 200 elements, float64 and float32: the source document's
   per-key loop, and each path on 5,000 separate arrays and on packed views
   (``graves.packing.pack``), with a check that all give the same bits.
3. Extra memory per step (``tracemalloc`` peak, after a first step has made
   the state and the scratch) of the naive step and of each update.
4. The two spreads side by side, 10M parameters, float64 and float32: the
   compiled step with ``spread="recursive"`` against ``spread="difference"``
   (the kernel alone and the whole update), each pair's repetitions
   interleaved, best of ``SPREAD_REPEAT``.

    .venv/bin/python benchmarks/bench_targets.py
    .venv/bin/python benchmarks/bench_targets.py --spread-only   # only 4.

Writes benchmarks/results/targets.json; ``--spread-only`` rewrites only its
``spread`` entry, which records its own machine, date and load.
"""

from __future__ import annotations

import argparse
import json
import sys
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import graves  # noqa: E402
from graves import blocks, core, fused, packing, segments  # noqa: E402

from common import (  # noqa: E402
    BYTES_PER_PARAMETER, RESULTS, bandwidth_from, best_times, floor_ratios, floor_seconds, machine, paired_ratios,
    round_bandwidths, save, stream_functions,
)
from versions import HYPER, Blocked, Compiled, PerKeyLoop, naive_step  # noqa: E402

SIZE = 10_000_000
KEYS, KEY_SIZE = 5_000, 200
REPEAT = 11  # best of 11 interleaved repetitions
SPREAD_REPEAT = 21  # the spreads differ by little: more repetitions against other programs' load

#: the two paths of the package: name suffix -> constructor options
PATHS = {"": {}, ", compiled=False": {"compiled": False}}


def one_array(dtype) -> dict:
    rng = np.random.default_rng(0)
    w = rng.standard_normal(SIZE).astype(dtype)
    grad = rng.standard_normal(SIZE).astype(dtype)
    params, grads = {"w": w}, {"w": grad}
    opts = {tag: graves.RMSpropGraves(**HYPER, **o) for tag, o in PATHS.items()}
    opts1 = {tag: graves.RMSpropGraves(**HYPER, threads=1, **o) for tag, o in PATHS.items()}
    threads = opts[""]._runner.threads_for(SIZE)
    driver = Blocked(threads, graves.blocks.DEFAULT_BLOCK_SIZE)
    kernel = Compiled(threads)
    driver_state = core.CenteredState(*(np.zeros(SIZE, dtype) for _ in range(3)))
    naive_state = [np.zeros(SIZE, dtype) for _ in range(3)]

    def naive():
        naive_state[:] = naive_step(w, grad, *naive_state, **HYPER)

    kernel.step(w, grad, driver_state)  # compile (or load from the cache) before timing
    # the check the shipped update makes before it writes, on the same threads
    check_runner = blocks.BlockRunner(threads=threads)
    check_kernels = fused.segments_kernels_for(core.graves_step, dtype)
    check_table = segments.Table.of([w], [grad], tuple(driver_state))
    assert check_runner.threads_for(SIZE) == threads
    assert check_runner.all_finite_segments(check_kernels, check_table)
    streams_n, moved_n = stream_functions(SIZE, dtype, threads, f", {threads} threads")
    streams_1, moved_1 = stream_functions(SIZE, dtype, 1, ", 1 thread")
    fns = {"naive": naive}
    for tag in PATHS:
        fns[f"update{tag}"] = lambda o=opts[tag]: o.update(params, grads)
        fns[f"update{tag}, 1 thread"] = lambda o=opts1[tag]: o.update(params, grads)
    fns["kernel alone"] = lambda: kernel.step(w, grad, driver_state)
    fns["numpy driver alone"] = lambda: driver.step(w, grad, driver_state)
    fns["check alone"] = lambda: check_runner.all_finite_segments(check_kernels, check_table)
    rounds = []
    times = best_times({**fns, **streams_n, **streams_1}, repeat=REPEAT, rounds=rounds)
    bw_n, bw_1 = bandwidth_from(times, moved_n), bandwidth_from(times, moved_1)
    times = {k: v for k, v in times.items() if not k.startswith("stream")}
    floor_n = floor_seconds(SIZE, dtype, bw_n["best"])
    floor_1 = floor_seconds(SIZE, dtype, bw_1["best"])
    # every ratio within each round, then the median over the rounds
    same = ["kernel alone", "numpy driver alone", "check alone"]
    to_floor = {
        **floor_ratios(rounds, moved_n, SIZE, dtype, [f"update{tag}" for tag in PATHS] + same),
        **floor_ratios(rounds, moved_1, SIZE, dtype, [f"update{tag}, 1 thread" for tag in PATHS]),
    }
    between = paired_ratios(
        rounds,
        {
            **{f"naive / update{tag}": ("naive", f"update{tag}") for tag in PATHS},
            "update, compiled=False / update": ("update, compiled=False", "update"),
        },
    )
    # what the update adds to the kernel alone, as a fraction of the floor, round by round
    for r in rounds:
        r["update - kernel alone"] = r["update"] - r["kernel alone"]
    to_floor.update(floor_ratios(rounds, moved_n, SIZE, dtype, ["update - kernel alone"]))
    spreads = {}
    for tag in PATHS:
        spreads[f"update{tag} / floor (same threads)"] = to_floor[f"update{tag}"]
        spreads[f"update{tag}, 1 thread / floor, 1 thread"] = to_floor[f"update{tag}, 1 thread"]
        spreads[f"naive / update{tag}"] = between[f"naive / update{tag}"]
    for name in same:
        spreads[f"{name} / floor (same threads)"] = to_floor[name]
    spreads["update, compiled=False / update"] = between["update, compiled=False / update"]
    spreads["(update - kernel alone) / floor (same threads)"] = to_floor["update - kernel alone"]
    return {
        "dtype": np.dtype(dtype).name,
        "size": SIZE,
        "threads": threads,
        "bytes_per_parameter": BYTES_PER_PARAMETER[np.dtype(dtype).name],
        "seconds": times,
        "floor_seconds": {"default threads": floor_n, "1 thread": floor_1},
        "bandwidth": {"default threads": bw_n, "1 thread": bw_1},
        # each round's fastest stream, which the ratios divide by: median, least, largest
        "round_bandwidth": {"default threads": round_bandwidths(rounds, moved_n),
                            "1 thread": round_bandwidths(rounds, moved_1)},
        # medians over the rounds; "ratio_spreads" adds the least and the largest
        "ratios": {k: v["median"] for k, v in spreads.items()},
        "ratio_spreads": spreads,
        "rounds": REPEAT,
    }


def many_arrays(dtype) -> dict:
    rng = np.random.default_rng(1)
    keys = [f"layer{i}" for i in range(KEYS)]
    params = {k: rng.standard_normal(KEY_SIZE).astype(dtype) for k in keys}
    grads = {k: rng.standard_normal(KEY_SIZE).astype(dtype) for k in keys}
    loop_params = {k: v.copy() for k, v in params.items()}
    loop = PerKeyLoop(**HYPER)
    fns = {"document-style loop": lambda: loop.update(loop_params, grads)}
    runs = {}
    for tag, o in PATHS.items():
        sep_params = {k: v.copy() for k, v in params.items()}
        _, packed_params = packing.pack(params)
        _, packed_grads = packing.pack(grads)
        separate, packed = graves.RMSpropGraves(**HYPER, **o), graves.RMSpropGraves(**HYPER, **o)
        fns[f"update{tag}, separate arrays"] = lambda o=separate, p=sep_params: o.update(p, grads)
        fns[f"update{tag}, packed views"] = lambda o=packed, p=packed_params, g=packed_grads: o.update(p, g)
        runs[tag] = (sep_params, packed_params, separate, packed)
    rounds = []
    times = best_times(fns, repeat=REPEAT, rounds=rounds)
    # same inputs, same number of steps: packed equals per-key, compiled equals numpy, bit for bit
    ref_sep, ref_packed, a, b = runs[""]
    for tag, (sep, packed_params, c, d) in runs.items():
        assert a.step_count == b.step_count == c.step_count == d.step_count
        for k in keys:
            np.testing.assert_array_equal(ref_sep[k], sep[k])
            np.testing.assert_array_equal(ref_sep[k], packed_params[k])
    spreads = paired_ratios(
        rounds,
        {
            f"document-style loop / update{tag}, {layout}": ("document-style loop", f"update{tag}, {layout}")
            for tag in PATHS
            for layout in ("packed views", "separate arrays")
        },
    )
    return {"keys": KEYS, "key_size": KEY_SIZE, "dtype": np.dtype(dtype).name, "seconds": times,
            "ratios": {k: v["median"] for k, v in spreads.items()}, "ratio_spreads": spreads,
            "same_bits": True}  # the assertions above passed


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

    params, grads = {"w": w}, {"w": grad}
    peaks = {"naive": peak_bytes(naive)}
    keys = {f"layer{i}": rng.standard_normal(KEY_SIZE) for i in range(KEYS)}
    _, packed_params = packing.pack(keys)
    _, packed_grads = packing.pack({k: rng.standard_normal(KEY_SIZE) for k in keys})
    for tag, o in PATHS.items():
        opt = graves.RMSpropGraves(**HYPER, **o)
        peaks[f"update{tag}"] = peak_bytes(lambda: opt.update(params, grads))
        opt2 = graves.RMSpropGraves(**HYPER, **o)
        peaks[f"update{tag}, 5000 packed arrays"] = peak_bytes(lambda: opt2.update(packed_params, packed_grads))
    return {
        "size": SIZE,
        "dtype": "float64",
        "array_bytes": SIZE * 8,
        "threads": graves.blocks.default_threads(SIZE),
        "block_size": graves.blocks.DEFAULT_BLOCK_SIZE,
        "peak_bytes": peaks,
    }


def spreads() -> dict:
    """The recursive spread against the difference, compiled, on the same arrays."""
    out = []
    for dtype in (np.float64, np.float32):
        rng = np.random.default_rng(3)
        w = rng.standard_normal(SIZE).astype(dtype)
        grad = (0.5 + rng.standard_normal(SIZE)).astype(dtype)
        params, grads = {"w": w}, {"w": grad}
        opts = {spread: graves.RMSpropGraves(**HYPER, spread=spread) for spread in core.SPREAD_STATES}
        fns = {}
        for spread, opt in opts.items():
            opt.update(params, grads)  # compile (or load from the cache), make the state
            step, state = opt.step_function, opt.state["w"]
            kernel = graves.fused.kernel_for(step, dtype)
            fns[f"kernel alone, {spread}"] = lambda k=kernel, s=state: k(w, grad, s, **HYPER)
            fns[f"update, {spread}"] = lambda o=opt: o.update(params, grads)
        # each step once per repetition, the two spreads alternating
        times = best_times(fns, repeat=SPREAD_REPEAT)
        ratios = {
            f"{what}, recursive / difference": times[f"{what}, recursive"] / times[f"{what}, difference"]
            for what in ("kernel alone", "update")
        }
        out.append({"dtype": np.dtype(dtype).name, "size": SIZE, "kernel_threads": 1,
                    "update_threads": opts["recursive"]._runner.threads_for(SIZE),
                    "seconds": times, "ratios": ratios})
    return {"results": out, "repeat": SPREAD_REPEAT, "machine": machine()}


def print_spreads(sp: dict) -> None:
    for r in sp["results"]:
        print(f"  {r['dtype']} 10M, spreads: " + "; ".join(f"{k} {v:.3f}" for k, v in r["ratios"].items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spread-only", action="store_true", help="rewrite only the 'spread' entry of targets.json")
    args = parser.parse_args()
    if args.spread_only:
        path = RESULTS / "targets.json"
        out = json.loads(path.read_text())
        out["spread"] = sp = spreads()
        print_spreads(sp)
        path.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote the 'spread' entry of {path}")
        return
    out = {"one_array": [], "many_arrays": None, "memory": None, "numba": graves.fused.numba.__version__}
    for dtype in (np.float64, np.float32):
        r = one_array(dtype)
        out["one_array"].append(r)
        print(f"  {r['dtype']} 10M, {r['threads']} threads: " + "; ".join(f"{k} {v:.2f}" for k, v in r["ratios"].items()), flush=True)
    out["many_arrays"] = []
    for dtype in (np.float64, np.float32):
        out["many_arrays"].append(m := many_arrays(dtype))
        print(f"  5000 arrays, {m['dtype']}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in m["seconds"].items()) + ", "
              + ", ".join(f"{k} {v:.1f}x" for k, v in m["ratios"].items()), flush=True)
    out["memory"] = mem = memory()
    print("  peak extra memory per step: " + ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in mem["peak_bytes"].items()))
    out["spread"] = sp = spreads()
    print_spreads(sp)
    path = save("targets", out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
