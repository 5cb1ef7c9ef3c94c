"""IPython startup file of the portability check: every float a numpy Generator returns is
moved by one unit in the last place (towards zero), so the initial weights and the data of
every chapter differ from the stored run's by one ulp.

A number that survives this, numpy limited to its baseline instructions and one BLAS thread
does not depend on the last bits of the machine that computed it.  Only
``tests/portability/run.py`` installs this file; a chapter never reads it.
"""

import functools

import numpy as np
import numpy.random

_Generator = numpy.random.Generator
_default_rng = numpy.random.default_rng
# Methods that return no random floats of their own, or hand out generators.
_UNCHANGED = {"bit_generator", "spawn", "shuffle", "permuted", "integers", "__init__"}


def nudge(x):
    """``x`` moved by one ulp towards zero if it is a float or a float array (zero stays)."""
    if isinstance(x, float):
        return float(np.nextafter(x, 0.0))
    if isinstance(x, np.ndarray) and x.dtype.kind in "fc":
        # out= keeps a 0-d array a 0-d array (a ufunc alone would return a numpy scalar, which a
        # chapter could not update in place)
        if x.dtype.kind == "c":
            out = np.empty_like(x)
            out.real, out.imag = nudge(x.real), nudge(x.imag)
            return out
        return np.nextafter(x, x.dtype.type(0), out=np.empty_like(x))
    if isinstance(x, np.floating):
        return x.dtype.type(np.nextafter(x, x.dtype.type(0)))
    return x


def _nudged(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        return nudge(method(self, *args, **kwargs))

    return wrapper


class NudgedGenerator(_Generator):
    """numpy's Generator with every float it returns moved by one ulp."""

    def spawn(self, n_children):
        return [NudgedGenerator(g.bit_generator) for g in super().spawn(n_children)]


for _name in dir(_Generator):
    if not _name.startswith("_") and _name not in _UNCHANGED and callable(getattr(_Generator, _name)):
        setattr(NudgedGenerator, _name, _nudged(getattr(_Generator, _name)))


def nudged_default_rng(seed=None):
    if isinstance(seed, NudgedGenerator):
        return seed
    return NudgedGenerator(_default_rng(seed).bit_generator)


numpy.random.Generator = NudgedGenerator
numpy.random.default_rng = nudged_default_rng
