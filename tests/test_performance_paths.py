"""The fast paths of chapter 11 compute what the plain equations compute.

Blocks, threads and packed buffers only change how the elementwise step is
scheduled, so each must agree with the reference transcription to rounding,
and with each other bit for bit.  Timings are measured by benchmarks/, never
asserted here.
"""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graves
from graves import blocks, core, fused, packing, segments
from graves.blocks import BlockRunner

HYPER = dict(lr=1e-2, alpha=0.95, momentum=0.9, eps=1e-4)
DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-12, np.float32: 2e-5}


@pytest.fixture(autouse=True)
def small_stretches(monkeypatch):
    """Let small arrays run on several threads, as large ones do, so that these tests
    reach the threaded code (graves.blocks bounds threads by the work)."""
    monkeypatch.setattr(blocks, "MIN_ELEMENTS_PER_THREAD", 1)


def reference_steps(w, grads, lr, alpha, momentum, eps):
    """Graves' eqs. 38-41 typed in, one new array per operation, in w's dtype."""
    w = w.copy()
    n, g, delta = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    dt = w.dtype.type
    lr, alpha, momentum, eps = dt(lr), dt(alpha), dt(momentum), dt(eps)
    for grad in grads:
        n = alpha * n + (1 - alpha) * grad**2
        g = alpha * g + (1 - alpha) * grad
        delta = momentum * delta - lr * grad / np.sqrt(n - g**2 + eps)
        w = w + delta
    return w, (n, g, delta)


def gradients(rng, shape, dtype, steps=4):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size, block_size, threads", [(1, 4, 1), (7, 3, 2), (1000, 64, 3), (2**16 + 3, 2**12, 2), (12_345, 2**16, "auto")])
def test_update_matches_reference(dtype, size, block_size, threads):
    rng = np.random.default_rng(size)
    w0 = rng.standard_normal(size).astype(dtype)
    grads = gradients(rng, size, dtype)
    expected, expected_state = reference_steps(w0, grads, **HYPER)
    opt = graves.RMSpropGraves(**HYPER, block_size=block_size, threads=threads)
    w = w0.copy()
    for grad in grads:
        opt.update({"w": w}, {"w": grad})
    # near zero, w is a difference of O(1) numbers: allow a few ulps of that scale
    np.testing.assert_allclose(w, expected, rtol=RTOL[dtype], atol=8 * np.finfo(dtype).eps * np.abs(w0).max())
    for got, want in zip(opt.state["w"], expected_state):
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=8 * np.finfo(dtype).eps * np.abs(want).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_and_blocks_are_bitwise_equal(dtype):
    """Any partition into blocks, on any number of threads, gives the same bits."""
    rng = np.random.default_rng(1)
    size = 3 * 2**12 + 17  # not a multiple of any block size below
    w0 = rng.standard_normal(size).astype(dtype)
    grads = gradients(rng, size, dtype)
    results = []
    for block_size, threads in [(size, 1), (2**10, 1), (999, 2), (2**10, 3), (7, 4), (2**12, "auto")]:
        opt = graves.RMSpropGraves(**HYPER, block_size=block_size, threads=threads)
        w = w0.copy()
        for grad in grads:
            opt.update({"w": w}, {"w": grad})
        results.append((w, opt.state["w"]))
    for w, state in results[1:]:
        np.testing.assert_array_equal(w, results[0][0])
        for a, b in zip(state, results[0][1]):
            np.testing.assert_array_equal(a, b)


def test_default_threads_on_a_large_array_is_bitwise_equal_to_one_thread():
    size = blocks.MIN_PARALLEL_SIZE + 12_345
    rng = np.random.default_rng(2)
    w0 = rng.standard_normal(size)
    grads = gradients(rng, size, np.float64, steps=2)
    w_auto, w_one = w0.copy(), w0.copy()
    auto, one = graves.RMSpropGraves(**HYPER), graves.RMSpropGraves(**HYPER, threads=1)
    for grad in grads:
        auto.update({"w": w_auto}, {"w": grad})
        one.update({"w": w_one}, {"w": grad})
    np.testing.assert_array_equal(w_auto, w_one)


