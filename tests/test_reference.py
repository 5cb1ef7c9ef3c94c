"""The optimizers against independent transcriptions of their equations.

Each reference below is written from the published equations, one tensor at a
time, with plain numpy expressions and fresh temporaries; none of it calls
``graves.core``.  The package must agree with it over 200 steps on several
tensors of different shapes, including a 0-d array and a tensor whose size is
not a multiple of the block size (so the block driver's last, short block is
exercised), and must update non-contiguous arrays in place.
"""

from __future__ import annotations

import numpy as np
import pytest

import graves

# --------------------------------------------------------------------------
# Reference transcriptions (state in, new state out; nothing in place)
# --------------------------------------------------------------------------


def ref_sgd(w, grad, state, *, lr, momentum):
    """Heavy ball with the learning rate inside the velocity: v ← μv − η∇, w ← w + v."""
    (v,) = state
    v_new = momentum * v - lr * grad
    return w + v_new, (v_new,)


def ref_rmsprop(w, grad, state, *, lr, alpha, eps):
    """Uncentered RMSprop, eps inside the root: n ← αn + (1−α)∇², w ← w − η∇/√(n+ε)."""
    (n,) = state
    n_new = alpha * n + (1 - alpha) * grad**2
    return w - lr * grad / np.sqrt(n_new + eps), (n_new,)


def ref_graves(w, grad, state, *, lr, alpha, momentum, eps):
    """Graves (2013), eqs. 38-41, with ρ = alpha, μ = momentum, η = lr, ε = eps."""
    n, g, delta = state
    n_new = alpha * n + (1 - alpha) * grad**2  # (38)
    g_new = alpha * g + (1 - alpha) * grad  # (39)
    delta_new = momentum * delta - lr * grad / np.sqrt(n_new - g_new**2 + eps)  # (40)
    return w + delta_new, (n_new, g_new, delta_new)  # (41)


REFERENCES = {"SGD": (ref_sgd, 1), "RMSprop": (ref_rmsprop, 1), "RMSpropGraves": (ref_graves, 3)}

# An explicit block size, so that BIG below spans several blocks and a short
# last one whatever the package's default block size is.
BLOCK = 2**14
BIG = 3 * BLOCK + 5  # three full blocks and a short one
ONE = dict(block_size=BLOCK, threads=1)

CASES = [
    pytest.param("SGD", dict(lr=0.01, momentum=0.0), ONE, id="sgd"),
    pytest.param("SGD", dict(lr=0.01, momentum=0.9), ONE, id="sgd-momentum"),
    pytest.param("RMSprop", dict(lr=1e-3, alpha=0.9, eps=1e-8), ONE, id="rmsprop"),
    pytest.param("RMSpropGraves", dict(lr=1e-4, alpha=0.95, momentum=0.9, eps=1e-4), ONE, id="graves-defaults"),
    pytest.param("RMSpropGraves", dict(lr=1e-3, alpha=0.8, momentum=0.5, eps=1e-6), ONE, id="graves-other"),
    pytest.param(
        "RMSpropGraves", dict(lr=1e-3, alpha=0.9, momentum=0.9, eps=1e-6), dict(block_size=BLOCK, threads=2), id="graves-2threads"
    ),
    pytest.param("RMSpropGraves", dict(lr=1e-3, alpha=0.9, momentum=0.9, eps=1e-6), {}, id="graves-default-options"),
    # the numpy path, which runs where numba is missing (the default above is compiled where it can be)
    pytest.param(
        "RMSpropGraves", dict(lr=1e-3, alpha=0.9, momentum=0.9, eps=1e-6), dict(ONE, compiled=False), id="graves-numpy"
    ),
    pytest.param(
        "RMSpropGraves",
        dict(lr=1e-3, alpha=0.9, momentum=0.9, eps=1e-6),
        dict(block_size=BLOCK, threads=2, compiled=False),
        id="graves-numpy-2threads",
    ),
]
SHAPES = {"scalar": (), "bias": (7,), "weight": (3, 5), "kernel": (2, 3, 4), "big": (BIG,)}
# per-tensor gradient scale and mean: RMSprop's normalisation and Graves'
# centring only matter when the tensors differ in scale and have a drift
SCALES = {"scalar": 3.0, "bias": 1e-3, "weight": 1.0, "kernel": 10.0, "big": 0.1}


def initial_params(rng, dtype, shapes=SHAPES):
    return {k: rng.normal(size=s).astype(dtype) for k, s in shapes.items()}


def gradients(rng, dtype, shapes=SHAPES):
    return {k: (SCALES.get(k, 1.0) * (0.3 + rng.normal(size=s))).astype(dtype) for k, s in shapes.items()}


def assert_close(actual, desired, rtol, what):
    """Elementwise relative error ≤ rtol, with elements near zero judged against
    the tensor's scale (max |desired|): cancellation in w + Δ or in μΔ − u
    amplifies the relative error of an element that happens to be tiny."""
    desired = np.asarray(desired)
    atol = rtol * float(np.max(np.abs(desired))) if desired.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol, err_msg=what)


