"""Time to quality: validation loss against steps and seconds, tinygrad_rnn's trainer against PyTorch.

Run:  python demos/time_to_quality.py [--data tinyshakespeare.txt] [--steps 2000 | --minutes 30] [--seeds 0,1,2]
          [--impls tinygrad,torch] [--torch-pipelines streams,offset,random] [--dropout 0.0] [--eval-every 250]
          [--json time_to_quality.json] [--plot time_to_quality.png]

Both train the char-LSTM with ``tinygrad-rnn train``'s default options (2 x 256 LSTM, seq-len
100, batch 64, Adam lr 2e-3, gradient clipping at 5, lr decay 1.0 per epoch), from the same
initial weights, each run in a process of its own:

* ``tinygrad``: the command itself (``tinygrad_rnn.charlm.trainer.train``), as users run it;
* ``torch``: PyTorch ``nn.LSTM`` + ``nn.Linear`` fed by the SAME data pipeline, built from the
  trainer's own functions: the training text cut into 64 parallel streams, consecutive windows,
  the hidden state carried and detached between steps and reset at each epoch, the same
  validation split scored the same way, the same Adam, clipping and per-epoch lr decay.
  ``--torch-pipelines`` adds variants: ``offset`` (the same streams, each epoch's windows starting
  at a drawn column: the trainer's ``--epoch-offset random``) and ``random`` (random windows from a
  zero state each step, the usual PyTorch example), so that the gap can be split into the
  pipeline's part and the rest.

For each implementation the report gives, at each validation step, the mean validation loss and
its seed-to-seed standard deviation, and the mean training seconds to get there (validation and
checkpoint writing left out). It checks that tinygrad and torch agree at the last step within
max(0.05, twice the larger seed-to-seed std), and reports the training time to reach 1.60 nats.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = "/work/shared/data/tinyshakespeare.txt"
TARGET = 1.60
HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------- workers (one run each, own process)

SIZES = ("hidden_size", "num_layers", "seq_len", "batch_size")


def sizes(args: argparse.Namespace) -> dict:
    """Model and batch sizes and the epoch offset given on the command line (the trainer's defaults otherwise)."""
    return {k: getattr(args, k) for k in (*SIZES, "epoch_offset") if getattr(args, k, None) is not None}


def tinygrad_run(args: argparse.Namespace, seed: int) -> dict:
    from tinygrad_rnn.charlm.trainer import TrainConfig, train

    with tempfile.TemporaryDirectory(prefix="ttq_") as out:
        cfg = TrainConfig(data=args.data, max_steps=args.steps, max_minutes=args.minutes, eval_every=args.eval_every,
                          dropout=args.dropout, seed=seed, out=out, quiet=True, **sizes(args))
        t0 = time.perf_counter()
        train(cfg, log=lambda message: None)
        wall = time.perf_counter() - t0
        with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    chars = cfg.batch_size * cfg.seq_len
    curve = [{"step": r["step"], "seconds": r["step"] * chars / r["chars_per_sec"], "val_loss": r["val_loss"]}
             for r in rows if "val_loss" in r]
    return {"curve": curve, "first_train_loss": rows[0]["train_loss"], "wall_seconds": wall}


def torch_run(args: argparse.Namespace, seed: int, pipeline: str) -> dict:
    import torch
    from torch import nn
    from torch.nn import functional as F

    from tinygrad_rnn import backend
    from tinygrad_rnn.charlm.corpus import Batches, Vocab, eval_streams, load_corpus, split, streams, to_ids
    from tinygrad_rnn.charlm.model import CharRNN
    from tinygrad_rnn.charlm.trainer import TrainConfig

    cfg = TrainConfig(data=args.data, dropout=args.dropout, seed=seed, **sizes(args))
    text = load_corpus(cfg.data).text
    vocab = Vocab(text)
    train_ids, val_ids = split(to_ids(vocab, text), cfg.val_frac)
    data = streams(train_ids, cfg.batch_size, cfg.seq_len, "training")
    val = eval_streams(val_ids, cfg.batch_size, cfg.seq_len, "cpu", "validation")
    V, H, T, B = len(vocab), cfg.hidden_size, cfg.seq_len, cfg.batch_size
    init = CharRNN(V, H, cfg.num_layers, "lstm", cfg.dropout, generator=backend.Generator(seed))  # the same weights
    torch.manual_seed(seed)
    model = nn.ModuleDict({"rnn": nn.LSTM(V, H, cfg.num_layers, dropout=cfg.dropout), "head": nn.Linear(H, V)})
    model.load_state_dict({k: torch.from_numpy(v) for k, v in init.state_dict().items()})
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_decay)
    # "streams" is the trainer's own pipeline (with its --epoch-offset); "offset" the same with each
    # epoch's windows starting at a drawn column (the trainer's --epoch-offset random).
    shifted = pipeline == "offset" or cfg.epoch_offset == "random"
    batches, rng = Batches(data, T, offset_seed=seed if shifted else None), np.random.default_rng(seed + 1)
    state, curve, first, spent, step = None, [], None, 0.0, 0
    budget = args.minutes * 60 if args.minutes else None
    while True:
        t0 = time.perf_counter()
        if pipeline == "random":  # random windows of the training text, from a zero state each step
            starts = rng.integers(0, len(train_ids) - T - 1, B)
            win = np.stack([train_ids[s:s + T + 1] for s in starts], axis=1)
            x, y, state = win[:-1], win[1:], None
        else:
            x, y, _, new_epoch = batches.next()
            batches.chunks.carry(None)  # the trainer's windows; PyTorch's state is carried below
            if new_epoch:
                state = None
                sched.step()
            x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
        out, state = model["rnn"](F.one_hot(torch.from_numpy(x), V).float(), state)
        loss = F.cross_entropy(model["head"](out).reshape(-1, V), torch.from_numpy(y).reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        state = tuple(s.detach() for s in state)
        value = loss.item()
        spent += time.perf_counter() - t0
        step += 1
        first = value if first is None else first
        done = (args.steps is not None and step >= args.steps) or (budget is not None and spent >= budget)
        if step % args.eval_every == 0 or done:
            curve.append({"step": step, "seconds": spent, "val_loss": torch_evaluate(model, val, T, V)})
        if done:
            return {"curve": curve, "first_train_loss": first, "torch_threads": torch.get_num_threads()}


def torch_evaluate(model: Any, val: np.ndarray, seq_len: int, V: int) -> float:
    """The trainer's ``evaluate``: every validation character, state carried, eval mode."""
    import torch
    from torch.nn import functional as F

    model.eval()
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for p in range(0, val.shape[1] - 1, seq_len):
            t = min(seq_len, val.shape[1] - 1 - p)
            x = torch.from_numpy(np.ascontiguousarray(val[:, p:p + t].T))
            y = torch.from_numpy(np.ascontiguousarray(val[:, p + 1:p + t + 1].T)).reshape(-1)
            out, state = model["rnn"](F.one_hot(x, V).float(), state)
            total += F.cross_entropy(model["head"](out).reshape(-1, V), y, reduction="sum").item()
            count += t * val.shape[0]
    model.train()
    return total / count


# ---------------------------------------------------------------- summary

def summary(runs: dict[str, dict[int, dict]]) -> dict:
    """Per implementation: mean and seed-to-seed std of the validation loss, mean seconds, at each step;
    and the training time to reach the target loss."""
    out = {}
    for impl, by_seed in runs.items():
        curves = [r["curve"] for r in by_seed.values()]
        steps = sorted(set.intersection(*(set(p["step"] for p in c) for c in curves)))
        points = []
        for s in steps:
            losses = [next(p["val_loss"] for p in c if p["step"] == s) for c in curves]
            secs = [next(p["seconds"] for p in c if p["step"] == s) for c in curves]
            points.append({"step": s, "mean": statistics.fmean(losses),
                           "std": statistics.stdev(losses) if len(losses) > 1 else 0.0,
                           "seconds": statistics.fmean(secs)})
        reach = [time_to(c, TARGET) for c in curves]
        out[impl] = {"points": points, "seconds_to_target": reach,
                     "mean_seconds_to_target": statistics.fmean(reach) if None not in reach else None}
    return out


def time_to(curve: list[dict], target: float) -> float | None:
    """Training seconds at which the validation loss first reaches ``target`` (linear between validations)."""
    prev = None
    for p in curve:
        if p["val_loss"] <= target:
            if prev is None:
                return p["seconds"]
            f = (prev["val_loss"] - target) / (prev["val_loss"] - p["val_loss"])
            return prev["seconds"] + f * (p["seconds"] - prev["seconds"])
        prev = p
    return None


def agreement(summ: dict, a: str, b: str) -> dict:
    pa, pb = summ[a]["points"][-1], summ[b]["points"][-1]
    tol = max(0.05, 2 * max(pa["std"], pb["std"]))
    diff = pa["mean"] - pb["mean"]
    return {"step": pa["step"], "difference": diff, "tolerance": tol, "agree": abs(diff) <= tol}


def plot(summ: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for impl, s in summ.items():
        pts = s["points"]
        mean, std = np.array([p["mean"] for p in pts]), np.array([p["std"] for p in pts])
        for ax, xs in zip(axes, ([p["step"] for p in pts], [p["seconds"] for p in pts])):
            ax.plot(xs, mean, marker="o", label=impl)
            ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
    for ax, label in zip(axes, ("training step", "training seconds")):
        ax.axhline(TARGET, color="grey", linestyle=":", linewidth=1)
        ax.set(xlabel=label, ylabel="validation loss (nats/char)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("char-LSTM, tinygrad-rnn train defaults: mean and seed-to-seed std")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------- command line

def worker_main(args: argparse.Namespace) -> None:
    impl = args.worker
    if impl == "tinygrad":
        result = tinygrad_run(args, args.seed)
    else:
        result = torch_run(args, args.seed, impl.split(":", 1)[1])
    print(json.dumps(result))


def run_worker(impl: str, seed: int, args: argparse.Namespace) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", impl, "--seed", str(seed), "--data", args.data,
            "--eval-every", str(args.eval_every), "--dropout", str(args.dropout)]
    argv += ["--steps", str(args.steps)] if args.steps else ["--minutes", str(args.minutes)]
    for k, v in sizes(args).items():
        argv += ["--" + k.replace("_", "-"), str(v)]
    checkout = str(HERE.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([checkout, *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} seed {seed} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DATA, help=f"the corpus [{DATA}]")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run [2000]")
    parser.add_argument("--minutes", type=float, default=None, help="or: a time budget per run")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--impls", default="tinygrad,torch")
    parser.add_argument("--torch-pipelines", default="streams", help="streams, offset and/or random [streams]")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--epoch-offset", choices=["fixed", "random"], default=None,
                        help="the trainer's --epoch-offset, for both [the trainer's default]")
    parser.add_argument("--eval-every", type=int, default=250)
    for name in SIZES:
        parser.add_argument("--" + name.replace("_", "-"), type=int, help="override the trainer's default")
    parser.add_argument("--json", default="time_to_quality.json")
    parser.add_argument("--plot", default="time_to_quality.png")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps is None and args.minutes is None:
        args.steps = 2000
    if not os.path.isfile(args.data):
        parser.error(f"--data {args.data}: no such file")
    if args.worker:
        worker_main(args)
        return None
    if "torch" in args.impls.split(",") and importlib.util.find_spec("torch") is None:
        parser.error("--impls torch: PyTorch is not installed (pip install torch==2.13.0), "
                     "or run --impls tinygrad alone")
    impls = []
    for name in args.impls.split(","):
        impls += [f"torch:{p}" for p in args.torch_pipelines.split(",")] if name == "torch" else [name]
    seeds = [int(s) for s in args.seeds.split(",")]
    runs: dict[str, dict[int, dict]] = {impl: {} for impl in impls}
    for i, seed in enumerate(seeds):
        order = impls if i % 2 == 0 else impls[::-1]  # interleaved, so drifts in machine load hit both
        for impl in order:
            runs[impl][seed] = run_worker(impl, seed, args)
            last = runs[impl][seed]["curve"][-1]
            print(f"{impl} seed {seed}: val {last['val_loss']:.4f} at step {last['step']} "
                  f"({last['seconds']:.0f} s of training)", flush=True)
    summ = summary(runs)
    report = {"options": vars(args), "runs": runs, "summary": summ, "target": TARGET}
    print_report(summ, report, impls)
    with open(args.json, "w") as fh:
        json.dump(report, fh, indent=1)
    if args.plot:
        plot(summ, args.plot)
    print(f"figures in {args.json}" + (f", plot in {args.plot}" if args.plot else ""))
    return report


def print_report(summ: dict, report: dict, impls: list[str]) -> None:
    first = {impl: [r["first_train_loss"] for r in report["runs"][impl].values()] for impl in impls}
    print("\nvalidation loss (mean +- seed-to-seed std) and mean training seconds, at each validation step")
    for impl in impls:
        print(f"  {impl}: first training losses " + ", ".join(f"{v:.4f}" for v in first[impl]))
        for p in summ[impl]["points"]:
            print(f"    step {p['step']:>6}: {p['mean']:.4f} +- {p['std']:.4f}   {p['seconds']:8.1f} s")
        t = summ[impl]["mean_seconds_to_target"]
        print(f"    time to {TARGET} nats: " + (f"{t:.0f} s (mean)" if t is not None else
                                              f"not reached by every seed ({summ[impl]['seconds_to_target']})"))
    if "tinygrad" in summ and "torch:streams" in summ:
        agree = agreement(summ, "tinygrad", "torch:streams")
        report["agreement"] = agree
        print(f"at step {agree['step']}: tinygrad - torch (same pipeline) = {agree['difference']:+.4f} nats, "
              f"tolerance {agree['tolerance']:.4f}: " + ("agree" if agree["agree"] else "DO NOT AGREE"))
    if not math.isfinite(sum(p["mean"] for s in summ.values() for p in s["points"])):
        print("warning: a run diverged (non-finite loss)")


if __name__ == "__main__":
    main()
