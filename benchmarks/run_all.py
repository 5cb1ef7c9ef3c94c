"""Run every benchmark of chapter 11 and write benchmarks/results/*.json.

    .venv/bin/python benchmarks/run_all.py                      # all, about 3 minutes on 2 cores
    .venv/bin/python benchmarks/run_all.py --max-size 1e7       # skip the 1e8-parameter roofline points
    .venv/bin/python benchmarks/run_all.py --max-total 1e7      # skip the 1e8-element sweep cells
    .venv/bin/python benchmarks/run_all.py --numexpr-python /path/to/python   # numexpr's comparison too

Run it on a quiet machine: the scripts take the best of several interleaved
repetitions, which removes short bursts of load but not a busy core.  Then
re-execute book/11_performance.ipynb, which reads the results.

bench_sweep.py times separate arrays against the per-key loop over a grid of
sizes; bench_peers.py measures PyTorch and Optax beside the package where they
are installed (``make bench`` installs them) and records which are missing.

Every script measures both paths of the package: the compiled one-pass
kernel (numba, from requirements.txt; ``RMSpropGraves`` by default) and the
blocked numpy driver (``compiled=False``).  bench_fused.py compares them with
numexpr, which is not a dependency; it runs with ``--numexpr-python`` (an
interpreter that has numexpr, numba and graves), or with this interpreter if
numexpr happens to be installed, and is skipped otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(python: str, script: str, *args: str) -> None:
    print(f"== {script} {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run([python, str(HERE / script), *args], check=True)
    print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run every benchmark of chapter 11.")
    parser.add_argument("--max-size", default="1e8", help="largest roofline size (default 1e8)")
    parser.add_argument("--max-total", default="1e8", help="most elements of a sweep cell (default 1e8)")
    parser.add_argument("--numexpr-python", help="a Python with numexpr, numba and graves for bench_fused.py")
    args = parser.parse_args()
    if importlib.util.find_spec("numba") is None:
        sys.exit("numba is not installed: pip install -r requirements.txt (the benchmarks measure both paths)")
    t0 = time.perf_counter()
    run(sys.executable, "bench_targets.py")
    run(sys.executable, "bench_blocks.py")
    run(sys.executable, "bench_roofline.py", "--max-size", args.max_size)
    run(sys.executable, "bench_sweep.py", "--max-total", args.max_total)
    run(sys.executable, "bench_peers.py")
    if args.numexpr_python:
        run(args.numexpr_python, "bench_fused.py")
    elif importlib.util.find_spec("numexpr") is not None:
        run(sys.executable, "bench_fused.py")
    else:
        print("== bench_fused.py skipped: numexpr is not installed (see --numexpr-python)")
    print(f"all benchmarks: {time.perf_counter() - t0:.0f} s; results in {HERE / 'results'}")


if __name__ == "__main__":
    main()
