"""The perturbations of the portability check (tests/portability/run.py) do what it claims."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NUDGE = HERE / "portability" / "nudge.py"


def run_python(code, **env):
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_nudge_moves_every_random_float_by_one_ulp():
    # nudge.py patches numpy for the whole process, so it runs in a child interpreter.
    out = run_python(
        f"exec(open({str(NUDGE)!r}).read())\n"
        "import numpy as np\n"
        "r = np.random.default_rng([8, 1])\n"
        "a, u, k = r.standard_normal((50, 3)), r.random(), r.integers(0, 1000, 5)\n"
        "b = np.random.Generator(np.random.PCG64(3)).uniform(-2, 2, 7)\n"
        "print(repr(a.tolist()), repr(u), type(u).__name__, k.tolist(), repr(b.tolist()))"
    )
    r = np.random.default_rng([8, 1])
    a, u, k = r.standard_normal((50, 3)), r.random(), r.integers(0, 1000, 5)
    b = np.random.Generator(np.random.PCG64(3)).uniform(-2, 2, 7)
    expected = np.nextafter(a, 0.0).tolist(), float(np.nextafter(u, 0.0)), k.tolist(), np.nextafter(b, 0.0).tolist()
    assert out.strip() == f"{expected[0]!r} {expected[1]!r} float {expected[2]} {expected[3]!r}"
    assert np.all(np.abs(np.nextafter(a, 0.0)) < np.abs(a))  # every draw moved, towards zero


def test_nudge_keeps_types_and_shapes():
    # A 0-d array stays a 0-d array (a chapter may update it in place), scalars stay scalars,
    # complex draws move in both parts.
    out = run_python(
        f"exec(open({str(NUDGE)!r}).read())\n"
        "import numpy as np\n"
        "r = np.random.default_rng(5)\n"
        "z, s, f = r.normal(size=()), r.normal(size=(2, 0)), r.random()\n"
        "c = r.normal(size=3) * (1 + 1j)\n"
        "print(type(z).__name__, z.shape, s.shape, type(f).__name__)"
    )
    assert out.split() == ["ndarray", "()", "(2,", "0)", "float"]


def test_disabled_features_leave_numpy_at_its_baseline():
    sys.path.insert(0, str(HERE / "portability"))
    try:
        from run import disabled_cpu_features
    finally:
        sys.path.pop(0)
    features = disabled_cpu_features()
    out = run_python(
        "from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__\n"
        "print(sorted(f for f in __cpu_dispatch__ if __cpu_features__.get(f)))",
        NPY_DISABLE_CPU_FEATURES=features,
    )
    assert out.strip() == "[]", f"still enabled with NPY_DISABLE_CPU_FEATURES={features!r}: {out}"
