"""Soak tests (marked ``long``; run with ``pytest -m long tests/test_soak.py -s``): thousands of truncated-BPTT
training steps with flat memory and steady speed, and one very long sequence through an LSTM."""

from __future__ import annotations

import gc
import os
import statistics
import time
import tracemalloc

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.charlm import CharRNN
from tinygrad_rnn.nn import functional as F
from tinygrad_rnn.nn.utils import clip_grad_norm_
from tinygrad_rnn.optim import Adam

pytestmark = pytest.mark.long

STEPS, K, B, V, H = 5_000, 20, 8, 32, 32
RSS_GROWTH_MB = 8.0      # resident memory: the last 1,000 steps' peak may exceed the first 1,000's by at most this
OBJECT_GROWTH = 2_000    # live Python objects (gc-tracked) after the last step vs. after step 1,000
SPEED_RATIO = 1.25       # median step time, last 1,000 steps / first 1,000 after warm-up


def rss_mb() -> float:
    """Resident set size (Linux /proc; elsewhere the test is skipped)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads resident memory from /proc")
def test_five_thousand_truncated_bptt_steps_keep_memory_flat_and_speed_steady():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, (STEPS * K + 1, B))  # one long sequence: every step reads the next K characters
    model = CharRNN(V, H, 1, "lstm", generator=tg.Generator(0))
    params = list(model.parameters())
    opt = Adam(params, lr=2e-3)
    chunks = nn.tbptt(ids[:-1], ids[1:], k=K)
    times, rss, losses = [], [], []
    objects_at_1000 = None
    for step, (x, y, state) in enumerate(chunks, 1):
        t0 = time.perf_counter()
        logits, state = model(tg.Tensor(x), state)
        loss = F.cross_entropy(logits.reshape(-1, V), tg.Tensor(y.reshape(-1)))
        opt.zero_grad()
        chunks.backward(loss, state)
        clip_grad_norm_(params, 5.0)
        opt.step()
        losses.append(loss.item())
        times.append(time.perf_counter() - t0)
        rss.append(rss_mb())
        if step == 1_000:
            gc.collect()
            objects_at_1000 = len(gc.get_objects())
    assert len(times) == STEPS
    gc.collect()
    object_growth = len(gc.get_objects()) - objects_at_1000
    first, last = slice(100, 1_100), slice(STEPS - 1_000, STEPS)  # the first 100 steps are warm-up
    rss_first, rss_last = max(rss[first]), max(rss[last])
    t_first, t_last = statistics.median(times[first]), statistics.median(times[last])
    print(f"\n{STEPS} tbptt steps (LSTM V={V} H={H} B={B} k={K}): RSS peak first 1,000 {rss_first:.1f} MB, "
          f"last 1,000 {rss_last:.1f} MB; objects +{object_growth}; median step {t_first * 1e3:.2f} ms -> "
          f"{t_last * 1e3:.2f} ms ({t_last / t_first:.2f}x); loss {np.mean(losses[:100]):.3f} -> "
          f"{np.mean(losses[-100:]):.3f}")
    assert rss_last - rss_first <= RSS_GROWTH_MB
    assert object_growth <= OBJECT_GROWTH
    assert t_last <= SPEED_RATIO * t_first
    assert np.isfinite(losses).all()


SEQUENCE, SEQ_BYTES_PER_STEP = 10_000, 20_000  # bound on the traced peak: 20 kB per time step (~9 kB measured)


def test_a_ten_thousand_step_sequence_runs_forward_and_backward_through_an_lstm():
    rng = np.random.default_rng(0)
    lstm = nn.LSTM(4, 16, dtype="float64", generator=tg.Generator(0))
    x = tg.tensor(rng.standard_normal((SEQUENCE, 2, 4)), requires_grad=True)
    r = tg.tensor(rng.standard_normal((SEQUENCE, 2, 16)))
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out, state = lstm(x)
        (out * r).sum().backward()  # no RecursionError: the engine walks the 10,000-step graph with a stack
        peak = tracemalloc.get_traced_memory()[1] - base
        del out, state
        gc.collect()
        left = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    print(f"\n{SEQUENCE}-step LSTM forward+backward: traced peak {peak / 1e6:.1f} MB "
          f"({peak / SEQUENCE / 1e3:.1f} kB per step), {left / 1e6:.2f} MB left after the graph is dropped")
    grads = [x.grad.numpy()] + [p.grad.numpy() for p in lstm.parameters()]
    assert all(np.isfinite(g).all() for g in grads)
    assert np.abs(x.grad.numpy()[0]).max() > 0, "the gradient must reach the first step"
    assert peak <= SEQUENCE * SEQ_BYTES_PER_STEP
    assert left <= 0.05 * peak, "the graph must be freed once nothing refers to it"
