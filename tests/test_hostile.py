"""The package's promises under hostile input.

Each group below holds a promise: a call that raises changes nothing; aliased
memory is refused; gradients of the wrong kind are refused; every checkpoint
``save`` writes, ``load`` reads back, and crafted files are refused cheaply;
error messages stay short; concurrent use is detected; the library presets keep
their own names, refuse typos, and freeze parameters on request.
"""

from __future__ import annotations

import copy
import io
import os
import pickle
import subprocess
import sys
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graves
from graves import blocks, checkpoint, checks, frameworks

NAMES = ["SGD", "RMSprop", "RMSpropGraves"]
HYPER = {"SGD": dict(lr=0.1, momentum=0.9), "RMSprop": dict(lr=0.01), "RMSpropGraves": dict(lr=0.01)}


def make(name, **options):
    return getattr(graves, name)(**HYPER[name], **options)


def snapshot(opt, params):
    state = {k: [a.copy() for a in s] for k, s in opt.state.items()}
    return (
        {k: np.array(v, copy=True) for k, v in params.items()},
        state,
        opt.step_count,
        opt.skipped_steps,
    )


def assert_unchanged(before, opt, params):
    values, state, steps, skipped = before
    assert opt.step_count == steps and opt.skipped_steps == skipped
    assert set(opt.state) == set(state)
    for k, arrays in state.items():
        for a, b in zip(opt.state[k], arrays):
            assert np.array_equal(a, b, equal_nan=True)
    for k, v in values.items():
        assert np.array_equal(np.asarray(params[k]), v, equal_nan=True)


def two_keys(dtype_b=np.float32):
    rng = np.random.default_rng(1)
    params = {"a": rng.normal(size=(5, 3)), "b": rng.normal(size=7).astype(dtype_b)}
    grads = {"a": rng.normal(size=(5, 3)), "b": rng.normal(size=7).astype(dtype_b)}
    return params, grads


# -- 1. a call that raises changes nothing -------------------------------------------------


@pytest.mark.parametrize("option, value", [("block_size", 2**40), ("threads", 10**6), ("block_size", 2**27)])
def test_run_options_are_bounded(option, value):
    with pytest.raises(ValueError, match=option):
        graves.RMSpropGraves(**{option: value})
    with pytest.raises(ValueError, match=option):
        frameworks.make("torch", **{option: value})


def test_largest_block_size_runs_small_arrays():
    opt = graves.RMSpropGraves(block_size=blocks.MAX_BLOCK_SIZE, compiled=False)
    params, grads = two_keys()
    opt.update(params, grads)
    # scratch is sized to the arrays, not to the block size
    assert all(s.shape[1] <= 15 for s in opt._runner._scratch.values())


@pytest.mark.parametrize("name", NAMES)
def test_allocation_failure_mid_update_changes_nothing(name, monkeypatch):
    # the second key's dtype needs new scratch; it must be allocated before the first write
    opt = make(name, compiled=False)
    params, grads = two_keys()
    before = snapshot(opt, params)
    real = blocks.BlockRunner.scratch

    def scratch(self, thread, dtype, *rest):
        if np.dtype(dtype) == np.float32:
            raise MemoryError("no memory for float32 scratch")
        return real(self, thread, dtype, *rest)

    monkeypatch.setattr(blocks.BlockRunner, "scratch", scratch)
    with pytest.raises(MemoryError):
        opt.update(params, grads)
    assert_unchanged(before, opt, params)
    assert opt.state == {}
    monkeypatch.undo()
    opt.update(params, grads)  # the retry takes exactly one step
    fresh, p2 = make(name, compiled=False), two_keys()[0]
    fresh.update(p2, grads)
    for k in params:
        assert np.array_equal(params[k], p2[k])


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_errstate_of_the_caller_does_not_matter(compiled):
    # eps=0 and a zero gradient make 0/0 inside the step: NaN on both paths, raised on neither
    results = []
    for settings in ({}, {"all": "raise"}, {"over": "raise", "invalid": "raise", "divide": "raise"}):
        opt = graves.RMSpropGraves(lr=0.01, eps=0.0, compiled=compiled)
        params = {"w": np.ones(3), "v": np.full(4, 1e300)}
        grads = {"w": np.array([0.0, 1.0, -1.0]), "v": np.full(4, 1e300)}
        with np.errstate(**settings):
            opt.update(params, grads)
        results.append(params)
    for r in results[1:]:
        for k in r:
            assert np.array_equal(r[k].view(np.uint64), results[0][k].view(np.uint64))
    assert np.isnan(results[0]["w"][0]) and np.isfinite(results[0]["w"][1:]).all()


