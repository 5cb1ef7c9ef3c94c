"""graves.frameworks against the real libraries, where they are installed.

Each test imports its library with ``pytest.importorskip`` and is skipped
without it, so the default (numpy-only) suite runs none of them.  Each runs
1,000 steps of the library's own optimizer and of ``graves.frameworks.make``
on a noisy quadratic whose gradient depends on the parameters, with a constant
lr and with an lr changed before every step, in float64 and in float32, and
requires agreement to 1e-10 relative in float64 and 2e-5 in float32 (the
largest difference over the trajectory, divided by the largest parameter
magnitude).  In float32 the libraries round their operations in their own
order, so only the constants can agree exactly; a constant computed in the
wrong dtype shows as a larger gap (test_optax_float32_nan_pattern).

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
RTOL32 = 2e-5
CHANGING = pytest.mark.parametrize("changing", [False, True], ids=["constant-lr", "schedule"])
DTYPES = pytest.mark.parametrize("dtype", ["float64", "float32"])


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


def compare(name, kw, theirs_factory, changing, lr_key, dtype="float64"):
    w0, h, target, noise = (a.astype(dtype) for a in problem())
    lrs = lr_schedule(kw[lr_key], changing=changing)
    theirs = run(theirs_factory(w0.copy(), lrs), w0, h, target, noise, lrs)
    mine = run(ours(name, kw, w0, lrs), w0, h, target, noise, lrs)
    assert np.all(np.isfinite(theirs)) and np.all(np.isfinite(mine))
    err, scale = np.max(np.abs(mine - theirs)), np.max(np.abs(theirs))
    rtol = RTOL if dtype == "float64" else RTOL32
    assert err <= rtol * scale, f"{name} {kw} {dtype}: max difference {err:.3e} > {rtol} x {scale:.3e}"


def both(**choices):
    return [dict(zip(choices, values)) for values in itertools.product(*choices.values())]


def ids(configs):
    return ["-".join(f"{k}={v}" for k, v in c.items()) for c in configs]


# -- PyTorch ------------------------------------------------------------------------------

TORCH = [dict(lr=1e-3, alpha=0.95, eps=1e-6, **c) for c in both(momentum=[0.0, 0.9], centered=[False, True])]
TORCH.append(dict(lr=1e-3, eps=0.0, momentum=0.9, centered=True))


@DTYPES
@CHANGING
@pytest.mark.parametrize("kw", TORCH, ids=ids(TORCH))
def test_torch(kw, changing, dtype):
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

    compare("torch", kw, factory, changing, "lr", dtype)


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


def enable_x64(on=True):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", on)
    return jax


@DTYPES
@CHANGING
@pytest.mark.parametrize("kw", OPTAX, ids=ids(OPTAX))
def test_optax(kw, changing, dtype):
    # float32 under JAX's default configuration (x64 off), where Optax computes 1 − decay**t in float32
    jax = enable_x64(dtype == "float64")
    jnp = jax.numpy
    optax = pytest.importorskip("optax")

    def factory(w0, lrs):
        table = jnp.asarray(lrs, dtype=dtype)
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
            assert box["w"].dtype == dtype
            return np.asarray(box["w"]).copy()

        return step

    try:
        compare("optax", kw, factory, changing, "learning_rate", dtype)
    finally:
        enable_x64(True)


def test_optax_float32_nan_pattern():
    # Centered with bias correction in float32, the first spread n̂ − ĝ² is zero in exact arithmetic;
    # which elements round below −eps (NaN) depends on how 1 − decay**t is computed and applied.
    jax = enable_x64(False)
    try:
        jnp = jax.numpy
        optax = pytest.importorskip("optax")
        rng = np.random.default_rng(0)
        w0, grads = rng.normal(size=100_000).astype(np.float32), rng.normal(size=(5, 100_000)).astype(np.float32)
        kw = dict(learning_rate=1e-3, centered=True, bias_correction=True)
        tx = optax.rmsprop(**kw)
        w, state = jnp.asarray(w0), tx.init(jnp.asarray(w0))
        opt, params = frameworks.make("optax", **kw), {"w": w0.copy()}
        for t, g in enumerate(grads):
            updates, state = tx.update(jnp.asarray(g), state, w)
            w = optax.apply_updates(w, updates)
            with np.errstate(invalid="ignore"):
                opt.update(params, {"w": g})
            theirs = np.asarray(w)
            assert np.array_equal(np.isnan(params["w"]), np.isnan(theirs)), f"step {t + 1}"
        finite = ~np.isnan(theirs)
        assert 0 < np.isnan(theirs).mean() < 0.01
        err = np.max(np.abs(params["w"][finite] - theirs[finite]))
        assert err <= 1e-6 * np.max(np.abs(theirs[finite]))
    finally:
        enable_x64(True)


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


@DTYPES
@CHANGING
@pytest.mark.parametrize("kw", KERAS, ids=ids(KERAS))
def test_keras(kw, changing, dtype):
    keras = import_keras()

    def factory(w0, lrs):
        keras.config.set_floatx(dtype)  # the learning-rate variable takes this dtype
        var = keras.Variable(w0, dtype=dtype)
        opt = keras.optimizers.RMSprop(**kw)
        opt.build([var])

        def step(grad, lr):
            opt.learning_rate = lr
            opt.apply_gradients([(keras.ops.convert_to_tensor(grad, dtype=dtype), var)])
            return np.array(keras.ops.convert_to_numpy(var.value), dtype=dtype)

        return step

    try:
        compare("keras", kw, factory, changing, "learning_rate", dtype)
    finally:
        keras.config.set_floatx("float64")


# -- TensorFlow 1 (tf.compat.v1) ----------------------------------------------------------------

TF1 = [dict(learning_rate=1e-3, decay=0.95, epsilon=1e-6, **c) for c in both(momentum=[0.0, 0.9], centered=[False, True])]
TF1.append(dict(learning_rate=1e-3, decay=0.9, momentum=0.9, epsilon=1e-10, centered=True))  # TF1's defaults


@DTYPES
@CHANGING
@pytest.mark.parametrize("kw", TF1, ids=ids(TF1))
def test_tf1(kw, changing, dtype):
    tf = pytest.importorskip("tensorflow")
    tf_dtype = getattr(tf, dtype)

    def factory(w0, lrs):
        var = tf.Variable(w0, dtype=tf_dtype)
        box = [lrs[0]]
        # TF1 converts a Python float hyperparameter to a float32 tensor and casts it to the
        # variable's dtype, rounding 0.9 to float32; tensors of the variable's dtype keep the values.
        same = {k: tf.constant(float(v), tf_dtype) for k, v in kw.items() if k in ("decay", "momentum", "epsilon")}
        opt = tf.compat.v1.train.RMSPropOptimizer(
            learning_rate=lambda: tf.constant(box[0], tf_dtype), centered=kw["centered"], **same
        )

        def step(grad, lr):
            box[0] = lr
            opt.apply_gradients([(tf.constant(grad, tf_dtype), var)])
            return var.numpy().copy()

        return step

    compare("tf1", kw, factory, changing, "learning_rate", dtype)


# -- tf.keras 2 (TensorFlow <= 2.15's bundled Keras, or the tf_keras package) --------------------

KERAS2 = [dict(learning_rate=1e-3, rho=0.95, epsilon=1e-6, **c) for c in both(momentum=[0.0, 0.9], centered=[False, True])]


def import_keras2():
    tf = pytest.importorskip("tensorflow")
    try:
        legacy = tf.keras.optimizers.legacy
    except AttributeError:  # Keras 3 behind tf.keras; tf_keras is Keras 2
        legacy = pytest.importorskip("tf_keras").optimizers.legacy
    return tf, legacy.RMSprop


@DTYPES
@CHANGING
@pytest.mark.parametrize("kw", KERAS2, ids=ids(KERAS2))
def test_keras2(kw, changing, dtype):
    tf, RMSprop = import_keras2()

    def factory(w0, lrs):
        var = tf.Variable(w0, dtype=getattr(tf, dtype))
        opt = RMSprop(**kw)

        def step(grad, lr):
            opt.learning_rate = lr
            opt.apply_gradients([(tf.constant(grad, var.dtype), var)])
            return var.numpy().copy()

        return step

    compare("keras2", kw, factory, changing, "learning_rate", dtype)


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


def chainer_step(chainer, w0, kw):  # in w0's dtype
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
        return np.array(link.w.array)

    return step


@DTYPES
@CHANGING
@pytest.mark.parametrize("kw", CHAINER, ids=ids(CHAINER))
def test_chainer(kw, changing, dtype):
    chainer = import_chainer()
    compare("chainer", kw, lambda w0, lrs: chainer_step(chainer, w0, kw), changing, "lr", dtype)


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
