"""Checkpoints: resuming is bitwise, the state dict is plain data, saving is atomic."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

import graves

NAMES = ["SGD", "RMSprop", "RMSpropGraves"]
HYPER = {
    "SGD": dict(lr=0.05, momentum=0.9),
    "RMSprop": dict(lr=0.01, alpha=0.9, eps=1e-6),
    "RMSpropGraves": dict(lr=0.01, alpha=0.95, momentum=0.9, eps=1e-4),
}


def frozen(x):
    """A bit-exact, comparable image of a value: Python type, dtype, shape and bytes."""
    if isinstance(x, np.ndarray):
        return ("ndarray", x.dtype.str, x.shape, np.ascontiguousarray(x).tobytes())
    if isinstance(x, np.generic):
        return (type(x).__name__, x.dtype.str, x.tobytes())
    if isinstance(x, float):
        return ("float", x.hex())
    return (type(x).__name__, x)


def frozen_dict(d):
    return {k: frozen(v) for k, v in d.items()}


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "layer/0.weight": rng.normal(size=(4, 3)).astype(dtype),
        "bias": rng.normal(size=5).astype(dtype),
        "big": rng.normal(size=2**14 + 3).astype(dtype),
        "zero_d": np.array(0.5, dtype=dtype),
        "ω": rng.normal(size=(2, 2, 2)).astype(dtype),
        "scalar": 1.5,  # a Python float, replaced in the dict
    }


def grad_at(step, params):
    """The gradient of step ``step``: reproducible from the step number alone."""
    rng = np.random.default_rng(1000 + step)
    out = {}
    for k, v in params.items():
        dtype = np.asarray(v).dtype
        g = 0.3 + rng.normal(size=np.shape(v))
        out[k] = g.astype(dtype) if isinstance(v, np.ndarray) else float(g)
    if step == 3:  # one bad step, skipped under nonfinite="skip"
        out["bias"] = np.full(np.shape(params["bias"]), np.nan, np.asarray(params["bias"]).dtype)
    return out


def copy_params(params):
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in params.items()}


def run(opt, params, steps):
    for step in steps:
        if step == 10:  # a schedule: the checkpoint must carry the current lr
            opt.lr = opt.lr / 2
        opt.update(params, grad_at(step, params))


# --------------------------------------------------------------------------
# Resume: save after k steps, load, continue == uninterrupted, bit for bit
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16], ids=["float64", "float32", "float16"])
@pytest.mark.parametrize("k", [5, 12])
def test_resume_from_file_is_bitwise(tmp_path, name, dtype, k):
    total = 20
    straight = getattr(graves, name)(**HYPER[name], nonfinite="skip")
    params = make_params(dtype)
    run(straight, params, range(total))

    first = getattr(graves, name)(**HYPER[name], nonfinite="skip")
    resumed_params = make_params(dtype)
    run(first, resumed_params, range(k))
    path = tmp_path / "ckpt.npz"
    first.save(path)
    del first
    loaded = graves.load(path)
    assert type(loaded) is getattr(graves, name)
    assert loaded.step_count == k - 1 and loaded.skipped_steps == 1
    assert loaded.nonfinite == "skip"
    run(loaded, resumed_params, range(k, total))

    assert loaded.step_count == straight.step_count == total - 1
    assert loaded.hyperparameters() == straight.hyperparameters()
    assert frozen_dict(resumed_params) == frozen_dict(params)
    assert frozen_dict(loaded.state_dict()) == frozen_dict(straight.state_dict())
    assert type(resumed_params["scalar"]) is float


def swapped(a):
    """``a`` with the other byte order, as a machine of that order stores it."""
    return a.astype(a.dtype.newbyteorder()) if a.dtype.itemsize > 1 else a


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("order", ["checkpoint", "parameters"])
def test_resume_across_byte_orders_is_bitwise(tmp_path, name, dtype, compiled, order):
    """An .npz file keeps each array's byte order: a checkpoint written on a
    big-endian machine holds big-endian state, and parameters may be
    big-endian arrays here.  Resuming equals the uninterrupted run either way."""
    k, total = 5, 12
    straight = getattr(graves, name)(**HYPER[name], nonfinite="skip", compiled=compiled)
    params = make_params(dtype)
    run(straight, params, range(total))

    first = getattr(graves, name)(**HYPER[name], nonfinite="skip", compiled=compiled)
    resumed_params = make_params(dtype)
    if order == "parameters":  # the run keeps its parameters in the other order
        resumed_params = {k_: swapped(v) if isinstance(v, np.ndarray) else v for k_, v in resumed_params.items()}
    run(first, resumed_params, range(k))
    saved = first.state_dict()
    if order == "checkpoint":  # written on a machine of the other order
        saved = {k_: swapped(v) if isinstance(v, np.ndarray) else v for k_, v in saved.items()}
    path = tmp_path / "ckpt.npz"
    np.savez(path, **saved)
    loaded = graves.load(path)
    if order == "parameters":  # and resumes with native ones
        resumed_params = {k_: v.astype(dtype) if isinstance(v, np.ndarray) else v for k_, v in resumed_params.items()}
    run(loaded, resumed_params, range(k, total))
    assert loaded.step_count == straight.step_count
    assert frozen_dict(resumed_params) == frozen_dict(params)
    for key, state in straight.state.items():
        for a, b in zip(loaded.state[key], state):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name):
    opt = getattr(graves, name)(**HYPER[name], nonfinite="skip")
    params = make_params(np.float64)
    run(opt, params, range(12))
    d = opt.state_dict()

    twin = getattr(graves, name)(lr=0.123)  # other hyperparameters: all are restored
    twin.load_state_dict(d)
    assert frozen_dict(twin.state_dict()) == frozen_dict(d)
    assert repr(twin) == repr(opt)

    # both dicts are copies: changing them afterwards touches neither optimizer
    for v in d.values():
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            v[...] = 7.0
    assert frozen_dict(twin.state_dict()) == frozen_dict(opt.state_dict())
    assert not any(np.all(a == 7.0) for s in opt.state.values() for a in s)

    twin_params = copy_params(params)
    run(opt, params, range(12, 16))
    run(twin, twin_params, range(12, 16))
    assert frozen_dict(twin_params) == frozen_dict(params)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_is_plain_data_savable_without_pickle(name):
    opt = getattr(graves, name)(**HYPER[name], nonfinite="skip")
    params = make_params(np.float32)
    run(opt, params, range(4))
    d = opt.state_dict()
    plain = (np.ndarray, int, float, str, np.number, np.str_)
    for key, value in d.items():
        assert isinstance(key, str)
        assert isinstance(value, plain) and not isinstance(value, bool), (key, type(value))
        if isinstance(value, np.ndarray):
            assert value.dtype.kind in "fiuU", (key, value.dtype)

    buf = io.BytesIO()
    np.savez(buf, **d)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(d)
        fresh = getattr(graves, name)(**HYPER[name])  # nonfinite="raise": restored too
        fresh.load_state_dict(archive)  # an NpzFile is a mapping too
    assert frozen_dict(fresh.state_dict()) == frozen_dict(d)
    for k, s in fresh.state.items():
        for a in s:  # the Python float "scalar" has float64 state
            assert a.dtype == (np.float64 if k == "scalar" else np.float32)


def test_fresh_optimizer_checkpoint_round_trips(tmp_path):
    opt = graves.RMSpropGraves(lr=3e-4)
    opt.save(tmp_path / "empty.npz")
    loaded = graves.load(tmp_path / "empty.npz")
    assert loaded.state == {} and loaded.step_count == 0 and loaded.lr == 3e-4
    params = {"w": np.ones(3)}
    loaded.update(params, {"w": np.ones(3)})
    assert loaded.step_count == 1


def test_save_writes_exactly_the_given_path(tmp_path):
    """np.savez would append '.npz' to a name without it; save must not."""
    opt, params = graves.SGD(lr=0.1), {"w": np.ones(2)}
    opt.update(params, {"w": np.ones(2)})
    opt.save(tmp_path / "checkpoint")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]
    assert graves.load(tmp_path / "checkpoint").step_count == 1
    opt.save(str(tmp_path / "checkpoint"))  # str paths too; overwriting is fine
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]


def test_saved_file_mode_follows_the_umask(tmp_path):
    """Like open(): 0o666 less the umask (a private 0o600 temp file would surprise)."""
    umask = os.umask(0o022)
    try:
        graves.SGD(lr=0.1).save(tmp_path / "c.npz")
        mode = os.stat(tmp_path / "c.npz").st_mode & 0o777
    finally:
        os.umask(umask)
    assert mode == 0o644


# --------------------------------------------------------------------------
# Atomic save: a crash mid-save leaves the old file and no temporary file
# --------------------------------------------------------------------------


def trained_and_saved(path):
    opt = graves.RMSpropGraves(**HYPER["RMSpropGraves"], nonfinite="skip")
    params = make_params(np.float64)
    run(opt, params, range(3))
    opt.save(path)
    run(opt, params, range(3, 6))  # the in-memory state moves on (step 3 is skipped)
    return opt


def crash_in_savez(exc):
    real = np.savez

    def savez(file, *args, **kwargs):
        real(file, *args, **kwargs)  # write it all, then half of it again, then die
        file.write(b"\0" * 100)
        raise exc

    return savez


CRASHES = [
    ("savez-oserror", "savez", OSError("disk full")),
    ("savez-interrupt", "savez", KeyboardInterrupt()),
    ("replace-oserror", "replace", OSError("rename failed")),
    ("fsync-oserror", "fsync", OSError("I/O error")),
]


@pytest.mark.parametrize("case, target, exc", CRASHES, ids=[c[0] for c in CRASHES])
def test_crash_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, case, target, exc):
    path = tmp_path / "ckpt.npz"
    opt = trained_and_saved(path)
    old_bytes = path.read_bytes()
    old_state = frozen_dict(graves.load(path).state_dict())

    def fail(*args, **kwargs):
        raise exc

    if target == "savez":
        monkeypatch.setattr(np, "savez", crash_in_savez(exc))
    else:
        monkeypatch.setattr(os, target, fail)
    with pytest.raises(type(exc)):
        opt.save(path)
    monkeypatch.undo()

    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"], "no temporary file may remain"
    assert path.read_bytes() == old_bytes
    assert frozen_dict(graves.load(path).state_dict()) == old_state
    assert graves.load(path).step_count == 3

    opt.save(path)  # and a later save succeeds
    assert graves.load(path).step_count == 5


def test_crash_on_first_save_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "savez", crash_in_savez(OSError("disk full")))
    with pytest.raises(OSError):
        graves.SGD(lr=0.1).save(tmp_path / "ckpt.npz")
    assert os.listdir(tmp_path) == []


def test_save_into_a_missing_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        graves.SGD(lr=0.1).save(tmp_path / "missing" / "ckpt.npz")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------
# reset()
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_reset_forgets_state_but_keeps_hyperparameters(name):
    opt = getattr(graves, name)(**HYPER[name], nonfinite="skip")
    params = make_params(np.float64)
    run(opt, params, range(12))
    assert opt.state and opt.step_count and opt.skipped_steps
    hyper = opt.hyperparameters()
    opt.reset()
    assert opt.state == {} and opt.step_count == 0 and opt.skipped_steps == 0
    assert opt.hyperparameters() == hyper and opt.nonfinite == "skip"
    assert list(opt.state_dict()["keys"]) == []

    # the next step is a first step: bitwise what a fresh optimizer does
    fresh = getattr(graves, name)(**hyper)
    fresh_params = copy_params(params)
    grads = grad_at(0, params)
    opt.update(params, grads)
    fresh.update(fresh_params, grads)
    assert frozen_dict(params) == frozen_dict(fresh_params)
    assert frozen_dict(opt.state_dict() | {"nonfinite": "raise"}) == frozen_dict(fresh.state_dict())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_resume_of_a_run_on_views_of_one_buffer_is_bitwise(tmp_path, name, dtype):
    """Parameters and gradients as consecutive views of one buffer, gradients
    refilled in place: the layout an optimizer may run over in one pass."""
    shapes = {"w": (6, 5), "b": (5,), "big": (2**14 + 1,)}
    sizes = {k: int(np.prod(s)) for k, s in shapes.items()}
    total = sum(sizes.values())

    def setup():
        w_buf = np.random.default_rng(0).normal(size=total).astype(dtype)
        g_buf = np.zeros(total, dtype)
        params, grads, start = {}, {}, 0
        for k, s in shapes.items():
            params[k] = w_buf[start : start + sizes[k]].reshape(s)
            grads[k] = g_buf[start : start + sizes[k]].reshape(s)
            start += sizes[k]
        return params, grads, g_buf

    def steps(opt, params, grads, g_buf, span):
        for t in span:
            g_buf[...] = np.random.default_rng(t).normal(size=total) + 0.2
            opt.update(params, grads)

    straight = getattr(graves, name)(**HYPER[name])
    params, grads, g_buf = setup()
    steps(straight, params, grads, g_buf, range(10))

    first = getattr(graves, name)(**HYPER[name])
    r_params, r_grads, r_buf = setup()
    steps(first, r_params, r_grads, r_buf, range(4))
    first.save(tmp_path / "c.npz")
    loaded = graves.load(tmp_path / "c.npz")
    steps(loaded, r_params, r_grads, r_buf, range(4, 10))
    assert frozen_dict(r_params) == frozen_dict(params)
    assert frozen_dict(loaded.state_dict()) == frozen_dict(straight.state_dict())


def test_unusual_parameter_names_survive_a_checkpoint(tmp_path):
    """Entry names are 'state/<field>/<key>': slashes, dots, spaces, non-ASCII
    and empty names in keys must come back exactly."""
    keys = ["", "a.npy", "x/../y", " ", "tab\there", "état", "n" * 300]
    opt = graves.RMSpropGraves()
    params = {k: np.full(2, float(i)) for i, k in enumerate(keys)}
    opt.update(params, {k: np.ones(2) for k in keys})
    opt.save(tmp_path / "odd.npz")
    loaded = graves.load(tmp_path / "odd.npz")
    assert list(loaded.state) == keys
    assert frozen_dict(loaded.state_dict()) == frozen_dict(opt.state_dict())
