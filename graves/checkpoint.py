"""Checkpoints: an optimizer as a flat dict of plain data, and as an ``.npz`` file.

Layout of a state dict (every value an array, a number or a string)::

    format          "graves-checkpoint/1"
    optimizer       the class's registered name, e.g. "RMSpropGraves"
    hp/<name>       each hyperparameter
    nonfinite       "raise" or "skip"
    spread          "recursive" when the state holds s = n - g² instead of n; absent
                    otherwise, so that such checkpoints stay readable by versions
                    of graves without the option (absent means "difference")
    step_count      steps applied
    skipped_steps   steps skipped for non-finite gradients
    keys            the parameter names, in order
    state/<field>/<key>  one array per state field and parameter
"""

from __future__ import annotations

import os
import secrets
import zipfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .core import SPREAD_STATES

if TYPE_CHECKING:
    from .optimizers import Optimizer

FORMAT = "graves-checkpoint/1"
_COUNTERS = ("step_count", "skipped_steps")


def to_plain(opt: "Optimizer") -> dict[str, Any]:
    d: dict[str, Any] = {"format": FORMAT, "optimizer": opt.name}
    for name, value in opt.hyperparameters().items():
        d[f"hp/{name}"] = value
    d["nonfinite"] = opt.nonfinite
    if getattr(opt, "spread", "difference") != "difference":  # the state holds s = n - g², not n
        d["spread"] = opt.spread
    d["step_count"] = opt.step_count
    d["skipped_steps"] = opt.skipped_steps
    d["keys"] = np.array(list(opt.state), dtype=str)
    for key, state in opt.state.items():
        for field, array in zip(state._fields, state):
            d[f"state/{field}/{key}"] = array.copy()
    return d


def scalar_entry(d: Mapping, entry: str) -> Any:
    """The scalar ``d[entry]`` (a 0-d array is unwrapped); a clear error if missing or not a scalar."""
    if entry not in d:
        raise ValueError(f"state dict has no entry {entry!r}")
    value = d[entry]
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise ValueError(f"state dict entry {entry!r} must be a scalar, got an array of shape {value.shape}")
        value = value.item()
    return value


def _counter(d: Mapping, entry: str) -> int:
    value = scalar_entry(d, entry)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"state dict entry {entry!r} must be a non-negative integer, got {value!r}")
    return int(value)


def saved_spread(opt: "Optimizer", d: Mapping) -> str | None:
    """The spread ``d`` was saved with, for an optimizer that has the option (else None).

    Checkpoints written before the option existed hold n: they mean "difference".
    """
    if getattr(opt, "spread", None) is None:
        return None
    if "spread" not in d:
        return "difference"
    spread = scalar_entry(d, "spread")
    if not isinstance(spread, str) or spread not in SPREAD_STATES:
        raise ValueError(f"state dict entry 'spread' must be one of {list(SPREAD_STATES)}, got {spread!r}")
    return str(spread)