class Hostile(np.ndarray):
    """An ndarray subclass whose ufuncs and views misbehave."""

    def __array_ufunc__(self, *args, **kwargs):
        raise RuntimeError("Hostile arithmetic")

    def view(self, *args, **kwargs):
        raise RuntimeError("Hostile view")


class Tagged(np.ndarray):
    pass


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("cls", [Hostile, Tagged])
def test_ndarray_subclasses_are_their_base_arrays(compiled, cls):
    rng = np.random.default_rng(2)
    plain = {"w": rng.normal(size=(4, 5)), "b": rng.normal(size=5)}
    odd = {k: np.array(v).view(cls) for k, v in plain.items()}
    grads = {"w": rng.normal(size=(4, 5)), "b": rng.normal(size=5).view(cls)}
    opts = [graves.RMSpropGraves(lr=0.01, compiled=compiled) for _ in range(2)]
    for _ in range(3):
        opts[0].update(plain, {k: np.asarray(v) for k, v in grads.items()})
        opts[1].update(odd, grads)
    for k in plain:
        assert type(odd[k]) is cls
        assert np.array_equal(np.asarray(odd[k]), plain[k])


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_matrix_is_still_refused():
    with pytest.raises(TypeError, match="matrix"):
        graves.SGD(lr=0.1).update({"w": np.matrix(np.ones((2, 2)))}, {"w": np.ones((2, 2))})


@pytest.mark.parametrize("name", NAMES)
def test_interrupt_while_writing_is_detected(name, monkeypatch):
    opt = make(name, compiled=False)
    params, grads = two_keys(np.float64)
    opt.update(params, grads)
    good = opt.state_dict()
    calls = []
    real = blocks.BlockRunner.run

    def run(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(blocks.BlockRunner, "run", run)
    with pytest.raises(KeyboardInterrupt):
        opt.update(params, grads)
    monkeypatch.undo()
    assert opt.step_count == 1  # not counted
    for call in (lambda: opt.update(params, grads), opt.state_dict, lambda: opt.save("never.npz")):
        with pytest.raises(RuntimeError, match="interrupted"):
            call()
    assert not os.path.exists("never.npz")
    opt.load_state_dict(good)  # restoring the checkpoint makes it usable again
    opt.update(params, grads)
    assert opt.step_count == 2


class Refusing(dict):
    """A params mapping whose ``__setitem__`` raises on its ``refuse``-th call
    (counted from 1; 0: never), as a frozen or validating dict may."""

    refuse = 0
    calls = 0

    def __setitem__(self, key, value):
        self.calls += 1
        if self.calls == self.refuse:
            raise ValueError(f"refusing {key!r}")
        super().__setitem__(key, value)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    scalars=st.integers(1, 3),
    refuse=st.integers(1, 3),
    compiled=st.booleans(),
    numpy_scalars=st.booleans(),
)
def test_a_mapping_that_refuses_a_scalar_changes_nothing(name, scalars, refuse, compiled, numpy_scalars):
    """Scalars are replaced in the caller's mapping, which runs the caller's
    code: if it raises, the call changes nothing, like any other that raises,
    and the optimizer stays usable."""
    kind = np.float64 if numpy_scalars else float
    params, grads = two_keys()
    for i in range(scalars):
        params[f"s{i}"], grads[f"s{i}"] = kind(0.25 * i), 0.5
    params = Refusing(params)
    opt, twin = make(name, compiled=compiled), make(name, compiled=compiled)
    opt.update(params, grads)
    twin_params = {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in params.items()}
    twin.load_state_dict(opt.state_dict())
    before = snapshot(opt, params)
    scalar_objects = {k: params[k] for k in params if not isinstance(params[k], np.ndarray)}
    params.calls, params.refuse = 0, refuse
    if refuse <= scalars:
        with pytest.raises(ValueError, match="refusing"):
            opt.update(params, grads)
        assert_unchanged(before, opt, params)
        assert all(params[k] is v for k, v in scalar_objects.items())
        params.refuse = 0
    opt.update(params, grads)  # usable, and takes exactly one step
    twin.update(twin_params, grads)
    assert opt.step_count == twin.step_count == 2
    for k in params:
        assert type(params[k]) is type(twin_params[k])
        assert np.array_equal(params[k], twin_params[k])


