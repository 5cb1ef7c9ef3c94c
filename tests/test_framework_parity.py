"""graves.frameworks against the real libraries, where they are installed.

Each test imports its library with ``pytest.importorskip`` and is skipped
without it, so the default (numpy-only) suite runs none of them.  Each runs
1,000 float64 steps of the library's own optimizer and of
``graves.frameworks.make`` on a noisy quadratic whose gradient depends on the
parameters, with a constant lr and with an lr changed before every step, and
requires agreement to 1e-10 relative (the largest difference over the
trajectory, divided by the largest parameter magnitude).

DQN has no test here: its optimizer lives in Lua (Torch7) code; tests/test_frameworks.py
checks it against a transcription of that code.
"""

from __future__ import annotations

import importlib.util
import itertools
import os

import numpy as np
import pytest

import graves.frameworks  # noqa: F401  (the module itself, before the package attribute)
from graves import frameworks

from framework_problem import STEPS, lr_schedule, problem

RTOL = 1e-10
CHANGING = pytest.mark.parametrize("changing", [False, True], ids=["constant-lr", "schedule"])


def run(step, w0, h, target, noise, lrs):
    """Trajectory of ``step(grad, lr)`` (which returns the new parameters as numpy)."""
    w = w0.copy()
    out = np.empty((len(lrs), w.size))
    for t, lr in enumerate(lrs):
        w = step(h * (w - target) + noise[t], lr)
        out[t] = w
    return out


def ours(name, kw, w0, lrs):
    opt = frameworks.make(name, **kw)
    params = {"w": w0.copy()}

    def step(grad, lr):
        opt.lr = lr
        opt.update(params, {"w": grad})
        return params["w"].copy()

    return step


def compare(name, kw, theirs_factory, changing, lr_key):
    w0, h, target, noise = problem()
    lrs = lr_schedule(kw[lr_key], changing=changing)
    theirs = run(theirs_factory(w0.copy(), lrs), w0, h, target, noise, lrs)
    mine = run(ours(name, kw, w0, lrs), w0, h, target, noise, lrs)
    assert np.all(np.isfinite(theirs)) and np.all(np.isfinite(mine))
    err, scale = np.max(np.abs(mine - theirs)), np.max(np.abs(theirs))
    assert err <= RTOL * scale, f"{name} {kw}: max difference {err:.3e} > {RTOL} x {scale:.3e}"


def both(**choices):
    return [dict(zip(choices, values)) for values in itertools.product(*choices.values())]


def ids(configs):
    return ["-".join(f"{k}={v}" for k, v in c.items()) for c in configs]


# -- PyTorch ------------------------------------------------------------------------------

TORCH = [dict(lr=1e-3, alpha=0.95, eps=1e-6, **c) for c in both(momentum=[0.0, 0.9], centered=[False, True])]
TORCH.append(dict(lr=1e-3, eps=0.0, momentum=0.9, centered=True))


@CHANGING
@pytest.mark.parametrize("kw", TORCH, ids=ids(TORCH))
def test_torch(kw, changing):
    torch = pytest.importorskip("torch")

    def factory(w0, lrs):
        p = torch.nn.Parameter(torch.from_numpy(w0))
        opt = torch.optim.RMSprop([p], **kw)

        def step(grad, lr):
            opt.param_groups[0]["lr"] = lr
            p.grad = torch.from_numpy(grad.copy())
            opt.step()
            return p.detach().numpy().copy()

        return step

    compare("torch", kw, factory, changing, "lr")


# -- Optax --------------------------------------------------------------------------------

OPTAX = []
for i, (centered, eps_in_sqrt, bias_correction) in enumerate(itertools.product((False, True), repeat=3)):
    momentum, nesterov = [(None, False), (0.9, False), (0.9, True)][i % 3]
    # Centered with bias correction, the first spread n̂ − ĝ² is zero in exact arithmetic and
    # ±1e-15 after round-off, which XLA and numpy round differently: with eps=1e-6 in the root
    # the first step differs by ~1e-9 relative; outside the root it is NaN or a huge step
    # (test_optax_round_off_nan_is_reproduced).  That combination starts from initial_scale=0.1.
    degenerate = centered and bias_correction
    OPTAX.append(dict(learning_rate=1e-3, decay=0.95, eps=1e-6, eps_in_sqrt=eps_in_sqrt, centered=centered,
                      momentum=momentum, nesterov=nesterov, bias_correction=bias_correction,
                      initial_scale=0.1 if degenerate else 0.0))
OPTAX.append(dict(learning_rate=1e-3, centered=True, initial_scale=0.5, momentum=0.5))


