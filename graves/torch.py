"""Graves' update, and every variant of :mod:`graves.frameworks`, as
``torch.optim`` optimizers.

``RMSpropGraves(params, lr=1e-4, alpha=0.95, momentum=0.9, eps=1e-4)`` is
Chainer's ``RMSpropGraves`` (Graves 2013, eqs. 38-41): ``eps`` inside the
square root, ``lr`` inside the momentum buffer Δ, all state starting at zero.
``make(name, params, **kwargs)`` builds the centered RMSprop of any library in
:data:`graves.frameworks.LIBRARIES` with that library's keyword names and
defaults, e.g.
``make("tf1", model.parameters(), learning_rate=1e-3, centered=True)``.

One home for the formula: :func:`centered_rmsprop_` transcribes
:func:`graves.core.centered_rmsprop_step` operation for operation, for a
:class:`graves.core.CenteredVariant`, over lists of tensors.  It is written
against a small set of list operations, run either by ``torch._foreach_*``
(``foreach=True``) or one tensor at a time (``foreach=False``).  Both run the
same correctly rounded operations (products, sums, quotients, square roots;
no fused multiply-add) in the same order, so the two paths give the same bits,
and on CPU the same bits as the numpy package.  The keywords and their checks
come from :mod:`graves.frameworks`, so each library is configured exactly as
``graves.frameworks.make`` configures it.

PyTorch's conventions hold: parameter groups with their own hyperparameters,
``state_dict``/``load_state_dict``, parameters without ``.grad`` skipped,
``torch.optim.lr_scheduler`` (it sets ``group["lr"]``), ``step(closure)``, and
``weight_decay`` and ``maximize`` as in ``torch.optim.RMSprop``.

Importing this module needs PyTorch (``pip install graves[torch]``); the rest
of ``graves`` does not.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, Callable, ClassVar

try:
    import torch
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "graves.torch needs PyTorch, which is not installed. Install it with "
        "`pip install graves[torch]` (or `pip install -r "
        "requirements-torch.txt` in this repository); "
        "the rest of graves runs on numpy alone."
    ) from error

from . import checks, core, frameworks
from .core import CenteredVariant

__all__ = [
    "CenteredRMSprop",
    "RMSpropGraves",
    "centered_rmsprop_",
    "make",
    "optimizer_class",
    "OPTIONS",
]

#: The options every optimizer here accepts beside its library's keywords, with
#: their defaults: graves' ``spread`` (as in graves.frameworks), and
#: ``weight_decay``, ``maximize`` and ``foreach`` as in ``torch.optim.RMSprop``.
OPTIONS = {
    "spread": "difference",
    "weight_decay": 0.0,
    "maximize": False,
    "foreach": None,
}

HYPERPARAMETERS = ("lr", "alpha", "momentum", "eps")

# The fields of CenteredVariant that centered_rmsprop_ implements.
_IMPLEMENTED = (
    "eps_in_sqrt",
    "lr_in_buffer",
    "nesterov",
    "bias_correction",
    "centered",
    "spread",
)


# -- the elementwise operations, on lists of tensors ---------------------------


class _Foreach:
    """Each operation on a whole list at once, by ``torch._foreach_*``."""

    mul = staticmethod(torch._foreach_mul)  # list × list, or list × scalar
    mul_ = staticmethod(torch._foreach_mul_)
    add = staticmethod(torch._foreach_add)
    add_ = staticmethod(torch._foreach_add_)  # list + list, or list + scalar
    sub = staticmethod(torch._foreach_sub)
    sub_ = staticmethod(torch._foreach_sub_)
    div = staticmethod(torch._foreach_div)
    sqrt = staticmethod(torch._foreach_sqrt)
    sqrt_ = staticmethod(torch._foreach_sqrt_)
    neg = staticmethod(torch._foreach_neg)


def _each(op: Callable) -> Callable:
    """``op`` applied tensor by tensor; the second argument is a list or one
    scalar."""

    def run(xs, ys=None):
        if ys is None:
            return [op(x) for x in xs]
        if isinstance(ys, (list, tuple)):
            return [op(x, y) for x, y in zip(xs, ys)]
        return [op(x, ys) for x in xs]

    return run


class _PerTensor:
    """The same operations, one tensor at a time (the for-loop path)."""

    mul = staticmethod(_each(torch.mul))
    mul_ = staticmethod(_each(torch.Tensor.mul_))
    add = staticmethod(_each(torch.add))
    add_ = staticmethod(_each(torch.Tensor.add_))
    sub = staticmethod(_each(torch.sub))
    sub_ = staticmethod(_each(torch.Tensor.sub_))
    div = staticmethod(_each(torch.div))
    sqrt = staticmethod(_each(torch.sqrt))
    sqrt_ = staticmethod(_each(torch.Tensor.sqrt_))
    neg = staticmethod(_each(torch.neg))


# -- the formula: one home -----------------------------------------------------


def _ema_(ops, average, x, decay) -> None:
    """average ← decay · average + (1 − decay) · x, as graves.core.ema_update
    orders it."""
    scaled = ops.mul(x, 1.0 - decay)
    ops.mul_(average, decay)
    ops.add_(average, scaled)


def centered_rmsprop_(
    ops,
    params: list,
    grads: list,
    n_or_s: list,
    g: list,
    delta: list,
    *,
    lr: float,
    alpha: float,
    momentum: float,
    eps: float,
    variant: CenteredVariant,
    step: int = 1,
) -> None:
    """Centered RMSprop on lists of tensors, in place:
    :func:`graves.core.centered_rmsprop_step`, operation for operation.

    With Graves' variant (Chainer's ``RMSpropGraves``)::

        n ← α n + (1−α) ∇²                      (eq. 38)
        g ← α g + (1−α) ∇                       (eq. 39)
        Δ ← momentum Δ − lr ∇ / √(n − g² + eps)  (eq. 40)
        w ← w + Δ                               (eq. 41)

    ``n_or_s`` holds n, or the spread s = n − g² itself with
    ``spread="recursive"``. ``ops`` runs each elementwise operation on a whole
    list (``_Foreach``) or tensor by tensor (``_PerTensor``); ``step`` is the
    1-based step count that bias correction needs.  The gradients are read,
    never written.
    """
    core.check_variant(variant)
    if variant.spread == "recursive":
        # n − g² = alpha (n′ − g′²) + alpha (1 − alpha)(grad − g′)², g′ the mean
        # before the step
        spread = n_or_s
        t = ops.sub(grads, g)
        t = ops.mul(t, t)
        ops.mul_(t, alpha * (1.0 - alpha))
        ops.mul_(spread, alpha)
        ops.add_(spread, t)
        _ema_(ops, g, grads, alpha)  # eq. 39
    else:
        # eqs. 38 and 39
        n = n_or_s
        _ema_(ops, n, ops.mul(grads, grads), alpha)
        if variant.centered:
            _ema_(ops, g, grads, alpha)

        # the spread n - g² (uncentered: n alone), the denominator's argument
        if not variant.centered:
            spread = (
                ops.div(n, 1.0 - alpha**step) if variant.bias_correction else n
            )
        elif variant.bias_correction:
            correction = 1.0 - alpha**step
            t = ops.div(g, correction)
            spread = ops.sub(ops.div(n, correction), ops.mul(t, t))
        else:
            spread = ops.sub(n, ops.mul(g, g))
    if variant.eps_in_sqrt:
        d = ops.add(spread, eps)
        ops.sqrt_(d)
    else:
        d = ops.sqrt(spread)
        ops.add_(d, eps)
    u = ops.div(grads, d)

    # eq. 40, and eq. 41 with the sign folded into the buffer
    if variant.lr_in_buffer:
        ops.mul_(u, lr)
        ops.mul_(delta, momentum)
        ops.sub_(delta, u)
        if variant.nesterov:  # Optax's trace: w ← w + μΔ − η∇/d
            ops.add_(params, ops.sub(ops.mul(delta, momentum), u))
        else:
            ops.add_(params, delta)
    else:  # PyTorch: Δ ← μΔ + ∇/d, w ← w − ηΔ
        ops.mul_(delta, momentum)
        ops.add_(delta, u)
        ops.sub_(params, ops.mul(delta, lr))


def _effective_grads(
    ops, params, grads, *, weight_decay: float, maximize: bool
) -> list:
    """The gradient the formula sees, as ``torch.optim.RMSprop`` forms it:
    negated when maximizing, then plus ``weight_decay · w`` (a product and a
    sum, no fused multiply-add, so both paths round alike)."""
    if maximize:
        grads = ops.neg(grads)
    if weight_decay != 0:
        grads = ops.add(grads, ops.mul(params, weight_decay))
    return grads


# -- checks of the PyTorch options ---------------------------------------------


def _option(name: str, value: Any):
    if name == "spread":
        return checks.one_of(*core.SPREAD_STATES)(name, value)
    if name == "weight_decay":
        return checks.non_negative(name, value)
    if name == "maximize":
        if not isinstance(value, bool):
            raise TypeError(
                f"maximize must be True or False, got {checks.shown(value)}"
                f" of type {type(value).__name__}"
            )
        return value
    if value is not None and not isinstance(value, bool):  # foreach
        raise TypeError(
            f"foreach must be None, True or False, got {checks.shown(value)}"
            f" of type {type(value).__name__}"
        )
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{name} must be a number or a one-element tensor, got a "
                f"tensor of shape {list(value.shape)}"
            )
        value = value.item()
    if not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number, got {checks.shown(value)} of type "
            f"{type(value).__name__}"
        )
    return value


# -- the optimizers ------------------------------------------------------------


class CenteredRMSprop(torch.optim.Optimizer):
    """Centered RMSprop as library ``library`` publishes it (see
    :mod:`graves.frameworks`), a ``torch.optim.Optimizer``.  Build one with
    :func:`make`, or use :class:`RMSpropGraves`.

    The constructor takes the library's keywords (names and defaults as in
    ``graves.frameworks.make(library, ...)``, and checked by it) and the options
    in :data:`OPTIONS`.  A parameter group may override any of them.  Each group
    stores the hyperparameters under the graves names ``lr``, ``alpha``,
    ``momentum`` and ``eps`` (so schedulers find ``lr``), the library's
    variant-fixing keywords (``centered``, Optax's flags), and the options.
    Every group is checked again before each step; a step that raises changes
    nothing.

    The state of a parameter is ``n`` (mean square; ``s``, the spread n − g²,
    with ``spread="recursive"``), ``g`` (mean gradient), ``delta`` (momentum
    buffer) and ``step`` (a count, as in ``torch.optim``).
    """

    library: ClassVar[str] = "chainer"

    def __init__(self, params, **kwargs):
        options = {
            k: _option(k, kwargs.pop(k, default))
            for k, default in OPTIONS.items()
        }
        unknown = [k for k in kwargs if k not in self._library_keywords()]
        if unknown:
            raise TypeError(
                f"{type(self).__name__} ({self.library!r}) got unexpected "
                f"keyword argument(s) {unknown}; "
                f"it accepts {self._accepted()}"
                + (
                    " (nonfinite, block_size, threads and compiled belong to "
                    "the numpy optimizers)"
                    if set(unknown) & set(frameworks.RUN_OPTIONS)
                    else ""
                )
            )
        self._configurations: dict = {}
        defaults = {**self._translate(kwargs), **options}
        super().__init__(params, defaults)

    # -- the library's keywords, by graves.frameworks --------------------------

    @classmethod
    def _framework(cls) -> type:
        return frameworks._library_class(cls.library)

    @classmethod
    def _library_keywords(cls) -> list[str]:
        return [k for k in cls._framework().signature if k not in OPTIONS]

    @classmethod
    def _accepted(cls) -> str:
        return (
            ", ".join(cls._library_keywords())
            + " and the options "
            + ", ".join(OPTIONS)
        )

    @classmethod
    def _translate(cls, library_kwargs: dict) -> dict:
        """Group entries (graves names and the library's config) from library
        keywords, checked and completed with the library's defaults by
        ``frameworks.make``."""
        reference = frameworks.make(cls.library, **library_kwargs)
        config = {
            k: v
            for k, v in reference.library_kwargs().items()
            if k not in cls._framework().renames
        }
        return {**reference.hyperparameters(), **config}

    def _in_library_keywords(self, entries: dict) -> dict:
        fw = self._framework()
        kwargs = {k: entries[g] for k, g in fw.renames.items()}
        kwargs.update({k: entries[k] for k in fw.config_checks})
        return kwargs

    def add_param_group(self, param_group: dict) -> None:
        """Add a group; its hyperparameters may be given by the library's names
        or the graves names."""
        group = dict(param_group)
        fw = self._framework()
        given = {
            k: group.pop(k)
            for k in list(group)
            if k in self._library_keywords()
        }
        if given:
            both = [
                k
                for k in given
                if fw.renames.get(k, k) != k and fw.renames[k] in group
            ]
            if both:
                raise ValueError(
                    f"a parameter group gives {both[0]!r} and "
                    f"{fw.renames[both[0]]!r}, the same hyperparameter twice"
                )
            current = {
                **self.defaults,
                **{k: v for k, v in group.items() if k != "params"},
            }
            group.update(
                self._translate({**self._in_library_keywords(current), **given})
            )
        for k in OPTIONS:
            if k in group:
                group[k] = _option(k, group[k])
        candidate = {**self.defaults, **group}
        self._configuration(candidate)  # raises before the group is added
        super().add_param_group(group)

    def _configuration(
        self, group: dict
    ) -> tuple[dict, CenteredVariant, float]:
        """The checked hyperparameters of ``group``, its variant and the initial
        ``n``."""
        fw = self._framework()
        hyper = {
            g: getattr(fw, g).check(g, _number(g, group[g]))
            for g in HYPERPARAMETERS
        }
        for k in OPTIONS:
            _option(k, group[k])
        # checked before they key the cache: a list there would raise
        # "unhashable type" without naming its keyword
        config = {
            k: check(k, group[k]) for k, check in fw.config_checks.items()
        }
        key = (*config.items(), ("spread", group["spread"]))
        if key not in self._configurations:
            variant, initial_n = fw.configure(config)
            variant = variant._replace(spread=group["spread"])
            # e.g. spread="recursive" needs centered=True
            core.check_variant(variant)
            unsupported = [
                f
                for f in variant._fields
                if f not in _IMPLEMENTED
                and getattr(variant, f) != CenteredVariant._field_defaults[f]
            ]
            if unsupported:
                raise NotImplementedError(
                    "graves.torch does not implement the CenteredVariant "
                    f"option(s) {unsupported} "
                    f"of this {self.library!r} configuration; "
                    "graves.frameworks (numpy) does"
                )
            self._configurations[key] = (variant, float(initial_n))
        return (hyper, *self._configurations[key])

    # -- the step --------------------------------------------------------------

    def _init_state(
        self, p: torch.Tensor, variant: CenteredVariant, initial_n: float
    ) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            # with g = 0 at the start, the spread s = n - g² starts where n does
            key = "s" if variant.spread == "recursive" else "n"
            state[key] = torch.full_like(
                p, initial_n, memory_format=torch.preserve_format
            )
            state["g"] = torch.zeros_like(
                p, memory_format=torch.preserve_format
            )
            state["delta"] = torch.zeros_like(
                p, memory_format=torch.preserve_format
            )
        return state

    @torch.no_grad()
    def step(self, closure=None):
        """One step on every parameter that has a gradient; returns
        ``closure()``'s loss, if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        plans = []
        # every check before the first write
        for j, group in enumerate(self.param_groups):
            configuration = self._configuration(group)
            params = []
            kept = "s" if configuration[1].spread == "recursive" else "n"
            other = "n" if kept == "s" else "s"
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                params.append(p)
                state = self.state.get(p)  # get: no empty entry
                if state and kept not in state and other in state:
                    raise ValueError(
                        f"a parameter's state holds {other}, but its group now "
                        f"has spread={group['spread']!r}; the spread cannot "
                        "change during training"
                    )
                if p.grad.is_sparse:
                    raise RuntimeError(
                        f"{type(self).__name__} does not support sparse "
                        "gradients"
                    )
                if torch.is_complex(p):
                    raise RuntimeError(
                        f"{type(self).__name__} does not support complex "
                        "parameters"
                    )
                if not torch.is_floating_point(p):
                    # a tensor that is no Parameter may still be given a .grad
                    raise TypeError(
                        f"parameter {i} of group {j} has dtype {p.dtype}; "
                        "expected a floating dtype"
                    )
                _check_fits(p, state, kept, f"parameter {i} of group {j}")
            plans.append((group, configuration, params))

        for group, (hyper, variant, initial_n), params in plans:
            if not params:
                continue
            states = [self._init_state(p, variant, initial_n) for p in params]
            foreach = group["foreach"]
            # as torch.optim: foreach by default where the kernels exist
            if foreach is None:
                foreach = all(p.device.type == "cuda" for p in params)
            options = dict(
                weight_decay=group["weight_decay"], maximize=group["maximize"]
            )
            if foreach:
                _foreach_update(params, states, hyper, variant, options)
            else:
                _loop_update(params, states, hyper, variant, options)
        return loss


def _check_fits(p: torch.Tensor, state: dict | None, kept: str, which: str):
    """A ValueError naming ``which`` unless its gradient and its ``state`` (if
    any) fit ``p``: else the step would fail halfway, as torch broadcasts or
    refuses, with some parameters stepped.  A state can stop fitting when the
    parameter's data is replaced, or through ``load_state_dict``, which checks
    only the number of parameters."""
    if p.grad.shape != p.shape:
        raise ValueError(
            f"the gradient of {which} has shape {list(p.grad.shape)}; "
            f"expected the parameter's shape {list(p.shape)}"
        )
    if not state:
        return
    fields = ("step", kept, "g", "delta")
    for k in fields:
        t = state.get(k)
        if not isinstance(t, torch.Tensor):
            raise ValueError(
                f"the state of {which} has {type(t).__name__} under {k!r}; "
                f"expected tensors under {list(fields)}"
            )
    # the count may stay on the CPU, as torch.optim keeps it
    if state["step"].numel() != 1:
        raise ValueError(
            f"the state of {which} holds a 'step' of "
            f"{state['step'].numel()} elements; expected one"
        )
    for k in fields[1:]:
        t = state[k]
        if t.shape != p.shape or t.device != p.device:
            raise ValueError(
                f"the state of {which} holds {k!r} of shape {list(t.shape)} "
                f"on {t.device}, but the parameter has shape "
                f"{list(p.shape)} on {p.device} (its data was replaced, or "
                "the state dict is of another model)"
            )


def _tensors(params, states):
    grads = [p.grad for p in params]
    n_or_s = [s["s"] if "s" in s else s["n"] for s in states]
    return grads, n_or_s, [s["g"] for s in states], [s["delta"] for s in states]


def _loop_update(params, states, hyper, variant, options) -> None:
    ops = _PerTensor
    for p, state in zip(params, states):
        state["step"] += 1
        grads, n, g, delta = _tensors([p], [state])
        grads = _effective_grads(ops, [p], grads, **options)
        centered_rmsprop_(
            ops,
            [p],
            grads,
            n,
            g,
            delta,
            **hyper,
            variant=variant,
            step=int(state["step"].item()),
        )


def _foreach_update(params, states, hyper, variant, options) -> None:
    ops = _Foreach
    # the foreach kernels need one device and dtype; bias correction one step
    # count
    buckets: dict = {}
    for p, state in zip(params, states):
        state["step"] += 1
        key = (
            p.device,
            p.dtype,
            int(state["step"].item()) if variant.bias_correction else 1,
        )
        buckets.setdefault(key, ([], []))
        buckets[key][0].append(p)
        buckets[key][1].append(state)
    for (_, _, step), (ps, ss) in buckets.items():
        grads, n, g, delta = _tensors(ps, ss)
        grads = _effective_grads(ops, ps, grads, **options)
        centered_rmsprop_(
            ops, ps, grads, n, g, delta, **hyper, variant=variant, step=step
        )


class RMSpropGraves(CenteredRMSprop):
    """Graves' centered RMSprop with momentum (arXiv:1308.0850, eqs. 38-41),
    Chainer's names and defaults, as ``graves.RMSpropGraves``::

        n ← α n + (1−α) ∇²
        g ← α g + (1−α) ∇
        Δ ← momentum Δ − lr ∇ / √(n − g² + eps)
        w ← w + Δ

    ``lr`` sits inside Δ: a scheduler's new ``lr`` scales only new
    contributions. ``spread="recursive"`` keeps s = n − g² by its recursion, as
    ``graves.RMSpropGraves`` does with that option: the same step in exact
    arithmetic, never a negative spread.
    """

    library = "chainer"

    def __init__(
        self,
        params,
        lr: float = 1e-4,
        alpha: float = 0.95,
        momentum: float = 0.9,
        eps: float = 1e-4,
        *,
        spread: str = "difference",
        weight_decay: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
    ):
        super().__init__(
            params,
            lr=lr,
            alpha=alpha,
            momentum=momentum,
            eps=eps,
            spread=spread,
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
        )


@functools.cache
def optimizer_class(name: str) -> type[CenteredRMSprop]:
    """The optimizer class of library ``name`` (one of
    :data:`graves.frameworks.LIBRARIES`), for code that takes a class, such as
    ``ZeroRedundancyOptimizer(optimizer_class=...)``."""
    fw = frameworks._library_class(name)  # checks the name
    if name == RMSpropGraves.library:
        return RMSpropGraves
    doc = (
        f"{fw.__name__} of graves.frameworks as a torch.optim.Optimizer; "
        "see :class:`CenteredRMSprop`."
    )
    return type(
        fw.__name__,
        (CenteredRMSprop,),
        {"library": name, "__doc__": doc, "__module__": __name__},
    )


def make(name: str, params, **kwargs) -> CenteredRMSprop:
    """The centered RMSprop of library ``name`` over ``params``, configured with
    that library's keyword names and defaults (as ``graves.frameworks.make``),
    plus the options in :data:`OPTIONS` (``spread``, ``weight_decay``,
    ``maximize``, ``foreach``); e.g.
    ``make("tf1", model.parameters(), learning_rate=1e-3, centered=True)``."""
    return optimizer_class(name)(params, **kwargs)