SHAPES = {"embed": (13, 7), "bias": (5,), "scale": (), "conv": (2, 3, 4), "empty": (0, 3), "last": (11,)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("compiled", [True, False])
def test_packed_views_equal_separate_arrays_bitwise(dtype, threads, compiled):
    rng = np.random.default_rng(3)
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    separate = {k: v.copy() for k, v in params.items()}
    flat, packed = packing.pack(params)
    grad_flat, packed_grads = packing.zeros_like(packed)
    a = graves.RMSpropGraves(**HYPER, block_size=16, threads=threads, compiled=compiled)
    b = graves.RMSpropGraves(**HYPER, block_size=5, threads=threads, compiled=compiled)
    for _ in range(4):
        grads = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
        a.update(separate, grads)
        for k in grads:
            packed_grads[k][...] = grads[k]
        b.update(packed, packed_grads)
        # each took the path under test
        if compiled and fused.AVAILABLE:  # one table; the packed views merge into one segment
            assert isinstance(a._last, segments.SegmentCall) and isinstance(b._last, segments.SegmentCall)
            assert b._last.tables[0].w_at.size == 1
            assert a._last.tables[0].w_at.size == sum(1 for s in SHAPES.values() if np.prod(s))  # empty: none
        else:
            assert isinstance(b._last, packing.PackedCall) and a._last is None
    for k in SHAPES:
        assert packed[k].shape == SHAPES[k]
        np.testing.assert_array_equal(packed[k], separate[k])
        for x, y in zip(a.state[k], b.state[k]):
            np.testing.assert_array_equal(x, y)
    assert np.shares_memory(flat, packed["conv"])
    assert a.step_count == b.step_count == 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_inputs_equal_contiguous_bitwise(dtype):
    rng = np.random.default_rng(4)
    base = rng.standard_normal((6, 10)).astype(dtype)
    strided = {"t": np.asfortranarray(base), "s": base.copy()[:, ::2]}
    contiguous = {k: np.ascontiguousarray(v) for k, v in strided.items()}
    a = graves.RMSpropGraves(**HYPER, block_size=7, threads=2)
    b = graves.RMSpropGraves(**HYPER, block_size=7, threads=2)
    for _ in range(3):
        g = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in strided.items()}
        g_strided = {k: np.asfortranarray(v) for k, v in g.items()}
        a.update(strided, g_strided)
        b.update(contiguous, g)
    for k in strided:
        np.testing.assert_array_equal(strided[k], contiguous[k])


def packed_setup(dtype=np.float64, **options):
    rng = np.random.default_rng(5)
    flat, params = packing.pack({k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()})
    grad_flat, grads = packing.zeros_like(params)
    grad_flat[:] = rng.standard_normal(grad_flat.size)
    opt = graves.RMSpropGraves(**HYPER, **options)
    opt.update(params, grads)
    assert opt._last is not None
    return flat, params, grad_flat, grads, opt


def snapshot(flat, opt):
    return flat.copy(), {k: [a.copy() for a in s] for k, s in opt.state.items()}, opt.step_count


