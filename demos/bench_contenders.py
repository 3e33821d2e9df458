"""The contenders of ``demos/bench_lstm.py``, and the worker that times one of them in a process of its own.

Every contender trains the same char-RNN (one-hot V=65 -> recurrent layers -> Linear -> mean
cross-entropy -> backward -> clip to norm 5 -> Adam) from the same initial weights on the same
batches, carrying the detached state from step to step, each with its own default settings:

* ``tinygrad``: tinygrad_rnn's step as the trainer runs it (the composed cell, captured and
  replayed: ``tinygrad_rnn.charlm.bench.TrainStep``); ``tinygrad-plain``: the same without replay;
  ``tinygrad-fused``: with the fused LSTM cell op;
* ``torch``: PyTorch's ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` and ``nn.Linear``, as users get it
  (its default threads and OpenMP settings);
* ``torch-composed``: the same model built from ``nn.Linear`` ops in a Python loop, the way
  tinygrad_rnn composes its cell;
* ``numpy``: the LSTM written by hand in NumPy (``demos/numpy_lstm.py``);
* ``floor``: not a contender but the GEMM floor: every matrix product of tinygrad_rnn's step,
  timed alone with NumPy (CuPy on the GPU) and summed (``tinygrad_rnn.charlm.bench.gemm_floor``).

The NumPy-based processes (tinygrad, numpy, floor) call ``tinygrad_rnn.tune_allocator()`` first,
as the ``tinygrad-rnn`` command does.

Run as ``python demos/bench_contenders.py CONTENDER SPEC.json``: it prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

Step = Callable[[np.ndarray, np.ndarray], float]  # (x (T, B), y (T, B)) ids -> loss of that step
TINYGRAD = ("tinygrad", "tinygrad-plain", "tinygrad-fused")


# ---------------------------------------------------------------- tinygrad_rnn

def tinygrad_step(cfg: Any, weights: dict, name: str) -> tuple[Step, Any]:
    from tinygrad_rnn.charlm.bench import TrainStep

    import dataclasses

    from tinygrad_rnn import backend

    cfg = dataclasses.replace(cfg, fused=name == "tinygrad-fused", replay=name != "tinygrad-plain")
    step = TrainStep(cfg)
    step.model.load_state_dict(weights)
    step.model.to(cfg.device)
    dev = cfg.device
    return (lambda x, y: step(backend.to_device(x, dev), backend.to_device(y.reshape(-1), dev))), step


# ---------------------------------------------------------------- PyTorch

def torch_modules(cfg: Any, composed: bool) -> Any:
    import torch
    from torch import nn

    class Composed(nn.Module):
        """``nn.LSTM``/``GRU``/``RNN``'s model from ``nn.Linear`` ops in a Python loop over time steps
        (the input projection of all steps in one Linear, as in tinygrad_rnn)."""

        def __init__(self) -> None:
            super().__init__()
            g = {"lstm": 4, "gru": 3, "rnn": 1}[cfg.model] * cfg.hidden
            self.ih = nn.ModuleList(nn.Linear(65 if k == 0 else cfg.hidden, g) for k in range(cfg.layers))
            self.hh = nn.ModuleList(nn.Linear(cfg.hidden, g) for _ in range(cfg.layers))

        def forward(self, x: Any, state: Any) -> Any:
            T, B, H = x.shape[0], x.shape[1], cfg.hidden
            zeros = x.new_zeros(cfg.layers, B, H)
            if cfg.model == "lstm":
                h0, c0 = state if state is not None else (zeros, zeros)
            else:
                h0, c0 = (state if state is not None else zeros), None
            hs, cs = [], []
            for k in range(cfg.layers):
                xw = self.ih[k](x)
                h, c, out = h0[k], (c0[k] if c0 is not None else None), []
                for t in range(T):
                    if cfg.model == "lstm":
                        i, f, gg, o = (xw[t] + self.hh[k](h)).chunk(4, 1)
                        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
                        h = torch.sigmoid(o) * torch.tanh(c)
                    elif cfg.model == "gru":
                        gi, gh = xw[t], self.hh[k](h)
                        r, z = torch.sigmoid(gi[:, :2 * H] + gh[:, :2 * H]).chunk(2, 1)
                        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
                        h = n + z * (h - n)
                    else:
                        h = torch.tanh(xw[t] + self.hh[k](h))
                    out.append(h)
                x = torch.stack(out)
                hs.append(h)
                cs.append(c)
            final = (torch.stack(hs), torch.stack(cs)) if cfg.model == "lstm" else torch.stack(hs)
            return x, final

        def load(self, weights: dict) -> None:
            for k in range(cfg.layers):
                self.ih[k].weight.data.copy_(weights[f"rnn.weight_ih_l{k}"])
                self.ih[k].bias.data.copy_(weights[f"rnn.bias_ih_l{k}"])
                self.hh[k].weight.data.copy_(weights[f"rnn.weight_hh_l{k}"])
                self.hh[k].bias.data.copy_(weights[f"rnn.bias_hh_l{k}"])

    layer = Composed() if composed else {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cfg.model](
        65, cfg.hidden, cfg.layers)
    return nn.ModuleDict({"rnn": layer, "head": nn.Linear(cfg.hidden, 65)})


def torch_step(cfg: Any, weights: dict, composed: bool) -> tuple[Step, Any]:
    import torch
    from torch import nn
    from torch.nn import functional as F

    dtype, dev = getattr(torch, cfg.dtype), cfg.device
    model = torch_modules(cfg, composed).to(dtype)
    tensors = {k: torch.from_numpy(v) for k, v in weights.items()}
    if composed:
        model["rnn"].load(tensors)
        model["head"].load_state_dict({"weight": tensors["head.weight"], "bias": tensors["head.bias"]})
    else:
        model.load_state_dict(tensors)
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    carried: list = [None]

    def step(x: np.ndarray, y: np.ndarray) -> float:
        x, y = torch.as_tensor(x, device=dev), torch.as_tensor(y, device=dev)
        out, state = model["rnn"](F.one_hot(x, 65).to(dtype), carried[0])
        loss = F.cross_entropy(model["head"](out).reshape(-1, 65), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        carried[0] = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        return loss.item()
    return step, model


# ---------------------------------------------------------------- NumPy by hand

def numpy_step(weights: dict) -> tuple[Step, Any]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from numpy_lstm import NumpyCharLSTM

    model = NumpyCharLSTM(weights, lr=2e-3, grad_clip=5.0)
    return model.step, model


# ---------------------------------------------------------------- memory

def rss_bytes() -> int:
    """This process's resident memory now (Linux), or 0."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def peak_rss_bytes() -> int:
    """The most memory this process has held resident (its high-water mark)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def traced_step_bytes(step: Step, x: np.ndarray, y: np.ndarray, kept: int) -> int:
    """Bytes one step allocates at its peak (tracemalloc sees NumPy's allocations), plus ``kept``:
    buffers the contender holds between steps and reuses (a replayed program's, the hand LSTM's)."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    step(x, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak - base + kept


def gpu_peak(contender: str, run: Callable[[], Any]) -> int:
    """GPU bytes one step needs: PyTorch's allocator peak, or the CuPy pool's size (its high-water mark)."""
    if contender.startswith("torch"):
        import torch

        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    import cupy

    pool = cupy.get_default_memory_pool()
    run()
    cupy.cuda.get_current_stream().synchronize()
    return int(pool.total_bytes())


# ---------------------------------------------------------------- the worker

def work(contender: str, spec: dict) -> dict:
    """Build one contender, check its first loss, warm up, time ``steps`` steps; one result dict."""
    from tinygrad_rnn.charlm.bench import BenchConfig, gemm_floor

    cfg = BenchConfig(**spec["config"])
    if contender == "floor":
        floor = gemm_floor(cfg)
        return {"chars_per_sec": floor.chars_per_sec, "seconds": floor.seconds,
                "gemms": [{k: (v if k != "dtype" else str(v)) for k, v in g.items()} for g in floor.gemms]}
    data = np.load(spec["data"])
    weights = {k[2:]: data[k] for k in data.files if k.startswith("w:")}
    batches = data["batches"]  # (n, T + 1, B): the check batch, the warm-up batches, the timed ones
    if contender in TINYGRAD:
        step, obj = tinygrad_step(cfg, weights, contender)
    elif contender in ("torch", "torch-composed"):
        step, obj = torch_step(cfg, weights, contender == "torch-composed")
    elif contender == "numpy":
        step, obj = numpy_step(weights)
    else:
        raise ValueError(f"unknown contender {contender!r}")
    rss_setup = rss_bytes()
    xs = [(b[:-1], b[1:]) for b in batches]
    first_loss = step(*xs[0])
    for x, y in xs[1:1 + cfg.warmup]:
        step(x, y)
    times = []
    for x, y in xs[1 + cfg.warmup:]:
        t0 = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - t0)
    result = {"chars_per_sec": cfg.batch * cfg.seq_len / statistics.median(times), "first_loss": first_loss,
              "step_seconds": times, "rss_peak_delta": peak_rss_bytes() - rss_setup}
    x, y = xs[-1]
    if cfg.device == "cuda":
        result["peak_bytes"], result["peak_kind"] = gpu_peak(contender, lambda: step(x, y)), "gpu allocator"
    elif contender.startswith("torch"):
        result["peak_bytes"], result["peak_kind"] = result["rss_peak_delta"], "rss (process peak - after setup)"
    else:
        kept = 0
        if contender == "numpy":
            kept = obj.buffer_bytes()
        elif obj.replayed:
            kept = sum(p.nbytes for p in obj.forward_backward.programs)
        result["peak_bytes"], result["peak_kind"] = traced_step_bytes(step, x, y, kept), "tracemalloc"
    if contender in TINYGRAD and obj.forward_backward is not None:
        result["replayed"] = obj.forward_backward.calls["replayed"]
        result["replay_fallbacks"] = dict(obj.forward_backward.reasons)
    if contender.startswith("torch"):
        import torch

        result["torch_threads"] = torch.get_num_threads()
        result["torch"] = torch.__version__
    return result


def main() -> None:
    contender, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as fh:
        spec = json.load(fh)
    if contender != "torch" and contender != "torch-composed":
        # The NumPy contenders run with the allocator setting the tinygrad-rnn command uses (and the
        # docs recommend: tinygrad_rnn.tune_allocator()), all of them, so that none has an advantage
        # there; PyTorch has an allocator of its own.
        import tinygrad_rnn

        tinygrad_rnn.tune_allocator()
    print(json.dumps(work(contender, spec)))


if __name__ == "__main__":
    main()
