"""Recurrent layers: RNN/LSTM/GRU and their cells against a hand-written NumPy BPTT reference
(tests/reference/rnn_numpy.py) and against PyTorch; dropout between layers; truncated BPTT;
long sequences; error messages.

The reference is itself checked against finite differences, so that agreement with it means
agreement with the true derivatives.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import rnn_numpy as ref

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.testing import numerical_grad

# Shapes are named T, B, I, H as in the design (hence the E741 noqa on `I`).
MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]
REF_TOL = {"rtol": 1e-11, "atol": 1e-12}  # engine vs hand-derived BPTT, float64
TORCH64 = {"rtol": 1e-10, "atol": 1e-10}
TORCH32 = {"rtol": 1e-4, "atol": 1e-5}  # float32 sums over T*B terms in different orders


def build(mode: str, I: int, H: int, L: int = 1, bidirectional: bool = False, bias: bool = True,  # noqa: E741
          batch_first: bool = False, dropout: float = 0.0, dtype: str = "float64", **kw) -> nn.Module:
    args = dict(num_layers=L, bias=bias, batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                dtype=dtype, **kw)
    if mode == "LSTM":
        return nn.LSTM(I, H, **args)
    if mode == "GRU":
        return nn.GRU(I, H, **args)
    return nn.RNN(I, H, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **args)


@dataclass
class Case:
    """One problem, time-major: parameters, input, initial states and upstream gradients."""

    mode: str
    L: int
    bidirectional: bool
    params: dict
    x: np.ndarray
    h0: np.ndarray
    c0: np.ndarray | None
    g_out: np.ndarray
    g_h: np.ndarray
    g_c: np.ndarray | None

    def reference(self, with_state: bool = True) -> tuple:
        """Reference outputs and gradients (zeros as initial state when ``with_state`` is False)."""
        h0 = self.h0 if with_state else np.zeros_like(self.h0)
        c0 = None if self.c0 is None else (self.c0 if with_state else np.zeros_like(self.c0))
        out, h_n, c_n, cache = ref.forward(self.mode, self.params, self.x, h0, c0, self.L, self.bidirectional)
        return out, h_n, c_n, ref.backward(cache, self.g_out, self.g_h, self.g_c)


def make_case(mode: str, T: int, B: int, I: int, H: int, L: int = 1, bidirectional: bool = False,  # noqa: E741
              bias: bool = True, seed: int = 0) -> Case:
    rng = np.random.default_rng(seed)
    D = 2 if bidirectional else 1
    params = ref.init_params(mode, I, H, L, bidirectional, bias, rng, scale=1.5)
    lstm = mode == "LSTM"
    return Case(mode, L, bidirectional, params, rng.standard_normal((T, B, I)),
                0.5 * rng.standard_normal((L * D, B, H)), 0.5 * rng.standard_normal((L * D, B, H)) if lstm else None,
                rng.standard_normal((T, B, D * H)), rng.standard_normal((L * D, B, H)),
                rng.standard_normal((L * D, B, H)) if lstm else None)


def run_ours(model: nn.Module, case: Case, batch_first: bool = False, with_state: bool = True,
             input_grad: bool = True, device: str = "cpu") -> tuple:
    """Our outputs (time-major NumPy) and the gradients of the reference's loss, by reference name."""
    lstm = case.mode == "LSTM"
    dt = getattr(model, model._flat_weights_names[0]).dtype

    def t(a: np.ndarray, grad: bool = False) -> tg.Tensor:
        return tg.tensor(a, dtype=dt, device=device, requires_grad=grad)

    X = t(case.x.transpose(1, 0, 2) if batch_first else case.x, input_grad)
    H0 = t(case.h0, True) if with_state else None
    C0 = t(case.c0, True) if with_state and lstm else None
    out, h_n = model(X, (H0, C0) if lstm and with_state else H0)
    h_n, c_n = h_n if lstm else (h_n, None)
    loss = (out * t(case.g_out.transpose(1, 0, 2) if batch_first else case.g_out)).sum() + (h_n * t(case.g_h)).sum()
    if lstm:
        loss = loss + (c_n * t(case.g_c)).sum()
    loss.backward()
    grads = {n: p.grad.numpy() for n, p in model.named_parameters()}
    if input_grad:
        grads["input"] = X.grad.numpy().transpose(1, 0, 2) if batch_first else X.grad.numpy()
    if with_state:
        grads["h0"] = H0.grad.numpy()
        if lstm:
            grads["c0"] = C0.grad.numpy()
    out = out.numpy().transpose(1, 0, 2) if batch_first else out.numpy()
    return out, h_n.numpy(), (c_n.numpy() if lstm else None), grads


