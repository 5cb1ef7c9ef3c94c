"""Thin optimizer classes over the functional core in :mod:`graves.core`.

The base class owns everything that is not a formula: checking inputs,
keeping one state per parameter, replacing scalars in the caller's dict,
skipping non-finite steps, and checkpoints.  Each subclass names its step
function, its state and its hyperparameters, and nothing else.
"""

from __future__ import annotations

import contextlib
import operator
import threading
from typing import Any, ClassVar, NamedTuple

import numpy as np

from . import checkpoint, checks, core, packing, segments
from .blocks import DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, MAX_THREADS, BlockRunner
from .checks import Hyperparameter

_REGISTRY: dict[str, type["Optimizer"]] = {}
_NO_ERRSTATE = contextlib.nullcontext()


class Optimizer:
    """Common machinery.  Subclasses set ``name``, ``State``,
    ``hyperparameter_names`` and ``step_function``.

    ``update(params, grads)`` takes two dicts with the same keys, from a name to
    a float numpy array or a float scalar.  Arrays are updated in place; scalars
    (which cannot be) are replaced in ``params``.  A call that raises changes
    nothing: every check runs, and everything is allocated, before the first
    write; the counters change and new state is kept only once the step is done.
    One limit: an asynchronous exception, such as ``KeyboardInterrupt`` from
    Ctrl-C, that arrives while the step writes can leave some parameters stepped
    and others not.  The optimizer then refuses ``update``, ``state_dict`` and
    ``save`` until ``load_state_dict`` or ``reset``: restore the parameters and
    the optimizer from a checkpoint.

    ``missing_grads`` decides what a key of ``params`` that ``grads`` lacks
    does: ``"raise"`` (default) raises ``KeyError``; ``"skip"`` leaves that
    parameter and its state untouched (a frozen parameter, as PyTorch skips a
    parameter whose gradient is None); its state is created at its first
    gradient.  It is not saved in checkpoints.

    One optimizer serves one thread at a time: ``update`` (and ``reset``,
    ``state_dict``, ``load_state_dict``, a copy or a pickle) called while
    another thread is in one of them raises ``RuntimeError`` instead of
    waiting.  A copy has a state of its own.

    ``nonfinite`` decides what a NaN or infinite gradient does: ``"raise"``
    (default) raises ``FloatingPointError``; ``"skip"`` skips the whole step,
    leaving parameters and state untouched, and counts it in ``skipped_steps``,
    the usual policy of mixed-precision training, where an overflowing loss
    scale produces such steps now and then.

    ``block_size``, ``threads`` and ``compiled`` choose how a step runs, never
    what it computes (chapter 11): blocks of ``block_size`` elements keep the
    numpy path's scratch in cache; ``threads`` ("auto", or 1 to 64) is the most
    threads a step uses: "auto" allows one for small arrays and up to four for
    large ones, and no setting gives a thread fewer than
    :data:`graves.blocks.MIN_ELEMENTS_PER_THREAD` elements, so that none makes a
    small step slow; ``compiled=True`` runs the one-pass kernels of
    :mod:`graves.fused` where one exists and numba is installed.
    Every choice gives the same bits.
    """

    name: ClassVar[str]
    State: ClassVar[type]
    hyperparameter_names: ClassVar[tuple[str, ...]]
    step_function: ClassVar[Any]

    nonfinite = Hyperparameter(
        checks.one_of("raise", "skip"), "policy for NaN/inf gradients"
    )
    missing_grads = Hyperparameter(
        checks.one_of("raise", "skip"),
        "policy for parameters absent from grads",
    )
    # checked on assignment too: update computes step_count + 1 after it wrote
    step_count = Hyperparameter(checks.counter, "steps applied")
    skipped_steps = Hyperparameter(
        checks.counter, "steps skipped for non-finite gradients"
    )

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # their values, read in one call
        if "hyperparameter_names" in cls.__dict__:
            names = cls.hyperparameter_names
            if all(
                isinstance(getattr(cls, n, None), Hyperparameter) for n in names
            ):
                # a Hyperparameter keeps its value in the instance's __dict__
                # under its name
                from_dict = operator.itemgetter(*names)
                cls._values = staticmethod(lambda opt: from_dict(opt.__dict__))
            else:
                cls._values = staticmethod(operator.attrgetter(*names))
        if "name" in cls.__dict__:
            _REGISTRY[cls.name] = cls

    def __init__(
        self,
        *,
        nonfinite: str = "raise",
        block_size: int = DEFAULT_BLOCK_SIZE,
        threads: int | str = "auto",
        compiled: bool = True,
        missing_grads: str = "raise",
    ):
        if not isinstance(compiled, (bool, np.bool_)):
            raise TypeError(
                f"compiled must be True or False, got {checks.shown(compiled)}"
                f" of type {type(compiled).__name__}"
            )
        self.nonfinite = nonfinite
        self.missing_grads = missing_grads
        self._runner = BlockRunner(
            checks.bounded_integer("block_size", block_size, MAX_BLOCK_SIZE),
            checks.thread_count("threads", threads, MAX_THREADS),
            compiled=bool(compiled),
        )
        self._busy = threading.Lock()
        self.reset()

    def __setattr__(self, name: str, value: Any) -> None:
        # a typo such as opt.learnin_rate = 0.1 would otherwise be silently
        # ignored
        if name[:1] != "_" and not hasattr(type(self), name):
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r} to set; its "
                "hyperparameters are "
                f"{list(self.hyperparameter_names)}{self._attribute_hint(name)}"
            )
        object.__setattr__(self, name, value)

    def _attribute_hint(self, name: str) -> str:
        return ""

    def __getstate__(self) -> dict:  # copy and pickle
        # the state as it is between steps: copy and pickle read the arrays
        # after this returns, when another thread's update may be writing them
        self._enter("copying or pickling")
        try:
            d = dict(self.__dict__)
            d["_state"] = {
                k: type(s)(*(a.copy() for a in s))
                for k, s in self._state.items()
            }
        finally:
            self._busy.release()
        d.pop("_busy", None)  # a lock is not copied
        # both hold the caller's arrays (_last also their addresses)
        d["_last"] = d["_kept_arguments"] = None
        r = self._runner  # its scratch serves one optimizer
        d["_runner"] = BlockRunner(r.block_size, r.threads, r.compiled)
        return d

    def __setstate__(self, d: dict) -> None:
        self.__dict__.update(d)
        self._busy = threading.Lock()

    def _enter(self, what: str) -> None:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(
                f"{what} was called while another thread is inside update, "
                "reset, state_dict or "
                f"load_state_dict of the same {type(self).__name__}; one "
                "optimizer serves one thread "
                "at a time (give each thread its own optimizer, or hold a "
                "lock around the calls)"
            )

    def _check_whole(self) -> None:
        if self._torn:
            raise RuntimeError(
                "an earlier update() was interrupted while it wrote (an "
                "asynchronous exception such as "
                "KeyboardInterrupt), so some parameters and their state may "
                "have taken that step and "
                "others not; restore the parameters and the optimizer from a "
                "checkpoint "
                "(load_state_dict) or call reset()"
            )

    # -- state -----------------------------------------------------------------

    def reset(self) -> None:
        """Forget all state: the next ``update`` starts from zero averages."""
        self._enter("reset()")
        try:
            self._state: dict[str, NamedTuple] = {}
            # the last checked call, which a call with the same arrays skips
            # re-checking
            self._last: segments.SegmentCall | packing.PackedCall | None = None
            # (hyperparameters and dtypes, arguments) of the last step
            self._kept_arguments = None
            self._torn = False
            self.step_count = 0
            self.skipped_steps = 0
        finally:
            self._busy.release()

    def initial_state(self, shape: tuple, dtype: np.dtype) -> NamedTuple:
        """Zero state for one parameter, in the parameter's shape and dtype."""
        return self.State(*(np.zeros(shape, dtype) for _ in self.State._fields))

    @property
    def state(self) -> dict[str, NamedTuple]:
        """The per-parameter state (read it; do not modify it)."""
        return self._state

    def hyperparameters(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.hyperparameter_names}

    def step_arguments(self, dtype: np.dtype | None = None) -> dict[str, Any]:
        """Keyword arguments for ``step_function`` at the coming step, on
        parameters of ``dtype``."""
        return self.hyperparameters()

    def __repr__(self) -> str:
        args = ", ".join(
            f"{k}={v!r}" for k, v in self.hyperparameters().items()
        )
        return f"{type(self).__name__}({args})"

    # -- the update ------------------------------------------------------------

    def _check_layout(self, entries: list[checks.Entry], params: dict) -> None:
        hint = (
            "call reset() to start a fresh state for a different parameter set"
        )
        state = self._state
        if state:
            gone = [k for k in state if k not in params]
            if gone:
                raise ValueError(
                    f"parameter {checks.shown(gone[0])} was in earlier steps "
                    "but is missing now "
                    f"(missing: {checks.listing(gone)}); {hint}"
                )
            # with missing_grads="skip" a key's state starts at its first
            # gradient
            new = (
                [e.key for e in entries if e.key not in state]
                if self.missing_grads != "skip"
                else []
            )
            if new:
                raise ValueError(
                    f"parameter {checks.shown(new[0])} is new since the last "
                    f"step (new: {checks.listing(new)}); "
                    f"the state covers {checks.listing(state)}; {hint}"
                )
        for e in entries:
            held = state.get(e.key)
            # byte order aside: an .npz file keeps it, so a checkpoint written
            # on a machine of the other order holds the same numbers in it
            if held is not None and (
                held[0].shape != e.shape
                or held[0].dtype.newbyteorder("=") != e.dtype.newbyteorder("=")
            ):
                raise ValueError(
                    f"parameter {checks.shown(e.key)} is now "
                    f"{e.dtype}{list(e.shape)}, but its state is "
                    f"{held[0].dtype}{list(held[0].shape)}; {hint}"
                )

    def update(self, params: dict, grads: dict) -> None:
        """One optimizer step on every parameter in ``params``.

        The step runs one of three ways, which give the same result, bit for
        bit, and raise for the same inputs.  Where the compiled kernels apply
        (float32 and float64 C-contiguous arrays, numba installed,
        ``compiled=True``), one compiled call steps every array, separate or
        packed (:mod:`graves.segments`); when parameters, gradients and state
        each tile one buffer (:mod:`graves.packing`), the step runs once over
        the whole buffer; otherwise once per parameter.  A call that passes the
        very same arrays as the last one re-checks only what can change on an
        existing array.  The arithmetic ignores ``np.errstate``: a NaN or inf
        that the step itself produces (as with ``eps=0`` and a zero gradient) is
        written, never raised, on every path.
        """
        self._enter("update()")
        try:
            self._check_whole()
            # 1. check: nothing has been written yet
            last = self._last
            if last is not None and last.same_call(params, grads, self._state):
                # the same arrays as the last step passed the checks
                entries = last.entries
            else:
                last = None
                entries = checks.parameter_entries(
                    params, grads, self.missing_grads
                )
                self._check_layout(entries, params)
                checks.no_aliasing(entries)
            arguments = self._arguments(
                last.dtype_entries
                if last is not None
                else checks.one_per_dtype(entries)
            )

            # 2. prepare: every allocation (new state, the layout, copies,
            #    scratch)
            state = self._state
            step = self.step_function
            if last is None:
                # zero state for a new key; a state of the other byte order in
                # the parameter's, which every path steps
                new = {
                    e.key: self.initial_state(e.shape, e.dtype)
                    if s is None
                    else type(s)(*(a.astype(e.dtype) for a in s))
                    for e in entries
                    if (s := state.get(e.key)) is None or s[0].dtype != e.dtype
                }
                if new:
                    state = {**state, **new}
                if len(state) == len(entries) and self._runner.compiled:
                    last, state = segments.SegmentCall.of(
                        entries, grads, state, step
                    )
                if last is None and len(state) == len(entries):
                    last, state = packing.PackedCall.of(entries, state)

            # 3. the gradients: finite, or nothing changes.  The compiled path
            #    checks them inside its pass (graves.segments), the others here.
            if isinstance(last, segments.SegmentCall):
                runs, put_back, scalars = None, [], []
            else:
                if isinstance(
                    last, packing.PackedCall
                ) and self._runner.all_finite(last.grad):
                    bad = None
                else:
                    bad = checks.first_nonfinite(entries)
                if bad is not None:
                    self._nonfinite(bad)
                    return
                runs, put_back, scalars = self._runs(entries, state, last)
                for w, _, _ in runs:
                    self._runner.reserve(step, w)
                if scalars:
                    # stepped now, in copies of their state: replacing them in
                    # the caller's mapping, which may raise, is the first write
                    self._step(step, [run for _, run in scalars], arguments)
                    stepped = {
                        e.key: type(s)(*(a.reshape(()) for a in s))
                        for e, (_, _, s) in scalars
                    }
                    state = {**state, **stepped}

            # 4. write: nothing below raises unless interrupted, but the
            #    caller's mapping, first, and then undone (the hot path writes
            #    its own attributes directly: __setattr__ guards the
            #    hyperparameters)
            self.__dict__["_torn"] = True
            if runs is None:
                if not last.run(self._runner, step, arguments):
                    self.__dict__["_torn"] = False  # the kernel wrote nothing
                    self._nonfinite(checks.first_nonfinite(entries))
                    return
            else:
                self._replace(params, scalars)
                self._step(step, runs, arguments)
                for e, w in put_back:
                    e.value[...] = w.reshape(e.shape)
            self.__dict__.update(
                _state=state,
                _last=last,
                step_count=self.step_count + 1,
                _torn=False,
            )
        finally:
            self._busy.release()

    def _nonfinite(self, key) -> None:
        """A gradient (of ``key``) holds NaN or inf: raise, or count a skipped
        step."""
        if self.nonfinite == "raise":
            raise FloatingPointError(
                f"gradient {checks.shown(key)} contains NaN or inf (in the "
                "parameter's dtype); nothing was "
                "changed (construct the optimizer with nonfinite='skip' to "
                "skip such steps)"
            )
        self.skipped_steps += 1

    def _arguments(
        self, entries: list[checks.Entry]
    ) -> dict[np.dtype, dict[str, Any]]:
        """The step's keyword arguments for each dtype of ``entries``, once the
        hyperparameters are checked to fit each dtype; kept while neither
        changes."""
        values, kept = self._values(self), self._kept_arguments
        # a remembered call passes the same list of entries each time (kept, so
        # no other list takes its id)
        if (
            kept is None
            or kept[0] != values
            or (
                kept[1] is not entries and kept[2] != [e.dtype for e in entries]
            )
        ):
            checks.hyperparameters_fit(self, entries)
            kept = self._kept_arguments = (
                values,
                entries,
                [e.dtype for e in entries],
                {e.dtype: self.step_arguments(e.dtype) for e in entries},
            )
        return kept[3]

    def _step(self, step, runs: list, arguments: dict) -> None:
        """Run ``step`` on each ``(w, grad, state)`` triple of ``runs``."""
        # numpy's error settings reach the numpy path only (the compiled kernel
        # ignores them)
        with (
            np.errstate(all="ignore")
            if not self._runner.all_compiled(step, arguments)
            else _NO_ERRSTATE
        ):
            for w, grad, s in runs:
                self._runner.run(step, w, grad, s, **arguments[w.dtype])

    def _replace(self, params, scalars: list) -> None:
        """Put the stepped scalars into ``params``.  The mapping may be the
        caller's own, whose ``__setitem__`` may raise: the scalars replaced
        until then are put back, and the call has changed nothing."""
        done = []
        try:
            for e, (w, _, _) in scalars:
                # numpy scalars keep their type (np.float64 is also a float);
                # Python floats stay float
                params[e.key] = (
                    w[0] if isinstance(e.value, np.generic) else float(w[0])
                )
                done.append(e)
        except Exception:
            for e in reversed(done):
                params[e.key] = e.value
            self.__dict__["_torn"] = False
            raise

    @staticmethod
    def _runs(entries, state, packed) -> tuple[list, list, list]:
        """``(w, grad, state)`` flat triples to step; the ``(entry, w)`` pairs
        whose ``w`` is a copy to write back into the caller's array afterwards;
        and the scalars as ``(entry, (w, grad, state))``, each with a
        one-element ``w`` and a copy of its state."""
        if packed is not None:
            return [(packed.w, packed.grad, packed.state)], [], []
        runs, put_back, scalars = [], [], []
        for e in entries:
            s = state[e.key]
            grad = e.grad.reshape(-1)
            if not e.is_array:
                w = np.array([e.value], dtype=e.dtype)
                copied = type(s)(*(a.reshape(-1).copy() for a in s))
                scalars.append((e, (w, grad, copied)))
                continue
            if e.value.flags.c_contiguous:
                w = e.value.reshape(-1)
            else:
                w = e.value.reshape(-1)  # a copy: the caller's array is strided
                put_back.append((e, w))
            runs.append((w, grad, type(s)(*(a.reshape(-1) for a in s))))
        return runs, put_back, scalars

    # -- checkpoints -----------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters, counters and state as plain data (arrays, numbers,
        strings).

        The dict is flat, so ``np.savez(file, **opt.state_dict())`` stores it.
        """
        self._enter("state_dict()")
        try:
            self._check_whole()
            return checkpoint.to_plain(self)
        finally:
            self._busy.release()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters, counters and state from ``state_dict``.

        Everything is checked first; on any mismatch a ValueError or TypeError
        is raised and the optimizer is left as it was.
        """
        self._enter("load_state_dict()")
        try:
            checkpoint.restore(self, state_dict)
            self._last, self._kept_arguments, self._torn = None, None, False
        finally:
            self._busy.release()

    def save(self, path) -> None:
        """Write ``state_dict()`` to the ``.npz`` file ``path`` atomically."""
        checkpoint.save(self, path)

    @classmethod
    def from_hyperparameters(
        cls, hyperparameters: dict[str, Any]
    ) -> "Optimizer":
        """A fresh optimizer with the given hyperparameters (used by
        :func:`graves.load`)."""
        return cls(**hyperparameters)


