"""The fused LSTM and GRU cell ops equal the composed cells: values and first-order gradients,
for the NumPy twins everywhere and, on a GPU, for the CUDA kernels against twin and composed cell."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOL
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.ops import fused
from tinygrad_rnn.ops.fused import GRUCellFused, LSTMCellFused, gru_cell_composed, lstm_cell_composed
from tinygrad_rnn.testing import gradcheck


# (B, H, seed, dtype)
cases = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(0, 2**31 - 1),
                  st.sampled_from(["float64", "float32"]))

CELLS = {  # name: (fused op, composed cell, gate blocks)
    "lstm": (LSTMCellFused.apply, lstm_cell_composed, 4),
    "gru": (GRUCellFused.apply, gru_cell_composed, 3),
}


def arrays(cell: str, B: int, H: int, seed: int) -> list[np.ndarray]:
    """float64 inputs of the cell (LSTM: a, c; GRU: gi, gh, h) and an upstream gradient, last."""
    rng = np.random.default_rng(seed)
    if cell == "lstm":
        ins = [rng.uniform(-3, 3, (B, 4 * H)), rng.uniform(-2, 2, (B, H))]
        return ins + [rng.standard_normal((2, B, H))]
    return [rng.uniform(-3, 3, (B, 3 * H)), rng.uniform(-3, 3, (B, 3 * H)), rng.uniform(-1, 1, (B, H)),
            rng.standard_normal((B, H))]


def run(fn, inputs: list[np.ndarray], dtype: str, device: str = "cpu") -> tuple[tg.Tensor, list[np.ndarray]]:
    """``fn`` on tensors of ``inputs`` (the last is the upstream gradient): its output and the
    gradients of every input, as NumPy arrays."""
    *xs, up = [tg.tensor(x.astype(dtype), device=device) for x in inputs]
    for x in xs:
        x.requires_grad_()
    out = fn(*xs)
    return out, [out.numpy()] + [g.numpy() for g in tg.grad(out, xs, up)]


def assert_close(got: list[np.ndarray], want: list[np.ndarray], tol: dict, what: str) -> None:
    names = ["value"] + [f"gradient {i}" for i in range(len(got) - 1)]
    for name, u, v in zip(names, got, want):
        np.testing.assert_allclose(u, v, err_msg=f"{what}: {name}", **tol)


@pytest.mark.parametrize("cell", CELLS)
@given(case=cases)
def test_fused_twin_matches_the_composed_cell_in_value_and_gradient(cell, case):
    B, H, seed, dtype = case
    op, composed, _ = CELLS[cell]
    inputs = arrays(cell, B, H, seed)
    _, got = run(op, inputs, dtype)
    _, want = run(composed, inputs, dtype)
    assert_close(got, want, TOL[np.dtype(dtype)], f"{cell} {dtype} B={B} H={H}")


@pytest.mark.parametrize("cell", CELLS)
@given(case=cases)
def test_fused_cell_gradient_matches_finite_differences(cell, case):
    B, H, seed, _ = case
    op = CELLS[cell][0]
    xs = [tg.Tensor(x, requires_grad=True) for x in arrays(cell, B, H, seed)[:-1]]
    assert gradcheck(op, xs)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell", CELLS)
def test_fused_kernel_twin_and_composed_cell_agree_on_each_device(device, cell, dtype):
    """On cuda the op runs its CUDA kernel: it must match the NumPy twin run on the GPU, the
    composed cell on the GPU, and the twin on the CPU. On the CPU the twin and the composed cell."""
    op, composed, _ = CELLS[cell]
    tol = TOL[np.dtype(dtype)]
    for B, H in ((3, 5), (64, 300)):  # 64 x 300 spans several thread blocks
        inputs = arrays(cell, B, H, seed=B * H)
        out, fast = run(op, inputs, dtype, device)
        assert out.node.kernel == (device == "cuda")  # which body ran
        _, ref = run(op, inputs, dtype, "cpu")
        assert_close(fast, ref, tol, f"{cell} on {device} against the twin on cpu")
        _, comp = run(composed, inputs, dtype, device)
        assert_close(fast, comp, tol, f"{cell} on {device} against the composed cell")
        fused.USE_CUDA_KERNELS = False
        try:
            twin_out, twin = run(op, inputs, dtype, device)
        finally:
            fused.USE_CUDA_KERNELS = True
        assert not twin_out.node.kernel
        assert_close(fast, twin, tol, f"{cell} on {device} against the twin on {device}")


def test_fused_backward_takes_the_path_its_forward_took(device):
    """Switching the kernels off between forward and backward must not mix the two bodies' saved arrays."""
    inputs = arrays("lstm", 2, 3, seed=1)
    want = run(LSTMCellFused.apply, inputs, "float64")[1]
    *xs, up = [tg.tensor(x, device=device, requires_grad=True) for x in inputs]
    out = LSTMCellFused.apply(*xs)
    fused.USE_CUDA_KERNELS = False
    try:
        got = [out.numpy()] + [g.numpy() for g in tg.grad(out, xs, up.detach())]
    finally:
        fused.USE_CUDA_KERNELS = True
    assert_close(got, want, TOL[np.dtype("float64")], "lstm")


