"""Many parameter arrays as views into one flat buffer.

A model with thousands of small arrays spends most of a step in Python: one
round of numpy calls per array.  Packing the arrays into one contiguous buffer,
and keeping each parameter as a view (a window) into it, lets the optimizer run
its step once over the whole buffer, while the caller still sees a dict of
arrays of the original shapes::

    # copies once; use params from now on
    flat, params = graves.packing.pack(params)
    # fill grads[k] in place each step
    grad_flat, grads = graves.packing.zeros_like(params)
    opt.update(params, grads)  # one pass over flat

:meth:`graves.Optimizer.update` recognises such views with :func:`flat_view`
and takes its fast path; any other dict of arrays gets the same result, one
array at a time.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence

import numpy as np


def zeros(
    shapes: Mapping[str, tuple], dtype=np.float64
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One zero buffer, and a view into it for each key, shaped ``shapes[key]``.

    The views follow one another in the buffer, in the order of ``shapes``.
    """
    sizes = {
        key: int(np.prod(shape, dtype=np.int64))
        for key, shape in shapes.items()
    }
    flat = np.zeros(sum(sizes.values()), dtype=dtype)
    views, start = {}, 0
    for key, shape in shapes.items():
        views[key] = flat[start : start + sizes[key]].reshape(shape)
        start += sizes[key]
    return flat, views