def assert_grads_close(ours: dict, expected: dict, **tol) -> None:
    assert ours.keys() <= expected.keys(), sorted(ours.keys() - expected.keys())
    for name, g in ours.items():
        np.testing.assert_allclose(g, expected[name], err_msg=name, **tol)


# ---------------------------------------------------------------- (a) engine vs hand-derived BPTT

configs = st.fixed_dictionaries({
    "T": st.integers(1, 5), "B": st.integers(1, 3), "I": st.integers(1, 4), "H": st.integers(1, 4),
    "L": st.integers(1, 2), "bidirectional": st.booleans(), "batch_first": st.booleans(), "bias": st.booleans(),
    "with_state": st.booleans(), "input_grad": st.booleans(), "seed": st.integers(0, 2 ** 32 - 1),
})


@pytest.mark.parametrize("mode", MODES)
@given(cfg=configs)
def test_outputs_and_all_gradients_match_numpy_bptt_reference(mode, cfg):
    case = make_case(mode, cfg["T"], cfg["B"], cfg["I"], cfg["H"], cfg["L"], cfg["bidirectional"], cfg["bias"],
                     cfg["seed"])
    model = build(mode, cfg["I"], cfg["H"], cfg["L"], cfg["bidirectional"], cfg["bias"], cfg["batch_first"])
    model.load_state_dict(case.params)
    out, h_n, c_n, grads = run_ours(model, case, cfg["batch_first"], cfg["with_state"], cfg["input_grad"])
    r_out, r_h, r_c, r_grads = case.reference(cfg["with_state"])
    np.testing.assert_allclose(out, r_out, **REF_TOL)
    np.testing.assert_allclose(h_n, r_h, **REF_TOL)
    if mode == "LSTM":
        np.testing.assert_allclose(c_n, r_c, **REF_TOL)
    expected_keys = set(case.params) | ({"input"} if cfg["input_grad"] else set()) \
        | ({"h0", "c0"} & set(r_grads) if cfg["with_state"] else set())
    assert set(grads) == expected_keys
    assert_grads_close(grads, r_grads, **REF_TOL)


# ---------------------------------------------------------------- (b) the reference is right

@pytest.mark.parametrize("mode", MODES)
def test_numpy_reference_gradients_match_finite_differences(mode):
    case = make_case(mode, T=3, B=2, I=3, H=2, L=2, bidirectional=True, seed=7)
    *_, grads = case.reference()
    names = list(case.params) + ["input", "h0"] + (["c0"] if mode == "LSTM" else [])
    arrays = list(case.params.values()) + [case.x, case.h0] + ([case.c0] if mode == "LSTM" else [])
    inputs = [tg.Tensor(a.copy()) for a in arrays]
    n_p = len(case.params)

    def fn(*ts: tg.Tensor) -> tg.Tensor:  # the reference's outputs, flattened, as one tensor
        params = {n: t.data for n, t in zip(case.params, ts)}
        c0 = ts[n_p + 2].data if mode == "LSTM" else None
        out, h_n, c_n, _ = ref.forward(mode, params, ts[n_p].data, ts[n_p + 1].data, c0, case.L, True)
        return tg.Tensor(np.concatenate([out.ravel(), h_n.ravel()] + ([c_n.ravel()] if c_n is not None else [])))

    v = np.concatenate([case.g_out.ravel(), case.g_h.ravel()] + ([case.g_c.ravel()] if mode == "LSTM" else []))
    for k, name in enumerate(names):
        numeric = numerical_grad(fn, inputs, k, v, eps=1e-6)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


