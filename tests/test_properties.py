"""Properties of the algorithms, checked with hypothesis.

* scale invariance of RMSprop and Graves' RMSprop as eps → 0;
* n − g² ≥ 0 for Graves' averages (eqs. 38-39) in exact rational arithmetic;
* a zero gradient with zero momentum leaves the parameters where they are;
* the update is elementwise: a dict of tensors and the same numbers in one
  flat tensor give bitwise the same result, whatever the block partition.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graves

FAST = settings(max_examples=40, deadline=None)

# gradient magnitudes bounded away from 0 and ∞, with either sign: with eps = 0
# a zero gradient on a zero state is 0/0, and we want no overflow or underflow
# in grad² even after scaling by 2**±20
magnitudes = st.floats(min_value=1e-3, max_value=1e2)


@st.composite
def gradient_sequences(draw, max_steps=8, size=6):
    steps = draw(st.integers(1, max_steps))
    mags = draw(hnp.arrays(np.float64, (steps, size), elements=magnitudes))
    signs = draw(hnp.arrays(np.bool_, (steps, size)))
    return np.where(signs, -mags, mags)


def make(name, eps, **hyper):
    return getattr(graves, name)(**hyper, eps=eps)


def trajectory(opt, w0, grads, scale=1.0):
    """Parameters after each step of ``opt`` on ``scale * grads``."""
    params = {"w": w0.copy()}
    out = []
    for grad in grads:
        opt.update(params, {"w": (scale * grad).astype(w0.dtype)})
        out.append(params["w"].copy())
    return np.array(out)


# --------------------------------------------------------------------------
# Scale invariance as eps → 0
# --------------------------------------------------------------------------


@FAST
@given(
    grads=gradient_sequences(),
    k=st.integers(-20, 20).filter(lambda k: k != 0),
    name=st.sampled_from(["RMSprop", "RMSpropGraves"]),
    dtype=st.sampled_from([np.float64, np.float32]),
    alpha=st.floats(0.5, 0.99),
    momentum=st.floats(0.0, 0.95),
    lr=st.floats(1e-4, 1e-1),
)
def test_scale_invariance_power_of_two_is_exact(grads, k, name, dtype, alpha, momentum, lr):
    """With eps = 0, scaling every gradient by c = 2**k gives bitwise the same steps.

    Why exactly: multiplying by a power of two only shifts the exponent, so (as
    long as nothing overflows or underflows, which the bounds above rule out)
    it commutes with every rounding.  c·∇ and (c∇)² = c²∇² are exact; n and g
    become exactly c²n and c·g; n − g² becomes c²(n − g²); its root, c·√(…)
    (c² is a power of four); and c∇ / (c√…) rounds to the same number as ∇/√….
    With alpha ≥ 0.5 and at most 8 steps, n − g² ≥ alpha**t · n > 0 stays
    clear of zero in float32 too, so no step is 0/0 or √negative: every number
    compared is finite, see the assertion.
    """
    c = 2.0**k
    hyper = dict(lr=lr, alpha=alpha) | ({"momentum": momentum} if name == "RMSpropGraves" else {})
    w0 = np.linspace(-1, 1, grads.shape[1]).astype(dtype)
    plain, scaled = make(name, 0.0, **hyper), make(name, 0.0, **hyper)
    expected = trajectory(plain, w0, grads)
    assert np.all(np.isfinite(expected))
    np.testing.assert_array_equal(trajectory(scaled, w0, grads, c), expected)
    # and the averages scale exactly: n by c², g by c; Δ not at all
    a, b = plain.state["w"], scaled.state["w"]
    np.testing.assert_array_equal(b.n, (c * c) * a.n)
    if name == "RMSpropGraves":
        np.testing.assert_array_equal(b.g, c * a.g)
        np.testing.assert_array_equal(b.delta, a.delta)


@FAST
@given(
    grads=gradient_sequences(max_steps=10),
    c=st.floats(1e-3, 1e3),
    name=st.sampled_from(["RMSprop", "RMSpropGraves"]),
    alpha=st.floats(0.5, 0.99),
    momentum=st.floats(0.0, 0.9),
)
def test_scale_invariance_any_scale_to_rounding(grads, c, name, alpha, momentum):
    """With a tiny eps, scaling every gradient by any c > 0 changes the steps only by rounding.

    Bounds that keep the comparison at rtol 1e-9: at most 10 steps and
    alpha ≥ 0.5, because from a zero state n − g² ≥ alpha**t · n (Cauchy-Schwarz
    with weights summing to 1 − alpha**t), so the subtraction can amplify
    float64 rounding by at most 2**10.
    """
    hyper = dict(lr=1e-2, alpha=alpha) | ({"momentum": momentum} if name == "RMSpropGraves" else {})
    w0 = np.linspace(-1, 1, grads.shape[1])
    plain, scaled = make(name, 1e-30, **hyper), make(name, 1e-30, **hyper)
    steps_plain = np.diff(trajectory(plain, w0, grads), axis=0, prepend=w0[None])
    steps_scaled = np.diff(trajectory(scaled, w0, grads, c), axis=0, prepend=w0[None])
    floor = 1e-9 * float(np.max(np.abs(steps_plain)))
    np.testing.assert_allclose(steps_scaled, steps_plain, rtol=1e-9, atol=floor)


@pytest.mark.parametrize("name", ["RMSprop", "RMSpropGraves"])
def test_scale_invariance_fails_when_eps_dominates(name):
    """Control: the comparison above detects a non-invariant update.

    With eps = 1 and gradients around 1e-3, the root is dominated by eps, so a
    gradient 1000 times larger gives a step about 1000 times larger, not the same.
    """
    rng = np.random.default_rng(0)
    grads = 1e-3 * (0.5 + rng.random((5, 6)))
    w0 = np.zeros(6)
    plain, scaled = make(name, 1.0, lr=1e-2, alpha=0.9), make(name, 1.0, lr=1e-2, alpha=0.9)
    a = trajectory(plain, w0, grads)
    b = trajectory(scaled, w0, grads, 1e3)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(b, a, rtol=1e-9)
    assert np.max(np.abs(b)) > 100 * np.max(np.abs(a))


# --------------------------------------------------------------------------
# n − g² ≥ 0 in exact arithmetic (eqs. 38-39, zero initial state)
# --------------------------------------------------------------------------

rationals = st.fractions(min_value=-10, max_value=10, max_denominator=1000)
decays = st.fractions(min_value=0, max_value=1, max_denominator=1000).filter(lambda a: a < 1)


def exact_averages(grads, alpha_n, alpha_g):
    """Eqs. 38 and 39 in rationals, from n = g = 0; yields (n, g) after each step."""
    n = g = Fraction(0)
    for x in grads:
        n = alpha_n * n + (1 - alpha_n) * x * x  # (38)
        g = alpha_g * g + (1 - alpha_g) * x  # (39)
        yield n, g


@settings(max_examples=200, deadline=None)
@given(grads=st.lists(rationals, min_size=1, max_size=30), alpha=decays)
def test_spread_is_nonnegative_in_exact_arithmetic(grads, alpha):
    """With one decay for both averages, n − g² ≥ alpha**t · n ≥ 0 at every step t.

    n and g are averages of ∇² and ∇ with the same weights w_i ≥ 0, summing to
    W = 1 − alpha**t ≤ 1; by Cauchy-Schwarz g² ≤ W·n, hence n − g² ≥ (1 − W)·n.
    """
    for t, (n, g) in enumerate(exact_averages(grads, alpha, alpha), start=1):
        assert n - g * g >= alpha**t * n >= 0, (t, n, g)


def test_spread_can_be_negative_with_different_decays():
    """Control: the property rests on one shared decay ρ for n and g.

    A faster average of ∇ than of ∇² breaks it at the first step:
    n = 0.1, g = 0.5, n − g² = −0.15.
    """
    ((n, g),) = exact_averages([Fraction(1)], Fraction(9, 10), Fraction(1, 2))
    assert n - g * g == Fraction(-3, 20)


# no |∇| below 1e-100, whose square would underflow in float64
floats_no_underflow = st.one_of(st.just(0.0), st.floats(1e-100, 10), st.floats(-10, -1e-100))


@FAST
@given(
    grads=st.lists(floats_no_underflow, min_size=1, max_size=20),
    alpha=st.floats(0.5, 0.99),
)
def test_package_averages_match_exact_arithmetic(grads, alpha):
    """The package's float64 n and g follow the exact rationals to rounding error.

    Floats convert to fractions exactly, so both sides see the same data; the
    exact n − g² is ≥ 0 and the package's stays within rounding of it.
    """
    opt = graves.RMSpropGraves(lr=1e-3, alpha=alpha, momentum=0.9, eps=1e-4)
    params = {"w": np.zeros(())}
    exact = exact_averages([Fraction(x) for x in grads], Fraction(alpha), Fraction(alpha))
    scale = max(max(abs(x) for x in grads), 1e-300)
    for x, (n, g) in zip(grads, exact):
        opt.update(params, {"w": np.array(x)})
        state = opt.state["w"]
        assert abs(Fraction(float(state.n)) - n) <= Fraction(1e-14) * scale**2
        assert abs(Fraction(float(state.g)) - g) <= Fraction(1e-14) * scale
        assert n - g * g >= 0
        assert float(state.n - state.g**2) >= -1e-14 * scale**2


# --------------------------------------------------------------------------
# A zero gradient with zero momentum does not move the parameters
# --------------------------------------------------------------------------

OPTIMIZERS_NO_MOMENTUM = {
    "SGD": lambda: graves.SGD(lr=0.1, momentum=0.0),
    # eps = 1e-6 rather than RMSprop's default 1e-8, which float16 cannot hold
    "RMSprop": lambda: graves.RMSprop(lr=0.1, alpha=0.9, eps=1e-6),
    "RMSpropGraves": lambda: graves.RMSpropGraves(lr=0.1, alpha=0.9, momentum=0.0, eps=1e-4),
}


@FAST
@given(
    name=st.sampled_from(sorted(OPTIMIZERS_NO_MOMENTUM)),
    history=st.integers(0, 4),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float64, np.float32, np.float16]),
)
def test_zero_gradient_without_momentum_leaves_params(name, history, seed, dtype):
    """Without momentum the step is a multiple of ∇, so ∇ = 0 moves nothing.

    RMSprop on a fresh state included: 0 / √(0 + eps) = 0 because eps > 0.
    The averages decay: n ← ρ·n (and g ← ρ·g); Δ becomes 0.
    """
    rng = np.random.default_rng(seed)
    opt = OPTIMIZERS_NO_MOMENTUM[name]()
    params = {"a": rng.normal(size=(3, 4)).astype(dtype), "b": rng.normal(size=()).astype(dtype)}
    for _ in range(history):
        opt.update(params, {k: rng.normal(size=v.shape).astype(dtype) for k, v in params.items()})
    before = {k: v.copy() for k, v in params.items()}
    state_before = {k: tuple(a.copy() for a in s) for k, s in opt.state.items()}
    opt.update(params, {k: np.zeros_like(v) for k, v in params.items()})
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
        assert params[k].dtype == dtype
        state = opt.state[k]
        if name == "RMSprop" and history:
            np.testing.assert_array_equal(state.n, opt.alpha * state_before[k][0])
        if name == "RMSpropGraves" and history:
            np.testing.assert_array_equal(state.n, opt.alpha * state_before[k][0])
            np.testing.assert_array_equal(state.g, opt.alpha * state_before[k][1])
            np.testing.assert_array_equal(state.delta, 0)


@pytest.mark.parametrize("name", ["SGD", "RMSpropGraves"])
def test_zero_gradient_with_momentum_still_moves(name):
    """Control: with momentum the buffer keeps moving the parameters after ∇ = 0."""
    opt = graves.SGD(lr=0.1, momentum=0.9) if name == "SGD" else graves.RMSpropGraves(lr=0.1, momentum=0.9)
    params = {"w": np.ones(4)}
    opt.update(params, {"w": np.full(4, 0.5)})
    before = params["w"].copy()
    opt.update(params, {"w": np.zeros(4)})
    assert np.all(params["w"] < before)


# --------------------------------------------------------------------------
# Elementwise: a dict of tensors equals one concatenated tensor, bit for bit
# --------------------------------------------------------------------------

def views_of(buffer, like):
    """Views into ``buffer``, one after another, shaped like the arrays of ``like``."""
    out, start = {}, 0
    for k, v in like.items():
        out[k] = buffer[start : start + v.size].reshape(v.shape)
        start += v.size
    return out


shapes = st.lists(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=5), min_size=1, max_size=5)
CONSTRUCTORS = {
    "SGD": lambda **o: graves.SGD(lr=0.05, momentum=0.9, **o),
    "SGD-plain": lambda **o: graves.SGD(lr=0.05, **o),
    "RMSprop": lambda **o: graves.RMSprop(lr=0.01, alpha=0.9, eps=1e-8, **o),
    "RMSpropGraves": lambda **o: graves.RMSpropGraves(lr=0.01, alpha=0.95, momentum=0.9, eps=1e-4, **o),
}


@FAST
@given(
    shape_list=shapes,
    name=st.sampled_from(sorted(CONSTRUCTORS)),
    dtype=st.sampled_from([np.float64, np.float32]),
    steps=st.integers(1, 5),
    block_size=st.integers(1, 17),
    threads=st.sampled_from([1, 2]),
    packed=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_dict_equals_concatenation_bitwise(shape_list, name, dtype, steps, block_size, threads, packed, seed):
    """The update is elementwise, so neither the split into tensors nor the
    block partition (block_size, threads) can change a single bit.

    ``packed``: the tensors are consecutive views of one buffer, and so are the
    gradients, refilled in place every step (the layout an optimizer may run
    over in one pass); otherwise each tensor is its own array."""
    rng = np.random.default_rng(seed)
    params = {f"p{i}": rng.normal(size=s).astype(dtype) for i, s in enumerate(shape_list)}
    flat = {"all": np.concatenate([v.ravel() for v in params.values()])}
    assume(flat["all"].size > 0)
    if packed:
        params = views_of(flat["all"].copy(), params)
        grad_views = views_of(np.zeros_like(flat["all"]), params)
    by_dict = CONSTRUCTORS[name](block_size=block_size, threads=threads)
    by_flat = CONSTRUCTORS[name]()
    for _ in range(steps):
        grads = {k: (rng.normal(size=v.shape) * 10.0 ** rng.integers(-3, 3)).astype(dtype) for k, v in params.items()}
        if packed:
            for k in grads:
                grad_views[k][...] = grads[k]
            grads = grad_views
        by_dict.update(params, grads)
        by_flat.update(flat, {"all": np.concatenate([g.ravel() for g in grads.values()])})
        joined = np.concatenate([v.ravel() for v in params.values()])
        assert joined.dtype == flat["all"].dtype
        np.testing.assert_array_equal(joined, flat["all"])
        for field in by_flat.State._fields:
            joined_state = np.concatenate([getattr(by_dict.state[k], field).ravel() for k in params])
            np.testing.assert_array_equal(joined_state, getattr(by_flat.state["all"], field))