def enable_x64():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


@CHANGING
@pytest.mark.parametrize("kw", OPTAX, ids=ids(OPTAX))
def test_optax(kw, changing):
    jax = enable_x64()
    jnp = jax.numpy
    optax = pytest.importorskip("optax")

    def factory(w0, lrs):
        table = jnp.asarray(lrs, dtype=jnp.float64)
        # a schedule is Optax's way to change lr: a function of the step count
        lr = (lambda count: table[count]) if changing else lrs[0]
        tx = optax.rmsprop(**{**kw, "learning_rate": lr})
        box = {"w": jnp.asarray(w0), "state": tx.init(jnp.asarray(w0))}

        @jax.jit
        def apply(w, g, state):
            updates, state = tx.update(g, state, w)
            return optax.apply_updates(w, updates), state

        def step(grad, _lr):
            box["w"], box["state"] = apply(box["w"], jnp.asarray(grad), box["state"])
            assert box["w"].dtype == jnp.float64
            return np.asarray(box["w"]).copy()

        return step

    compare("optax", kw, factory, changing, "learning_rate")


def test_optax_round_off_nan_is_reproduced():
    # Centered with bias correction, the first step's spread n̂ − ĝ² is zero in exact arithmetic and
    # rounds to ±1e-15; with eps outside the root a negative one is NaN.  The package rounds as Optax
    # does, so the same elements become NaN and the others take the same (huge) step.
    jax = enable_x64()
    jnp = jax.numpy
    optax = pytest.importorskip("optax")
    kw = dict(learning_rate=1e-3, decay=0.95, eps=1e-6, eps_in_sqrt=False, centered=True, bias_correction=True)
    rng = np.random.default_rng(0)
    w0, grad = rng.normal(size=64), rng.normal(size=64)
    tx = optax.rmsprop(**kw)
    updates, _ = tx.update(jnp.asarray(grad), tx.init(jnp.asarray(w0)))
    theirs = np.asarray(optax.apply_updates(jnp.asarray(w0), updates))
    params = {"w": w0.copy()}
    with np.errstate(invalid="ignore"):
        frameworks.make("optax", **kw).update(params, {"w": grad})
    assert np.isnan(theirs).any() and not np.isnan(theirs).all()
    assert np.array_equal(np.isnan(params["w"]), np.isnan(theirs))
    finite = ~np.isnan(theirs)
    np.testing.assert_allclose(params["w"][finite], theirs[finite], rtol=RTOL, atol=0)


# -- Keras 3 --------------------------------------------------------------------------------

KERAS = [dict(learning_rate=1e-3, rho=0.95, epsilon=1e-6, **c) for c in both(momentum=[0.0, 0.9], centered=[False, True])]


def import_keras():
    if "KERAS_BACKEND" not in os.environ and importlib.util.find_spec("jax") is not None:
        os.environ["KERAS_BACKEND"] = "jax"  # read once, when keras is first imported
    if os.environ.get("KERAS_BACKEND") == "jax":
        enable_x64()
    keras = pytest.importorskip("keras")
    keras.config.set_floatx("float64")  # the learning-rate variable takes this dtype
    return keras


@CHANGING
@pytest.mark.parametrize("kw", KERAS, ids=ids(KERAS))
def test_keras(kw, changing):
    keras = import_keras()

    def factory(w0, lrs):
        var = keras.Variable(w0, dtype="float64")
        opt = keras.optimizers.RMSprop(**kw)
        opt.build([var])

        def step(grad, lr):
            opt.learning_rate = lr
            opt.apply_gradients([(keras.ops.convert_to_tensor(grad, dtype="float64"), var)])
            return np.array(keras.ops.convert_to_numpy(var.value), dtype=np.float64)

        return step

    compare("keras", kw, factory, changing, "learning_rate")


# -- TensorFlow 1 (tf.compat.v1) ----------------------------------------------------------------

TF1 = [dict(learning_rate=1e-3, decay=0.95, epsilon=1e-6, **c) for c in both(momentum=[0.0, 0.9], centered=[False, True])]
TF1.append(dict(learning_rate=1e-3, decay=0.9, momentum=0.9, epsilon=1e-10, centered=True))  # TF1's defaults