def pack(
    arrays: Mapping[str, np.ndarray], dtype=None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Copy ``arrays`` into one new flat buffer; return it and a dict of views
    into it.

    ``views[key]`` has ``arrays[key]``'s shape and values.  All arrays share one
    dtype: ``dtype`` if given, else their common result type.  Keep using the
    views (the originals are not linked to the buffer).
    """
    if not arrays:
        raise ValueError("pack needs at least one array")
    values = {key: np.asarray(a) for key, a in arrays.items()}
    if dtype is None:
        dtype = np.result_type(*values.values())
    flat, views = zeros({key: a.shape for key, a in values.items()}, dtype)
    for key, a in values.items():
        views[key][...] = a
    return flat, views


def zeros_like(
    views: Mapping[str, np.ndarray],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A zero buffer with the same layout as ``views`` (e.g. for the
    gradients)."""
    dtypes = {np.asarray(v).dtype for v in views.values()}
    if len(dtypes) != 1:
        raise ValueError(
            f"the views have several dtypes {sorted(map(str, dtypes))}; "
            "expected one"
        )
    return zeros({key: np.shape(v) for key, v in views.items()}, dtypes.pop())


def _owner(a: np.ndarray) -> np.ndarray:
    return a if a.base is None else a.base


def flat_view(arrays: Sequence[np.ndarray]) -> np.ndarray | None:
    """The 1-D array covering ``arrays`` when they tile one stretch of memory,
    else None.

    That is: plain C-contiguous arrays of one dtype, all views of one
    C-contiguous buffer of that dtype, each starting where the one before it
    ends (empty arrays, which hold no memory, may sit anywhere).  The result is
    a view: writing to it writes to ``arrays``.  One contiguous array is its
    own flat view.
    """
    if not arrays or any(type(a) is not np.ndarray for a in arrays):
        return None
    dtype = arrays[0].dtype
    if any(a.dtype != dtype for a in arrays):
        return None
    filled = [a for a in arrays if a.size]
    if not filled:
        return np.empty(0, dtype)
    owner = _owner(filled[0])
    if (
        type(owner) is not np.ndarray
        or owner.dtype != dtype
        or not owner.flags.c_contiguous
    ):
        return None
    start = end = filled[0].__array_interface__["data"][0]
    for a in filled:
        if (
            not a.flags.c_contiguous
            or _owner(a) is not owner
            or a.__array_interface__["data"][0] != end
        ):
            return None
        end += a.nbytes
    offset, misaligned = divmod(
        start - owner.__array_interface__["data"][0], dtype.itemsize
    )
    if misaligned:
        return None
    return owner.reshape(-1)[offset : offset + (end - start) // dtype.itemsize]


class PackedCall:
    """A checked call of :meth:`graves.Optimizer.update` whose parameters,
    gradients and state each tile one buffer: the step can run once over ``w``,
    ``grad`` and ``state``, the flat views of the three.

    The optimizer keeps the last one.  A later call with the very same array
    objects (:meth:`same_call`) skips the per-key checks: the checks passed for
    these objects, and what can change on an existing array without making a
    new one (its shape, strides, dtype and writeable flag, set by assignment)
    is checked again.  Values (the gradients' finiteness) are the caller's to
    check.
    """

    def __init__(self, entries, params, grads, state_items, w, grad, state):
        self.entries = entries
        self.keys = [e.key for e in entries]
        self.params, self.grads, self.state_items = params, grads, state_items
        self.shapes = [e.shape for e in entries]
        self.dtypes = [e.dtype for e in entries]
        # strides can be assigned too: the same memory, read in another order
        self.strides = list(map(_strides, params))
        self.grad_strides = list(map(_strides, grads))
        self.w, self.grad, self.state = w, grad, state
        self.dtype_entries = entries[:1]  # one dtype

    @classmethod
    def of(cls, entries, state: dict) -> tuple["PackedCall | None", dict]:
        """The packed form of checked ``entries`` with per-key ``state``, or
        None.

        Returns ``(call, state)``, ``state`` in the order of ``entries``.  When
        parameters and gradients tile a buffer each but the state does not (a
        state loaded from a checkpoint, say), the state is copied once into flat
        buffers, and ``state`` holds views of them, with equal values.
        """
        if not entries or not all(e.is_array for e in entries):
            return None, state
        params = [e.value for e in entries]
        w = flat_view(params)
        # a buffer made read-only after the views were taken: they stay
        # writable, a new view of it is not; step them one by one
        if w is None or not w.flags.writeable:
            return None, state
        grads = [e.grad for e in entries]
        grad = flat_view(grads)
        if grad is None or grad.dtype != w.dtype:
            return None, state
        items = [state[e.key] for e in entries]
        State = type(items[0])
        fields = [
            flat_view([s[i] for s in items]) for i in range(len(State._fields))
        ]
        if any(f is None or f.dtype != w.dtype for f in fields):
            packed = [
                pack({e.key: s[i] for e, s in zip(entries, items)}, w.dtype)
                for i in range(len(State._fields))
            ]
            fields = [flat for flat, _ in packed]
            items = [
                State(*(views[e.key] for _, views in packed)) for e in entries
            ]
        # in the parameters' order, as same_call reads it
        state = {e.key: s for e, s in zip(entries, items)}
        return cls(
            entries, params, grads, items, w, grad, State(*fields)
        ), state

    def same_call(self, params, grads, state: dict) -> bool:
        """True if ``params``, ``grads`` and ``state`` hold the same objects as
        this call."""
        in_order = values_in_order(self.keys, params, grads, state)
        if in_order is None:
            return False
        values, grad_values = in_order
        return (
            all(map(operator.is_, values, self.params))
            and all(map(operator.is_, grad_values, self.grads))
            and all(map(operator.is_, state.values(), self.state_items))
            and all(map(_writeable, values))
            and list(map(_shape, values)) == self.shapes
            and list(map(_shape, grad_values)) == self.shapes
            and list(map(_strides, values)) == self.strides
            and list(map(_strides, grad_values)) == self.grad_strides
            and list(map(_dtype, values)) == self.dtypes
            and list(map(_dtype, grad_values)) == self.dtypes
        )


def values_in_order(keys: list, params, grads, state) -> tuple | None:
    """``(parameters, gradients)`` as lists in the order of ``keys``, if
    ``params`` has exactly ``keys`` in that order and ``grads`` and ``state``
    have as many entries; None otherwise, also for a mapping that fails to
    answer.  The first test a repeated call of ``update`` must pass."""
    try:
        if (
            list(params) != keys
            or len(grads) != len(keys)
            or len(state) != len(keys)
        ):
            return None
        grad_values = (
            list(grads.values())
            if list(grads) == keys
            else list(map(grads.__getitem__, keys))
        )
        return list(params.values()), grad_values
    except (TypeError, KeyError, AttributeError):
        return None


_shape = operator.attrgetter("shape")
_strides = operator.attrgetter("strides")
_dtype = operator.attrgetter("dtype")
_writeable = operator.attrgetter("flags.writeable")