# ---------------------------------------------------------------- (c) PyTorch equivalence

TORCH_CONFIGS = [  # (L, bidirectional, batch_first, bias)
    (1, False, False, True), (2, True, True, True), (2, False, False, False), (3, True, False, True),
]


def torch_module(mode: str, I: int, H: int, L: int, bidirectional: bool, bias: bool,  # noqa: E741
                 batch_first: bool, dtype):
    torch = pytest.importorskip("torch")
    kw = dict(num_layers=L, bias=bias, batch_first=batch_first, bidirectional=bidirectional, dtype=dtype)
    if mode == "LSTM":
        return torch.nn.LSTM(I, H, **kw)
    if mode == "GRU":
        return torch.nn.GRU(I, H, **kw)
    return torch.nn.RNN(I, H, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kw)


def run_torch(tm, case: Case, batch_first: bool, dtype, unbatched: bool = False) -> tuple:
    torch = pytest.importorskip("torch")
    lstm = case.mode == "LSTM"

    def t(a: np.ndarray) -> torch.Tensor:
        a = a[:, 0] if unbatched and a.ndim == 3 else a
        return torch.tensor(a, dtype=dtype, requires_grad=True)

    x = case.x.transpose(1, 0, 2) if batch_first and not unbatched else case.x
    X, H0 = t(x), t(case.h0)
    C0 = t(case.c0) if lstm else None
    out, h_n = tm(X, (H0, C0) if lstm else H0)
    h_n, c_n = h_n if lstm else (h_n, None)
    g_out = case.g_out.transpose(1, 0, 2) if batch_first and not unbatched else case.g_out
    loss = (out * t(g_out).detach()).sum() + (h_n * t(case.g_h).detach()).sum()
    if lstm:
        loss = loss + (c_n * t(case.g_c).detach()).sum()
    loss.backward()
    grads = {n: p.grad.numpy() for n, p in tm.named_parameters()}
    grads.update(input=X.grad.numpy(), h0=H0.grad.numpy())
    if lstm:
        grads["c0"] = C0.grad.numpy()
    return out.detach().numpy(), h_n.detach().numpy(), (c_n.detach().numpy() if lstm else None), grads


def torch_state(tm) -> dict:
    return {k: v.detach().numpy() for k, v in tm.state_dict().items()}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("L, bidirectional, batch_first, bias", TORCH_CONFIGS)
