"""Where one char-LM training step spends its time: the replayed step by instruction, or the engine's by op.

Run:  python demos/profile_step.py [S|M|L] [--model lstm|gru|rnn] [--fused] [--steps 4] [--no-replay] [--detail]

By default the step runs as the trainer runs it: forward and backward captured and replayed
(``tinygrad_rnn.replay``). Every instruction of the program is timed and the times are summed
by kind: matrix products, elementwise work of the forward and of the backward rules, gradient
sums, copies, the NumPy work around the ops; then the replay's own cost (its loop, copying
arguments in and results out) and the optimizer with gradient clipping.

With ``--no-replay`` the step runs through the engine: every Function subclass's ``forward`` and
``backward`` is wrapped with a timer, and so are the engine's gradient sums (``add_grads``) and
weight-gradient products (``OuterGrad.value``); what is left is the engine itself (recording,
the reverse walk, Python) and the optimizer.

Timers add a little time of their own, so the step runs slower than in ``tinygrad-rnn bench``;
the split is what this is for.
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Callable, Iterator
from typing import Any

from tinygrad_rnn import autograd, gradsum
from tinygrad_rnn.autograd import Function
from tinygrad_rnn.charlm.bench import CAPTURE_CALLS, PRESETS, BenchConfig, TrainStep, synthetic_batches

SPENT: collections.Counter[str] = collections.Counter()


def timed(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[label] += time.perf_counter() - t0
    return wrapper


def subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def instrument() -> None:
    """Wrap every op's forward and backward (where the class defines them) and the engine's sums."""
    for cls in set(subclasses(Function)):
        for kind in ("forward", "backward"):
            if kind in vars(cls):
                setattr(cls, kind, staticmethod(timed(f"{kind:<8} {cls.__name__}", vars(cls)[kind].__func__)))
    autograd.add_grads = timed("backward (sums of gradients)", gradsum.add_grads)
    # The wrapper's argument tuple holds one more reference to each sum; without this the
    # engine would never add in place (gradsum._sole) and the sums would look dearer than they are.
    gradsum._SOLE_REFS += 1
    gradsum.OuterGrad.value = timed("backward (weight-gradient products)", gradsum.OuterGrad.value)


def kind(label: str) -> str:
    """The part of the step an instruction of the replayed program belongs to."""
    if "matmul" in label or label == "weight gradient":
        return "matrix products (GEMM)"
    if label.startswith("sum") or label == "weight gradient + dense":
        return "gradient sums (into buffers)"
    if label.startswith(("raw", "draw", "guard")):
        return "NumPy work around the ops (one-hot, targets, masks, guards)"
    if label in ("leaf gradient", "weight gradient: concat") or "copy" in label or label.startswith("Contiguous"):
        return "copies (weight-gradient factors, W^T, leaf gradients)"
    if label.endswith((" backward", " rule", " sum_to")):
        return "elementwise backward (the rules)"
    if label == "backward starts":
        return "replay (loop, copies in and out)"
    return "elementwise forward (the ops)"


def profile_replay(cfg: BenchConfig, steps: int, detail: bool) -> None:
    step, batches = TrainStep(cfg), synthetic_batches(cfg)
    x, y = next(batches)
    for _ in range(CAPTURE_CALLS + 1):  # capture, check, and warm the allocator and BLAS
        step(x, y)
    program = step.forward_backward.programs[-1]
    plain = []
    for _ in range(steps):  # the step as the trainer runs it, without timers
        t0 = time.perf_counter()
        step(x, y)
        plain.append(time.perf_counter() - t0)
    program.profile = {}
    t0, opt = time.perf_counter(), 0.0
    for _ in range(steps):
        step(x, y)
        opt += step.times[2]
    total = (time.perf_counter() - t0) / steps * 1e3
    labels = {k: v / steps * 1e3 for k, v in program.profile.items()}
    parts: collections.Counter[str] = collections.Counter()
    for label, ms in labels.items():
        parts[kind(label)] += ms
    parts["optimizer and gradient clipping"] += opt / steps * 1e3
    parts["replay (loop, copies in and out)"] += total - sum(parts.values())
    print(f"config {cfg.name} ({cfg.model}{', fused' if cfg.fused else ''}, replayed): "
          f"{sorted(plain)[len(plain) // 2] * 1e3:.1f} ms per step (median of {steps}); with the timers "
          f"{total:.1f} ms, split as follows; {program.instructions} instructions, {program.ops} ops recorded "
          f"when captured, {program.nbytes / 1e6:.1f} MB of buffers")
    for part, ms in parts.most_common():
        print(f"  {part:<60} {ms:8.1f} ms  {ms / total:6.1%}")
    if detail:
        print("by instruction label:")
        for label, ms in sorted(labels.items(), key=lambda kv: -kv[1]):
            print(f"  {label:<60} {ms:8.2f} ms")


def profile_engine(cfg: BenchConfig, steps: int) -> None:
    step, batches = TrainStep(cfg), synthetic_batches(cfg)
    instrument()
    x, y = next(batches)
    for _ in range(2):  # warm-up: Adam's moments, the allocator, BLAS
        step(x, y)
    SPENT.clear()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    total = (time.perf_counter() - t0) / steps * 1e3
    print(f"config {cfg.name} ({cfg.model}{', fused' if cfg.fused else ''}): {total:.1f} ms per step, "
          f"mean of {steps}")
    shown = 0.0
    for label, seconds in SPENT.most_common():
        ms = seconds / steps * 1e3
        if ms >= 0.05:
            print(f"  {label:<42} {ms:8.1f} ms  {ms / total:6.1%}")
        shown += ms
    print(f"  {'engine, Python, optimizer (the rest)':<42} {total - shown:8.1f} ms  {(total - shown) / total:6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="M", choices=sorted(PRESETS))
    parser.add_argument("--model", default="lstm", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--fused", action="store_true", help="LSTM: the fused cell op")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--no-replay", dest="replay", action="store_false", help="profile the engine's path")
    parser.add_argument("--detail", action="store_true", help="replay: also every instruction label")
    args = parser.parse_args()
    cfg = BenchConfig.preset(args.config, model=args.model, fused=args.fused, replay=args.replay)
    if args.replay:
        profile_replay(cfg, args.steps, args.detail)
    else:
        profile_engine(cfg, args.steps)


if __name__ == "__main__":
    main()
