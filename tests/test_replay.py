"""Capture and replay (tinygrad_rnn.replay): bit-identical to the normal path, or the normal path.

Every comparison here is to the bit (``same_bits``: equal bytes, -0.0 and NaN included): the
same model is trained twice from the same seed, once with the captured step and once
normally, and the losses, every gradient, every parameter after the optimizer and the random
generators' states must agree at every step.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import replay
from tinygrad_rnn.backend import Generator, same_bits
from tinygrad_rnn.charlm.model import CharRNN
from tinygrad_rnn.nn import functional as F
from tinygrad_rnn.nn.utils import clip_grad_norm_, detach_state
from tinygrad_rnn.optim import Adam
from tinygrad_rnn.replay.backward import Cover
from tinygrad_rnn.tensor import Tensor

V = 11
CHOOSER = Generator(0)


def step_fn(model, vocab=V):
    """The trainer's forward and backward, as a function of (ids, next ids, carried state)."""
    def f(x, y, state):
        logits, state = model(Tensor(x), state)
        loss = F.cross_entropy(logits.reshape(-1, vocab), Tensor(y.reshape(-1)))
        loss.backward()
        return loss, detach_state(state)
    return f


def twins(kind="lstm", hidden=6, layers=2, dropout=0.0, dtype="float32", fused=False):
    """Two identical models, optimizers and seeded dropout generators."""
    out = []
    for _ in range(2):
        extra = {"fused": True} if fused else {}
        m = CharRNN(V, hidden, layers, kind, dropout, dtype=dtype, generator=Generator(0), **extra)
        out.append((m, Adam(m.parameters(), lr=1e-2)))
    return out


def train_both(kind="lstm", steps=6, T=5, B=3, seed=1, **kw):
    """Train the twins, one through capture(): returns the captured function after checking every step."""
    (ma, oa), (mb, ob) = twins(kind, **kw)
    fa, fb = replay.capture(step_fn(ma)), step_fn(mb)
    sa = sb = None
    rng = np.random.default_rng(seed)
    for step in range(steps):
        ids = rng.integers(0, V, (T + 1, B))
        oa.zero_grad()
        ob.zero_grad()
        la, sa = fa(ids[:-1], ids[1:], sa)
        lb, sb = fb(ids[:-1], ids[1:], sb)
        assert same_bits(la.data, lb.data), f"loss differs at step {step}"
        for s1, s2 in zip(sa, sb):
            assert same_bits(s1.data, s2.data), f"carried state differs at step {step}"
        for (name, pa), pb in zip(ma.named_parameters(), mb.parameters()):
            assert same_bits(pa.grad.data, pb.grad.data), f"gradient of {name} differs at step {step}"
        clip_grad_norm_(list(ma.parameters()), 1.0)
        clip_grad_norm_(list(mb.parameters()), 1.0)
        oa.step()
        ob.step()
        for (name, pa), pb in zip(ma.named_parameters(), mb.parameters()):
            assert same_bits(pa.data, pb.data), f"{name} differs after the optimizer at step {step}"
        assert ma.rnn.generator.get_state() == mb.rnn.generator.get_state()
    return fa


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_replayed_training_is_bit_identical_to_the_normal_path(kind, dropout):
    fa = train_both(kind, steps=7, dropout=dropout)
    assert fa.calls["replayed"] >= 3 and fa.calls["verified"] == 1, fa.explain()


def test_replay_is_bit_identical_in_float64_and_with_one_layer():
    assert train_both("lstm", layers=1, dtype="float64").calls["replayed"] >= 2


def test_fused_lstm_cell_replays_through_its_own_rules():
    fa = train_both("lstm", fused=True)
    assert fa.calls["replayed"] >= 2, fa.explain()


