"""graves: Graves' centered RMSprop (arXiv:1308.0850, eqs. 38-41), derived and
built.

``graves.core`` holds the formulas as pure in-place functions on flat arrays;
``graves.optimizers`` wraps them in classes with a dict interface and
checkpoints; ``graves.frameworks`` builds each library's centered RMSprop
from the same core.  See the book for the derivations.
"""

from . import core
from .display import show_source
from .checkpoint import load
from .optimizers import SGD, Optimizer, RMSprop, RMSpropGraves
from . import frameworks  # after optimizers: its classes subclass Optimizer

__all__ = [
    "core",
    "frameworks",
    "load",
    "show_source",
    "Optimizer",
    "SGD",
    "RMSprop",
    "RMSpropGraves",
]
__version__ = "0.1.0"
