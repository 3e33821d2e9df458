"""Optimizers and learning-rate schedules.

Every optimizer's parameter trajectory is checked against a hand-written NumPy version of
its update rule (below, in textbook form) and, where torch is installed, against
``torch.optim`` fed the same parameters and gradients; also dtypes, parameter groups,
skipped parameters, state-dict round trips (bit-identical resume) and argument checks.
Schedules are checked against their closed forms (ReduceLROnPlateau against a hand-computed
sequence) and, where torch is installed, against ``torch.optim.lr_scheduler`` value by value.
"""

from __future__ import annotations

import math
import pickle
from functools import partial

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_rnn as tg
from conftest import TOL
from tinygrad_rnn.nn import Parameter
from tinygrad_rnn.optim import SGD, Adadelta, Adagrad, Adam, AdamW, Optimizer, RMSprop, lr_scheduler


def _import_torch():
    try:
        return pytest.importorskip("torch", exc_type=ImportError)
    except pytest.skip.Exception:
        return None


torch = _import_torch()
requires_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

F64 = {"rtol": 1e-12, "atol": 1e-14}
SHAPES = [(3,), (2, 3), ()]
STEPS = 10


# ---------------------------------------------------------------- NumPy references (one step, one parameter)
# Each takes the parameter p, its gradient g and a dict s of its state; returns the new p.

def ref_sgd(p, g, s, lr, momentum, dampening, weight_decay, nesterov, maximize):
    d = (-g if maximize else g) + weight_decay * p
    if momentum != 0:
        s["b"] = d.copy() if "b" not in s else momentum * s["b"] + (1 - dampening) * d
        d = d + momentum * s["b"] if nesterov else s["b"]
    return p - lr * d


def ref_adam(p, g, s, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay=False):
    b1, b2 = betas
    t = s["t"] = s.get("t", 0) + 1
    g = -g if maximize else g
    if decoupled_weight_decay:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    m = s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    v = s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    if amsgrad:
        v = s["vmax"] = np.maximum(s.get("vmax", 0.0), v)
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def ref_rmsprop(p, g, s, lr, alpha, eps, weight_decay, momentum, centered, maximize):
    g = (-g if maximize else g) + weight_decay * p
    v = s["v"] = alpha * s.get("v", 0.0) + (1 - alpha) * g * g
    if centered:
        s["gbar"] = alpha * s.get("gbar", 0.0) + (1 - alpha) * g
        v = v - s["gbar"] ** 2
    d = g / (np.sqrt(v) + eps)
    if momentum > 0:
        d = s["b"] = momentum * s.get("b", 0.0) + d
    return p - lr * d


def ref_adagrad(p, g, s, lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize):
    t = s["t"] = s.get("t", 0) + 1
    g = (-g if maximize else g) + weight_decay * p
    s["sum"] = s.get("sum", initial_accumulator_value) + g * g
    return p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(s["sum"]) + eps)


def ref_adadelta(p, g, s, lr, rho, eps, weight_decay, maximize):
    g = (-g if maximize else g) + weight_decay * p
    v = s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g * g
    delta = np.sqrt(s.get("u", 0.0) + eps) / np.sqrt(v + eps) * g
    s["u"] = rho * s.get("u", 0.0) + (1 - rho) * delta**2
    return p - lr * delta


# ---------------------------------------------------------------- option strategies
lrs = st.floats(1e-4, 0.5)
decays = st.sampled_from([0.0, 0.01, 0.1])


@st.composite
def sgd_options(draw):
    momentum, dampening = draw(st.sampled_from([0.0, 0.5, 0.9])), draw(st.sampled_from([0.0, 0.3]))
    nesterov = draw(st.booleans()) if momentum > 0 and dampening == 0 else False
    return dict(lr=draw(lrs), momentum=momentum, dampening=dampening, weight_decay=draw(decays),
                nesterov=nesterov, maximize=draw(st.booleans()))


def adam_options(decoupled: bool | None):
    return st.fixed_dictionaries(dict(
        lr=lrs, betas=st.sampled_from([(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)]), eps=st.sampled_from([1e-8, 1e-3]),
        weight_decay=decays, amsgrad=st.booleans(), maximize=st.booleans(),
        **({} if decoupled is None else {"decoupled_weight_decay": st.just(decoupled) | st.booleans()})))


