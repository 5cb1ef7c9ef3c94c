"""Centered RMSprop as each library publishes it, on the one functional core.

The libraries agree on the averages and differ in where they put the
constants.  Each one here is :func:`graves.core.centered_rmsprop_step` with a
:class:`graves.core.CenteredVariant` and a starting value of ``n``; none
restates the formula.  Notation: ``∇`` the gradient, ``n`` the mean square,
``g`` the mean gradient, ``Δ`` (or the library's ``b``) the momentum buffer,
``d`` the denominator.

========  =============================================  ==========  ===========
========= library   entry point (source file)                      eps
lr           initial n ========  =============================================
==========  ===========  ========= chainer
``chainer.optimizers.RMSpropGraves``           in the root inside Δ     0 torch
``torch.optim.RMSprop``                        outside     outside Δ    0 keras
``keras.optimizers.RMSprop`` (Keras 3)         in the root inside Δ     0 tf1
``tf.compat.v1.train.RMSPropOptimizer``        in the root inside Δ     1 optax
``optax.rmsprop``                              either      inside Δ
initial_scale dqn       DeepMind's ``NeuralQLearner.lua`` (2015)       in the
root no momentum  0 keras2    tf.keras 2's ``RMSprop`` (``legacy`` in 2.11+)
see below   inside Δ     0 ========
=============================================  ==========  ===========
=========

tf.keras 2 puts eps outside the root when built with ``momentum=0`` and inside
it otherwise; it is not one of the six centered RMSprops chapter 7 compares
(:data:`LIBRARIES`), but :func:`make` builds it (:data:`PRESETS`).

:func:`make` builds one from the library's own keyword names and defaults;
:func:`from_graves` translates a Graves/Chainer configuration into the closest
configuration of a library.  The optimizers are :class:`graves.Optimizer`
subclasses: the same checks, ``state_dict``/``load_state_dict``, ``save`` and
:func:`graves.load`.  Their hyperparameters are attributes under the graves
names ``lr``, ``alpha``, ``momentum`` and ``eps`` and under the library's own
(``opt.learning_rate``, ``opt.rho``, ...): set either between steps for a
schedule.  What fixes the variant (``centered``, Optax's flags) is read-only
and travels in the checkpoint under ``config/``.  Constants are computed in
the dtype and order the library uses: Optax's ``1 − decay**t`` in float32
for float32 parameters, TensorFlow's ``1 − ρ`` in the parameter's dtype.
Every centered configuration also takes ``spread="recursive"`` (read-only,
recorded in the checkpoint): the spread n − g² kept by its recursion, with
the library's eps and lr placement unchanged (see
:class:`graves.core.CenteredVariant`).

Ranges are the package's, not always the library's: ``lr >= 0`` (0 is allowed,
as schedules may end there), ``alpha`` and ``momentum`` in [0, 1), ``eps >= 0``.
A configuration whose variant is Graves' own (Chainer, DQN, Keras, TF1 and
Optax with their centered defaults) runs :func:`graves.core.graves_step` and
so may take the compiled path of :mod:`graves.fused`; every other one runs
:func:`graves.core.centered_rmsprop_step` on numpy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np

from . import checkpoint, checks, core
from .checks import Hyperparameter
from .optimizers import Optimizer, RMSpropGraves

LIBRARIES = ("chainer", "torch", "keras", "tf1", "optax", "dqn")

#: Everything :func:`make` builds: the libraries, and tf.keras 2's RMSprop.
PRESETS = LIBRARIES + ("keras2",)

#: Keywords of every graves optimizer (how a step runs, never what it computes),
#: accepted by :func:`make` beside the library's own.
RUN_OPTIONS = (
    "nonfinite",
    "block_size",
    "threads",
    "compiled",
    "missing_grads",
)

# marks a keyword without a default (tf1's and optax's learning_rate)
_REQUIRED = object()
_GOLDEN = (1 + math.sqrt(5)) / 2


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"{name} must be True or False, got {checks.shown(value)} of type "
            f"{type(value).__name__}"
        )
    return bool(value)


def _fixed(value: float, why: str):
    # the value itself, or its rounding to a float dtype
    # (checks.hyperparameters_fit passes the rounded value, so that a fixed
    # constant works in float16 too)
    allowed = {float(t(value)) for t in (np.float16, np.float32, np.float64)}

    def check(name: str, x: Any) -> float:
        x = checks.real_number(name, x)
        if x not in allowed:
            raise ValueError(f"{name} is fixed at {value!r} ({why}); got {x!r}")
        return x

    return check


class _StepFunction:
    """``step_function``: on the class,
    :func:`graves.core.centered_rmsprop_step`; on an optimizer, the function its
    next step runs.

    Graves' own variant runs :func:`graves.core.graves_step`, which
    :mod:`graves.fused` may replace by its compiled kernel.  Any other variant
    runs ``centered_rmsprop_step`` with the variant and the 1-based number of
    the coming step bound (``functools.partial``): no compiled kernel matches
    that, so it always runs on numpy.  (The step count cannot travel with the
    hyperparameters: ``BlockRunner.run`` takes its own first argument as
    ``step``.)
    """

    def __get__(self, obj, objtype=None):
        if obj is None:
            return core.centered_rmsprop_step
        if obj._variant == core.GRAVES:
            return core.graves_step
        if obj._variant == core.GRAVES_RECURSIVE:
            return core.graves_recursive_step
        return functools.partial(
            core.centered_rmsprop_step,
            variant=obj._variant,
            step=obj.step_count + 1,
        )


class _LibraryName:
    """The library's own name for a graves hyperparameter (``learning_rate`` for
    ``lr``): reads and assigns the graves attribute, with its check."""

    def __init__(self, target: str):
        self.target = target

    def __get__(self, obj, objtype=None):
        return self if obj is None else getattr(obj, self.target)

    def __set__(self, obj, value):
        setattr(obj, self.target, value)


class LibraryRMSprop(Optimizer):
    """Base of the library optimizers; build them with :func:`make`.

    A subclass declares its library's keywords (``signature``), which of them
    are the graves hyperparameters (``renames``), which fix the variant
    (``config_checks``), and where the library puts the constants
    (``placement``, fields of :class:`graves.core.CenteredVariant`) and starts
    ``n`` (``start_n``); Optax, whose keywords choose both, overrides
    :meth:`configure`.
    """

    State = core.CenteredState
    hyperparameter_names = ("lr", "alpha", "momentum", "eps")
    step_function = _StepFunction()

    lr = Hyperparameter(checks.non_negative, "learning rate")
    alpha = Hyperparameter(checks.unit_interval, "decay of both averages")
    momentum = Hyperparameter(checks.unit_interval, "momentum coefficient")
    eps = Hyperparameter(checks.non_negative, "the library's epsilon")

    _library: ClassVar[str]
    signature: ClassVar[dict[str, Any]]  # library keyword -> default
    # library keyword -> graves hyperparameter
    renames: ClassVar[dict[str, str]]
    config_checks: ClassVar[dict[str, Any]] = {}  # library keyword -> check
    # CenteredVariant fields that differ from Graves'
    placement: ClassVar[dict[str, bool]] = {}
    start_n: ClassVar[float] = 0.0  # the value n starts from
    # TensorFlow: 1 − ρ computed in the parameter's dtype
    alpha_in_dtype: ClassVar[bool] = False
    # held in float32 by the library
    float32_hyperparameters: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for keyword, target in cls.__dict__.get("renames", {}).items():
            if keyword != target:
                setattr(cls, keyword, _LibraryName(target))

    def __init__(self, **kwargs):
        options = {k: kwargs.pop(k) for k in RUN_OPTIONS if k in kwargs}
        spread = checks.one_of(*core.SPREAD_STATES)(
            "spread", kwargs.pop("spread", "difference")
        )
        hyper, config = self._translate(kwargs)
        for name, value in hyper.items():
            setattr(self, name, value)
        self._spread = spread
        self._set_config(config)
        super().__init__(**options)

    # -- keywords --------------------------------------------------------------

    @classmethod
    def accepted(cls) -> str:
        return (
            ", ".join(cls.signature)
            + " (and the graves options spread, "
            + ", ".join(RUN_OPTIONS)
            + ")"
        )

    @classmethod
    def _translate(cls, kwargs: dict) -> tuple[dict, dict]:
        """``(graves hyperparameters, config)`` from the library's keywords, all
        checked."""
        unknown = [k for k in kwargs if k not in cls.signature]
        if unknown:
            raise TypeError(
                f"make({cls._library!r}) got unexpected keyword argument(s) "
                f"{unknown}{cls._hint(unknown)}; "
                f"{cls._library} accepts {cls.accepted()}"
            )
        bound = {**cls.signature, **kwargs}
        missing = [k for k, v in bound.items() if v is _REQUIRED]
        if missing:
            raise TypeError(
                f"make({cls._library!r}) needs {missing[0]}=...; "
                f"{cls._library} accepts {cls.accepted()}"
            )
        bound = cls._prepare(bound)
        hyper = {
            g: getattr(cls, g).check(k, bound[k])
            for k, g in cls.renames.items()
        }
        config = {
            k: check(k, bound[k]) for k, check in cls.config_checks.items()
        }
        return hyper, config

    @classmethod
    def _hint(cls, unknown: list[str]) -> str:
        return ""

    @classmethod
    def _prepare(cls, bound: dict) -> dict:
        """Library-specific handling of keywords before the checks."""
        return bound

    @classmethod
    def configure(cls, config: dict) -> tuple[core.CenteredVariant, float]:
        """The variant and the initial ``n`` of a checked config (libraries
        without a ``centered`` keyword are centered)."""
        return core.CenteredVariant(
            **cls.placement, centered=config.get("centered", True)
        ), cls.start_n

    def step_arguments(self, dtype=None) -> dict[str, Any]:
        arguments = self.hyperparameters()
        for name in self.float32_hyperparameters:
            arguments[name] = float(np.float32(arguments[name]))
        if self.alpha_in_dtype and dtype is not None:
            # TensorFlow casts ρ to the variable's dtype and computes 1 − ρ
            # there; the core computes 1 − alpha in float64, exact for an alpha
            # already rounded to that dtype
            arguments["alpha"] = float(np.dtype(dtype).type(arguments["alpha"]))
        return arguments

    def _attribute_hint(self, name: str) -> str:
        if name in self.config_checks:
            return (
                f"; {name!r} is fixed when the optimizer is built: "
                "make a new one with frameworks.make"
            )
        aliases = [k for k, g in self.renames.items() if k != g]
        return f" (also settable as {aliases})" if aliases else ""

    def library_kwargs(self) -> dict[str, Any]:
        """The current configuration in the library's own keywords."""
        d = {k: getattr(self, g) for k, g in self.renames.items()}
        d.update(self._config)
        return d

    @classmethod
    def from_hyperparameters(
        cls, hyperparameters: dict[str, Any]
    ) -> "LibraryRMSprop":
        # graves.load: graves names in, default config (load_state_dict restores
        # the saved one)
        return cls(**{k: hyperparameters[g] for k, g in cls.renames.items()})

    # -- read-only configuration -----------------------------------------------

    def _set_config(self, config: dict) -> None:
        variant, initial_n = self.configure(config)
        variant = variant._replace(spread=self._spread)
        core.check_variant(variant)
        self._config = dict(config)
        self._variant, self._initial_n = variant, initial_n

    def _set_spread(self, spread: str) -> None:
        self._spread = spread
        self._variant = self._variant._replace(spread=spread)

    @property
    def spread(self) -> str:
        """``"difference"`` (the state holds n) or ``"recursive"`` (it holds s =
        n − g²)."""
        return self._spread

    @property
    def library(self) -> str:
        """The library's name, one of :data:`LIBRARIES`."""
        return self._library

    @property
    def variant(self) -> core.CenteredVariant:
        """Where the library places eps and lr, and its options."""
        return self._variant

    @property
    def initial_n(self) -> float:
        """The value the mean square ``n`` starts from."""
        return self._initial_n

    def initial_state(
        self, shape: tuple, dtype: np.dtype
    ) -> core.CenteredState | core.SpreadState:
        # with g = 0 at the start, the spread s = n - g² starts where n does
        State = core.SPREAD_STATES[self._spread]
        return State(
            np.full(shape, self._initial_n, dtype),
            np.zeros(shape, dtype),
            np.zeros(shape, dtype),
        )

    def __repr__(self) -> str:
        spread = (
            {} if self._spread == "difference" else {"spread": self._spread}
        )
        args = ", ".join(
            f"{k}={v!r}" for k, v in {**self.library_kwargs(), **spread}.items()
        )
        return f"frameworks.make({self._library!r}, {args})"

    # -- checkpoints: the base class's, plus the config ------------------------

    def state_dict(self) -> dict[str, Any]:
        d = super().state_dict()
        for k, v in self._config.items():
            d[f"config/{k}"] = v
        return d

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"a state dict must be a dict, got {type(state_dict).__name__}"
            )
        rest = {
            k: v
            for k, v in state_dict.items()
            if not str(k).startswith("config/")
        }
        owner = rest.get("optimizer")
        owner = (
            owner.item()
            if isinstance(owner, np.ndarray) and owner.ndim == 0
            else owner
        )
        if owner != self.name:
            # raises, naming the optimizer the state belongs to
            super().load_state_dict(rest)
        config = {
            k: check(
                f"config/{k}",
                checkpoint.scalar_entry(state_dict, f"config/{k}"),
            )
            for k, check in self.config_checks.items()
        }
        extra = sorted(
            set(state_dict)
            - set(rest)
            - {f"config/{k}" for k in self.config_checks}
        )
        if extra:
            raise ValueError(
                f"state dict has unexpected entries {extra[:5]}; is it from "
                "another configuration?"
            )
        spread = checkpoint.saved_spread(self, state_dict)
        core.check_variant(self.configure(config)[0]._replace(spread=spread))
        super().load_state_dict(rest)  # checks everything else, then commits
        self._set_config(config)