@pytest.mark.parametrize("mode", MODES)
def test_layers_match_pytorch(mode, L, bidirectional, batch_first, bias, dtype):
    torch = pytest.importorskip("torch")
    tdt, tol = (torch.float64, TORCH64) if dtype == "float64" else (torch.float32, TORCH32)
    T, B, I, H = 6, 3, 5, 4  # noqa: E741
    case = make_case(mode, T, B, I, H, L, bidirectional, bias, seed=L + 10 * bidirectional)
    tm = torch_module(mode, I, H, L, bidirectional, bias, batch_first, tdt)
    model = build(mode, I, H, L, bidirectional, bias, batch_first, dtype=dtype)
    assert list(model.state_dict()) == list(tm.state_dict())  # same names, same order
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: tuple(v.shape) for k, v in
                                                                     tm.state_dict().items()}
    model.load_state_dict(torch_state(tm))
    t_out, t_h, t_c, t_grads = run_torch(tm, case, batch_first, tdt)
    out, h_n, c_n, grads = run_ours(model, case, batch_first)
    if batch_first:
        t_out = t_out.transpose(1, 0, 2)
        t_grads["input"] = t_grads["input"].transpose(1, 0, 2)
    np.testing.assert_allclose(out, t_out, **tol)
    np.testing.assert_allclose(h_n, t_h, **tol)
    if mode == "LSTM":
        np.testing.assert_allclose(c_n, t_c, **tol)
    assert grads.keys() == t_grads.keys()
    assert_grads_close(grads, t_grads, **tol)


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_input_matches_pytorch(mode):
    torch = pytest.importorskip("torch")
    case = make_case(mode, T=4, B=1, I=3, H=2, L=2, bidirectional=True, seed=3)
    case.h0, case.g_h = case.h0[:, 0], case.g_h[:, 0]
    if mode == "LSTM":
        case.c0, case.g_c = case.c0[:, 0], case.g_c[:, 0]
    tm = torch_module(mode, 3, 2, 2, True, True, True, torch.float64)  # batch_first ignored when unbatched
    model = build(mode, 3, 2, 2, True, batch_first=True)
    model.load_state_dict(torch_state(tm))
    t_out, t_h, t_c, t_grads = run_torch(tm, case, True, torch.float64, unbatched=True)
    lstm = mode == "LSTM"
    X = tg.tensor(case.x[:, 0], requires_grad=True)
    H0, C0 = tg.tensor(case.h0, requires_grad=True), tg.tensor(case.c0 if lstm else case.h0, requires_grad=True)
    out, h_n = model(X, (H0, C0) if lstm else H0)
    h_n, c_n = h_n if lstm else (h_n, None)
    assert out.shape == (4, 4) and h_n.shape == (4, 2)
    loss = (out * tg.tensor(case.g_out[:, 0])).sum() + (h_n * tg.tensor(case.g_h)).sum()
    if lstm:
        loss = loss + (c_n * tg.tensor(case.g_c)).sum()
    loss.backward()
    np.testing.assert_allclose(out.numpy(), t_out, **TORCH64)
    np.testing.assert_allclose(h_n.numpy(), t_h, **TORCH64)
    np.testing.assert_allclose(X.grad.numpy(), t_grads["input"], **TORCH64)
    np.testing.assert_allclose(H0.grad.numpy(), t_grads["h0"], **TORCH64)
    if lstm:
        np.testing.assert_allclose(C0.grad.numpy(), t_grads["c0"], **TORCH64)
    assert_grads_close({n: p.grad.numpy() for n, p in model.named_parameters()}, t_grads, **TORCH64)


def cell_pair(mode: str, I: int, H: int, bias: bool, dtype: str = "float64"):  # noqa: E741
    torch = pytest.importorskip("torch")
    tdt = torch.float64 if dtype == "float64" else torch.float32
    if mode == "LSTM":
        return nn.LSTMCell(I, H, bias, dtype=dtype), torch.nn.LSTMCell(I, H, bias, dtype=tdt)
    if mode == "GRU":
        return nn.GRUCell(I, H, bias, dtype=dtype), torch.nn.GRUCell(I, H, bias, dtype=tdt)
    nl = "tanh" if mode == "RNN_TANH" else "relu"
    return nn.RNNCell(I, H, bias, nl, dtype=dtype), torch.nn.RNNCell(I, H, bias, nl, dtype=tdt)


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_cells_match_pytorch(mode, bias, batched):
    torch = pytest.importorskip("torch")
    ours, theirs = cell_pair(mode, 3, 4, bias)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    ours.load_state_dict(torch_state(theirs))
    rng = np.random.default_rng(1)
    shape = (2,) if batched else ()
    x, h, c = rng.standard_normal(shape + (3,)), rng.standard_normal(shape + (4,)), rng.standard_normal(shape + (4,))
    ga, gb = rng.standard_normal(shape + (4,)), rng.standard_normal(shape + (4,))
    lstm = mode == "LSTM"
    ts = [torch.tensor(a, requires_grad=True) for a in (x, h, c)]
    gs = [tg.tensor(a, requires_grad=True) for a in (x, h, c)]
    t_res = theirs(ts[0], (ts[1], ts[2]) if lstm else ts[1])
    o_res = ours(gs[0], (gs[1], gs[2]) if lstm else gs[1])
    t_res, o_res = (t_res, o_res) if lstm else ((t_res,), (o_res,))
    sum(((r * torch.tensor(g)).sum() for r, g in zip(t_res, (ga, gb))), torch.tensor(0.0, dtype=torch.float64)) \
        .backward()
    sum(((r * tg.tensor(g)).sum() for r, g in zip(o_res, (ga, gb))), tg.tensor(0.0, dtype="float64")).backward()
    for a, b in zip(o_res, t_res):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), **TORCH64)
    for a, b in zip(gs[:3 if lstm else 2], ts):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **TORCH64)
    assert_grads_close({n: p.grad.numpy() for n, p in ours.named_parameters()},
                       {n: p.grad.numpy() for n, p in theirs.named_parameters()}, **TORCH64)