@CHANGING
@pytest.mark.parametrize("kw", TF1, ids=ids(TF1))
def test_tf1(kw, changing):
    tf = pytest.importorskip("tensorflow")

    def factory(w0, lrs):
        var = tf.Variable(w0, dtype=tf.float64)
        box = [lrs[0]]
        # TF1 converts a Python float hyperparameter to a float32 tensor and casts it to the
        # variable's dtype, rounding 0.9 to float32; float64 tensors keep the values exact.
        f64 = {k: tf.constant(float(v), tf.float64) for k, v in kw.items() if k in ("decay", "momentum", "epsilon")}
        opt = tf.compat.v1.train.RMSPropOptimizer(
            learning_rate=lambda: tf.constant(box[0], tf.float64), centered=kw["centered"], **f64
        )

        def step(grad, lr):
            box[0] = lr
            opt.apply_gradients([(tf.constant(grad, tf.float64), var)])
            return var.numpy().copy()

        return step

    compare("tf1", kw, factory, changing, "learning_rate")


def test_tf1_rounds_python_float_hyperparameters_to_float32():
    # Given Python floats, TF1 makes float32 tensors of decay, momentum and epsilon and casts them
    # to the variable's dtype: a float64 model runs with decay = float32(0.9) = 0.8999999762.
    # make("tf1") with those rounded values reproduces it; with 0.9 itself it does not.
    tf = pytest.importorskip("tensorflow")
    w0, h, target, noise = problem()
    lrs = lr_schedule(1e-3)
    var = tf.Variable(w0.copy(), dtype=tf.float64)
    box = [lrs[0]]
    opt = tf.compat.v1.train.RMSPropOptimizer(
        learning_rate=lambda: tf.constant(box[0], tf.float64), decay=0.9, momentum=0.9, epsilon=1e-10, centered=True
    )

    def step(grad, lr):
        box[0] = lr
        opt.apply_gradients([(tf.constant(grad, tf.float64), var)])
        return var.numpy().copy()

    theirs = run(step, w0, h, target, noise, lrs)
    f32 = lambda x: float(np.float32(x))  # noqa: E731
    rounded = dict(learning_rate=1e-3, decay=f32(0.9), momentum=f32(0.9), epsilon=f32(1e-10), centered=True)
    exact = dict(learning_rate=1e-3, decay=0.9, momentum=0.9, epsilon=1e-10, centered=True)
    scale = np.max(np.abs(theirs))
    err_rounded = np.max(np.abs(run(ours("tf1", rounded, w0, lrs), w0, h, target, noise, lrs) - theirs))
    err_exact = np.max(np.abs(run(ours("tf1", exact, w0, lrs), w0, h, target, noise, lrs) - theirs))
    assert err_rounded <= RTOL * scale
    assert err_exact > 100 * RTOL * scale


# -- Chainer -----------------------------------------------------------------------------------


def import_chainer():
    try:
        return pytest.importorskip("chainer")
    except pytest.skip.Exception:
        raise
    except Exception as exc:  # chainer 7.8, the last release, fails to import under numpy >= 2
        pytest.skip(f"chainer is installed but cannot be imported ({type(exc).__name__}: {exc}); it needs numpy<2")


CHAINER = [dict(lr=1e-3), dict(lr=1e-3, alpha=0.9, momentum=0.0, eps=1e-6), dict(lr=2.5e-4, alpha=0.95, momentum=0.0, eps=0.01)]


def chainer_step(chainer, w0, kw):
    """``step(grad, lr)`` of Chainer's RMSpropGraves(**kw) on one parameter started at ``w0``."""
    link = chainer.Link()
    with link.init_scope():
        link.w = chainer.Parameter(w0.copy())
    opt = chainer.optimizers.RMSpropGraves(**kw)
    opt.setup(link)

    def step(grad, lr):
        opt.lr = lr
        link.w.grad = grad.copy()
        opt.update()
        return np.array(link.w.array, dtype=np.float64)

    return step


@CHANGING
@pytest.mark.parametrize("kw", CHAINER, ids=ids(CHAINER))
def test_chainer(kw, changing):
    chainer = import_chainer()
    compare("chainer", kw, lambda w0, lrs: chainer_step(chainer, w0, kw), changing, "lr")


@CHANGING
def test_chainer_dqn_configuration_is_dqn(changing):
    # ChainerRL's DQN setting, RMSpropGraves(lr=2.5e-4, alpha=0.95, momentum=0, eps=1e-2), against make("dqn")
    chainer = import_chainer()
    w0, h, target, noise = problem()
    lrs = lr_schedule(2.5e-4, changing=changing)
    step = chainer_step(chainer, w0, dict(lr=2.5e-4, alpha=0.95, momentum=0.0, eps=1e-2))
    theirs = run(step, w0, h, target, noise, lrs)
    mine = run(ours("dqn", dict(lr=2.5e-4), w0, lrs), w0, h, target, noise, lrs)
    assert np.max(np.abs(mine - theirs)) <= RTOL * np.max(np.abs(theirs))