class ChainerRMSpropGraves(LibraryRMSprop):
    """Chainer's ``chainer.optimizers.RMSpropGraves``
    (chainer/optimizers/rmsprop_graves.py, ``update_core_cpu``): Graves'
    algorithm under Graves' names::

        n ← α n + (1−α) ∇²
        g ← α g + (1−α) ∇
        Δ ← momentum Δ − lr ∇ / √(n − g² + eps)
        w ← w + Δ

    Defaults lr=1e-4, alpha=0.95, momentum=0.9, eps=1e-4.
    """

    name = "frameworks.chainer"
    _library = "chainer"
    signature = {"lr": 1e-4, "alpha": 0.95, "momentum": 0.9, "eps": 1e-4}
    renames = {
        "lr": "lr",
        "alpha": "alpha",
        "momentum": "momentum",
        "eps": "eps",
    }


class TorchRMSprop(LibraryRMSprop):
    """PyTorch's ``torch.optim.RMSprop`` (torch/optim/rmsprop.py,
    ``_single_tensor_rmsprop``)::

        n ← α n + (1−α) ∇²         square_avg.mul_(alpha)
                                       .addcmul_(grad, grad, 1-alpha)
        g ← lerp(g, ∇, 1−α)        centered only
        d = √(n − g²) + eps        centered; else √n + eps
        b ← momentum b + ∇ / d     buf.mul_(momentum).addcdiv_(grad, avg)
        w ← w − lr b               param.add_(buf, alpha=-lr)

    eps sits outside the root and lr outside the buffer: under a schedule a
    new lr rescales everything the buffer holds.  Defaults lr=1e-2,
    alpha=0.99, eps=1e-8, momentum=0, centered=False.  ``weight_decay`` is
    accepted only as 0 (add ``weight_decay * w`` to the gradient yourself:
    that is all PyTorch does).
    """

    name = "frameworks.torch"
    _library = "torch"
    signature = {
        "lr": 1e-2,
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0,
        "momentum": 0.0,
        "centered": False,
    }
    renames = {
        "lr": "lr",
        "alpha": "alpha",
        "eps": "eps",
        "momentum": "momentum",
    }
    config_checks = {"centered": _flag}
    placement = {"eps_in_sqrt": False, "lr_in_buffer": False}

    @classmethod
    def _prepare(cls, bound):
        wd = checks.real_number("weight_decay", bound["weight_decay"])
        if wd != 0:
            raise ValueError(
                f"weight_decay={wd!r} is not supported (only 0): PyTorch adds "
                "weight_decay * w to the "
                "gradient before the step; do that to the gradient you pass "
                "to update()"
            )
        return bound


