"""Char-LSTM training speed: tinygrad_rnn against PyTorch and against NumPy by hand, side by side.

Run:  python demos/bench_lstm.py [S M L] [--steps 10] [--model lstm|gru|rnn] [--dtype float64]
      python demos/bench_lstm.py --sweep [M] [--plot docs/bench_lstm_sweep.png]

Every contender trains the same model (one-hot V=65 -> recurrent layers -> Linear -> mean
cross-entropy -> backward -> clip to norm 5 -> Adam) from the same initial weights
(tinygrad_rnn's, loaded into the others by name) on the same random batches, carrying
the detached state from step to step. The contenders take turns within each round, in
an order that rotates, so machine noise hits them alike; the figure is the median step.
The first step's losses must agree to the dtype's rounding (an assert): the contenders
do the same work.

* tinygrad_rnn: the step of ``tinygrad-rnn bench`` (``tinygrad_rnn.charlm.bench.TrainStep``);
* PyTorch: ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` + ``nn.Linear`` when torch is installed,
  with as many threads as the machine has cores;
* NumPy by hand (LSTM only): ``demos/numpy_lstm.py``, forward and BPTT derived by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn.charlm.bench import GRAD_CLIP, LR, PRESETS, VOCAB, BenchConfig, TrainStep, synthetic_batches

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_lstm import NumpyCharLSTM  # noqa: E402  (a sibling script, not a package)

# PyTorch's OpenMP threads spin for a while after each op (the default "active" wait policy);
# interleaved with NumPy they would steal the cores OpenBLAS runs on and slow the next contender.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
try:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
except ImportError:
    torch = None

Step = Callable[[np.ndarray, np.ndarray], float]  # (x (T, B), y (T, B)) ids -> loss of that step
LOSS_RTOL = {"float32": 1e-5, "float64": 1e-10}
SWEEP_HIDDEN = (64, 128, 256, 512)


def tinygrad_step(cfg: BenchConfig) -> tuple[Step, dict[str, np.ndarray]]:
    """tinygrad_rnn's step, and its initial weights for the other contenders."""
    step = TrainStep(cfg)
    return (lambda x, y: step(x, y.reshape(-1))), step.model.state_dict()