SPECS = {  # name: (class, reference, option strategy, every option switched on)
    "SGD": (SGD, ref_sgd, sgd_options(),
            dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.01, nesterov=True, maximize=False)),
    "Adam": (Adam, ref_adam, adam_options(False),
             dict(lr=0.05, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.01, amsgrad=True, maximize=False)),
    "AdamW": (AdamW, partial(ref_adam, decoupled_weight_decay=True), adam_options(None),
              dict(lr=0.05, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.05, amsgrad=True, maximize=True)),
    "RMSprop": (RMSprop, ref_rmsprop, st.fixed_dictionaries(dict(
        lr=lrs, alpha=st.sampled_from([0.99, 0.9, 0.5]), eps=st.sampled_from([1e-8, 1e-3]), weight_decay=decays,
        momentum=st.sampled_from([0.0, 0.5, 0.9]), centered=st.booleans(), maximize=st.booleans())),
        dict(lr=0.01, alpha=0.9, eps=1e-8, weight_decay=0.01, momentum=0.5, centered=True, maximize=False)),
    "Adagrad": (Adagrad, ref_adagrad, st.fixed_dictionaries(dict(
        lr=lrs, lr_decay=st.sampled_from([0.0, 0.1]), weight_decay=decays,
        initial_accumulator_value=st.sampled_from([0.0, 0.1]), eps=st.sampled_from([1e-10, 1e-3]),
        maximize=st.booleans())),
        dict(lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.1, eps=1e-10, maximize=False)),
    "Adadelta": (Adadelta, ref_adadelta, st.fixed_dictionaries(dict(
        lr=st.sampled_from([1.0, 0.5]), rho=st.sampled_from([0.9, 0.5, 0.99]), eps=st.sampled_from([1e-6, 1e-3]),
        weight_decay=decays, maximize=st.booleans())),
        dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.01, maximize=True)),
}

# Gradient entries: zero or of magnitude in [1e-3, 3] (no underflowing squares, where rules divide).
# Both are scaled by "unround" factors: hypothesis likes round numbers, and a round gradient that
# exactly cancels the weight decay term (0.001 - 0.1 * 0.01) leaves the normalising rules dividing
# rounding noise by rounding noise, where torch's fused multiply-add and NumPy differ by O(1).
grad_values = (st.just(0.0) | st.floats(1e-3, 3.0) | st.floats(-3.0, -1e-3)).map(lambda x: x * (1 + 1 / 7))
param_values = st.floats(-2.0, 2.0, allow_subnormal=False).map(lambda x: x * (1 + 1 / 11))


def draw_problem(data):
    """Initial parameters, STEPS gradients per parameter, and which are present (None otherwise)."""
    p0 = [data.draw(hnp.arrays(np.float64, s, elements=param_values)) for s in SHAPES]
    grads = [[data.draw(hnp.arrays(np.float64, s, elements=grad_values)) for s in SHAPES] for _ in range(STEPS)]
    present = data.draw(st.lists(st.lists(st.booleans(), min_size=len(SHAPES), max_size=len(SHAPES)),
                                 min_size=STEPS, max_size=STEPS))
    return p0, [[g if keep else None for g, keep in zip(gs, ks)] for gs, ks in zip(grads, present)]


def fixed_problem(seed):
    """Initial parameters (one per shape in SHAPES) and STEPS gradients for each, from ``seed``."""
    rng = np.random.default_rng(seed)
    p0 = [rng.standard_normal(s) for s in SHAPES]
    return p0, [[rng.standard_normal(s) for s in SHAPES] for _ in range(STEPS)]


def make_params(p0, dtype="float64"):
    return [Parameter(tg.tensor(np.asarray(a), dtype=dtype)) for a in p0]


def run_ours(opt, params, grads):
    """Step ``opt`` once per gradient list; returns the parameters' values after each step."""
    out = []
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = None if g is None else tg.Tensor(g.copy())
        opt.step()
        out.append([p.numpy().copy() for p in params])
    return out


def run_ref(ref, p0, grads, options_per_param):
    ps, states, out = [a.copy() for a in p0], [{} for _ in p0], []
    for gs in grads:
        ps = [p if g is None else ref(p, g, s, **o) for p, g, s, o in zip(ps, gs, states, options_per_param)]
        out.append([p.copy() for p in ps])
    return out


