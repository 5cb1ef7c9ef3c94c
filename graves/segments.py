"""Many separate arrays, one compiled call: the checked layout of the last step,
kept.

A model holds thousands of small arrays, and a per-array step spends its time
in Python: checks and calls for each array, a few microseconds each, where the
arithmetic takes less.  This module removes both costs when the compiled kernels
of :mod:`graves.fused` apply (float32 and float64, C-contiguous arrays):

- the arithmetic: a :class:`Table` lists each parameter's and each gradient's
  address, and the state lives in one flat buffer per field, so one compiled
  call steps every array;
- the checks: a :class:`SegmentCall` remembers the arrays of a call that passed
  every check.  When the next call passes the very same array objects
  (:meth:`SegmentCall.same_call`), those checks would find the same, except for
  what can change on an existing array without making a new one (its data
  pointer, shape, strides, dtype and flags, such as writeable), which is
  compared again, and the gradients' values, which the kernel checks for NaN and
  inf before it writes anything.

The table holds references to every array whose address it lists, so that memory
stays valid; an array whose data moved (``ndarray.resize``) no longer passes
:meth:`SegmentCall.same_call`.
"""

from __future__ import annotations

import operator
from typing import Callable, NamedTuple

import numpy as np

from . import checks, fused, packing
from .checks import Entry


class Table(NamedTuple):
    """Arrays of one dtype as the segment kernels reach them: segment k is the
    parameter at address ``w_at[k]`` and the gradient at ``grad_at[k]``, and its
    state is elements ``offsets[k]`` to ``offsets[k + 1]`` of each array in
    ``state``."""

    dtype: np.dtype
    w_at: np.ndarray  # int64 addresses
    grad_at: np.ndarray
    offsets: np.ndarray  # int64, one more than the segments
    state: tuple  # the flat state buffers, in the State's field order
    # an empty unsigned array of the dtype's width, for the bit test
    bits_like: np.ndarray
    mask: np.unsignedinteger  # the exponent bits: all ones in NaN and inf
    size: int  # elements in all
    keep: tuple  # the arrays the addresses point into, kept alive

    @classmethod
    def of(cls, ws: list, grads: list, state: tuple) -> "Table":
        """The table of parameters ``ws`` and gradients ``grads`` (flat or not,
        C-contiguous, of one dtype) and flat ``state`` buffers covering them in
        order.  Neighbours that continue one another in memory, as packed views
        do, merge into one segment."""
        dtype = state[0].dtype
        w_at, grad_at, offsets = [], [], [0]
        for w, grad in zip(ws, grads):
            if not w.size:
                continue
            wa, ga = _address(w), _address(grad)
            end = offsets[-1] - offsets[-2] if len(offsets) > 1 else 0
            if (
                w_at
                and wa == w_at[-1] + end * dtype.itemsize
                and ga == grad_at[-1] + end * dtype.itemsize
            ):
                offsets[-1] += w.size
            else:
                w_at.append(wa)
                grad_at.append(ga)
                offsets.append(offsets[-1] + w.size)
        unsigned, mask = fused.EXPONENT_BITS[dtype]
        return cls(
            dtype,
            np.array(w_at, dtype=np.int64),
            np.array(grad_at, dtype=np.int64),
            np.array(offsets, dtype=np.int64),
            tuple(state),
            np.empty(0, unsigned),
            mask,
            offsets[-1],
            (tuple(ws), tuple(grads)),
        )


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


#: What can change on an existing array without making a new one, read from
#: Python: data pointer, shape, strides and dtype (the array interface), and the
#: flags.
_meta = operator.attrgetter("__array_interface__", "dtype", "flags.num")


