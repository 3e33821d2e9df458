"""Benchmark of one char-LM training step: ``bench(BenchConfig(...))``, behind ``tinygrad-rnn bench``.

The step is the trainer's: one-hot characters (V = 65 symbols, random ids from a seeded
generator) -> recurrent layers -> Linear(H, 65) -> cross-entropy -> backward -> gradient
clipping and an Adam step, with the hidden state carried over, detached, as in truncated
BPTT; by default the forward and backward are captured and replayed (``tinygrad_rnn.replay``),
as the trainer runs them. Times are medians of wall-clock ``perf_counter`` readings over the
timed steps; the warm-up steps before them are left out (the first steps allocate Adam's
moments, warm the allocator and BLAS, and capture the step: at least ``CAPTURE_CALLS`` of
them with replay). Peak memory is measured on one extra step with ``tracemalloc`` (which sees
NumPy's allocations, and slows the step, so never during the timed ones); with replay it
includes the program's buffers, which stay allocated between steps.

:func:`gemm_floor` times every matrix product of one step alone: what the step would cost if
everything else were free.

>>> r = bench(BenchConfig(hidden=8, batch=2, seq_len=3, steps=2, warmup=1))
>>> r.chars_per_sec > 0 and r.ops_per_step > 0
True
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .. import autograd, backend, replay
from ..backend import Generator
from ..optim import Adam
from .model import KINDS, CharRNN
from .trainer import TrainConfig, forward_backward, update

VOCAB = 65  # the alphabet size of the classic char-rnn corpora (tiny-shakespeare)
PRESETS: dict[str, dict[str, int]] = {
    "S": {"hidden": 128, "layers": 1, "batch": 32, "seq_len": 64},
    "M": {"hidden": 256, "layers": 2, "batch": 64, "seq_len": 100},
    "L": {"hidden": 512, "layers": 2, "batch": 64, "seq_len": 100},
}
LR, GRAD_CLIP = TrainConfig.lr, TrainConfig.grad_clip  # the trainer's defaults
CAPTURE_CALLS = 4  # with replay: a first call from no state, two recorded calls, one checked replay


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
    replay: bool = True  # capture the forward and backward and replay them, as the trainer does

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
    replayed: int = 0  # timed steps that were replays of the captured step


class TrainStep:
    """The model, optimizer and carried state; ``step(x, y)`` runs one step and returns its loss.

    After a call, ``times`` holds (forward, backward, optimizer) seconds, ``ops`` the number of
    nodes the forward recorded on the tape (the replayed program's count when it replayed) and
    ``replayed`` whether the step was a replay.
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
        self.replayed = False
        self._phase: Any = None
        self.forward_backward: replay.Captured | None = None
        if cfg.replay:
            fb = functools.partial(forward_backward, self.model, phase=self._forward_done)
            self.forward_backward = replay.capture(fb)
            self.forward_backward.on_backward = self._forward_done  # the same mark when replayed

    def _forward_done(self, name: str = "forward") -> None:
        if self._phase is not None:
            self._phase("forward")

    def __call__(self, x: Any, y: Any) -> float:
        """The trainer's step (:func:`~tinygrad_rnn.charlm.trainer.update`), with a timer after each phase."""
        clock, marks = time.perf_counter, {}

        def phase(name: str) -> None:
            backend.synchronize(self.cfg.device)
            marks[name] = clock()

        captured = self.forward_backward
        replays = captured.calls["replayed"] if captured is not None else 0
        self._phase = phase
        t0 = clock()
        first = next(autograd._sequence)  # the tape's clock: its numbers stamp the recorded nodes
        loss, _, self.state = update(self.model, self.params, self.optimizer, x, y, self.state, GRAD_CLIP, phase,
                                     fb=captured)
        self._phase = None
        t1 = marks.get("forward", marks["backward"])
        t2, t3 = marks["backward"], marks["optimizer"]
        self.times = (t1 - t0, t2 - t1, t3 - t2)
        self.replayed = captured is not None and captured.calls["replayed"] > replays
        self.ops = captured.programs[-1].ops if self.replayed else next(autograd._sequence) - first - 1
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
    kept = 0  # a replayed step's buffers were allocated before: they count as the step's memory
    if step.replayed:
        kept = sum(p.nbytes for p in step.forward_backward.programs)
    return peak - base + kept


def bench(cfg: BenchConfig) -> BenchResult:
    """Run ``cfg.warmup`` untimed then ``cfg.steps`` timed training steps; return the medians."""
    cfg.validate()
    step, data = TrainStep(cfg), synthetic_batches(cfg)
    for _ in range(max(cfg.warmup, CAPTURE_CALLS if cfg.replay else 0)):
        step(*next(data))
    times: list[tuple[float, float, float]] = []
    ops, losses, replayed = [], [], 0
    for _ in range(cfg.steps):
        x, y = next(data)  # drawn outside the timed region
        losses.append(step(x, y))
        times.append(step.times)
        ops.append(step.ops)
        replayed += step.replayed
    peak = peak_step_bytes(step, *next(data)) if cfg.device == "cpu" else None
    total = statistics.median(sum(t) for t in times)  # the median step, not the sum of the phase medians
    fwd, bwd, opt = (statistics.median(t[k] for t in times) for k in range(3))
    return BenchResult(cfg, cfg.batch * cfg.seq_len / total, total, fwd, bwd, opt, statistics.median_low(ops), ops,
                       losses, None if peak is None else peak / 1e6, None if peak is None else peak / cfg.seq_len,
                       replayed)


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


# ---------------------------------------------------------------- the GEMM floor

@dataclass
class Floor:
    """Every matrix product of one training step, each timed alone: the step's cost if the rest were free."""

    config: BenchConfig
    seconds: float  # the products of one step, summed
    chars_per_sec: float
    gemms: list  # per distinct product: {"label", "a", "b", "out" (shape, strides), "dtype", "count", "seconds"}


def step_gemms(cfg: BenchConfig) -> list[dict]:
    """The matrix products of one training step of ``cfg``, as the engine runs them: shapes, strides
    (transposes, memory layouts) and dtype, read from the step's captured program (which replays
    the engine's own recorded work, checked equal to it to the bit). Derived on the CPU."""
    cpu = dataclasses.replace(cfg, device="cpu", replay=True, fused=False)
    step, data = TrainStep(cpu), synthetic_batches(cpu)
    for _ in range(CAPTURE_CALLS + 1):
        step(*next(data))
    if not step.replayed:
        reasons = "; ".join(step.forward_backward.reasons) or "no program"
        raise RuntimeError(f"gemm floor: the step of config {cfg.name} could not be captured ({reasons})")
    return step.forward_backward.programs[-1].gemms()


def gemm_floor(cfg: BenchConfig, repeats: int = 15) -> Floor:
    """Time each distinct product of :func:`step_gemms` alone on ``cfg.device`` (arrays with the same
    strides, median of ``repeats`` calls after warm-up) and sum them over the step."""
    groups: dict[tuple, dict] = {}
    for g in step_gemms(cfg):
        key = (g["a"], g["b"], g["out"], g["dtype"])
        groups.setdefault(key, {**g, "count": 0})["count"] += 1
    gen = Generator(cfg.seed, cfg.device)
    total = 0.0
    for g in groups.values():
        a, b, out = (backend.strided_random(shape, strides, g["dtype"], gen) for shape, strides in
                     (g["a"], g["b"], g["out"]))
        xp = backend.get_xp(a)
        for _ in range(3):
            xp.matmul(a, b, out=out)
        times = []
        for _ in range(repeats):
            backend.synchronize(cfg.device)
            t0 = time.perf_counter()
            xp.matmul(a, b, out=out)
            backend.synchronize(cfg.device)
            times.append(time.perf_counter() - t0)
        g["seconds"] = statistics.median(times)
        total += g["seconds"] * g["count"]
    return Floor(cfg, total, cfg.batch * cfg.seq_len / total, list(groups.values()))
