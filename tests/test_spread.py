"""The spread recursion: s ← ρs + ρ(1−ρ)(∇ − g′)² in place of n − g².

Exact arithmetic decides that the two forms are one algorithm; float64 shows the
package's two forms agree on well-conditioned streams; float32 shows what the
recursion is for: no NaN where the difference form produces them.  Plus the
plumbing: compiled and numpy paths give the same bits, presets keep their
placement, checkpoints record and restore the choice.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graves
from graves import core, frameworks, fused

needs_numba = pytest.mark.skipif(not fused.AVAILABLE, reason="numba is not installed")

#: the largest float32 whose square is finite (just below 2**64)
F32_SQUARE_LIMIT = float(np.nextafter(np.float32(2.0**64), np.float32(0)))
#: below this size (2**62) every intermediate of the float32 spread recursion is finite
F32_FINITE_LIMIT = 2.0**62

rationals = st.fractions(min_value=-1000, max_value=1000, max_denominator=1000)


# --------------------------------------------------------------------------
# Exact arithmetic: the identity behind the recursion
# --------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    alpha=st.fractions(min_value=0, max_value=Fraction(999, 1000), max_denominator=1000),
    n0=st.fractions(min_value=0, max_value=10**6, max_denominator=1000),
    g0=rationals,
    xs=st.lists(rationals, min_size=1, max_size=30),
)
def test_recursion_equals_the_difference_exactly(alpha, n0, g0, xs):
    # any start, even one with n0 < g0² (the identity is algebra, not an inequality)
    n, g, s = n0, g0, n0 - g0 * g0
    for x in xs:
        s = alpha * s + alpha * (1 - alpha) * (x - g) ** 2  # g is still g′ here
        n = alpha * n + (1 - alpha) * x * x
        g = alpha * g + (1 - alpha) * x
        assert s == n - g * g
        if n0 >= g0 * g0:  # a start with a non-negative spread keeps it so: s >= alpha^t s0
            assert s >= 0


def exact_spread(stream, alpha):
    """n − g² of eqs. 38-39 from zero, exactly, on the float inputs and alpha as given."""
    a = Fraction(alpha)
    n = g = Fraction(0)
    for x in stream:
        x = Fraction(float(x))
        n = a * n + (1 - a) * x * x
        g = a * g + (1 - a) * x
    return n - g * g


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    steps=st.integers(1, 60),
    alpha=st.floats(0.5, 0.99),
    mean_over_std=st.floats(-1.0, 1.0),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    compiled=st.booleans(),
)
def test_float64_forms_agree_on_well_conditioned_streams(seed, steps, alpha, mean_over_std, scale, compiled):
    # well-conditioned: the mean is at most the noise, so n − g² is not a small
    # difference of large numbers and the difference form is accurate too
    rng = np.random.default_rng(seed)
    size = 5
    stream = [scale * (mean_over_std + rng.standard_normal(size)) for _ in range(steps)]
    w0 = rng.standard_normal(size)
    runs = {}
    for spread in ("difference", "recursive"):
        opt = graves.RMSpropGraves(lr=1e-3, alpha=alpha, eps=1e-8 * scale**2, spread=spread, compiled=compiled)
        w = w0.copy()
        for grad in stream:
            opt.update({"w": w}, {"w": grad})
        runs[spread] = (w, opt.state["w"])
    (w_d, (n, g_d, delta_d)), (w_r, (s, g_r, delta_r)) = runs["difference"], runs["recursive"]
    exact = np.array([float(exact_spread([x[i] for x in stream], alpha)) for i in range(size)])
    np.testing.assert_allclose(s, exact, rtol=1e-12, atol=0)
    np.testing.assert_allclose(n - g_d * g_d, exact, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(g_r, g_d)  # eq. 39 is the same computation in both forms
    np.testing.assert_allclose(delta_r, delta_d, rtol=1e-12, atol=0)
    np.testing.assert_allclose(w_r, w_d, rtol=1e-12, atol=1e-300)


def test_first_step_is_exact_in_both_forms():
    # one step from zero: n − g² = s = ρ(1−ρ)∇², exactly for a power-of-two ρ
    grad = np.array([-3.0, 0.5, 1e10, 2.0**-40])
    for spread in ("difference", "recursive"):
        opt = graves.RMSpropGraves(alpha=0.75, spread=spread)
        opt.update({"w": np.zeros(4)}, {"w": grad})
        first, g, _ = opt.state["w"]
        value = first - g * g if spread == "difference" else first
        np.testing.assert_array_equal(value, 0.75 * 0.25 * grad**2)


# --------------------------------------------------------------------------
# float32: the spread is never negative, and no NaN
# --------------------------------------------------------------------------

# streams of float32 gradients: a size, a kind (constant, near-constant with
# relative noise, random signs, white noise around the size) and a seed
streams = st.fixed_dictionaries(
    {
        "size": st.floats(1e-30, F32_SQUARE_LIMIT),
        "kind": st.sampled_from(["constant", "near-constant", "signs", "noise"]),
        "noise": st.sampled_from([1e-7, 1e-4, 1e-2]),
        "seed": st.integers(0, 2**32 - 1),
        "steps": st.integers(1, 400),
        "negate": st.booleans(),
    }
)


def float32_stream(spec, width=16):
    rng = np.random.default_rng(spec["seed"])
    size = np.float64(spec["size"]) * (-1.0 if spec["negate"] else 1.0)
    shape = (spec["steps"], width)
    kind = spec["kind"]
    if kind == "constant":
        x = np.full(shape, size)
    elif kind == "near-constant":
        x = size * (1.0 + spec["noise"] * rng.uniform(-1.0, 1.0, shape))
    elif kind == "signs":
        x = size * rng.choice([-1.0, 1.0], shape)
    else:
        x = size * rng.uniform(-1.0, 1.0, shape)
    limit = np.float32(F32_SQUARE_LIMIT)
    return np.clip(x.astype(np.float32), -limit, limit)  # finite, with finite squares


def run_float32(stream, spread, **hyper):
    opt = graves.RMSpropGraves(spread=spread, **hyper)
    w = np.zeros(stream.shape[1], np.float32)
    lowest = np.inf
    with np.errstate(all="ignore"):
        for grad in stream:
            opt.update({"w": w}, {"w": grad})
            s = opt.state["w"].s if spread == "recursive" else None
            if s is not None:
                lowest = min(lowest, float(s.min()))
    return w, opt.state["w"], lowest


@settings(max_examples=120, deadline=None, derandomize=True)
@given(spec=streams, alpha=st.floats(1e-3, 0.9999), momentum=st.sampled_from([0.0, 0.9, 0.99]))
def test_float32_recursion_never_nan_when_squares_are_finite(spec, alpha, momentum):
    # the claim: any finite float32 gradients with finite squares, 0 < alpha < 1,
    # Graves' lr and eps: the spread is >= 0 or +inf, and no array ever holds a NaN
    stream = float32_stream(spec)
    w, (s, g, delta), lowest = run_float32(stream, "recursive", alpha=alpha, momentum=momentum)
    assert lowest >= 0
    for a in (w, s, g, delta):
        assert not np.isnan(a).any()
    if np.abs(stream).max() <= F32_FINITE_LIMIT:
        # below 2**62, |∇ − g′| <= 2**63 (1 + tiny) and its square stays below
        # 2**126: every array is finite
        for a in (w, s, g, delta):
            assert np.isfinite(a).all()


@pytest.mark.parametrize("size", [1e-2, 1.0, 9.0, 30.0, 1e3, 1e6, 1e9, 1e12, 1e15, 1e18])
def test_float32_constant_gradients_up_to_1e18(size):
    # 1000 steps of a constant gradient: the exact spread ρ^t(1−ρ^t)∇² falls far
    # below the difference form's round-off; the recursion keeps it >= 0 and finite
    rng = np.random.default_rng(int(size) % 2**32)
    grad = (size * rng.uniform(1.0, 10.0, 500) * rng.choice([-1.0, 1.0], 500)).astype(np.float32)
    stream = np.broadcast_to(grad, (1000, grad.size))
    w, (s, g, delta), lowest = run_float32(stream, "recursive")
    assert lowest >= 0
    for a in (w, s, g, delta):
        assert np.isfinite(a).all()
    if size >= 30.0:  # above √(ε(1−ρ)/u) ≈ 9.2 the difference form breaks: the test can fail
        w_d, _, _ = run_float32(stream, "difference")
        assert np.isnan(w_d).any()


def test_float32_beyond_the_finite_limit_the_step_is_zero_not_nan():
    # |∇ − g′| may exceed √max when signs alternate near 2**64: s = +inf, the
    # denominator +inf, the step 0; still no NaN
    stream = np.array([[1.8e19], [-1.8e19], [1.8e19]], dtype=np.float32)
    w, (s, g, delta), _ = run_float32(stream, "recursive")
    assert np.isinf(s).all() and np.isfinite(w).all() and not np.isnan(delta).any()


# --------------------------------------------------------------------------
# Same bits on both paths
# --------------------------------------------------------------------------


@needs_numba
@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    size=st.integers(1, 3000),
    steps=st.integers(1, 12),
    scale=st.sampled_from([1e-6, 1e-2, 1.0, 1e3, 1e12]),
    lr=st.floats(1e-6, 1e-1),
    alpha=st.floats(0.0, 0.999),
    momentum=st.floats(0.0, 0.99),
    eps=st.sampled_from([0.0, 1e-8, 1e-4, 1e-1]),
    seed=st.integers(0, 2**32 - 1),
)
def test_compiled_recursion_gives_the_numpy_bits(dtype, size, steps, scale, lr, alpha, momentum, eps, seed):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(size).astype(dtype)
    grads = [(scale * (1.0 + 0.1 * rng.standard_normal(size))).astype(dtype) for _ in range(steps)]
    out = []
    for compiled in (True, False):
        opt = graves.RMSpropGraves(lr=lr, alpha=alpha, momentum=momentum, eps=eps, spread="recursive", compiled=compiled)
        w = w0.copy()
        with np.errstate(all="ignore"):
            for grad in grads:
                opt.update({"w": w}, {"w": grad})
        out.append((w, opt.state["w"]))
    (w_c, s_c), (w_n, s_n) = out
    np.testing.assert_array_equal(w_c, w_n)
    for a, b in zip(s_c, s_n):
        np.testing.assert_array_equal(a, b)


@needs_numba
def test_the_recursive_step_has_its_kernel():
    assert fused.kernel_for(core.graves_recursive_step, np.float32) is fused.graves_recursive_step
    assert fused.kernel_for(core.graves_recursive_step, np.float16) is None
    assert graves.RMSpropGraves(spread="recursive").step_function is core.graves_recursive_step
    assert graves.RMSpropGraves().step_function is core.graves_step


@needs_numba
@pytest.mark.parametrize("threads", [1, 3])
def test_threads_and_blocks_give_the_same_bits(threads):
    rng = np.random.default_rng(11)
    size = 2**17 + 13
    w0 = rng.standard_normal(size).astype(np.float32)
    grads = [(0.5 + rng.standard_normal(size)).astype(np.float32) for _ in range(3)]
    ws = []
    for options in ({"compiled": True, "threads": threads}, {"compiled": False, "threads": threads, "block_size": 1000}):
        opt = graves.RMSpropGraves(spread="recursive", **options)
        w = w0.copy()
        for grad in grads:
            opt.update({"w": w}, {"w": grad})
        ws.append(w)
    np.testing.assert_array_equal(*ws)


# --------------------------------------------------------------------------
# The option: names, checks, presets
# --------------------------------------------------------------------------


def test_the_state_holds_s_under_its_name():
    opt = graves.RMSpropGraves(spread="recursive")
    opt.update({"w": np.zeros(3)}, {"w": np.array([1.0, 2.0, 3.0])})
    assert type(opt.state["w"]) is core.SpreadState
    assert opt.state["w"]._fields == ("s", "g", "delta")
    assert "state/s/w" in opt.state_dict() and "state/n/w" not in opt.state_dict()
    assert repr(opt).endswith("spread='recursive')")
    assert graves.RMSpropGraves().spread == "difference"
    assert "spread" not in graves.RMSpropGraves().state_dict()  # the default writes the format as before
    with pytest.raises(AttributeError):
        opt.spread = "difference"  # it decides what the state holds: fixed


@pytest.mark.parametrize(
    "value, error",
    [("recursion", ValueError), ("Recursive", ValueError), (1, TypeError), (None, TypeError)],
)
def test_bad_spread_names_the_parameter(value, error):
    with pytest.raises(error, match="spread"):
        graves.RMSpropGraves(spread=value)
    with pytest.raises(error, match="spread"):
        frameworks.make("chainer", spread=value)


def test_core_rejects_recursion_where_it_has_no_meaning():
    state = core.SpreadState(*(np.zeros(3) for _ in range(3)))
    args = dict(lr=0.1, alpha=0.9, momentum=0.0, eps=1e-8)
    for variant in (
        core.CenteredVariant(spread="recursive", centered=False),
        core.CenteredVariant(spread="recursive", bias_correction=True),
        core.CenteredVariant(spread="sideways"),
    ):
        with pytest.raises(ValueError, match="spread"):
            core.centered_rmsprop_step(np.zeros(3), np.ones(3), state, variant=variant, **args)
    assert not any(a.any() for a in state)  # raised before any write


# every centered library configuration, with its own placement of eps and lr
CENTERED = [
    ("chainer", dict(lr=1e-3)),
    ("torch", dict(lr=1e-3, eps=1e-6, momentum=0.9, centered=True)),
    ("torch", dict(lr=1e-3, eps=1e-6, centered=True)),
    ("keras", dict(learning_rate=1e-3, momentum=0.5, centered=True)),
    ("tf1", dict(learning_rate=1e-3, momentum=0.9, centered=True)),
    ("optax", dict(learning_rate=1e-3, centered=True, momentum=0.9, nesterov=True)),
    ("optax", dict(learning_rate=1e-3, centered=True, eps_in_sqrt=False, initial_scale=0.5)),
    ("dqn", dict(lr=1e-3)),
]


@pytest.mark.parametrize("name, kw", CENTERED, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CENTERED)])
def test_presets_keep_their_placement_under_the_recursion(name, kw):
    rng = np.random.default_rng(8)
    stream = [0.3 + rng.standard_normal(50) for _ in range(40)]
    runs = {}
    for spread in ("difference", "recursive"):
        opt = frameworks.make(name, **kw, spread=spread)
        assert opt.variant._replace(spread="difference") == frameworks.make(name, **kw).variant
        assert opt.variant.spread == spread
        w = np.linspace(-1, 1, 50)
        for t, grad in enumerate(stream):
            if t == 20:
                opt.lr = opt.lr / 3  # a schedule: lr's placement matters from here on
            opt.update({"w": w}, {"w": grad})
        runs[spread] = (w, opt.state["w"])
    (w_d, (n, g_d, _)), (w_r, (s, g_r, _)) = runs["difference"], runs["recursive"]
    np.testing.assert_allclose(s, n - g_d * g_d, rtol=1e-12)
    np.testing.assert_allclose(w_r, w_d, rtol=1e-12)
    graves_placement = frameworks.make(name, **kw).variant == core.GRAVES
    recursive = frameworks.make(name, **kw, spread="recursive")
    assert (recursive.step_function is core.graves_recursive_step) == graves_placement
    assert repr(recursive).endswith("spread='recursive')")


@pytest.mark.parametrize(
    "name, kw",
    [("torch", {}), ("keras", {}), ("optax", dict(learning_rate=0.1, centered=True, bias_correction=True))],
)
def test_presets_refuse_the_recursion_without_a_plain_centered_spread(name, kw):
    with pytest.raises(ValueError, match="spread='recursive'"):
        frameworks.make(name, **kw, spread="recursive")


# --------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------


def run_steps(opt, w, steps, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        opt.update({"w": w}, {"w": 0.2 + rng.standard_normal(w.size)})


@pytest.mark.parametrize("make", [
    lambda **kw: graves.RMSpropGraves(lr=1e-2, **kw),
    lambda **kw: frameworks.make("torch", momentum=0.9, centered=True, **kw),
    lambda **kw: frameworks.make("tf1", learning_rate=1e-2, centered=True, **kw),
], ids=["RMSpropGraves", "torch", "tf1"])
def test_checkpoint_records_the_spread_and_resumes_bitwise(tmp_path, make):
    w_ref = np.linspace(-1, 1, 7)
    reference = make(spread="recursive")
    run_steps(reference, w_ref, 10)
    w = np.linspace(-1, 1, 7)
    first = make(spread="recursive")
    run_steps(first, w, 10)
    assert first.state_dict()["spread"] == "recursive"
    path = tmp_path / "ckpt.npz"
    first.save(path)
    # the rest of the run continues from the file, in a fresh optimizer ...
    loaded = graves.load(path)
    assert loaded.spread == "recursive" and type(loaded.state["w"]) is core.SpreadState
    # ... and in one constructed with the other spread: loading adopts the saved
    # choice, as it adopts the saved hyperparameters
    other = make()
    other.load_state_dict(dict(np.load(path)))
    assert other.spread == "recursive" and type(other.state["w"]) is core.SpreadState
    rng = np.random.default_rng(99)
    grads = [0.2 + rng.standard_normal(7) for _ in range(5)]
    ws = [w_ref, w.copy(), w.copy()]
    for grad in grads:
        for opt, wi in zip((reference, loaded, other), ws):
            opt.update({"w": wi}, {"w": grad})
    np.testing.assert_array_equal(ws[0], ws[1])
    np.testing.assert_array_equal(ws[0], ws[2])


def test_a_checkpoint_without_the_entry_means_difference():
    opt = graves.RMSpropGraves()
    run_steps(opt, np.zeros(4), 3)
    old = {k: v for k, v in opt.state_dict().items() if k != "spread"}  # as written before the option
    fresh = graves.RMSpropGraves(spread="recursive")
    fresh.load_state_dict(old)
    assert fresh.spread == "difference" and type(fresh.state["w"]) is core.CenteredState
    torch_old = frameworks.make("torch", centered=True)
    run_steps(torch_old, np.zeros(4), 3)
    d = {k: v for k, v in torch_old.state_dict().items() if k != "spread"}
    assert frameworks.make("torch", centered=True, spread="recursive").load_state_dict(d) is None


def test_a_bad_spread_entry_changes_nothing():
    opt = graves.RMSpropGraves(spread="recursive")
    run_steps(opt, np.zeros(4), 3)
    good = opt.state_dict()
    target = graves.RMSpropGraves()
    run_steps(target, np.zeros(4), 2)
    before = target.state_dict()
    cases = [
        ({**good, "spread": "sideways"}, "'spread'"),
        ({**good, "spread": "difference"}, "state/n/w"),  # s stored, n expected
        ({k: v for k, v in good.items() if k != "spread"}, "state/n/w"),  # an s state read as an old checkpoint
    ]
    for d, match in cases:
        with pytest.raises(ValueError, match=match):
            target.load_state_dict(d)
        after = target.state_dict()
        assert after.keys() == before.keys() and target.spread == "difference"
        for k in before:
            np.testing.assert_array_equal(after[k], before[k])
    # an uncentered preset cannot take a recursive state; the failure changes nothing
    torch = frameworks.make("torch", centered=True, spread="recursive")
    run_steps(torch, np.zeros(4), 2)
    d = torch.state_dict()
    d["config/centered"] = False
    plain = frameworks.make("torch")
    with pytest.raises(ValueError, match="centered=True"):
        plain.load_state_dict(d)
    assert plain.spread == "difference" and plain.variant.centered is False and not plain.state
    # optimizers without a spread refuse the entry
    sgd = graves.SGD(lr=0.1)
    d = sgd.state_dict()
    d["spread"] = "recursive"
    with pytest.raises(ValueError, match="unexpected entries"):
        sgd.load_state_dict(d)
