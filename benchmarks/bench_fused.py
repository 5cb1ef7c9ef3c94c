"""A fused loop, compiled, against the package's blocked numpy driver (optional).

numpy runs one operation at a time, so the blocked driver makes 16 passes over
each block (in cache) per step.  A compiled loop makes one pass, holding an
element's intermediate values in registers.  This script measures such a loop,
written with numba, in the same run as the package's update and the 9-pass
floor, on the same number of threads, for 10M float64 and float32 parameters;
and, if installed, numexpr evaluating the four assignments.  The loop repeats
``core.graves_step``'s operations in the same order, and the script checks that
its results are the same bits.

numba and numexpr are not dependencies of ``graves``.  Without them the script
says so and leaves any earlier results/fused.json in place.

    python benchmarks/bench_fused.py   # in an environment with numba (and numexpr)

Writes benchmarks/results/fused.json.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import graves  # noqa: E402
from graves import core  # noqa: E402
from graves.blocks import default_threads  # noqa: E402

from common import bandwidth_from, best_times, floor_seconds, in_chunks, save, stream_functions  # noqa: E402
from versions import HYPER  # noqa: E402

SIZE = 10_000_000


def numba_kernel():
    import numba

    @numba.njit(nogil=True, error_model="numpy")
    def fused(w, grad, n, g, delta, lr, alpha, one_minus_alpha, momentum, eps):
        for i in range(w.size):
            x = grad[i]
            n_i = n[i] * alpha + (x * x) * one_minus_alpha
            g_i = g[i] * alpha + x * one_minus_alpha
            d_i = delta[i] * momentum - (x / np.sqrt((n_i - g_i * g_i) + eps)) * lr
            n[i], g[i], delta[i] = n_i, g_i, d_i
            w[i] = w[i] + d_i

    return fused, numba.__version__


def main() -> None:
    if importlib.util.find_spec("numba") is None:
        print("numba is not installed here: skipped (results/fused.json, if any, is left as it was)")
        return
    fused, numba_version = numba_kernel()
    has_numexpr = importlib.util.find_spec("numexpr") is not None
    rows = []
    for dtype in (np.float64, np.float32):
        dt = np.dtype(dtype).type
        rng = np.random.default_rng(0)
        w0 = rng.standard_normal(SIZE).astype(dtype)
        grad = rng.standard_normal(SIZE).astype(dtype)
        threads = default_threads(SIZE)
        consts = (dt(HYPER["lr"]), dt(HYPER["alpha"]), dt(1.0 - HYPER["alpha"]), dt(HYPER["momentum"]), dt(HYPER["eps"]))

        # same bits: a few steps of each from the same start
        w_pkg, w_fused = w0.copy(), w0.copy()
        opt = graves.RMSpropGraves(**HYPER)
        state = [np.zeros(SIZE, dtype) for _ in range(3)]
        for _ in range(3):
            opt.update({"w": w_pkg}, {"w": grad})
            in_chunks(lambda *a: fused(*a, *consts), (w_fused, grad, *state), threads)
        same_bits = bool(np.array_equal(w_pkg, w_fused) and all(np.array_equal(a, b) for a, b in zip(opt.state["w"], state)))
        max_diff = float(np.max(np.abs(w_pkg.astype(np.float64) - w_fused)))

        fns = {
            "RMSpropGraves.update": lambda: opt.update({"w": w_pkg}, {"w": grad}),
            "numba fused loop": lambda: in_chunks(lambda *a: fused(*a, *consts), (w_fused, grad, *state), threads),
        }
        if has_numexpr:
            import numexpr as ne

            ne.set_num_threads(threads)
            n, g, d = (np.zeros(SIZE, dtype) for _ in range(3))
            w_ne = w0.copy()
            lr, alpha, oma, mom, eps = consts

            names = dict(n=n, g=g, d=d, w=w_ne, grad=grad, lr=lr, alpha=alpha, oma=oma, mom=mom, eps=eps)

            def numexpr_step():
                ne.evaluate("n * alpha + grad * grad * oma", local_dict=names, out=n)
                ne.evaluate("g * alpha + grad * oma", local_dict=names, out=g)
                ne.evaluate("d * mom - grad / sqrt(n - g * g + eps) * lr", local_dict=names, out=d)
                ne.evaluate("w + d", local_dict=names, out=w_ne)

            fns["numexpr, 4 expressions"] = numexpr_step
        streams, moved = stream_functions(SIZE, dtype, threads)
        times = best_times({**fns, **streams}, repeat=7)
        bw = bandwidth_from(times, moved)
        times = {k: v for k, v in times.items() if not k.startswith("stream")}
        floor = floor_seconds(SIZE, dtype, bw["best"])
        rows.append(
            {
                "dtype": np.dtype(dtype).name,
                "size": SIZE,
                "threads": threads,
                "seconds": times,
                "floor_seconds": floor,
                "bandwidth": bw,
                "ratios_to_floor": {k: v / floor for k, v in times.items()},
                "fused_equals_package_bitwise": same_bits,
                "fused_max_abs_difference": max_diff,
            }
        )
        print(
            f"  {np.dtype(dtype).name}: " + ", ".join(f"{k} {v / floor:.2f}x floor" for k, v in times.items())
            + f"; same bits as the package: {same_bits}",
            flush=True,
        )
    versions = {"numba": numba_version}
    if has_numexpr:
        import numexpr

        versions["numexpr"] = numexpr.__version__
    path = save("fused", {"libraries": versions, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
