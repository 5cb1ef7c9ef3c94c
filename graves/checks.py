"""Input checks.  Every check runs before anything is changed, so a call that
raises leaves parameters and optimizer state exactly as they were."""

from __future__ import annotations

import math
import numbers
from itertools import islice
from collections.abc import Mapping, MutableMapping
from typing import Any, Callable, NamedTuple

import numpy as np


def real_number(name: str, value: Any) -> float:
    """``value`` as a finite Python float, or a TypeError/ValueError naming
    ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, numbers.Real
    ):
        raise TypeError(
            f"{name} must be a real number, got {shown(value)} of type "
            f"{type(value).__name__}"
        )
    try:
        converted = float(value)
    except OverflowError:  # an int or Fraction beyond the float range
        raise ValueError(
            f"{name} must be finite, got {shown(value)}, which overflows a "
            "float"
        ) from None
    if not math.isfinite(converted):
        raise ValueError(f"{name} must be finite, got {shown(value)}")
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
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, numbers.Integral
    ):
        raise TypeError(
            f"{name} must be an integer, got {shown(value)} of type "
            f"{type(value).__name__}"
        )
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {shown(value)}")
    return int(value)


#: A counter is stored as an int64 in every checkpoint.
INT64_MAX = int(np.iinfo(np.int64).max)


def counter(name: str, value: Any) -> int:
    """A step count: an integer (not a bool) from 0 to 2**63 - 1, as a Python
    int, else a ValueError naming ``name``.  Anything else would fail later:
    ``step_count + 1`` after a step has written, or a checkpoint that ``load``
    cannot read."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, numbers.Integral)
        or not 0 <= value <= INT64_MAX
    ):
        raise ValueError(
            f"{name} must be a non-negative integer below 2**63, got "
            f"{shown(value)}"
        )
    return int(value)


def bounded_integer(name: str, value: Any, most: int) -> int:
    """A count with an upper bound: :func:`positive_integer`, at most
    ``most``."""
    value = positive_integer(name, value)
    if value > most:
        raise ValueError(f"{name} must be <= {most:,}, got {_counted(value)}")
    return value


def thread_count(name: str, value: Any, most: int) -> int | str:
    """``"auto"`` or a thread count from 1 to ``most``, else a
    TypeError/ValueError naming ``name`` and the allowed range."""
    allowed = f"{name} must be 'auto' or an integer from 1 to {most}"
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, numbers.Integral
    ):
        raise TypeError(
            f"{allowed}, got {shown(value)} of type {type(value).__name__}"
        )
    if not 1 <= value <= most:
        raise ValueError(f"{allowed}, got {_counted(int(value))}")
    return int(value)