@pytest.mark.parametrize("cell", CELLS)
def test_fused_cell_refuses_second_derivatives_with_a_clear_error(cell):
    op = CELLS[cell][0]
    xs = [tg.Tensor(x, requires_grad=True) for x in arrays(cell, 1, 1, seed=0)[:-1]]
    (g,) = tg.grad(op(*xs).sum(), xs[:1], create_graph=False)
    assert g.shape == xs[0].shape
    with pytest.raises(tg.BackwardError, match="first-order only.*fused=False"):
        tg.grad(op(*xs).sum(), xs[:1], create_graph=True)


@pytest.mark.parametrize("cell", CELLS)
def test_fused_cell_rejects_mismatched_shapes_and_dtypes_by_name(cell):
    """The kernels index memory directly: shapes are checked before anything runs."""
    op, _, gates = CELLS[cell]
    xs = [tg.Tensor(x) for x in arrays(cell, 2, 3, seed=0)[:-1]]
    bad_state = tg.Tensor(np.zeros((2, 4)))  # H = 4 against pre-activations made for H = 3
    with pytest.raises(tg.ShapeError, match=f"{op.__self__.__name__}.*\\(B, {gates}H\\)"):
        op(*xs[:-1], bad_state)
    with pytest.raises(tg.DTypeError, match=op.__self__.__name__):
        op(*xs[:-1], xs[-1].to("float32"))


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@given(st.integers(1, 5), st.integers(1, 3), st.integers(1, 4), st.booleans(), st.integers(0, 2**31 - 1))
def test_layer_with_the_fused_cell_equals_the_composed_layer(mode, T, B, H, bidirectional, seed):
    rng = np.random.default_rng(seed)
    layers = [getattr(nn, mode)(3, H, 2, bidirectional=bidirectional, dtype="float64",
                                 generator=tg.Generator(seed), fused=f) for f in (False, True)]
    x = tg.Tensor(rng.standard_normal((T, B, 3)), requires_grad=True)
    up = tg.Tensor(rng.standard_normal((T, B, H * (2 if bidirectional else 1))))
    results = []
    for layer in layers:
        out, state = layer(x)
        assert any(n.op == f"{mode}CellFused" for n in tg.trace(out)) == layer.fused  # each path really ran
        finals = list(state) if mode == "LSTM" else [state]
        loss = (out * up).sum() + sum((s * s).sum() for s in finals)
        results.append([out.numpy()] + [s.numpy() for s in finals]
                       + [g.numpy() for g in tg.grad(loss, [x, *layer.parameters()])])
    for u, v in zip(*results):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-13)


def test_gru_layer_without_biases_runs_fused():
    gru = [nn.GRU(2, 3, bias=False, dtype="float64", generator=tg.Generator(0), fused=f) for f in (False, True)]
    x = tg.Tensor(np.random.default_rng(0).standard_normal((4, 2, 2)))
    np.testing.assert_allclose(gru[1](x)[0].numpy(), gru[0](x)[0].numpy(), rtol=1e-13, atol=1e-14)


def test_the_elman_rnn_has_no_fused_cell():
    with pytest.raises(TypeError, match="fused"):
        nn.RNN(3, 4, fused=True)
