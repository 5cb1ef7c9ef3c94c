"""numexpr, a fused-expression library, against the package's two paths (optional).

The package's update runs Graves' step either as numba-compiled one-pass loop
(``RMSpropGraves``, the default) or as blocked numpy (``compiled=False``).
numexpr is the other common way to fuse numpy expressions: it evaluates one
expression in cache-sized chunks with its own threads.  The step updates four
arrays, so it takes four expressions, and the arrays are read more than once.
This script times the three in the same run, on the same number of threads,
against the 9-pass floor, for 10M float64 and float32 parameters, and checks
that the two package paths give the same bits (numexpr is compared to
rounding only: it may evaluate in another order).

numexpr is not a dependency of ``graves`` or of the book.  Without it the
script says so and leaves any earlier results/fused.json in place.

    python benchmarks/bench_fused.py   # in an environment with numexpr, numba and graves

Writes benchmarks/results/fused.json.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import graves  # noqa: E402
from graves.blocks import default_threads  # noqa: E402

from common import bandwidth_from, best_times, floor_ratios, floor_seconds, save, stream_functions  # noqa: E402
from versions import HYPER  # noqa: E402

SIZE = 10_000_000


def main() -> None:
    if importlib.util.find_spec("numexpr") is None:
        print("numexpr is not installed here: skipped (results/fused.json, if any, is left as it was)")
        return
    import numexpr as ne

    rows = []
    for dtype in (np.float64, np.float32):
        dt = np.dtype(dtype).type
        rng = np.random.default_rng(0)
        w0 = rng.standard_normal(SIZE).astype(dtype)
        grad = rng.standard_normal(SIZE).astype(dtype)
        threads = default_threads(SIZE)
        ne.set_num_threads(threads)

        # a few steps of each from the same start: the two package paths must agree bit for bit
        w_c, w_n, w_ne = w0.copy(), w0.copy(), w0.copy()
        opt_c, opt_n = graves.RMSpropGraves(**HYPER), graves.RMSpropGraves(**HYPER, compiled=False)
        n, g, d = (np.zeros(SIZE, dtype) for _ in range(3))
        lr, alpha, oma, mom, eps = (dt(HYPER["lr"]), dt(HYPER["alpha"]), dt(1.0 - HYPER["alpha"]),
                                    dt(HYPER["momentum"]), dt(HYPER["eps"]))
        names = dict(n=n, g=g, d=d, w=w_ne, grad=grad, lr=lr, alpha=alpha, oma=oma, mom=mom, eps=eps)

        def numexpr_step():
            ne.evaluate("n * alpha + grad * grad * oma", local_dict=names, out=n)
            ne.evaluate("g * alpha + grad * oma", local_dict=names, out=g)
            ne.evaluate("d * mom - grad / sqrt(n - g * g + eps) * lr", local_dict=names, out=d)
            ne.evaluate("w + d", local_dict=names, out=w_ne)

        for _ in range(3):
            opt_c.update({"w": w_c}, {"w": grad})
            opt_n.update({"w": w_n}, {"w": grad})
            numexpr_step()
        same_bits = bool(np.array_equal(w_c, w_n)
                         and all(np.array_equal(a, b) for a, b in zip(opt_c.state["w"], opt_n.state["w"])))
        numexpr_diff = float(np.max(np.abs(w_c.astype(np.float64) - w_ne)))

        fns = {
            "RMSpropGraves.update": lambda: opt_c.update({"w": w_c}, {"w": grad}),
            "RMSpropGraves(compiled=False).update": lambda: opt_n.update({"w": w_n}, {"w": grad}),
            "numexpr, 4 expressions": numexpr_step,
        }
        streams, moved = stream_functions(SIZE, dtype, threads)
        rounds = []
        times = best_times({**fns, **streams}, repeat=7, rounds=rounds)
        bw = bandwidth_from(times, moved)
        times = {k: v for k, v in times.items() if not k.startswith("stream")}
        floor = floor_seconds(SIZE, dtype, bw["best"])
        # each ratio within each round, then the median over the rounds
        spreads = floor_ratios(rounds, moved, SIZE, dtype, list(fns))
        rows.append(
            {
                "dtype": np.dtype(dtype).name,
                "size": SIZE,
                "threads": threads,
                "seconds": times,
                "floor_seconds": floor,
                "bandwidth": bw,
                "ratios_to_floor": {k: v["median"] for k, v in spreads.items()},
                "ratio_spreads": spreads,
                "compiled_equals_numpy_bitwise": same_bits,
                "numexpr_max_abs_difference": numexpr_diff,
            }
        )
        print(
            f"  {np.dtype(dtype).name}: " + ", ".join(f"{k} {v['median']:.2f}x floor" for k, v in spreads.items())
            + f"; compiled and numpy paths same bits: {same_bits}; numexpr max |diff| {numexpr_diff:.1e}",
            flush=True,
        )
    import numba

    path = save("fused", {"libraries": {"numexpr": ne.__version__, "numba": numba.__version__}, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