class KerasRMSprop(LibraryRMSprop):
    """Keras 3's ``keras.optimizers.RMSprop`` (keras/src/optimizers/rmsprop.py,
    ``update_step``)::

        n ← ρ n + (1−ρ) ∇²
        g ← ρ g + (1−ρ) ∇                      centered only
        inc = lr ∇ / √(n − g² + ε)             centered; else lr ∇ / √(n + ε)
        b ← momentum b + inc;  w ← w − b       (momentum = 0: w ← w − inc)

    Graves' algorithm with b = −Δ.  Defaults learning_rate=1e-3, rho=0.9,
    momentum=0, epsilon=1e-7, centered=False.
    """

    name = "frameworks.keras"
    _library = "keras"
    signature = {
        "learning_rate": 1e-3,
        "rho": 0.9,
        "momentum": 0.0,
        "epsilon": 1e-7,
        "centered": False,
    }
    renames = {
        "learning_rate": "lr",
        "rho": "alpha",
        "momentum": "momentum",
        "epsilon": "eps",
    }
    config_checks = {"centered": _flag}


class TF1RMSProp(LibraryRMSprop):
    """TensorFlow 1's ``tf.compat.v1.train.RMSPropOptimizer``:
    tensorflow/python/training/rmsprop.py creates the slot ``rms`` with
    ``ones_initializer``, and ``ApplyCenteredRMSProp`` in
    tensorflow/core/kernels/training_ops.cc computes::

        n ← n + (∇² − n)(1−ρ)                  n starts at 1
        g ← g + (∇ − g)(1−ρ)                   centered only (ApplyRMSProp
                                               otherwise)
        b ← momentum b + lr ∇ / √(n − g² + ε)  uncentered: √(n + ε)
        w ← w − b

    Graves' algorithm with b = −Δ, except for the initial n = 1, which makes
    the first steps smaller by a factor that fades as ρᵗ.  learning_rate is
    required; defaults decay=0.9, momentum=0, epsilon=1e-10, centered=False.
    """

    name = "frameworks.tf1"
    _library = "tf1"
    signature = {
        "learning_rate": _REQUIRED,
        "decay": 0.9,
        "momentum": 0.0,
        "epsilon": 1e-10,
        "centered": False,
    }
    renames = {
        "learning_rate": "lr",
        "decay": "alpha",
        "momentum": "momentum",
        "epsilon": "eps",
    }
    config_checks = {"centered": _flag}
    start_n = 1.0  # rmsprop.py creates the slot with ones_initializer
    alpha_in_dtype = True  # training_ops.cc: (static_cast<T>(1) - rho())