class SGD(Optimizer):
    """Gradient descent with heavy-ball momentum: ``v ← μv − lr·∇``,
    ``w ← w + v``.

    ``lr`` is required; ``momentum=0`` gives plain gradient descent.
    """

    name = "SGD"
    State = core.SGDState
    hyperparameter_names = ("lr", "momentum")
    step_function = staticmethod(core.sgd_step)

    lr = Hyperparameter(
        checks.positive, "learning rate η (inside the velocity)"
    )
    momentum = Hyperparameter(checks.unit_interval, "momentum coefficient μ")

    def __init__(self, lr: float, momentum: float = 0.0, **options):
        self.lr, self.momentum = lr, momentum
        super().__init__(**options)


class RMSprop(Optimizer):
    """Uncentered RMSprop with ε inside the root, no momentum: the source
    document's algorithm.

    ``n ← αn + (1−α)∇²``, ``w ← w − lr·∇/√(n + ε)``.
    """

    name = "RMSprop"
    State = core.RMSpropState
    hyperparameter_names = ("lr", "alpha", "eps")
    step_function = staticmethod(core.rmsprop_step)

    lr = Hyperparameter(checks.positive, "learning rate")
    alpha = Hyperparameter(
        checks.unit_interval, "decay of the squared-gradient average"
    )
    eps = Hyperparameter(
        checks.non_negative, "added to n inside the square root"
    )

    def __init__(
        self, lr: float = 1e-3, alpha: float = 0.9, eps: float = 1e-8, **options
    ):
        self.lr, self.alpha, self.eps = lr, alpha, eps
        super().__init__(**options)