def run_torch(name, p0, grads, groups_spec, options):
    """torch.optim on copies of p0; ``groups_spec`` is a list of (indices, overrides)."""
    tps = [torch.tensor(a, requires_grad=True) for a in p0]
    groups = [{"params": [tps[i] for i in idx], **over} for idx, over in groups_spec]
    opt = getattr(torch.optim, name)(groups, foreach=False, **options)
    out = []
    for gs in grads:
        for p, g in zip(tps, gs):
            p.grad = None if g is None else torch.tensor(g)
        opt.step()
        out.append([p.detach().numpy().copy() for p in tps])
    return out


def assert_trajectories_close(a, b, **tol):
    for step, (xs, ys) in enumerate(zip(a, b)):
        for i, (x, y) in enumerate(zip(xs, ys)):
            np.testing.assert_allclose(x, y, err_msg=f"step {step + 1}, parameter {i}", **tol)


# ---------------------------------------------------------------- update rules

@pytest.mark.parametrize("name", list(SPECS))
@given(data=st.data())
def test_trajectory_matches_numpy_rule_and_torch_and_skips_missing_grads(name, data):
    cls, ref, options, _ = SPECS[name]
    opts = data.draw(options)
    p0, grads = draw_problem(data)
    params = make_params(p0)
    ours = run_ours(cls(params, **opts), params, grads)
    assert_trajectories_close(ours, run_ref(ref, p0, grads, [opts] * len(p0)), **F64)
    if torch is not None:
        assert_trajectories_close(ours, run_torch(name, p0, grads, [(range(len(p0)), {})], opts), **F64)


@pytest.mark.parametrize("name", list(SPECS))
def test_step_binds_new_values_records_nothing_and_leaves_grads_alone(name):
    # the Parameter stays the same object; its old array, which a retained graph may have
    # saved, keeps the values it had
    cls, _, _, full = SPECS[name]
    p = Parameter(tg.tensor([0.5, -1.0, 2.0], dtype="float64"))
    opt = cls([p], **full)
    for _ in range(3):
        g = np.array([0.3, -0.2, 1.0])
        p.grad = tg.Tensor(g.copy())
        old, values = p.data, p.data.copy()
        opt.step()
        np.testing.assert_array_equal(p.grad.numpy(), g)
        np.testing.assert_array_equal(old, values)
        assert not np.array_equal(p.data, values) and p.node is None and p.requires_grad
    assert opt.param_groups[0]["params"][0] is p


@pytest.mark.parametrize("name", list(SPECS))
def test_float32_parameters_and_state_stay_float32(name):
    cls, ref, _, full = SPECS[name]
    p0, grads = fixed_problem(1)
    params = make_params(p0, "float32")
    opt = cls(params, **full)
    ours = run_ours(opt, params, [[g.astype(np.float32) for g in gs] for gs in grads])
    for p in params:
        assert p.dtype == np.float32
        assert all(v.dtype == np.float32 for v in opt.state[p].values() if hasattr(v, "dtype"))
    assert_trajectories_close(ours, run_ref(ref, p0, grads, [full] * len(p0)), **TOL[np.dtype(np.float32)])


@pytest.mark.parametrize("name", list(SPECS))
def test_param_groups_use_their_own_options(name):
    cls, ref, _, full = SPECS[name]
    p0, grads = fixed_problem(2)
    override = {"lr": full["lr"] / 3, "weight_decay": 0.0}
    params = make_params(p0)
    opt = cls([{"params": params[:2]}, {"params": params[2:], **override}], **full)
    assert opt.param_groups[1]["lr"] == override["lr"] and opt.param_groups[0]["lr"] == full["lr"]
    ours = run_ours(opt, params, grads)
    assert_trajectories_close(ours, run_ref(ref, p0, grads, [full, full, {**full, **override}]), **F64)
    if torch is not None:
        spec = [([0, 1], {}), ([2], override)]
        assert_trajectories_close(ours, run_torch(name, p0, grads, spec, full), **F64)