class OptaxRMSprop(LibraryRMSprop):
    """Optax's ``optax.rmsprop`` (optax/_src/alias.py), a chain of
    ``scale_by_stddev`` (``scale_by_rms`` when not centered;
    optax/_src/transform.py), ``scale_by_learning_rate`` and ``trace``
    (optax/transforms/_accumulation.py)::

        n ← decay n + (1−decay) ∇²             n starts at initial_scale
        g ← decay g + (1−decay) ∇              centered only
        n̂, ĝ = n, g, or n/(1−decayᵗ), g/(1−decayᵗ) with bias_correction
        u = −lr ∇ / √(n̂ − ĝ² + eps)            eps_in_sqrt=False:
                                               −lr ∇ / (√(n̂ − ĝ²) + eps)
        b ← u + momentum b                     trace (skipped when momentum
                                               is None)
        w ← w + b                              nesterov: w ← w + u + momentum b

    learning_rate is required; defaults decay=0.9, eps=1e-8, initial_scale=0,
    eps_in_sqrt=True, centered=False, momentum=None (no trace: the attribute
    ``momentum`` is then 0.0), nesterov=False (ignored without momentum, as in
    Optax), bias_correction=False.  A schedule is not a keyword here: set
    ``opt.lr`` before each step.
    """

    name = "frameworks.optax"
    _library = "optax"
    signature = {
        "learning_rate": _REQUIRED,
        "decay": 0.9,
        "eps": 1e-8,
        "initial_scale": 0.0,
        "eps_in_sqrt": True,
        "centered": False,
        "momentum": None,
        "nesterov": False,
        "bias_correction": False,
    }
    renames = {
        "learning_rate": "lr",
        "decay": "alpha",
        "eps": "eps",
        "momentum": "momentum",
    }
    config_checks = {
        "initial_scale": checks.non_negative,
        "eps_in_sqrt": _flag,
        "centered": _flag,
        "nesterov": _flag,
        "bias_correction": _flag,
    }

    @classmethod
    def _prepare(cls, bound):
        bound = dict(bound)
        # no trace; nesterov has nothing to act on
        if bound["momentum"] is None:
            _flag("nesterov", bound["nesterov"])
            bound["momentum"], bound["nesterov"] = 0.0, False
        return bound

    @classmethod
    def configure(cls, config):
        variant = core.CenteredVariant(
            eps_in_sqrt=config["eps_in_sqrt"],
            nesterov=config["nesterov"],
            bias_correction=config["bias_correction"],
            centered=config["centered"],
        )
        return variant, config["initial_scale"]


