"""The truncated-BPTT helper: chunks, carried and detached state, the longer window, and the trainer on it."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.nn.utils import detach_state

MODES = ["RNN", "LSTM", "GRU"]
TOL = {"rtol": 1e-10, "atol": 1e-12}  # float64, the same terms summed in another order


def build(mode: str, I: int, H: int, L: int, seed: int) -> nn.Module:  # noqa: E741  (the design's shape names)
    cls = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[mode]
    return cls(I, H, num_layers=L, dtype="float64", generator=tg.Generator(seed))


def initial_state(mode: str, L: int, B: int, H: int, rng) -> object:  # noqa: E741
    """A learned initial state: leaves requiring grad, (h0, c0) for an LSTM."""
    def leaf():
        return tg.tensor(rng.standard_normal((L, B, H)), requires_grad=True)
    return (leaf(), leaf()) if mode == "LSTM" else leaf()


def state_leaves(state) -> list:
    return list(state) if isinstance(state, tuple) else [state]


def chunk_loss(out: tg.Tensor, r: tg.Tensor) -> tg.Tensor:
    """A loss that weighs every output differently (a wrong time index or factor shows)."""
    return (out * r).sum()


def grads(model: nn.Module, extra: list) -> list[np.ndarray]:
    return [p.grad.numpy().copy() for p in model.parameters()] + [t.grad.numpy().copy() for t in extra]


def zero(model: nn.Module, extra: list) -> None:
    for t in list(model.parameters()) + extra:
        t.grad = None


problems = st.fixed_dictionaries({
    "mode": st.sampled_from(MODES), "T": st.integers(1, 11), "k": st.integers(1, 5), "B": st.integers(1, 3),
    "I": st.integers(1, 3), "H": st.integers(1, 3), "L": st.integers(1, 2), "seed": st.integers(0, 2**16),
})


def setup(p: dict):
    rng = np.random.default_rng(p["seed"])
    model = build(p["mode"], p["I"], p["H"], p["L"], p["seed"])
    x = tg.tensor(rng.standard_normal((p["T"], p["B"], p["I"])))
    r = tg.tensor(rng.standard_normal((p["T"], p["B"], p["H"])))  # the weights of the loss, per step
    h0 = initial_state(p["mode"], p["L"], p["B"], p["H"], rng)
    return model, x, r, h0


@given(problems, st.booleans())
def test_k_chunk_gradients_equal_a_hand_written_loop_that_detaches(p, drop_last):
    model, x, r, h0 = setup(p)
    T, k, h0s = p["T"], p["k"], state_leaves(h0)
    expected, state = [], h0
    for start in range(0, T, k):  # the loop everyone writes by hand
        if drop_last and start + k > T:
            break
        out, new = model(x[start: start + k], state)
        zero(model, h0s)
        chunk_loss(out, r[start: start + k]).backward()
        expected.append(grads(model, h0s) if start == 0 else grads(model, []))
        state = detach_state(new)
    got, chunks = [], nn.tbptt(x, r, k=k, state=h0, drop_last=drop_last)
    assert len(chunks) == len(expected)
    for i, (x_k, r_k, s) in enumerate(chunks):
        out, new = model(x_k, s)
        zero(model, h0s)
        carried = chunks.backward(chunk_loss(out, r_k), new)
        got.append(grads(model, h0s) if i == 0 else grads(model, []))
        assert all(not t.requires_grad and t.node is None for t in state_leaves(carried))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        for a, b in zip(g, e):
            assert np.array_equal(a, b)  # the same ops in the same order: bit-identical


@given(problems)
def test_a_window_over_the_whole_sequence_equals_full_bptt(p):
    model, x, r, h0 = setup(p)
    T, k, h0s = p["T"], p["k"], state_leaves(h0)
    n = -(-T // k)
    chunks = nn.tbptt(x, r, k=k, window=n * k, state=h0)
    for x_k, r_k, s in chunks:  # gradients of every chunk accumulate: d(sum of the chunk losses)
        out, new = model(x_k, s)
        chunks.backward(chunk_loss(out, r_k), new)
    got = grads(model, h0s)
    zero(model, h0s)
    out, _ = model(x, h0)
    chunk_loss(out, r).backward()  # full BPTT of the same total loss
    for a, b in zip(got, grads(model, h0s)):
        np.testing.assert_allclose(a, b, **TOL)


@given(problems, st.integers(2, 3))
def test_a_window_of_m_chunks_backpropagates_each_loss_exactly_that_far(p, m):
    """Williams & Peng's BPTT(m*k; k): chunk c's loss reaches back through chunks c-m+1..c, and the state
    entering chunk c-m+1 is a constant. Reference: rerun the forward from that state, detached."""
    model, x, r, _ = setup(p)
    T, k = p["T"], p["k"]
    with tg.no_grad():  # the states entering every chunk
        starts, state = [], None
        for start in range(0, T, k):
            starts.append(state)
            _, state = model(x[start: start + k], state)
    chunks, got = nn.tbptt(x, r, k=k, window=m * k), []
    for x_k, r_k, s in chunks:
        out, new = model(x_k, s)
        zero(model, [])
        chunks.backward(chunk_loss(out, r_k), new)
        got.append(grads(model, []))
    for c, g in enumerate(got):
        first = max(0, c - m + 1)
        zero(model, [])
        out, _ = model(x[first * k: (c + 1) * k], starts[first])
        chunk_loss(out[(c - first) * k:], r[c * k: (c + 1) * k]).backward()
        for a, b in zip(g, grads(model, [])):
            np.testing.assert_allclose(a, b, **TOL)


def test_a_longer_window_keeps_only_the_graphs_it_will_reach_again():
    model, m, k = build("LSTM", 2, 3, 1, 0), 3, 2
    x = tg.tensor(np.random.default_rng(0).standard_normal((14, 2, 2)))
    chunks, ends = nn.tbptt(x, k=k, window=m * k), []
    for i, (x_k, _, s) in enumerate(chunks):
        out, new = model(x_k, s)
        ends.append(weakref.ref(new[0]))
        chunks.backward(out.sum(), new)
        del out, new
        gc.collect()
        alive = [j for j, ref in enumerate(ends) if ref() is not None]
        assert alive == list(range(max(0, i - m + 2), i + 1)), (i, alive)


def test_chunks_and_targets_follow_the_time_axis_and_the_state_is_carried():
    x = tg.tensor(np.arange(2 * 7 * 1, dtype=np.float64).reshape(2, 7, 1))  # batch first: (B, T, I)
    y = tg.tensor(np.arange(14, dtype=np.float64).reshape(2, 7) * 10)
    chunks = nn.tbptt(x, y, k=3, time_axis=1)
    seen = []
    for x_k, y_k, s in chunks:
        seen.append((x_k.numpy()[0, :, 0].tolist(), y_k.numpy()[0].tolist(), s))
        chunks.carry(tg.tensor([float(len(seen))]))
    assert [a for a, _, _ in seen] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [b for _, b, _ in seen] == [[0, 10, 20], [30, 40, 50], [60]]
    assert seen[0][2] is None and [s.numpy().tolist() for _, _, s in seen[1:]] == [[1.0], [2.0]]
    assert chunks.position == 7 and chunks.state.numpy().tolist() == [3.0]


def test_resuming_at_a_position_yields_the_rest():
    chunks = nn.tbptt(tg.zeros(10, 1), k=4, start=4, drop_last=True)
    assert len(chunks) == 1
    assert [tuple(c.shape) for c, _, _ in chunks if chunks.carry(None) is None] == [(4, 1)]


def test_misuse_is_a_clear_error():
    x = tg.zeros(6, 1, 1)
    chunks = nn.tbptt(x, k=2)
    next(chunks)
    with pytest.raises(RuntimeError, match="backward"):
        next(chunks)  # the state of the last chunk was not handed back
    chunks.carry(None)
    with pytest.raises(RuntimeError, match="once after each chunk"):
        chunks.carry(None)
    with pytest.raises(ValueError, match="multiple of k=2.*window=2 or 4"):
        nn.tbptt(x, k=2, window=3)
    with pytest.raises(ValueError, match="y has shape"):
        nn.tbptt(x, tg.zeros(5, 1), k=2)
    with pytest.raises(ValueError, match="k must be"):
        nn.tbptt(x, k=0)
    with pytest.raises(TypeError, match="recurrent state"):
        nn.tbptt(x, k=2, state="h")


# ---------------------------------------------------------------- the char-LSTM trainer runs on it

def trainer_text() -> str:
    words = ["def", "return", "self", "value", "import", "class", "print"]
    rng = np.random.default_rng(0)
    return "".join(f"{words[i % 7]} x{i % 5} = {words[(i * 3) % 7]}(x{(i + 1) % 5})\n"
                   for i in rng.integers(0, 1000, 300))


def trainer_config(dtype: str):
    from tinygrad_rnn.charlm import trainer

    # Dropout (the init generator's stream), two layers, and an epoch wrap with lr decay within 24 steps.
    return trainer.TrainConfig(hidden_size=12, num_layers=2, dropout=0.3, seq_len=24, batch_size=16,
                               lr_decay=0.9, dtype=dtype)


# The trainer's losses before it ran on tbptt (its own loop over char-rnn batches), printed with
# float.hex on this project's reference machine (x86-64, NumPy 2.4 / OpenBLAS).
PINNED = {
    "float32": ["0x1.aa8e960000000p+1", "0x1.aa7ce80000000p+1", "0x1.a9b0700000000p+1", "0x1.a857a60000000p+1",
                "0x1.a8ed760000000p+1", "0x1.a7cf8c0000000p+1", "0x1.a865e60000000p+1", "0x1.a749bc0000000p+1",
                "0x1.a702700000000p+1", "0x1.a70a4e0000000p+1", "0x1.a525be0000000p+1", "0x1.a3ebe00000000p+1",
                "0x1.a530dc0000000p+1", "0x1.a3a84c0000000p+1", "0x1.a471f60000000p+1", "0x1.a30e280000000p+1",
                "0x1.a2c8d80000000p+1", "0x1.a1944e0000000p+1", "0x1.a094700000000p+1", "0x1.a073280000000p+1",
                "0x1.a0285c0000000p+1", "0x1.9f2bfc0000000p+1", "0x1.9e1f000000000p+1", "0x1.9df4a60000000p+1"],
    "float64": ["0x1.a9c78f542d336p+1", "0x1.a904f3ca33aadp+1", "0x1.a9362b39ab9c2p+1", "0x1.a87255b1231b9p+1",
                "0x1.a82b4f652166ap+1", "0x1.a74e50f4a4199p+1", "0x1.a6e10602c8ab2p+1", "0x1.a657b38831288p+1",
                "0x1.a50058574fb3dp+1", "0x1.a4babb462d2b8p+1", "0x1.a42162e475d40p+1", "0x1.a53ae5c84adfcp+1",
                "0x1.a3ab018a248f0p+1", "0x1.a39826f2c7b78p+1", "0x1.a2bd7f86ca35ap+1", "0x1.a0eb1f06ec11dp+1",
                "0x1.a1b9c562ad2a5p+1", "0x1.a11694fe2ee8ap+1", "0x1.9f56403666c02p+1", "0x1.9f6e4b774becdp+1",
                "0x1.9e953329ef474p+1", "0x1.9e0f4f2c3b55cp+1", "0x1.9be23bb88fb96p+1", "0x1.9b64eae1c0785p+1"],
}


def trainer_losses(dtype: str, steps: int = 24) -> list[float]:
    from tinygrad_rnn.charlm import trainer

    run, _ = trainer.build(trainer_config(dtype), trainer_text())
    losses = [trainer.train_step(run)[0] for _ in range(steps)]
    assert run.batches.epoch == 1, "the 24 steps should wrap around the text once"
    return losses


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_trainer_on_tbptt_gives_the_losses_it_gave_before(dtype):
    # Exact on the machine the values were taken on; a BLAS built for another CPU may round the last bits
    # differently, so elsewhere a relative 1e-6 (float32) / 1e-12 (float64), far below any change of method.
    tol = 1e-6 if dtype == "float32" else 1e-12
    for got, pinned in zip(trainer_losses(dtype), PINNED[dtype]):
        assert got == pytest.approx(float.fromhex(pinned), rel=tol, abs=0)


def test_the_trainer_gives_bit_for_bit_the_losses_of_a_hand_written_char_rnn_loop():
    """The loop the trainer ran before tbptt: windows of seq_len over the streams, the state detached
    after each, reset and lr decay at each epoch's start, Adam with global-norm clipping."""
    from tinygrad_rnn.charlm import trainer
    from tinygrad_rnn.nn import functional as F
    from tinygrad_rnn.nn.utils import clip_grad_norm_

    cfg = trainer_config("float32")
    run, _ = trainer.build(cfg, trainer_text())
    data, model, opt, sched = run.batches.data, run.model, run.optimizer, run.scheduler
    losses, p, state = [], 0, None
    for _ in range(24):
        if p + cfg.seq_len + 1 > data.shape[1]:
            p, state = 0, None
            sched.step()
        x, y = data[:, p: p + cfg.seq_len].T, data[:, p + 1: p + cfg.seq_len + 1].T
        p += cfg.seq_len
        logits, state = model(tg.Tensor(x), state)
        loss = F.cross_entropy(logits.reshape(-1, model.vocab_size), tg.Tensor(y.reshape(-1)))
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(list(model.parameters()), cfg.grad_clip)
        opt.step()
        state = detach_state(state)
        losses.append(loss.item())
    assert trainer_losses("float32") == losses
