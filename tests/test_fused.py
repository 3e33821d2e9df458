"""The fused LSTM cell op equals the composed cell: values and first-order gradients."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.ops.fused import LSTMCellFused
from tinygrad_rnn.testing import gradcheck


def composed_cell(a: tg.Tensor, c: tg.Tensor) -> tg.Tensor:
    """The LSTM cell from primitive ops, gates i | f | g | o: (h', c') stacked as (2, B, H)."""
    i, f, g, o = a.split(a.shape[1] // 4, axis=1)
    c_new = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return tg.stack([o.sigmoid() * c_new.tanh(), c_new])


cells = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(0, 2**31 - 1))


def cell_inputs(case: tuple) -> tuple:
    """Gate pre-activations a (B, 4H), cell state c (B, H) and an upstream gradient (2, B, H)."""
    B, H, seed = case
    rng = np.random.default_rng(seed)
    a = tg.Tensor(rng.uniform(-3, 3, (B, 4 * H)), requires_grad=True)
    c = tg.Tensor(rng.uniform(-2, 2, (B, H)), requires_grad=True)
    return a, c, tg.Tensor(rng.standard_normal((2, B, H)))


@given(cells)
def test_fused_cell_matches_the_composed_cell_in_value_and_gradient(case):
    a, c, up = cell_inputs(case)
    fused, composed = LSTMCellFused.apply(a, c), composed_cell(a, c)
    np.testing.assert_allclose(fused.numpy(), composed.numpy(), rtol=1e-13, atol=1e-14)
    for gf, gc in zip(tg.grad(fused, [a, c], up), tg.grad(composed, [a, c], up)):
        np.testing.assert_allclose(gf.numpy(), gc.numpy(), rtol=1e-12, atol=1e-14)


@given(cells)
def test_fused_cell_gradient_matches_finite_differences(case):
    a, c, _ = cell_inputs(case)
    assert gradcheck(LSTMCellFused.apply, [a, c])


def test_fused_cell_refuses_second_derivatives_with_a_clear_error():
    a = tg.Tensor(np.ones((1, 4)), requires_grad=True)
    c = tg.Tensor(np.ones((1, 1)), requires_grad=True)
    (g,) = tg.grad(LSTMCellFused.apply(a, c).sum(), [a], create_graph=False)
    assert g.shape == (1, 4)
    with pytest.raises(tg.BackwardError, match="first-order only.*fused=False"):
        tg.grad(LSTMCellFused.apply(a, c).sum(), [a], create_graph=True)


@given(st.integers(1, 5), st.integers(1, 3), st.integers(1, 4), st.booleans(), st.integers(0, 2**31 - 1))
def test_lstm_layer_with_the_fused_cell_equals_the_composed_layer(T, B, H, bidirectional, seed):
    rng = np.random.default_rng(seed)
    layers = [nn.LSTM(3, H, 2, bidirectional=bidirectional, dtype="float64", generator=tg.Generator(seed),
                      fused=fused) for fused in (False, True)]
    x = tg.Tensor(rng.standard_normal((T, B, 3)), requires_grad=True)
    up = tg.Tensor(rng.standard_normal((T, B, H * (2 if bidirectional else 1))))
    results = []
    for layer in layers:
        out, (h, c) = layer(x)
        assert any(n.op == "LSTMCellFused" for n in tg.trace(out)) == layer.fused  # each path really ran
        loss = (out * up).sum() + (h * h).sum() + c.sum()
        results.append([out.numpy(), h.numpy(), c.numpy()]
                       + [g.numpy() for g in tg.grad(loss, [x, *layer.parameters()])])
    for u, v in zip(*results):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-13)


def test_the_elman_rnn_has_no_fused_cell():
    with pytest.raises(TypeError, match="fused"):
        nn.RNN(3, 4, fused=True)
