"""graves.torch: the numpy package's update as torch.optim optimizers.

Parity: 1,000 steps on the noisy quadratic of tests/framework_problem.py, with
an lr changed before every step, against graves.RMSpropGraves and each preset
of graves.frameworks (float64: 1e-12 relative; float32: the numpy package's own
float32 agreement, 2e-5, tests/test_performance_paths.py).  The foreach and the
for-loop paths must agree bit for bit.  Skipped without PyTorch.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: graves.torch is not tested")

import graves  # noqa: E402
import graves.torch as gt  # noqa: E402
from graves import frameworks  # noqa: E402

from framework_problem import STEPS, lr_schedule, problem  # noqa: E402

RTOL = {torch.float64: 1e-12, torch.float32: 2e-5}
NP_DTYPE = {torch.float64: np.float64, torch.float32: np.float32}

# one configuration per library that exercises its variant (centered; Optax's options)
CONFIGS = {
    "chainer": dict(lr=1e-3, alpha=0.95, momentum=0.9, eps=1e-4),
    "torch": dict(lr=1e-3, alpha=0.95, momentum=0.9, eps=1e-6, centered=True),
    "torch-uncentered": dict(lr=1e-3, alpha=0.95, momentum=0.9, eps=1e-6),
    "keras": dict(learning_rate=1e-3, rho=0.95, momentum=0.9, epsilon=1e-4, centered=True),
    "tf1": dict(learning_rate=1e-3, decay=0.95, momentum=0.9, epsilon=1e-4, centered=True),
    "optax": dict(learning_rate=1e-3, decay=0.95, eps=1e-4, centered=True, momentum=0.9),
    "optax-nesterov": dict(learning_rate=1e-3, decay=0.95, eps=1e-6, centered=True, momentum=0.9, nesterov=True),
    "optax-bias-correction": dict(learning_rate=1e-3, decay=0.95, eps=1e-6, centered=True, momentum=0.9,
                                  bias_correction=True, initial_scale=0.1, eps_in_sqrt=False),
    "optax-uncentered-bias": dict(learning_rate=1e-3, decay=0.95, eps=1e-6, bias_correction=True),
    "dqn": dict(lr=1e-3),
    "chainer-recursive": dict(lr=1e-3, alpha=0.95, momentum=0.9, eps=1e-4, spread="recursive"),
    "torch-recursive": dict(lr=1e-3, alpha=0.95, momentum=0.9, eps=1e-6, centered=True, spread="recursive"),
}


def library(config_name):
    return config_name.split("-")[0]


def lr_key(name):
    return "learning_rate" if library(name) in ("keras", "tf1", "optax") else "lr"


def torch_trajectory(name, kw, dtype, foreach, steps=STEPS):
    w0, h, target, noise = problem(steps=steps)
    lrs = lr_schedule(kw[lr_key(name)], steps=steps)
    w = torch.nn.Parameter(torch.tensor(w0, dtype=dtype))
    opt = gt.make(library(name), [w], foreach=foreach, **kw)
    out = np.empty((steps, w0.size), dtype=NP_DTYPE[dtype])
    h_t, target_t = torch.tensor(h, dtype=dtype), torch.tensor(target, dtype=dtype)
    for t, lr in enumerate(lrs):
        w.grad = h_t * (w.detach() - target_t) + torch.tensor(noise[t], dtype=dtype)
        opt.param_groups[0]["lr"] = lr
        opt.step()
        out[t] = w.detach().numpy()
    return out, opt


def numpy_trajectory(name, kw, dtype, steps=STEPS, graves_class=False):
    w0, h, target, noise = problem(steps=steps)
    lrs = lr_schedule(kw[lr_key(name)], steps=steps)
    nd = NP_DTYPE[dtype]
    opt = graves.RMSpropGraves(**kw) if graves_class else frameworks.make(library(name), **kw)
    params = {"w": w0.astype(nd)}
    out = np.empty((steps, w0.size), dtype=nd)
    for t, lr in enumerate(lrs):
        # the gradient formed as the torch run forms it: in the parameters' dtype
        grad = (h.astype(nd) * (params["w"] - target.astype(nd)) + noise[t].astype(nd)).astype(nd)
        opt.lr = lr
        opt.update(params, {"w": grad})
        out[t] = params["w"]
    return out


def relative_error(a, b):
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) / np.max(np.abs(b.astype(np.float64))))


DTYPES = pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])


@DTYPES
@pytest.mark.parametrize("name", ["chainer", "chainer-recursive"])
def test_rmspropgraves_matches_numpy_graves(dtype, name):
    kw = CONFIGS[name]
    mine, _ = torch_trajectory(name, kw, dtype, foreach=False)
    theirs = numpy_trajectory(name, kw, dtype, graves_class=True)
    assert np.all(np.isfinite(mine))
    assert relative_error(mine, theirs) <= RTOL[dtype]
    # the run moves by a distance of order one, so an error in a step would show
    assert np.max(np.abs(theirs[-1] - problem()[0])) > 0.5


@DTYPES
@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_preset_matches_graves_frameworks(name, dtype):
    kw = CONFIGS[name]
    mine, _ = torch_trajectory(name, kw, dtype, foreach=False)
    theirs = numpy_trajectory(name, kw, dtype)
    assert np.all(np.isfinite(mine)) and np.all(np.isfinite(theirs))
    assert relative_error(mine, theirs) <= RTOL[dtype], name


def test_presets_differ_from_each_other():
    """The parity above could not pass by accident: the variants give different trajectories."""
    finals = {name: torch_trajectory(name, CONFIGS[name], torch.float64, foreach=False, steps=200)[0][-1]
              for name in ("chainer", "torch", "tf1", "optax-nesterov")}
    for a, b in itertools.combinations(finals, 2):
        assert not np.allclose(finals[a], finals[b], rtol=1e-6, atol=0), (a, b)


@DTYPES
@pytest.mark.parametrize("name", list(CONFIGS))
def test_foreach_and_loop_are_bitwise_equal(name, dtype):
    loop, opt_loop = torch_trajectory(name, CONFIGS[name], dtype, foreach=False, steps=300)
    fe, opt_fe = torch_trajectory(name, CONFIGS[name], dtype, foreach=True, steps=300)
    np.testing.assert_array_equal(loop, fe)
    for (p1, s1), (p2, s2) in zip(opt_loop.state.items(), opt_fe.state.items()):
        for k in s1:
            assert torch.equal(s1[k], s2[k]), k


def small_model(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3), torch.nn.Tanh(),
                               torch.nn.Linear(3, 1)).to(dtype)


def train(model, opt, steps=30, seed=1, scheduler=None):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 5, generator=g, dtype=torch.float64)
        y = torch.randn(16, 1, generator=g, dtype=torch.float64)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss

        opt.step(closure)
        if scheduler is not None:
            scheduler.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("weight_decay, maximize", [(0.0, False), (0.1, False), (0.0, True), (0.05, True)])
def test_foreach_equals_loop_on_many_tensors_with_options(weight_decay, maximize):
    results = []
    for foreach in (False, True):
        model = small_model()
        groups = [{"params": list(model[0].parameters()), "lr": 3e-3, "eps": 1e-6},
                  {"params": list(model[2].parameters()) + list(model[4].parameters())}]
        opt = gt.RMSpropGraves(groups, lr=1e-3, weight_decay=weight_decay, maximize=maximize, foreach=foreach)
        results.append(train(model, opt))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_mixed_dtypes_and_devices_are_bucketed():
    a = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(4, dtype=torch.float32))
    runs = []
    for foreach in (False, True):
        pa, pb = torch.nn.Parameter(a.detach().clone()), torch.nn.Parameter(b.detach().clone())
        opt = gt.RMSpropGraves([pa, pb], lr=1e-2, foreach=foreach)
        for t in range(5):
            pa.grad = torch.full_like(pa, 0.5 + t)
            pb.grad = torch.full_like(pb, -1.0 + t)
            opt.step()
        runs.append((pa.detach(), pb.detach()))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][1].dtype == torch.float32


def test_weight_decay_and_maximize_as_in_torch_rmsprop():
    """make("torch", ...) with weight_decay and maximize follows torch.optim.RMSprop (which fuses
    some operations, hence a tolerance, not bits)."""
    kw = dict(lr=1e-2, alpha=0.9, eps=1e-6, momentum=0.5, centered=True, weight_decay=0.1, maximize=True)
    finals = []
    for make in (lambda ps: torch.optim.RMSprop(ps, **kw), lambda ps: gt.make("torch", ps, **kw)):
        model = small_model()
        finals.append(train(model, make(model.parameters()), steps=100))
    for a, b in zip(*finals):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_skips_parameters_without_grad():
    model = small_model()
    frozen = [p.detach().clone() for p in model[4].parameters()]
    opt = gt.RMSpropGraves(model.parameters(), lr=1e-2)
    x = torch.randn(4, 5, dtype=torch.float64)
    loss = model[2](model[1](model[0](x))).sum()  # the last layer is not used: its .grad stays None
    loss.backward()
    opt.step()
    for p, before in zip(model[4].parameters(), frozen):
        assert p.grad is None and torch.equal(p.detach(), before) and p not in opt.state
    assert all(p in opt.state for p in model[0].parameters())


def test_closure_returns_loss_and_lr_scheduler_works():
    model = small_model()
    opt = gt.RMSpropGraves(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    train(model, opt, steps=25, scheduler=sched)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.25)
    x = torch.randn(3, 5, dtype=torch.float64)
    loss = opt.step(lambda: model(x).sum())
    assert isinstance(loss, torch.Tensor)


def test_lr_inside_the_buffer_under_a_schedule():
    """Chainer's placement: a new lr scales only the new contribution to Δ.  After a cut to
    lr = 0, Δ keeps decaying by momentum and keeps moving w; PyTorch's placement stops at once."""
    moved = {}
    for name, kw in (("chainer", dict(lr=1e-2)), ("torch", dict(lr=1e-2, momentum=0.9, centered=True))):
        w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        opt = gt.make(name, [w], **kw)
        for _ in range(5):
            w.grad = torch.ones(1, dtype=torch.float64)
            opt.step()
        before = w.item()
        opt.param_groups[0]["lr"] = 0.0
        w.grad = torch.ones(1, dtype=torch.float64)
        opt.step()
        moved[name] = w.item() - before
    assert moved["chainer"] != 0 and moved["torch"] == 0


