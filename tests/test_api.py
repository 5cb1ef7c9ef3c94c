"""The optimizer API and bad input.

Every bad call must raise an exception that names the offending key or
hyperparameter and says what was expected, and must change nothing: each test
snapshots every parameter and the whole ``state_dict()`` bit for bit (bytes,
dtype, shape, Python type) and compares after the failure.
"""

from __future__ import annotations

import io
import math
import types
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graves

NAMES = ["SGD", "RMSprop", "RMSpropGraves"]
HYPER = {
    "SGD": dict(lr=0.05, momentum=0.9),
    "RMSprop": dict(lr=0.01, alpha=0.9, eps=1e-8),
    "RMSpropGraves": dict(lr=0.01, alpha=0.95, momentum=0.9, eps=1e-4),
}

# --------------------------------------------------------------------------
# Helpers: a trained optimizer, and a bit-exact snapshot of it and its params
# --------------------------------------------------------------------------


def fresh_params(rng):
    return {
        "a": rng.normal(size=(3, 4)),
        "b": rng.normal(size=5).astype(np.float32),
        "c": np.array(0.5),
        "s": 1.25,
    }


def grads_like(params, rng):
    out = {}
    for k, v in params.items():
        if isinstance(v, np.ndarray):
            out[k] = rng.normal(size=v.shape).astype(v.dtype)
        else:
            out[k] = float(rng.normal())
    return out


def trained(name, steps=3, seed=7, **options):
    """An optimizer after ``steps`` updates, its params, and a valid next gradient."""
    rng = np.random.default_rng(seed)
    opt = getattr(graves, name)(**HYPER[name], **options)
    params = fresh_params(rng)
    for _ in range(steps):
        opt.update(params, grads_like(params, rng))
    return opt, params, grads_like(params, rng)


def frozen(x):
    """A bit-exact, comparable image of a value: Python type, dtype, shape and bytes."""
    if isinstance(x, np.ndarray):
        return ("ndarray", x.dtype.str, x.shape, np.ascontiguousarray(x).tobytes())
    if isinstance(x, np.generic):
        return (type(x).__name__, x.dtype.str, x.tobytes())
    if isinstance(x, float):
        return ("float", x.hex())
    return (type(x).__name__, x)


def snapshot(opt, params):
    return {
        "params": {k: frozen(v) for k, v in params.items()},
        "param objects": {k: id(v) for k, v in params.items() if isinstance(v, np.ndarray)},
        "state_dict": {k: frozen(v) for k, v in opt.state_dict().items()},
        "state objects": {k: tuple(id(a) for a in s) for k, s in opt.state.items()},
        "counters": (opt.step_count, opt.skipped_steps, opt.nonfinite),
        "hyperparameters": {k: frozen(v) for k, v in opt.hyperparameters().items()},
    }


def assert_unchanged(before, opt, params):
    """Everything in ``snapshot`` is as it was, naming the first difference."""
    after = snapshot(opt, params)
    for part, old in before.items():
        new = after[part]
        if isinstance(old, dict):
            assert list(new) == list(old), f"{part}: keys {list(old)} became {list(new)}"
            for k in old:
                assert new[k] == old[k], f"{part}[{k!r}] changed"
        else:
            assert new == old, f"{part} changed"


def assert_message(exc_info, *fragments):
    text = str(exc_info.value)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in message {text!r}"


def test_snapshot_detects_a_change():
    """Control: the snapshot sees a one-bit change in a parameter and in the state."""
    opt, params, grads = trained("RMSpropGraves")
    before = snapshot(opt, params)
    params["a"].view(np.uint64)[0, 0] ^= 1
    with pytest.raises(AssertionError):
        assert_unchanged(before, opt, params)
    params["a"].view(np.uint64)[0, 0] ^= 1
    assert_unchanged(before, opt, params)
    opt.state["b"].delta.view(np.uint32)[0] ^= 1
    with pytest.raises(AssertionError):
        assert_unchanged(before, opt, params)


# --------------------------------------------------------------------------
# Hyperparameters
# --------------------------------------------------------------------------

BAD_HYPER = [
    # name, value, exception, fragments of the message besides the name
    ("lr", 0.0, ValueError, "> 0"),
    ("lr", -1e-3, ValueError, "> 0"),
    ("lr", math.nan, ValueError, "finite"),
    ("lr", math.inf, ValueError, "finite"),
    ("lr", 10**400, ValueError, "finite"),
    ("lr", "0.1", TypeError, "real number"),
    ("lr", None, TypeError, "real number"),
    ("lr", True, TypeError, "real number"),
    ("lr", 1e-3 + 0j, TypeError, "real number"),
    ("lr", np.array(1e-3), TypeError, "real number"),
    ("alpha", 1.0, ValueError, "[0, 1)"),
    ("alpha", -0.1, ValueError, "[0, 1)"),
    ("alpha", 1.5, ValueError, "[0, 1)"),
    ("alpha", math.nan, ValueError, "finite"),
    ("alpha", "0.9", TypeError, "real number"),
    ("momentum", 1.0, ValueError, "[0, 1)"),
    ("momentum", -0.5, ValueError, "[0, 1)"),
    ("momentum", -math.inf, ValueError, "finite"),
    ("momentum", None, TypeError, "real number"),
    ("momentum", np.bool_(False), TypeError, "real number"),
    ("eps", -1e-8, ValueError, ">= 0"),
    ("eps", math.inf, ValueError, "finite"),
    ("eps", 1j, TypeError, "real number"),
    ("nonfinite", "ignore", ValueError, "'raise'"),
    ("nonfinite", None, TypeError, "'skip'"),
    ("nonfinite", ["raise"], TypeError, "'raise'"),
]