# -- 2. aliasing is refused ------------------------------------------------------------------


def aliased_cases():
    buf = np.zeros(10)
    g = np.ones(10)
    yield "same-array", {"a": buf, "b": buf}, {"a": g[:10], "b": g}, ["'a'", "'b'", "share memory"]
    buf = np.zeros(10)
    yield "overlapping-views", {"a": buf[:6], "b": buf[4:]}, {"a": np.ones(6), "b": np.ones(6)}, ["'a'", "'b'"]
    w = np.zeros(10)
    yield "grad-overlaps-its-param", {"w": w[:8]}, {"w": w[2:]}, ["gradient 'w'", "parameter 'w'"]
    w = np.zeros(10)
    yield "grad-is-its-param", {"w": w}, {"w": w}, ["gradient 'w'", "parameter 'w'"]
    w = np.zeros(10)
    yield "grad-overlaps-other-param", {"a": w[:5], "b": np.zeros(3)}, {"a": np.ones(5), "b": w[3:6]}, [
        "gradient 'b'", "parameter 'a'"]
    w = np.zeros(4)
    z = np.lib.stride_tricks.as_strided(w, shape=(3, 4), strides=(0, 8), writeable=True)
    yield "zero-stride", {"z": z}, {"z": np.ones((3, 4))}, ["'z'", "strides"]
    w = np.zeros(12)
    tricky = np.lib.stride_tricks.as_strided(w, shape=(4, 3), strides=(16, 8), writeable=True)
    yield "overlapping-strides", {"t": tricky}, {"t": np.ones((4, 3))}, ["'t'", "strides"]
    raw = bytearray(80)
    x, y = np.frombuffer(raw, dtype=np.float64), np.frombuffer(memoryview(raw)[40:], dtype=np.float64)
    yield "foreign-buffer", {"x": x, "y": y}, {"x": np.ones(10), "y": np.ones(5)}, ["'x'", "'y'"]
    s = np.zeros(3)
    yield "scalar-grad-view", {"s": 0.5, "a": s}, {"s": s[1, ...], "a": np.ones(3)}, ["gradient 's'", "parameter 'a'"]


ALIASED = list(aliased_cases())


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("case, params, grads, fragments", ALIASED, ids=[c[0] for c in ALIASED])
def test_aliasing_is_refused(case, params, grads, fragments, compiled):
    opt = graves.RMSpropGraves(compiled=compiled)
    before = snapshot(opt, params)
    with pytest.raises(ValueError) as info:
        opt.update(params, grads)
    for f in fragments:
        assert f in str(info.value), str(info.value)
    assert_unchanged(before, opt, params)


def test_disjoint_views_and_shared_gradients_are_accepted():
    buf = np.zeros(20)
    g = np.ones(5)
    params = {"a": buf[:5], "b": buf[5:10], "even": buf[10::2], "odd": buf[11::2]}
    grads = {"a": g, "b": g, "even": g, "odd": g}  # one gradient array for every key: it is only read
    graves.SGD(lr=0.1).update(params, grads)
    assert np.allclose(buf, -0.1)