def test_parameter_without_grad_is_untouched_and_has_no_state():
    a, b = make_params([np.ones(2), np.ones(2)])
    opt = Adam([a, b])
    a.grad = tg.Tensor(np.ones(2))
    opt.step()
    np.testing.assert_array_equal(b.numpy(), np.ones(2))
    assert opt.state_dict()["state"].keys() == {0} and opt.state[a]["step"] == 1


def test_zero_grad_sets_none_or_zeros_in_a_new_array():
    (p,) = make_params([np.ones(3)])
    opt = SGD([p], lr=0.1)
    p.grad = tg.Tensor(np.ones(3))
    grad, grad_array = p.grad, p.grad.data
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad and not p.grad.data.any() and p.grad.dtype == grad_array.dtype
    np.testing.assert_array_equal(grad_array, np.ones(3))  # never zeroed in place (a graph may hold it)
    opt.zero_grad()
    assert p.grad is None


def test_step_runs_the_closure_with_grad_enabled_and_returns_its_loss():
    (p,) = make_params([np.array([3.0])])
    opt = SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with tg.no_grad():
        loss = opt.step(closure)
    assert float(loss) == 9.0 and p.numpy()[0] == 3.0 - 0.25 * 6.0


# ---------------------------------------------------------------- state dicts

@pytest.mark.parametrize("name", list(SPECS))
def test_state_dict_resume_is_bit_identical_to_an_uninterrupted_run(name):
    cls, _, _, full = SPECS[name]
    p0, grads = fixed_problem(3)
    params = make_params(p0)
    straight = run_ours(cls(params, **full), params, grads)

    params = make_params(p0)
    opt = cls([{"params": params[:1]}, {"params": params[1:], "lr": full["lr"]}], **full)
    run_ours(opt, params, grads[:5])
    saved = pickle.loads(pickle.dumps(opt.state_dict()))  # plain Python and NumPy: picklable
    resumed = make_params([p.numpy().copy() for p in params])
    opt2 = cls([{"params": resumed[:1]}, {"params": resumed[1:], "lr": 123.0}], **full)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[1]["lr"] == full["lr"]  # options come back from the checkpoint
    second_half = run_ours(opt2, resumed, grads[5:])
    for x, y in zip(straight[-1], second_half[-1]):
        np.testing.assert_array_equal(x, y)


@requires_torch
@pytest.mark.parametrize("name", list(SPECS))
def test_state_dict_has_torch_layout_and_keys(name):
    cls, _, _, full = SPECS[name]
    params = make_params([np.ones(2), np.ones(3)])
    tps = [torch.ones(2, dtype=torch.float64, requires_grad=True), torch.ones(3, dtype=torch.float64,
                                                                              requires_grad=True)]
    opt = cls([{"params": params[:1]}, {"params": params[1:]}], **full)
    topt = getattr(torch.optim, name)([{"params": tps[:1]}, {"params": tps[1:]}], **full)
    for p, tp in zip(params, tps):
        p.grad, tp.grad = tg.Tensor(np.full(p.shape, 0.5)), torch.full(tp.shape, 0.5, dtype=torch.float64)
    opt.step()
    topt.step()
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert [g["params"] for g in ours["param_groups"]] == [[0], [1]] == [g["params"] for g in theirs["param_groups"]]
    assert set(ours["state"]) == set(theirs["state"])
    for k in theirs["state"]:
        assert set(ours["state"][k]) == set(theirs["state"][k])
        for key, v in ours["state"][k].items():
            assert isinstance(v, int) if key == "step" else type(v) is np.ndarray
            np.testing.assert_allclose(v, theirs["state"][k][key].numpy(), **F64)
    assert set(ours["param_groups"][0]) <= set(theirs["param_groups"][0])


def test_state_dict_arrays_are_copies():
    (p,) = make_params([np.ones(2)])
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad = tg.Tensor(np.ones(2))
    opt.step()
    saved = opt.state_dict()
    opt.step()
    np.testing.assert_array_equal(saved["state"][0]["momentum_buffer"], np.ones(2))


def test_load_state_dict_casts_to_the_parameter_dtype_and_device(device):
    (p,) = make_params([np.ones(2)])
    opt = Adam([p])
    p.grad = tg.Tensor(np.ones(2))
    opt.step()
    q = Parameter(tg.ones(2, dtype="float32").to(device))
    opt2 = Adam([q])
    opt2.load_state_dict(opt.state_dict())
    for key in ("exp_avg", "exp_avg_sq"):
        assert opt2.state[q][key].dtype == np.float32 and tg.Tensor(opt2.state[q][key]).device == q.device
    assert opt2.state[q]["step"] == 1


