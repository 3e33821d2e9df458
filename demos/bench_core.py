"""Core-engine benchmark: per-op overhead and large-op cost, against raw NumPy and PyTorch.

Run:  python demos/bench_core.py [--repeats 30] [--processes 7]

Three workloads, each forward + backward, timed side by side and interleaved in
one process (medians after warm-up, so machine noise hits every contender alike); the
large ops in several fresh processes, since each process lands its arrays differently:

1. a chain of 1,000 tiny ops, ``h = h * 0.999 + a`` on 4 elements (2,000 ops):
   the cost per op is pure framework overhead;
2. a 64x256 @ 256x1024 matmul;
3. a tanh over 64x1024.

"raw NumPy" is the same computation written by hand (forward and derived backward)
with no autograd at all: what the engine's overhead is measured against. It keeps its
gradients until the next call, as any framework keeps ``.grad``. PyTorch
is included when it is installed (``pip install torch==2.13.0`` gives a CPU build).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

import tinygrad_rnn as tg

# PyTorch's OpenMP threads spin for a while after each op (the default "active" wait policy);
# interleaved with NumPy they would steal the cores OpenBLAS runs on and slow the next contender.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
try:
    import torch
except ImportError:
    torch = None

CHAIN = 1000  # iterations of h = h * 0.999 + a: two ops each


# ---------------------------------------------------------------- chain of tiny ops

def chain_tg() -> None:
    a = tg.tensor(np.ones(4, np.float32), requires_grad=True)
    h = tg.tensor(np.ones(4, np.float32), requires_grad=True)
    for _ in range(CHAIN):
        h = h * 0.999 + a
    h.backward(np.ones(4, np.float32))


def chain_numpy() -> None:
    a = np.ones(4, np.float32)
    h = np.ones(4, np.float32)
    for _ in range(CHAIN):
        h = h * np.float32(0.999) + a
    g = np.ones(4, np.float32)
    ga = np.zeros(4, np.float32)
    for _ in range(CHAIN):  # reverse: d/da accumulates g, d/dh scales it
        ga = ga + g
        g = g * np.float32(0.999)


def chain_torch() -> None:
    a = torch.ones(4, requires_grad=True)
    h = torch.ones(4, requires_grad=True)
    for _ in range(CHAIN):
        h = h * 0.999 + a
    h.backward(torch.ones(4))


# ---------------------------------------------------------------- large ops

def make_large(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"x": rng.standard_normal((64, 256), dtype=np.float32),
            "w": rng.standard_normal((256, 1024), dtype=np.float32),
            "g": rng.standard_normal((64, 1024), dtype=np.float32),
            "t": rng.standard_normal((64, 1024), dtype=np.float32)}


def matmul_tg(d: dict) -> Callable[[], None]:
    x, w = tg.Tensor(d["x"], requires_grad=True), tg.Tensor(d["w"], requires_grad=True)

    def run() -> None:
        x.grad = w.grad = None
        (x @ w).backward(d["g"])
    return run


def matmul_numpy(d: dict) -> Callable[[], None]:
    x, w, g = d["x"], d["w"], d["g"]
    grads: dict[str, np.ndarray] = {}  # kept until the next call, as a framework keeps .grad

    def run() -> None:
        grads.clear()
        x @ w
        grads["x"] = g @ w.T
        grads["w"] = x.T @ g
    return run


def matmul_torch(d: dict) -> Callable[[], None]:
    x = torch.from_numpy(d["x"]).requires_grad_()
    w = torch.from_numpy(d["w"]).requires_grad_()
    g = torch.from_numpy(d["g"])

    def run() -> None:
        x.grad = w.grad = None
        (x @ w).backward(g)
    return run


def tanh_tg(d: dict) -> Callable[[], None]:
    t = tg.Tensor(d["t"], requires_grad=True)

    def run() -> None:
        t.grad = None
        t.tanh().backward(d["g"])
    return run


def tanh_numpy(d: dict) -> Callable[[], None]:
    t, g = d["t"], d["g"]
    grads: dict[str, np.ndarray] = {}

    def run() -> None:
        grads.clear()
        y = np.tanh(t)
        grads["t"] = g * (1 - y * y)
    return run


def tanh_torch(d: dict) -> Callable[[], None]:
    t = torch.from_numpy(d["t"]).requires_grad_()
    g = torch.from_numpy(d["g"])

    def run() -> None:
        t.grad = None
        t.tanh().backward(g)
    return run


# ---------------------------------------------------------------- timing

def interleaved_medians(contenders: dict[str, Callable[[], None]], repeats: int, warmup: int = 3,
                        seed: int = 0) -> dict:
    """Median seconds per call of each contender, interleaved so that drift and noise hit all alike.

    Each round visits the contenders in a fresh random order, and each one runs twice in a row
    with only the second call timed: a call must not pay for what the contender before it left
    in the caches and thread pools (after a PyTorch call, NumPy's next large op runs up to 2x
    slower, which with a fixed order always lands on the same contender).
    """
    rng = random.Random(seed)
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for _ in range(repeats):
        rng.shuffle(names)
        for name in names:
            fn = contenders[name]
            fn()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def report(title: str, medians: dict[str, float], unit: str, scale: float,
           spread: dict[str, tuple[float, float]] | None = None, ratio: dict[str, float] | None = None) -> None:
    """One table; with ``ratio``, the ratios are medians over processes (their range in brackets)."""
    print(f"\n{title}")
    base = medians["tinygrad_rnn"]
    for name, t in medians.items():
        text = ""
        if name != "tinygrad_rnn":
            r = ratio[name] if ratio else base / t
            text = f"   tinygrad_rnn / {name} = {r:.2f}x time"
            if spread:
                text += f" (processes: {spread[name][0]:.2f}x to {spread[name][1]:.2f}x)"
        print(f"  {name:<14} {t * scale:10.1f} {unit}{text}")


LARGE = {"matmul 64x256 @ 256x1024, forward + backward": (matmul_tg, matmul_numpy, matmul_torch),
         "tanh over 64x1024, forward + backward": (tanh_tg, tanh_numpy, tanh_torch)}


def large_op_medians(repeats: int) -> dict[str, dict[str, float]]:
    """Interleaved medians of every large-op workload in this process: {title: {contender: s}}."""
    data = make_large(np.random.default_rng(0))
    out = {}
    for title, makers in LARGE.items():
        contenders = {"tinygrad_rnn": makers[0](data), "raw NumPy": makers[1](data)}
        if torch:
            contenders["PyTorch"] = makers[2](data)
        out[title] = interleaved_medians(contenders, repeats, warmup=30)
    return out


def over_processes(processes: int, repeats: int) -> dict[str, tuple[dict, dict]]:
    """The large-op medians measured in several fresh processes: {title: (medians, ratio ranges)}.

    A large op's time depends on where its arrays land in physical memory (cache-set
    conflicts): here the same tanh runs at 40 or at 48 us depending on the process, and
    stays there for the life of the process. One process alone can land either way, so
    each one measures and the median over processes is reported, with the range.
    """
    cmd = [sys.executable, __file__, "--worker", "--repeats", str(repeats)]
    runs = [json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            for _ in range(processes)]
    result = {}
    for title in LARGE:
        rows = [r[title] for r in runs]
        medians = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        ratios = {k: sorted(r["tinygrad_rnn"] / r[k] for r in rows) for k in rows[0] if k != "tinygrad_rnn"}
        result[title] = (medians, {k: (v[0], v[-1]) for k, v in ratios.items()},
                         {k: statistics.median(v) for k, v in ratios.items()})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--processes", type=int, default=7, help="fresh processes for the large ops [7]")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one process's large-op medians
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(large_op_medians(args.repeats * 3)))
        return
    print(f"tinygrad_rnn {tg.__version__}, NumPy {np.__version__}"
          + (f", PyTorch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", PyTorch absent"))

    chain = {"tinygrad_rnn": chain_tg, "raw NumPy": chain_numpy}
    if torch:
        chain["PyTorch"] = chain_torch
    report(f"chain of {2 * CHAIN} tiny ops (h = h * 0.999 + a, 4 elements), forward + backward, per op",
           interleaved_medians(chain, args.repeats), "us/op", 1e6 / (2 * CHAIN))

    for title, (medians, spread, ratio) in over_processes(args.processes, args.repeats).items():
        report(f"{title}, median over {args.processes} processes", medians, "us", 1e6, spread, ratio)


if __name__ == "__main__":
    main()