class SegmentCall:
    """A checked call of :meth:`graves.Optimizer.update` that the compiled
    segment kernels run: one :class:`Table` per dtype, and the objects the call
    passed."""

    def __init__(self, entries, params, grads, state_items, tables):
        self.entries = entries
        self.keys = [e.key for e in entries]
        self.params, self.grads, self.state_items = params, grads, state_items
        # where this numpy allows it, the arrays' C headers, read in one
        # compiled pass
        if fused.HEADERS_READABLE:
            self.ids, self.records = fused.array_headers(params + grads)
            self.scratch = np.empty_like(self.records)
            # kept alive, so that no other dtype object takes their addresses
            self.dtypes = [a.dtype for a in params + grads]
        else:
            self.param_meta = list(map(_meta, params))
            self.grad_meta = list(map(_meta, grads))
        self.tables = tables
        self._kernels = None  # set by of()
        self._arguments = self._constants = self._one_call = None
        self.dtype_entries = checks.one_per_dtype(entries)

    @classmethod
    def of(
        cls, entries: list[Entry], grads: dict, state: dict, step: Callable
    ) -> tuple["SegmentCall | None", dict]:
        """The segment form of checked ``entries`` with per-key ``state``, or
        None when some parameter cannot take it (a scalar, a strided array, a
        dtype without a kernel, a gradient that needed converting, an ndarray
        subclass).

        Returns ``(call, state)``.  The state of each dtype is moved once into
        flat buffers, unless it already tiles them; ``state`` then holds views
        of them, with equal values, in the order of ``entries``.
        """
        if not entries:
            return None, state
        for e in entries:
            if (
                type(e.value) is not np.ndarray
                # converted or a subclass (or a mapping that changes under us)
                or grads[e.key] is not e.grad
                or not e.value.flags.c_contiguous
                or not e.grad.flags.c_contiguous
                or fused.segments_kernels_for(step, e.dtype) is None
            ):
                return None, state
        # the very arrays the checks passed
        grad_objects = [e.grad for e in entries]
        items = [state[e.key] for e in entries]
        State = type(items[0])
        by_dtype: dict[np.dtype, list[int]] = {}
        for i, e in enumerate(entries):
            by_dtype.setdefault(e.dtype, []).append(i)
        tables = []
        for dtype, members in by_dtype.items():
            fields = [
                packing.flat_view([items[i][f] for i in members])
                for f in range(len(State._fields))
            ]
            if any(f is None or f.dtype != dtype for f in fields):
                packed = [
                    packing.pack(
                        {entries[i].key: items[i][f] for i in members}, dtype
                    )
                    for f in range(len(State._fields))
                ]
                fields = [flat for flat, _ in packed]
                for i in members:
                    items[i] = State(
                        *(views[entries[i].key] for _, views in packed)
                    )
            tables.append(
                Table.of(
                    [entries[i].value for i in members],
                    [grad_objects[i] for i in members],
                    tuple(fields),
                )
            )
        # in the parameters' order, as same_call reads it
        state = {e.key: s for e, s in zip(entries, items)}
        call = cls(
            entries, [e.value for e in entries], grad_objects, items, tables
        )
        # the same for both dtypes
        call._kernels = fused.segments_kernels_for(step, entries[0].dtype)
        return call, state

    def same_call(self, params, grads, state: dict) -> bool:
        """True if ``params``, ``grads`` and ``state`` hold the same objects as
        this call, with the same shapes, dtypes and flags."""
        in_order = packing.values_in_order(self.keys, params, grads, state)
        if in_order is None:
            return False
        values, grad_values = in_order
        if not all(map(operator.is_, state.values(), self.state_items)):
            return False
        if fused.HEADERS_READABLE:
            # the same objects (this call keeps them alive, so no other object
            # has their id) with the same data pointer, shape, strides, dtype
            # and flags
            return fused.headers_unchanged(
                values + grad_values, self.ids, self.records, self.scratch
            )
        return (
            all(map(operator.is_, values, self.params))
            and all(map(operator.is_, grad_values, self.grads))
            and list(map(_meta, values)) == self.param_meta
            and list(map(_meta, grad_values)) == self.grad_meta
        )

    def run(self, runner, step: Callable, arguments: dict) -> bool:
        """Check every gradient, then, if all are finite, step every array;
        return whether it stepped.  Nothing is written unless every gradient is
        finite. ``arguments``: the step's keyword arguments for each dtype."""
        # new hyperparameters: round them again
        if arguments is not self._arguments:
            self._constants = [
                fused.constants(step, t.dtype, **arguments[t.dtype])
                for t in self.tables
            ]
            self._arguments = arguments
            table = self.tables[0]
            # one table on one thread: the check and the step are one compiled
            # call, ready to make
            self._one_call = (
                self._kernels.checked_call(
                    table, self._constants[0], 0, table.size
                )
                if len(self.tables) == 1 and runner.threads_for(table.size) == 1
                else None
            )
        if self._one_call is not None:
            loop, args = self._one_call
            return not loop(*args)
        if len(self.tables) == 1:
            return runner.run_checked_segments(
                self._kernels, self.tables[0], self._constants[0]
            )
        if not all(
            runner.all_finite_segments(self._kernels, t) for t in self.tables
        ):
            return False
        for t, c in zip(self.tables, self._constants):
            runner.run_segments(self._kernels, t, c)
        return True
