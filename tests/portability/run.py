"""Portability check: re-run nbval on the stored notebooks as a different machine would.

    python tests/portability/run.py [NOTEBOOK ...]      (default: every book/*.ipynb)

Three perturbations at once, each one the project may set on any machine without forcing
anything a CPU might lack:

* numpy limited to its baseline instructions (``NPY_DISABLE_CPU_FEATURES`` names every
  feature numpy dispatches to on this build), so ``exp``, ``log``, ``tanh``, ``power`` and
  friends run other loops than on the machine that executed the notebooks;
* one BLAS thread (``OPENBLAS_NUM_THREADS=1``), which changes how large products are split;
* every float a ``numpy.random.Generator`` returns moved by one ulp (``nudge.py``, installed
  as an IPython startup file in a temporary ``IPYTHONDIR``), so initial weights and data differ
  from the stored run's in their last bit, as a different BLAS kernel or SIMD loop would make
  them differ after the first operation.

An output that still matches the stored one is either computed with correctly rounded
operations only, or printed to digits that the last bits do not reach.  An output that fails
here would fail on some reader's machine: print fewer digits, or report a distribution.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def disabled_cpu_features() -> str:
    """Every CPU feature above its baseline that this numpy build dispatches to and this CPU has
    (naming one the CPU lacks would only make numpy warn)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return " ".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f))


def perturbed_env(ipython_dir: Path) -> dict:
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    shutil.copy(HERE / "nudge.py", startup / "00-nudge.py")
    env = dict(os.environ, IPYTHONDIR=str(ipython_dir), OPENBLAS_NUM_THREADS="1")
    features = disabled_cpu_features()
    if features:
        env["NPY_DISABLE_CPU_FEATURES"] = features
    return env


def main(argv: list[str]) -> int:
    notebooks = argv or [str(p.relative_to(ROOT)) for p in sorted((ROOT / "book").glob("*.ipynb"))]
    with tempfile.TemporaryDirectory(prefix="graves-portability-") as tmp:
        env = perturbed_env(Path(tmp) / "ipython")
        cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p", "no:cacheprovider",
               "--nbval-sanitize-with", "tests/nbval_sanitize.cfg", "-q", *notebooks]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        minutes = (time.perf_counter() - start) / 60
    what = (f"{len(notebooks)} notebook(s) re-run with numpy at its baseline instructions, one BLAS thread "
            f"and every random float moved by one ulp ({minutes:.1f} min)")
    if done.returncode == 0:
        print(f"portability check passed: {what}")
        return 0
    print(done.stdout)
    print(f"portability check FAILED: {what}.\n"
          "The outputs above depend on the last bits of the machine. Print only digits that survive,\n"
          "compute them with correctly rounded operations only, or report a distribution over seeds\n"
          "(CONTRIBUTING.md, 'Outputs that every machine reproduces'). Rerun one notebook with\n"
          "`.venv/bin/python tests/portability/run.py book/NN_x.ipynb`.")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
