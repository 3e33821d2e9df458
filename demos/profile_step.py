"""Where one char-LM training step spends its time: per op, forward and backward, and the engine.

Run:  python demos/profile_step.py [S|M|L] [--model lstm|gru|rnn] [--fused] [--steps 4]

Every Function subclass's ``forward`` and ``backward`` is wrapped with a timer, and so are the
engine's gradient sums (``add_grads``) and weight-gradient products (``OuterGrad.value``).
What is left of the step is the engine itself (recording, the reverse walk, Python) and the
optimizer. The timers add a little time of their own, so the step runs slower than in
``tinygrad-rnn bench``; the split is what this is for.
"""

from __future__ import annotations

import argparse
import collections
import time
from collections.abc import Callable, Iterator
from typing import Any

from tinygrad_rnn import autograd, gradsum
from tinygrad_rnn.autograd import Function
from tinygrad_rnn.charlm.bench import PRESETS, BenchConfig, TrainStep, synthetic_batches

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="M", choices=sorted(PRESETS))
    parser.add_argument("--model", default="lstm", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--fused", action="store_true", help="LSTM: the fused cell op")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    cfg = BenchConfig.preset(args.config, model=args.model, fused=args.fused)
    step, batches = TrainStep(cfg), synthetic_batches(cfg)
    instrument()
    x, y = next(batches)
    for _ in range(2):  # warm-up: Adam's moments, the allocator, BLAS
        step(x, y)
    SPENT.clear()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step(x, y)
    total = (time.perf_counter() - t0) / args.steps * 1e3
    print(f"config {args.config} ({args.model}{', fused' if args.fused else ''}): {total:.1f} ms per step, "
          f"mean of {args.steps}")
    shown = 0.0
    for label, seconds in SPENT.most_common():
        ms = seconds / args.steps * 1e3
        if ms >= 0.05:
            print(f"  {label:<42} {ms:8.1f} ms  {ms / total:6.1%}")
        shown += ms
    print(f"  {'engine, Python, optimizer (the rest)':<42} {total - shown:8.1f} ms  {(total - shown) / total:6.1%}")


if __name__ == "__main__":
    main()
