"""Separate arrays, as a dict, without packing: the package's update against the
source document's per-key loop, over K arrays of S elements each.

K in {1, 10, 100, 1,000, 10,000}, S in {1, 10, 100, 10^3, 10^4, 10^5}, float32 and
float64; combinations above ``--max-total`` elements in all (default 10^8) are
skipped, for memory (the loop's temporaries double its arrays) and time.  Each
cell times ``RMSpropGraves().update`` on the same K separate arrays every step
(the gradients refilled in place, as a training loop does), and the loop of
``versions.PerKeyLoop``, their repetitions interleaved; the speed-up is
loop / update.  Each cell also checks, on fresh copies, that two steps of the
update give the same bits as the per-key numpy path (``compiled=False``, one
array at a time).

    .venv/bin/python benchmarks/bench_sweep.py [--max-total 1e8]

Writes benchmarks/results/sweep.json.
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

from common import best_times, save  # noqa: E402
from versions import HYPER, PerKeyLoop  # noqa: E402

KS = [1, 10, 100, 1_000, 10_000]
SS = [1, 10, 100, 10**3, 10**4, 10**5]


def same_bits_as_per_key(params: dict, grads: dict) -> bool:
    """Two steps of the update (the first checks everything, the second takes the
    remembered layout) against the numpy path, array by array."""
    fast = {k: v.copy() for k, v in params.items()}
    opt = graves.RMSpropGraves(**HYPER)
    for _ in range(2):
        opt.update(fast, grads)
    for k, v in params.items():
        w = v.copy()
        ref = graves.RMSpropGraves(**HYPER, compiled=False)
        for _ in range(2):
            ref.update({k: w}, {k: grads[k]})
        if not np.array_equal(w, fast[k]):
            return False
    return True


def cell(keys: int, size: int, dtype) -> dict:
    rng = np.random.default_rng(keys * 7919 + size)
    params = {f"p{i}": rng.standard_normal(size).astype(dtype) for i in range(keys)}
    grads = {k: rng.standard_normal(size).astype(dtype) for k in params}
    same = same_bits_as_per_key(params, grads) if keys * size <= 10**6 else None
    loop_params = {k: v.copy() for k, v in params.items()}
    loop, opt = PerKeyLoop(**HYPER), graves.RMSpropGraves(**HYPER)
    total = keys * size
    repeat = 3 if total >= 10**7 else 7
    times = best_times(
        {"document-style loop": lambda: loop.update(loop_params, grads), "update": lambda: opt.update(params, grads)},
        repeat,
    )
    return {
        "keys": keys,
        "size": size,
        "dtype": np.dtype(dtype).name,
        "threads": opt._runner.threads_for(total),
        "seconds": times,
        "speedup": times["document-style loop"] / times["update"],
        "same_bits_as_per_key": same,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-total", type=float, default=1e8, help="skip cells with more elements in all")
    args = parser.parse_args(argv)
    rows, skipped = [], []
    t0 = time.perf_counter()
    for dtype in (np.float64, np.float32):
        for keys in KS:
            for size in SS:
                if keys * size > args.max_total:
                    skipped.append({"keys": keys, "size": size, "dtype": np.dtype(dtype).name})
                    continue
                row = cell(keys, size, dtype)
                gc.collect()
                rows.append(row)
                print(f"  {row['dtype']} K={keys:>6,d} S={size:>7,d}: loop {row['seconds']['document-style loop'] * 1e3:9.3f} ms, "
                      f"update {row['seconds']['update'] * 1e3:8.3f} ms, x{row['speedup']:6.1f}, "
                      f"same bits {row['same_bits_as_per_key']}", flush=True)
    low = min(rows, key=lambda r: r["speedup"])
    print(f"least speed-up: x{low['speedup']:.2f} ({low['dtype']}, K={low['keys']}, S={low['size']}); "
          f"{len(skipped)} cells above {args.max_total:.0e} elements skipped ({time.perf_counter() - t0:.0f} s)")
    path = save("sweep", {"max_total": args.max_total, "rows": rows, "skipped": skipped})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
