"""Fit sin(x) with a tiny two-layer network, using nothing but the core engine.

Run:  python demos/fit_sine.py

Every line of the model is a Tensor op; ``loss.backward()`` walks the tape they
recorded; the update runs under ``no_grad`` so it is not recorded itself.
"""

from __future__ import annotations

import math

import tinygrad_rnn as tg


def main(steps: int = 600, hidden: int = 32, lr: float = 0.05, seed: int = 0) -> list[float]:
    gen = tg.Generator(seed)
    xs = [-math.pi + 0.05 * i for i in range(126)]
    x = tg.tensor([[v] for v in xs])                        # (N, 1)
    y = tg.tensor([[math.sin(v)] for v in xs])              # (N, 1)
    w1 = tg.randn(1, hidden, generator=gen, requires_grad=True)
    b1 = tg.zeros(hidden, requires_grad=True)
    w2 = (tg.randn(hidden, 1, generator=gen) * (1 / math.sqrt(hidden))).requires_grad_()
    b2 = tg.zeros(1, requires_grad=True)
    params = [w1, b1, w2, b2]
    history = []
    for step in range(steps + 1):
        pred = (x @ w1 + b1).tanh() @ w2 + b2               # (N, 1)
        loss = ((pred - y) ** 2).mean()
        for p in params:
            p.grad = None
        loss.backward()
        with tg.no_grad():
            for p in params:
                p.data -= lr * p.grad.data
        history.append(loss.item())
        if step % 100 == 0:
            print(f"step {step:4d}   mse {history[-1]:.5f}")
    return history


if __name__ == "__main__":
    main()