def test_aliasing_check_is_not_quadratic(monkeypatch):
    # 100,000 views of one buffer share an owner: each is compared with its neighbours only
    flat = np.zeros(200_000)
    params = {f"k{i}": flat[2 * i : 2 * i + 2] for i in range(100_000)}
    grads = {k: np.ones(2) for k in params}
    compared = []
    real = checks._share
    monkeypatch.setattr(checks, "_share", lambda a, b: compared.append(1) or real(a, b))
    entries = checks.parameter_entries(params, grads)
    checks.no_aliasing(entries)
    assert len(compared) == 0  # disjoint intervals: the sweep never compares two arrays
    params["dup"] = params["k99999"]
    grads["dup"] = np.ones(2)
    with pytest.raises(ValueError, match="share memory"):
        checks.no_aliasing(checks.parameter_entries(params, grads))
    assert len(compared) == 1


# -- 3. gradients of the wrong kind ---------------------------------------------------------


@pytest.mark.parametrize(
    "grad",
    [np.array([1, 2, 3], dtype="timedelta64[s]"), np.array(["NaT", "NaT", "NaT"], dtype="timedelta64[ns]"),
     np.array(["2020-01-01"] * 3, dtype="datetime64[D]"), np.timedelta64(1, "s")],
    ids=["timedelta", "NaT", "datetime", "timedelta-scalar"],
)
def test_time_gradients_are_refused(grad):
    params = {"w": np.zeros(3) if np.ndim(grad) else 0.0}
    opt = graves.RMSpropGraves()
    with pytest.raises(TypeError, match="gradient 'w'"):
        opt.update(params, {"w": grad})
    assert opt.state == {} and opt.step_count == 0


# -- 4. every checkpoint save() writes, load() reads back -----------------------------------


@pytest.mark.parametrize(
    "key, fragment",
    [("a\x00b", "NUL"), ("trailing\x00", "NUL"), ("lone\ud800", "surrogate"), ("x" * 70_000, "bytes long"),
     ("é" * 40_000, "bytes long")],
    ids=["nul", "trailing-nul", "surrogate", "long", "long-utf8"],
)
def test_keys_a_checkpoint_cannot_store_are_refused_at_update(key, fragment):
    opt = graves.RMSpropGraves()
    params = {"ok": np.zeros(2), key: np.zeros(2)}
    with pytest.raises(ValueError, match=fragment) as info:
        opt.update(params, {k: np.ones(2) for k in params})
    assert len(str(info.value)) < 400
    assert opt.state == {}
    d = graves.RMSpropGraves().state_dict()
    d["keys"] = np.array([key], dtype=str)
    for f in opt.State._fields:
        d[f"state/{f}/{key}"] = np.zeros(2)
    with pytest.raises(ValueError):
        opt.load_state_dict(d)


def test_unusual_keys_round_trip(tmp_path):
    keys = ["α/β", "x.npy", "a/../b", " ", "k" * 60_000, "日本語", "tab\there", "\ud7ff\ue000"]
    opt = graves.RMSpropGraves()
    params = {k: np.arange(3.0) for k in keys}
    opt.update(params, {k: np.ones(3) for k in keys})
    opt.save(tmp_path / "c.npz")
    back = graves.load(tmp_path / "c.npz")
    assert list(back.state) == keys
    for k in keys:
        assert all(np.array_equal(a, b) for a, b in zip(back.state[k], opt.state[k]))


@pytest.mark.parametrize("count", [10**30, 2**63, -1, 2**63 - 1])
def test_counters_are_int64(count, tmp_path):
    opt = graves.RMSpropGraves()
    d = opt.state_dict()
    d["step_count"] = count
    if 0 <= count < 2**63:
        opt.load_state_dict(d)
        opt.save(tmp_path / "c.npz")
        assert graves.load(tmp_path / "c.npz").step_count == count
    else:
        with pytest.raises(ValueError, match="step_count"):
            opt.load_state_dict(d)
        # nor can it be set directly: save could not write what load reads
        with pytest.raises(ValueError, match="step_count"):
            opt.step_count = count
        opt.save(tmp_path / "c.npz")
        assert graves.load(tmp_path / "c.npz").step_count == 0


