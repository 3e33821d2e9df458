"""Does a training step cost the same at step 1,000 as at step 100? (no leak, no growing structures)

Run:  python demos/long_run.py [--config S] [--steps 1000]

Prints the median step time over the first and the last 100 steps and the traced
Python/NumPy memory after each block of 100 steps (tracemalloc).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

from tinygrad_rnn.charlm.bench import BenchConfig, TrainStep, synthetic_batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="S", choices=["S", "M", "L"])
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    cfg = BenchConfig.preset(args.config)
    step, batches = TrainStep(cfg), synthetic_batches(cfg)
    tracemalloc.start()
    times, memory = [], []
    for i in range(1, args.steps + 1):
        x, y = next(batches)
        t0 = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - t0)
        if i % 100 == 0:
            memory.append(tracemalloc.get_traced_memory()[0] / 2**20)
    first, last = statistics.median(times[:100]), statistics.median(times[-100:])
    print(f"config {args.config}: median step {first * 1e3:.2f} ms (steps 1-100) vs {last * 1e3:.2f} ms "
          f"(last 100): ratio {last / first:.3f}")
    print("traced memory after every 100 steps (MB): " + " ".join(f"{m:.1f}" for m in memory))


if __name__ == "__main__":
    main()
