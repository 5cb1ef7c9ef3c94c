"""Check a hand-written update function against the package, step by step.

A student (or anyone porting the update) writes one step as a function::

    def my_step(w, grad, state, *, lr, alpha, momentum, eps):
        ...                       # Graves' eqs. 38-41
        return w, state

``w`` and ``grad`` are 1-D float64 arrays, ``state`` a dict of such arrays
named as in :mod:`graves.core` (``n``, ``g``, ``delta`` for Graves' update),
all zero before the first step.  The function may update its arguments in
place or build new arrays; it gets copies either way.  :func:`check_update`
runs it for a few steps on fixed gradients beside the package's optimizer and
reports the first step, quantity and element where the two differ::

    from graves.testing import check_update

    result = check_update(my_step)
    print(result.report)          # or: assert result, result.report

Quantities are compared in the order the equations compute them (``n``,
``g``, ``delta``, then ``w``), so the first difference points at the first
equation that differs.  The default learning rate changes after the third
step: at a constant rate a learning rate outside the momentum buffer gives the
same parameters as one inside it (its ``delta`` differs, and is compared), and
the schedule makes the difference show in ``w`` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import optimizers

# What each reference optimizer's update function receives and keeps.
_SPECS = {
    "graves": (optimizers.RMSpropGraves, ("n", "g", "delta")),
    "rmsprop": (optimizers.RMSprop, ("n",)),
    "sgd": (optimizers.SGD, ("velocity",)),
}
_SGD_LR = 0.1  # SGD has no default learning rate; the check needs one


@dataclass(frozen=True)
class Mismatch:
    """The first difference: at ``step`` (from 1), ``quantity[index]`` was
    ``got``, not ``expected``."""

    step: int
    quantity: str
    index: int
    expected: float
    got: float


@dataclass(frozen=True)
class CheckResult:
    """What :func:`check_update` found.  True when ``fn`` matched on every
    step."""

    ok: bool
    reference: str
    steps: int
    size: int
    mismatch: Mismatch | None = None
    error: str | None = None
    rtol: float = 0.0
    atol: float = 0.0
    # at the mismatch: the element's gradient and the step's hyperparameters
    inputs: dict | None = None

    def __bool__(self) -> bool:
        return self.ok

    @property
    def report(self) -> str:
        """A few readable lines: the verdict, and where and how ``fn``
        departs."""
        head = (
            f"reference: {self.reference}; "
            f"{self.steps} steps on {self.size} elements"
        )
        if self.ok:
            return (
                f"OK: fn matches the {head}, "
                f"within rtol={self.rtol:g}, atol={self.atol:g}."
            )
        if self.error is not None:
            return f"FAILED: {self.error}\n({head})"
        m = self.mismatch
        lines = [
            f"FAILED: fn departs from the {head}",
            f"  first difference: step {m.step}, {m.quantity}[{m.index}]",
            f"  expected {m.expected:.10g}",
            f"  got      {m.got:.10g}",
            f"  (tolerance rtol={self.rtol:g}, atol={self.atol:g})",
        ]
        if self.inputs:
            lines.append(
                "  inputs of that step: "
                + ", ".join(f"{k} = {v:.10g}" for k, v in self.inputs.items())
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report


def default_gradients(steps: int, size: int, seed: int) -> np.ndarray:
    """Gradients of several sizes, with non-zero means so that centering
    matters.

    Built from integers by correctly rounded operations only, so every CPU
    gives the same bits.
    """
    rng = np.random.default_rng(seed)
    mean = rng.integers(-20, 21, size) / 10.0  # from -2 to 2
    spread = rng.integers(1, 11, size) / 10.0
    noise = rng.integers(-10, 11, (steps, size)) / 10.0
    # element sizes 1, 0.1 and 0.01: some below sqrt(eps)
    scale = 10.0 ** -(np.arange(size) % 3)
    return (mean + spread * noise) * scale


def check_update(
    fn: Callable,
    reference: str = "graves",
    *,
    steps: int = 6,
    size: int = 8,
    seed: int = 0,
    grads=None,
    w0=None,
    hyperparameters: dict | None = None,
    lr_schedule=None,
    rtol: float = 1e-9,
    atol: float = 1e-12,
) -> CheckResult:
    """Run ``fn`` beside ``graves``' own optimizer and report the first
    difference.

    ``reference`` is ``"graves"`` (``RMSpropGraves``; ``fn(w, grad, state, *,
    lr, alpha, momentum, eps)`` with state ``n``, ``g``, ``delta``),
    ``"rmsprop"`` (``RMSprop``; keywords ``lr, alpha, eps``, state ``n``) or
    ``"sgd"`` (``SGD``; keywords ``lr, momentum``, state ``velocity``).  ``fn``
    returns ``(w, state)``.

    ``hyperparameters`` overrides the reference optimizer's defaults (``lr`` is
    required for ``"sgd"``; 0.1 if not given).  ``lr_schedule`` is the learning
    rate of each step; by default the base rate for three steps and a tenth of
    it after.  ``grads`` (shape ``(steps, size)``) and ``w0`` (shape
    ``(size,)``) replace the default data.  Two values agree when
    ``|got - expected| <= atol + rtol * |expected|``; NaN agrees only with NaN.
    """
    if reference not in _SPECS:
        raise ValueError(
            f"reference must be one of {sorted(_SPECS)}, got {reference!r}"
        )
    if not callable(fn):
        raise TypeError(
            "fn must be a function fn(w, grad, state, **hyperparameters), got "
            f"{type(fn).__name__}"
        )
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not (
            isinstance(value, (int, float))
            and value >= 0
            and np.isfinite(value)
        ):
            raise ValueError(
                f"{name} must be a finite number >= 0, got {value!r}"
            )
    cls, fields = _SPECS[reference]
    hyper = dict(hyperparameters or {})
    if reference == "sgd":
        hyper.setdefault("lr", _SGD_LR)
    opt = cls(**hyper)  # validates the hyperparameters, naming any bad one
    held = type(opt.initial_state((1,), np.dtype(np.float64)))._fields
    if tuple(held) != fields:
        raise ValueError(
            f"with {hyper} the reference keeps the state {list(held)}; "
            f"check_update compares {list(fields)}"
        )
    names = opt.hyperparameter_names
    base = opt.hyperparameters()

    if grads is None:
        for name, value in (("steps", steps), ("size", size)):
            if not (isinstance(value, (int, np.integer)) and value >= 1):
                raise ValueError(
                    f"{name} must be a positive integer, got {value!r}"
                )
        grads = default_gradients(steps, size, seed)
    grads = np.array(grads, dtype=np.float64)
    if grads.ndim != 2 or grads.size == 0:
        raise ValueError(
            f"grads must have shape (steps, size), got shape {grads.shape}"
        )
    steps, size = grads.shape
    if w0 is None:
        w0 = np.random.default_rng([seed, 1]).integers(-10, 11, size) / 10.0
    w0 = np.array(w0, dtype=np.float64)
    if w0.shape != (size,):
        raise ValueError(
            f"w0 must have shape ({size},) to match grads, got {w0.shape}"
        )
    if lr_schedule is None:
        lr_schedule = [base["lr"]] * min(steps, 3) + [base["lr"] / 10] * max(
            steps - 3, 0
        )
    lr_schedule = [float(v) for v in lr_schedule]
    if len(lr_schedule) != steps:
        raise ValueError(
            f"lr_schedule must give one learning rate per step ({steps}), got "
            f"{len(lr_schedule)}"
        )

    label = f"graves.{cls.__name__}"
    result = dict(
        reference=label,
        steps=steps,
        size=size,
        rtol=float(rtol),
        atol=float(atol),
    )
    ref_w = w0.copy()
    w = w0.copy()
    state = {f: np.zeros(size) for f in fields}
    for t in range(1, steps + 1):
        opt.lr = lr_schedule[t - 1]
        grad = grads[t - 1]
        opt.update({"w": ref_w}, {"w": grad.copy()})
        expected = dict(zip(fields, opt.state["w"]), w=ref_w)
        kwargs = {k: getattr(opt, k) for k in names}
        try:
            out = fn(
                w.copy(),
                grad.copy(),
                {k: v.copy() for k, v in state.items()},
                **kwargs,
            )
        except Exception as exc:
            # the student's bug, reported rather than raised
            return CheckResult(
                ok=False,
                error=f"fn raised {type(exc).__name__} at step {t}: {exc}",
                **result,
            )
        problem = _malformed(out, fields, size)
        if problem:
            return CheckResult(
                ok=False, error=f"at step {t}, {problem}", **result
            )
        w, state = (
            np.asarray(out[0], dtype=np.float64),
            {k: np.asarray(out[1][k], dtype=np.float64) for k in fields},
        )
        got = dict(state, w=w)
        for q in (*fields, "w"):
            bad = _first_difference(got[q], expected[q], rtol, atol)
            if bad is not None:
                mismatch = Mismatch(
                    t, q, bad, float(expected[q][bad]), float(got[q][bad])
                )
                inputs = {f"grad[{bad}]": float(grad[bad]), **kwargs}
                return CheckResult(
                    ok=False, mismatch=mismatch, inputs=inputs, **result
                )
    return CheckResult(ok=True, **result)


def _malformed(out, fields, size) -> str | None:
    """What is wrong with ``fn``'s return value, or None."""
    if not (isinstance(out, tuple) and len(out) == 2):
        return f"fn must return a pair (w, state), got {type(out).__name__}"
    w, state = out
    if np.shape(w) != (size,):
        return f"fn returned w of shape {np.shape(w)}, expected ({size},)"
    if not isinstance(state, dict):
        return (
            f"fn must return the state as a dict with keys {list(fields)}, "
            f"got {type(state).__name__}"
        )
    missing = [f for f in fields if f not in state]
    if missing:
        return (
            f"the returned state lacks {missing[0]!r} "
            f"(expected keys {list(fields)})"
        )
    for f in fields:
        if np.shape(state[f]) != (size,):
            return (
                f"state[{f!r}] has shape {np.shape(state[f])}, "
                f"expected ({size},)"
            )
    return None


def _first_difference(got, expected, rtol, atol) -> int | None:
    """Index of the first element outside the tolerance (NaN matches only NaN),
    or None."""
    both_nan = np.isnan(got) & np.isnan(expected)
    with np.errstate(invalid="ignore"):
        close = (got == expected) | (
            np.abs(got - expected) <= atol + rtol * np.abs(expected)
        )
    bad = np.flatnonzero(~(close | both_nan))
    return int(bad[0]) if bad.size else None
