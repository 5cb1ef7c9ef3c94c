"""graves.testing.check_update: passes correct transcriptions, and finds each classic mistake
at the step, quantity and element where it first shows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graves.testing import CheckResult, check_update, default_gradients

# -- student functions: one correct transcription per reference, and the usual mistakes --------


def graves_right(w, grad, state, *, lr, alpha, momentum, eps):
    n = alpha * state["n"] + (1 - alpha) * grad**2
    g = alpha * state["g"] + (1 - alpha) * grad
    delta = momentum * state["delta"] - lr * grad / np.sqrt(n - g**2 + eps)
    return w + delta, {"n": n, "g": g, "delta": delta}


def graves_in_place(w, grad, state, *, lr, alpha, momentum, eps):
    n, g, delta = state["n"], state["g"], state["delta"]
    n *= alpha
    n += (1 - alpha) * grad * grad
    g *= alpha
    g += (1 - alpha) * grad
    delta *= momentum
    delta -= lr * grad / np.sqrt(n - g * g + eps)
    w += delta
    return w, state


def eps_outside_root(w, grad, state, *, lr, alpha, momentum, eps):
    n = alpha * state["n"] + (1 - alpha) * grad**2
    g = alpha * state["g"] + (1 - alpha) * grad
    delta = momentum * state["delta"] - lr * grad / (np.sqrt(n - g**2) + eps)
    return w + delta, {"n": n, "g": g, "delta": delta}


def not_centered(w, grad, state, *, lr, alpha, momentum, eps):
    n = alpha * state["n"] + (1 - alpha) * grad**2
    g = alpha * state["g"] + (1 - alpha) * grad
    delta = momentum * state["delta"] - lr * grad / np.sqrt(n + eps)  # g kept but not subtracted
    return w + delta, {"n": n, "g": g, "delta": delta}


def no_gradient_average(w, grad, state, *, lr, alpha, momentum, eps):
    n = alpha * state["n"] + (1 - alpha) * grad**2
    delta = momentum * state["delta"] - lr * grad / np.sqrt(n + eps)
    return w + delta, {"n": n, "g": state["g"], "delta": delta}


def lr_outside_buffer(w, grad, state, *, lr, alpha, momentum, eps):
    # PyTorch's placement: the buffer accumulates grad/d unscaled, and lr multiplies on the way out
    n = alpha * state["n"] + (1 - alpha) * grad**2
    g = alpha * state["g"] + (1 - alpha) * grad
    buf = momentum * state["delta"] + grad / np.sqrt(n - g**2 + eps)
    return w - lr * buf, {"n": n, "g": g, "delta": buf}


def lr_outside_in_w_only():
    """lr outside the buffer in the parameters, with Graves' state reported beside them: only
    w can show the placement."""
    private = {}

    def fn(w, grad, state, **hyper):
        own = private.get("state", {k: np.zeros_like(w) for k in ("n", "g", "delta")})
        w_new, private["state"] = lr_outside_buffer(w.copy(), grad, own, **hyper)
        _, graves_state = graves_right(w, grad, state, **hyper)
        return w_new, graves_state

    return fn


def rmsprop_right(w, grad, state, *, lr, alpha, eps):
    n = alpha * state["n"] + (1 - alpha) * grad**2
    return w - lr * grad / np.sqrt(n + eps), {"n": n}


def sgd_right(w, grad, state, *, lr, momentum):
    v = momentum * state["velocity"] - lr * grad
    return w + v, {"velocity": v}


# -- correct transcriptions pass ---------------------------------------------------------------


@pytest.mark.parametrize("fn", [graves_right, graves_in_place])
def test_correct_transcriptions_pass(fn):
    result = check_update(fn)
    assert isinstance(result, CheckResult)
    assert result.ok and bool(result) and result.mismatch is None and result.error is None
    assert result.report.startswith("OK: fn matches the reference: graves.RMSpropGraves")


def test_rmsprop_and_sgd_references():
    assert check_update(rmsprop_right, "rmsprop")
    assert check_update(sgd_right, "sgd", hyperparameters={"lr": 0.05, "momentum": 0.9})
    # a Graves transcription is not RMSprop: its call signature differs, which is reported
    result = check_update(rmsprop_right, "graves")
    assert not result and "TypeError" in result.error and "step 1" in result.error


# -- each mistake is found where it first shows --------------------------------------------------


@pytest.mark.parametrize(
    "fn, step, quantity",
    [
        (eps_outside_root, 1, "delta"),
        (not_centered, 1, "delta"),
        (no_gradient_average, 1, "g"),
        (lr_outside_buffer, 1, "delta"),
    ],
)
def test_mistakes_are_caught(fn, step, quantity):
    result = check_update(fn)
    assert not result.ok and result.error is None
    m = result.mismatch
    assert (m.step, m.quantity) == (step, quantity)
    assert m.expected != m.got
    assert f"step {step}, {quantity}[{m.index}]" in result.report
    assert f"expected {m.expected:.10g}" in result.report and f"got      {m.got:.10g}" in result.report


def test_the_schedule_makes_lr_outside_the_buffer_show_in_w():
    # at a constant learning rate the two placements give the same parameters
    assert check_update(lr_outside_in_w_only(), lr_schedule=[1e-4] * 6)
    m = check_update(lr_outside_in_w_only()).mismatch
    assert (m.step, m.quantity) == (4, "w")  # the first step at the new learning rate


def test_the_reported_values_are_the_references():
    grads = default_gradients(6, 8, 0)
    result = check_update(eps_outside_root, grads=grads, w0=np.zeros(8))
    m = result.mismatch
    n = 0.05 * grads[0] ** 2
    g = 0.05 * grads[0]
    expected = -1e-4 * grads[0] / np.sqrt(n - g**2 + 1e-4)
    got = -1e-4 * grads[0] / (np.sqrt(n - g**2) + 1e-4)
    assert m.index == 0
    np.testing.assert_allclose([m.expected, m.got], [expected[0], got[0]], rtol=1e-13)


@settings(max_examples=60, deadline=None)
@given(
    step=st.integers(1, 6),
    quantity=st.sampled_from(["n", "g", "delta", "w"]),
    index=st.integers(0, 7),
    relative=st.sampled_from([1e-6, -1e-3, 1.0]),
)
def test_an_injected_error_is_located_exactly(step, quantity, index, relative):
    calls = []

    def faulty(w, grad, state, **hyper):
        calls.append(1)
        w, state = graves_right(w, grad, state, **hyper)
        if len(calls) == step:
            target = w if quantity == "w" else state[quantity]
            target[index] += relative * abs(target[index]) + 1e-9
        return w, state

    m = check_update(faulty).mismatch
    assert (m.step, m.quantity, m.index) == (step, quantity, index)


def test_default_gradients_are_reproducible_and_varied():
    a, b = default_gradients(6, 8, 0), default_gradients(6, 8, 0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (6, 8)
    assert np.any(np.abs(a) < 1e-2) and np.any(np.abs(a) >= 1)  # sizes on both sides of sqrt(eps)
    assert np.any(np.abs(a.mean(axis=0)) > a.std(axis=0))  # some consistent: centering matters


# -- malformed student functions are reported, bad arguments raise --------------------------------


def test_malformed_returns_are_reported():
    assert "pair (w, state)" in check_update(lambda w, grad, state, **h: w).error
    missing = check_update(lambda w, grad, state, **h: (w, {"n": state["n"]}))
    assert "lacks 'g'" in missing.error and "step 1" in missing.error
    shaped = check_update(lambda w, grad, state, **h: (w[:3], state))
    assert "shape (3,)" in shaped.error


def test_nan_is_a_difference():
    def nan_at_three(w, grad, state, **hyper):
        w, state = graves_right(w, grad, state, **hyper)
        if np.all(state["n"] != 0) and len(nan_at_three.calls) == 2:
            w[5] = np.nan
        nan_at_three.calls.append(1)
        return w, state

    nan_at_three.calls = []
    m = check_update(nan_at_three).mismatch
    assert (m.step, m.quantity, m.index) == (3, "w", 5) and np.isnan(m.got)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(reference="adam"), ["reference", "adam"]),
        (dict(rtol=-1.0), ["rtol"]),
        (dict(steps=0), ["steps"]),
        (dict(grads=np.ones(3)), ["grads", "(steps, size)"]),
        (dict(grads=np.ones((2, 3)), w0=np.ones(4)), ["w0", "(3,)"]),
        (dict(lr_schedule=[1e-4]), ["lr_schedule", "6"]),
        (dict(hyperparameters={"alpha": 2.0}), ["alpha"]),
        (dict(hyperparameters={"spread": "recursive"}), ["state", "'s'", "'n'"]),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, words):
    with pytest.raises((ValueError, TypeError)) as info:
        check_update(graves_right, **kwargs)
    for word in words:
        assert word in str(info.value)


def test_fn_must_be_callable():
    with pytest.raises(TypeError, match="fn must be a function"):
        check_update(42)