def one_of(*choices: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(
                f"{name} must be one of {list(choices)}, got {shown(value)}"
                f" of type {type(value).__name__}"
            )
        if value not in choices:
            raise ValueError(
                f"{name} must be one of {list(choices)}, got {shown(value)}"
            )
        return value

    return check


class Hyperparameter:
    """A validated attribute: checked at construction and on every
    assignment."""

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
    # the caller's array, or a float scalar to be replaced in the dict
    value: Any
    # the gradient converted to ``dtype`` (no copy if it has it already)
    grad: np.ndarray
    shape: tuple
    dtype: np.dtype
    is_array: bool


#: Keys a message names before it summarises the rest.
SHOWN_KEYS = 5

#: A zip member name holds at most 65,535 bytes of UTF-8, and a checkpoint
#: stores each parameter's state under ``state/<field>/<key>.npy``: this leaves
#: room for the prefix.
MAX_KEY_BYTES = 65_000


def shown(key: Any) -> str:
    """``repr(key)``, cut to about 80 characters, so that a message stays
    readable."""
    text = repr(key)
    if len(text) <= 80:
        return text
    size = (
        f"{len(key):,} characters"
        if isinstance(key, str)
        else type(key).__name__
    )
    return f"{text[:60]}… ({size})"


def _counted(value: int) -> str:
    """``value`` with thousands separators (``20,000``), or cut as
    :func:`shown` cuts it when that is long."""
    text = f"{value:,}"
    return text if len(text) <= 80 else shown(value)


def listing(keys: Any, total: int | None = None) -> str:
    """The first :data:`SHOWN_KEYS` of ``keys`` and how many more:
    ``'a', 'b' and 99,998 more``."""
    first = [shown(k) for k in islice(keys, SHOWN_KEYS)]
    total = len(keys) if total is None else total
    more = total - len(first)
    return (
        ", ".join(first) + (f" and {more:,} more" if more > 0 else "")
        if first
        else "none"
    )


def parameter_name(key: Any) -> str:
    """``key`` if a checkpoint can store it as a parameter name, else a
    TypeError/ValueError naming it.

    A name is a string without NUL characters (a zip member name ends at the
    first NUL, and numpy's string arrays drop trailing ones), without lone
    surrogates (they have no UTF-8 encoding), and of at most
    :data:`MAX_KEY_BYTES` bytes in UTF-8.
    """
    if not isinstance(key, str):
        raise TypeError(
            f"parameter names must be strings, got {shown(key)} of type "
            f"{type(key).__name__}"
        )
    if "\x00" in key:
        raise ValueError(
            f"parameter name {shown(key)} contains a NUL character, which a "
            "checkpoint cannot store"
        )
    if key.isascii():
        size = len(key)
    else:
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError(
                f"parameter name {shown(key)} contains a lone surrogate, which "
                "has no UTF-8 form; "
                "a checkpoint cannot store it"
            ) from None
    if size > MAX_KEY_BYTES:
        raise ValueError(
            f"parameter name {shown(key)} is {size:,} bytes long in UTF-8; a "
            "checkpoint stores names "
            f"of at most {MAX_KEY_BYTES:,} bytes"
        )
    return key


def _kind(x: Any) -> str:
    return f"{type(x).__name__}" + (
        f" of dtype {x.dtype}"
        if isinstance(x, (np.ndarray, np.generic))
        else ""
    )


def _plain(x: Any, label: str, key: str) -> Any:
    """An ndarray subclass as a plain ndarray over the same memory (its own
    methods and ``__array_ufunc__`` then play no part); matrices and masked
    arrays are refused, as their meaning differs from their memory's."""
    if not isinstance(x, np.ndarray) or type(x) is np.ndarray:
        return x
    if isinstance(x, (np.matrix, np.ma.MaskedArray)):
        raise TypeError(
            f"{label} {shown(key)} is a {type(x).__name__}; expected a plain "
            "numpy array "
            "(np.asarray(x) is a plain view of x's memory)"
        )
    # the base method: a subclass's own view() is not called
    return np.ndarray.view(x, np.ndarray)


def parameter_entries(
    params: Any, grads: Any, missing: str = "raise"
) -> list[Entry]:
    """Check that ``grads`` matches ``params`` key by key; return one entry per
    key.

    With ``missing="skip"``, a key of ``params`` absent from ``grads`` (a frozen
    parameter) gets no entry; with ``"raise"`` it is an error.  Each gradient is
    converted to its parameter's dtype here, once, so that the non-finite check
    sees exactly the values the step will use (a finite float64 gradient can
    overflow to inf in float32 or float16).  An ndarray subclass is taken as the
    plain array over its memory.
    """
    for label, d in (("params", params), ("grads", grads)):
        if not isinstance(d, Mapping):
            raise TypeError(
                "params and grads must be dicts from name to array or scalar; "
                f"{label} is {type(d).__name__}"
            )
    if missing != "skip":
        absent = [key for key in params if key not in grads]
        if absent:
            raise KeyError(
                f"grads has no entry for parameter {shown(absent[0])}; "
                "expected the keys of params "
                f"({listing(params)}), missing: {listing(absent)}. For frozen "
                "parameters, build the "
                "optimizer with missing_grads='skip'"
            )
    extra = [key for key in grads if key not in params]
    if extra:
        raise KeyError(
            f"grads has an extra key {shown(extra[0])} that is not a "
            "parameter; expected the keys of params "
            f"({listing(params)}), extra: {listing(extra)}"
        )

    entries = []
    for key, value in params.items():
        if missing == "skip" and key not in grads:
            continue
        parameter_name(key)
        value = _plain(value, "parameter", key)
        if isinstance(value, np.ndarray):
            dtype, shape, is_array = value.dtype, value.shape, True
            if not value.flags.writeable:
                raise ValueError(
                    f"parameter {shown(key)} is a read-only array; expected a "
                    "writable array"
                )
        elif isinstance(value, (float, np.floating)):
            dtype = (
                np.dtype(np.float64)
                if isinstance(value, float)
                else value.dtype
            )
            shape, is_array = (), False
        else:
            raise TypeError(
                f"parameter {shown(key)} is {_kind(value)}; expected a float "
                "numpy array or a float scalar"
            )
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(
                f"parameter {shown(key)} has dtype {dtype}; expected a real "
                "floating dtype"
            )

        grad = grads[key]
        if isinstance(grad, (bool, np.bool_)) or not isinstance(
            grad, (np.ndarray, numbers.Real, np.number)
        ):
            raise TypeError(
                f"gradient {shown(key)} is {_kind(grad)}; expected a real "
                "array or number"
            )
        grad = _plain(grad, "gradient", key)
        grad_dtype = np.asarray(grad).dtype
        # by kind: numpy counts timedelta64 as an integer type, and NaT would
        # pass as -9.2e18
        if grad_dtype.kind not in "fiu":
            raise TypeError(
                f"gradient {shown(key)} has dtype {grad_dtype}; expected a "
                "real dtype (floating or integer)"
            )
        if np.shape(grad) != shape:
            raise ValueError(
                f"gradient {shown(key)} has shape {np.shape(grad)}; expected "
                f"the parameter's shape {shape}"
            )
        # overflow to inf is caught by first_nonfinite
        with np.errstate(over="ignore", invalid="ignore"):
            grad = np.asarray(grad, dtype=dtype)
        entries.append(Entry(key, value, grad, shape, dtype, is_array))
    if not isinstance(params, MutableMapping) and any(
        not e.is_array for e in entries
    ):
        raise TypeError(
            f"params is a read-only {type(params).__name__}, but scalar "
            "parameters are replaced "
            "in it; expected a dict"
        )
    return entries


# -- aliasing ------------------------------------------------------------------


def _root(a: np.ndarray) -> Any:
    """The array that owns ``a``'s memory, or None when that memory belongs to
    another kind of object (a buffer, a memory map, an ``as_strided``
    interface), which other arrays may share without a common ndarray owner."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a if a.base is None else None


def _bounds(a: np.ndarray) -> tuple[int, int]:
    """The byte addresses ``[low, high)`` that ``a`` can touch."""
    low = high = a.ctypes.data
    for n, stride in zip(a.shape, a.strides):
        reach = (n - 1) * stride
        if reach < 0:
            low += reach
        else:
            high += reach
    return low, high + a.itemsize


def _overlaps_itself(a: np.ndarray) -> bool:
    """True if two elements of ``a`` may share memory: a zero stride, or strides
    that do not nest (sorted by size, each stride spans at least what the
    smaller ones reach)."""
    if a.flags.c_contiguous or a.flags.f_contiguous:
        return False
    dims = sorted((abs(s), n) for n, s in zip(a.shape, a.strides) if n > 1)
    reach = a.itemsize
    for stride, n in dims:
        if stride < reach:
            return True
        reach = stride * (n - 1) + reach
    return False


def _share(a: np.ndarray, b: np.ndarray) -> bool:
    # overlapping bounds of two contiguous arrays always share bytes; strided
    # ones may interleave
    if a.flags.c_contiguous and b.flags.c_contiguous:
        return True
    try:
        return bool(np.shares_memory(a, b, max_work=100_000))
    except np.exceptions.TooHardError:
        # undecided: refuse, as a write could corrupt the other
        return True


def no_aliasing(entries: list[Entry]) -> None:
    """A step writes each parameter, so no parameter may share memory with
    another parameter, with any gradient, or with itself; raise a ValueError
    naming the pair.

    Gradients may share memory with each other (they are only read).  Arrays
    with different owners cannot overlap, so only arrays that share an owner (or
    whose memory an ndarray does not own) are compared, by sorting their byte
    intervals: O(n log n) in the number of keys.
    """
    # id of the owning array -> [(array, key, is_parameter), ...]
    groups: dict[int, list] = {}
    foreign = False
    for e in entries:
        pairs = (
            ((e.value, True), (e.grad, False))
            if e.is_array
            else ((e.grad, False),)
        )
        for a, is_param in pairs:
            if (
                is_param
                and not a.flags.c_contiguous
                and a.size > 1
                and _overlaps_itself(a)
            ):
                raise ValueError(
                    f"parameter {shown(e.key)} has strides {a.strides}, with "
                    "which several elements "
                    "share memory (a zero stride, say); a step would write "
                    "them more than once. "
                    "Expected a writable array whose elements are distinct "
                    "(np.array(x) copies it)"
                )
            base = a.base
            if base is None:
                root = a
            elif base.__class__ is np.ndarray and base.base is None:
                root = base
            else:
                root = _root(a)
                foreign = foreign or root is None
            group = groups.get(id(root))
            if group is None:
                groups[id(root)] = [(a, e.key, is_param)]
            else:
                group.append((a, e.key, is_param))
    if foreign:  # some memory has no ndarray owner: compare everything
        candidates = [
            item for items in groups.values() for item in items if item[0].size
        ]
    else:
        candidates = [
            item
            for items in groups.values()
            if len(items) > 1 and any(p for _, _, p in items)
            for item in items
            if item[0].size
        ]
    if not candidates:
        return
    intervals = sorted(
        (*_bounds(a), i) for i, (a, _, _) in enumerate(candidates)
    )
    # (high, index) of intervals that may reach the next one
    active: list[tuple[int, int]] = []
    for low, high, i in intervals:
        active = [(h, j) for h, j in active if h > low]
        a, key, is_param = candidates[i]
        for _, j in active:
            b, other, other_is_param = candidates[j]
            if (is_param or other_is_param) and _share(a, b):
                _raise_alias(candidates[j], candidates[i])
        active.append((high, i))


def _raise_alias(first, second) -> None:
    (_, key_a, param_a), (_, key_b, param_b) = first, second
    if param_a and param_b:
        raise ValueError(
            f"parameters {shown(key_a)} and {shown(key_b)} share memory (one "
            "array under two keys, or "
            "overlapping views); a step would update the shared elements "
            "twice. Pass a shared (tied) "
            "array once, under one key, with the sum of its gradients"
        )
    param, grad = (key_a, key_b) if param_a else (key_b, key_a)
    raise ValueError(
        f"gradient {shown(grad)} shares memory with parameter {shown(param)}, "
        "which the step writes "
        "while it reads the gradient; expected a gradient that no parameter "
        "overlaps (pass a copy)"
    )


def first_nonfinite(entries: list[Entry]) -> str | None:
    """The first key whose gradient has a NaN or an infinity, else None."""
    for e in entries:
        g = e.grad
        # the sum is one cheap pass; only when it overflows or is NaN do we look
        # closer
        with np.errstate(over="ignore", invalid="ignore"):
            total = np.sum(g)
        if not np.isfinite(total) and not np.isfinite(g).all():
            return e.key
    return None


def one_per_dtype(entries: list[Entry]) -> list[Entry]:
    """The first entry of each dtype, in order."""
    first: dict[np.dtype, Entry] = {}
    for e in entries:
        first.setdefault(e.dtype, e)
    return list(first.values())


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
                # a tiny coefficient (alpha, momentum) flushed to 0 barely
                # changes a step; a step size or an offset such as eps flushed
                # to 0 does
                ok = rounded != 0 or value == 0 or check is unit_interval
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(
                    f"parameter {shown(e.key)} is {e.dtype}, in which "
                    f"{name}={value!r} becomes {rounded!r}; "
                    f"expected a value that {e.dtype} represents without "
                    "changing its meaning "
                    f"(choose another {name} or a wider dtype)"
                )