def test_load_state_dict_fills_options_the_checkpoint_lacks_with_the_defaults():
    # a checkpoint from before an option existed: the option takes this optimizer's default
    p0, grads = fixed_problem(4)
    params = make_params(p0)
    straight = run_ours(Adam(params, lr=0.1, weight_decay=0.1), params, grads[:2])

    params = make_params(p0)
    opt = Adam(params, lr=0.1, weight_decay=0.1)
    run_ours(opt, params, grads[:1])
    saved = opt.state_dict()
    del saved["param_groups"][0]["decoupled_weight_decay"], saved["param_groups"][0]["amsgrad"]
    resumed = make_params([p.numpy().copy() for p in params])
    opt2 = Adam(resumed, lr=0.1, weight_decay=0.1)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["decoupled_weight_decay"] is False and opt2.param_groups[0]["amsgrad"] is False
    for x, y in zip(straight[-1], run_ours(opt2, resumed, grads[1:2])[-1]):
        np.testing.assert_array_equal(x, y)
    opt3 = AdamW(make_params(p0))  # another optimizer's default
    opt3.load_state_dict(saved)
    assert opt3.param_groups[0]["decoupled_weight_decay"] is True


def test_load_state_dict_validates_the_saved_options_and_leaves_the_optimizer_untouched_on_error():
    (p,) = make_params([np.ones(2)])
    saved = Adam([p], lr=0.1).state_dict()
    saved["param_groups"][0]["betas"] = (1.5, 0.9)
    opt = Adam(make_params([np.ones(2)]), lr=0.2)
    with pytest.raises(ValueError, match="beta"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == 0.2 and opt.param_groups[0]["betas"] == (0.9, 0.999)


def test_load_state_dict_rejects_a_different_layout():
    a, b, c = make_params([np.ones(2), np.ones(2), np.ones(3)])
    saved = Adam([{"params": [a, b]}]).state_dict()
    with pytest.raises(tg.StateDictError, match="parameter groups"):
        Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(saved)
    with pytest.raises(tg.StateDictError, match="group 0"):
        Adam([a, b, c]).load_state_dict(saved)
    opt = Adam([a, c])
    a.grad, c.grad = tg.Tensor(np.ones(2)), tg.Tensor(np.ones(3))
    opt.step()
    with pytest.raises(tg.StateDictError, match="shape"):
        Adam([c, a]).load_state_dict(opt.state_dict())


# ---------------------------------------------------------------- arguments and groups

@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=-0.1), lambda ps: SGD(ps, momentum=-1), lambda ps: SGD(ps, weight_decay=-1),
    lambda ps: SGD(ps, nesterov=True), lambda ps: SGD(ps, momentum=0.9, dampening=0.1, nesterov=True),
    lambda ps: Adam(ps, lr=-1), lambda ps: Adam(ps, betas=(1.0, 0.9)), lambda ps: Adam(ps, betas=(0.9, -0.1)),
    lambda ps: Adam(ps, eps=-1), lambda ps: AdamW(ps, weight_decay=-0.1), lambda ps: RMSprop(ps, alpha=-1),
    lambda ps: RMSprop(ps, momentum=-1), lambda ps: Adagrad(ps, lr_decay=-1),
    lambda ps: Adagrad(ps, initial_accumulator_value=-1), lambda ps: Adadelta(ps, rho=1.5),
    lambda ps: SGD([{"params": ps, "lr": -1.0}]), lambda ps: SGD([]),
])
def test_invalid_options_raise_value_error(make):
    with pytest.raises(ValueError):
        make(make_params([np.ones(2)]))


def test_bad_parameter_collections_raise():
    a, b = make_params([np.ones(2), np.ones(2)])
    with pytest.raises(TypeError, match="single Tensor"):
        SGD(a)
    with pytest.raises(TypeError, match="set"):
        SGD({a, b})
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([a * 2.0])
    with pytest.raises(ValueError, match="more than one"):
        SGD([{"params": [a]}, {"params": [a, b]}])