def test_repr_and_parameter_shapes_match_pytorch():
    torch = pytest.importorskip("torch")
    pairs = [(nn.LSTM(65, 256, num_layers=2), torch.nn.LSTM(65, 256, num_layers=2)),
             (nn.GRU(3, 4, bias=False, batch_first=True, bidirectional=True),
              torch.nn.GRU(3, 4, bias=False, batch_first=True, bidirectional=True)),
             (nn.RNN(3, 4, 3, dropout=0.25), torch.nn.RNN(3, 4, 3, dropout=0.25))]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)
        assert {k: v.shape for k, v in ours.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert repr(nn.RNN(3, 4, nonlinearity="relu")) == "RNN(3, 4, nonlinearity='relu')"


def test_default_init_is_uniform_within_one_over_sqrt_hidden_and_seeded():
    a = nn.LSTM(5, 16, num_layers=2, bidirectional=True, generator=tg.Generator(3))
    b = nn.LSTM(5, 16, num_layers=2, bidirectional=True, generator=tg.Generator(3))
    c = nn.LSTM(5, 16, num_layers=2, bidirectional=True, generator=tg.Generator(4))
    bound = 1 / np.sqrt(16)
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert pa.dtype == np.float32
        assert np.abs(pa).max() <= bound and np.abs(pa).max() > 0.8 * bound, name
        np.testing.assert_array_equal(pa, pb)
        assert not np.array_equal(pa, pc)
    assert nn.GRUCell(2, 3, dtype="float64").weight_hh.dtype == np.float64


# ---------------------------------------------------------------- (d) cells are one step of the layer

@pytest.mark.parametrize("mode", MODES)
def test_cell_unrolled_matches_sequence_layer(mode):
    case = make_case(mode, T=4, B=2, I=3, H=3, seed=5)
    layer = build(mode, 3, 3)
    layer.load_state_dict(case.params)
    cell = {"LSTM": nn.LSTMCell, "GRU": nn.GRUCell}.get(mode, nn.RNNCell)(
        3, 3, **({"nonlinearity": "relu"} if mode == "RNN_RELU" else {}), dtype="float64")
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in case.params.items()})
    out, h_n, c_n, grads = run_ours(layer, case)

    X, H0 = tg.tensor(case.x, requires_grad=True), tg.tensor(case.h0[0], requires_grad=True)
    C0 = tg.tensor(case.c0[0], requires_grad=True) if mode == "LSTM" else None
    state = (H0, C0) if mode == "LSTM" else H0
    hs = []
    for t in range(4):  # the cell, called step by step
        state = cell(X[t], state)
        hs.append(state[0] if mode == "LSTM" else state)
    h, c = (state if mode == "LSTM" else (state, None))
    loss = (tg.stack(hs) * tg.tensor(case.g_out)).sum() + (h * tg.tensor(case.g_h[0])).sum()
    if mode == "LSTM":
        loss = loss + (c * tg.tensor(case.g_c[0])).sum()
    loss.backward()
    np.testing.assert_allclose(tg.stack(hs).numpy(), out, **TORCH64)
    np.testing.assert_allclose(h.numpy(), h_n[0], **TORCH64)
    np.testing.assert_allclose(X.grad.numpy(), grads["input"], **TORCH64)
    np.testing.assert_allclose(H0.grad.numpy(), grads["h0"][0], **TORCH64)
    if mode == "LSTM":
        np.testing.assert_allclose(c.numpy(), c_n[0], **TORCH64)
        np.testing.assert_allclose(C0.grad.numpy(), grads["c0"][0], **TORCH64)
    for name, p in cell.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads[name + "_l0"], **TORCH64)