class RMSpropGraves(Optimizer):
    """Graves' centered RMSprop with momentum (arXiv:1308.0850, eqs. 38-41).

    Names and defaults are Chainer's; Graves' symbols in brackets::

        n ← α n + (1−α) ∇²                    (ρ = alpha)
        g ← α g + (1−α) ∇
        Δ ← momentum Δ − lr ∇ / √(n − g² + eps)  (μ = momentum, η = lr, ε = eps)
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

    lr = Hyperparameter(checks.positive, "learning rate η (inside Δ)")
    alpha = Hyperparameter(checks.unit_interval, "decay ρ of both averages")
    momentum = Hyperparameter(checks.unit_interval, "momentum μ")
    eps = Hyperparameter(
        checks.non_negative, "ε, added to n − g² inside the square root"
    )

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
        """``"difference"`` (the state holds n) or ``"recursive"`` (it holds s =
        n − g²)."""
        return self._spread

    def _set_spread(self, spread: str) -> None:
        # fixed at construction (or by a checkpoint): it decides what the state
        # holds
        self._spread = checks.one_of(*core.SPREAD_STATES)("spread", spread)
        self.State = core.SPREAD_STATES[self._spread]
        self.step_function = (
            core.graves_recursive_step
            if self._spread == "recursive"
            else core.graves_step
        )

    def __repr__(self) -> str:
        text = super().__repr__()
        return (
            text
            if self._spread == "difference"
            else f"{text[:-1]}, spread={self._spread!r})"
        )


def registry() -> dict[str, type[Optimizer]]:
    """Optimizer classes by the name their checkpoints carry."""
    return dict(_REGISTRY)
