"""Part b of ``demos/gpu_check.py``: the fused cell ops on a device against their NumPy twins,
the composed cells on the same device and the composed cells in float64 on the CPU, values
and gradients, with the largest errors per cell, dtype and size; and their time per step.

On cuda the ops run their CUDA kernels (``tinygrad_rnn/ops/cuda_kernels.py``); on the CPU
the twins (then the "kernel" column is the twin: a plumbing check).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn import backend
from tinygrad_rnn.ops import fused
from tinygrad_rnn.ops.fused import GRUCellFused, LSTMCellFused, gru_cell_composed, lstm_cell_composed

TOL = {"float32": {"rtol": 2e-5, "atol": 1e-6}, "float64": {"rtol": 1e-10, "atol": 1e-12}}  # tests/conftest.py's


CELLS = {"lstm": (LSTMCellFused.apply, lstm_cell_composed), "gru": (GRUCellFused.apply, gru_cell_composed)}


def draw(cell: str, B: int, H: int, seed: int) -> list[np.ndarray]:
    """The cell's inputs (LSTM: a, c; GRU: gi, gh, h) and an upstream gradient, last; fresh random values."""
    rng = np.random.default_rng(seed)
    if cell == "lstm":
        return [rng.uniform(-3, 3, (B, 4 * H)), rng.uniform(-2, 2, (B, H)), rng.standard_normal((2, B, H))]
    return [rng.uniform(-3, 3, (B, 3 * H)), rng.uniform(-3, 3, (B, 3 * H)), rng.uniform(-1, 1, (B, H)),
            rng.standard_normal((B, H))]


def run(fn: Any, inputs: list[np.ndarray], dtype: str, device: str, kernels: bool = True) -> tuple[list, bool]:
    """Value and input gradients of ``fn`` (NumPy arrays), and whether a fused op ran its CUDA kernel."""
    fused.USE_CUDA_KERNELS = kernels
    try:
        *xs, up = [tg.tensor(x.astype(dtype), device=device) for x in inputs]
        for x in xs:
            x.requires_grad_()
        out = fn(*xs)
        grads = tg.grad(out, xs, up)
        return [out.numpy()] + [g.numpy() for g in grads], bool(getattr(out.node, "kernel", False))
    finally:
        fused.USE_CUDA_KERNELS = True


def errors(got: list[np.ndarray], want: list[np.ndarray]) -> tuple[float, float]:
    """Largest absolute error and largest normwise relative error (max|a - b| / max|b|) over the arrays."""
    abs_err = max(float(np.abs(a - b).max()) for a, b in zip(got, want))
    rel_err = max(float(np.abs(a - b).max()) / max(float(np.abs(b).max()), 1e-300) for a, b in zip(got, want))
    return abs_err, rel_err


def close(got: list[np.ndarray], want: list[np.ndarray], dtype: str) -> bool:
    return all(np.allclose(a, b, **TOL[dtype]) for a, b in zip(got, want))


def step_time(fn: Any, inputs: list[np.ndarray], device: str, kernels: bool, reps: int) -> float:
    """Median microseconds of one forward and backward, device work included."""
    fused.USE_CUDA_KERNELS = kernels
    try:
        *xs, up = [tg.tensor(x.astype("float32"), device=device) for x in inputs]
        for x in xs:
            x.requires_grad_()
        times = []
        for _ in range(reps + 3):  # 3 warm-up calls: compilation, memory pool
            backend.synchronize(device)
            t0 = time.perf_counter()
            tg.grad(fn(*xs), xs, up)
            backend.synchronize(device)
            times.append(time.perf_counter() - t0)
        return statistics.median(times[3:]) * 1e6
    finally:
        fused.USE_CUDA_KERNELS = True


def check(device: str, quick: bool, budget: float) -> dict[str, Any]:
    from gpu_parts import section, table

    deadline = time.perf_counter() + budget - 5
    sizes = [(3, 5)] if quick else [(32, 128), (64, 512), (64, 1024)]
    rows, bad, skipped, worst = [], [], 0, {"float32": 0.0, "float64": 0.0}
    fmt = lambda e: f"{e[0]:.1e} / {e[1]:.1e}"
    for cell, (op, composed) in CELLS.items():
        for dtype in ("float32", "float64"):
            for B, H in sizes:
                if time.perf_counter() > deadline:
                    skipped += 1
                    continue
                inputs = draw(cell, B, H, seed=B * H + len(cell))
                kern, ran_kernel = run(op, inputs, dtype, device)
                twin, _ = run(op, inputs, dtype, device, kernels=False)
                comp, _ = run(composed, inputs, dtype, device)
                ref, _ = run(composed, inputs, "float64", "cpu")
                ok = close(kern, twin, dtype) and close(kern, comp, dtype) and (ran_kernel or device == "cpu")
                worst[dtype] = max(worst[dtype], errors(kern, ref)[1])
                rows.append([cell, dtype, f"{B}x{H}", "CUDA kernel" if ran_kernel else "NumPy twin",
                             fmt(errors(kern, twin)), fmt(errors(kern, comp)), fmt(errors(kern, ref)),
                             "ok" if ok else "FAILED"])
                if not ok:
                    bad.append(f"{cell} {dtype} {B}x{H}")
    md = ("Errors as largest absolute / largest normwise relative (max|a-b| / max|b|), over the value and "
          "every input gradient; a case passes when the op matches its twin and the composed cell on the "
          f"device within the tests' tolerances ({TOL}).\n\n")
    md += table(["cell", "dtype", "B x H", "ran", "vs twin (device)", "vs composed (device)",
                 "vs float64 composed (cpu)", "check"], rows)
    B, H = sizes[-1]
    timing = []
    for cell, (op, composed) in CELLS.items():
        if time.perf_counter() > deadline - 5:
            break
        inputs, reps = draw(cell, B, H, seed=7), 3 if quick else 30
        timing.append([cell, f"{B}x{H}", *(f"{step_time(fn, inputs, device, k, reps):,.0f}"
                                             for fn, k in ((op, True), (op, False), (composed, True)))])
    if timing:
        md += "\nMicroseconds per forward + backward of one cell step (float32, median):\n\n"
        md += table(["cell", "B x H", "fused op", "NumPy twin", "composed cell"], timing)
    if skipped:
        md += f"\n{skipped} cases were not run: the part's time budget ran out.\n"
    summary = (f"{len(rows)} cases, {len(bad)} failed" + (f" ({', '.join(bad)})" if bad else "")
               + f"; worst relative error against float64: float32 {worst['float32']:.1e}, "
               f"float64 {worst['float64']:.1e}")
    return section("ok" if rows and not bad and not skipped else "failed", summary, md)
