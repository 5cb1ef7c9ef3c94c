"""Checkpoints: an optimizer as a flat dict of plain data, and as an ``.npz``
file.

Layout of a state dict (every value an array, a number or a string)::

    format          "graves-checkpoint/1"
    optimizer       the class's registered name, e.g. "RMSpropGraves"
    hp/<name>       each hyperparameter
    nonfinite       "raise" or "skip"
    spread          "recursive" when the state holds s = n - g² instead of n;
                    absent otherwise, so that such checkpoints stay readable by
                    versions of graves without the option (absent means
                    "difference")
    step_count      steps applied
    skipped_steps   steps skipped for non-finite gradients
    keys            the parameter names, in order
    state/<field>/<key>  one array per state field and parameter
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import stat
import zipfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .core import SPREAD_STATES
from . import checks

if TYPE_CHECKING:
    from .optimizers import Optimizer

FORMAT = "graves-checkpoint/1"
_COUNTERS = ("step_count", "skipped_steps")


def to_plain(opt: "Optimizer") -> dict[str, Any]:
    d: dict[str, Any] = {"format": FORMAT, "optimizer": opt.name}
    for name, value in opt.hyperparameters().items():
        d[f"hp/{name}"] = value
    d["nonfinite"] = opt.nonfinite
    # the state holds s = n - g², not n
    if getattr(opt, "spread", "difference") != "difference":
        d["spread"] = opt.spread
    for name in _COUNTERS:
        # checked: it must fit an int64
        d[name] = _counter({name: getattr(opt, name)}, name)
    d["keys"] = np.array(list(opt.state), dtype=str)
    for key, state in opt.state.items():
        for field, array in zip(state._fields, state):
            d[f"state/{field}/{key}"] = array.copy()
    return d


def scalar_entry(d: Mapping, entry: str) -> Any:
    """The scalar ``d[entry]`` (a 0-d array is unwrapped); a clear error if
    missing or not a scalar."""
    if entry not in d:
        raise ValueError(f"state dict has no entry {entry!r}")
    value = d[entry]
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise ValueError(
                f"state dict entry {entry!r} must be a scalar, got an array of "
                f"shape {value.shape}"
            )
        value = value.item()
    return value


def _counter(d: Mapping, entry: str) -> int:
    # an int64, so that every checkpoint stores it as a plain integer array
    return checks.counter(f"state dict entry {entry!r}", scalar_entry(d, entry))


def saved_spread(opt: "Optimizer", d: Mapping) -> str | None:
    """The spread ``d`` was saved with, for an optimizer that has the option
    (else None).

    Checkpoints written before the option existed hold n: they mean
    "difference".
    """
    if getattr(opt, "spread", None) is None:
        return None
    if "spread" not in d:
        return "difference"
    spread = scalar_entry(d, "spread")
    if not isinstance(spread, str) or spread not in SPREAD_STATES:
        raise ValueError(
            f"state dict entry 'spread' must be one of {list(SPREAD_STATES)}, "
            f"got {spread!r}"
        )
    return str(spread)


def restore(opt: "Optimizer", d: Any) -> None:
    """Check ``d`` against ``opt`` completely, then load it; on failure ``opt``
    is unchanged."""
    if not isinstance(d, Mapping):
        raise TypeError(f"a state dict must be a dict, got {type(d).__name__}")
    odd = [k for k in d if not isinstance(k, str)]
    if odd:
        raise TypeError(
            f"state dict keys must be strings, got {checks.shown(odd[0])} of "
            f"type {type(odd[0]).__name__}"
        )
    fmt = scalar_entry(d, "format")
    if fmt != FORMAT:
        raise ValueError(f"state dict has format {fmt!r}; expected {FORMAT!r}")
    owner = scalar_entry(d, "optimizer")
    if owner != opt.name:
        raise ValueError(
            f"this state belongs to a {owner!r} optimizer, not to {opt.name!r}"
        )

    descriptors = {
        name: getattr(type(opt), name) for name in opt.hyperparameter_names
    }
    hyper = {
        name: descriptors[name].check(
            f"hp/{name}", scalar_entry(d, f"hp/{name}")
        )
        for name in descriptors
    }
    nonfinite = type(opt).nonfinite.check(
        "nonfinite", scalar_entry(d, "nonfinite")
    )
    counters = {name: _counter(d, name) for name in _COUNTERS}
    spread = saved_spread(opt, d)  # adopted, like the hyperparameters

    if "keys" not in d:
        raise ValueError("state dict has no entry 'keys'")
    keys = np.asarray(d["keys"])
    if keys.ndim != 1 or (keys.size and keys.dtype.kind != "U"):
        raise ValueError(
            "state dict entry 'keys' must be a 1-D array of names, got "
            f"{keys.dtype}{list(keys.shape)}"
        )
    keys = [str(k) for k in keys]
    if len(set(keys)) != len(keys):
        raise ValueError("state dict entry 'keys' names a parameter twice")
    for key in keys:
        checks.parameter_name(key)

    State = opt.State if spread is None else SPREAD_STATES[spread]
    fields = State._fields
    state = {}
    for key in keys:
        arrays = []
        for field in fields:
            entry = f"state/{field}/{key}"
            if entry not in d:
                raise ValueError(
                    f"state dict has no entry {checks.shown(entry)}; a "
                    f"{opt.name} state needs {list(fields)} per parameter"
                )
            a = d[entry]
            if not isinstance(a, np.ndarray) or not np.issubdtype(
                a.dtype, np.floating
            ):
                raise ValueError(
                    f"state dict entry {checks.shown(entry)} must be a float "
                    f"array, got {type(a).__name__}"
                    + (
                        f" of dtype {a.dtype}"
                        if isinstance(a, np.ndarray)
                        else ""
                    )
                )
            first = arrays[0] if arrays else a
            if a.shape != first.shape or a.dtype != first.dtype:
                raise ValueError(
                    f"state dict entry {checks.shown(entry)} is "
                    f"{a.dtype}{list(a.shape)}, but "
                    f"{checks.shown(f'state/{fields[0]}/{key}')} is "
                    f"{first.dtype}{list(first.shape)}"
                )
            arrays.append(np.array(a, copy=True, order="C"))
        state[key] = State(*arrays)

    known = {"format", "optimizer", "nonfinite", "keys", *_COUNTERS} | (
        {"spread"} if spread else set()
    )
    known |= {f"hp/{n}" for n in descriptors}
    known |= {f"state/{f}/{k}" for f in fields for k in keys}
    extra = sorted(set(d) - known)
    if extra:
        raise ValueError(
            f"state dict has unexpected entries {checks.listing(extra)}; is it "
            "from another optimizer or version?"
        )

    # everything is checked: now commit
    for name, value in hyper.items():
        setattr(opt, name, value)
    opt.nonfinite = nonfinite
    if spread is not None:
        opt._set_spread(spread)
    opt._state = state
    opt.step_count = counters["step_count"]
    opt.skipped_steps = counters["skipped_steps"]


def _temporary_prefix(path: str) -> tuple[str, str]:
    """``(directory, prefix)`` of the temporary files of saves to ``path`` on
    this machine.

    The name is ``.<name>.<machine>.<pid>.<random>.tmp`` (``<name>`` shortened
    with a hash when long, ``<machine>`` a hash of the host name), so that the
    next save to the same path can tell a file left by a killed save (its
    process no longer runs) from one being written now.
    """
    directory, name = os.path.split(os.path.abspath(path))
    if len(name.encode("utf-8", "surrogateescape")) > 100:
        name = (
            name[:40]
            + "~"
            + hashlib.sha256(
                name.encode("utf-8", "surrogateescape")
            ).hexdigest()[:16]
        )
    machine = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    return directory, f".{name}.{machine}."


def _remove_stale_temporaries(directory: str, prefix: str) -> None:
    """Delete temporary files of earlier saves to the same path by processes of
    this machine that no longer run (a save killed by the operating system
    leaves its file behind)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.[0-9a-f]{12}\.tmp")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(match.group(1)), 0)
            continue  # that process still runs: perhaps it is saving now
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError, OSError):
            # it runs under another user, or the pid is not one: leave it
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def save(opt: "Optimizer", path) -> None:
    """Write a temporary file beside ``path``, then rename it over ``path``.

    A rename within one directory is atomic, so a crash mid-save leaves either
    the old checkpoint or the new one, never a torn file; the temporary file is
    removed on any error, and one left by a save that was killed is removed by
    the next save to the same path (see :func:`_temporary_prefix`).  ``path`` is
    a ``str``, ``bytes`` or ``os.PathLike``, as for :func:`load`.  The file is
    created with mode ``0o666`` less the umask, as ``open`` would
    (``tempfile.mkstemp`` would make it private).  Nothing is pickled.
    """
    path = _path(path)
    state = opt.state_dict()
    directory, prefix = _temporary_prefix(path)
    for _ in range(100):
        tmp = os.path.join(
            directory, f"{prefix}{os.getpid()}.{secrets.token_hex(6)}.tmp"
        )
        try:
            fd = os.open(
                tmp,
                os.O_WRONLY
                | os.O_CREAT
                | os.O_EXCL
                | getattr(os, "O_BINARY", 0),
                0o666,
            )
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(
            f"could not create a temporary file beside {path!r}"
        )
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **state)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _remove_stale_temporaries(directory, prefix)


