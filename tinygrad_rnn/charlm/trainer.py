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
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any

from .. import backend
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
    return run, val


def train_step(run: Run) -> float:
    """One step of truncated BPTT; returns the mean training loss (nats/char)."""
    x, y, new_epoch = run.batches.next()
    if new_epoch:  # the streams start over: forget the state, decay the learning rate
        run.state = None
        run.scheduler.step()
    run.model.train()
    logits, state = run.model(Tensor(x), run.state)
    loss = F.cross_entropy(logits.reshape(-1, len(run.vocab)), Tensor(y.reshape(-1)))
    run.optimizer.zero_grad()
    loss.backward()
    clip_grad_norm_(run.model.parameters(), run.cfg.grad_clip)
    run.optimizer.step()
    run.state = detach_state(state)  # the next step starts from here, but its gradient stops here
    run.step += 1
    return loss.item()


def evaluate(model: CharRNN, val: Any, seq_len: int) -> float:
    """Mean loss (nats/char) over every character of the validation streams."""
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
    model.train()
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


def _to_tensors(state: Any, device: str) -> Any:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(_to_tensors(s, device) for s in state)
    return Tensor(backend.as_array(state, None, device))


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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
        _write_atomic(self.file("config.json"), json.dumps(info, indent=2) + "\n")

    def truncate_metrics(self, step: int) -> list[dict[str, Any]]:
        """Drop lines logged after ``step`` (a run killed after its last checkpoint) and return the rest."""
        rows = [r for r in _read_metrics(self.metrics_path) if r["step"] <= step]
        _write_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))
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


def train(cfg: TrainConfig, resume: str | None = None, log: Any = print) -> dict[str, Any]:
    """Train (or resume) a run; returns the summary (best val loss/bpc, steps, chars/s, folder)."""
    cfg.validate()
    backend.check_device(cfg.device)
    corpus = load_corpus(cfg.data)  # before the run folder exists: bad input leaves nothing behind
    folder = RunFolder(resume or cfg.out or default_out())
    ck = checkpoint.load(folder.file("latest.npz")) if resume else None
    vocab = Vocab(ck["vocab"]) if ck else None
    run, val = build(cfg, corpus.text, vocab)
    history: list[dict[str, Any]] = []
    if ck:
        restore(run, ck)
        history = folder.truncate_metrics(run.step)
    else:
        folder.write_config(cfg, corpus.description, run.vocab)
    log(f"corpus: {corpus.description}, {len(corpus.text):,} characters, vocabulary of {len(run.vocab)}; "
        f"unigram baseline {unigram_bits(corpus.text):.3f} bits/char")
    log(f"model: {run.model.kind} {cfg.num_layers}x{cfg.hidden_size}, "
        f"{sum(p.numel() for p in run.model.parameters()):,} parameters, {cfg.device} {cfg.dtype}; "
        f"run folder {folder.path}" + (f" (resumed at step {run.step})" if ck else ""))
    budget = cfg.max_minutes * 60 if cfg.max_minutes else (DEFAULT_MINUTES * 60 if cfg.max_steps is None else None)
    return _loop(run, val, folder, history, budget)


def _loop(run: Run, val: Any, folder: RunFolder, history: list[dict[str, Any]], budget: float | None) -> dict:
    cfg = run.cfg
    chars_per_step = cfg.batch_size * cfg.seq_len
    bar = plot.Progress(cfg.max_steps, run.step, cfg.quiet)
    start, session_steps, last_val = time.perf_counter(), 0, None
    step_time = 0.0  # training steps only: chars/s leaves out validation and file writing
    while True:
        done = (cfg.max_steps is not None and run.step >= cfg.max_steps) or \
               (budget is not None and time.perf_counter() - start >= budget)
        if done:
            break
        t0 = time.perf_counter()
        loss = train_step(run)
        step_time += time.perf_counter() - t0
        session_steps += 1
        now = time.perf_counter() - start
        row = {"step": run.step, "train_loss": loss, "lr": run.optimizer.param_groups[0]["lr"],
               "epoch": run.batches.epoch, "elapsed_s": round(run.elapsed + now, 3),
               "chars_per_sec": round(session_steps * chars_per_step / step_time, 1)}
        finishing = (cfg.max_steps is not None and run.step >= cfg.max_steps) or \
                    (budget is not None and now >= budget)
        if run.step % cfg.eval_every == 0 or finishing:
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
    if val_loss < run.best_val:
        run.best_val = val_loss
        checkpoint.save(folder.file("best.npz"), checkpoint_state(run, elapsed))
    checkpoint.save(folder.file("latest.npz"), checkpoint_state(run, elapsed))
    folder.append_sample(run.step, sample(run.model, run.vocab, _prime(run.vocab), 200, 1.0, None, run.sample_gen))
    plot.save_loss_plot(history + [row], folder.file("loss.png"))
    return val_loss