def test_add_param_group_fills_defaults():
    a, b = make_params([np.ones(2), np.ones(2)])
    opt = SGD([a], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": b, "lr": 0.5})
    assert opt.param_groups[1]["params"] == [b] and opt.param_groups[1]["momentum"] == 0.9
    assert isinstance(opt, Optimizer) and "Parameter Group 1" in repr(opt)


# ---------------------------------------------------------------- learning-rate schedules

SCHEDULES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.01),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 0.95**e / (1 + e % 4)),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, lr_lambda=[lambda e: 1 / (e + 1), lambda e: 0.9**e]),
}


def two_group_sgd(params):
    return SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.3}], lr=0.1)


def run_schedule(sched, opt, epochs):
    out = []
    for _ in range(epochs):
        opt.step()
        sched.step()
        out.append(list(sched.get_last_lr()))
        assert out[-1] == [g["lr"] for g in opt.param_groups]
    return out


@requires_torch
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch(name):
    opt = two_group_sgd(make_params([np.ones(1), np.ones(1)]))
    sched = SCHEDULES[name](lr_scheduler, opt)
    tps = [torch.ones(1, requires_grad=True) for _ in range(2)]
    topt = torch.optim.SGD([{"params": tps[:1]}, {"params": tps[1:], "lr": 0.3}], lr=0.1)
    tsched = SCHEDULES[name](torch.optim.lr_scheduler, topt)
    assert sched.get_last_lr() == tsched.get_last_lr() == [0.1, 0.3]
    ours, theirs = run_schedule(sched, opt, 21), run_schedule(tsched, topt, 21)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


CLOSED_FORMS = {  # name in SCHEDULES: the lr of group i (base lr b) at epoch e
    "StepLR": lambda i, b, e: b * 0.5 ** (e // 3),
    "ExponentialLR": lambda i, b, e: b * 0.9**e,
    "CosineAnnealingLR": lambda i, b, e: 0.01 + (b - 0.01) * (1 + math.cos(math.pi * e / 7)) / 2,
    "LambdaLR": lambda i, b, e: b * (0.95**e / (1 + e % 4)),
    "LambdaLR-per-group": lambda i, b, e: b * [1 / (e + 1), 0.9**e][i],
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_equals_its_closed_form_over_three_periods(name):
    opt = two_group_sgd(make_params([np.ones(1), np.ones(1)]))
    sched = SCHEDULES[name](lr_scheduler, opt)
    assert sched.get_last_lr() == [0.1, 0.3]  # epoch 0: the base lrs
    for e, got in enumerate(run_schedule(sched, opt, 21), start=1):
        want = [CLOSED_FORMS[name](i, b, e) for i, b in enumerate((0.1, 0.3))]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=f"epoch {e}")


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_state_dict_resume_continues_exactly(name):
    opt = two_group_sgd(make_params([np.ones(1), np.ones(1)]))
    straight = run_schedule(SCHEDULES[name](lr_scheduler, opt), opt, 15)

    opt = two_group_sgd(make_params([np.ones(1), np.ones(1)]))
    sched = SCHEDULES[name](lr_scheduler, opt)
    first = run_schedule(sched, opt, 6)
    saved_sched, saved_opt = pickle.dumps(sched.state_dict()), pickle.dumps(opt.state_dict())
    opt2 = two_group_sgd(make_params([np.ones(1), np.ones(1)]))
    sched2 = SCHEDULES[name](lr_scheduler, opt2)
    sched2.load_state_dict(pickle.loads(saved_sched))
    opt2.load_state_dict(pickle.loads(saved_opt))
    assert first + run_schedule(sched2, opt2, 9) == straight


plateau_options = st.fixed_dictionaries(dict(
    mode=st.sampled_from(["min", "max"]), factor=st.sampled_from([0.1, 0.5]), patience=st.integers(0, 3),
    threshold=st.sampled_from([1e-4, 0.1]), threshold_mode=st.sampled_from(["rel", "abs"]),
    cooldown=st.integers(0, 2), min_lr=st.sampled_from([0.0, 1e-3, [1e-3, 0.05]]), eps=st.just(1e-8)))
metric_sequences = st.lists(st.sampled_from([1.0, 0.99, 0.95, 0.9, 1.1, 0.5]), min_size=5, max_size=30)


@given(opts=plateau_options, metrics=metric_sequences)
def test_reduce_lr_on_plateau_matches_torch_and_resumes_exactly(opts, metrics):
    opt = two_group_sgd(make_params([np.ones(1), np.ones(1)]))
    sched = lr_scheduler.ReduceLROnPlateau(opt, **opts)
    straight = []
    for m in metrics:
        sched.step(m)
        straight.append(list(sched.get_last_lr()))

    opt = two_group_sgd(make_params([np.ones(1), np.ones(1)]))
    sched = lr_scheduler.ReduceLROnPlateau(opt, **opts)
    ours = []
    for i, m in enumerate(metrics):
        sched.step(tg.tensor(m, dtype="float64") if i % 2 else m)  # a number or a one-element Tensor
        ours.append(list(sched.get_last_lr()))
        if i == len(metrics) // 2:  # swap in a resumed copy halfway
            saved_sched, saved_opt = sched.state_dict(), opt.state_dict()
            opt = two_group_sgd(make_params([np.ones(1), np.ones(1)]))
            sched = lr_scheduler.ReduceLROnPlateau(opt, **opts)
            sched.load_state_dict(saved_sched)
            opt.load_state_dict(saved_opt)
    assert ours == straight
    if torch is not None:
        topt = torch.optim.SGD([{"params": [torch.ones(1)]}, {"params": [torch.ones(1)], "lr": 0.3}], lr=0.1)
        tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **opts)
        theirs = []
        for m in metrics:
            tsched.step(m)
            theirs.append(list(tsched.get_last_lr()))
        assert ours == theirs


