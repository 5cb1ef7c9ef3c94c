"""Run every benchmark of chapter 10 and write benchmarks/results/*.json.

    .venv/bin/python benchmarks/run_all.py                      # all, about 3 minutes on 2 cores
    .venv/bin/python benchmarks/run_all.py --max-size 1e7       # skip the 1e8-parameter roofline points
    .venv/bin/python benchmarks/run_all.py --fused-python /path/to/python   # numba's comparison too

Run it on a quiet machine: the scripts take the best of several interleaved
repetitions, which removes short bursts of load but not a busy core.  Then
re-execute book/10_performance.ipynb, which reads the results.

bench_fused.py needs numba, which is not a dependency of graves; it runs with
``--fused-python`` (an interpreter that has numba and graves), or with this
interpreter if numba happens to be installed, and is skipped otherwise.
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
    parser = argparse.ArgumentParser(description="Run every benchmark of chapter 10.")
    parser.add_argument("--max-size", default="1e8", help="largest roofline size (default 1e8)")
    parser.add_argument("--fused-python", help="a Python with numba (and graves) for bench_fused.py")
    args = parser.parse_args()
    t0 = time.perf_counter()
    run(sys.executable, "bench_targets.py")
    run(sys.executable, "bench_blocks.py")
    run(sys.executable, "bench_roofline.py", "--max-size", args.max_size)
    if args.fused_python:
        run(args.fused_python, "bench_fused.py")
    elif importlib.util.find_spec("numba") is not None:
        run(sys.executable, "bench_fused.py")
    else:
        print("== bench_fused.py skipped: numba is not installed (see --fused-python)")
    print(f"all benchmarks: {time.perf_counter() - t0:.0f} s; results in {HERE / 'results'}")


if __name__ == "__main__":
    main()