def torch_step(cfg: BenchConfig, weights: dict[str, np.ndarray]) -> Step:
    """PyTorch's layers with tinygrad_rnn's initial weights (same names, same layout)."""
    nn, F = torch.nn, torch.nn.functional
    layer = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cfg.model]
    dtype, dev = getattr(torch, cfg.dtype), cfg.device  # on cuda, nn.LSTM/GRU/RNN run cuDNN
    model = nn.ModuleDict({"rnn": layer(VOCAB, cfg.hidden, cfg.layers), "head": nn.Linear(cfg.hidden, VOCAB)})
    model.to(dtype).load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    carried: list = [None]

    def step(x: np.ndarray, y: np.ndarray) -> float:
        x, y = torch.as_tensor(x, device=dev), torch.as_tensor(y, device=dev)  # CuPy arrays cross zero-copy
        out, state = model["rnn"](F.one_hot(x, VOCAB).to(dtype), carried[0])
        loss = F.cross_entropy(model["head"](out).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        carried[0] = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        return loss.item()
    return step


def numpy_step(weights: dict[str, np.ndarray]) -> Step:
    return NumpyCharLSTM(weights, lr=LR, grad_clip=GRAD_CLIP).step


def contenders(cfg: BenchConfig) -> dict[str, Step]:
    steps: dict[str, Step] = {}
    steps["tinygrad_rnn"], weights = tinygrad_step(cfg)
    if cfg.model == "lstm":  # the same model with the fused cell op (ops/fused.py), reported beside it
        steps["tinygrad_rnn fused"], _ = tinygrad_step(dataclasses.replace(cfg, fused=True))
    if torch is not None:
        steps["PyTorch"] = torch_step(cfg, weights)
    if cfg.model == "lstm" and cfg.device == "cpu":
        steps["NumPy by hand"] = numpy_step(weights)
    return steps


def run(cfg: BenchConfig) -> dict[str, float]:
    """chars/s of every contender on ``cfg`` (median step, after the check step and warm-up)."""
    steps, data = contenders(cfg), synthetic_batches(cfg)
    batch = lambda: tuple(a.reshape(cfg.seq_len, cfg.batch) for a in next(data))
    x, y = batch()
    first = {name: fn(x, y) for name, fn in steps.items()}  # same weights, same batch, zero state
    ref = first["tinygrad_rnn"]
    for name, loss in first.items():
        assert abs(loss - ref) <= LOSS_RTOL[cfg.dtype] * abs(ref), (
            f"config {cfg.name}: first-step loss of {name} is {loss!r}, tinygrad_rnn's is {ref!r}: the contenders "
            f"do not compute the same thing (relative difference {abs(loss - ref) / abs(ref):.1e})")
    for _ in range(cfg.warmup):
        x, y = batch()
        for fn in steps.values():
            fn(x, y)
    times: dict[str, list[float]] = {name: [] for name in steps}
    # Each round visits the contenders in a fresh, seeded random order (as bench_core.interleaved_medians
    # does): with a fixed or rotated order, the same contender would always run right after PyTorch and
    # pay for the caches and thread pools PyTorch leaves behind.
    names, rng = list(steps), random.Random(cfg.seed)
    for _ in range(cfg.steps):
        x, y = batch()
        rng.shuffle(names)
        for name in names:
            t0 = time.perf_counter()
            steps[name](x, y)
            times[name].append(time.perf_counter() - t0)
    return {name: cfg.batch * cfg.seq_len / statistics.median(t) for name, t in times.items()}


def report(cfg: BenchConfig, speeds: dict[str, float]) -> None:
    base = "PyTorch" if "PyTorch" in speeds else "tinygrad_rnn"
    print(f"\nconfig {cfg.name}: {cfg.model} H={cfg.hidden} layers={cfg.layers} B={cfg.batch} T={cfg.seq_len} "
          f"{cfg.dtype}, median of {cfg.steps} steps after {cfg.warmup} warm-up (first-step losses agree)")
    for name, cps in speeds.items():
        print(f"  {name:<19}{cps:>12,.0f} chars/s   {cps / speeds[base]:6.2f}x {base}")


def sweep(base: BenchConfig, path: str) -> None:
    """chars/s against hidden size for every contender; a log-log PNG plot at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, list[float]] = {}
    for h in SWEEP_HIDDEN:
        cfg = BenchConfig(**{**base.__dict__, "hidden": h, "name": f"{base.name}/H={h}"})
        speeds = run(cfg)
        report(cfg, speeds)
        for name, cps in speeds.items():
            curves.setdefault(name, []).append(cps)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in curves.items():
        ax.plot(SWEEP_HIDDEN, ys, marker="o", label=name)
    ax.set(xscale="log", yscale="log", xlabel="hidden size H", ylabel="training chars/s",
           title=f"char-{base.model.upper()} training, {base.layers} layer(s), B={base.batch}, T={base.seq_len}, "
                 f"{base.dtype}")
    ax.set_xticks(SWEEP_HIDDEN, [str(h) for h in SWEEP_HIDDEN], minor=False)
    ax.set_xticks([], minor=True)  # the log axis's default minor labels would overlap ours
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"\nplot saved to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", default=["S", "M", "L"], help="S, M and/or L [all three]")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per contender [10]")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds after the check step [2]")
    parser.add_argument("--model", choices=["lstm", "gru", "rnn"], default="lstm")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: tinygrad_rnn on CuPy against PyTorch's cuDNN layers (the NumPy LSTM is left out)")
    parser.add_argument("--sweep", action="store_true", help=f"vary H over {SWEEP_HIDDEN} in the first config")
    parser.add_argument("--plot", default="docs/bench_lstm_sweep.png", help="where --sweep saves its plot")
    args = parser.parse_args()
    bad = [c for c in args.configs if c.upper() not in PRESETS]
    if bad:
        parser.error(f"unknown config {bad[0]!r}: choose from {', '.join(PRESETS)}")
    print(f"tinygrad_rnn {tg.__version__}, NumPy {np.__version__}, "
          + (f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else "PyTorch absent")
          + f", {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    configs = [BenchConfig.preset(c, model=args.model, dtype=args.dtype, device=args.device, steps=args.steps,
                                  warmup=args.warmup) for c in args.configs]
    for cfg in configs:
        cfg.validate()
    if args.sweep:
        sweep(configs[0], args.plot)
        return
    for cfg in configs:
        report(cfg, run(cfg))
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    busy = " (other work shared the CPUs: figures are noisy)" if load > 0.75 * cores else ""
    print(f"\nload average at the end {load:.2f}{busy}")


if __name__ == "__main__":
    main()