def _path(path) -> str:
    """``path`` (``str``, ``bytes`` or ``os.PathLike``) as a ``str``; a
    TypeError otherwise."""
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(
            "a checkpoint path must be a str, bytes or os.PathLike, got "
            f"{type(path).__name__}"
        ) from None


def from_plain(d: Mapping) -> "Optimizer":
    """A new optimizer of the class named in the state dict ``d``, with its
    state."""
    from .optimizers import registry

    owner = scalar_entry(d, "optimizer")
    classes = registry()
    if not isinstance(owner, str) or owner not in classes:
        raise ValueError(
            f"state dict entry 'optimizer' is {owner!r}; expected one of "
            f"{sorted(classes)}"
        )
    cls = classes[owner]
    hyper = {
        name: getattr(cls, name).check(
            f"hp/{name}", scalar_entry(d, f"hp/{name}")
        )
        for name in cls.hyperparameter_names
    }
    opt = cls.from_hyperparameters(hyper)
    opt.load_state_dict(d)
    return opt


#: Deflate cannot shrink data more than 1032-fold: a member that declares more
#: is not a real one.
_MAX_DEFLATE_RATIO = 1032


def _headers(
    archive: zipfile.ZipFile,
) -> dict[str, tuple[zipfile.ZipInfo, tuple, np.dtype]]:
    """Each member's ``.npy`` header, checked against the sizes the zip
    directory declares, reading no array data: entry name -> (info, shape,
    dtype)."""
    headers = {}
    for info in archive.infolist():
        if not info.filename.endswith(".npy") or info.filename[:-4] in headers:
            raise ValueError(
                f"member {checks.shown(info.filename)} is not an array of a "
                "checkpoint, or appears twice"
            )
        if info.compress_type == zipfile.ZIP_STORED:
            plausible = info.file_size == info.compress_size
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            plausible = (
                info.file_size <= _MAX_DEFLATE_RATIO * info.compress_size + 1024
            )
        else:
            plausible = False
        if not plausible:
            raise ValueError(
                f"member {checks.shown(info.filename)} declares "
                f"{info.file_size:,} bytes from {info.compress_size:,} "
                "stored ones, which its compression cannot give"
            )
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(
                    f"member {checks.shown(info.filename)} has .npy version "
                    f"{version}"
                )
            offset = f.tell()
        if dtype.hasobject:
            raise ValueError(
                f"member {checks.shown(info.filename)} holds Python objects, "
                "which are never loaded"
            )
        expected = offset + int(np.prod(shape, dtype=object)) * dtype.itemsize
        if expected != info.file_size:
            raise ValueError(
                f"member {checks.shown(info.filename)} declares an array of "
                f"{expected:,} bytes in "
                f"{info.file_size:,} bytes"
            )
        headers[info.filename[:-4]] = (info, shape, dtype)
    return headers


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with archive.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _expected_entries(d_small: Mapping, headers: dict) -> set[str]:
    """The entries a checkpoint of the optimizer named in ``d_small`` may
    hold."""
    from .optimizers import registry

    owner = scalar_entry(d_small, "optimizer")
    classes = registry()
    if not isinstance(owner, str) or owner not in classes:
        raise ValueError(
            f"state dict entry 'optimizer' is {checks.shown(owner)}; expected "
            f"one of {sorted(classes)}"
        )
    cls = classes[owner]
    keys = d_small.get("keys")
    if (
        not isinstance(keys, np.ndarray)
        or keys.ndim != 1
        or (keys.size and keys.dtype.kind != "U")
    ):
        raise ValueError("state dict entry 'keys' must be a 1-D array of names")
    allowed = {"format", "optimizer", "nonfinite", "keys", *_COUNTERS}
    allowed |= {f"hp/{n}" for n in cls.hyperparameter_names}
    allowed |= {f"config/{k}" for k in getattr(cls, "config_checks", {})}
    allowed |= {"spread"}
    fields = {
        f
        for State in (cls.State, *SPREAD_STATES.values())
        for f in State._fields
    }
    allowed |= {f"state/{f}/{k}" for f in fields for k in keys.tolist()}
    unexpected = [name for name in headers if name not in allowed]
    if unexpected:
        raise ValueError(
            f"it has unexpected entries {checks.listing(unexpected)}"
        )
    return allowed


