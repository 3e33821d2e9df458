"""A backward that reaches a graph an earlier backward released: always refused, and the error
says which mistake it was (docs/autograd.md, section 3). Truncated BPTT without ``detach()`` is
the common one: the error names the carried state and how to detach it (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import leaf

import tinygrad_rnn as tg


def test_second_backward_through_a_freed_graph_raises_even_where_nothing_was_saved():
    # Our choice (docs/autograd.md): every node of a freed graph refuses a second backward, also
    # Add and Sum, which save nothing (PyTorch would run those again and add the grads twice).
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = (a + b).sum()
    y.backward()
    with pytest.raises(tg.BackwardError, match=r"Sum .*a second time"):
        y.backward()
    s = a + b
    s.sum().backward()
    with pytest.raises(tg.BackwardError, match=r"Add .*a second time"):  # reached from a new graph
        (s * 2.0).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0])  # nothing was added by the refused ones


def _sequence(seed=0):
    """(T, B, I) = (4, 2, 3) float64 inputs."""
    return leaf(np.random.default_rng(seed).standard_normal((4, 2, 3)), requires_grad=False)


@pytest.mark.parametrize("layer, what", [
    (lambda: tg.nn.LSTM(3, 4, dtype="float64"), r"the initial state \(h0, c0\) passed to LSTM\(3, 4\)"),
    (lambda: tg.nn.GRU(3, 4, num_layers=2, dtype="float64"),
     r"the initial state h0 passed to GRU\(3, 4, num_layers=2\)"),
    (lambda: tg.nn.RNN(3, 4, dtype="float64"), r"the initial state h0 passed to RNN\(3, 4\)"),
], ids=["LSTM", "GRU", "RNN"])
def test_a_carried_state_that_was_not_detached_is_named_with_the_fix(layer, what):
    # issue 13: truncated BPTT without detach() used to say only "retain_graph"
    rnn = layer()
    out, state = rnn(_sequence())
    out.sum().backward()
    out, state = rnn(_sequence(seed=1), state)  # the state still holds chunk 1's (released) graph
    with pytest.raises(tg.BackwardError, match=what) as info:
        out.sum().backward()
    msg = str(info.value)
    assert "state = tuple(s.detach() for s in state)" in msg and "tinygrad_rnn.nn.tbptt" in msg
    out, state = rnn(_sequence(seed=2), tg.nn.utils.detach_state(state))  # the fix works
    out.sum().backward()


def test_a_carried_state_passed_through_other_ops_is_still_named():
    lstm = tg.nn.LSTM(3, 4, dtype="float64")
    out, (h, c) = lstm(_sequence())
    out.sum().backward()
    out, _ = lstm(_sequence(seed=1), (h * 0.5, c))  # h's graph goes through a new Mul first
    with pytest.raises(tg.BackwardError, match=r"initial state \(h0, c0\) passed to LSTM"):
        out.sum().backward()


def test_a_cell_state_carried_over_a_backward_is_named():
    cell = tg.nn.LSTMCell(3, 4, dtype="float64")
    x = _sequence()
    h, c = cell(x[0])
    for t in range(1, 4):
        h, c = cell(x[t], (h, c))
    h.sum().backward()
    h, c = cell(x[0], (h, c))
    with pytest.raises(tg.BackwardError, match=r"the state h passed to LSTMCell\(3, 4\).*tbptt"):
        h.sum().backward()


def test_a_tensor_reused_after_its_graph_was_released_gets_advice_without_a_layer_name():
    x = leaf([1.0, 2.0])
    y = x.tanh()
    y.sum().backward()
    with pytest.raises(tg.BackwardError, match=r"Tanh .*computed before that backward.*detach\(\)"):
        (y * 2.0).sum().backward()
