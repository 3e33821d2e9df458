"""Benchmark of one char-LM training step: ``bench(BenchConfig(...))``, behind ``tinygrad-rnn bench``.

The step is the trainer's: one-hot characters (V = 65 symbols, random ids from a seeded
generator) -> recurrent layers -> Linear(H, 65) -> cross-entropy -> backward -> gradient
clipping and an Adam step, with the hidden state carried over, detached, as in truncated
BPTT. Times are medians of wall-clock ``perf_counter`` readings over the timed steps; the
warm-up steps before them are left out (the first steps allocate Adam's moments and warm
the allocator and BLAS). Peak memory is measured on one extra step with ``tracemalloc``
(which sees NumPy's allocations, and slows the step, so never during the timed ones).

>>> r = bench(BenchConfig(hidden=8, batch=2, seq_len=3, steps=2, warmup=1))
>>> r.chars_per_sec > 0 and r.ops_per_step > 0
True
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .. import autograd, backend
from ..backend import Generator
from ..optim import Adam
from .model import KINDS, CharRNN
from .trainer import TrainConfig, update

VOCAB = 65  # the alphabet size of the classic char-rnn corpora (tiny-shakespeare)
PRESETS: dict[str, dict[str, int]] = {
    "S": {"hidden": 128, "layers": 1, "batch": 32, "seq_len": 64},
    "M": {"hidden": 256, "layers": 2, "batch": 64, "seq_len": 100},
    "L": {"hidden": 512, "layers": 2, "batch": 64, "seq_len": 100},
}
LR, GRAD_CLIP = TrainConfig.lr, TrainConfig.grad_clip  # the trainer's defaults


@dataclass
class BenchConfig:
    """One benchmark: model sizes, where it runs, and how many steps are timed."""

    name: str = "custom"
    hidden: int = 128
    layers: int = 1
    batch: int = 32
    seq_len: int = 64
    model: str = "lstm"
    device: str = "cpu"
    dtype: str = "float32"
    steps: int = 10
    warmup: int = 2
    seed: int = 0
    fused: bool = False  # LSTM: the fused cell op instead of the composed cell

    @classmethod
    def preset(cls, preset: str, /, **overrides: Any) -> BenchConfig:
        """Config ``S``, ``M`` or ``L``; ``overrides`` (not None) replace any field.

        A preset whose sizes were overridden is named with a star (``S*``), unless ``name`` is given.
        """
        if preset.upper() not in PRESETS:
            raise ValueError(f"bench: unknown config {preset!r}; choose from {', '.join(PRESETS)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        sizes = PRESETS[preset.upper()]
        changed = any(k in sizes and v != sizes[k] for k, v in given.items())
        return cls(**(sizes | {"name": preset.upper() + ("*" if changed else "")} | given))

    def validate(self) -> None:
        for field in ("hidden", "layers", "batch", "seq_len", "steps"):
            if getattr(self, field) < 1:
                raise ValueError(f"bench: --{field.replace('_', '-')} must be >= 1")
        if self.warmup < 0:
            raise ValueError("bench: --warmup must be >= 0")
        if self.fused and self.model != "lstm":
            raise ValueError("bench: --fused exists for --model lstm only")
        if self.model not in KINDS:
            raise ValueError(f"bench: --model {self.model!r}: choose one of {', '.join(KINDS)}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError("bench: --dtype must be float32 or float64")
        backend.check_device(self.device)


@dataclass
class BenchResult:
    """Medians over the timed steps. Memory is host (NumPy) memory: None on the GPU."""

    config: BenchConfig
    chars_per_sec: float
    step_s: float
    forward_s: float
    backward_s: float
    optimizer_s: float
    ops_per_step: int
    ops_each_step: list[int]
    losses: list[float]
    peak_mb: float | None
    bytes_per_time_step: float | None


class TrainStep:
    """The model, optimizer and carried state; ``step(x, y)`` runs one step and returns its loss.

    After a call, ``times`` holds (forward, backward, optimizer) seconds and ``ops`` the
    number of nodes the forward recorded on the tape (the backward runs one rule per node).
    """

    def __init__(self, cfg: BenchConfig) -> None:
        self.cfg = cfg
        # Initialised on the CPU and then moved, as the trainer does: same weights on every device.
        self.model = CharRNN(VOCAB, cfg.hidden, cfg.layers, cfg.model, dtype=cfg.dtype,
                             generator=Generator(cfg.seed), fused=cfg.fused)
        self.model.to(cfg.device)
        self.params = list(self.model.parameters())
        self.optimizer = Adam(self.params, lr=LR)
        self.state: Any = None
        self.times = (0.0, 0.0, 0.0)
        self.ops = 0

    def __call__(self, x: Any, y: Any) -> float:
        """The trainer's step (:func:`~tinygrad_rnn.charlm.trainer.update`), with a timer after each phase."""
        clock, marks = time.perf_counter, []

        def phase(name: str) -> None:
            if name == "forward":
                self.ops = next(autograd._sequence) - first - 1
            backend.synchronize(self.cfg.device)
            marks.append(clock())

        t0 = clock()
        first = next(autograd._sequence)  # the tape's clock: its numbers stamp the recorded nodes
        loss, self.state = update(self.model, self.params, self.optimizer, x, y, self.state, GRAD_CLIP, phase)
        t1, t2, t3 = marks
        self.times = (t1 - t0, t2 - t1, t3 - t2)
        return loss.item()