def optimizers_with(hp):
    return [n for n in NAMES if hp == "nonfinite" or hp in getattr(graves, n).hyperparameter_names]


BAD_HYPER_CASES = [
    pytest.param(n, hp, value, exc, frag, id=f"{n}-{hp}-{value!r}")
    for hp, value, exc, frag in BAD_HYPER
    for n in optimizers_with(hp)
]


@pytest.mark.parametrize("name, hp, value, exc, fragment", BAD_HYPER_CASES)
def test_bad_hyperparameter_at_construction(name, hp, value, exc, fragment):
    kwargs = dict(HYPER[name])
    kwargs[hp] = value
    with pytest.raises(exc) as info:
        getattr(graves, name)(**kwargs)
    assert_message(info, hp, fragment)


@pytest.mark.parametrize("name, hp, value, exc, fragment", BAD_HYPER_CASES)
def test_bad_hyperparameter_on_assignment_keeps_old_value(name, hp, value, exc, fragment):
    opt, params, grads = trained(name)
    before = snapshot(opt, params)
    old = getattr(opt, hp)
    with pytest.raises(exc) as info:
        setattr(opt, hp, value)
    assert_message(info, hp, fragment)
    assert getattr(opt, hp) == old
    assert_unchanged(before, opt, params)
    opt.update(params, grads)  # and the optimizer still works
    assert opt.step_count == 4


@settings(max_examples=40, deadline=None)
@given(
    counter=st.sampled_from(["step_count", "skipped_steps"]),
    value=st.one_of(
        st.floats(allow_nan=True),
        st.text(max_size=3),
        st.none(),
        st.booleans(),
        st.integers(max_value=-1),
        st.integers(min_value=2**63),
        st.builds(np.float64, st.integers(0, 100)),
    ),
    name=st.sampled_from(NAMES),
)
def test_bad_counter_on_assignment_keeps_old_value(counter, value, name):
    """A counter that is not a step count would make the next update fail after
    it wrote (step_count + 1), or a checkpoint fail to save."""
    opt, params, grads = trained(name)
    before = snapshot(opt, params)
    with pytest.raises((TypeError, ValueError)) as info:
        setattr(opt, counter, value)
    assert_message(info, counter, "integer")
    assert_unchanged(before, opt, params)
    opt.update(params, grads)  # and the optimizer still works
    assert opt.step_count == 4 and type(opt.step_count) is int


@pytest.mark.parametrize("value", [0, 7, np.int64(7), np.uint8(7), 2**63 - 1])
def test_good_counters_are_stored_as_python_ints(value):
    opt = graves.RMSpropGraves()
    opt.step_count = value
    opt.skipped_steps = value
    assert opt.step_count == opt.skipped_steps == value
    assert type(opt.step_count) is int and type(opt.skipped_steps) is int


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    value=st.sampled_from(
        [[1e-3] * 100_000, 10**4000, -(10**4000), "0.1" * 100_000, b"x" * 100_000,
         (0.1,) * 100_000, {i: 0.1 for i in range(10_000)}]
    ),
    where=st.sampled_from(["construction", "assignment", "option"]),
)
def test_messages_about_a_bad_value_stay_short(name, value, where):
    """A list of learning rates passed as lr, say: the message names lr and
    shows the start of the value, not all of it."""
    hp = "lr" if where != "option" else "block_size"
    with pytest.raises((TypeError, ValueError)) as info:
        if where == "construction":
            getattr(graves, name)(**{**HYPER[name], hp: value})
        elif where == "assignment":
            setattr(getattr(graves, name)(**HYPER[name]), hp, value)
        else:
            getattr(graves, name)(**HYPER[name], block_size=value)
    assert hp in str(info.value) and len(str(info.value)) < 300, str(info.value)[:300]


@pytest.mark.parametrize("name", NAMES)
def test_good_hyperparameters_are_stored_as_python_floats(name):
    cls = getattr(graves, name)
    kwargs = {k: np.float32(v) if i % 2 else v for i, (k, v) in enumerate(HYPER[name].items())}
    kwargs["lr"] = 1  # an int is a real number
    opt = cls(**kwargs)
    for hp in cls.hyperparameter_names:
        assert type(getattr(opt, hp)) is float
    assert opt.lr == 1.0
    # boundary values that are allowed
    opt.lr = 5e-324  # the smallest positive double
    if "momentum" in cls.hyperparameter_names:
        opt.momentum = 0.0
    if "eps" in cls.hyperparameter_names:
        opt.eps = 0.0
    if "alpha" in cls.hyperparameter_names:
        opt.alpha = 0.0
    assert opt.lr == 5e-324