def restore(opt: "Optimizer", d: Any) -> None:
    """Check ``d`` against ``opt`` completely, then load it; on failure ``opt`` is unchanged."""
    if not isinstance(d, Mapping):
        raise TypeError(f"a state dict must be a dict, got {type(d).__name__}")
    fmt = scalar_entry(d, "format")
    if fmt != FORMAT:
        raise ValueError(f"state dict has format {fmt!r}; expected {FORMAT!r}")
    owner = scalar_entry(d, "optimizer")
    if owner != opt.name:
        raise ValueError(f"this state belongs to a {owner!r} optimizer, not to {opt.name!r}")

    descriptors = {name: getattr(type(opt), name) for name in opt.hyperparameter_names}
    hyper = {name: descriptors[name].check(f"hp/{name}", scalar_entry(d, f"hp/{name}")) for name in descriptors}
    nonfinite = type(opt).nonfinite.check("nonfinite", scalar_entry(d, "nonfinite"))
    counters = {name: _counter(d, name) for name in _COUNTERS}
    spread = saved_spread(opt, d)  # adopted, like the hyperparameters

    if "keys" not in d:
        raise ValueError("state dict has no entry 'keys'")
    keys = np.asarray(d["keys"])
    if keys.ndim != 1 or (keys.size and keys.dtype.kind != "U"):
        raise ValueError(f"state dict entry 'keys' must be a 1-D array of names, got {keys.dtype}{list(keys.shape)}")
    keys = [str(k) for k in keys]
    if len(set(keys)) != len(keys):
        raise ValueError("state dict entry 'keys' names a parameter twice")

    State = opt.State if spread is None else SPREAD_STATES[spread]
    fields = State._fields
    state = {}
    for key in keys:
        arrays = []
        for field in fields:
            entry = f"state/{field}/{key}"
            if entry not in d:
                raise ValueError(f"state dict has no entry {entry!r}; a {opt.name} state needs {list(fields)} per parameter")
            a = d[entry]
            if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
                raise ValueError(f"state dict entry {entry!r} must be a float array, got {type(a).__name__}"
                                 + (f" of dtype {a.dtype}" if isinstance(a, np.ndarray) else ""))
            first = arrays[0] if arrays else a
            if a.shape != first.shape or a.dtype != first.dtype:
                raise ValueError(
                    f"state dict entry {entry!r} is {a.dtype}{list(a.shape)}, but "
                    f"'state/{fields[0]}/{key}' is {first.dtype}{list(first.shape)}"
                )
            arrays.append(np.array(a, copy=True, order="C"))
        state[key] = State(*arrays)

    known = {"format", "optimizer", "nonfinite", "keys", *_COUNTERS} | ({"spread"} if spread else set())
    known |= {f"hp/{n}" for n in descriptors}
    known |= {f"state/{f}/{k}" for f in fields for k in keys}
    extra = sorted(set(d) - known)
    if extra:
        raise ValueError(f"state dict has unexpected entries {extra[:5]}; is it from another optimizer or version?")

    # everything is checked: now commit
    for name, value in hyper.items():
        setattr(opt, name, value)
    opt.nonfinite = nonfinite
    if spread is not None:
        opt._set_spread(spread)
    opt._state = state
    opt.step_count = counters["step_count"]
    opt.skipped_steps = counters["skipped_steps"]


def save(opt: "Optimizer", path) -> None:
    """Write a temporary file beside ``path``, then rename it over ``path``.

    A rename within one directory is atomic, so a crash mid-save leaves either
    the old checkpoint or the new one, never a torn file; the temporary file is
    removed on any error.  The file is created with mode ``0o666`` less the
    umask, as ``open`` would (``tempfile.mkstemp`` would make it private).
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"could not create a temporary file beside {path!r}")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **opt.state_dict())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def from_plain(d: Mapping) -> "Optimizer":
    """A new optimizer of the class named in the state dict ``d``, with its state."""
    from .optimizers import registry

    owner = scalar_entry(d, "optimizer")
    classes = registry()
    if not isinstance(owner, str) or owner not in classes:
        raise ValueError(f"state dict entry 'optimizer' is {owner!r}; expected one of {sorted(classes)}")
    cls = classes[owner]
    hyper = {name: getattr(cls, name).check(f"hp/{name}", scalar_entry(d, f"hp/{name}")) for name in cls.hyperparameter_names}
    opt = cls.from_hyperparameters(hyper)
    opt.load_state_dict(d)
    return opt


def load(path) -> "Optimizer":
    """The optimizer saved at ``path``, with its hyperparameters and state.

    A missing file raises ``FileNotFoundError`` (as ``open`` would); a file that
    is not a valid checkpoint raises ``ValueError`` or ``TypeError`` naming it.
    """
    name = os.fspath(path)
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not an .npz archive")
        with archive:
            d = {entry: archive[entry] for entry in archive.files}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise  # the file system's own message names the path
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{name!r} is not a readable graves checkpoint: {exc}") from exc
    if "optimizer" not in d:
        raise ValueError(f"{name!r} is not a graves checkpoint: it has no entry 'optimizer' (entries: {sorted(d)[:5]})")
    try:
        return from_plain(d)
    except (ValueError, TypeError) as exc:
        kind = TypeError if isinstance(exc, TypeError) else ValueError
        raise kind(f"{name!r} is not a valid graves checkpoint: {exc}") from exc