class DQNRMSprop(LibraryRMSprop):
    """The RMSprop of DQN (Mnih et al., Nature 2015; deepmind/dqn,
    dqn/NeuralQLearner.lua, ``qLearnMinibatch``)::

        g  ← 0.95 g + 0.05 dw               self.g:mul(0.95):add(0.05, self.dw)
        g2 ← 0.95 g2 + 0.05 dw²
        w  ← w + lr dw / √(g2 − g² + 0.01)  deltas:mul(0):addcdiv(lr, dw, tmp)

    ``dw`` is the *negative* gradient (the network back-propagates the TD
    error), so with ∇ = −dw this is Graves' step with alpha=0.95, eps=0.01 and
    no momentum (g changes sign, g² does not).  The Lua code writes 0.95 and
    0.01 as literals, so the only keyword is ``lr`` (default 2.5e-4, the
    paper's); the attributes ``alpha``, ``momentum`` and ``eps`` exist for a
    uniform interface but accept only 0.95, 0 and 0.01.  For other values
    use ``make("chainer", ...)``.
    """

    name = "frameworks.dqn"
    _library = "dqn"
    signature = {"lr": 2.5e-4}
    renames = {"lr": "lr"}
    _WHY = (
        "a literal in DQN's NeuralQLearner.lua; "
        "use make('chainer', ...) for other values"
    )
    alpha = Hyperparameter(_fixed(0.95, _WHY), "decay 0.95 of both averages")
    momentum = Hyperparameter(
        _fixed(0.0, "DQN's update has no momentum"), "no momentum"
    )
    eps = Hyperparameter(_fixed(0.01, _WHY), "0.01, inside the root")

    def __init__(self, **kwargs):
        self.alpha, self.momentum, self.eps = 0.95, 0.0, 0.01
        super().__init__(**kwargs)

    @classmethod
    def _hint(cls, unknown):
        fixed = [
            k
            for k in unknown
            if k in ("alpha", "momentum", "eps", "rho", "decay", "epsilon")
        ]
        if not fixed:
            return ""
        return (
            " (the DQN code fixes alpha=0.95 and eps=0.01 and has no momentum; "
            "make('chainer', lr=..., alpha=..., momentum=0.0, eps=...) takes "
            "other values)"
        )