# ---------------------------------------------------------------- (e) dropout between layers

@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_dropout_acts_only_between_layers_in_training_and_is_seeded(mode):
    case = make_case(mode, T=5, B=3, I=4, H=6, L=2, bidirectional=True, seed=2)
    r_out, r_h, r_c, _ = case.reference()
    x = tg.tensor(case.x)
    state = (tg.tensor(case.h0), tg.tensor(case.c0)) if mode == "LSTM" else tg.tensor(case.h0)

    def run(p: float, seed: int, training: bool) -> tuple[np.ndarray, np.ndarray]:
        m = build(mode, 4, 6, 2, True, dropout=p, generator=tg.Generator(seed))
        m.load_state_dict(case.params)
        m.train(training)
        out, h = m(x, state)
        return out.numpy(), (h[0] if mode == "LSTM" else h).numpy()

    out_eval, h_eval = run(0.5, 0, training=False)  # eval mode: no dropout at all
    np.testing.assert_allclose(out_eval, r_out, **REF_TOL)
    out_a, h_a = run(0.5, 0, training=True)
    out_b, _ = run(0.5, 0, training=True)
    out_c, _ = run(0.5, 1, training=True)
    np.testing.assert_array_equal(out_a, out_b)  # same generator seed, same masks
    assert not np.allclose(out_a, out_c) and not np.allclose(out_a, out_eval)
    np.testing.assert_allclose(h_a[:2], r_h[:2], **REF_TOL)  # layer 0 runs before any dropout
    assert not np.allclose(h_a[2:], r_h[2:])

    # p = 1 zeroes the whole input of layer 1; the last layer's own output is not dropped:
    # it equals a clean one-layer run on zeros, which is not zero
    out_1, _ = run(1.0, 0, training=True)
    top = {k.replace("_l1", "_l0"): v for k, v in case.params.items() if "_l1" in k}
    expected, *_ = ref.forward(mode, top, np.zeros((5, 3, 12)), case.h0[2:],
                               case.c0[2:] if mode == "LSTM" else None, 1, True)
    np.testing.assert_allclose(out_1, expected, **REF_TOL)
    assert np.abs(out_1).min() > 0


def test_dropout_with_one_layer_warns_and_changes_nothing():
    with pytest.warns(UserWarning, match="between layers"):
        m = nn.GRU(3, 4, dropout=0.5, dtype="float64")
    x = tg.randn(4, 2, 3, dtype="float64")
    m.train()
    a, _ = m(x)
    m.eval()
    b, _ = m(x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


# ---------------------------------------------------------------- (f) truncated BPTT

@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_detaching_state_between_chunks_equals_separate_chunks(mode):
    lstm = mode == "LSTM"
    c1 = make_case(mode, T=4, B=2, I=3, H=3, L=2, seed=11)
    c2 = make_case(mode, T=3, B=2, I=3, H=3, L=2, seed=12)
    c2.params = c1.params
    model = build(mode, 3, 3, 2)
    model.load_state_dict(c1.params)

    x1, x2 = tg.tensor(c1.x, requires_grad=True), tg.tensor(c2.x, requires_grad=True)
    s0 = (tg.tensor(c1.h0, requires_grad=True), tg.tensor(c1.c0, requires_grad=True)) if lstm \
        else tg.tensor(c1.h0, requires_grad=True)
    out1, s1 = model(x1, s0)
    s1 = tuple(s.detach() for s in s1) if lstm else s1.detach()  # truncate: no gradient into chunk 1
    out2, s2 = model(x2, s1)
    h2, cc2 = s2 if lstm else (s2, None)
    loss = (out1 * tg.tensor(c1.g_out)).sum() + (out2 * tg.tensor(c2.g_out)).sum() + (h2 * tg.tensor(c2.g_h)).sum()
    if lstm:
        loss = loss + (cc2 * tg.tensor(c2.g_c)).sum()
    loss.backward()

    # the same two chunks, each on its own, with the reference
    c1.g_h = np.zeros_like(c1.g_h)
    c1.g_c = np.zeros_like(c1.g_c) if lstm else None
    _, r_h1, r_c1, g1 = c1.reference()
    c2.h0, c2.c0 = r_h1, r_c1
    _, _, _, g2 = c2.reference()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), g1[name] + g2[name], err_msg=name, **REF_TOL)
    np.testing.assert_allclose(x1.grad.numpy(), g1["input"], **REF_TOL)
    np.testing.assert_allclose(x2.grad.numpy(), g2["input"], **REF_TOL)
    h0_grad = (s0[0] if lstm else s0).grad.numpy()
    np.testing.assert_allclose(h0_grad, g1["h0"], **REF_TOL)
    assert np.abs(g2["h0"]).max() > 1e-3  # what full BPTT would have added to chunk 1 (cut here)


