"""Thin optimizer classes over the functional core in :mod:`graves.core`.

The base class owns everything that is not a formula: checking inputs,
keeping one state per parameter, replacing scalars in the caller's dict,
skipping non-finite steps, and checkpoints.  Each subclass names its step
function, its state and its hyperparameters, and nothing else.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import numpy as np

from . import checkpoint, checks, core, packing
from .blocks import DEFAULT_BLOCK_SIZE, BlockRunner
from .checks import Hyperparameter

_REGISTRY: dict[str, type["Optimizer"]] = {}


class Optimizer:
    """Common machinery.  Subclasses set ``name``, ``State``, ``hyperparameter_names``
    and ``step_function``.

    ``update(params, grads)`` takes two dicts with the same keys, from a name to
    a float numpy array or a float scalar.  Arrays are updated in place; scalars
    (which cannot be) are replaced in ``params``.  A call that raises changes
    nothing: every check runs before the first write.

    ``nonfinite`` decides what a NaN or infinite gradient does: ``"raise"``
    (default) raises ``FloatingPointError``; ``"skip"`` skips the whole step,
    leaving parameters and state untouched, and counts it in ``skipped_steps``,
    the usual policy of mixed-precision training, where an overflowing loss
    scale produces such steps now and then.

    ``block_size``, ``threads`` and ``compiled`` choose how a step runs, never
    what it computes (chapter 11): blocks of ``block_size`` elements keep the
    numpy path's scratch in cache; ``threads="auto"`` uses one thread for small
    arrays and up to four for large ones; ``compiled=True`` runs the one-pass
    kernel of :mod:`graves.fused` where one exists and numba is installed.
    Every choice gives the same bits.
    """

    name: ClassVar[str]
    State: ClassVar[type]
    hyperparameter_names: ClassVar[tuple[str, ...]]
    step_function: ClassVar[Any]

    nonfinite = Hyperparameter(checks.one_of("raise", "skip"), "policy for NaN/inf gradients")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _REGISTRY[cls.name] = cls

    def __init__(
        self,
        *,
        nonfinite: str = "raise",
        block_size: int = DEFAULT_BLOCK_SIZE,
        threads: int | str = "auto",
        compiled: bool = True,
    ):
        if not isinstance(compiled, (bool, np.bool_)):
            raise TypeError(f"compiled must be True or False, got {compiled!r} of type {type(compiled).__name__}")
        self.nonfinite = nonfinite
        self._runner = BlockRunner(
            checks.positive_integer("block_size", block_size),
            "auto" if isinstance(threads, str) and threads == "auto" else checks.positive_integer("threads", threads),
            compiled=bool(compiled),
        )
        self.reset()

    # -- state -----------------------------------------------------------------

    def reset(self) -> None:
        """Forget all state: the next ``update`` starts from zero averages."""
        self._state: dict[str, NamedTuple] = {}
        self._packed: packing.PackedCall | None = None
        self.step_count = 0
        self.skipped_steps = 0

    def initial_state(self, shape: tuple, dtype: np.dtype) -> NamedTuple:
        """Zero state for one parameter, in the parameter's shape and dtype."""
        return self.State(*(np.zeros(shape, dtype) for _ in self.State._fields))

    @property
    def state(self) -> dict[str, NamedTuple]:
        """The per-parameter state (read it; do not modify it)."""
        return self._state

    def hyperparameters(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.hyperparameter_names}

    def step_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``step_function`` at the coming step."""
        return self.hyperparameters()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"

    # -- the update -------------------------------------------------------------

    def _check_layout(self, entries: list[checks.Entry]) -> None:
        if not self._state:
            return
        keys = [e.key for e in entries]
        new = [k for k in keys if k not in self._state]
        present = set(keys)  # a set: a list here made this check quadratic in the number of keys
        gone = [k for k in self._state if k not in present]
        hint = "call reset() to start a fresh state for a different parameter set"
        if new:
            raise ValueError(f"parameter {new[0]!r} is new since the last step; the state covers {list(self._state)}; {hint}")
        if gone:
            raise ValueError(f"parameter {gone[0]!r} was in earlier steps but is missing now; {hint}")
        for e in entries:
            held = self._state[e.key][0]
            if held.shape != e.shape or held.dtype != e.dtype:
                raise ValueError(
                    f"parameter {e.key!r} is now {e.dtype}{list(e.shape)}, but its state is "
                    f"{held.dtype}{list(held.shape)}; {hint}"
                )

    def update(self, params: dict, grads: dict) -> None:
        """One optimizer step on every parameter in ``params``.

        When the parameters, the gradients and the state are each consecutive
        views of one buffer (see :mod:`graves.packing`), the step runs once over
        the whole buffer; otherwise once per parameter.  The two paths give the
        same result, bit for bit, and raise for the same inputs.
        """
        packed = self._packed
        if packed is not None and packed.same_call(params, grads, self._state):
            entries = packed.entries  # the same arrays as the last packed step passed the checks
        else:
            packed = self._packed = None
            entries = checks.parameter_entries(params, grads)
            self._check_layout(entries)
        checks.hyperparameters_fit(self, entries if packed is None else entries[:1])  # packed: one dtype
        if packed is not None and self._runner.all_finite(packed.grad):
            bad = None
        else:
            bad = checks.first_nonfinite(entries)
        if bad is not None:
            if self.nonfinite == "raise":
                raise FloatingPointError(
                    f"gradient {bad!r} contains NaN or inf (in the parameter's dtype); nothing was changed "
                    "(construct the optimizer with nonfinite='skip' to skip such steps)"
                )
            self.skipped_steps += 1
            return

        if not self._state:
            self._state = {e.key: self.initial_state(e.shape, e.dtype) for e in entries}
        self.step_count += 1
        arguments = self.step_arguments()
        if packed is None:
            packed, self._state = packing.PackedCall.of(entries, self._state)
            self._packed = packed
        if packed is not None:  # one run over the whole buffer
            self._runner.run(self.step_function, packed.w, packed.grad, packed.state, **arguments)
            return
        for e in entries:
            state = self._state[e.key]
            flat_state = type(state)(*(a.reshape(-1) for a in state))
            grad = np.asarray(e.grad, dtype=e.dtype).reshape(-1)
            if not e.is_array:
                w = np.array([e.value], dtype=e.dtype)
                self._runner.run(self.step_function, w, grad, flat_state, **arguments)
                # numpy scalars keep their type (np.float64 is also a float); Python floats stay float
                params[e.key] = w[0] if isinstance(e.value, np.generic) else float(w[0])
            elif e.value.flags.c_contiguous:
                self._runner.run(self.step_function, e.value.reshape(-1), grad, flat_state, **arguments)
            else:
                w = e.value.reshape(-1)  # a copy: the caller's array is strided
                self._runner.run(self.step_function, w, grad, flat_state, **arguments)
                e.value[...] = w.reshape(e.shape)

    # -- checkpoints --------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters, counters and state as plain data (arrays, numbers, strings).

        The dict is flat, so ``np.savez(file, **opt.state_dict())`` stores it.
        """
        return checkpoint.to_plain(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters, counters and state from ``state_dict``.

        Everything is checked first; on any mismatch a ValueError or TypeError
        is raised and the optimizer is left as it was.
        """
        checkpoint.restore(self, state_dict)

    def save(self, path) -> None:
        """Write ``state_dict()`` to the ``.npz`` file ``path`` atomically."""
        checkpoint.save(self, path)

    @classmethod
    def from_hyperparameters(cls, hyperparameters: dict[str, Any]) -> "Optimizer":
        """A fresh optimizer with the given hyperparameters (used by :func:`graves.load`)."""
        return cls(**hyperparameters)


class SGD(Optimizer):
    """Gradient descent with heavy-ball momentum: ``v ← μv − lr·∇``, ``w ← w + v``.

    ``lr`` is required; ``momentum=0`` gives plain gradient descent.
    """

    name = "SGD"
    State = core.SGDState
    hyperparameter_names = ("lr", "momentum")
    step_function = staticmethod(core.sgd_step)

    lr = Hyperparameter(checks.positive, "learning rate η (inside the velocity)")
    momentum = Hyperparameter(checks.unit_interval, "momentum coefficient μ")

    def __init__(self, lr: float, momentum: float = 0.0, **options):
        self.lr, self.momentum = lr, momentum
        super().__init__(**options)


class RMSprop(Optimizer):
    """Uncentered RMSprop with ε inside the root, no momentum: the source document's algorithm.

    ``n ← αn + (1−α)∇²``, ``w ← w − lr·∇/√(n + ε)``.
    """

    name = "RMSprop"
    State = core.RMSpropState
    hyperparameter_names = ("lr", "alpha", "eps")
    step_function = staticmethod(core.rmsprop_step)

    lr = Hyperparameter(checks.positive, "learning rate")
    alpha = Hyperparameter(checks.unit_interval, "decay of the squared-gradient average")
    eps = Hyperparameter(checks.non_negative, "added to n inside the square root")

    def __init__(self, lr: float = 1e-3, alpha: float = 0.9, eps: float = 1e-8, **options):
        self.lr, self.alpha, self.eps = lr, alpha, eps
        super().__init__(**options)


class RMSpropGraves(Optimizer):
    """Graves' centered RMSprop with momentum (arXiv:1308.0850, eqs. 38-41).

    Names and defaults are Chainer's; Graves' symbols in brackets::

        n ← α n + (1−α) ∇²                    (ℵ = alpha)
        g ← α g + (1−α) ∇
        Δ ← momentum Δ − lr ∇ / √(n − g² + eps)  (ℶ = momentum, ℷ = lr, ℸ = eps)
        w ← w + Δ

    ``lr`` enters inside the momentum buffer Δ: changing it between steps
    (a schedule) scales only the new contribution, not what Δ already holds.

    ``spread="recursive"`` keeps s = n − g² in the state instead of n
    (``state[key].s``), updated as s ← α s + α(1−α)(∇ − g′)² before g moves:
    the same step in exact arithmetic, and a spread that never rounds below
    zero (chapter 4).  The default, ``"difference"``, is Chainer's, bit for bit.
    A checkpoint records the choice (``spread`` in the state dict, absent for
    "difference"), and loading one adopts it.
    """

    name = "RMSpropGraves"
    State = core.CenteredState
    hyperparameter_names = ("lr", "alpha", "momentum", "eps")
    step_function = staticmethod(core.graves_step)

    lr = Hyperparameter(checks.positive, "learning rate ℷ (inside Δ)")
    alpha = Hyperparameter(checks.unit_interval, "decay ℵ of both averages")
    momentum = Hyperparameter(checks.unit_interval, "momentum ℶ")
    eps = Hyperparameter(checks.non_negative, "ℸ, added to n − g² inside the square root")

    def __init__(
        self,
        lr: float = 1e-4,
        alpha: float = 0.95,
        momentum: float = 0.9,
        eps: float = 1e-4,
        spread: str = "difference",
        **options,
    ):
        self.lr, self.alpha, self.momentum, self.eps = lr, alpha, momentum, eps
        self._set_spread(spread)
        super().__init__(**options)

    @property
    def spread(self) -> str:
        """``"difference"`` (the state holds n) or ``"recursive"`` (it holds s = n − g²)."""
        return self._spread

    def _set_spread(self, spread: str) -> None:
        # fixed at construction (or by a checkpoint): it decides what the state holds
        self._spread = checks.one_of(*core.SPREAD_STATES)("spread", spread)
        self.State = core.SPREAD_STATES[self._spread]
        self.step_function = core.graves_recursive_step if self._spread == "recursive" else core.graves_step

    def __repr__(self) -> str:
        text = super().__repr__()
        return text if self._spread == "difference" else f"{text[:-1]}, spread={self._spread!r})"


def registry() -> dict[str, type[Optimizer]]:
    """Optimizer classes by the name their checkpoints carry."""
    return dict(_REGISTRY)