class _BuiltMomentum(Hyperparameter):
    """tf.keras 2's momentum: the update is chosen when the optimizer is built,
    so a positive momentum cannot be set on one built with momentum 0."""

    def __set__(self, obj, value):
        value = self.check(self.name, value)
        if value > 0 and obj.__dict__.get("_uses_momentum") is False:
            raise ValueError(
                f"momentum={value!r}: this tf.keras 2 RMSprop was built with "
                "momentum=0, which fixes its "
                "update (eps outside the root, no momentum buffer); build a "
                "new one with momentum > 0"
            )
        obj.__dict__[self.name] = value


class Keras2RMSprop(LibraryRMSprop):
    """tf.keras 2's ``tf.keras.optimizers.RMSprop``
    (``tf.keras.optimizers.legacy.RMSprop`` from TensorFlow 2.11;
    keras/optimizers/optimizer_v2/rmsprop.py, ``_resource_apply_dense``). The
    constructor fixes the update by whether ``momentum > 0``::

        momentum > 0: TensorFlow's kernels, as tf1 but with n starting at 0:
            n ← n + (∇² − n)(1−ρ);  g ← g + (∇ − g)(1−ρ)     centered only
            b ← momentum b + lr ∇ / √(n − g² + ε);  w ← w − b
                                                 uncentered: √(n + ε)
        momentum = 0: eps outside the root:
            n ← ρ n + (1−ρ) ∇²;  g ← ρ g + (1−ρ) ∇           centered only
            w ← w − lr ∇ / (√(n − g²) + ε)                    uncentered: √n + ε

    ``learning_rate``, ``rho`` and ``momentum`` are float32 variables there, so
    they are rounded to float32 before the step, also for float64 parameters;
    ``1 − ρ`` is computed in the parameter's dtype; ``epsilon`` is converted to
    it directly, and ``epsilon=0`` becomes 1e-7
    (``epsilon or backend_config.epsilon()``). Defaults learning_rate=1e-3,
    rho=0.9, momentum=0, epsilon=1e-7, centered=False. A positive ``momentum``
    cannot be assigned to an optimizer built with 0.
    """

    name = "frameworks.keras2"
    _library = "keras2"
    # Keras 3 kept Keras 2's constructor: the same names and defaults
    signature = KerasRMSprop.signature
    renames = KerasRMSprop.renames
    config_checks = KerasRMSprop.config_checks
    alpha_in_dtype = True
    float32_hyperparameters = ("lr", "alpha", "momentum")
    momentum = _BuiltMomentum(
        checks.unit_interval, "momentum coefficient (positive only if built so)"
    )

    @classmethod
    def _prepare(cls, bound):
        bound = dict(bound)
        if checks.real_number("epsilon", bound["epsilon"]) == 0:
            bound["epsilon"] = 1e-7  # epsilon or backend_config.epsilon()
        return bound

    def configure(self, config):
        uses = self.__dict__.get("_uses_momentum")
        if uses is None:
            uses = self.momentum > 0
        if uses:
            return core.CenteredVariant(centered=config["centered"]), 0.0
        return core.CenteredVariant(
            eps_in_sqrt=False, lr_in_buffer=False, centered=config["centered"]
        ), 0.0

    def _set_config(self, config: dict) -> None:
        if self.__dict__.get("_uses_momentum") is None:
            self._uses_momentum = self.momentum > 0
        super()._set_config(config)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        uses = self.__dict__.get("_uses_momentum")
        # the loaded momentum chooses the update again
        self._uses_momentum = None
        try:
            super().load_state_dict(state_dict)
        except BaseException:
            self._uses_momentum = uses
            raise


