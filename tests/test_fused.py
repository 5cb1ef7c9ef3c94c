"""The compiled one-pass kernel (graves.fused) gives the numpy core's bits.

The kernel is a second transcription of eqs. 38-41, kept only for speed; these
tests are what allow it to exist: on any input where it runs, it must agree
with graves.core.graves_step bit for bit, or the package would have two
different answers depending on whether numba is installed.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graves
from graves import blocks, core, fused
from graves.blocks import BlockRunner

needs_numba = pytest.mark.skipif(not fused.AVAILABLE, reason="numba is not installed")


@pytest.fixture(autouse=True)
def small_stretches(monkeypatch):
    """Let small arrays run on several threads, as large ones do, so that these tests
    reach the threaded code (graves.blocks bounds threads by the work)."""
    monkeypatch.setattr(blocks, "MIN_ELEMENTS_PER_THREAD", 1)


def run_both(w0, grads, hyper, **options):
    """Trajectories of the compiled and the numpy path from the same start."""
    out = []
    for compiled in (True, False):
        opt = graves.RMSpropGraves(**hyper, compiled=compiled, **options)
        w = w0.copy()
        for grad in grads:
            opt.update({"w": w}, {"w": grad})
        out.append((w, opt.state["w"]))
    return out


@needs_numba
@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    size=st.integers(1, 3000),
    steps=st.integers(1, 12),
    scale=st.sampled_from([1e-6, 1e-2, 1.0, 1e3]),
    lr=st.floats(1e-6, 1e-1),
    alpha=st.floats(0.0, 0.999),
    momentum=st.floats(0.0, 0.99),
    eps=st.sampled_from([0.0, 1e-8, 1e-4, 1e-1]),
    seed=st.integers(0, 2**32 - 1),
)
def test_compiled_path_gives_the_numpy_path_bits(dtype, size, steps, scale, lr, alpha, momentum, eps, seed):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(size).astype(dtype)
    # a common mean plus noise, so that n - g² is sometimes tiny and the root sensitive
    grads = [(scale * (1.0 + 0.1 * rng.standard_normal(size))).astype(dtype) for _ in range(steps)]
    hyper = dict(lr=lr, alpha=alpha, momentum=momentum, eps=eps)
    with np.errstate(all="ignore"):  # eps = 0 may divide by a zero spread: both paths must give the same inf/NaN
        (w_c, s_c), (w_n, s_n) = run_both(w0, grads, hyper)
    np.testing.assert_array_equal(w_c, w_n)
    for a, b in zip(s_c, s_n):
        np.testing.assert_array_equal(a, b)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads_and_odd_sizes_give_the_same_bits(dtype, threads):
    rng = np.random.default_rng(7)
    size = 2**17 + 13  # above the one-thread limit, not a multiple of anything
    w0 = rng.standard_normal(size).astype(dtype)
    grads = [rng.standard_normal(size).astype(dtype) for _ in range(3)]
    (w_c, s_c), (w_n, s_n) = run_both(w0, grads, {}, threads=threads)
    np.testing.assert_array_equal(w_c, w_n)
    for a, b in zip(s_c, s_n):
        np.testing.assert_array_equal(a, b)


@needs_numba
def test_strided_inputs_match_the_core_function():
    rng = np.random.default_rng(3)
    size = 1001
    base = rng.standard_normal((5, 2 * size))
    w_c, w_n = base[0, ::2].copy(), base[0, ::2].copy()
    grad = base[1, ::2]  # a strided view: the kernel must not assume contiguity
    states = [core.CenteredState(*(np.zeros(size) for _ in range(3))) for _ in range(2)]
    hyper = dict(lr=1e-3, alpha=0.95, momentum=0.9, eps=1e-4)
    for _ in range(4):
        fused.graves_step(w_c, grad, states[0], **hyper)
        core.graves_step(w_n, grad, states[1], **hyper)
    np.testing.assert_array_equal(w_c, w_n)


def test_kernel_is_offered_only_where_it_is_exact():
    assert fused.kernel_for(core.graves_step, np.float16) is None
    assert fused.kernel_for(core.rmsprop_step, np.float64) is None
    assert fused.kernel_for(core.centered_rmsprop_step, np.float64) is None
    expected = fused.graves_step if fused.AVAILABLE else None
    assert fused.kernel_for(core.graves_step, np.float64) is expected


def test_numpy_path_runs_when_compiled_kernels_are_missing(monkeypatch):
    # what a machine without numba does: the runner falls back to the blocked core
    calls = []
    runner = BlockRunner(block_size=64, threads=1, compiled=True)
    w = np.ones(100)
    state = core.CenteredState(*(np.zeros(100) for _ in range(3)))

    def spy(*args, **kwargs):
        calls.append(kwargs["scratch"].shape)
        core.graves_step(*args, **kwargs)

    if fused.AVAILABLE:
        monkeypatch.setattr(fused, "_KERNELS", {spy: fused.graves_step})
        runner.run(spy, w, np.ones(100), state, lr=1e-3, alpha=0.95, momentum=0.9, eps=1e-4)
        assert calls == [], "the kernel must replace the function it is registered for"
        monkeypatch.setattr(fused, "_KERNELS", {})
    runner.run(spy, w, np.ones(100), state, lr=1e-3, alpha=0.95, momentum=0.9, eps=1e-4)
    assert calls == [(2, 64), (2, 36)], "without a kernel the step runs block by block"


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_compiled_must_be_a_bool(bad):
    with pytest.raises(TypeError, match="compiled"):
        graves.RMSpropGraves(compiled=bad)


@needs_numba
@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    size=st.integers(1, 5000),
    bad=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from([np.nan, np.inf, -np.inf])), max_size=4),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_nonfinite_finds_exactly_what_isfinite_rejects(dtype, size, bad, seed):
    # the largest finite values and subnormals must not count: only an all-ones exponent does
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype)
    x = rng.choice(np.array([0.0, -0.0, 1.0, info.max, -info.max, info.tiny / 4, info.eps], dtype=dtype), size)
    for where, value in bad:
        x[int(where * size)] = value
    assert fused.any_nonfinite(x) == (not np.isfinite(x).all())


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_any_nonfinite_reads_both_halves_and_the_odd_last_element(dtype):
    """The check reads an array's two halves side by side, then the element left
    over when the length is odd: a bad element anywhere in a short array of
    either parity is found, and an all-finite one is not."""
    for size in range(1, 10):
        x = np.full(size, -np.finfo(dtype).max, dtype=dtype)
        assert not fused.any_nonfinite(x)
        for position in range(size):
            for value in (np.nan, np.inf, -np.inf):
                y = x.copy()
                y[position] = value
                assert fused.any_nonfinite(y), (size, position, value)
    assert not fused.any_nonfinite(np.empty(0, dtype))


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 3])
def test_compiled_finiteness_check_finds_a_single_bad_element(dtype, threads):
    runner = BlockRunner(block_size=16, threads=threads, compiled=True)
    x = np.full(1001, np.finfo(dtype).max, dtype=dtype)  # a sum would overflow; the count must not care
    assert runner.all_finite(x)
    for position in (0, 500, 1000):
        y = x.copy()
        y[position] = np.nan
        assert not runner.all_finite(y)


@pytest.mark.parametrize("compiled", [True, False])
def test_nonfinite_gradient_in_a_large_array_is_caught_on_both_paths(compiled):
    opt = graves.RMSpropGraves(compiled=compiled, threads=2, block_size=64)
    w = np.zeros(10_000)
    grad = np.ones(10_000)
    grad[7_777] = -np.inf
    with pytest.raises(FloatingPointError, match="'w'"):
        opt.update({"w": w}, {"w": grad})
    assert not w.any() and opt.state == {}
