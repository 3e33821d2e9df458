"""Sequence regression: forecast the next value of a noisy multi-frequency series with an LSTM,
trained with the mean squared error at every step.

Run:  python demos/regress.py [--steps 1500] [--seed 0] [--plot regress.png]

Each series is a sum of three sines, periods near 8, 13 and 29 steps (each jittered by up to
10% per series), random amplitudes and phases, plus Gaussian noise (std 0.05). The model sees
x_1..x_t and predicts x_{t+1}; so does the baseline, which repeats the last value (x_{t+1} = x_t).
Both are scored on the held-out series from step 20 on (the model's warm-up), on the same
values. The noise alone costs 0.0025, the best any forecaster can reach. For context the demo
also prints a stronger classical baseline: a linear autoregressive forecaster on the last 20
values, fitted by least squares on 2,000 series.

The last line printed is one JSON object: {"metric", "value", "baseline", "baseline_value"}.
"""

from __future__ import annotations



import argparse
import json
import math
import time

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn import nn, optim
from tinygrad_rnn.nn import functional as F

PERIODS = (8.0, 13.0, 29.0)
NOISE = 0.05
WARMUP = 20


def make_series(n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """(length, n) float32: n independent series, time-major."""
    t = np.arange(length)[:, None]
    x = np.zeros((length, n))
    for period in PERIODS:
        p = period * rng.uniform(0.9, 1.1, n)
        x += rng.uniform(0.2, 1.0, n) * np.sin(2 * math.pi * t / p + rng.uniform(0, 2 * math.pi, n))
    return (x + NOISE * rng.standard_normal(x.shape)).astype(np.float32)


class Forecaster(nn.Module):
    def __init__(self, hidden: int, gen: tg.Generator) -> None:
        super().__init__()
        self.rnn = nn.LSTM(1, hidden, generator=gen)
        self.head = nn.Linear(hidden, 1, generator=gen)

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        """x (T, B) -> the forecast of x_{t+1} at every t, (T, B)."""
        out, _ = self.rnn(x.reshape(*x.shape, 1))
        return self.head(out).reshape(*x.shape)


def evaluate(model: Forecaster, series: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(model MSE, last-value MSE, the model's forecasts) over steps WARMUP.. of the series."""
    with tg.no_grad():
        pred = model(tg.tensor(series[:-1])).numpy()
    target = series[1:]
    mse = float(((pred[WARMUP:] - target[WARMUP:]) ** 2).mean())
    last = float(((series[:-1][WARMUP:] - target[WARMUP:]) ** 2).mean())
    return mse, last, pred


def autoregressive_mse(test: np.ndarray, order: int, rng: np.random.Generator) -> float:
    """MSE on the scored steps of a least-squares AR(order) forecaster fitted on fresh series."""
    train = make_series(2000, 61, rng)
    windows = lambda s, t: np.c_[s[t - order + 1:t + 1].T, np.ones(s.shape[1])]  # noqa: E731  (B, order + 1)
    X = np.concatenate([windows(train, t) for t in range(order - 1, train.shape[0] - 1)])
    y = np.concatenate([train[t + 1] for t in range(order - 1, train.shape[0] - 1)])
    w = np.linalg.lstsq(X, y, rcond=None)[0]
    errors = [windows(test, t) @ w - test[t + 1] for t in range(WARMUP, test.shape[0] - 1)]
    return float(np.mean(np.square(errors)))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (small matrices: one is fastest) [1]")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=60, help="training sequence length")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--plot", metavar="PATH", help="write test forecasts and the learning curve to PATH (PNG)")
    args = ap.parse_args(argv)
    tg.threads.set_num_threads(args.threads)

    rng = np.random.default_rng(args.seed)
    test = make_series(256, 120, rng)
    model = Forecaster(args.hidden, tg.Generator(args.seed))
    opt = optim.Adam(model.parameters(), lr=args.lr)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)
    _, last_value, _ = evaluate(model, test)
    print(f"next-value forecasting, periods ~{PERIODS}, noise std {NOISE}; LSTM({args.hidden}); "
          f"last-value baseline MSE {last_value:.4f} (noise floor {NOISE ** 2:.4f})")
    history, start, every = [], time.perf_counter(), max(1, args.steps // 10)
    for step in range(1, args.steps + 1):
        x = tg.tensor(make_series(args.batch, args.length + 1, rng))
        pred = model(x[:-1])
        loss = F.mse_loss(pred[WARMUP // 2:], x[1:][WARMUP // 2:])  # a short warm-up: the state starts at zero
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % every == 0 or step == args.steps:
            mse, _, _ = evaluate(model, test)
            history.append((step, mse))
            print(f"step {step:5d}  train MSE {loss.item():.4f}  test MSE {mse:.4f}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    mse, last_value, pred = evaluate(model, test)
    ar = autoregressive_mse(test, 20, np.random.default_rng(args.seed + 1))
    print(f"test MSE {mse:.4f}: {mse / last_value:.3f} of the last-value baseline's {last_value:.4f}; for context, "
          f"a least-squares AR(20) forecaster: {ar:.4f}")
    if args.plot:
        save_plot(args.plot, test, pred, history, last_value)
    result = {"metric": "mse", "value": mse, "baseline": "last value", "baseline_value": last_value}
    print(json.dumps(result))
    return result


def save_plot(path: str, series: np.ndarray, pred: np.ndarray, history: list, last_value: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tinygrad_rnn.charlm.plot import save_figure

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    t = np.arange(1, series.shape[0])
    a.plot(t, series[1:, 0], color="0.3", lw=1.2, label="series")
    a.plot(t, pred[:, 0], color="tab:blue", lw=1.2, label="LSTM forecast of x[t+1]")
    a.plot(t, series[:-1, 0], color="tab:orange", lw=0.8, ls="--", label="last value")
    a.axvspan(0, WARMUP, color="0.9", label="warm-up (not scored)")
    a.set(xlabel="t", title="a held-out series and its one-step forecasts")
    a.legend(fontsize=8, loc="lower left")
    steps, mses = zip(*history)
    b.semilogy(steps, mses, "o-", label="LSTM, test MSE")
    b.axhline(last_value, color="tab:orange", ls="--", label=f"last value ({last_value:.3f})")
    b.axhline(last_value / 2, color="tab:orange", ls=":", label="half of it")
    b.axhline(NOISE ** 2, color="0.5", ls=":", label=f"noise floor ({NOISE ** 2:g})")
    b.set(xlabel="training step", title="test MSE")
    b.legend(fontsize=8)
    b.grid(alpha=0.3, which="both")
    save_figure(fig, path)


if __name__ == "__main__":
    main()