def run_both(name, hyper, options, dtype, steps, seed=0, shapes=SHAPES):
    """Run the package and the reference in lockstep on the same data."""
    rng = np.random.default_rng(seed)
    params = initial_params(rng, dtype, shapes)
    ref_w = {k: v.copy() for k, v in params.items()}
    reference, n_fields = REFERENCES[name]
    ref_state = {k: tuple(np.zeros_like(v) for _ in range(n_fields)) for k, v in params.items()}
    opt = getattr(graves, name)(**hyper, **options)
    ids = {k: id(v) for k, v in params.items()}
    for _ in range(steps):
        grads = gradients(rng, dtype, shapes)
        opt.update(params, grads)
        for k in params:
            ref_w[k], ref_state[k] = reference(ref_w[k], grads[k], ref_state[k], **hyper)
    assert {k: id(v) for k, v in params.items()} == ids, "arrays must be updated in place"
    return opt, params, ref_w, ref_state


@pytest.mark.parametrize("name, hyper, options", CASES)
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["float64", "float32"])
def test_matches_reference_over_200_steps(name, hyper, options, dtype, rtol):
    opt, params, ref_w, ref_state = run_both(name, hyper, options, dtype, steps=200)
    assert opt.step_count == 200
    for k in SHAPES:
        assert params[k].dtype == dtype and params[k].shape == SHAPES[k]
        assert_close(params[k], ref_w[k], rtol, f"parameter {k}")
        state = opt.state[k]
        assert len(state) == len(ref_state[k])
        for field, a, b in zip(state._fields, state, ref_state[k]):
            assert a.dtype == dtype and a.shape == SHAPES[k], (k, field)
            assert_close(a, b, rtol, f"state {field} of {k}")
    # the run moved the parameters far beyond the tolerance, so the check has teeth
    rng = np.random.default_rng(0)
    start = initial_params(rng, dtype)
    moved = max(float(np.max(np.abs(params[k] - start[k]))) for k in SHAPES)
    assert moved > 1e3 * rtol * max(float(np.max(np.abs(start[k]))) for k in SHAPES)


# --------------------------------------------------------------------------
# The comparison is sensitive: plausible mistakes do not pass it
# --------------------------------------------------------------------------


def wrong_eps_outside(w, grad, state, *, lr, alpha, momentum, eps):
    n, g, delta = state
    n = alpha * n + (1 - alpha) * grad**2
    g = alpha * g + (1 - alpha) * grad
    delta = momentum * delta - lr * grad / (np.sqrt(n - g**2) + eps)
    return w + delta, (n, g, delta)


def wrong_uncentered(w, grad, state, *, lr, alpha, momentum, eps):
    n, g, delta = state
    n = alpha * n + (1 - alpha) * grad**2
    delta = momentum * delta - lr * grad / np.sqrt(n + eps)
    return w + delta, (n, g, delta)


def wrong_decay_swapped(w, grad, state, *, lr, alpha, momentum, eps):
    n, g, delta = state
    n = (1 - alpha) * n + alpha * grad**2
    g = (1 - alpha) * g + alpha * grad
    delta = momentum * delta - lr * grad / np.sqrt(n - g**2 + eps)
    return w + delta, (n, g, delta)


@pytest.mark.parametrize("wrong", [wrong_eps_outside, wrong_uncentered, wrong_decay_swapped])
def test_reference_comparison_rejects_plausible_mistakes(wrong):
    hyper = dict(lr=1e-3, alpha=0.9, momentum=0.9, eps=1e-2)
    shapes = {"weight": (3, 5), "bias": (7,)}
    rng = np.random.default_rng(1)
    params = initial_params(rng, np.float64, shapes)
    w_wrong = {k: v.copy() for k, v in params.items()}
    state = {k: (np.zeros_like(v),) * 3 for k, v in params.items()}
    opt = graves.RMSpropGraves(**hyper)
    for _ in range(20):
        grads = {k: 0.05 * (0.3 + rng.normal(size=s)) for k, s in shapes.items()}
        opt.update(params, grads)
        for k in params:
            w_wrong[k], state[k] = wrong(w_wrong[k], grads[k], state[k], **hyper)
    with pytest.raises(AssertionError):
        for k in params:
            assert_close(params[k], w_wrong[k], 1e-6, k)


# --------------------------------------------------------------------------
# Non-contiguous parameters and gradients
# --------------------------------------------------------------------------


