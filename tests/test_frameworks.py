"""graves.frameworks against independent transcriptions of each library's update.

The transcriptions below are written from each library's published source
(cited in graves/frameworks.py), in plain numpy, in the library's own order of
operations; none calls graves.core.  Each runs 1,000 float64 steps on a noisy
quadratic whose gradient depends on the parameters, with a constant lr and with
an lr that changes every step, and must agree with graves.frameworks.make to
1e-10 relative (the largest difference over the trajectory, divided by the
largest parameter magnitude).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graves
import graves.frameworks
from graves import core, frameworks, fused

from framework_problem import STEPS, lr_schedule, problem

RTOL = 1e-10


# -- the test problem --------------------------------------------------------------


def run(step, w0, h, target, noise, lrs):
    """Trajectory of ``step(w, grad, lr)`` (which returns the new w) on the test problem."""
    w = w0.copy()
    out = np.empty((len(lrs), w.size))
    for t, lr in enumerate(lrs):
        grad = h * (w - target) + noise[t]
        w = step(w, grad, lr)
        out[t] = w
    return out


def run_package(opt, w0, h, target, noise, lrs):
    params = {"w": w0.copy()}

    def step(w, grad, lr):
        opt.lr = lr
        opt.update(params, {"w": grad})
        return params["w"].copy()

    return run(step, w0, h, target, noise, lrs)


def assert_close(a, b, rtol=RTOL):
    scale = np.max(np.abs(b))
    err = np.max(np.abs(a - b))
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    assert err <= rtol * scale, f"max difference {err:.3e} > {rtol} x {scale:.3e}"


# -- independent transcriptions ------------------------------------------------------


def chainer_step(lr, alpha, momentum, eps):
    n = g = delta = 0.0

    def step(w, grad, _lr):
        nonlocal n, g, delta
        n = n * alpha + (1 - alpha) * grad * grad
        g = g * alpha + (1 - alpha) * grad
        delta = delta * momentum - _lr * grad / np.sqrt(n - g * g + eps)
        return w + delta

    return step


def torch_step(lr, alpha, eps, momentum, centered):
    square_avg = grad_avg = buf = 0.0

    def step(w, grad, _lr):
        nonlocal square_avg, grad_avg, buf
        square_avg = square_avg * alpha + (1 - alpha) * grad * grad
        if centered:
            grad_avg = grad_avg + (1 - alpha) * (grad - grad_avg)  # lerp
            avg = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg = avg + eps
        if momentum > 0:
            buf = buf * momentum + grad / avg
            return w - _lr * buf
        return w - _lr * grad / avg

    return step


def keras_step(learning_rate, rho, momentum, epsilon, centered):
    velocity = average_grad = mom = 0.0

    def step(w, grad, _lr):
        nonlocal velocity, average_grad, mom
        velocity = rho * velocity + (1 - rho) * grad**2
        if centered:
            average_grad = rho * average_grad + (1 - rho) * grad
            denominator = velocity - average_grad**2 + epsilon
        else:
            denominator = velocity + epsilon
        increment = _lr * grad / np.sqrt(denominator)
        if momentum > 0:
            mom = momentum * mom + increment
            return w - mom
        return w - increment

    return step


def tf1_step(learning_rate, decay, momentum, epsilon, centered, dtype=np.float64):
    ms, mg, mom = 1.0, 0.0, 0.0  # the rms slot starts at ones
    one_minus_decay = np.dtype(dtype).type(1) - np.dtype(dtype).type(decay)  # static_cast<T>(1) - rho()

    def step(w, grad, _lr):
        nonlocal ms, mg, mom
        ms = ms + (grad * grad - ms) * one_minus_decay
        if centered:
            mg = mg + (grad - mg) * one_minus_decay
            denom = (ms - mg * mg) + epsilon
        else:
            denom = ms + epsilon
        mom = mom * momentum + (grad * _lr) / np.sqrt(denom)
        return w - mom

    return step


def optax_step(learning_rate, decay, eps, initial_scale, eps_in_sqrt, centered, momentum, nesterov, bias_correction,
               dtype=np.float64):
    mu, nu, trace, count = 0.0, initial_scale, 0.0, 0
    # JAX's default float (float32 unless float64 parameters need x64) for 1 - decay**count
    jax_float = np.float64 if np.dtype(dtype) == np.float64 else np.float32

    def step(w, grad, _lr):
        nonlocal mu, nu, trace, count
        mu = (1 - decay) * grad + decay * mu
        nu = (1 - decay) * grad**2 + decay * nu
        count += 1
        correction = (jax_float(1) - jax_float(decay) ** jax_float(count)).astype(dtype)
        inverse = np.dtype(dtype).type(1) / correction  # XLA divides by a scalar as a product with its reciprocal
        mu_hat, nu_hat = (mu * inverse, nu * inverse) if bias_correction else (mu, nu)
        spread = nu_hat - mu_hat**2 if centered else nu_hat
        scaling = 1 / np.sqrt(spread + eps) if eps_in_sqrt else 1 / (np.sqrt(spread) + eps)
        u = -_lr * (scaling * grad)
        if momentum is None:
            return w + u
        trace = u + momentum * trace
        return w + (u + momentum * trace if nesterov else trace)

    return step


def dqn_step(lr):
    g = g2 = 0.0

    def step(w, grad, _lr):
        nonlocal g, g2
        dw = -grad  # the network back-propagates the TD error: dw is the negative gradient
        g = g * 0.95 + 0.05 * dw
        g2 = g2 * 0.95 + 0.05 * dw * dw
        tmp = np.sqrt(-(g * g) + g2 + 0.01)
        return w + _lr * dw / tmp

    return step


def keras2_step(learning_rate, rho, momentum, epsilon, centered, dtype=np.float64):
    # keras/optimizers/optimizer_v2/rmsprop.py: learning_rate, rho and momentum are float32
    # variables cast to the variable's dtype; epsilon is converted directly; 1 - rho in that dtype
    dt = np.dtype(dtype).type
    rho_t, momentum_t = dt(np.float32(rho)), dt(np.float32(momentum))
    one_minus_rho, epsilon_t = dt(1) - rho_t, dt(epsilon or 1e-7)
    with_momentum = momentum > 0  # decided in __init__
    rms = mg = mom = 0.0

    def step(w, grad, _lr):
        nonlocal rms, mg, mom
        lr_t = dt(np.float32(_lr))
        if with_momentum:  # ResourceApply(Centered)RMSProp, training_ops.cc, with rms starting at 0
            rms = rms + (grad * grad - rms) * one_minus_rho
            if centered:
                mg = mg + (grad - mg) * one_minus_rho
                denom = (rms - mg * mg) + epsilon_t
            else:
                denom = rms + epsilon_t
            mom = mom * momentum_t + (grad * lr_t) / np.sqrt(denom)
            return w - mom
        rms = rho_t * rms + one_minus_rho * np.square(grad)
        denom = rms
        if centered:
            mg = rho_t * mg + one_minus_rho * grad
            denom = rms - np.square(mg)
        return w - lr_t * grad / (np.sqrt(denom) + epsilon_t)

    return step


TRANSCRIPTIONS = {
    "chainer": chainer_step,
    "torch": torch_step,
    "keras": keras_step,
    "tf1": tf1_step,
    "optax": optax_step,
    "dqn": dqn_step,
    "keras2": keras2_step,
}

DEFAULTS = {
    "chainer": dict(lr=1e-4, alpha=0.95, momentum=0.9, eps=1e-4),
    "torch": dict(lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, centered=False),
    "keras": dict(learning_rate=1e-3, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False),
    "tf1": dict(learning_rate=None, decay=0.9, momentum=0.0, epsilon=1e-10, centered=False),
    "optax": dict(
        learning_rate=None, decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True, centered=False,
        momentum=None, nesterov=False, bias_correction=False,
    ),
    "dqn": dict(lr=2.5e-4),
    "keras2": dict(learning_rate=1e-3, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False),
}


def configs():
    """(library, kwargs) covering every option of every library."""
    yield "chainer", dict(lr=1e-3)
    yield "chainer", dict(lr=1e-3, alpha=0.9, momentum=0.0, eps=1e-6)
    for centered in (False, True):
        for momentum in (0.0, 0.9):
            yield "torch", dict(lr=1e-3, alpha=0.95, eps=1e-6, momentum=momentum, centered=centered)
            yield "keras", dict(learning_rate=1e-3, rho=0.95, momentum=momentum, epsilon=1e-6, centered=centered)
            yield "tf1", dict(learning_rate=1e-3, decay=0.95, momentum=momentum, epsilon=1e-6, centered=centered)
    # every combination of Optax's three flags, with the trace options taken in turn
    traces = [(None, False), (0.9, False), (0.9, True)]
    for i, (centered, eps_in_sqrt, bias_correction) in enumerate(itertools.product((False, True), repeat=3)):
        momentum, nesterov = traces[i % 3]
        yield "optax", dict(
            learning_rate=1e-3, decay=0.95, eps=1e-6, initial_scale=0.0, eps_in_sqrt=eps_in_sqrt,
            centered=centered, momentum=momentum, nesterov=nesterov, bias_correction=bias_correction,
        )
    yield "optax", dict(learning_rate=1e-3, centered=True, momentum=None, nesterov=True)
    yield "optax", dict(learning_rate=1e-3, centered=True, initial_scale=0.5, momentum=0.5)
    yield "dqn", dict(lr=1e-3)
    for centered in (False, True):
        for momentum in (0.0, 0.9):
            yield "keras2", dict(learning_rate=1e-3, rho=0.95, momentum=momentum, epsilon=1e-6, centered=centered)
    yield "keras2", dict(learning_rate=1e-3, momentum=0.5, epsilon=0.0, centered=True)  # epsilon 0 becomes 1e-7


CONFIGS = list(configs())


def config_id(c):
    name, kw = c
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items() if k not in ("lr", "learning_rate"))


@pytest.mark.parametrize("changing", [False, True], ids=["constant-lr", "schedule"])
@pytest.mark.parametrize("config", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_matches_independent_transcription(config, changing):
    name, kw = config
    lr = kw.get("lr", kw.get("learning_rate"))
    full = {**DEFAULTS[name], **kw}
    expected = run(TRANSCRIPTIONS[name](**full), *problem(), lr_schedule(lr, changing=changing))
    got = run_package(frameworks.make(name, **kw), *problem(), lr_schedule(lr, changing=changing))
    assert_close(got, expected)


def test_every_library_is_covered_by_the_transcriptions():
    assert frameworks.LIBRARIES == ("chainer", "torch", "keras", "tf1", "optax", "dqn")
    assert tuple(TRANSCRIPTIONS) == frameworks.PRESETS == frameworks.LIBRARIES + ("keras2",)
    assert {name for name, _ in CONFIGS} == set(frameworks.PRESETS)


#: float32 trajectories of the library and of the package differ by the rounding of their
#: operations, which each library orders its own way; the constants are computed alike.
RTOL32 = 2e-5


@pytest.mark.parametrize("changing", [False, True], ids=["constant-lr", "schedule"])
@pytest.mark.parametrize("config", CONFIGS, ids=[config_id(c) for c in CONFIGS])
def test_matches_independent_transcription_in_float32(config, changing):
    name, kw = config
    lr = kw.get("lr", kw.get("learning_rate"))
    full = {**DEFAULTS[name], **kw}
    if name in ("tf1", "optax", "keras2"):
        full["dtype"] = np.float32
    p32 = [a.astype(np.float32) for a in problem()]
    lrs = lr_schedule(lr, changing=changing)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        expected = run(TRANSCRIPTIONS[name](**full), *p32, lrs)
        got = run_package(frameworks.make(name, **kw), *p32, lrs)
    assert_close(got, expected, rtol=RTOL32)


def test_optax_float32_bias_correction_is_optax_own():
    # the first centered, bias-corrected step has a spread n̂ − ĝ² that is zero in exact arithmetic:
    # which elements round below −eps (NaN) is decided by how 1 − decay**t and the division are rounded
    rng = np.random.default_rng(0)
    w0, grad = rng.normal(size=100_000).astype(np.float32), rng.normal(size=100_000).astype(np.float32)
    kw = dict(learning_rate=1e-3, centered=True, bias_correction=True)
    full = {**DEFAULTS["optax"], **kw, "dtype": np.float32}
    with np.errstate(invalid="ignore"):
        theirs = optax_step(**full)(w0.copy(), grad, 1e-3)
        params = {"w": w0.copy()}
        frameworks.make("optax", **kw).update(params, {"w": grad})
    assert 0 < np.isnan(theirs).mean() < 0.01
    assert np.array_equal(np.isnan(params["w"]), np.isnan(theirs))
    finite = ~np.isnan(theirs)
    assert_close(params["w"][finite], theirs[finite], rtol=1e-6)


def test_tf_one_minus_rho_is_computed_in_float32():
    # TensorFlow computes 1 − ρ in the variable's dtype: 1 − float32(0.9) = 0.100000024, not float32(0.1)
    opt = frameworks.make("tf1", learning_rate=1e-3, decay=0.9)
    params = {"w": np.zeros(1, dtype=np.float32)}
    opt.update(params, {"w": np.ones(1, dtype=np.float32)})
    assert opt.state["w"].n[0] == np.float32(0.9) + (np.float32(1) - np.float32(0.9))
    assert frameworks.make("tf1", learning_rate=1e-3, decay=0.9).step_arguments(np.float32)["alpha"] == float(np.float32(0.9))
    assert frameworks.make("tf1", learning_rate=1e-3, decay=0.9).step_arguments(np.float64)["alpha"] == 0.9


def test_keras2_update_is_chosen_at_construction():
    plain = frameworks.make("keras2")
    assert plain.variant == core.CenteredVariant(eps_in_sqrt=False, lr_in_buffer=False, centered=False)
    with pytest.raises(ValueError, match="built with momentum=0"):
        plain.momentum = 0.9
    assert plain.momentum == 0.0
    heavy = frameworks.make("keras2", momentum=0.9, centered=True)
    assert heavy.variant == core.GRAVES and heavy.step_function is core.graves_step
    heavy.momentum = 0.0  # tf.keras 2 keeps its kernel update with momentum 0
    assert heavy.variant == core.GRAVES
    assert frameworks.make("keras2", epsilon=0.0).eps == 1e-7
    # a checkpoint of either kind loads into the other, with its own update
    params = {"w": np.zeros(3)}
    heavy.momentum = 0.9
    heavy.update(params, {"w": np.ones(3)})
    plain.load_state_dict(heavy.state_dict())
    assert plain.variant == core.GRAVES and plain.momentum == 0.9
    fresh = frameworks.make("keras2", momentum=0.5)
    fresh.load_state_dict(frameworks.make("keras2").state_dict())
    with pytest.raises(ValueError, match="built with momentum=0"):
        fresh.momentum = 0.5


@pytest.mark.parametrize("name", frameworks.LIBRARIES)
def test_defaults_are_the_libraries(name):
    kw = {k: v for k, v in DEFAULTS[name].items() if v is not None or k != "learning_rate"}
    if name in ("tf1", "optax"):
        kw["learning_rate"] = 1e-3
    opt = frameworks.make(name, **kw)
    explicit = frameworks.make(name, **({"learning_rate": 1e-3} if name in ("tf1", "optax") else {}))
    assert repr(opt) == repr(explicit)
    assert opt.library == name
    assert opt.initial_n == (1.0 if name == "tf1" else 0.0)


def test_transcriptions_tell_the_libraries_apart():
    # the comparison can fail: the default configurations differ pairwise by more than RTOL
    w0, h, target, noise = problem(steps=200)
    lrs = [1e-3] * 200
    runs = {}
    for name in frameworks.LIBRARIES:
        kw = {"learning_rate": 1e-3} if name in ("tf1", "optax") else {}
        runs[name] = run_package(frameworks.make(name, **kw), w0, h, target, noise, lrs)
    names = list(runs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            with pytest.raises(AssertionError):
                assert_close(runs[a], runs[b])


def test_each_known_difference_is_detected():
    p = problem()
    const, sched = lr_schedule(1e-3, changing=False), lr_schedule(1e-3)
    # eps placement: PyTorch (outside the root) against Graves (inside)
    torch_like = run(torch_step(1e-3, 0.95, 1e-4, 0.9, True), *p, const)
    with pytest.raises(AssertionError):
        assert_close(run_package(frameworks.make("chainer", lr=1e-3, alpha=0.95, momentum=0.9, eps=1e-4), *p, const), torch_like)
    # lr placement: with eps = 0 the two agree under a constant lr, and not under a schedule
    chainer0 = frameworks.make("chainer", lr=1e-3, alpha=0.95, momentum=0.9, eps=0.0)
    assert_close(run_package(chainer0, *p, const), run(torch_step(1e-3, 0.95, 0.0, 0.9, True), *p, const))
    chainer0.reset()
    with pytest.raises(AssertionError):
        assert_close(run_package(chainer0, *p, sched), run(torch_step(1e-3, 0.95, 0.0, 0.9, True), *p, sched))
    # initial n: TF1 against Keras, otherwise the same algorithm
    keras = frameworks.make("keras", learning_rate=1e-3, rho=0.95, momentum=0.9, epsilon=1e-6, centered=True)
    with pytest.raises(AssertionError):
        assert_close(run_package(keras, *p, const), run(tf1_step(1e-3, 0.95, 0.9, 1e-6, True), *p, const))


# -- the variants --------------------------------------------------------------------


def test_variants_and_initial_n():
    v = frameworks.make("torch", centered=True).variant
    assert v == core.CenteredVariant(eps_in_sqrt=False, lr_in_buffer=False, centered=True)
    assert frameworks.make("keras", centered=True).variant == core.GRAVES
    assert frameworks.make("keras").variant == core.CenteredVariant(centered=False)
    assert frameworks.make("tf1", learning_rate=0.1, centered=True).initial_n == 1.0
    o = frameworks.make("optax", learning_rate=0.1, initial_scale=0.25, momentum=0.5, nesterov=True, eps_in_sqrt=False)
    assert o.initial_n == 0.25
    assert o.variant == core.CenteredVariant(eps_in_sqrt=False, nesterov=True, centered=False)
    # optax ignores nesterov without momentum
    assert not frameworks.make("optax", learning_rate=0.1, nesterov=True).variant.nesterov


def test_read_only_configuration_and_settable_hyperparameters():
    opt = frameworks.make("keras", learning_rate=0.01, rho=0.8, momentum=0.5, epsilon=1e-3, centered=True)
    assert (opt.lr, opt.alpha, opt.momentum, opt.eps) == (0.01, 0.8, 0.5, 1e-3)
    opt.lr, opt.alpha, opt.momentum, opt.eps = 0.02, 0.9, 0.6, 1e-4
    assert opt.hyperparameters() == dict(lr=0.02, alpha=0.9, momentum=0.6, eps=1e-4)
    for attr in ("library", "variant", "initial_n"):
        with pytest.raises(AttributeError):
            setattr(opt, attr, getattr(opt, attr))
    with pytest.raises(ValueError, match="alpha"):
        opt.alpha = 1.0
    dqn = frameworks.make("dqn")
    assert (dqn.alpha, dqn.momentum, dqn.eps) == (0.95, 0.0, 0.01)
    with pytest.raises(ValueError, match="fixed"):
        dqn.eps = 0.02
    assert (dqn.alpha, dqn.momentum, dqn.eps) == (0.95, 0.0, 0.01)


def test_uncentered_never_touches_g():
    for name, kw in CONFIGS:
        if kw.get("centered", True) is False:
            opt = frameworks.make(name, **kw)
            params = {"w": np.ones(4)}
            for _ in range(3):
                opt.update(params, {"w": np.arange(4.0) - 1.5})
            assert not np.any(opt.state["w"].g), (name, kw)


def test_only_graves_variants_take_the_compiled_path():
    for name, kw in CONFIGS:
        opt = frameworks.make(name, **kw)
        if opt.variant == core.GRAVES:
            assert opt.step_function is core.graves_step
        else:
            assert opt.step_function.func is core.centered_rmsprop_step
            assert opt.step_function.keywords == {"variant": opt.variant, "step": opt.step_count + 1}
            assert fused.kernel_for(opt.step_function, np.float64) is None
            assert fused.kernel_for(opt.step_function, np.float32) is None


@pytest.mark.parametrize("config", CONFIGS[::3], ids=[config_id(c) for c in CONFIGS[::3]])
def test_compiled_and_numpy_paths_agree_bitwise(config):
    name, kw = config
    rng = np.random.default_rng(3)
    ps = [{"w": rng.normal(size=300).astype(np.float32)} for _ in range(2)]
    ps[1]["w"][...] = ps[0]["w"]
    opts = [frameworks.make(name, **kw, compiled=c, block_size=64) for c in (True, False)]
    for t in range(20):
        g = rng.normal(size=300).astype(np.float32)
        for o, p in zip(opts, ps):
            with np.errstate(invalid="ignore"):
                o.update(p, {"w": g})
    # bits, NaN included: eps outside the root turns a spread n − g² that rounds
    # below zero into NaN (float32, bias correction at step 1), on both paths alike
    assert np.array_equal(ps[0]["w"].view(np.uint32), ps[1]["w"].view(np.uint32))


def test_core_centered_false_branch_directly():
    # uncentered, with and without bias correction, against the formula
    rng = np.random.default_rng(5)
    for bias_correction in (False, True):
        w, grad = rng.normal(size=8), rng.normal(size=8)
        state = core.CenteredState(np.full(8, 0.3), np.full(8, 7.0), np.zeros(8))
        expected_n = 0.9 * 0.3 + 0.1 * grad**2
        n_hat = expected_n / (1 - 0.9**3) if bias_correction else expected_n
        expected_w = w - 0.01 * grad / np.sqrt(n_hat + 1e-3)
        v = core.CenteredVariant(centered=False, bias_correction=bias_correction)
        core.centered_rmsprop_step(w, grad, state, lr=0.01, alpha=0.9, momentum=0.0, eps=1e-3, variant=v, step=3)
        np.testing.assert_allclose(state.n, expected_n, rtol=1e-15)
        np.testing.assert_allclose(w, expected_w, rtol=1e-14)
        assert np.all(state.g == 7.0)


# -- errors ----------------------------------------------------------------------------


def test_unknown_library_lists_the_libraries():
    before = dict(graves.optimizers.registry())
    for bad in ("mxnet", "Torch", ""):
        with pytest.raises(ValueError) as info:
            frameworks.make(bad, lr=0.1)
        for name in frameworks.LIBRARIES:
            assert repr(name) in str(info.value)
        with pytest.raises(ValueError):
            frameworks.from_graves(bad)
    with pytest.raises(TypeError, match="chainer"):
        frameworks.make(None)
    assert graves.optimizers.registry() == before


SIGNATURES = {
    "chainer": ["lr", "alpha", "momentum", "eps"],
    "torch": ["lr", "alpha", "eps", "weight_decay", "momentum", "centered"],
    "keras": ["learning_rate", "rho", "momentum", "epsilon", "centered"],
    "tf1": ["learning_rate", "decay", "momentum", "epsilon", "centered"],
    "optax": ["learning_rate", "decay", "eps", "initial_scale", "eps_in_sqrt", "centered", "momentum", "nesterov", "bias_correction"],
    "dqn": ["lr"],
}


@pytest.mark.parametrize("name", frameworks.LIBRARIES)
def test_unknown_keyword_lists_the_accepted_ones(name):
    for bad in ("learning_rate_typo", "lr" if name in ("keras", "tf1", "optax") else "rho", "nesterov" if name != "optax" else "maximize"):
        with pytest.raises(TypeError) as info:
            frameworks.make(name, learning_rate=0.1, **{bad: 0.1}) if name in ("tf1", "optax") else frameworks.make(name, **{bad: 0.1})
        message = str(info.value)
        assert repr(bad) in message
        for keyword in SIGNATURES[name] + list(frameworks.RUN_OPTIONS):
            assert keyword in message


@pytest.mark.parametrize(
    "name, kwargs, error, match",
    [
        ("tf1", {}, TypeError, "learning_rate"),
        ("optax", {"decay": 0.9}, TypeError, "learning_rate"),
        ("torch", {"weight_decay": 1e-4}, ValueError, "weight_decay"),
        ("torch", {"centered": 1}, TypeError, "centered"),
        ("torch", {"lr": -1.0}, ValueError, "lr"),
        ("keras", {"rho": 1.0}, ValueError, "rho"),
        ("keras", {"learning_rate": "1e-3"}, TypeError, "learning_rate"),
        ("tf1", {"learning_rate": 0.1, "epsilon": -1.0}, ValueError, "epsilon"),
        ("optax", {"learning_rate": lambda t: 0.1}, TypeError, "learning_rate"),
        ("optax", {"learning_rate": 0.1, "initial_scale": -1.0}, ValueError, "initial_scale"),
        ("optax", {"learning_rate": 0.1, "momentum": 1.5}, ValueError, "momentum"),
        ("optax", {"learning_rate": 0.1, "eps_in_sqrt": "yes"}, TypeError, "eps_in_sqrt"),
        ("dqn", {"alpha": 0.9}, TypeError, "chainer"),
        ("dqn", {"eps": 0.01}, TypeError, "fixes"),
        ("chainer", {"nonfinite": "ignore"}, ValueError, "nonfinite"),
    ],
)
def test_bad_values_raise(name, kwargs, error, match):
    before = dict(graves.optimizers.registry())
    with pytest.raises(error, match=match):
        frameworks.make(name, **kwargs)
    assert graves.optimizers.registry() == before


def test_weight_decay_zero_is_accepted():
    assert frameworks.make("torch", weight_decay=0).variant == frameworks.make("torch").variant
    assert frameworks.make("torch", weight_decay=0.0, nonfinite="skip").nonfinite == "skip"


# -- from_graves ----------------------------------------------------------------------------


def graves_trajectory(lr, alpha, momentum, eps, lrs, **options):
    opt = graves.RMSpropGraves(lr=lr, alpha=alpha, momentum=momentum, eps=eps, **options)
    return run_package(opt, *problem(steps=len(lrs)), lrs)


@pytest.mark.parametrize("name", frameworks.LIBRARIES)
def test_from_graves_defaults(name):
    conv = frameworks.from_graves(name)
    assert isinstance(conv, frameworks.Conversion) and isinstance(conv.note, str) and conv.note
    opt = frameworks.make(name, **conv.kwargs)
    assert conv.exact == (name in ("chainer", "keras", "optax"))
    lrs = lr_schedule(1e-3, steps=300)
    ours = run_package(opt, *problem(steps=300), lrs)
    reference = graves_trajectory(1e-3, 0.95, 0.9, 1e-4, lrs)
    if conv.exact:
        assert np.array_equal(ours, reference)
    else:
        assert not np.allclose(ours, reference, rtol=1e-6, atol=0)


def test_from_graves_notes():
    assert "outside" in frameworks.from_graves("torch").note
    assert "constant" in frameworks.from_graves("torch").note
    assert "at 1" in frameworks.from_graves("tf1").note
    fade = math.ceil(math.log(1e-6) / math.log(0.95))
    assert f"after {fade} steps" in frameworks.from_graves("tf1").note
    assert "momentum=0.9" in frameworks.from_graves("dqn").note


def test_from_graves_dqn_exact_only_for_its_constants():
    conv = frameworks.from_graves("dqn", lr=1e-3, alpha=0.95, momentum=0.0, eps=0.01)
    assert conv.exact and conv.kwargs == {"lr": 1e-3}
    lrs = lr_schedule(1e-3, steps=300)
    ours = run_package(frameworks.make("dqn", **conv.kwargs), *problem(steps=300), lrs)
    assert np.array_equal(ours, graves_trajectory(1e-3, 0.95, 0.0, 0.01, lrs))
    for other in (dict(alpha=0.9, momentum=0.0, eps=0.01), dict(alpha=0.95, momentum=0.0, eps=1e-4)):
        assert not frameworks.from_graves("dqn", lr=1e-3, **other).exact


def test_from_graves_torch_exact_without_eps_and_momentum():
    conv = frameworks.from_graves("torch", lr=1e-3, alpha=0.9, momentum=0.0, eps=0.0)
    assert conv.exact and conv.kwargs["eps"] == 0.0
    lrs = lr_schedule(1e-3, steps=300)
    ours = run_package(frameworks.make("torch", **conv.kwargs), *problem(steps=300), lrs)
    assert np.array_equal(ours, graves_trajectory(1e-3, 0.9, 0.0, 0.0, lrs))
    assert not frameworks.from_graves("torch", lr=1e-3, alpha=0.9, momentum=0.5, eps=0.0).exact


def test_torch_eps_is_the_minimax_choice():
    eps = 1e-4
    torch_eps = frameworks.from_graves("torch", eps=eps).kwargs["eps"]
    v = np.concatenate([[0.0], np.logspace(-12, 4, 20001)])
    ratio = (np.sqrt(v) + torch_eps) / np.sqrt(v + eps)
    bound = math.sqrt((1 + math.sqrt(5)) / 2)
    assert ratio.max() <= bound * (1 + 1e-12) and ratio.min() >= (1 - 1e-12) / bound
    assert ratio.max() > bound * (1 - 1e-6) and ratio.min() < (1 + 1e-6) / bound  # both ends attained
    for other in (0.9 * torch_eps, 1.1 * torch_eps, eps, math.sqrt(eps)):  # any other eps is worse
        r = (np.sqrt(v) + other) / np.sqrt(v + eps)
        assert max(r.max(), 1 / r.min()) > bound


def test_from_graves_checks_its_input():
    with pytest.raises(ValueError, match="alpha"):
        frameworks.from_graves("keras", alpha=1.0)
    with pytest.raises(ValueError, match="lr"):
        frameworks.from_graves("keras", lr=0.0)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(frameworks.LIBRARIES),
    lr=st.floats(1e-5, 1e-1),
    alpha=st.sampled_from([0.95, 0.9, 0.99]) | st.floats(0.01, 0.999),
    momentum=st.sampled_from([0.0, 0.5, 0.9]) | st.floats(0.0, 0.99),
    eps=st.sampled_from([0.0, 1e-8, 1e-4, 0.01]) | st.floats(1e-10, 1.0),
)
def test_from_graves_property(name, lr, alpha, momentum, eps):
    """make accepts every conversion; an exact one reproduces RMSpropGraves bit for bit."""
    conv = frameworks.from_graves(name, lr=lr, alpha=alpha, momentum=momentum, eps=eps)
    opt = frameworks.make(name, **conv.kwargs)
    assert opt.lr == lr
    assert conv.exact == (
        name in ("chainer", "keras", "optax")
        or (name == "torch" and eps == 0 and momentum == 0)
        or (name == "dqn" and (alpha, momentum, eps) == (0.95, 0.0, 0.01))
    )
    if conv.exact:
        lrs = lr_schedule(lr, steps=40)
        ours = run_package(opt, *problem(steps=40), lrs)
        assert np.array_equal(ours, graves_trajectory(lr, alpha, momentum, eps, lrs))


# -- checkpoints ------------------------------------------------------------------------------


def few_steps(opt, params, seed, steps=7):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        opt.update(params, {k: rng.normal(size=np.shape(v)) for k, v in params.items()})


ROUND_TRIP = [
    ("torch", dict(lr=0.01, momentum=0.9, centered=True)),
    ("optax", dict(learning_rate=0.01, bias_correction=True, centered=True, momentum=0.9, nesterov=True, eps_in_sqrt=False, initial_scale=0.1)),
    ("tf1", dict(learning_rate=0.01, centered=True, momentum=0.5)),
    ("keras", dict(centered=False)),
    ("chainer", dict()),
    ("dqn", dict(lr=0.01)),
]


@pytest.mark.parametrize("name, kw", ROUND_TRIP, ids=[n for n, _ in ROUND_TRIP])
def test_state_dict_round_trip(name, kw, tmp_path):
    opt = frameworks.make(name, **kw)
    params = {"a": np.ones(5), "b": np.zeros((2, 3))}
    few_steps(opt, params, 1)
    d = opt.state_dict()
    assert d["optimizer"] == f"frameworks.{name}"

    # into a fresh optimizer of the same library with its default configuration
    fresh = frameworks.make(name, **({"learning_rate": 0.5} if name in ("tf1", "optax") else {}))
    fresh.load_state_dict(d)
    assert fresh.variant == opt.variant and fresh.initial_n == opt.initial_n
    assert repr(fresh) == repr(opt) and fresh.step_count == opt.step_count
    p2 = {k: v.copy() for k, v in params.items()}
    few_steps(opt, params, 2)
    few_steps(fresh, p2, 2)
    for k in params:
        assert np.array_equal(params[k], p2[k])

    # and through a file, with graves.load
    opt.save(tmp_path / "c.npz")
    again = graves.load(tmp_path / "c.npz")
    assert type(again) is type(opt) and repr(again) == repr(opt) and again.variant == opt.variant
    p3 = {k: v.copy() for k, v in params.items()}
    few_steps(opt, params, 3)
    few_steps(again, p3, 3)
    for k in params:
        assert np.array_equal(params[k], p3[k])


def test_bad_state_dicts_change_nothing():
    opt = frameworks.make("torch", centered=True, momentum=0.9)
    few_steps(opt, {"w": np.ones(3)}, 1)
    good = opt.state_dict()
    snapshot = repr(opt), opt.variant, {k: [a.copy() for a in s] for k, s in opt.state.items()}

    def same():
        assert (repr(opt), opt.variant) == snapshot[:2]
        for k, s in opt.state.items():
            assert all(np.array_equal(a, b) for a, b in zip(s, snapshot[2][k]))

    other = frameworks.make("keras", centered=True)
    few_steps(other, {"w": np.ones(3)}, 1)
    cases = [
        ({k: v for k, v in good.items() if k != "config/centered"}, ValueError, "config/centered"),
        ({**good, "config/centered": "yes"}, TypeError, "centered"),
        ({**good, "config/eps_in_sqrt": True}, ValueError, "unexpected"),
        ({**good, "hp/lr": -1.0}, ValueError, "lr"),
        ({**good, "config/centered": False, "hp/alpha": 2.0}, ValueError, "alpha"),
        (other.state_dict(), ValueError, "frameworks.keras"),
        (graves.RMSpropGraves().state_dict(), ValueError, "RMSpropGraves"),
        ([1, 2], TypeError, "dict"),
    ]
    for d, error, match in cases:
        with pytest.raises(error, match=match):
            opt.load_state_dict(d)
        same()


def test_checkpoint_reset_and_initial_n():
    opt = frameworks.make("tf1", learning_rate=0.1, centered=True)
    params = {"w": np.zeros(3, dtype=np.float32)}
    opt.update(params, {"w": np.zeros(3, dtype=np.float32)})
    assert opt.state["w"].n.dtype == np.float32
    assert np.all(opt.state["w"].n == np.float32(0.9))  # 1 · decay + (1 − decay) · 0
    opt.reset()
    assert opt.state == {} and opt.step_count == 0
    opt.update(params, {"w": np.zeros(3, dtype=np.float32)})
    assert np.all(opt.state["w"].n == np.float32(0.9))


def test_float16_dqn_keeps_its_constants():
    opt = frameworks.make("dqn", lr=0.01)
    params = {"w": np.ones(3, dtype=np.float16)}
    opt.update(params, {"w": np.ones(3, dtype=np.float16)})
    assert params["w"].dtype == np.float16 and np.all(params["w"] < 1)