def test_state_dict_round_trip_resumes_exactly():
    model = small_model()
    opt = gt.RMSpropGraves(model.parameters(), lr=1e-2)
    train(model, opt, steps=10)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    assert set(saved_opt["state"][0]) == {"step", "n", "g", "delta"}
    straight = train(model, opt, steps=10, seed=2)

    model2 = small_model(seed=5)
    model2.load_state_dict(saved_model)
    opt2 = gt.RMSpropGraves(model2.parameters())  # other defaults: the state dict restores the groups
    opt2.load_state_dict(saved_opt)
    assert opt2.param_groups[0]["lr"] == 1e-2
    resumed = train(model2, opt2, steps=10, seed=2)
    for a, b in zip(straight, resumed):
        assert torch.equal(a, b)


def test_tf1_state_starts_at_one_and_optax_at_initial_scale():
    w = torch.nn.Parameter(torch.zeros(3))
    opt = gt.make("tf1", [w], learning_rate=0.1, centered=True)
    w.grad = torch.zeros(3)
    opt.step()
    assert torch.equal(opt.state[w]["n"], torch.full((3,), 0.9))
    opt = gt.make("optax", [w], learning_rate=0.1, initial_scale=0.5)
    w.grad = torch.zeros(3)
    opt.step()
    assert torch.allclose(opt.state[w]["n"], torch.full((3,), 0.45))


