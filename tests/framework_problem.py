"""The noisy quadratic that tests/test_frameworks.py and tests/test_framework_parity.py share.

Its gradient depends on the parameters, so a difference in one step feeds every
later one: trajectories agree over 1,000 steps only if every step agrees.
"""

import numpy as np

STEPS = 1000


def problem(seed=0, size=6, steps=STEPS):
    """Start, curvature, target and per-step noise of a noisy quadratic."""
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=size)
    h = rng.uniform(0.5, 2.0, size=size)
    target = rng.normal(size=size)
    noise = rng.normal(scale=0.5, size=(steps, size))
    return w0, h, target, noise


def lr_schedule(lr, steps=STEPS, changing=True):
    """``steps`` learning rates: constant, or changed before every step (and cut at half-time)."""
    if not changing:
        return [float(lr)] * steps
    t = np.arange(steps)
    return [float(x) for x in lr * (1.0 + 0.5 * np.sin(t / 37.0)) * np.where(t < steps // 2, 1.0, 0.3)]