def assert_unchanged(before, flat, opt):
    flat0, state0, steps0 = before
    np.testing.assert_array_equal(flat, flat0)
    assert opt.step_count == steps0
    for k, s in opt.state.items():
        for a, b in zip(s, state0[k]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_packed_nonfinite_gradient_raises_and_changes_nothing(bad):
    flat, params, grad_flat, grads, opt = packed_setup()
    before = snapshot(flat, opt)
    grads["conv"][1, 2, 3] = bad
    with pytest.raises(FloatingPointError, match="'conv'"):
        opt.update(params, grads)
    assert_unchanged(before, flat, opt)


def test_packed_nonfinite_gradient_is_skipped_on_request():
    flat, params, grad_flat, grads, opt = packed_setup(nonfinite="skip")
    before = snapshot(flat, opt)
    grads["bias"][0] = np.nan
    opt.update(params, grads)
    assert_unchanged(before, flat, opt)
    assert opt.skipped_steps == 1


def test_packed_sum_overflow_is_not_mistaken_for_nonfinite():
    """Finite gradients whose sum overflows take the exact check and step as the per-key path does."""
    flat, params, grad_flat, grads, opt = packed_setup()
    separate = {k: v.copy() for k, v in params.items()}
    twin = graves.RMSpropGraves(**HYPER)
    twin.load_state_dict(opt.state_dict())
    grad_flat[:] = 1e307  # sum overflows; the step itself overflows too (grad**2), as it must
    with np.errstate(all="ignore"):
        opt.update(params, grads)
        twin.update(separate, {k: v.copy() for k, v in grads.items()})
    assert opt.step_count == twin.step_count == 2
    for k in SHAPES:
        np.testing.assert_array_equal(params[k], separate[k])


@pytest.mark.parametrize(
    "change, exc",
    [
        (lambda p, g: setattr(p["conv"].flags, "writeable", False), ValueError),
        (lambda p, g: setattr(p["conv"], "shape", (4, 6)), ValueError),
        (lambda p, g: setattr(g["conv"], "shape", (6, 4)), ValueError),
        (lambda p, g: setattr(p["bias"], "dtype", np.int64), TypeError),
        (lambda p, g: g.pop("bias"), KeyError),
        (lambda p, g: p.update(extra=np.zeros(3)), (KeyError, ValueError)),
    ],
)
def test_packed_arrays_changed_in_place_are_checked_again(change, exc):
    """The remembered layout never hides a check the per-key path would make."""
    flat, params, grad_flat, grads, opt = packed_setup()
    before = snapshot(flat, opt)
    change(params, grads)
    with pytest.raises(exc):
        opt.update(params, grads)
    assert_unchanged(before, flat, opt)


def restride(a, strides):
    """Give the existing array ``a`` new strides in place, as numpy still allows
    (deprecated since numpy 2.4)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            a.strides = strides
        except AttributeError:
            pytest.skip("this numpy no longer sets strides in place")


@settings(max_examples=30, deadline=None)
@given(
    key=st.sampled_from(["embed", "conv"]),
    what=st.sampled_from(["parameter", "gradient"]),
    order=st.sampled_from(["reversed", "rotated"]),
    dtype=st.sampled_from([np.float64, np.float16]),
    compiled=st.booleans(),
)
def test_packed_arrays_restrided_in_place_are_stepped_as_a_fresh_check_would(
    key, what, order, dtype, compiled
):
    """Strides can change on an existing array: the same memory, read in
    another order.  The remembered layout must then give what a fresh
    optimizer gives on the arrays as they now read."""
    flat, params, grad_flat, grads, opt = packed_setup(dtype, compiled=compiled)
    fresh = graves.RMSpropGraves(**HYPER, compiled=compiled)
    fresh.load_state_dict(opt.state_dict())
    target = (params if what == "parameter" else grads)[key]
    axes = np.arange(target.ndim)
    axes = axes[::-1] if order == "reversed" else np.roll(axes, 1)
    # the strides of a C-contiguous array of the permuted shape, seen in the
    # original shape: the same elements in another order
    permuted = np.empty(np.take(target.shape, axes), dtype).transpose(np.argsort(axes))
    restride(target, permuted.strides)
    twin = {k: v.copy() for k, v in params.items()}
    twin_grads = {k: v.copy() for k, v in grads.items()}
    with np.errstate(all="ignore"):
        fresh.update(twin, twin_grads)
        opt.update(params, grads)
    for k in SHAPES:
        np.testing.assert_array_equal(params[k], twin[k], err_msg=k)
        for x, y in zip(opt.state[k], fresh.state[k]):
            np.testing.assert_array_equal(x, y, err_msg=k)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
@pytest.mark.parametrize("compiled", [True, False])
def test_views_of_a_buffer_made_read_only_afterwards_step_as_separate_arrays(dtype, compiled):
    """numpy keeps a view writable when its base is made read-only later.  The
    parameters are then writable arrays, and every path steps them as the
    per-key path does, through the views (a new view of the buffer would be
    read-only)."""
    rng = np.random.default_rng(6)
    flat, params = packing.pack({k: rng.standard_normal(s) for k, s in SHAPES.items()}, dtype)
    grad_flat, grads = packing.zeros_like(params)
    grad_flat[:] = rng.standard_normal(grad_flat.size)
    separate = {k: v.copy() for k, v in params.items()}
    flat.flags.writeable = False
    opt = graves.RMSpropGraves(**HYPER, compiled=compiled)
    ref = graves.RMSpropGraves(**HYPER, compiled=compiled)
    for _ in range(2):
        opt.update(params, grads)
        ref.update(separate, grads)
    for k in SHAPES:
        np.testing.assert_array_equal(params[k], separate[k], err_msg=k)
    assert opt.step_count == 2


@pytest.mark.parametrize("compiled", [True, False])
def test_new_gradient_objects_and_reset_take_the_checked_path(compiled):
    flat, params, grad_flat, grads, opt = packed_setup(compiled=compiled)
    remembered = opt._last
    separate_grads = {k: v.copy() for k, v in grads.items()}
    opt.update(params, separate_grads)  # the gradients are no longer one buffer
    assert opt._last is not remembered
    if compiled and fused.AVAILABLE:  # the compiled kernel takes separate gradients as well
        assert opt._last.grads == list(separate_grads.values())
    else:
        assert opt._last is None
    opt.update(params, grads)
    assert opt._last is not None
    opt.reset()
    assert opt._last is None and opt.state == {}
    opt.update(params, grads)
    assert opt.step_count == 1 and opt._last is not None


def test_state_loaded_from_a_checkpoint_is_packed_again_with_equal_values():
    flat, params, grad_flat, grads, opt = packed_setup()
    twin_flat, twin = packing.pack(params)
    saved = opt.state_dict()
    resumed = graves.RMSpropGraves(**HYPER)
    resumed.load_state_dict(saved)
    opt.update(params, grads)
    resumed.update(twin, grads)
    assert resumed._last is not None
    np.testing.assert_array_equal(flat, twin_flat)
    for k in SHAPES:
        for a, b in zip(opt.state[k], resumed.state[k]):
            np.testing.assert_array_equal(a, b)
    assert resumed.state["conv"].n.shape == SHAPES["conv"]


def test_flat_view_accepts_only_consecutive_views_of_one_buffer():
    flat, views = packing.pack({"a": np.ones((2, 3)), "b": np.arange(4.0), "c": np.float64(2.0)})
    v = list(views.values())
    whole = packing.flat_view(v)
    assert whole is not None and whole.size == flat.size and np.shares_memory(whole, flat)
    np.testing.assert_array_equal(packing.flat_view(v[1:]), [0.0, 1.0, 2.0, 3.0, 2.0])
    assert packing.flat_view(v[::-1]) is None  # out of order
    assert packing.flat_view([v[0], v[2]]) is None  # a gap
    assert packing.flat_view([v[0], np.arange(4.0)]) is None  # another buffer
    assert packing.flat_view([flat[::2]]) is None  # strided
    assert packing.flat_view([flat.view(np.int64)[:3]]) is None  # another dtype than its buffer
    assert packing.flat_view([]) is None
    one = np.ones((3, 4), dtype=np.float32)
    assert np.shares_memory(packing.flat_view([one]), one)


def test_pack_copies_values_and_shapes():
    arrays = {"a": np.arange(6.0).reshape(2, 3), "b": np.array(7.0), "c": np.arange(3, dtype=np.float32)}
    flat, views = packing.pack(arrays)
    assert flat.dtype == np.float64 and flat.size == 10
    for k, a in arrays.items():
        assert views[k].shape == a.shape and not np.shares_memory(views[k], a)
        np.testing.assert_array_equal(views[k], a)
    flat32, views32 = packing.pack(arrays, dtype=np.float32)
    assert flat32.dtype == np.float32 and views32["a"].dtype == np.float32
    gflat, gviews = packing.zeros_like(views)
    assert gflat.shape == flat.shape and not gflat.any() and gviews["a"].shape == (2, 3)
    with pytest.raises(ValueError):
        packing.pack({})


def test_extra_memory_per_step_is_the_block_scratch_at_most():
    size = 2_000_000
    rng = np.random.default_rng(6)
    w, grad = rng.standard_normal(size), rng.standard_normal(size)
    opt = graves.RMSpropGraves(**HYPER)
    opt.update({"w": w}, {"w": grad})  # makes state and scratch
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        opt.update({"w": w}, {"w": grad})
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024, peak  # a step on 16 MB arrays allocates nothing of their size


def test_runner_propagates_errors_from_worker_threads_and_numpy_error_settings():
    w = np.zeros(100)
    state = core.RMSpropState(np.zeros(100))
    for threads in (1, 3):
        runner = BlockRunner(block_size=10, threads=threads)
        with np.errstate(all="raise"), pytest.raises(FloatingPointError):
            runner.run(core.rmsprop_step, w, np.zeros(100), state, lr=1.0, alpha=0.9, eps=0.0)  # 0/0

    def failing(w, grad, state, scratch=None):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        BlockRunner(block_size=10, threads=3).run(failing, w, w, state)


def test_one_shared_pool_and_the_default_thread_choice():
    assert blocks.shared_pool() is blocks.shared_pool()
    assert blocks.default_threads(blocks.MIN_PARALLEL_SIZE - 1) == 1
    assert 1 <= blocks.default_threads(10**8) <= blocks.MAX_DEFAULT_THREADS
    assert BlockRunner(threads=3).threads_for(10) == 3
    with pytest.raises((TypeError, ValueError)):
        graves.RMSpropGraves(threads="many")


# -- a remembered call against a fresh check, under any change between calls ------------------


def _other_view_dtype(a):
    kind = "i" if a.dtype.kind == "f" else "f"
    return np.dtype(f"{kind}{a.dtype.itemsize}")


#: What a caller can do to the arrays and the dicts between two calls, by key
#: (``k``) and another key (``j``).
CHANGES = {
    "nan": lambda o, p, g, k, j: g[k].reshape(-1)[:1].fill(np.nan) if g[k].flags.c_contiguous else None,
    "new gradient": lambda o, p, g, k, j: g.__setitem__(k, g[k].copy()),
    "new parameter": lambda o, p, g, k, j: p.__setitem__(k, p[k].copy()),
    "reordered parameters": lambda o, p, g, k, j: p.__setitem__(k, p.pop(k)),
    "reordered gradients": lambda o, p, g, k, j: g.__setitem__(k, g.pop(k)),
    "read-only": lambda o, p, g, k, j: setattr(p[k].flags, "writeable", False),
    "buffer read-only": lambda o, p, g, k, j: setattr(p[k].base.flags, "writeable", False)
    if isinstance(p[k].base, np.ndarray) and p[k].base.base is None else None,
    "gradient viewed as another dtype": lambda o, p, g, k, j: setattr(g[k], "dtype", _other_view_dtype(g[k])),
    "parameter viewed as another dtype": lambda o, p, g, k, j: setattr(p[k], "dtype", _other_view_dtype(p[k])),
    "gradient reshaped": lambda o, p, g, k, j: setattr(g[k], "shape", (g[k].size,)),
    "parameter reshaped": lambda o, p, g, k, j: setattr(p[k], "shape", (p[k].size,)),
    "parameter restrided": lambda o, p, g, k, j: restride(p[k], p[k].T.copy().T.strides) if p[k].ndim > 1 else None,
    "gradient restrided": lambda o, p, g, k, j: restride(g[k], g[k].T.copy().T.strides) if g[k].ndim > 1 else None,
    "gradient zero strides": lambda o, p, g, k, j: restride(g[k], (0,) * g[k].ndim),
    "key removed": lambda o, p, g, k, j: (p.pop(k), g.pop(k)),
    "gradient is the parameter": lambda o, p, g, k, j: g.__setitem__(k, p[k]),
    "gradient is another's": lambda o, p, g, k, j: g.__setitem__(k, g[j]) if g[j].shape == g[k].shape else None,
    "byte order swapped": lambda o, p, g, k, j: p.__setitem__(k, p[k].byteswap().view(p[k].dtype.newbyteorder())),
    "lr": lambda o, p, g, k, j: setattr(o, "lr", o.lr * 2),
    "eps below float16": lambda o, p, g, k, j: setattr(o, "eps", 1e-9),
    "state dict round trip": lambda o, p, g, k, j: o.load_state_dict(o.state_dict()),
}


def _play(layout, dtype, compiled, script, fresh):
    """Run ``script`` (rounds of changes, each followed by a call); with
    ``fresh``, the optimizer forgets its remembered call before each."""
    rng = np.random.default_rng(7)
    values = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items() if np.prod(s)}
    if layout == "packed":
        _, params = packing.pack(values)
        grad_flat, grads = packing.zeros_like(params)
        grad_flat[:] = rng.standard_normal(grad_flat.size)
    else:
        params, grads = values, {k: rng.standard_normal(v.shape).astype(dtype) for k, v in values.items()}
    opt = graves.RMSpropGraves(**HYPER, compiled=compiled)
    seen = []
    for changes in script:
        for name, k, j in changes:
            if {k, j} <= set(params) & set(grads):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)
                        CHANGES[name](opt, params, grads, k, j)
                except (AttributeError, ValueError):
                    pass  # numpy refused the change itself
        if fresh:
            opt._last = opt._kept_arguments = None
        try:
            with np.errstate(all="ignore"):
                opt.update(params, grads)
            outcome = None
        except Exception as e:  # which of several aliased pairs is named depends on addresses
            outcome = type(e).__name__ if "share memory" in str(e) else f"{type(e).__name__}: {e}"
        seen.append((
            outcome, opt.step_count,
            {k: np.array(v).tobytes() for k, v in params.items()},
            {k: [a.tobytes() for a in s] for k, s in opt.state.items()},
        ))
    return seen


@settings(max_examples=60, deadline=None)
@given(
    layout=st.sampled_from(["packed", "separate"]),
    dtype=st.sampled_from([np.float64, np.float32, np.float16]),
    compiled=st.booleans(),
    script=st.lists(
        st.lists(st.tuples(st.sampled_from(sorted(CHANGES)), st.sampled_from(sorted(SHAPES)),
                           st.sampled_from(sorted(SHAPES))), max_size=3),
        min_size=2, max_size=5,
    ),
)
def test_a_remembered_call_behaves_as_a_fresh_check(layout, dtype, compiled, script):
    """Whatever changes between calls, the call that remembers the last one's
    arrays raises what a fresh check raises and writes the same bits."""
    assert _play(layout, dtype, compiled, script, fresh=False) == _play(layout, dtype, compiled, script, fresh=True)
