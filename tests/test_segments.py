"""Many separate arrays in one compiled call (graves.segments), and the thread choice.

The remembered layout of the last call may skip checks only where they would find
the same; every test here changes something between two calls and expects what a
fresh optimizer's checks say: the same error, nothing changed, or the same bits as
the per-key numpy path.  No test times anything.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graves
from graves import blocks, checks, fused, segments
from graves.blocks import BlockRunner

pytestmark = pytest.mark.skipif(not fused.AVAILABLE, reason="numba is not installed")

HYPER = dict(lr=1e-2, alpha=0.95, momentum=0.9, eps=1e-4)
SHAPES = {"conv": (2, 3, 4), "bias": (5,), "empty": (0, 3), "dense": (7, 3), "scale": (1,)}


@pytest.fixture(params=["headers", "attributes"])
def recheck(request, monkeypatch):
    """Run a test with both ways of re-checking a remembered call: numpy's array
    headers read by the compiled loop, and the attributes read one by one."""
    if request.param == "attributes":
        monkeypatch.setattr(fused, "HEADERS_READABLE", False)
    elif not fused.HEADERS_READABLE:
        pytest.skip("this numpy's array headers are not laid out as graves.fused reads them")
    return request.param


def setup(dtype=np.float64, seed=0, shapes=SHAPES, **options):
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    grads = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    opt = graves.RMSpropGraves(**HYPER, **options)
    opt.update(params, grads)
    assert isinstance(opt._last, segments.SegmentCall)
    return params, grads, opt


def snapshot(params, opt):
    # a view of each parameter's memory as it is now, unaffected by later changes to the
    # array object's shape, dtype or strides, and a copy of its values
    return (
        {k: (v.view(), np.array(v, copy=True)) for k, v in params.items()},
        {k: [a.copy() for a in s] for k, s in opt.state.items()},
        opt.step_count,
        opt.skipped_steps,
    )


def assert_unchanged(before, params, opt):
    values, state, steps, skipped = before
    for k, (memory, v) in values.items():
        np.testing.assert_array_equal(memory, v)
    assert (opt.step_count, opt.skipped_steps) == (steps, skipped)
    assert list(opt.state) == list(state)
    for k, s in opt.state.items():
        for a, b in zip(s, state[k]):
            np.testing.assert_array_equal(a, b)


def per_key(params, grad_steps, dtype_of=None, **options):
    """Each key stepped alone, by its own numpy-path optimizer: the per-key result."""
    out = {}
    for k, v in params.items():
        w = np.array(v, copy=True)
        opt = graves.RMSpropGraves(**HYPER, compiled=False, **options)
        for grads in grad_steps:
            opt.update({k: w}, {k: grads[k]})
        out[k] = (w, opt.state[k])
    return out


# -- the same bits as the per-key path ---------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("spread", ["difference", "recursive"])
def test_separate_arrays_equal_the_per_key_result_bitwise(dtype, spread, recheck):
    rng = np.random.default_rng(1)
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    start = {k: v.copy() for k, v in params.items()}
    grads = {k: np.empty(s, dtype) for k, s in SHAPES.items()}
    opt = graves.RMSpropGraves(**HYPER, spread=spread)
    steps = []
    for _ in range(5):
        for k, s in SHAPES.items():  # the same gradient arrays, refilled: the remembered call
            grads[k][...] = rng.standard_normal(s)
        steps.append({k: v.copy() for k, v in grads.items()})
        opt.update(params, grads)
        assert isinstance(opt._last, segments.SegmentCall)
    for k, (w, state) in per_key(start, steps, spread=spread).items():
        np.testing.assert_array_equal(params[k], w)
        for a, b in zip(opt.state[k], state):
            np.testing.assert_array_equal(a, b)


def test_mixed_dtypes_run_one_table_each_with_the_same_bits():
    rng = np.random.default_rng(2)
    dtypes = {"a": np.float32, "b": np.float64, "c": np.float32}
    params = {k: rng.standard_normal(9).astype(d) for k, d in dtypes.items()}
    start = {k: v.copy() for k, v in params.items()}
    steps = [{k: rng.standard_normal(9).astype(d) for k, d in dtypes.items()} for _ in range(3)]
    opt = graves.RMSpropGraves(**HYPER)
    for grads in steps:
        opt.update(params, grads)
    assert sorted(t.dtype.name for t in opt._last.tables) == ["float32", "float64"]
    for k, (w, _) in per_key(start, steps).items():
        np.testing.assert_array_equal(params[k], w)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stretches_cut_inside_arrays_give_the_same_bits(dtype, monkeypatch):
    """Threads split the elements of all arrays wherever the cuts fall."""
    monkeypatch.setattr(blocks, "MIN_ELEMENTS_PER_THREAD", 1)
    shapes = {f"k{i}": (s,) for i, s in enumerate([1, 17, 0, 64, 3, 250, 9])}
    results = []
    for threads in (1, 2, 3, 7):
        params, grads, opt = setup(dtype, seed=3, shapes=shapes, threads=threads)
        grads["k5"][100] = np.nan  # one bad element in the middle of the second stretch
        before = snapshot(params, opt)
        with pytest.raises(FloatingPointError, match="'k5'"):
            opt.update(params, grads)
        assert_unchanged(before, params, opt)
        grads["k5"][100] = 0.5
        opt.update(params, grads)
        results.append(params)
    for other in results[1:]:
        for k in shapes:
            np.testing.assert_array_equal(results[0][k], other[k])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_check_reads_every_chunk_of_every_stretch(dtype):
    """The check reads each stretch in chunks of CHECK_CHUNK elements, last chunk
    first, each chunk as two halves side by side: one bad element on either side
    of every chunk and half-chunk boundary, at the ends of the arrays and of the
    stretches, is found exactly when it lies in the range of elements asked
    for."""
    chunk = fused.CHECK_CHUNK
    sizes = [2 * chunk + 3, 1, chunk, chunk - 1]
    rng = np.random.default_rng(7)
    grads = [rng.standard_normal(n).astype(dtype) for n in sizes]
    ws = [np.zeros(n, dtype) for n in sizes]
    table = segments.Table.of(ws, grads, (np.zeros(sum(sizes), dtype),) * 3)
    n = table.size
    cuts = [0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk + 3, n - chunk, n - 1, n]
    half = chunk // 2
    near = {0, half - 2, half - 1, half, chunk - 2, chunk - 1, chunk, chunk + 1,
            chunk + half, 2 * chunk, 2 * chunk + 1}
    start = 0
    for g in grads:
        for i in sorted(i for i in near | {g.size - 1} if 0 <= i < g.size):
            kept = g[i]
            g[i] = (np.nan, np.inf, -np.inf)[i % 3]
            at = start + i
            for first in cuts:
                for last in cuts:
                    if first <= last:
                        found = fused.any_nonfinite_segments(table, first, last)
                        assert found == (first <= at < last), (at, first, last)
            g[i] = kept
        start += g.size
    assert not any(fused.any_nonfinite_segments(table, f, l) for f in cuts for l in cuts)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=12),
    dtype=st.sampled_from([np.float32, np.float64]),
    steps=st.integers(1, 4),
    bad=st.one_of(st.none(), st.tuples(st.integers(0, 3), st.integers(0, 11), st.sampled_from([np.nan, np.inf, -np.inf]))),
    seed=st.integers(0, 2**16),
)
def test_any_layout_any_bad_step_equals_the_per_key_path(sizes, dtype, steps, bad, seed):
    """Property: on any list of arrays, each step equals the per-key numpy path bit for
    bit; a non-finite gradient at any step raises and changes nothing."""
    rng = np.random.default_rng(seed)
    params = {f"p{i}": rng.standard_normal(s).astype(dtype) for i, s in enumerate(sizes)}
    twin = {k: v.copy() for k, v in params.items()}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    fast, slow = graves.RMSpropGraves(**HYPER), graves.RMSpropGraves(**HYPER, compiled=False)
    for step in range(steps):
        for g in grads.values():
            g[...] = rng.standard_normal(g.shape)
        key = f"p{bad[1] % len(sizes)}" if bad else None
        if bad and bad[0] == step and grads[key].size:
            grads[key].reshape(-1)[rng.integers(grads[key].size)] = bad[2]
            before = snapshot(params, fast)
            with pytest.raises(FloatingPointError, match=repr(key)):
                fast.update(params, grads)
            assert_unchanged(before, params, fast)
            continue
        fast.update(params, grads)
        slow.update(twin, {k: v.copy() for k, v in grads.items()})
        for k in params:
            np.testing.assert_array_equal(params[k], twin[k])
            for a, b in zip(fast.state[k], slow.state[k]):
                np.testing.assert_array_equal(a, b)


# -- the remembered call never hides a check -----------------------------------------------------


def _set_strides(p, g):  # deprecated in numpy 2.4, still possible
    with pytest.warns(DeprecationWarning):
        p["dense"].strides = (8, 56)


CHANGES = {
    "parameter read-only": (lambda p, g: setattr(p["conv"].flags, "writeable", False), ValueError, "'conv'"),
    "parameter reshaped": (lambda p, g: setattr(p["conv"], "shape", (4, 6)), ValueError, "'conv'"),
    "gradient reshaped": (lambda p, g: setattr(g["dense"], "shape", (3, 7)), ValueError, "'dense'"),
    "parameter dtype": (lambda p, g: setattr(p["bias"], "dtype", np.int64), TypeError, "'bias'"),
    "gradient dtype": (lambda p, g: setattr(g["bias"], "dtype", np.complex64), TypeError, "'bias'"),
    "parameter strides": (_set_strides, None, None),  # a strided parameter is allowed: stepped where it is
    "key removed": (lambda p, g: (p.pop("bias"), g.pop("bias")), ValueError, "'bias'"),
    "key added": (lambda p, g: (p.update(extra=np.zeros(3)), g.update(extra=np.zeros(3))), ValueError, "'extra'"),
    "gradient missing": (lambda p, g: g.pop("bias"), KeyError, "'bias'"),
    "gradient is a parameter": (lambda p, g: g.update(bias=p["scale"]), ValueError, "'bias'"),
    "gradient views a parameter": (lambda p, g: g.update(dense=p["conv"].reshape(-1)[:21].reshape(7, 3)), ValueError, "'dense'"),
    "one array under two keys": (lambda p, g: p.update(scale=p["bias"][:1]), ValueError, "'scale'"),
    "gradient non-finite": (lambda p, g: g["dense"].__setitem__((6, 2), np.inf), FloatingPointError, "'dense'"),
    "gradient subclass non-finite": (
        lambda p, g: g.update(bias=np.ma.masked_array(np.full(5, np.nan)).view(np.ma.MaskedArray)), TypeError, "'bias'"),
}


@pytest.mark.parametrize("name", CHANGES)
def test_changes_between_calls_are_checked_again(name, recheck):
    change, exc, fragment = CHANGES[name]
    params, grads, opt = setup()
    opt.update(params, grads)  # a second call takes the remembered layout
    before = snapshot(params, opt)
    fresh = graves.RMSpropGraves(**HYPER)
    fresh.load_state_dict(opt.state_dict())
    change(params, grads)
    if exc is None:
        twin = {k: np.array(v, copy=True) for k, v in params.items()}
        fresh.update(twin, grads)
        opt.update(params, grads)
        for k in params:
            np.testing.assert_array_equal(params[k], twin[k])
        return
    with pytest.raises(exc, match=fragment):
        opt.update(params, grads)
    if name not in ("key removed", "key added"):  # a fresh optimizer's checks say the same
        with pytest.raises(exc, match=fragment):
            fresh.update(params, grads)
    if name == "parameter read-only":
        params["conv"].flags.writeable = True
    assert_unchanged(before, params, opt)


@pytest.mark.parametrize("what", ["parameter", "gradient"])
def test_a_replaced_array_is_stepped_where_it_now_is(what, recheck):
    params, grads, opt = setup()
    twin = {k: v.copy() for k, v in params.items()}
    ref = graves.RMSpropGraves(**HYPER, compiled=False)
    ref.load_state_dict(opt.state_dict())
    old = params["bias"]
    if what == "parameter":
        params["bias"] = old.copy()
    else:
        grads["bias"] = grads["bias"].copy()
    opt.update(params, grads)
    ref.update(twin, grads)
    if what == "parameter":
        np.testing.assert_array_equal(old, twin["bias"] - (twin["bias"] - old))  # the old array untouched
        assert not np.array_equal(old, params["bias"])
    for k in params:
        np.testing.assert_array_equal(params[k], twin[k])


def test_an_array_whose_data_moved_is_found_again(recheck):
    params, grads, opt = setup()
    twin = {k: v.copy() for k, v in params.items()}
    ref = graves.RMSpropGraves(**HYPER, compiled=False)
    ref.load_state_dict(opt.state_dict())
    g = grads["bias"]
    g.resize(5000, refcheck=False)  # numpy's unchecked resize: the data moves
    g.resize(5, refcheck=False)
    g[...] = 0.25
    opt.update(params, grads)
    ref.update(twin, grads)
    for k in params:
        np.testing.assert_array_equal(params[k], twin[k])


def test_subclasses_and_scalars_take_the_checked_path_each_time():
    class Tagged(np.ndarray):
        pass

    rng = np.random.default_rng(4)
    params = {"a": rng.standard_normal(6).view(Tagged), "b": 0.5}
    grads = {"a": rng.standard_normal(6), "b": 0.1}
    twin = {"a": np.array(params["a"]), "b": 0.5}
    opt, ref = graves.RMSpropGraves(**HYPER), graves.RMSpropGraves(**HYPER, compiled=False)
    for _ in range(3):
        opt.update(params, grads)
        ref.update(twin, grads)
        assert opt._last is None
    np.testing.assert_array_equal(np.asarray(params["a"]), twin["a"])
    assert params["b"] == twin["b"]


def test_nonfinite_skip_changes_nothing_and_counts():
    params, grads, opt = setup(nonfinite="skip")
    opt.update(params, grads)
    before = snapshot(params, opt)
    grads["conv"][0, 0, 0] = np.nan
    opt.update(params, grads)
    values, state, steps, skipped = before
    assert_unchanged((values, state, steps, skipped + 1), params, opt)
    assert opt.step_count == steps


def test_copies_and_pickles_forget_the_remembered_arrays():
    params, grads, opt = setup()
    for other in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert other._last is None
        mine = {k: v.copy() for k, v in params.items()}
        other.update(mine, grads)
        opt_twin = copy.deepcopy(opt)
        theirs = {k: v.copy() for k, v in params.items()}
        opt_twin.update(theirs, grads)
        for k in params:
            np.testing.assert_array_equal(mine[k], theirs[k])


def test_array_headers_read_what_python_reports():
    if not fused.HEADERS_READABLE:
        pytest.skip("this numpy's array headers are not laid out as graves.fused reads them")
    a = np.arange(12.0).reshape(3, 4)[:, 1:]
    ids, records = fused.array_headers([a])
    assert list(records) == [a.__array_interface__["data"][0], 2, id(a.dtype), a.flags.num, 3, 3, *a.strides]
    assert fused.headers_unchanged([a], ids, records, np.empty_like(records))
    b = a.copy()
    assert not fused.headers_unchanged([b], ids, records, np.empty_like(records))


# -- threads --------------------------------------------------------------------------------------


def test_threads_are_bounded_by_the_work():
    """No setting gives a thread fewer than MIN_ELEMENTS_PER_THREAD elements, so that
    no setting makes a small step slow (every setting gives the same bits)."""
    per = blocks.MIN_ELEMENTS_PER_THREAD
    for requested in (1, 2, 3, 4, blocks.MAX_THREADS):
        runner = BlockRunner(threads=requested)
        for size in (0, 1, 10, per - 1):
            assert runner.threads_for(size) == 1
        for size in (per, 2 * per, 3 * per + 1, 10**9):
            assert runner.threads_for(size) == min(requested, size // per)
    auto = BlockRunner()
    assert auto.threads_for(10) == 1
    assert auto.threads_for(10**8) == blocks.default_threads(10**8)
    opt = graves.RMSpropGraves(threads=blocks.MAX_THREADS)
    assert opt._runner.threads_for(10) == 1


@pytest.mark.parametrize("value, exc", [(20_000, ValueError), (0, ValueError), (-1, ValueError), (65, ValueError),
                                        (2.0, TypeError), (True, TypeError), ("many", TypeError), (None, TypeError)])
def test_the_threads_option_names_its_range(value, exc):
    with pytest.raises(exc, match=r"threads must be 'auto' or an integer from 1 to 64"):
        graves.RMSpropGraves(threads=value)
    assert checks.thread_count("threads", 64, 64) == 64 and checks.thread_count("threads", "auto", 64) == "auto"


def test_a_mapping_that_hands_out_new_gradients_is_never_remembered():
    """The table reads the very arrays the checks passed: a mapping that returns a new array
    on every access gets the per-key path, with the same bits."""

    class Fresh(dict):
        def __getitem__(self, key):
            return np.array(dict.__getitem__(self, key))  # a new array each time

    rng = np.random.default_rng(5)
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    twin = {k: v.copy() for k, v in params.items()}
    plain = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    opt, ref = graves.RMSpropGraves(**HYPER), graves.RMSpropGraves(**HYPER, compiled=False)
    for _ in range(2):
        opt.update(params, Fresh(plain))
        ref.update(twin, plain)
        assert not isinstance(opt._last, segments.SegmentCall)
    for k in params:
        np.testing.assert_array_equal(params[k], twin[k])