def test_save_never_pickles(tmp_path, monkeypatch):
    calls = []
    real = np.savez
    monkeypatch.setattr(np, "savez", lambda *a, **k: calls.append(k.get("allow_pickle")) or real(*a, **k))
    graves.RMSpropGraves().save(tmp_path / "c.npz")
    assert calls == [False]


def valid_checkpoint_bytes():
    opt = graves.RMSpropGraves()
    opt.update({"a": np.zeros(4)}, {"a": np.ones(4)})
    buf = io.BytesIO()
    np.savez(buf, **opt.state_dict())
    return buf.getvalue()


def rebuilt(data, replace=None, add=None, compress=zipfile.ZIP_STORED):
    """The checkpoint ``data`` with members replaced or added (name -> raw bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = (replace or {}).get(info.filename, src.read(info))
            dst.writestr(info.filename, body, compress_type=compress)
        for name, body in (add or {}).items():
            dst.writestr(name, body, compress_type=compress)
    return out.getvalue()


def npy_header(shape, dtype=np.float64):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_crafted_header_declaring_terabytes_is_a_value_error(tmp_path):
    path = tmp_path / "crafted.npz"
    data = rebuilt(valid_checkpoint_bytes(), replace={"state/n/a.npy": npy_header((10**12,)) + b"\0" * 32})
    path.write_bytes(data)
    assert len(data) < 4000
    with pytest.raises(ValueError) as info:
        graves.load(path)
    assert str(path) in str(info.value)


def refused_within(path, member: str, budget: int) -> ValueError:
    """The error of graves.load(path), which must name the file and ``member``
    and trace fewer than ``budget`` bytes on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            graves.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value) and member in str(info.value)
    assert peak < budget, f"loading allocated {peak:,} bytes"
    return info.value