def test_group_keywords_in_library_names():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = gt.make("tf1", [{"params": [a]}, {"params": [b], "learning_rate": 0.5, "decay": 0.8}], learning_rate=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert [g["alpha"] for g in opt.param_groups] == [0.9, 0.8]
    assert "learning_rate" not in opt.param_groups[1]
    with pytest.raises(ValueError, match="'learning_rate' and 'lr'"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "learning_rate": 0.1, "lr": 0.2})


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda ps: gt.RMSpropGraves(ps, lr=-1.0), ValueError, ["lr", ">= 0"]),
        (lambda ps: gt.RMSpropGraves(ps, alpha=1.0), ValueError, ["alpha", "[0, 1)"]),
        (lambda ps: gt.RMSpropGraves(ps, maximize=1), TypeError, ["maximize"]),
        (lambda ps: gt.RMSpropGraves(ps, weight_decay=-0.1), ValueError, ["weight_decay"]),
        (lambda ps: gt.make("tf1", ps, lr=0.1), TypeError, ["'lr'", "learning_rate"]),
        (lambda ps: gt.make("tf1", ps), TypeError, ["learning_rate"]),
        (lambda ps: gt.make("keras", ps, compiled=True), TypeError, ["compiled", "numpy optimizers"]),
        (lambda ps: gt.make("dqn", ps, lr=1e-3).add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))],
                                                                 "alpha": 0.9}), ValueError, ["alpha", "0.95"]),
        (lambda ps: gt.make("mxnet", ps), ValueError, ["unknown library", "chainer"]),
    ],
)
def test_bad_input_raises_naming_the_parameter(make, error, words):
    ps = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(error) as info:
        make(ps)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_a_bad_group_at_step_time_changes_nothing():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = gt.RMSpropGraves([{"params": [a]}, {"params": [b]}], lr=0.1)
    a.grad, b.grad = torch.ones(2), torch.ones(2)
    opt.param_groups[1]["alpha"] = 1.5
    with pytest.raises(ValueError, match="alpha"):
        opt.step()
    assert torch.equal(a.detach(), torch.ones(2)) and not opt.state


