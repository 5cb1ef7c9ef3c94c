"""Input checks.  Every check runs before anything is changed, so a call that
raises leaves parameters and optimizer state exactly as they were."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import numpy as np


def real_number(name: str, value: Any) -> float:
    """``value`` as a finite Python float, or a TypeError/ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


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


def one_of(*choices: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
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
    grad: Any
    shape: tuple
    dtype: np.dtype
    is_array: bool


def _kind(x: Any) -> str:
    return f"{type(x).__name__}" + (f" of dtype {x.dtype}" if isinstance(x, (np.ndarray, np.generic)) else "")


def parameter_entries(params: Any, grads: Any) -> list[Entry]:
    """Check that ``grads`` matches ``params`` key by key; return one entry per key."""
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
        grad_dtype = np.asarray(grad).dtype
        if not (np.issubdtype(grad_dtype, np.floating) or np.issubdtype(grad_dtype, np.integer)):
            raise TypeError(f"gradient {key!r} has dtype {grad_dtype}; expected a real dtype")
        if np.shape(grad) != shape:
            raise ValueError(f"gradient {key!r} has shape {np.shape(grad)}; expected the parameter's shape {shape}")
        entries.append(Entry(key, value, grad, shape, dtype, is_array))
    return entries


def first_nonfinite(entries: list[Entry]) -> str | None:
    """The first key whose gradient has a NaN or an infinity, else None."""
    for e in entries:
        g = e.grad
        # the sum is one cheap pass; only when it overflows or is NaN do we look closer
        if not np.isfinite(np.sum(g)) and not np.isfinite(g).all():
            return e.key
    return None