def load(path) -> "Optimizer":
    """The optimizer saved at ``path`` (``str``, ``bytes`` or ``os.PathLike``),
    with its hyperparameters and state.

    Before any array data is read, the zip directory's member names and sizes
    and each array's header are checked against each other and against the
    optimizer's layout, so that a crafted file is refused without allocating
    or inflating what it declares.  Nothing is unpickled.  A missing file raises
    ``FileNotFoundError`` (as ``open`` would); a file that is not a valid
    checkpoint raises ``ValueError`` or ``TypeError`` naming it.
    """
    name = _path(path)
    try:
        # a device or a pipe has no end: zipfile would read it whole, and open
        # would wait for a pipe's writer (a directory: open's own error)
        mode = os.stat(name).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise _NotACheckpoint(
                f"{name!r} is not a graves checkpoint: it is not a regular "
                "file (a device, a pipe or a socket)"
            )
        with open(name, "rb") as f:
            if f.read(6) == b"\x93NUMPY":
                raise ValueError("it holds a single array, not an .npz archive")
            f.seek(0)
            with zipfile.ZipFile(f) as archive:
                members = archive.namelist()
                if "optimizer.npy" not in members:
                    raise _NotACheckpoint(
                        f"{name!r} is not a graves checkpoint: it has no entry "
                        "'optimizer' "
                        f"(members: {checks.listing(sorted(members))})"
                    )
                headers = _headers(archive)
                small = [k for k in headers if not k.startswith("state/")]
                # read only what is small: scalars, and as many names as state
                # arrays
                for k in small:
                    shape = headers[k][1]
                    if k == "keys":
                        if len(shape) != 1 or shape[0] > len(headers) - len(
                            small
                        ):
                            raise ValueError(
                                f"entry 'keys' declares shape {shape} for "
                                f"{len(headers) - len(small):,} state arrays"
                            )
                    elif shape != ():
                        raise ValueError(
                            f"entry {checks.shown(k)} declares shape {shape}; "
                            "expected a scalar"
                        )
                    # a scalar's dtype can declare any size (a string of a
                    # billion characters): a name or a number is short
                    most = 4 * checks.MAX_KEY_BYTES if k == "keys" else 1024
                    if headers[k][2].itemsize > most:
                        raise ValueError(
                            f"entry {checks.shown(k)} declares "
                            f"{headers[k][2].itemsize:,} bytes per element; "
                            f"expected at most {most:,}"
                        )
                d = {k: _read(archive, headers[k][0]) for k in small}
                _expected_entries(d, headers)
                d.update(
                    {
                        k: _read(archive, headers[k][0])
                        for k in headers
                        if k.startswith("state/")
                    }
                )
    except (
        FileNotFoundError,
        IsADirectoryError,
        PermissionError,
        _NotACheckpoint,
    ):
        raise  # the file system's own message names the path
    except (
        OSError,
        ValueError,
        EOFError,
        KeyError,
        zipfile.BadZipFile,
        MemoryError,
        OverflowError,
    ) as exc:
        raise ValueError(
            f"{name!r} is not a readable graves checkpoint: {exc}"
        ) from exc
    try:
        return from_plain(d)
    except (ValueError, TypeError) as exc:
        kind = TypeError if isinstance(exc, TypeError) else ValueError
        raise kind(f"{name!r} is not a valid graves checkpoint: {exc}") from exc


class _NotACheckpoint(ValueError):
    pass
