"""Input checks.  Every check runs before anything is changed, so a call that
raises leaves parameters and optimizer state exactly as they were."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, MutableMapping
from typing import Any, Callable, NamedTuple

import numpy as np


def real_number(name: str, value: Any) -> float:
    """``value`` as a finite Python float, or a TypeError/ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    try:
        converted = float(value)
    except OverflowError:  # an int or Fraction beyond the float range
        raise ValueError(f"{name} must be finite, got {value!r}, which overflows a float") from None
    if not math.isfinite(converted):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return converted


def positive(name: str, value: Any) -> float:
    value = real_number(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def non_negative(name: str, value: Any) -> float:
    value = real_number(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def unit_interval(name: str, value: Any) -> float:
    """A decay or momentum coefficient: in [0, 1)."""
    value = real_number(name, value)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def positive_integer(name: str, value: Any) -> int:
    """A count such as a block size: an ``int`` (not a bool) of at least 1."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return int(value)


def one_of(*choices: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be one of {list(choices)}, got {value!r} of type {type(value).__name__}")
        if value not in choices:
            raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
        return value

    return check


class Hyperparameter:
    """A validated attribute: checked at construction and on every assignment."""

    def __init__(self, check: Callable[[str, Any], Any], doc: str = ""):
        self.check = check
        self.__doc__ = doc

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, objtype=None):
        return self if obj is None else obj.__dict__[self.name]

    def __set__(self, obj, value):
        obj.__dict__[self.name] = self.check(self.name, value)


class Entry(NamedTuple):
    """One parameter, checked against its gradient."""

    key: str
    value: Any  # the caller's array, or a float scalar to be replaced in the dict
    grad: np.ndarray  # the gradient converted to ``dtype`` (no copy if it has it already)
    shape: tuple
    dtype: np.dtype
    is_array: bool


def _kind(x: Any) -> str:
    return f"{type(x).__name__}" + (f" of dtype {x.dtype}" if isinstance(x, (np.ndarray, np.generic)) else "")


def parameter_entries(params: Any, grads: Any) -> list[Entry]:
    """Check that ``grads`` matches ``params`` key by key; return one entry per key.

    Each gradient is converted to its parameter's dtype here, once, so that the
    non-finite check sees exactly the values the step will use (a finite
    float64 gradient can overflow to inf in float32 or float16).
    """
    for label, d in (("params", params), ("grads", grads)):
        if not isinstance(d, Mapping):
            raise TypeError(f"{label} must be a dict from name to array or scalar, got {type(d).__name__}")
    for key in params:
        if key not in grads:
            raise KeyError(f"grads has no entry for parameter {key!r}; expected the keys {list(params)}")
    for key in grads:
        if key not in params:
            raise KeyError(f"grads has an extra key {key!r} that is not a parameter; expected the keys {list(params)}")

    entries = []
    for key, value in params.items():
        if not isinstance(key, str):
            raise TypeError(f"parameter names must be strings, got {key!r} of type {type(key).__name__}")
        if isinstance(value, (np.matrix, np.ma.MaskedArray)):
            raise TypeError(
                f"parameter {key!r} is a {type(value).__name__}; expected a plain numpy array "
                "(np.asarray(x) is a plain view of x's memory)"
            )
        if isinstance(value, np.ndarray):
            dtype, shape, is_array = value.dtype, value.shape, True
            if not value.flags.writeable:
                raise ValueError(f"parameter {key!r} is a read-only array; expected a writable array")
        elif isinstance(value, (float, np.floating)):
            dtype = np.dtype(np.float64) if isinstance(value, float) else value.dtype
            shape, is_array = (), False
        else:
            raise TypeError(
                f"parameter {key!r} is {_kind(value)}; expected a float numpy array or a float scalar"
            )
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"parameter {key!r} has dtype {dtype}; expected a real floating dtype")

        grad = grads[key]
        if isinstance(grad, (bool, np.bool_)) or not isinstance(grad, (np.ndarray, numbers.Real, np.number)):
            raise TypeError(f"gradient {key!r} is {_kind(grad)}; expected a real array or number")
        if isinstance(grad, (np.matrix, np.ma.MaskedArray)):
            raise TypeError(f"gradient {key!r} is a {type(grad).__name__}; expected a plain numpy array")
        grad_dtype = np.asarray(grad).dtype
        if not (np.issubdtype(grad_dtype, np.floating) or np.issubdtype(grad_dtype, np.integer)):
            raise TypeError(f"gradient {key!r} has dtype {grad_dtype}; expected a real dtype")
        if np.shape(grad) != shape:
            raise ValueError(f"gradient {key!r} has shape {np.shape(grad)}; expected the parameter's shape {shape}")
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is caught by first_nonfinite
            grad = np.asarray(grad, dtype=dtype)
        entries.append(Entry(key, value, grad, shape, dtype, is_array))
    if not isinstance(params, MutableMapping) and any(not e.is_array for e in entries):
        raise TypeError(
            f"params is a read-only {type(params).__name__}, but scalar parameters are replaced "
            "in it; expected a dict"
        )
    return entries


def first_nonfinite(entries: list[Entry]) -> str | None:
    """The first key whose gradient has a NaN or an infinity, else None."""
    for e in entries:
        g = e.grad
        # the sum is one cheap pass; only when it overflows or is NaN do we look closer
        with np.errstate(over="ignore", invalid="ignore"):
            total = np.sum(g)
        if not np.isfinite(total) and not np.isfinite(g).all():
            return e.key
    return None


def hyperparameters_fit(opt: Any, entries: list[Entry]) -> None:
    """Each hyperparameter keeps its meaning in each parameter's dtype.

    The step functions compute in the parameter's dtype, so a hyperparameter
    (a Python float) is rounded to that dtype: in float16, ``eps=1e-8`` becomes
    0, making a zero gradient on a zero state 0/0 = NaN, and ``alpha=0.9999``
    becomes 1, an average that never forgets.  Such a value is rejected, naming
    the parameter, the hyperparameter and what it would become: one that fails
    its own check once rounded, or a nonzero step size or offset that becomes 0.
    """
    seen = set()
    for e in entries:
        if e.dtype in seen:
            continue
        seen.add(e.dtype)
        for name in opt.hyperparameter_names:
            value = getattr(opt, name)
            with np.errstate(over="ignore"):
                rounded = float(np.asarray(value, dtype=e.dtype))
            check = getattr(type(opt), name).check
            try:
                check(name, rounded)
                # a tiny coefficient (alpha, momentum) flushed to 0 barely changes a
                # step; a step size or an offset such as eps flushed to 0 does
                ok = rounded != 0 or value == 0 or check is unit_interval
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(
                    f"parameter {e.key!r} is {e.dtype}, in which {name}={value!r} becomes {rounded!r}; "
                    f"expected a value that {e.dtype} represents without changing its meaning "
                    f"(choose another {name} or a wider dtype)"
                )
