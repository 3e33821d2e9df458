"""What the library promises about threads (docs/contract.md): grad mode and anomaly mode belong to
the thread that sets them, as in PyTorch; graphs built in different threads can be differentiated
at the same time; a capture in one thread does not record another thread's ops."""

from __future__ import annotations

import threading

import numpy as np

import tinygrad_rnn as tg


def _in_thread(fn):
    """Run ``fn`` in a new thread; return what it returned (or raise what it raised)."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001  (handed to the caller)
            box["error"] = exc
    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_no_grad_in_one_thread_leaves_another_recording():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = _in_thread(lambda: (x * x).sum())  # the other thread never entered no_grad
        assert y.requires_grad and not (x * x).requires_grad
    assert _in_thread(tg.is_grad_enabled)


def test_a_new_thread_starts_with_grad_mode_on_whatever_the_creating_thread_set():
    with tg.no_grad(), tg.detect_anomaly():
        assert _in_thread(lambda: (tg.is_grad_enabled(), tg.autograd.STATE.anomaly)) == (True, False)


def test_graphs_of_different_threads_backpropagate_at_the_same_time():
    """Eight threads each build and differentiate their own LSTM graph, at once: every gradient is the
    one the same computation gives alone."""
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((12, 3, 4)) for _ in range(8)]

    def grads(x_np):
        lstm = tg.nn.LSTM(4, 5, dtype="float64", generator=tg.Generator(1))
        x = tg.tensor(x_np, requires_grad=True)
        out, _ = lstm(x)
        (out * out).sum().backward()
        return [x.grad.numpy()] + [p.grad.numpy() for p in lstm.parameters()]

    alone = [grads(x) for x in xs]
    results = [None] * len(xs)
    start = threading.Barrier(len(xs))

    def work(i):
        start.wait()
        results[i] = grads(xs[i])
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, results):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


def test_a_capture_in_one_thread_does_not_record_another_threads_ops():
    w = tg.tensor([0.5, -1.0], requires_grad=True)
    seen = threading.Event()
    go = threading.Event()

    def other():  # runs its own ops while the main thread's capture is recording
        go.wait()
        v = tg.tensor([3.0, 4.0], requires_grad=True)
        (v * v).sum().backward()
        seen.set()
        return v.grad.numpy()

    t_result = {}
    t = threading.Thread(target=lambda: t_result.setdefault("g", other()))
    t.start()

    def step(x):
        go.set()
        seen.wait(5)  # the other thread's ops run in the middle of this recording
        loss = (w * x).sum()
        loss.backward()
        return loss

    captured = tg.replay.capture(step)
    for _ in range(4):
        w.grad = None
        captured(np.array([1.0, 2.0], dtype=np.float32))
    t.join()
    np.testing.assert_array_equal(t_result["g"], [6.0, 8.0])
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 2.0])