# ---------------------------------------------------------------- (g) long sequences

@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_long_sequence_backward_runs_without_recursion_and_matches_reference(mode):
    case = make_case(mode, T=200, B=2, I=3, H=3, L=2, seed=4)
    model = build(mode, 3, 3, 2)
    model.load_state_dict(case.params)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)  # far below the depth of this graph (thousands of nodes in a chain)
    try:
        out, h_n, _, grads = run_ours(model, case)
    finally:
        sys.setrecursionlimit(limit)
    r_out, r_h, _, r_grads = case.reference()
    np.testing.assert_allclose(out, r_out, **REF_TOL)
    assert_grads_close(grads, r_grads, **REF_TOL)


# ---------------------------------------------------------------- (h) errors

def test_wrong_input_size_raises_shape_error_naming_layer_and_shapes():
    m = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(tg.ShapeError, match=r"LSTM\(3, 4, num_layers=2\).*\(T, B, 3\).*\(5, 2, 7\)"):
        m(tg.randn(5, 2, 7))
    with pytest.raises(tg.ShapeError, match=r"\(B, T, 3\).*\(5,\)"):
        nn.GRU(3, 4, batch_first=True)(tg.randn(5))
    with pytest.raises(tg.ShapeError, match=r"GRUCell\(3, 4\).*\(B, 3\).*\(2, 5\)"):
        nn.GRUCell(3, 4)(tg.randn(2, 5))


def test_wrong_initial_state_raises_shape_error_with_expected_and_got():
    x = tg.randn(5, 2, 3)
    with pytest.raises(tg.ShapeError, match=r"LSTM\(3, 4, num_layers=2\).*h0.*\(2, 2, 4\), got \(1, 2, 4\)"):
        nn.LSTM(3, 4, num_layers=2)(x, (tg.zeros(1, 2, 4), tg.zeros(2, 2, 4)))
    with pytest.raises(tg.ShapeError, match=r"c0.*\(2, 2, 4\), got \(2, 3, 4\)"):
        nn.LSTM(3, 4, bidirectional=True)(x, (tg.zeros(2, 2, 4), tg.zeros(2, 3, 4)))
    with pytest.raises(tg.ShapeError, match=r"RNN\(3, 4\).*h0.*\(1, 2, 4\), got \(2, 4\)"):
        nn.RNN(3, 4)(x, tg.zeros(2, 4))
    with pytest.raises(TypeError, match=r"\(h0, c0\)"):
        nn.LSTM(3, 4)(x, tg.zeros(1, 2, 4))
    with pytest.raises(tg.ShapeError, match=r"LSTMCell\(3, 4\).*c.*\(2, 4\), got \(4,\)"):
        nn.LSTMCell(3, 4)(tg.randn(2, 3), (tg.zeros(2, 4), tg.zeros(4)))


