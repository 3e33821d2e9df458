"""Training a character-level language model: the loop behind ``tinygrad-rnn train``.

The training text is cut into ``batch_size`` parallel streams (char-rnn style);
each step reads the next ``seq_len`` characters of every stream, carries the
hidden state over from the previous step and detaches it (truncated BPTT), and
takes one Adam step with global-norm gradient clipping. Every ``eval_every``
steps (and at the end) the whole validation split is scored, and the run folder
gets a metrics line, checkpoints, a sample and a fresh loss plot.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import backend, replay
from ..autograd import no_grad
from ..backend import Generator
from ..nn import functional as F
from ..nn.utils import clip_grad_norm_, detach_state
from ..optim import Adam
from ..optim.lr_scheduler import ExponentialLR
from ..tensor import Tensor
from . import checkpoint, plot
from .corpus import Batches, Vocab, eval_streams, load_corpus, split, streams, to_ids, unigram_bits
from .model import CharRNN
from .sampling import sample

LN2 = math.log(2.0)


@dataclass
class TrainConfig:
    """Every option of ``tinygrad-rnn train`` (the defaults are the command's)."""

    data: str | None = None
    model: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.0
    seq_len: int = 100
    batch_size: int = 64
    lr: float = 2e-3
    lr_decay: float = 1.0
    grad_clip: float = 5.0
    max_steps: int | None = None
    max_minutes: float | None = None
    eval_every: int = 250
    val_frac: float = 0.1
    out: str | None = None
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    quiet: bool = False
    replay: bool = True  # capture the training step and replay it (tinygrad_rnn.replay); same results, faster

    def validate(self) -> None:
        checks = [
            (self.hidden_size >= 1, "--hidden-size must be >= 1"),
            (self.num_layers >= 1, "--num-layers must be >= 1"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (self.seq_len >= 1, "--seq-len must be >= 1"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.lr > 0, "--lr must be > 0"),
            (self.lr_decay > 0, "--lr-decay must be > 0"),
            (self.grad_clip > 0, "--grad-clip must be > 0"),
            (self.max_steps is None or self.max_steps >= 1, "--max-steps must be >= 1"),
            (self.max_minutes is None or self.max_minutes > 0, "--max-minutes must be > 0"),
            (self.eval_every >= 1, "--eval-every must be >= 1"),
            (0 < self.val_frac < 1, "--val-frac must be in (0, 1)"),
            (self.dtype in ("float32", "float64"), "--dtype must be float32 or float64"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


# Options fixed by a run's first start: resuming with a different value is refused.
FIXED_ON_RESUME = ("data", "model", "hidden_size", "num_layers", "seq_len", "batch_size", "val_frac", "dtype", "seed")

DEFAULT_MINUTES = 5.0  # the budget when neither --max-steps nor --max-minutes is given


@dataclass
class Run:
    """The live state of a training run (what a checkpoint captures)."""

    cfg: TrainConfig
    vocab: Vocab
    model: CharRNN
    optimizer: Adam
    scheduler: ExponentialLR
    batches: Batches
    init_gen: Generator
    sample_gen: Generator
    state: Any = None
    forward_backward: Any = None  # the captured forward and backward (replay), or None: the plain path
    step: int = 0
    elapsed: float = 0.0
    best_val: float = math.inf


def build(cfg: TrainConfig, text: str, vocab: Vocab | None = None) -> tuple[Run, Any]:
    """A fresh run and the validation streams for ``text``."""
    vocab = vocab or Vocab(text)
    ids = to_ids(vocab, text)
    train_ids, val_ids = split(ids, cfg.val_frac)
    data = backend.to_device(streams(train_ids, cfg.batch_size, cfg.seq_len, "training"), cfg.device)
    val = eval_streams(val_ids, cfg.batch_size, cfg.seq_len, cfg.device, "validation")
    init_gen = Generator(cfg.seed)  # initial weights and dropout masks (a CPU generator: its state is saved)
    model = CharRNN(len(vocab), cfg.hidden_size, cfg.num_layers, cfg.model, cfg.dropout, dtype=cfg.dtype,
                    generator=init_gen)
    model.to(cfg.device)
    optimizer = Adam(model.parameters(), lr=cfg.lr)
    scheduler = ExponentialLR(optimizer, gamma=cfg.lr_decay)
    run = Run(cfg, vocab, model, optimizer, scheduler, Batches(data, cfg.seq_len), init_gen, Generator(cfg.seed + 1))
    if cfg.replay:
        run.forward_backward = capture_step(model)
    return run, val


def forward_backward(model: CharRNN, x: Any, y: Any, state: Any,
                     phase: Callable[[str], None] | None = None) -> tuple[Tensor, Any]:
    """Forward ids ``x`` (T, B) from ``state``, cross-entropy against the next ids ``y``, backward.
    Returns the loss and the new state, detached (truncated BPTT). This is the part of a step that
    ``tinygrad_rnn.replay`` captures; ``phase("forward")``, if given, marks the end of the forward."""
    logits, state = model(Tensor(x), state)
    loss = F.cross_entropy(logits.reshape(-1, model.vocab_size), Tensor(y.reshape(-1)))
    if phase:
        phase("forward")
    loss.backward()
    return loss, detach_state(state)  # the next step starts from here, but its gradient stops here


def capture_step(model: CharRNN) -> Callable[[Any, Any, Any], tuple[Tensor, Any]]:
    """:func:`forward_backward` for ``model``, captured for replay (``tinygrad_rnn.replay``)."""
    return replay.capture(functools.partial(forward_backward, model))


def update(model: CharRNN, params: list[Tensor], optimizer: Adam, x: Any, y: Any, state: Any, grad_clip: float,
           phase: Callable[[str], None] | None = None, fb: Callable[..., Any] | None = None) -> tuple[Tensor, Any]:
    """The core of a training step (shared with ``tinygrad-rnn bench``): :func:`forward_backward`
    (or ``fb(x, y, state)``, its captured form), global-norm clipping of ``params``' gradients, an
    optimizer step. Returns the loss and the new state, detached (truncated BPTT).

    ``phase(name)``, if given, is called after the forward (``"forward"``, by the plain path), the
    backward and the optimizer step: the benchmark's timers.
    """
    optimizer.zero_grad()
    loss, state = forward_backward(model, x, y, state, phase) if fb is None else fb(x, y, state)
    if phase:
        phase("backward")
    clip_grad_norm_(params, grad_clip)
    optimizer.step()
    if phase:
        phase("optimizer")
    return loss, state


def train_step(run: Run) -> float:
    """One step of truncated BPTT; returns the mean training loss (nats/char)."""
    x, y, new_epoch = run.batches.next()
    if new_epoch:  # the streams start over: forget the state, decay the learning rate
        run.state = None
        run.scheduler.step()
    loss, run.state = update(run.model, list(run.model.parameters()), run.optimizer, x, y, run.state,
                             run.cfg.grad_clip, fb=run.forward_backward)
    run.step += 1
    return loss.item()


def evaluate(model: CharRNN, val: Any, seq_len: int) -> float:
    """Mean loss (nats/char) over every character of the validation streams (in eval mode;
    the model's mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    length = val.shape[1]
    with no_grad():
        for p in range(0, length - 1, seq_len):
            t = min(seq_len, length - 1 - p)
            logits, state = model(Tensor(val[:, p: p + t].T), state)
            target = Tensor(val[:, p + 1: p + t + 1].T.reshape(-1))
            total += F.cross_entropy(logits.reshape(-1, model.vocab_size), target, reduction="sum").item()
            count += t * val.shape[0]
    model.train(was_training)
    return total / count


# ---------------------------------------------------------------- run folder

def checkpoint_state(run: Run, elapsed: float) -> dict[str, Any]:
    """Everything needed to continue exactly: weights, Adam moments, LR schedule, RNG states,
    step, data position, carried hidden state; plus the config and vocabulary."""
    return {"config": dataclasses.asdict(run.cfg), "vocab": run.vocab.chars, "step": run.step,
            "elapsed": elapsed, "best_val": run.best_val if math.isfinite(run.best_val) else None,
            "position": run.batches.position, "epoch": run.batches.epoch, "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
            "rng": {"init": run.init_gen.get_state(), "sample": run.sample_gen.get_state()},
            "hidden": run.state}


def restore(run: Run, ck: dict[str, Any]) -> None:
    """Put a checkpoint's state into a freshly built run (same config and vocabulary)."""
    run.model.load_state_dict(ck["model"])
    run.optimizer.load_state_dict(ck["optimizer"])
    run.scheduler.load_state_dict(ck["scheduler"])
    run.init_gen.set_state(ck["rng"]["init"])
    run.sample_gen.set_state(ck["rng"]["sample"])
    run.step, run.elapsed = ck["step"], ck["elapsed"]
    run.best_val = ck["best_val"] if ck["best_val"] is not None else math.inf
    run.batches.position, run.batches.epoch = ck["position"], ck["epoch"]
    run.state = _to_tensors(ck["hidden"], run.cfg.device)


def apply_overrides(run: Run, overrides: dict[str, Any]) -> None:
    """Make ``--lr`` / ``--lr-decay`` given on resume win over the optimizer and scheduler state that
    :func:`restore` just put back: the lr becomes the new base of the schedule, the decay its factor."""
    if "lr" in overrides:
        for group in run.optimizer.param_groups:
            group["lr"] = group["initial_lr"] = run.cfg.lr
        run.scheduler.base_lrs = [run.cfg.lr] * len(run.optimizer.param_groups)
        run.scheduler._last_lr = [run.cfg.lr] * len(run.optimizer.param_groups)
    if "lr_decay" in overrides:
        run.scheduler.gamma = run.cfg.lr_decay


def resume_config(saved: dict[str, Any], overrides: dict[str, Any], run_dir: str) -> TrainConfig:
    """The config of a resumed run: the one in its latest checkpoint, with ``overrides`` applied
    (options fixed by the run's start may not change)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in saved.items() if k in names})
    for name, value in overrides.items():
        if name not in names:
            raise ValueError(f"--resume: unknown option {name!r}")
        if name in FIXED_ON_RESUME and value != getattr(cfg, name):
            raise ValueError(f"--resume: --{name.replace('_', '-')} was {getattr(cfg, name)!r} in this run "
                             f"and cannot change")
        setattr(cfg, name, value)
    cfg.out = run_dir
    return cfg


def _to_tensors(state: Any, device: str) -> Any:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(_to_tensors(s, device) for s in state)
    return Tensor(backend.as_array(state, None, device))


def _read_metrics(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


class RunFolder:
    """The files of a run: config.json, metrics.jsonl, latest.npz, best.npz, samples.txt, loss.png."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)
        self.metrics_path = os.path.join(path, "metrics.jsonl")

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def write_config(self, cfg: TrainConfig, corpus: str, vocab: Vocab) -> None:
        info = dataclasses.asdict(cfg) | {"corpus": corpus, "vocab_size": len(vocab)}
        checkpoint.write_text_atomic(self.file("config.json"), json.dumps(info, indent=2) + "\n")

    def truncate_metrics(self, step: int) -> list[dict[str, Any]]:
        """Drop lines logged after ``step`` (a run killed after its last checkpoint) and return the rest."""
        rows = [r for r in _read_metrics(self.metrics_path) if r["step"] <= step]
        checkpoint.write_text_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
        return rows

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")  # one write per complete line

    def append_sample(self, step: int, text: str) -> None:
        with open(self.file("samples.txt"), "a", encoding="utf-8") as fh:
            fh.write(f"===== step {step} =====\n{text}\n\n")


# ---------------------------------------------------------------- the loop

def default_out() -> str:
    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))


def train(cfg: TrainConfig | None = None, resume: str | None = None, log: Any = print,
          overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train a new run with ``cfg``, or continue the run in the folder ``resume`` from its latest checkpoint,
    with the checkpoint's config and ``overrides`` (option name -> value, e.g. ``{"max_steps": 5000}``).
    Returns the summary (best val loss/bpc, steps, chars/s, folder, a sample)."""
    overrides = dict(overrides or {})
    ck = None
    if resume:
        latest = os.path.join(resume, "latest.npz")
        if not os.path.isfile(latest):
            raise ValueError(f"--resume {resume}: no latest.npz there (not a run folder, or no checkpoint yet)")
        ck = checkpoint.load(latest)
        cfg = resume_config(ck["config"], overrides, resume)
    elif cfg is None:
        cfg = TrainConfig(**overrides)
    cfg.validate()
    backend.check_device(cfg.device)
    say = (lambda message: None) if cfg.quiet else log
    corpus = load_corpus(cfg.data)  # before the run folder exists: bad input leaves nothing behind
    folder = RunFolder(resume or cfg.out or default_out())
    vocab = Vocab(ck["vocab"]) if ck else None
    run, val = build(cfg, corpus.text, vocab)
    history: list[dict[str, Any]] = []
    if ck:
        restore(run, ck)
        apply_overrides(run, overrides)
        history = folder.truncate_metrics(run.step)
    folder.write_config(cfg, corpus.description, run.vocab)  # on resume too: the overrides now in force
    say(f"corpus: {corpus.description}, {len(corpus.text):,} characters, vocabulary of {len(run.vocab)}; "
        f"unigram baseline {unigram_bits(corpus.text):.3f} bits/char")
    say(f"model: {run.model.kind} {cfg.num_layers}x{cfg.hidden_size}, "
        f"{sum(p.numel() for p in run.model.parameters()):,} parameters, {cfg.device} {cfg.dtype}; "
        f"run folder {folder.path}" + (f" (resumed at step {run.step})" if ck else ""))
    budget = cfg.max_minutes * 60 if cfg.max_minutes else (DEFAULT_MINUTES * 60 if cfg.max_steps is None else None)
    return _loop(run, val, folder, history, budget)


_clock = time.perf_counter  # the loop's clock (tests replace it)


def _loop(run: Run, val: Any, folder: RunFolder, history: list[dict[str, Any]], budget: float | None) -> dict:
    cfg = run.cfg
    chars_per_step = cfg.batch_size * cfg.seq_len
    bar = plot.Progress(cfg.max_steps, run.step, cfg.quiet)
    start, session_steps, last_val = _clock(), 0, None
    step_time = 0.0  # training steps only: chars/s leaves out validation and file writing
    finishing = cfg.max_steps is not None and run.step >= cfg.max_steps  # resumed at its last step: nothing to do
    while not finishing:
        t0 = _clock()
        loss = train_step(run)
        t1 = _clock()
        step_time += t1 - t0
        session_steps += 1
        now = t1 - start  # one reading decides both the row and whether this is the last step
        row = {"step": run.step, "train_loss": loss, "lr": run.optimizer.param_groups[0]["lr"],
               "epoch": run.batches.epoch, "elapsed_s": round(run.elapsed + now, 3),
               "chars_per_sec": round(session_steps * chars_per_step / max(step_time, 1e-12), 1)}
        finishing = (cfg.max_steps is not None and run.step >= cfg.max_steps) or \
                    (budget is not None and now >= budget)
        if run.step % cfg.eval_every == 0 or finishing:  # the last step always validates and checkpoints
            last_val = _evaluate_and_save(run, val, folder, row, history, run.elapsed + now)
        folder.append_metrics(row)
        history.append(row)
        bar.update(row, last_val, budget, now)
    bar.close()
    best = run.best_val
    summary = {"best_val_loss": best, "best_val_bpc": best / LN2 if math.isfinite(best) else None,
               "steps": run.step, "chars_per_sec": history[-1]["chars_per_sec"] if session_steps else 0.0,
               "run": folder.path,
               "sample": sample(run.model, run.vocab, _prime(run.vocab), 300, 1.0, None, run.sample_gen)}
    return summary


def _prime(vocab: Vocab) -> str:
    return "\n" if "\n" in vocab.index else vocab.chars[0]


def _evaluate_and_save(run: Run, val: Any, folder: RunFolder, row: dict[str, Any], history: list,
                       elapsed: float) -> float:
    """Score the validation split, then write checkpoints, a sample and the plot."""
    val_loss = evaluate(run.model, val, run.cfg.seq_len)
    row["val_loss"], row["val_bpc"] = val_loss, val_loss / LN2
    improved = val_loss < run.best_val
    if improved:
        run.best_val = val_loss
    checkpoint.save(folder.file("latest.npz"), checkpoint_state(run, elapsed))
    if improved:  # the same state: a copy of the file, not a second build and write
        checkpoint.copy_atomic(folder.file("latest.npz"), folder.file("best.npz"))
    folder.append_sample(run.step, sample(run.model, run.vocab, _prime(run.vocab), 200, 1.0, None, run.sample_gen))
    plot.save_loss_plot(history + [row], folder.file("loss.png"))
    return val_loss
