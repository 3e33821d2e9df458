"""gradient_flow: the per-step gradient norms against central finite differences of an
independent NumPy forward pass (tests/reference/rnn_numpy.py's cells, run step by step so that
a hidden state can be nudged), the decay for a tiny recurrent weight with the distance-0 norm
in closed form, and the saturation fractions against the reference's gate values.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import rnn_numpy as ref

import tinygrad_rnn as tg
from tinygrad_rnn import nn

MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]


def build(mode: str, I: int, H: int, L: int, seed: int = 0, **kw) -> nn.Module:  # noqa: E741
    args = dict(num_layers=L, dtype="float64", generator=tg.Generator(seed), **kw)
    if mode == "LSTM":
        return nn.LSTM(I, H, **args)
    if mode == "GRU":
        return nn.GRU(I, H, **args)
    return nn.RNN(I, H, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **args)


def reference_loss(mode: str, params: dict, x: np.ndarray, L: int, nudge: tuple | None = None) -> float:
    """sum of the last layer's h at the last step, with ``nudge = (layer, t, b, j, eps)`` added to
    h[layer] right after step t (c, for an LSTM, is left alone)."""
    T, B = x.shape[0], x.shape[1]
    H = params["weight_hh_l0"].shape[1]
    h = [np.zeros((B, H)) for _ in range(L)]
    c = [np.zeros((B, H)) if mode == "LSTM" else None for _ in range(L)]
    for t in range(T):
        inp = x[t:t + 1]
        for layer in range(L):
            p = [params[f"{n}_l{layer}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            hs, c[layer], _ = ref._cell_forward(mode, inp, h[layer], c[layer], *p)
            h[layer] = hs[0].copy()
            if nudge is not None and nudge[:2] == (layer, t):
                h[layer][nudge[2], nudge[3]] += nudge[4]
            inp = h[layer][None]
    return float(h[-1].sum())


def fd_norms(mode: str, params: dict, x: np.ndarray, L: int, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """(input norms (T,), hidden norms (L, T)) by central differences, in time order."""
    T, B, I = x.shape  # noqa: E741
    H = params["weight_hh_l0"].shape[1]
    dx = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        dx[idx] = (reference_loss(mode, params, xp, L) - reference_loss(mode, params, xm, L)) / (2 * eps)
    dh = np.zeros((L, T, B, H))
    for layer, t, b, j in np.ndindex(L, T, B, H):
        up = reference_loss(mode, params, x, L, (layer, t, b, j, eps))
        down = reference_loss(mode, params, x, L, (layer, t, b, j, -eps))
        dh[layer, t, b, j] = (up - down) / (2 * eps)
    return np.linalg.norm(dx, axis=2).mean(axis=1), np.linalg.norm(dh, axis=3).mean(axis=2)


@pytest.mark.parametrize("mode", MODES)
def test_norms_match_finite_differences_of_an_independent_forward(mode):
    T, B, I, H, L = 5, 2, 2, 3, 2  # noqa: E741
    model = build(mode, I, H, L, seed=3)
    for p in model.parameters():  # larger weights than the default: gradients that differ per step
        p.data *= 2.5
    x = np.random.default_rng(1).standard_normal((T, B, I))
    flow = nn.gradient_flow(model, tg.tensor(x))
    params = {k: np.asarray(v) for k, v in model.state_dict().items()}
    input_fd, hidden_fd = fd_norms(mode, params, x, L)
    fd_tol = {"rtol": 1e-6, "atol": 1e-9}  # central differences with eps 1e-6: ~1e-10 round-off
    np.testing.assert_allclose(flow.input_norm, input_fd[::-1], **fd_tol)
    np.testing.assert_allclose(flow.hidden_norm, hidden_fd[:, ::-1], **fd_tol)
    assert list(flow.distance) == list(range(T)) and flow.mode == mode
    assert flow.loss == pytest.approx(reference_loss(mode, params, x, L), rel=1e-12)


def test_tiny_recurrent_weight_decays_geometrically_and_distance_zero_is_exact():
    T, B, I, H = 12, 3, 2, 4  # noqa: E741
    rnn = build("RNN_TANH", I, H, 1, seed=0)
    rnn.weight_hh_l0.data *= 1e-3
    x = np.random.default_rng(0).standard_normal((T, B, I))
    flow = nn.gradient_flow(rnn, tg.tensor(x))
    # distance 0: L = sum(h_T), h_T = tanh(a), a = W_ih x_T + ..., so dL/dx_T = W_ih^T (1 - h_T^2)
    h = rnn(tg.tensor(x))[0].numpy()[-1]
    expected = np.linalg.norm((1 - h ** 2) @ rnn.weight_ih_l0.numpy(), axis=1).mean()
    assert flow.input_norm[0] == pytest.approx(expected, rel=1e-12)
    assert flow.hidden_norm[0, 0] == pytest.approx(np.sqrt(H), rel=1e-12)  # dL/dh_T is all ones
    ratios = flow.input_norm[1:] / flow.input_norm[:-1]
    assert (ratios < 1e-2).all() and (ratios > 1e-5).all()  # ~ |W_hh| ~ 1e-3 per step, never zero


def test_multi_layer_batch_first_and_custom_loss():
    lstm = build("LSTM", 3, 4, 2, seed=1, batch_first=True)
    x = tg.randn(2, 6, 3, dtype="float64", generator=tg.Generator(2))  # (B, T, I)
    head = tg.tensor(np.arange(4.0))
    flow = nn.gradient_flow(lstm, x, loss_fn=lambda last: (last * head).sum())
    assert flow.input_norm.shape == (6,) and flow.hidden_norm.shape == (2, 6)
    # the same numbers from time-major input and a model that is not batch_first
    lstm_tm = build("LSTM", 3, 4, 2, seed=1)
    flow_tm = nn.gradient_flow(lstm_tm, x.transpose(1, 0, 2), loss_fn=lambda last: (last * head).sum())
    np.testing.assert_allclose(flow.input_norm, flow_tm.input_norm, rtol=1e-12)
    # the last layer's dL/dh at distance 0 is the head's weights
    assert flow.hidden_norm[1, 0] == pytest.approx(np.linalg.norm(np.arange(4.0)), rel=1e-12)
    assert all(p.grad is None for p in lstm.parameters())  # the model's gradients are left alone


def saturated_reference(y: np.ndarray, kind: str) -> np.ndarray:
    """Fraction per step of (T, B, H) gate values."""
    if kind == "relu":
        hit = y == 0
    else:
        hit = np.abs(y) > 0.95 if kind == "tanh" else (y < 0.05) | (y > 0.95)
    return hit.mean(axis=(1, 2))


@pytest.mark.parametrize("mode", MODES)
def test_saturation_fractions_match_the_reference_gates(mode):
    T, B, I, H = 7, 3, 2, 5  # noqa: E741
    model = build(mode, I, H, 1, seed=4)
    for p in model.parameters():
        p.data *= 4.0  # big weights: a good share of saturated units, and many not
    x = 2.0 * np.random.default_rng(5).standard_normal((T, B, I))
    flow = nn.gradient_flow(model, tg.tensor(x))
    params = {k: np.asarray(v) for k, v in model.state_dict().items()}
    p = [params[f"{n}_l0"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    c0 = np.zeros((B, H)) if mode == "LSTM" else None
    hs, _, cache = ref._cell_forward(mode, x, np.zeros((B, H)), c0, *p)
    if mode == "LSTM":
        names, acts = ("i", "f", "g", "o"), ("sigmoid", "sigmoid", "tanh", "sigmoid")
        values = [np.stack([step[k] for step in cache]) for k in (2, 3, 4, 5)]
    elif mode == "GRU":
        names, acts = ("r", "z", "n"), ("sigmoid", "sigmoid", "tanh")
        values = [np.stack([step[k] for step in cache]) for k in (1, 2, 3)]
    else:
        names, acts, values = ("h",), ("tanh" if mode == "RNN_TANH" else "relu",), [hs]
    assert sorted(flow.saturation) == sorted(names)
    for name, act, v in zip(names, acts, values):
        expected = saturated_reference(v, act)[::-1]
        np.testing.assert_array_equal(flow.saturation[name][0], expected, err_msg=name)
    assert 0.05 < np.mean([flow.saturated_fraction()[n] for n in names]) < 0.95


def test_an_open_forget_gate_is_reported_saturated_and_carries_the_gradient():
    lstm = build("LSTM", 2, 3, 1, seed=0)
    H = 3
    lstm.bias_ih_l0.data[H:2 * H] = 20.0  # f = sigmoid(20 + ...) ~ 1: the cell keeps everything
    flow = nn.gradient_flow(lstm, tg.randn(40, 2, 2, dtype="float64", generator=tg.Generator(0)))
    assert flow.saturated_fraction()["f"] == 1.0
    closed = build("LSTM", 2, 3, 1, seed=0)
    flow_closed = nn.gradient_flow(closed, tg.randn(40, 2, 2, dtype="float64", generator=tg.Generator(0)))
    assert flow.input_norm[39] > 1e6 * flow_closed.input_norm[39]


def test_gradient_flow_rejects_what_it_cannot_measure():
    with pytest.raises(ValueError, match="bidirectional"):
        nn.gradient_flow(nn.GRU(2, 3, bidirectional=True), tg.randn(4, 1, 2))
    with pytest.raises(tg.ShapeError, match=r"expected x of shape \(T, B, 2\), got \(4, 2\)"):
        nn.gradient_flow(nn.GRU(2, 3), tg.randn(4, 2))
    with pytest.raises(tg.ShapeError, match="loss_fn must return a scalar"):
        nn.gradient_flow(nn.RNN(2, 3), tg.randn(4, 1, 2), loss_fn=lambda last: last)
    with pytest.raises(TypeError, match="nn.RNN, nn.LSTM or nn.GRU"):
        nn.gradient_flow(nn.Linear(2, 3), tg.randn(4, 1, 2))


def test_gradient_flow_runs_on_every_device(device):
    x = np.random.default_rng(0).standard_normal((6, 2, 2))
    flows = [nn.gradient_flow(build("GRU", 2, 3, 2, seed=0).to(dev), tg.tensor(x, device=dev))
             for dev in ("cpu", device)]
    np.testing.assert_allclose(flows[0].input_norm, flows[1].input_norm, rtol=1e-12)
    np.testing.assert_allclose(flows[0].hidden_norm, flows[1].hidden_norm, rtol=1e-12)
    for kind in flows[0].saturation:
        np.testing.assert_array_equal(flows[0].saturation[kind], flows[1].saturation[kind])
