"""Sequences of different lengths: packing utilities (against PyTorch's torch.nn.utils.rnn) and
the recurrent layers on a PackedSequence, which must equal running each sequence alone:
outputs, h_n and every gradient (input, h0, weights), with padding reaching nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import F64, leaf
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.errors import ShapeError
from tinygrad_rnn.nn import (
    PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence, pad_sequence, unpack_sequence,
    unpad_sequence,
)

try:  # optional: the comparisons with PyTorch skip without it
    import torch
except ImportError:  # pragma: no cover
    torch = None

MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]


def torch_or_skip():
    if torch is None:
        pytest.skip("PyTorch is not installed")
    return torch


def build(mode: str, I: int, H: int, L: int, bidirectional: bool, batch_first: bool = False,  # noqa: E741
          seed: int = 0) -> nn.Module:
    kw = dict(num_layers=L, bidirectional=bidirectional, batch_first=batch_first, dtype="float64",
              generator=tg.Generator(seed))
    if mode == "LSTM":
        return nn.LSTM(I, H, **kw)
    if mode == "GRU":
        return nn.GRU(I, H, **kw)
    return nn.RNN(I, H, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", **kw)


def states_of(mode: str, h_n):
    return list(h_n) if mode == "LSTM" else [h_n]


# ---------------------------------------------------------------- the layers on packed input

@st.composite
def packed_cases(draw):
    B = draw(st.integers(1, 4))
    lengths = draw(st.lists(st.integers(1, 5), min_size=B, max_size=B))
    enforce_sorted = draw(st.booleans())  # True: a sorted batch, packed without a permutation
    if enforce_sorted:
        lengths = sorted(lengths, reverse=True)
    return dict(mode=draw(st.sampled_from(MODES)), lengths=lengths, T=max(lengths) + draw(st.integers(0, 2)),
                enforce_sorted=enforce_sorted,
                I=draw(st.integers(1, 3)), H=draw(st.integers(1, 3)), L=draw(st.integers(1, 2)),
                bidirectional=draw(st.booleans()), batch_first=draw(st.booleans()),
                with_h0=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@given(packed_cases())
def test_packed_batch_equals_each_sequence_run_alone(case):
    mode, lengths, T, I, H, L = (case[k] for k in ("mode", "lengths", "T", "I", "H", "L"))  # noqa: E741
    bi, bf, B, D = case["bidirectional"], case["batch_first"], len(lengths), 2 if case["bidirectional"] else 1
    rng = np.random.default_rng(case["seed"])
    model = build(mode, I, H, L, bi, bf, seed=case["seed"])
    x_np = rng.standard_normal((B, T, I) if bf else (T, B, I))
    n_states = 2 if mode == "LSTM" else 1
    h0_np = [0.5 * rng.standard_normal((L * D, B, H)) for _ in range(n_states)] if case["with_h0"] else None
    g_out = rng.standard_normal((T, B, D * H))  # upstream gradients (padded positions must not matter)
    g_state = [rng.standard_normal((L * D, B, H)) for _ in range(n_states)]

    # All sequences at once, packed in any order.
    x = leaf(x_np)
    h0 = [leaf(h) for h in h0_np] if h0_np else None
    packed = pack_padded_sequence(x, lengths, batch_first=bf, enforce_sorted=case["enforce_sorted"])
    out, h_n = model(packed, None if h0 is None else (tuple(h0) if mode == "LSTM" else h0[0]))
    assert isinstance(out, PackedSequence)
    padded, lens = pad_packed_sequence(out, total_length=T)
    assert lens.tolist() == lengths
    loss = (padded * tg.tensor(g_out)).sum()
    for s, g in zip(states_of(mode, h_n), g_state):
        loss = loss + (s * tg.tensor(g)).sum()
    loss.backward()
    batch_grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    model.zero_grad()

    # Each sequence alone, over its own length only.
    alone_grads = {n: np.zeros_like(g) for n, g in batch_grads.items()}
    for b, n in enumerate(lengths):
        xb = leaf(x_np[b:b + 1, :n] if bf else x_np[:n, b:b + 1])
        hb = [leaf(h[:, b:b + 1]) for h in h0_np] if h0_np else None
        ob, hnb = model(xb, None if hb is None else (tuple(hb) if mode == "LSTM" else hb[0]))
        ob_t = ob.swapaxes(0, 1) if bf else ob
        np.testing.assert_allclose(padded.numpy()[:n, b], ob_t.numpy()[:, 0], **F64)
        assert not padded.numpy()[n:, b].any(), "padded outputs must be exactly zero"
        lb = (ob_t * tg.tensor(g_out[:n, b:b + 1])).sum()
        for s, sb, g in zip(states_of(mode, h_n), states_of(mode, hnb), g_state):
            np.testing.assert_allclose(s.numpy()[:, b], sb.numpy()[:, 0], **F64)
            lb = lb + (sb * tg.tensor(g[:, b:b + 1])).sum()
        lb.backward()
        xg = x.grad.numpy()
        xg_b = xg[b, :n] if bf else xg[:n, b]
        np.testing.assert_allclose(xg_b, (xb.grad.numpy()[0] if bf else xb.grad.numpy()[:, 0]), **F64)
        assert not (xg[b, n:] if bf else xg[n:, b]).any(), "the gradient at padded positions must be exactly zero"
        if h0_np:
            for hp, hbp in zip(h0, hb):
                np.testing.assert_allclose(hp.grad.numpy()[:, b], hbp.grad.numpy()[:, 0], **F64)
        for name, p in model.named_parameters():
            alone_grads[name] += p.grad.numpy()
        model.zero_grad()
    for name, g in batch_grads.items():
        np.testing.assert_allclose(g, alone_grads[name], err_msg=name, **F64)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_layers_match_torch(mode, bidirectional):
    torch = torch_or_skip()
    lengths, (T, B, I, H, L) = [3, 6, 1, 6, 4], (6, 5, 3, 4, 2)  # noqa: E741
    rng = np.random.default_rng(1)
    ours = build(mode, I, H, L, bidirectional)
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}.get(mode)
    kw = dict(num_layers=L, bidirectional=bidirectional)
    theirs = cls(I, H, **kw) if cls else torch.nn.RNN(I, H, nonlinearity="tanh" if mode == "RNN_TANH" else "relu",
                                                      **kw)
    theirs = theirs.double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x_np = rng.standard_normal((T, B, I))
    n_states, D = (2 if mode == "LSTM" else 1), (2 if bidirectional else 1)
    h0_np = [rng.standard_normal((L * D, B, H)) for _ in range(n_states)]
    g_out = rng.standard_normal((T, B, D * H))

    x, h0 = leaf(x_np), [leaf(h) for h in h0_np]
    out, h_n = ours(pack_padded_sequence(x, lengths, enforce_sorted=False), tuple(h0) if mode == "LSTM" else h0[0])
    padded, _ = pad_packed_sequence(out)
    loss = (padded * tg.tensor(g_out)).sum() + sum((s * s).sum() for s in states_of(mode, h_n))
    loss.backward()

    xt = torch.tensor(x_np, requires_grad=True)
    h0t = [torch.tensor(h, requires_grad=True) for h in h0_np]
    packed_t = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
    out_t, h_n_t = theirs(packed_t, tuple(h0t) if mode == "LSTM" else h0t[0])
    padded_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_t)
    states_t = list(h_n_t) if mode == "LSTM" else [h_n_t]
    loss_t = (padded_t * torch.tensor(g_out)).sum() + sum((s * s).sum() for s in states_t)
    loss_t.backward()

    tol = {"rtol": 1e-10, "atol": 1e-10}
    np.testing.assert_allclose(out.data.numpy(), out_t.data.detach().numpy(), **tol)
    for a, b in zip(states_of(mode, h_n), states_t):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), **tol)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), **tol)
    for a, b in zip(h0, h0t):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), **tol)
    grads_t = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads_t[name].grad.numpy(), err_msg=name, **tol)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_fused_cell_on_packed_input_matches_the_composed_cell(mode):
    lengths, rng = [2, 5, 3], np.random.default_rng(0)
    x_np, g = rng.standard_normal((5, 3, 2)), rng.standard_normal((10, 3))
    results = []
    for fused in (False, True):
        layer = getattr(nn, mode)(2, 3, num_layers=2, dtype="float64", generator=tg.Generator(0), fused=fused)
        x = leaf(x_np)
        out, state = layer(pack_padded_sequence(x, lengths, enforce_sorted=False))
        h_n, c_n = state if mode == "LSTM" else (state, state)
        ((out.data * tg.tensor(g)).sum() + h_n.sum() + (c_n * c_n).sum()).backward()
        results.append([out.data.numpy(), h_n.numpy(), c_n.numpy(), x.grad.numpy()]
                       + [p.grad.numpy() for p in layer.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **F64)


def test_dense_input_records_no_mask_and_equal_lengths_record_none_either():
    """Masks cost ops only where a sequence has ended: the dense path is unchanged."""
    lstm = build("LSTM", 2, 3, 1, False)
    x = tg.randn(5, 3, 2, dtype="float64")
    out, _ = lstm(x)
    assert not [n for n in tg.trace(out.sum()) if n.op == "Where"]
    packed_out, _ = lstm(pack_padded_sequence(x, [5, 5, 5]))
    assert not [n for n in tg.trace(packed_out.data.sum()) if n.op == "Where"]
    short_out, (_, c_n) = lstm(pack_padded_sequence(x, [5, 4, 2]))
    # h and c held at the 3 steps where some sequence has ended (t = 2, 3, 4)
    assert len([n for n in tg.trace(short_out.data.sum() + c_n.sum()) if n.op == "Where"]) == 2 * 3


def test_packed_data_order_and_h_n_at_true_length():
    """A hand-checkable case: an RNN that sums its inputs (identity weights, ReLU)."""
    rnn = nn.RNN(1, 1, nonlinearity="relu", bias=False, dtype="float64")
    rnn.weight_ih_l0.data[...] = 1.0
    rnn.weight_hh_l0.data[...] = 1.0
    x = tg.tensor([[1.0, 2.0, 3.0], [10.0, 99.0, 99.0], [100.0, 200.0, 99.0]], dtype="float64")  # (B, T)
    out, h_n = rnn(pack_padded_sequence(x.reshape(3, 3, 1), [3, 1, 2], batch_first=True, enforce_sorted=False))
    assert out.data.reshape(-1).tolist() == [1.0, 100.0, 10.0, 3.0, 300.0, 6.0]  # running sums, packed
    assert h_n.reshape(-1).tolist() == [6.0, 10.0, 300.0]  # at each sequence's own length, original order


# ---------------------------------------------------------------- the packing functions against PyTorch

@given(st.lists(st.integers(1, 6), min_size=1, max_size=5), st.booleans(), st.booleans(), st.integers(0, 2))
def test_pack_and_pad_match_torch(lengths, batch_first, enforce_sorted, extra):
    torch = torch_or_skip()
    if enforce_sorted:
        lengths = sorted(lengths, reverse=True)
    B, T = len(lengths), max(lengths) + extra
    x_np = np.random.default_rng(B * 7 + T).standard_normal((B, T, 2) if batch_first else (T, B, 2))
    p = pack_padded_sequence(leaf(x_np), lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    pt = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x_np), torch.tensor(lengths), batch_first=batch_first,
                                                 enforce_sorted=enforce_sorted)
    np.testing.assert_array_equal(p.data.numpy(), pt.data.numpy())
    assert p.batch_sizes.tolist() == pt.batch_sizes.tolist()
    if enforce_sorted:
        assert p.sorted_indices is None and p.unsorted_indices is None
    else:  # ties may be ordered differently (torch.sort is not stable): compare what they mean
        assert sorted(p.sorted_indices.tolist()) == list(range(B))
        assert [lengths[i] for i in p.sorted_indices.tolist()] == sorted(lengths, reverse=True)
        assert [p.sorted_indices.tolist()[i] for i in p.unsorted_indices.tolist()] == list(range(B))
    padded, lens = pad_packed_sequence(p, batch_first=batch_first, padding_value=-1.0, total_length=T)
    padded_t, lens_t = torch.nn.utils.rnn.pad_packed_sequence(pt, batch_first=batch_first, padding_value=-1.0,
                                                              total_length=T)
    np.testing.assert_array_equal(padded.numpy(), padded_t.numpy())
    assert lens.tolist() == lens_t.tolist() == lengths


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_sequence_matches_torch_and_unpad_undoes_it(batch_first, side):
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((n, 2)) for n in (2, 4, 1)]
    ours = pad_sequence([leaf(s) for s in seqs], batch_first=batch_first, padding_value=7.0, padding_side=side)
    theirs = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in seqs], batch_first=batch_first,
                                             padding_value=7.0, padding_side=side)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    if side == "right":
        for a, b in zip(unpad_sequence(ours, [2, 4, 1], batch_first=batch_first), seqs):
            np.testing.assert_array_equal(a.numpy(), b)


def test_pack_sequence_round_trip_and_gradients_reach_each_sequence():
    seqs = [leaf(np.arange(n * 2.0).reshape(n, 2) + n) for n in (2, 3, 1)]
    packed = pack_sequence(seqs, enforce_sorted=False)
    assert packed.batch_sizes.tolist() == [3, 2, 1] and packed.lengths == [2, 3, 1]
    assert packed.to("float32").data.dtype == np.float32 and packed.to("float32").batch_sizes is packed.batch_sizes
    back = unpack_sequence(packed)
    for a, b in zip(back, seqs):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    (packed.data * tg.tensor(np.arange(12.0).reshape(6, 2))).sum().backward()
    weights = np.arange(12.0).reshape(6, 2)
    # rows: s1[0] s0[0] s2[0] | s1[1] s0[1] | s1[2]
    np.testing.assert_array_equal(seqs[0].grad.numpy(), weights[[1, 4]])
    np.testing.assert_array_equal(seqs[1].grad.numpy(), weights[[0, 3, 5]])
    np.testing.assert_array_equal(seqs[2].grad.numpy(), weights[[2]])


# ---------------------------------------------------------------- errors

def test_packing_rejects_bad_lengths_with_clear_errors():
    x = tg.zeros(4, 3, 2)
    with pytest.raises(ValueError, match="decreasing order.*enforce_sorted=False"):
        pack_padded_sequence(x, [2, 3, 1])
    with pytest.raises(ValueError, match="at least 1"):
        pack_padded_sequence(x, [2, 0, 1], enforce_sorted=False)
    with pytest.raises(ShapeError, match="exceeds the padded input's 4 steps"):
        pack_padded_sequence(x, [5, 3, 1])
    with pytest.raises(ShapeError, match="2 lengths for a batch of 3"):
        pack_padded_sequence(x, [2, 1])
    with pytest.raises(TypeError, match="lengths must be"):
        pack_padded_sequence(x, [2.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="total_length=1 is shorter"):
        pad_packed_sequence(pack_padded_sequence(x, [3, 2, 1]), total_length=1)


def test_layer_rejects_packed_data_of_the_wrong_width():
    lstm = nn.LSTM(5, 3)
    packed = pack_padded_sequence(tg.zeros(4, 2, 2), [4, 2])
    with pytest.raises(ShapeError, match=r"LSTM\(5, 3\): expected packed data of shape \(N, 5\), got \(6, 2\)"):
        lstm(packed)


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_packed_layers_run_on_every_device(device, mode):
    """The index and mask arrays live on the input's device (CuPy on "cuda"); results equal the CPU's."""
    lengths, rng = [2, 4, 3], np.random.default_rng(0)
    x_np = rng.standard_normal((4, 3, 2))
    results = []
    for dev in ("cpu", device):
        model = build(mode, 2, 3, 2, True).to(dev)
        x = tg.tensor(x_np, device=dev, requires_grad=True)
        out, h_n = model(pack_padded_sequence(x, lengths, enforce_sorted=False))
        padded, _ = pad_packed_sequence(out)
        (padded.sum() + states_of(mode, h_n)[0].sum()).backward()
        results.append([padded.numpy(), states_of(mode, h_n)[0].numpy(), x.grad.numpy()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