def test_mismatched_dtype_and_bad_arguments_raise_clear_errors():
    with pytest.raises(tg.DTypeError, match=r"GRU\(3, 4\).*float32.*float64"):
        nn.GRU(3, 4, dtype="float64")(tg.randn(5, 2, 3))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="dropout"):
        nn.LSTM(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match="num_layers"):
        nn.LSTM(3, 4, num_layers=0)


# ---------------------------------------------------------------- built for speed

@pytest.mark.parametrize("mode, bias, per_step", [("LSTM", True, 13), ("GRU", True, 16), ("GRU", False, 16),
                                                  ("RNN_TANH", True, 3)])
def test_ops_per_time_step_stay_few_with_one_input_matmul_per_layer(mode, bias, per_step):
    m = build(mode, 3, 4, L=2, bidirectional=True, bias=bias)
    nodes = {}
    for T in (5, 10):
        out, _ = m(tg.tensor(np.ones((T, 2, 3)), requires_grad=True))
        nodes[T] = tg.trace(out)
    assert (len(nodes[10]) - len(nodes[5])) / 5 == per_step * 2 * 2  # per step, layer and direction
    # per layer and direction: T recurrent matmuls plus ONE input projection for all steps
    # (Addmm is a matmul with the addition folded in)
    assert sum(n.op in ("MatMul", "Addmm") for n in nodes[10]) == 4 * (10 + 1)


# ---------------------------------------------------------------- odds and ends

def test_no_grad_forward_records_nothing_and_matches():
    case = make_case("LSTM", T=3, B=2, I=3, H=2, L=2, bidirectional=True)
    m = build("LSTM", 3, 2, 2, True)
    m.load_state_dict(case.params)
    with tg.no_grad():
        out, (h, c) = m(tg.tensor(case.x, requires_grad=True), (tg.tensor(case.h0), tg.tensor(case.c0)))
    assert out.node is None and not out.requires_grad
    np.testing.assert_allclose(out.numpy(), case.reference()[0], **REF_TOL)


def test_float32_default_dtype_and_shapes():
    m = nn.GRU(4, 5, num_layers=3, batch_first=True, bidirectional=True)
    out, h_n = m(tg.randn(2, 7, 4))
    assert out.shape == (2, 7, 10) and h_n.shape == (6, 2, 5)
    assert out.dtype == np.float32 and h_n.dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(m.parameters())) == 24 and len(m.all_weights) == 6


def test_layer_matches_reference_on_device(device):
    case = make_case("LSTM", T=4, B=2, I=3, H=3, L=2, bidirectional=True, seed=9)
    model = build("LSTM", 3, 3, 2, True, device=device)
    model.load_state_dict(case.params)
    out, h_n, c_n, grads = run_ours(model, case, device=device)
    r_out, r_h, r_c, r_grads = case.reference()
    np.testing.assert_allclose(out, r_out, **REF_TOL)
    np.testing.assert_allclose(c_n, r_c, **REF_TOL)
    assert_grads_close(grads, r_grads, **REF_TOL)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH"])
def test_a_retained_graph_is_blind_to_an_optimizer_step(mode):
    # backward multiplies by the weights the forward saved (W_ih, W_hh and its row-major
    # copies); an optimizer step between two backward passes must not change the second one
    m = build(mode, 3, 4, L=2)
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((3, 2, 3)), requires_grad=True)
    h0 = tg.tensor(rng.standard_normal((2, 2, 4)), requires_grad=True)
    out, _ = m(x, (h0, tg.zeros(2, 2, 4, dtype="float64")) if mode == "LSTM" else h0)
    loss = (out * out).sum()
    loss.backward(retain_graph=True)
    first = [x.grad.numpy().copy(), h0.grad.numpy().copy()]
    x.grad = h0.grad = None
    tg.optim.SGD(m.parameters(), lr=10.0).step()
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), first[0])
    np.testing.assert_array_equal(h0.grad.numpy(), first[1])