def test_reduce_lr_on_plateau_follows_a_hand_computed_sequence():
    # patience 2: the 3rd epoch without an abs improvement of 0.1 decays (factor 0.5); cooldown 1: the
    # first bad epoch after a decay is not counted; min_lr per group clamps, and a clamped lr stays put.
    opt = two_group_sgd(make_params([np.ones(1), np.ones(1)]))
    sched = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2, threshold=0.1, threshold_mode="abs",
                                           cooldown=1, min_lr=[0.02, 0.1])
    metrics = [1.0] + [0.95] * 7 + [0.8] * 8 + [0.65]  # 0.95 does not beat 1.0 - 0.1; 0.8 does, so does 0.65
    want = ([[0.1, 0.3]] * 3  # epochs 1-3: best 1.0, then two bad epochs
            + [[0.1 * 0.5, 0.3 * 0.5]] * 4  # epoch 4: 3rd bad; 5: cooldown, not counted; 6, 7: bad
            + [[0.1 * 0.5 * 0.5, 0.1]] * 4  # epoch 8: decay, 0.075 clamped to 0.1; 9: better (0.8); 10, 11: bad
            + [[0.02, 0.1]] * 5  # epoch 12: decay, 0.0125 clamped to 0.02; 13: cooldown; 14-16: 3 bad (no change)
            + [[0.02, 0.1]])  # epoch 17: better
    got = []
    for m in metrics:
        sched.step(m)
        got.append(list(sched.get_last_lr()))
    assert got == want
    assert sched.best == 0.65 and sched.num_bad_epochs == 0 and sched.last_epoch == len(metrics)


def test_reduce_lr_on_plateau_validates_its_arguments():
    opt = two_group_sgd(make_params([np.ones(1), np.ones(1)]))
    for bad in (dict(factor=1.0), dict(mode="up"), dict(threshold_mode="pct"), dict(min_lr=[0.1])):
        with pytest.raises(ValueError):
            lr_scheduler.ReduceLROnPlateau(opt, **bad)
    with pytest.raises(TypeError):
        lr_scheduler.StepLR(object(), step_size=2)


@pytest.mark.parametrize("name", list(SPECS))
def test_a_retained_graph_keeps_the_weights_it_was_recorded_with(name):
    cls, _, _, full = SPECS[name]
    layer = tg.nn.Linear(3, 2, dtype="float64")
    x = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    loss = (layer(x).tanh() ** 2).sum()
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    x.grad = None
    cls(layer.parameters(), **full).step()
    loss.backward()  # through the graph recorded before the step: the same gradient
    np.testing.assert_array_equal(x.grad.numpy(), first)