@pytest.mark.parametrize("member", ["state/n/not-a-key", "hp/lr", "keys"])
def test_zip_bomb_is_refused_before_inflating(tmp_path, member):
    path = tmp_path / "bomb.npz"
    size = 64 * 2**20
    bomb = npy_header((size // 8,)) + bytes(size)
    if member == "keys":
        bomb = npy_header((size // 400,), "<U100") + bytes(size // 400 * 400)
    name = member + ".npy"
    base = valid_checkpoint_bytes()
    replace, add = ({name: bomb}, None) if member != "state/n/not-a-key" else (None, {name: bomb})
    data = rebuilt(base, replace=replace, add=add, compress=zipfile.ZIP_DEFLATED)
    path.write_bytes(data)
    assert len(data) < size // 100
    refused_within(path, member, size // 8)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_device_is_refused_before_it_is_read(monkeypatch):
    """A device or pipe has no end: zipfile, looking for the directory at the
    end, would read /dev/zero until memory runs out."""
    def read_whole(*args, **kwargs):
        raise AssertionError("load opened a device as a zip archive")

    monkeypatch.setattr(checkpoint.zipfile, "ZipFile", read_whole)
    with pytest.raises(ValueError) as info:
        graves.load("/dev/zero")
    assert "'/dev/zero'" in str(info.value) and "regular file" in str(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    pipe = tmp_path / "ckpt.npz"
    os.mkfifo(pipe)
    code = f"import graves\ntry:\n    graves.load({str(pipe)!r})\nexcept ValueError as e:\n    print(e)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "regular file" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize(
    "member, dtype",
    [("format", f"<U{2**24}"), ("nonfinite", f"<U{2**24}"), ("optimizer", f"<U{2**24}"),
     ("hp/lr", [("a", "<f8", (2**23,))]), ("keys", f"<U{2**24}")],
)
def test_a_scalar_of_a_huge_dtype_is_refused_before_inflating(tmp_path, member, dtype):
    """A scalar has shape (), but its dtype may declare any size: a string of
    16 Mi characters (64 MiB) deflates to some 64 KiB."""
    path = tmp_path / "bomb.npz"
    size = np.dtype(dtype).itemsize
    bomb = npy_header((1,) if member == "keys" else (), dtype) + bytes(size)
    data = rebuilt(valid_checkpoint_bytes(), replace={member + ".npy": bomb}, compress=zipfile.ZIP_DEFLATED)
    path.write_bytes(data)
    assert len(data) < size // 100
    error = refused_within(path, member, size // 8)
    assert len(str(error)) < 500


def test_member_declaring_other_sizes_than_its_header_is_refused(tmp_path):
    data = valid_checkpoint_bytes()
    name = b"state/n/a.npy"
    at = data.index(b"PK\x01\x02", data.index(name) + 1)  # the central directory starts after the members
    while data[at + 46 : at + 46 + len(name)] != name:
        at = data.index(b"PK\x01\x02", at + 1)
    out = bytearray(data)
    out[at + 24 : at + 28] = (2**31).to_bytes(4, "little")  # declared uncompressed size: 2 GiB
    path = tmp_path / "sizes.npz"
    path.write_bytes(bytes(out))
    with pytest.raises(ValueError) as info:
        graves.load(path)
    assert str(path) in str(info.value)


def test_mixed_type_extra_keys_give_a_clear_error():
    opt = graves.RMSpropGraves()
    d = opt.state_dict()
    d[3] = 1.0
    d["zzz"] = 2.0
    with pytest.raises(TypeError, match="keys must be strings"):
        opt.load_state_dict(d)
    with pytest.raises(TypeError, match="keys must be strings"):
        frameworks.make("torch").load_state_dict({**frameworks.make("torch").state_dict(), 3: 1.0})


@pytest.mark.parametrize("kind", ["str", "bytes", "pathlike"])
def test_save_and_load_accept_the_same_path_types(kind, tmp_path):
    target = tmp_path / "c.npz"
    path = {"str": str(target), "bytes": os.fsencode(target), "pathlike": target}[kind]
    opt = graves.RMSpropGraves(lr=0.01)
    opt.update({"w": np.zeros(3)}, {"w": np.ones(3)})
    opt.save(path)
    assert repr(graves.load(path)) == repr(opt)
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]
    for bad in (3, None, io.BytesIO()):
        with pytest.raises(TypeError):
            opt.save(bad)
        with pytest.raises(TypeError):
            graves.load(bad)


def test_temporary_file_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    target = tmp_path / "c.npz"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    directory, prefix = checkpoint._temporary_prefix(str(target))
    stale = tmp_path / f"{prefix}{dead.pid}.0123456789ab.tmp"
    live = tmp_path / f"{prefix}{os.getppid()}.0123456789ab.tmp"  # a running process: perhaps saving now
    other = tmp_path / ".other.npz.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    graves.RMSpropGraves().save(target)
    assert not stale.exists() and live.exists() and other.exists() and target.exists()


def test_long_file_names_save(tmp_path):
    target = tmp_path / ("c" * 240 + ".npz")
    graves.RMSpropGraves().save(target)
    assert isinstance(graves.load(target), graves.RMSpropGraves)


# -- 5. bounded messages ----------------------------------------------------------------------


def test_messages_stay_short_with_many_keys():
    keys = [f"layer{i}" for i in range(100_000)]
    params = {k: np.zeros(1) for k in keys}
    grads = {k: np.ones(1) for k in keys[:-10]}
    opt = graves.SGD(lr=0.1)
    with pytest.raises(KeyError) as info:
        opt.update(params, grads)
    text = str(info.value)
    assert len(text) < 1000 and "layer99990" in text and "and 99,995 more" in text and "and 5 more" in text
    grads = {k: np.ones(1) for k in keys}
    grads.update({f"extra{i}": np.ones(1) for i in range(50_000)})
    with pytest.raises(KeyError) as info:
        opt.update(params, grads)
    assert len(str(info.value)) < 1000 and "and 49,995 more" in str(info.value)
    opt.update(params, {k: np.ones(1) for k in keys})
    wider = {**params, **{f"new{i}": np.zeros(1) for i in range(100_000)}}
    with pytest.raises(ValueError) as info:
        opt.update(wider, {k: np.ones(1) for k in wider})
    assert len(str(info.value)) < 1000 and "reset()" in str(info.value)


def test_huge_key_names_are_shortened_in_messages():
    key = "k" * 60_000
    with pytest.raises(TypeError) as info:
        graves.SGD(lr=0.1).update({key: "text"}, {key: 1.0})
    assert len(str(info.value)) < 300 and "60,000 characters" in str(info.value)
    with pytest.raises(ValueError) as info:
        graves.SGD(lr=0.1).update({key * 20: np.zeros(1)}, {key * 20: np.ones(1)})
    assert len(str(info.value)) < 300 and "1,200,000 characters" in str(info.value)


# -- 6. concurrency --------------------------------------------------------------------------


@pytest.mark.parametrize("second", ["update", "state_dict", "load_state_dict", "reset", "copy", "deepcopy", "pickle"])
def test_concurrent_use_of_one_optimizer_raises(second, monkeypatch):
    opt = graves.RMSpropGraves(compiled=False)
    params = {"w": np.zeros(8)}
    grads = {"w": np.ones(8)}
    opt.update(params, grads)
    saved = opt.state_dict()
    inside, release = threading.Event(), threading.Event()
    real = blocks.BlockRunner.run

    def run(self, *args, **kwargs):
        inside.set()
        release.wait(10)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(blocks.BlockRunner, "run", run)
    worker = threading.Thread(target=opt.update, args=(params, grads))
    worker.start()
    try:
        assert inside.wait(10)
        # a copy taken now would hold a state half written
        call = {"update": lambda: opt.update(params, grads), "state_dict": opt.state_dict,
                "load_state_dict": lambda: opt.load_state_dict(saved), "reset": opt.reset,
                "copy": lambda: copy.copy(opt), "deepcopy": lambda: copy.deepcopy(opt),
                "pickle": lambda: pickle.dumps(opt)}[second]
        with pytest.raises(RuntimeError, match="another thread"):
            call()
    finally:
        release.set()
        worker.join()
    assert opt.step_count == 2  # the first thread's step went through whole


def test_optimizers_still_copy_and_pickle():
    opt = graves.RMSpropGraves()
    opt.update({"w": np.zeros(3)}, {"w": np.ones(3)})
    for other in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        p = {"w": np.zeros(3)}
        other.update(p, {"w": np.ones(3)})
        assert other.step_count == 2


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_a_copy_holds_its_own_state_and_none_of_the_callers_arrays(how, compiled):
    """A copy is an optimizer of its own (one per thread, say): stepping it
    leaves the original as it was, and neither it nor a pickle holds the
    parameters and gradients of the last call."""
    opt = graves.RMSpropGraves(lr=0.1, compiled=compiled)
    params, grads = {"w": np.zeros(10**5), "s": 0.5}, {"w": np.ones(10**5), "s": 1.0}
    opt.update(params, grads)
    before = snapshot(opt, params)
    other = {"copy": copy.copy, "deepcopy": copy.deepcopy,
             "pickle": lambda o: pickle.loads(pickle.dumps(o))}[how](opt)
    assert other._kept_arguments is None and other._last is None
    other.update({"w": np.zeros(10**5), "s": 0.5}, {"w": np.full(10**5, 3.0), "s": 2.0})
    assert_unchanged(before, opt, params)
    state_bytes = sum(a.nbytes for s in opt.state.values() for a in s)
    assert len(pickle.dumps(opt)) < state_bytes + 10_000


# -- 7. presets: names, typos, frozen parameters -----------------------------------------------


@pytest.mark.parametrize(
    "name, kw, library_name, graves_name",
    [("optax", dict(learning_rate=1e-3), "learning_rate", "lr"), ("optax", dict(learning_rate=1e-3), "decay", "alpha"),
     ("keras", {}, "learning_rate", "lr"), ("keras", {}, "rho", "alpha"), ("keras", {}, "epsilon", "eps"),
     ("tf1", dict(learning_rate=1e-3), "learning_rate", "lr"), ("tf1", dict(learning_rate=1e-3), "decay", "alpha"),
     ("keras2", {}, "learning_rate", "lr"), ("torch", {}, "lr", "lr")],
)
def test_hyperparameters_settable_under_the_library_names(name, kw, library_name, graves_name):
    opt = frameworks.make(name, **kw)
    setattr(opt, library_name, 0.5)
    assert getattr(opt, graves_name) == 0.5 and getattr(opt, library_name) == 0.5
    assert f"{library_name}=0.5" in repr(opt)
    with pytest.raises(ValueError, match=graves_name):
        setattr(opt, library_name, -1.0)
    assert getattr(opt, graves_name) == 0.5


def test_a_schedule_in_the_library_names_applies():
    lrs = [1e-3 * (1 + t) for t in range(5)]
    runs = []
    for attribute in ("lr", "learning_rate"):
        opt = frameworks.make("optax", learning_rate=1.0, momentum=0.9)
        p = {"w": np.zeros(3)}
        for lr in lrs:
            setattr(opt, attribute, lr)
            opt.update(p, {"w": np.array([1.0, -2.0, 0.5])})
        runs.append(p["w"])
    assert np.array_equal(*runs)


@pytest.mark.parametrize("make_opt", [lambda: graves.RMSpropGraves(), lambda: graves.SGD(lr=0.1),
                                      lambda: frameworks.make("optax", learning_rate=0.1), lambda: frameworks.make("keras")])
def test_unknown_attributes_raise(make_opt):
    opt = make_opt()
    for typo in ("learnin_rate", "lrr", "momentun", "Lr"):
        with pytest.raises(AttributeError, match=typo):
            setattr(opt, typo, 1.0)
        assert not hasattr(opt, typo)
    opt.nonfinite = "skip"
    opt.missing_grads = "skip"
    opt.step_count = opt.step_count


def test_variant_keywords_are_read_only():
    opt = frameworks.make("torch", centered=True)
    with pytest.raises(AttributeError, match="fixed when the optimizer is built"):
        opt.centered = False
    assert opt.variant.centered


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("packed", [False, True], ids=["separate", "packed"])
def test_frozen_parameters_with_missing_grads_skip(name, packed):
    rng = np.random.default_rng(4)
    start = {"a": rng.normal(size=6), "frozen": rng.normal(size=(2, 3)), "c": rng.normal(size=4)}
    if packed:
        _, params = graves.packing.pack(start)
    else:
        params = {k: v.copy() for k, v in start.items()}
    grads_all = [{k: rng.normal(size=np.shape(v)) for k, v in start.items()} for _ in range(4)]
    opt = make(name, missing_grads="skip")
    reference = make(name)
    ref_params = {k: v.copy() for k, v in start.items() if k != "frozen"}
    for g in grads_all[:3]:
        partial = {k: v for k, v in g.items() if k != "frozen"}
        opt.update(params, partial)
        reference.update(ref_params, partial)
    assert np.array_equal(params["frozen"], start["frozen"])  # the parameter is untouched
    assert "frozen" not in opt.state  # and has no state yet
    for k in ref_params:
        assert np.array_equal(params[k], ref_params[k])
    before = {k: [a.copy() for a in s] for k, s in opt.state.items()}
    opt.update(params, {"frozen": grads_all[3]["frozen"]})  # unfreeze one, freeze the others
    assert "frozen" in opt.state
    for k in ("a", "c"):
        assert all(np.array_equal(x, y) for x, y in zip(opt.state[k], before[k]))
    assert not np.array_equal(params["frozen"], start["frozen"])
    with pytest.raises(KeyError, match="missing_grads='skip'"):
        make(name).update(params, {"a": np.ones(6)})  # "raise" is the default


def test_frozen_parameters_in_checkpoints(tmp_path):
    opt = frameworks.make("torch", momentum=0.9, centered=True, missing_grads="skip")
    params = {"a": np.zeros(3), "b": np.zeros(2)}
    opt.update(params, {"a": np.ones(3)})
    opt.save(tmp_path / "c.npz")
    back = graves.load(tmp_path / "c.npz")
    assert list(back.state) == ["a"] and back.missing_grads == "raise"
    back.missing_grads = "skip"
    back.update({k: v.copy() for k, v in params.items()}, {"a": np.ones(3)})