def synthetic_batches(cfg: BenchConfig) -> Iterator[tuple[Any, Any]]:
    """Endless ``(x, y)``: x (T, B) int64 ids on the config's device, y (T*B,) the next ids."""
    gen = Generator(cfg.seed + 1)
    while True:
        ids = gen.integers(0, VOCAB, (cfg.seq_len + 1, cfg.batch))
        yield backend.to_device(ids[:-1], cfg.device), backend.to_device(ids[1:].reshape(-1), cfg.device)


def peak_step_bytes(step: TrainStep, x: Any, y: Any) -> int:
    """Bytes allocated by one step at its peak, above what was live before it (host memory)."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    step(x, y)
    peak = tracemalloc.get_traced_memory()[1]
    if not was_tracing:
        tracemalloc.stop()
    return peak - base


def bench(cfg: BenchConfig) -> BenchResult:
    """Run ``cfg.warmup`` untimed then ``cfg.steps`` timed training steps; return the medians."""
    cfg.validate()
    step, data = TrainStep(cfg), synthetic_batches(cfg)
    for _ in range(cfg.warmup):
        step(*next(data))
    times: list[tuple[float, float, float]] = []
    ops, losses = [], []
    for _ in range(cfg.steps):
        x, y = next(data)  # drawn outside the timed region
        losses.append(step(x, y))
        times.append(step.times)
        ops.append(step.ops)
    peak = peak_step_bytes(step, *next(data)) if cfg.device == "cpu" else None
    total = statistics.median(sum(t) for t in times)  # the median step, not the sum of the phase medians
    fwd, bwd, opt = (statistics.median(t[k] for t in times) for k in range(3))
    return BenchResult(cfg, cfg.batch * cfg.seq_len / total, total, fwd, bwd, opt, statistics.median_low(ops), ops,
                       losses, None if peak is None else peak / 1e6, None if peak is None else peak / cfg.seq_len)


# ---------------------------------------------------------------- a table for the command line

_COLUMNS = f"{'config':<7}{'model':<8}{'H':>5}{'L':>3}{'B':>5}{'T':>5}{'chars/s':>10}{'step ms':>10}" \
           f"{'fwd ms':>9}{'bwd ms':>9}{'opt ms':>8}{'ops/step':>10}{'peak MB':>9}{'KB/t':>8}"


def table_header(device: str = "cpu", dtype: str = "float32") -> str:
    return f"char-LM training step, {device} {dtype}, V={VOCAB}, medians after warm-up\n{_COLUMNS}"


def format_row(r: BenchResult) -> str:
    """One table line; memory columns show '-' where host memory says nothing (the GPU)."""
    c = r.config
    mem = f"{r.peak_mb:>9.1f}{r.bytes_per_time_step / 1e3:>8.0f}" if r.peak_mb is not None else f"{'-':>9}{'-':>8}"
    model = c.model + ("+f" if c.fused else "")
    return (f"{c.name:<7}{model:<8}{c.hidden:>5}{c.layers:>3}{c.batch:>5}{c.seq_len:>5}{r.chars_per_sec:>10,.0f}"
            f"{r.step_s * 1e3:>10.1f}{r.forward_s * 1e3:>9.1f}{r.backward_s * 1e3:>9.1f}{r.optimizer_s * 1e3:>8.1f}"
            f"{r.ops_per_step:>10}" + mem)