def _reshape_second(opt, a, b):
    b.data = torch.zeros(5)
    b.grad = torch.ones(5)


def _reshape_second_keep_grad(opt, a, b):
    b.data = torch.zeros(5)


def _load(change):
    def run(opt, a, b):
        saved = copy.deepcopy(opt.state_dict())
        change(saved["state"][1])
        opt.load_state_dict(saved)

    return run


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(
    "change, words",
    [
        (_reshape_second, ["parameter 1 of group 0", "'n'", "[4]", "[5]"]),
        (_reshape_second_keep_grad, ["parameter 1 of group 0", "[4]", "[5]"]),
        (_load(lambda s: s.update(g=torch.zeros(7))), ["parameter 1 of group 0", "'g'", "[7]", "[4]"]),
        (_load(lambda s: s.pop("delta")), ["parameter 1 of group 0", "'delta'"]),
        (_load(lambda s: s.pop("step")), ["parameter 1 of group 0", "'step'"]),
    ],
    ids=["parameter reshaped", "parameter reshaped, old gradient", "state of another shape",
         "state without delta", "state without step"],
)
def test_a_state_that_does_not_fit_its_parameter_is_refused_before_any_write(change, words, foreach):
    """A step that raises changes nothing, also when the state no longer fits a
    parameter (replaced data, or a state dict of another model)."""
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(4))
    opt = gt.RMSpropGraves([a, b], lr=0.1, foreach=foreach)
    a.grad, b.grad = torch.ones(3), torch.ones(4)
    opt.step()
    change(opt, a, b)
    state = {p: {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}
    before = (a.detach().clone(), b.detach().clone(), state)
    with pytest.raises(ValueError) as info:
        opt.step()
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    assert torch.equal(a.detach(), before[0]) and torch.equal(b.detach(), before[1])
    for p, state in before[2].items():
        assert set(opt.state[p]) == set(state)
        for k, v in state.items():
            assert torch.equal(opt.state[p][k], v), k


@pytest.mark.parametrize("foreach", [False, True])
def test_an_integer_tensor_is_refused_before_any_write(foreach):
    """A tensor without gradients of its own can still be given a ``.grad``;
    an integer one cannot take the step, and nothing else may take it either."""
    a = torch.nn.Parameter(torch.zeros(2))
    counts = torch.zeros(3, dtype=torch.int64)
    a.grad, counts.grad = torch.ones(2), torch.ones(3, dtype=torch.int64)
    opt = gt.RMSpropGraves([a, counts], lr=0.1, foreach=foreach)
    with pytest.raises(TypeError) as info:
        opt.step()
    for w in ["parameter 1 of group 0", "torch.int64", "floating"]:
        assert w in str(info.value), (w, str(info.value))
    assert torch.equal(a.detach(), torch.zeros(2)) and not opt.state


@pytest.mark.parametrize("value", [[True], {"on": True}, "yes", None])
def test_a_bad_variant_keyword_at_step_time_is_named(value):
    a = torch.nn.Parameter(torch.zeros(2))
    a.grad = torch.ones(2)
    opt = gt.make("torch", [a], lr=0.1, centered=True)
    opt.param_groups[0]["centered"] = value
    with pytest.raises(TypeError, match="centered must be True or False"):
        opt.step()
    assert torch.equal(a.detach(), torch.zeros(2)) and not opt.state


def test_the_step_count_may_stay_on_the_cpu():
    """torch.optim keeps ``state["step"]`` on the CPU for a parameter on an
    accelerator; only the averages must be where the parameter is."""
    p = torch.zeros(3, device="meta")
    p.grad = torch.zeros(3, device="meta")
    state = {"step": torch.tensor(1.0), **{k: torch.zeros(3, device="meta") for k in ("n", "g", "delta")}}
    gt._check_fits(p, state, "n", "parameter 0 of group 0")
    state["g"] = torch.zeros(3)
    with pytest.raises(ValueError, match="'g' of shape \\[3\\] on cpu"):
        gt._check_fits(p, state, "n", "parameter 0 of group 0")


def test_spread_recursive_keeps_s_and_cannot_change_midway():
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = gt.RMSpropGraves([w], lr=1e-2, spread="recursive")
    w.grad = torch.ones(3, dtype=torch.float64)
    opt.step()
    assert set(opt.state[w]) == {"step", "s", "g", "delta"}
    # after one step of gradient 1 from zero: n = 0.05, g = 0.05, so s = n - g² = 0.0475
    torch.testing.assert_close(opt.state[w]["s"], torch.full((3,), 0.0475, dtype=torch.float64))
    opt.param_groups[0]["spread"] = "difference"
    with pytest.raises(ValueError, match="spread"):
        opt.step()
    with pytest.raises(ValueError, match="centered"):
        gt.make("torch", [w], spread="recursive")  # PyTorch's default is uncentered


def test_sparse_gradients_are_refused():
    w = torch.nn.Parameter(torch.zeros(3))
    w.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        gt.RMSpropGraves([w]).step()


def test_optimizer_classes_cover_every_library():
    for name in frameworks.LIBRARIES:
        cls = gt.optimizer_class(name)
        assert issubclass(cls, torch.optim.Optimizer) and cls.library == name
    assert gt.optimizer_class("chainer") is gt.RMSpropGraves