_CLASSES: dict[str, type[LibraryRMSprop]] = {
    cls._library: cls
    for cls in (
        ChainerRMSpropGraves,
        TorchRMSprop,
        KerasRMSprop,
        TF1RMSProp,
        OptaxRMSprop,
        DQNRMSprop,
        Keras2RMSprop,
    )
}
assert tuple(_CLASSES) == PRESETS


def _library_class(name: Any) -> type[LibraryRMSprop]:
    if not isinstance(name, str):
        raise TypeError(
            f"the library name must be a string, one of {list(PRESETS)}; got "
            f"{checks.shown(name)}"
        )
    if name not in _CLASSES:
        raise ValueError(
            f"unknown library {checks.shown(name)}; expected one of "
            f"{list(PRESETS)}"
        )
    return _CLASSES[name]


def make(name: str, **kwargs) -> LibraryRMSprop:
    """The RMSprop of library ``name`` (one of :data:`PRESETS`), configured with
    that library's own keyword names and defaults, e.g.
    ``make("torch", lr=0.01, momentum=0.9, centered=True)``.  The graves
    options ``spread`` (``"recursive"`` for a centered configuration without
    bias correction: see :class:`graves.core.CenteredVariant`), ``nonfinite``,
    ``block_size``, ``threads``, ``compiled`` and ``missing_grads`` are accepted
    too.

    An unknown name raises ValueError; an unknown keyword TypeError; an
    unsupported value (``weight_decay=0.1``, ``alpha=1.5``) ValueError or
    TypeError.  Each message lists what is accepted.
    """
    return _library_class(name)(**kwargs)


class Conversion(NamedTuple):
    """A library configuration for a Graves/Chainer one:
    ``make(name, **kwargs)``.

    ``exact``: the two give the same trajectory for every gradient sequence
    and lr schedule (with this package, bit for bit).  ``note`` says what
    differs when they do not.
    """

    kwargs: dict
    exact: bool
    note: str


#: eps = TORCH_EPS_FACTOR · √ε keeps PyTorch's √v + eps within the smallest
#: possible factor, √φ ≈ 1.272 (φ the golden ratio), of Graves' √(v + ε) over
#: all v ≥ 0.
TORCH_EPS_FACTOR = 1 / math.sqrt(_GOLDEN)