@pytest.mark.parametrize(
    "option, value, exc",
    [
        ("block_size", 0, ValueError),
        ("block_size", -5, ValueError),
        ("block_size", 2.5, TypeError),
        ("block_size", "1024", TypeError),
        ("block_size", True, TypeError),
        ("threads", 0, ValueError),
        ("threads", None, TypeError),
    ],
)
def test_bad_driver_options(option, value, exc):
    with pytest.raises(exc) as info:
        graves.RMSpropGraves(**{option: value})
    assert_message(info, option)


# --------------------------------------------------------------------------
# Gradients that do not match the parameters
# --------------------------------------------------------------------------


def replace(d, key, value):
    out = dict(d)
    out[key] = value
    return out


def without(d, key):
    return {k: v for k, v in d.items() if k != key}


def as_matrix(a):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.asmatrix(a)


def readonly(a):
    v = a.view()
    v.flags.writeable = False
    return v


BAD_INPUT = [
    # id, (params, grads) -> (params, grads), exception, message fragments
    ("missing-grad", lambda p, g: (p, without(g, "b")), KeyError, ["'b'", "expected the keys"]),
    ("extra-grad", lambda p, g: (p, replace(g, "zz", np.ones(2))), KeyError, ["'zz'", "expected the keys"]),
    ("shape", lambda p, g: (p, replace(g, "a", np.ones((4, 3)))), ValueError, ["'a'", "(4, 3)", "(3, 4)"]),
    ("shape-scalar", lambda p, g: (p, replace(g, "s", np.ones(2))), ValueError, ["'s'", "shape"]),
    ("str-grad", lambda p, g: (p, replace(g, "b", "0.1")), TypeError, ["'b'", "real array or number"]),
    ("none-grad", lambda p, g: (p, replace(g, "b", None)), TypeError, ["'b'", "real array or number"]),
    ("list-grad", lambda p, g: (p, replace(g, "c", [0.1])), TypeError, ["'c'", "real array or number"]),
    ("bool-grad", lambda p, g: (p, replace(g, "s", True)), TypeError, ["'s'", "real array or number"]),
    ("bool-array-grad", lambda p, g: (p, replace(g, "b", np.ones(5, bool))), TypeError, ["'b'", "real dtype"]),
    ("complex-grad", lambda p, g: (p, replace(g, "a", np.ones((3, 4), complex))), TypeError, ["'a'", "real dtype"]),
    ("object-grad", lambda p, g: (p, replace(g, "b", np.ones(5, object))), TypeError, ["'b'", "real dtype"]),
    ("text-grad", lambda p, g: (p, replace(g, "b", np.array(["1"] * 5))), TypeError, ["'b'", "real dtype"]),
    ("masked-grad", lambda p, g: (p, replace(g, "b", np.ma.ones(5))), TypeError, ["'b'", "plain numpy array"]),
    ("int-param", lambda p, g: (replace(p, "a", np.ones((3, 4), int)), g), TypeError, ["'a'", "int64", "real floating"]),
    ("complex-param", lambda p, g: (replace(p, "a", np.ones((3, 4), complex)), g), TypeError, ["'a'", "real floating"]),
    ("python-int-param", lambda p, g: (replace(p, "s", 1), g), TypeError, ["'s'", "float"]),
    ("bool-param", lambda p, g: (replace(p, "s", True), g), TypeError, ["'s'", "float"]),
    ("str-param", lambda p, g: (replace(p, "s", "1.0"), g), TypeError, ["'s'", "float"]),
    ("readonly-param", lambda p, g: (replace(p, "a", readonly(p["a"])), g), ValueError, ["'a'", "read-only"]),
    ("matrix-param", lambda p, g: (replace(p, "a", as_matrix(p["a"])), g), TypeError, ["'a'", "plain numpy array"]),
    ("list-params", lambda p, g: (list(p.values()), g), TypeError, ["params", "dict"]),
    ("list-grads", lambda p, g: (p, list(g.values())), TypeError, ["grads", "dict"]),
    ("int-key", lambda p, g: ({**p, 1: 1.0}, {**g, 1: 1.0}), TypeError, ["1", "strings"]),
    (
        "readonly-mapping-with-scalar",
        lambda p, g: (types.MappingProxyType(p), g),
        TypeError,
        ["read-only", "mappingproxy", "dict"],
    ),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case, mutate, exc, fragments", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_raises_and_changes_nothing(name, case, mutate, exc, fragments):
    opt, params, grads = trained(name)
    before = snapshot(opt, params)
    bad_params, bad_grads = mutate(params, grads)
    with pytest.raises(exc) as info:
        opt.update(bad_params, bad_grads)
    assert_message(info, *fragments)
    assert_unchanged(before, opt, params)


@pytest.mark.parametrize("case, mutate, exc, fragments", BAD_INPUT[:20], ids=[c[0] for c in BAD_INPUT[:20]])
def test_bad_input_on_first_step_creates_no_state(case, mutate, exc, fragments):
    rng = np.random.default_rng(0)
    opt = graves.RMSpropGraves()
    params = fresh_params(rng)
    before = snapshot(opt, params)
    with pytest.raises(exc):
        opt.update(*mutate(params, grads_like(params, rng)))
    assert opt.state == {} and opt.step_count == 0
    assert_unchanged(before, opt, params)


# --------------------------------------------------------------------------
# Non-finite gradients
# --------------------------------------------------------------------------

NONFINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", NONFINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("key", ["a", "b", "c", "s"])
def test_nonfinite_gradient_raises_and_changes_nothing(name, bad, key):
    """Whichever tensor holds it, even the last one, after others that are fine."""
    opt, params, grads = trained(name)
    before = snapshot(opt, params)
    if isinstance(grads[key], np.ndarray):
        grads[key] = grads[key].copy()
        grads[key].reshape(-1)[-1] = bad
    else:
        grads[key] = bad
    with pytest.raises(FloatingPointError) as info:
        opt.update(params, grads)
    assert_message(info, repr(key), "NaN or inf", "nonfinite='skip'")
    assert_unchanged(before, opt, params)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_overflowing_the_parameter_dtype_counts_as_nonfinite(name):
    """A finite float64 gradient of 1e300 is inf in float32: it must not reach the state."""
    opt, params, grads = trained(name)
    before = snapshot(opt, params)
    grads["b"] = np.full(5, 1e300)  # "b" is float32
    with pytest.raises(FloatingPointError) as info:
        opt.update(params, grads)
    assert_message(info, "'b'")
    assert_unchanged(before, opt, params)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", NONFINITE, ids=["nan", "inf", "-inf"])
def test_nonfinite_gradient_skipped_with_skip_policy(name, bad):
    opt, params, grads = trained(name, nonfinite="skip")
    twin, twin_params, _ = trained(name, nonfinite="skip")
    before = snapshot(opt, params)
    bad_grads = dict(grads, b=np.full(5, bad, np.float32))
    opt.update(params, bad_grads)
    assert opt.skipped_steps == 1 and opt.step_count == 3
    before["counters"] = (3, 1, "skip")
    before["state_dict"]["skipped_steps"] = frozen(1)
    assert_unchanged(before, opt, params)
    # the next good step gives bitwise what a run without the bad step gives
    opt.update(params, grads)
    twin.update(twin_params, grads)
    for k in params:
        assert frozen(params[k]) == frozen(twin_params[k])
    assert opt.step_count == twin.step_count == 4


def test_skip_on_the_first_step_creates_no_state():
    opt = graves.RMSprop(nonfinite="skip")
    params = {"w": np.ones(3)}
    opt.update(params, {"w": np.array([1.0, np.nan, 1.0])})
    assert opt.state == {} and opt.step_count == 0 and opt.skipped_steps == 1
    np.testing.assert_array_equal(params["w"], np.ones(3))


# --------------------------------------------------------------------------
# The parameter set changes between steps
# --------------------------------------------------------------------------

LAYOUT_CHANGES = [
    ("new-key", lambda p, g: ({**p, "new": np.ones(2)}, {**g, "new": np.ones(2)}), "'new'"),
    ("removed-key", lambda p, g: (without(p, "c"), without(g, "c")), "'c'"),
    ("shape", lambda p, g: (replace(p, "a", np.ones((4, 3))), replace(g, "a", np.ones((4, 3)))), "'a'"),
    (
        "dtype",
        lambda p, g: (replace(p, "b", p["b"].astype(np.float64)), replace(g, "b", g["b"].astype(np.float64))),
        "'b'",
    ),
    ("scalar-dtype", lambda p, g: (replace(p, "s", np.float32(p["s"])), g), "'s'"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case, change, key", LAYOUT_CHANGES, ids=[c[0] for c in LAYOUT_CHANGES])
def test_changed_parameter_set_needs_reset(name, case, change, key):
    opt, params, grads = trained(name)
    before = snapshot(opt, params)
    new_params, new_grads = change(params, grads)
    new_before = {k: frozen(v) for k, v in new_params.items()}
    with pytest.raises(ValueError) as info:
        opt.update(new_params, new_grads)
    assert_message(info, key, "reset()")
    assert_unchanged(before, opt, params)
    assert {k: frozen(v) for k, v in new_params.items()} == new_before
    opt.reset()
    opt.update(new_params, new_grads)
    assert opt.step_count == 1
    assert set(opt.state) == set(new_params)
    for k, v in new_params.items():
        held = opt.state[k][0]
        assert held.shape == np.shape(v) and held.dtype == np.asarray(v).dtype


# --------------------------------------------------------------------------
# Scalars and dtypes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_python_float_params_are_replaced_and_stay_python_floats(name):
    """The document's interface: a dict of Python floats."""
    opt = getattr(graves, name)(**HYPER[name])
    twin = getattr(graves, name)(**HYPER[name])
    params = {"x": 1.0, "y": -2.0}
    arrays = {"x": np.array(1.0), "y": np.array(-2.0)}
    container = params
    for t in range(5):
        grads = {"x": 0.5 - 0.1 * t, "y": np.float64(0.25 * t)}
        opt.update(params, grads)
        twin.update(arrays, grads)
        assert params is container
        for k in params:
            assert type(params[k]) is float
            assert params[k] == float(arrays[k])  # bitwise the same arithmetic as a 0-d array
    assert params["x"] != 1.0 and params["y"] != -2.0


SCALAR_TYPES = [np.float16, np.float32, np.float64, np.longdouble]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scalar_type", SCALAR_TYPES, ids=lambda t: t.__name__)
def test_numpy_scalars_keep_their_type_and_state_dtype(name, scalar_type):
    hyper = dict(HYPER[name])
    if "eps" in hyper:
        hyper["eps"] = 1e-4  # representable in float16
    opt = getattr(graves, name)(**hyper)
    params = {"x": scalar_type(1.0)}
    for _ in range(3):
        opt.update(params, {"x": scalar_type(0.5)})
        assert type(params["x"]) is scalar_type
    assert params["x"] != scalar_type(1.0)
    for a in opt.state["x"]:
        assert a.dtype == np.dtype(scalar_type) and a.shape == ()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", SCALAR_TYPES, ids=lambda t: t.__name__)
def test_arrays_of_any_float_dtype_update_in_place(name, dtype):
    hyper = dict(HYPER[name], **({"eps": 1e-4} if "eps" in HYPER[name] else {}))
    opt = getattr(graves, name)(**hyper)
    w = np.linspace(-1, 1, 7).astype(dtype)
    z = np.array(0.25, dtype=dtype)  # 0-d array: also in place
    params = {"w": w, "z": z}
    start = w.copy()
    for _ in range(3):
        opt.update(params, {"w": np.ones(7, dtype), "z": np.array(1.0, dtype)})
    assert params["w"] is w and params["z"] is z
    assert w.dtype == dtype and z.dtype == dtype
    assert np.all(w < start) and z < 0.25
    for k in params:
        for a in opt.state[k]:
            assert a.dtype == dtype


@pytest.mark.parametrize(
    "name, hp, value",
    [("RMSprop", "eps", 1e-8), ("RMSpropGraves", "alpha", 0.9999), ("SGD", "lr", 1e-9), ("SGD", "momentum", 0.99999)],
)
def test_hyperparameter_that_changes_meaning_in_float16_is_rejected(name, hp, value):
    """float16 rounds eps=1e-8 to 0 (a zero gradient would give 0/0 = NaN),
    alpha=0.9999 and momentum=0.99999 to 1, lr=1e-9 to 0."""
    opt = getattr(graves, name)(**dict(HYPER[name], **{hp: value}))
    params = {"w64": np.ones(3), "w16": np.ones(3, np.float16)}
    grads = {"w64": np.zeros(3), "w16": np.zeros(3, np.float16)}
    opt.update({"w64": params["w64"]}, {"w64": grads["w64"]})  # float64 holds it: fine
    opt.reset()
    before = snapshot(opt, params)
    with pytest.raises(ValueError) as info:
        opt.update(params, grads)
    assert_message(info, "'w16'", "float16", f"{hp}={value!r}")
    assert_unchanged(before, opt, params)


def test_tiny_coefficient_flushed_to_zero_in_float16_is_allowed():
    """A momentum of 1e-10 is 0 in float16, which changes a step by nothing visible."""
    opt = graves.SGD(lr=0.1, momentum=1e-10)
    params = {"w": np.ones(3, np.float16)}
    opt.update(params, {"w": np.ones(3, np.float16)})
    np.testing.assert_array_equal(params["w"], np.float16(0.9))


# --------------------------------------------------------------------------
# A learning-rate schedule: lr enters inside the momentum buffer
# --------------------------------------------------------------------------


def lr_inside(w, grad, state, lr, centered, alpha=0.95, momentum=0.9, eps=1e-4):
    n, g, delta = state
    if centered:
        n = alpha * n + (1 - alpha) * grad**2
        g = alpha * g + (1 - alpha) * grad
        u = grad / np.sqrt(n - g**2 + eps)
    else:
        u = grad
    delta = momentum * delta - lr * u
    return w + delta, (n, g, delta)


def lr_outside(w, grad, state, lr, centered, alpha=0.95, momentum=0.9, eps=1e-4):
    n, g, delta = state
    if centered:
        n = alpha * n + (1 - alpha) * grad**2
        g = alpha * g + (1 - alpha) * grad
        u = grad / np.sqrt(n - g**2 + eps)
    else:
        u = grad
    delta = momentum * delta + u
    return w - lr * delta, (n, g, delta)


@pytest.mark.parametrize("name", ["SGD", "RMSpropGraves"])
def test_schedule_lr_enters_inside_the_buffer(name):
    centered = name == "RMSpropGraves"
    opt = graves.SGD(lr=0.1, momentum=0.9) if not centered else graves.RMSpropGraves(lr=0.1, alpha=0.95, momentum=0.9, eps=1e-4)
    rng = np.random.default_rng(5)
    w0 = rng.normal(size=6)
    params = {"w": w0.copy()}
    zero = (np.zeros(6),) * 3
    inside, outside = (w0.copy(), zero), (w0.copy(), zero)
    for t in range(40):
        lr = 0.1 * 0.9**t  # a decaying schedule, set between steps
        opt.lr = lr
        grad = rng.normal(size=6) + 0.5
        opt.update(params, {"w": grad})
        inside = lr_inside(inside[0], grad, inside[1], lr, centered)
        outside = lr_outside(outside[0], grad, outside[1], lr, centered)
    np.testing.assert_allclose(params["w"], inside[0], rtol=1e-12, atol=1e-12)
    # with lr outside the buffer, old momentum would be rescaled by each new lr: visibly different
    assert np.max(np.abs(params["w"] - outside[0])) > 1e-3 * np.max(np.abs(params["w"] - w0))


def test_schedule_with_constant_lr_cannot_tell_the_two_apart():
    """Control for the test above: only a changing lr separates the placements."""
    rng = np.random.default_rng(6)
    w0 = rng.normal(size=6)
    zero = (np.zeros(6),) * 3
    inside, outside = (w0.copy(), zero), (w0.copy(), zero)
    for _ in range(40):
        grad = rng.normal(size=6)
        inside = lr_inside(inside[0], grad, inside[1], 0.05, True)
        outside = lr_outside(outside[0], grad, outside[1], 0.05, True)
    np.testing.assert_allclose(inside[0], outside[0], rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------
# load_state_dict with mismatched or corrupt state
# --------------------------------------------------------------------------


# a case maps (state dict, name of the optimizer's first state field) to a bad state dict;
# "{f}" in an entry name or message fragment stands for that field
def corrupt(entry, value):
    return lambda d, f: {**d, entry.replace("{f}", f): value}


def drop(entry):
    return lambda d, f: {k: v for k, v in d.items() if k != entry.replace("{f}", f)}


BAD_STATE = [
    ("format", corrupt("format", "graves-checkpoint/999"), ValueError, ["format", "graves-checkpoint/1"]),
    ("no-format", drop("format"), ValueError, ["'format'"]),
    ("no-hp", drop("hp/lr"), ValueError, ["'hp/lr'"]),
    ("bad-hp", corrupt("hp/lr", -1.0), ValueError, ["hp/lr", "> 0"]),
    ("hp-type", corrupt("hp/lr", "fast"), TypeError, ["hp/lr", "real number"]),
    ("hp-array", corrupt("hp/lr", np.ones(2)), ValueError, ["'hp/lr'", "scalar"]),
    ("nonfinite", corrupt("nonfinite", "sometimes"), ValueError, ["nonfinite"]),
    ("negative-count", corrupt("step_count", -1), ValueError, ["'step_count'", "non-negative integer"]),
    ("float-count", corrupt("step_count", 3.0), ValueError, ["'step_count'", "integer"]),
    ("bool-count", corrupt("skipped_steps", True), ValueError, ["'skipped_steps'", "integer"]),
    ("no-count", drop("skipped_steps"), ValueError, ["'skipped_steps'"]),
    ("no-keys", drop("keys"), ValueError, ["'keys'"]),
    ("keys-2d", corrupt("keys", np.array([["a", "b"], ["c", "s"]])), ValueError, ["'keys'", "1-D"]),
    ("keys-int", corrupt("keys", np.arange(4)), ValueError, ["'keys'"]),
    ("keys-twice", corrupt("keys", np.array(["a", "a", "b", "c", "s"])), ValueError, ["'keys'", "twice"]),
    ("missing-array", drop("state/{f}/b"), ValueError, ["'state/{f}/b'"]),
    ("extra-array", corrupt("state/{f}/zz", np.ones(3)), ValueError, ["unexpected", "state/{f}/zz"]),
    ("extra-entry", corrupt("comment", "hello"), ValueError, ["unexpected", "comment"]),
    ("int-array", corrupt("state/{f}/a", np.ones((3, 4), int)), ValueError, ["'state/{f}/a'", "float array"]),
    ("complex-array", corrupt("state/{f}/a", np.ones((3, 4), complex)), ValueError, ["'state/{f}/a'", "float"]),
    ("list-array", corrupt("state/{f}/a", [[0.0] * 4] * 3), ValueError, ["'state/{f}/a'", "float array"]),
]
# entries that must agree across a parameter's fields (only optimizers with several fields)
BAD_STATE_CENTERED = [
    ("field-shape", corrupt("state/g/a", np.ones((4, 3))), ValueError, ["'state/g/a'", "[4, 3]", "[3, 4]"]),
    ("field-dtype", corrupt("state/delta/b", np.ones(5)), ValueError, ["'state/delta/b'", "float64", "float32"]),
]


def field(name):
    return getattr(graves, name).State._fields[0]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case, mutate, exc, fragments", BAD_STATE, ids=[c[0] for c in BAD_STATE])
def test_load_state_dict_rejects_bad_state(name, case, mutate, exc, fragments):
    opt, params, grads = trained(name)
    f = field(name)
    d = mutate(trained(name, steps=5, seed=11)[0].state_dict(), f)
    before = snapshot(opt, params)
    with pytest.raises(exc) as info:
        opt.load_state_dict(d)
    assert_message(info, *(x.replace("{f}", f) for x in fragments))
    assert_unchanged(before, opt, params)


@pytest.mark.parametrize("case, mutate, exc, fragments", BAD_STATE_CENTERED, ids=[c[0] for c in BAD_STATE_CENTERED])
def test_load_state_dict_rejects_inconsistent_fields(case, mutate, exc, fragments):
    opt, params, grads = trained("RMSpropGraves")
    d = mutate(trained("RMSpropGraves", steps=5, seed=11)[0].state_dict(), "n")
    before = snapshot(opt, params)
    with pytest.raises(exc) as info:
        opt.load_state_dict(d)
    assert_message(info, *fragments)
    assert_unchanged(before, opt, params)


@pytest.mark.parametrize("owner, target", [(a, b) for a in NAMES for b in NAMES if a != b])
def test_load_state_dict_rejects_another_optimizers_state(owner, target):
    opt, params, grads = trained(target)
    before = snapshot(opt, params)
    with pytest.raises(ValueError) as info:
        opt.load_state_dict(trained(owner)[0].state_dict())
    assert_message(info, repr(owner), repr(target))
    assert_unchanged(before, opt, params)


@pytest.mark.parametrize("not_a_dict", [None, [("format", "graves-checkpoint/1")], "state"])
def test_load_state_dict_rejects_non_mappings(not_a_dict):
    opt, params, grads = trained("RMSpropGraves")
    before = snapshot(opt, params)
    with pytest.raises(TypeError) as info:
        opt.load_state_dict(not_a_dict)
    assert_message(info, "dict")
    assert_unchanged(before, opt, params)


def test_loaded_state_for_other_shapes_is_caught_at_the_next_update():
    """A valid state for different parameters loads; the next step names the mismatch."""
    opt, params, grads = trained("RMSpropGraves")
    other = graves.RMSpropGraves(**HYPER["RMSpropGraves"])
    other.update({"a": np.ones(7)}, {"a": np.ones(7)})
    opt.load_state_dict(other.state_dict())
    before = snapshot(opt, params)
    with pytest.raises(ValueError) as info:
        opt.update(params, grads)
    assert_message(info, "reset()")
    assert_unchanged(before, opt, params)


# --------------------------------------------------------------------------
# graves.load with files that are not checkpoints
# --------------------------------------------------------------------------


def saved_bytes(name="RMSpropGraves"):
    buf = io.BytesIO()
    np.savez(buf, **trained(name)[0].state_dict())
    return buf.getvalue()


def zip_of_text():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes.txt", "not a checkpoint")
    return buf.getvalue()


def npz_of(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def npy_bytes():
    buf = io.BytesIO()
    np.save(buf, np.arange(5.0))
    return buf.getvalue()


def flipped_in_data(data):
    """Flip one byte inside the stored bytes of a state array (a CRC-protected member)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo("state/n/a.npy")
    # local header: 30 bytes + name + extra; the member's last byte is array data
    out = bytearray(data)
    out[info.header_offset + 30 + len(info.filename) + 20 + info.compress_size - 1] ^= 0xFF
    return bytes(out)


def with_state_dict_change(**changes):
    d = trained("RMSpropGraves")[0].state_dict()
    d.update(changes)
    buf = io.BytesIO()
    np.savez(buf, **d)
    return buf.getvalue()


BAD_FILES = [
    ("random-bytes", lambda: np.random.default_rng(0).bytes(2000), ["not a readable"]),
    ("empty", lambda: b"", ["not a readable"]),
    ("npy", npy_bytes, ["single array"]),
    ("zip-of-text", zip_of_text, ["'optimizer'"]),
    ("npz-of-other-arrays", lambda: npz_of(x=np.ones(3), y=np.zeros(2)), ["'optimizer'"]),
    ("npz-of-objects", lambda: npz_of(optimizer=np.array([{"a": 1}], dtype=object)), ["not a readable"]),
    ("truncated-half", lambda: saved_bytes()[: len(saved_bytes()) // 2], ["not a readable"]),
    ("truncated-tail", lambda: saved_bytes()[:-1], ["not a readable"]),
    ("flipped-byte", lambda: flipped_in_data(saved_bytes()), ["not a readable"]),
    ("unknown-optimizer", lambda: with_state_dict_change(optimizer="Adam"), ["'Adam'", "RMSpropGraves"]),
    ("bad-hp", lambda: with_state_dict_change(**{"hp/alpha": 1.0}), ["hp/alpha", "[0, 1)"]),
    ("bad-state", lambda: with_state_dict_change(**{"state/n/a": np.ones(3)}), ["'state/n/a'"]),
]


@pytest.mark.parametrize("case, make, fragments", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_graves_load_rejects_files_that_are_not_checkpoints(tmp_path, case, make, fragments):
    path = tmp_path / f"{case}.npz"
    data = make()
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        graves.load(path)
    assert_message(info, str(path), *fragments)
    assert path.read_bytes() == data  # loading never writes


def test_flipped_byte_control_loads_when_intact(tmp_path):
    """Control: the byte-flip helper targets real data (unflipped, the file loads)."""
    data = saved_bytes()
    assert flipped_in_data(data) != data
    (tmp_path / "ok.npz").write_bytes(data)
    assert isinstance(graves.load(tmp_path / "ok.npz"), graves.RMSpropGraves)


def test_graves_load_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "ckpt.npz"
    with pytest.raises(FileNotFoundError) as info:
        graves.load(path)
    assert_message(info, str(path))


def test_graves_load_directory_names_the_path(tmp_path):
    with pytest.raises(OSError) as info:
        graves.load(tmp_path)
    assert_message(info, str(tmp_path))


# --------------------------------------------------------------------------
# Parameters and gradients as consecutive views of one buffer
# --------------------------------------------------------------------------
# The optimizer may run such a call in one pass, and may skip per-key checks
# when the very same array objects come back.  The API must not change: bad
# input still raises and changes nothing, and the result is bitwise the same.

PACKED_SHAPES = {"a": (3, 4), "b": (5,), "c": ()}
PACKED_SIZE = 18


def views(buffer):
    out, start = {}, 0
    for k, shape in PACKED_SHAPES.items():
        size = int(np.prod(shape))
        out[k] = buffer[start : start + size].reshape(shape)
        start += size
    return out


def packed(name, steps=2, seed=7, **options):
    """An optimizer after ``steps`` calls on views of one buffer, with the next
    gradient already written into the same gradient views; and a twin run on
    separate copies of the same numbers."""
    rng = np.random.default_rng(seed)
    w_buf, g_buf = rng.normal(size=PACKED_SIZE), np.zeros(PACKED_SIZE)
    params, grads = views(w_buf), views(g_buf)
    separate = {k: v.copy() for k, v in params.items()}
    opt = getattr(graves, name)(**HYPER[name], **options)
    twin = getattr(graves, name)(**HYPER[name], **options)
    for _ in range(steps):
        g_buf[...] = rng.normal(size=PACKED_SIZE)
        opt.update(params, grads)
        twin.update(separate, {k: v.copy() for k, v in grads.items()})
    g_buf[...] = rng.normal(size=PACKED_SIZE)
    return opt, params, grads, twin, separate


def assert_same_run(opt, params, twin, separate):
    for k in params:
        assert frozen(params[k]) == frozen(separate[k]), k
    assert {k: frozen(v) for k, v in opt.state_dict().items()} == {
        k: frozen(v) for k, v in twin.state_dict().items()
    }


@pytest.mark.parametrize("name", NAMES)
def test_packed_views_give_the_same_result_bitwise(name):
    opt, params, grads, twin, separate = packed(name, steps=6)
    assert_same_run(opt, params, twin, separate)
    opt.lr = twin.lr = opt.lr / 3  # a schedule is read at every step
    opt.update(params, grads)
    twin.update(separate, {k: v.copy() for k, v in grads.items()})
    assert_same_run(opt, params, twin, separate)


PACKED_BAD = [
    # id, change made in place to the same objects (or a replacement), exception, fragments
    ("nan-in-place", lambda p, g: g["b"].__setitem__(2, np.nan), FloatingPointError, ["'b'"]),
    ("inf-in-0d", lambda p, g: g["c"].__setitem__((), np.inf), FloatingPointError, ["'c'"]),
    ("readonly-flag", lambda p, g: setattr(p["a"].flags, "writeable", False), ValueError, ["'a'", "read-only"]),
    ("grad-reshaped", lambda p, g: setattr(g["a"], "shape", (4, 3)), ValueError, ["'a'", "(4, 3)"]),
    ("grad-dtype-view", lambda p, g: g.__setitem__("b", g["b"].astype(complex)), TypeError, ["'b'", "real dtype"]),
    (
        "param-reshaped",
        lambda p, g: (setattr(p["a"], "shape", (12,)), setattr(g["a"], "shape", (12,))),
        ValueError,
        ["'a'", "reset()"],
    ),
    ("grad-missing", lambda p, g: g.pop("b"), KeyError, ["'b'"]),
    ("param-new", lambda p, g: (p.__setitem__("d", np.ones(2)), g.__setitem__("d", np.ones(2))), ValueError, ["'d'", "reset()"]),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case, change, exc, fragments", PACKED_BAD, ids=[c[0] for c in PACKED_BAD])
def test_packed_views_bad_input_raises_and_changes_nothing(name, case, change, exc, fragments):
    opt, params, grads, twin, separate = packed(name)
    arrays = dict(params)  # the caller's array objects, whatever the dict holds later
    before = snapshot(opt, arrays)
    bad_params, bad_grads = dict(params), dict(grads)
    change(bad_params, bad_grads)
    with pytest.raises(exc) as info:
        opt.update(bad_params, bad_grads)
    assert_message(info, *fragments)
    if case == "param-reshaped":  # compare the values, not the (changed) shape
        arrays["a"].shape = (3, 4)
    arrays["a"].flags.writeable = True
    assert_unchanged(before, opt, arrays)


@pytest.mark.parametrize("name", NAMES)
def test_packed_views_nonfinite_skip(name):
    opt, params, grads, twin, separate = packed(name, nonfinite="skip")
    before = snapshot(opt, params)
    saved = grads["b"][1].copy()
    grads["b"][1] = np.nan
    opt.update(params, grads)
    assert opt.skipped_steps == 1 and opt.step_count == 2
    before["counters"] = (2, 1, "skip")
    before["state_dict"]["skipped_steps"] = frozen(1)
    assert_unchanged(before, opt, params)
    grads["b"][1] = saved
    opt.update(params, grads)
    twin.update(separate, {k: v.copy() for k, v in grads.items()})
    for k in params:
        assert frozen(params[k]) == frozen(separate[k])


@pytest.mark.parametrize("name", NAMES)
def test_load_state_dict_into_a_packed_run(name):
    """Loading replaces the state the packed run was using; the next steps use the loaded one."""
    opt, params, grads, twin, separate = packed(name, steps=3)
    other, other_params, _, _, _ = packed(name, steps=5, seed=9)
    opt.load_state_dict(other.state_dict())
    twin.load_state_dict(other.state_dict())
    for _ in range(3):
        opt.update(params, grads)
        twin.update(separate, {k: v.copy() for k, v in grads.items()})
    assert_same_run(opt, params, twin, separate)
    # and the source optimizer was not touched by what the loader did afterwards
    assert other.step_count == 5