@given(T=st.integers(1, 6), B=st.integers(1, 4), hidden=st.integers(1, 9), layers=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_replay_matches_for_drawn_sizes(T, B, hidden, layers, seed):
    fa = train_both("lstm", steps=5, T=T, B=B, hidden=hidden, layers=layers, seed=seed)
    assert fa.calls["replayed"] >= 1, fa.explain()


def test_big_sparse_sums_zero_only_the_rows_no_gradient_reaches(monkeypatch):
    monkeypatch.setattr(Cover, "MASK_LIMIT", 8)  # every buffer tracked by rows (as for long sequences)
    assert train_both("gru", steps=6).calls["replayed"] >= 2


# ---------------------------------------------------------------- ops one by one, and custom ops

class Cube(tg.Function):
    """A user-defined op: replayed through its own forward and backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * 3 * x * x


GRAPHS = {
    "arith": lambda x, w: ((x - w) * (x + 1.5) / (w * w + 1) - x).sum(),
    "unary": lambda x, w: ((x * w).exp().log() + (x * x + 1).sqrt() + (-w).tanh() + x.sigmoid()).sum(),
    "relu_where": lambda x, w: tg.where(x > 0, (x * w).relu(), w * 0.5).sum(),
    "reductions": lambda x, w: ((x @ w.T).log_softmax(axis=1) * 2).mean() + (x * w).sum(axis=0).max(),
    "shapes": lambda x, w: (tg.cat([x, w], axis=0).reshape(2, -1).T * tg.stack([x, w])[1, :, 1:2].sum()).sum(),
    "index": lambda x, w: (x[tg.tensor([0, 2, 0])] * w).sum() + x[:, ::2].sum() + (x[1] * w[2]).sum(),
    "broadcast": lambda x, w: (x * w.sum(axis=0, keepdims=True) + w[0]).sum(),
    "matmul": lambda x, w: (tg.addmm(w[0], x.T, w) @ w.T).sum(),
    "generic_ops": lambda x, w: (Cube.apply(x) * tg.maximum(x, w) + (x.abs() ** 1.5) + x.softmax(axis=0)).sum()
    + x.clip(-0.5, 0.5).logsumexp(axis=1).sum(),
    "cast": lambda x, w: (x.double() * w.double()).float().sum(),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_every_op_replays_to_the_bit(name):
    rng = np.random.default_rng(3)
    w = tg.tensor(rng.standard_normal((3, 4)).astype(np.float32) + 0.1, requires_grad=True)

    def f(x):
        loss = GRAPHS[name](Tensor(x), w)
        loss.backward()
        return loss

    captured = replay.capture(f)
    for i in range(5):
        x = rng.standard_normal((3, 4)).astype(np.float32)
        w.grad = None
        out = captured(x)
        got = w.grad.data.copy()
        w.grad = None
        ref = f(x)
        assert same_bits(out.data, ref.data) and same_bits(got, w.grad.data), f"call {i}"
    assert captured.calls["replayed"] >= 1, captured.explain()


def test_inference_under_no_grad_replays():
    lin = tg.nn.Linear(4, 3, generator=Generator(0))
    captured = replay.capture(lambda x: lin(x).relu().sum(axis=1))
    with tg.no_grad():
        for i in range(4):
            x = tg.tensor(np.full((2, 4), float(i), np.float32))
            assert same_bits(captured(x).data, lin(x).relu().sum(axis=1).data)
    assert captured.calls["replayed"] >= 1


# ---------------------------------------------------------------- the call's contract

def counting_model():
    w = tg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) / 10, requires_grad=True)

    def f(x):
        loss = (Tensor(x) @ w).tanh().sum()
        loss.backward()
        return loss
    return w, f


def call_many(captured, n=5, shape=(4, 2)):
    for i in range(n):
        captured(np.full(shape, 0.1 * i, np.float32))


def test_gradients_accumulate_like_the_normal_path_without_zero_grad():
    w, f = counting_model()
    captured = replay.capture(f)
    w2, f2 = counting_model()
    for i in range(6):
        x = np.full((4, 2), 0.1 * i, np.float32)
        captured(x)
        f2(x)
        assert same_bits(w.grad.data, w2.grad.data), f"call {i}"
    assert captured.calls["replayed"] >= 2


def test_returned_values_are_copies_the_next_call_does_not_touch():
    w, f = counting_model()
    captured = replay.capture(f)
    outs = [captured(np.full((4, 2), 0.1 * i, np.float32)) for i in range(6)]
    again = [f(np.full((4, 2), 0.1 * i, np.float32)) for i in range(6)]
    assert all(same_bits(a.data, b.data) for a, b in zip(outs, again))
    assert not outs[-1].requires_grad and captured.calls["replayed"] >= 2


def test_a_new_argument_shape_gets_its_own_program():
    w, f = counting_model()
    captured = replay.capture(f)
    call_many(captured, 4, (4, 2))
    call_many(captured, 4, (5, 2))
    assert len(captured.programs) == 2 and captured.calls["replayed"] >= 2


def test_disabled_capture_runs_the_normal_path():
    w, f = counting_model()
    captured = replay.capture(f)
    captured.enabled = False
    call_many(captured)
    assert captured.calls["normal"] == 5 and "turned off" in captured.explain()


def fallback(f, calls=6, shape=(4, 2)):
    """Call ``capture(f)`` a few times; return it and the warnings it gave."""
    captured = replay.capture(f)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(calls):
            captured(np.full(shape, 0.1 * (i + 1), np.float32))
    return captured, [str(w.message) for w in caught if w.category is replay.ReplayWarning]


def reason(captured) -> str:
    return " | ".join(captured.reasons)


def test_control_flow_that_changes_between_calls_falls_back():
    counter = [0]

    def f(x):
        counter[0] += 1
        y = Tensor(x)
        return (y * 2 if counter[0] % 2 else y + 1).sum()
    captured, warned = fallback(f, 8)
    assert captured.calls["replayed"] == 0 and "different work" in reason(captured) and warned


def test_a_python_number_that_changes_between_calls_falls_back():
    counter = [0]

    def f(x):
        counter[0] += 1
        return (Tensor(x) * counter[0]).sum()
    captured, _ = fallback(f, 6)
    assert captured.calls["replayed"] == 0 and "different work" in reason(captured)


def test_an_outside_array_that_changes_between_calls_falls_back():
    outside = [np.ones((4, 2), np.float32)]

    def f(x):
        outside[0] = outside[0] * 2
        return (Tensor(x) * Tensor(outside[0])).sum()
    captured, _ = fallback(f, 6)
    assert captured.calls["replayed"] == 0 and "changed between calls" in reason(captured)


def test_reading_a_computed_value_to_python_falls_back():
    w, _ = counting_model()

    def f(x):
        loss = (Tensor(x) @ w).sum()
        if loss.item() > 100:  # Python control flow on a computed value: replay cannot follow
            loss = loss * 2
        loss.backward()
        return loss
    captured, warned = fallback(f)
    assert captured.calls["replayed"] == 0 and "reads a computed value" in reason(captured) and warned


def test_a_guard_on_the_arguments_falls_back_for_that_call_only():
    def f(x):
        t = Tensor(x)
        if bool((x > 0.45).any()):  # a question about the argument: checked on every replay
            t = t * 3
        return t.sum()
    captured = replay.capture(f)
    values = [0.1, 0.2, 0.3, 0.4, 0.9, 0.2]
    outs = [captured(np.full((4, 2), v, np.float32)) for v in values]
    assert [float(o.item()) for o in outs] == [pytest.approx(v * 8 * (3 if v > 0.45 else 1)) for v in values]
    assert captured.calls["replayed"] >= 2 and "a value the function reads to Python changed" in reason(captured)


@pytest.mark.parametrize("body, words", [
    (lambda x, w: tg.grad((Tensor(x) * w).sum(), w), "autograd.grad"),
    (lambda x, w: (Tensor(x) * w).sum().backward(create_graph=True), "create_graph"),
    (lambda x, w: Tensor(x) * w, "still part of a graph"),
    (lambda x, w: Tensor(np.sort(x)).sum(), "not followed"),
    (lambda x, w: Tensor(x).sum() * CHOOSER.choice(tg.tensor([0.5, 0.5]).data), "Generator.choice"),
])
def test_unsupported_work_falls_back_with_a_reason(body, words):
    w = tg.tensor(np.ones((4, 2), np.float32), requires_grad=True)
    captured, warned = fallback(lambda x: body(x, w))
    assert captured.calls["replayed"] == 0 and words in reason(captured), reason(captured)
    assert warned


def test_an_argument_that_requires_grad_runs_the_normal_path():
    captured = replay.capture(lambda t: (t * 2).sum())
    t = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.warns(replay.ReplayWarning, match="requires grad"):
        for _ in range(3):
            captured(t)
    assert captured.calls["normal"] == 3 and "requires grad" in reason(captured)


def test_anomaly_mode_runs_the_normal_path():
    w, f = counting_model()
    captured = replay.capture(f)
    with tg.detect_anomaly(), pytest.warns(replay.ReplayWarning, match="detect_anomaly"):
        call_many(captured, 3)
    assert captured.calls["normal"] == 3 and "detect_anomaly" in reason(captured)


def test_a_parameter_with_another_layout_is_captured_again():
    w, f = counting_model()
    captured = replay.capture(f)
    call_many(captured, 4)
    w.data = np.asfortranarray(w.data)  # column-major now: the recorded products no longer apply
    w2 = tg.tensor(w.data.copy(), requires_grad=True)
    w2.data = np.asfortranarray(w2.data)
    for i in range(5):
        x = np.full((4, 2), 0.1 * i, np.float32)
        w.grad = w2.grad = None
        out = captured(x)
        ref = (Tensor(x) @ w2).tanh().sum()
        ref.backward()
        assert same_bits(out.data, ref.data) and same_bits(w.grad.data, w2.grad.data)
    assert "changed its dtype, layout" in reason(captured) and captured.calls["replayed"] >= 1


def test_switching_a_module_to_eval_mode_is_captured_again():
    (m, _), (m2, _) = twins("lstm", dropout=0.5)
    captured = replay.capture(step_fn(m))
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, V, (4, 2)) for _ in range(12)]
    for ids in batches[:4]:
        captured(ids[:-1], ids[1:], None)
        step_fn(m2)(ids[:-1], ids[1:], None)
    m.eval()
    m2.eval()
    for ids in batches[4:]:
        la, _ = captured(ids[:-1], ids[1:], None)
        lb, _ = step_fn(m2)(ids[:-1], ids[1:], None)
        assert same_bits(la.data, lb.data)
    assert "training mode at capture" in reason(captured) and captured.calls["replayed"] >= 4


def test_verification_catches_a_replay_that_differs(monkeypatch):
    from tinygrad_rnn.ops.elementwise import Tanh
    from tinygrad_rnn.replay import kernels

    def wrong_tanh(k, ins, attrs):  # a broken kernel: tanh(x) + 1e-3
        out = k.out()
        k.emit("tanh", ins[0], out, out=out)
        k.emit("add", out, 1e-3, out, out=out)
        return out, out
    monkeypatch.setitem(kernels.FORWARD, Tanh, wrong_tanh)
    w, f = counting_model()
    captured, warned = fallback(f)
    assert captured.calls["replayed"] == 0 and "replay differs from the normal path" in reason(captured)
    assert warned


def test_program_counts_and_gemms_describe_the_step():
    (m, _), _ = twins("lstm", hidden=5, layers=2)
    captured = replay.capture(step_fn(m))
    rng = np.random.default_rng(0)
    state = None
    for _ in range(4):
        ids = rng.integers(0, V, (4, 3))
        _, state = captured(ids[:-1], ids[1:], state)
    (program,) = captured.programs
    T, B, H = 3, 3, 5
    # per layer: T forward h @ W_hh^T, T - 1 backward dA @ W_hh (no gradient to the detached h0... the
    # carried state is an argument), one input projection, its weight gradient, the W_hh gradient;
    # the input gradient of layer 2's projection; the head: forward, weight gradient, input gradient.
    shapes = sorted((g["a"][0], g["b"][0]) for g in program.gemms())
    assert shapes.count(((B, H), (H, 4 * H))) == 2 * T
    assert shapes.count(((B, 4 * H), (4 * H, H))) == 2 * (T - 1)
    assert ((T * B, V), (V, 4 * H)) in shapes and ((T * B, H), (H, V)) in shapes
    assert len(shapes) == 2 * T + 2 * (T - 1) + 2 * 3 + 1 + 3
    assert program.ops > 0 and program.instructions > program.ops


def test_saturated_cells_replay_to_the_bit():
    """Large weights saturate the gates (sigmoid outputs of exactly 0 or 1, tanh of exactly +-1), where
    local gradients are exactly zero and signed zeros appear in the backward pass."""
    (ma, _), (mb, _) = twins("lstm", hidden=5)
    for pa, pb in zip(ma.parameters(), mb.parameters()):
        pa.data = pa.data * 100
        pb.data = pb.data * 100
    rng = np.random.default_rng(5)
    probe = rng.integers(0, V, (5, 3))
    with tg.no_grad():
        out, _ = mb.rnn(tg.one_hot(Tensor(probe), V, dtype="float32"))
    assert np.any(out.numpy() == 0.0)  # an output gate of exactly 0: saturated, the case this test is about
    fa, fb = replay.capture(step_fn(ma)), step_fn(mb)
    for _ in range(6):
        ids = rng.integers(0, V, (6, 3))
        for p in list(ma.parameters()) + list(mb.parameters()):
            p.grad = None
        la, _ = fa(ids[:-1], ids[1:], None)
        lb, _ = fb(ids[:-1], ids[1:], None)
        assert same_bits(la.data, lb.data)
        for pa, pb in zip(ma.parameters(), mb.parameters()):
            assert same_bits(pa.grad.data, pb.grad.data)
    assert fa.calls["replayed"] >= 2


def test_the_trainer_replays_its_steps_and_trains_exactly_as_without(tmp_path):
    """`tinygrad-rnn train` (replay on by default) and `--no-replay`: the same losses and weights, bit for bit."""
    import json

    from tinygrad_rnn.charlm import checkpoint
    from tinygrad_rnn.charlm.trainer import TrainConfig, train

    text = tmp_path / "t.txt"
    text.write_text("".join(f"line {i}: the cat sat on mat {i % 7}\n" for i in range(300)), encoding="utf-8")
    runs = {}
    for replayed in (True, False):
        out = tmp_path / f"run_{replayed}"
        cfg = TrainConfig(data=str(text), hidden_size=8, num_layers=2, batch_size=4, seq_len=12, dropout=0.3,
                          max_steps=30, eval_every=10, out=str(out), quiet=True, replay=replayed)
        with warnings.catch_warnings():
            warnings.simplefilter("error", replay.ReplayWarning)  # no fallback for good
            train(cfg, log=lambda message: None)
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        losses = [(r["train_loss"], r.get("val_loss")) for r in rows]
        runs[replayed] = (losses, checkpoint.load(str(out / "latest.npz")))
    assert runs[True][0] == runs[False][0]  # every training and validation loss
    for name, value in runs[True][1]["model"].items():
        assert same_bits(value, runs[False][1]["model"][name]), name


def test_a_new_argument_dtype_gets_its_own_program():
    captured = replay.capture(lambda x: (Tensor(x) * 2).tanh().sum())
    for dtype in (np.float32, np.float64):
        for i in range(4):
            x = np.full((3, 2), 0.1 * i, dtype)
            assert same_bits(captured(x).data, (Tensor(x) * 2).tanh().sum().data)
    assert len(captured.programs) == 2


class Wrapped(np.ndarray):
    """Not a plain NumPy array (as a CuPy array is not): replay does not take it."""


def test_an_argument_that_is_not_a_numpy_array_runs_the_normal_path():
    captured = replay.capture(lambda x: (Tensor(x) * 2).sum())
    x = np.ones((2, 2), np.float32).view(Wrapped)
    with pytest.warns(replay.ReplayWarning, match="not a NumPy array"):
        for _ in range(3):
            captured(x)
    assert captured.calls["normal"] == 3


@pytest.mark.skipif(not tg.cuda_available(), reason="no CuPy / GPU here")
def test_gpu_arguments_run_the_normal_path():
    captured = replay.capture(lambda x: (x * 2).sum())
    x = tg.ones(3).to("cuda")
    with pytest.warns(replay.ReplayWarning, match="not a NumPy array"):
        for _ in range(3):
            captured(x)
    assert captured.calls["normal"] == 3