def from_graves(
    name: str,
    lr: float = 1e-4,
    alpha: float = 0.95,
    momentum: float = 0.9,
    eps: float = 1e-4,
) -> Conversion:
    """The configuration of library ``name`` nearest to
    ``graves.RMSpropGraves(lr, alpha, momentum, eps)``.

    Exact for chainer, keras and optax (centered, eps in the root, no bias
    correction).  Not exact for tf1 (n starts at 1), for torch unless
    ``eps == 0`` and ``momentum == 0`` (eps outside the root; lr outside the
    buffer), and for dqn unless ``alpha == 0.95``, ``eps == 0.01`` and
    ``momentum == 0`` (its constants are literals).

    PyTorch: no eps reproduces √(v + ε).  "Nearest" here means the smallest
    worst-case ratio of the two denominators over all v = n − g² ≥ 0: with
    eps = c√ε the ratio (√v + eps)/√(v + ε) ranges over [min(c, 1), √(1 + c²)],
    and c = 1/√(1 + c²) gives c² = 1/φ (φ the golden ratio), so eps = √(ε/φ)
    keeps PyTorch's denominator within a factor √φ ≈ 1.272 of Graves', above
    or below.  On a given problem another eps can track Graves more closely
    (chapter 7 measures one where copying ε does), but copying ε makes the
    steps up to √ε/ε times larger where the gradient is nearly constant.
    """
    _library_class(name)  # checks the name
    # the Graves configuration is checked as RMSpropGraves checks it
    g = RMSpropGraves
    lr, alpha = g.lr.check("lr", lr), g.alpha.check("alpha", alpha)
    momentum, eps = (
        g.momentum.check("momentum", momentum),
        g.eps.check("eps", eps),
    )
    same = "the same algorithm as graves.RMSpropGraves"
    if name == "chainer":
        return Conversion(
            dict(lr=lr, alpha=alpha, momentum=momentum, eps=eps),
            True,
            f"Chainer's RMSpropGraves is {same}.",
        )
    if name == "keras":
        kwargs = dict(
            learning_rate=lr,
            rho=alpha,
            momentum=momentum,
            epsilon=eps,
            centered=True,
        )
        return Conversion(
            kwargs,
            True,
            f"Keras 3 with centered=True is {same} "
            "(its momentum buffer is −Δ).",
        )
    if name == "optax":
        kwargs = dict(
            learning_rate=lr,
            decay=alpha,
            eps=eps,
            initial_scale=0.0,
            eps_in_sqrt=True,
            centered=True,
            momentum=momentum if momentum > 0 else None,
            nesterov=False,
            bias_correction=False,
        )
        return Conversion(
            kwargs,
            True,
            "Optax with centered=True, eps_in_sqrt=True, initial_scale=0 is "
            f"{same}.",
        )
    if name == "tf1":
        kwargs = dict(
            learning_rate=lr,
            decay=alpha,
            momentum=momentum,
            epsilon=eps,
            centered=True,
        )
        fade = math.ceil(math.log(1e-6) / math.log(alpha)) if alpha > 0 else 1
        note = (
            "TF1 starts the mean square n at 1, not 0, and no setting changes "
            "that: the early steps "
            "are smaller; the initial value's weight alpha**t falls below "
            f"1e-6 after {fade} steps."
        )
        return Conversion(kwargs, False, note)
    if name == "torch":
        torch_eps = TORCH_EPS_FACTOR * math.sqrt(eps)
        kwargs = dict(
            lr=lr, alpha=alpha, eps=torch_eps, momentum=momentum, centered=True
        )
        notes = []
        if eps > 0:
            notes.append(
                "PyTorch adds eps outside the root, √(n−g²) + eps, and no eps "
                f"reproduces √(n−g²+{eps!r}); "
                f"eps = √(ε/φ) = {torch_eps:.6g} keeps its denominator within "
                "a factor √φ ≈ 1.272 of Graves' "
                "for every n−g² ≥ 0 (the smallest worst case)."
            )
        if momentum > 0:
            notes.append(
                "PyTorch keeps lr outside its momentum buffer: the "
                "trajectories agree (in exact arithmetic) "
                "only while lr is constant; a schedule rescales PyTorch's "
                "whole buffer."
            )
        exact = not notes
        return Conversion(
            kwargs,
            exact,
            " ".join(notes)
            or "With eps=0 and momentum=0 PyTorch's centered RMSprop "
            f"is {same}.",
        )
    if name == "keras2":
        kwargs = dict(
            learning_rate=lr,
            rho=alpha,
            momentum=momentum,
            epsilon=eps,
            centered=True,
        )
        notes = []
        if momentum == 0:
            notes.append(
                "tf.keras 2 built with momentum=0 adds epsilon outside the "
                "root, √(n−g²) + ε."
            )
        rounded = [
            f"{k}={v!r}"
            for k, v in (("lr", lr), ("alpha", alpha), ("momentum", momentum))
            if float(np.float32(v)) != v
        ]
        if rounded:
            notes.append(
                "tf.keras 2 holds learning_rate, rho and momentum in float32, "
                "which changes " + ", ".join(rounded) + "."
            )
        if eps == 0:
            notes.append("tf.keras 2 replaces epsilon=0 by 1e-7.")
        exact = not notes
        return Conversion(
            kwargs,
            exact,
            " ".join(notes)
            or f"tf.keras 2 with momentum > 0 and centered=True is {same}.",
        )
    # dqn
    differ = [
        f"{k}={v!r} (DQN: {d!r})"
        for k, v, d in (
            ("alpha", alpha, 0.95),
            ("momentum", momentum, 0.0),
            ("eps", eps, 0.01),
        )
        if v != d
    ]
    if differ:
        note = (
            "DQN's Lua code fixes alpha=0.95, eps=0.01 and has no momentum; "
            "this configuration has " + ", ".join(differ) + "."
        )
        return Conversion(dict(lr=lr), False, note)
    return Conversion(
        dict(lr=lr),
        True,
        f"With alpha=0.95, momentum=0, eps=0.01, DQN's update is {same}.",
    )