def strided_views(rng, dtype):
    """Views of larger buffers: transposed, stepped, reversed, a column, a 3-D slab."""
    bases = {
        "transposed": rng.normal(size=(6, 9)).astype(dtype),
        "stepped": rng.normal(size=(10, 12)).astype(dtype),
        "reversed": rng.normal(size=(40,)).astype(dtype),
        "column": rng.normal(size=(8, 5)).astype(dtype),
        "slab": rng.normal(size=(4, 6, 5)).astype(dtype),
        "big_stepped": rng.normal(size=(2 * (BLOCK + 3),)).astype(dtype),
    }
    views = {
        "transposed": bases["transposed"].T,
        "stepped": bases["stepped"][1::3, ::2],
        "reversed": bases["reversed"][::-1],
        "column": bases["column"][:, 2],
        "slab": bases["slab"][:, 1:4, ::2].transpose(2, 0, 1),
        "big_stepped": bases["big_stepped"][::2],
    }
    for k, v in views.items():
        assert not v.flags.c_contiguous, k
    return bases, views


@pytest.mark.parametrize("name, hyper, options", CASES[:5])
def test_noncontiguous_params_updated_in_place(name, hyper, options):
    rng = np.random.default_rng(2)
    bases, views = strided_views(rng, np.float64)
    base_before = {k: b.copy() for k, b in bases.items()}
    # which elements of each base belong to the view
    owned = {}
    for k, b in bases.items():
        mask = np.zeros(b.shape, bool)
        probe = {
            "transposed": lambda m: m.T,
            "stepped": lambda m: m[1::3, ::2],
            "reversed": lambda m: m[::-1],
            "column": lambda m: m[:, 2],
            "slab": lambda m: m[:, 1:4, ::2],
            "big_stepped": lambda m: m[::2],
        }[k]
        probe(mask)[...] = True
        owned[k] = mask

    contiguous = {k: np.ascontiguousarray(v) for k, v in views.items()}
    reference, n_fields = REFERENCES[name]
    ref_w = {k: v.copy() for k, v in contiguous.items()}
    ref_state = {k: tuple(np.zeros_like(v) for _ in range(n_fields)) for k, v in contiguous.items()}
    opt_strided = getattr(graves, name)(**hyper, **options)
    opt_plain = getattr(graves, name)(**hyper, **options)
    for step in range(30):
        grads = {k: rng.normal(size=v.shape) + 0.2 for k, v in views.items()}
        # gradients may be strided too: every other step, hand over a transposed copy's transpose
        strided_grads = {k: np.asfortranarray(g) if step % 2 else g for k, g in grads.items()}
        opt_strided.update(views, strided_grads)
        opt_plain.update(contiguous, grads)
        for k in views:
            ref_w[k], ref_state[k] = reference(ref_w[k], grads[k], ref_state[k], **hyper)

    for k, v in views.items():
        assert v.base is bases[k] or np.shares_memory(v, bases[k])
        # layout does not change an elementwise update: bitwise equal to the contiguous run
        np.testing.assert_array_equal(v, contiguous[k], err_msg=k)
        assert_close(v, ref_w[k], 1e-12, k)
        # elements of the buffer outside the view are untouched, those inside moved
        np.testing.assert_array_equal(bases[k][~owned[k]], base_before[k][~owned[k]], err_msg=k)
        assert np.all(bases[k][owned[k]] != base_before[k][owned[k]]), k


# --------------------------------------------------------------------------
# float16
# --------------------------------------------------------------------------

# eps values chosen representable in float16 (its smallest subnormal is 2**-24 ≈ 6e-8)
HALF_CASES = [
    ("SGD", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-4)),
    ("RMSpropGraves", dict(lr=0.01, alpha=0.9, momentum=0.5, eps=1e-4)),
]


@pytest.mark.parametrize("name, hyper", HALF_CASES, ids=[c[0] for c in HALF_CASES])
def test_float16_works_and_keeps_float16_state(name, hyper):
    shapes = {"scalar": (), "weight": (3, 5), "big": (BLOCK + 9,)}
    rng = np.random.default_rng(3)
    params = initial_params(rng, np.float16, shapes)
    start = {k: v.astype(np.float64) for k, v in params.items()}
    ids = {k: id(v) for k, v in params.items()}
    ref_w = dict(start)
    reference, n_fields = REFERENCES[name]
    ref_state = {k: tuple(np.zeros(v.shape) for _ in range(n_fields)) for k, v in params.items()}
    opt = getattr(graves, name)(**hyper, block_size=BLOCK)
    for _ in range(20):
        grads = {k: (1.0 + 0.5 * rng.normal(size=s)).astype(np.float16) for k, s in shapes.items()}
        opt.update(params, grads)
        for k in params:  # reference in float64 on the same float16 inputs
            ref_w[k], ref_state[k] = reference(ref_w[k], grads[k].astype(np.float64), ref_state[k], **hyper)
    for k, v in params.items():
        assert id(v) == ids[k] and v.dtype == np.float16
        assert np.all(np.isfinite(v))
        for field, a in zip(opt.state[k]._fields, opt.state[k]):
            assert a.dtype == np.float16, (k, field)
        # the displacement agrees with float64 to float16 accuracy (unit roundoff 2**-11 ≈ 5e-4)
        moved = v.astype(np.float64) - start[k]
        ref_moved = ref_w[k] - start[k]
        assert float(np.max(np.abs(ref_moved))) > 0.05
        assert_close(moved, ref_moved, 0.05, k)
