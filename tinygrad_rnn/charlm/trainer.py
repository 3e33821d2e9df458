"""Training a character-level language model: the loop behind ``tinygrad-rnn train``.

The training text is cut into ``batch_size`` parallel streams (char-rnn style) and read
with :func:`~tinygrad_rnn.nn.tbptt`: each step takes the next ``seq_len`` characters of every
stream, starts from the hidden state the previous step ended in, detached (truncated BPTT),
and takes one Adam step with global-norm gradient clipping. Every ``eval_every`` steps (and
at the end) the whole validation split is scored, and the run folder gets a metrics line, a
sample, checkpoints and a fresh loss plot, in that order, so that a run killed at any moment
resumes from its last checkpoint having lost only the steps after it.

Numerical faults stop the run (:class:`TrainingFaultError`): a loss or gradient norm that is NaN
or infinite, or a loss above ``max_loss`` (a diverging run), before any checkpoint of the
faulty weights is written.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .. import backend, replay
from ..autograd import no_grad
from ..backend import Generator
from ..errors import TinygradRNNError
from ..nn import functional as F
from ..nn.utils import clip_grad_norm_, detach_state
from ..optim import Adam
from ..optim.lr_scheduler import ExponentialLR
from ..tensor import Tensor
from ..threads import AutoThreads, apply_threads, parse_threads
from . import checkpoint, plot
from .corpus import ENCODING_ERRORS, Batches, Vocab, eval_streams, load_corpus, split, streams, to_ids, unigram_bits
from .model import CharRNN
from .resume import RUN_KEYS, apply_overrides, checkpoint_state, read_checkpoint, repair_best, restore, resume_config
from .runfolder import RunFolder, RunFolderError, check_new_out
from .sampling import sample

LN2 = math.log(2.0)
DIVERGED_FACTOR = 3.0  # default --max-loss: this many times the loss of a uniform guess, ln V


class TrainingFaultError(TinygradRNNError):
    """Training stopped on a numerical fault (the command exits with status 3); the message names the
    step, the value and which checkpoints were kept."""


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
    max_loss: float | None = None
    encoding_errors: str = "strict"
    threads: str | int = "auto"  # BLAS threads: "auto", "blas" or a count (tinygrad_rnn.threads)
    replay: bool = True  # capture the training step and replay it (tinygrad_rnn.replay); same results, faster
    epoch_offset: str = "fixed"  # "random": each epoch after the first starts its windows at a drawn column

    def validate(self) -> None:
        for f in dataclasses.fields(self):  # NaN passes every comparison below, inf most of them
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"--{f.name.replace('_', '-')} must be a finite number, got {value}")
        parse_threads(self.threads)
        if self.epoch_offset not in ("fixed", "random"):
            raise ValueError(f"--epoch-offset must be fixed or random, got {self.epoch_offset!r}")
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
            (self.seed >= 0, "--seed must be >= 0"),
            (self.max_loss is None or self.max_loss > 0, "--max-loss must be > 0"),
            (self.dtype in ("float32", "float64"), "--dtype must be float32 or float64"),
            (self.encoding_errors in ENCODING_ERRORS, f"--encoding-errors must be one of {ENCODING_ERRORS}"),
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
    forward_backward: Any = None  # the captured forward and backward (replay), or None: the plain path
    step: int = 0
    elapsed: float = 0.0
    best_val: float = math.inf
    saved_step: int | None = None  # the step of the last checkpoint written or resumed from

    @property
    def max_loss(self) -> float:
        return self.cfg.max_loss or DIVERGED_FACTOR * math.log(max(len(self.vocab), 2))


def build(cfg: TrainConfig, text: str, vocab: Vocab | None = None) -> tuple[Run, Any]:
    """A fresh run and the validation streams for ``text`` (every check on the data happens here)."""
    hint = "; was the run's --data file changed since it started?" if vocab else ""
    vocab = vocab or Vocab(text)
    ids = to_ids(vocab, text, hint=hint, what=f"--data {cfg.data}" if cfg.data else "the built-in corpus")
    train_ids, val_ids = split(ids, cfg.val_frac)
    data = backend.to_device(streams(train_ids, cfg.batch_size, cfg.seq_len, "training"), cfg.device)
    val = eval_streams(val_ids, cfg.batch_size, cfg.seq_len, cfg.device, "validation")
    init_gen = Generator(cfg.seed)  # initial weights and dropout masks (a CPU generator: its state is saved)
    model = CharRNN(len(vocab), cfg.hidden_size, cfg.num_layers, cfg.model, cfg.dropout, dtype=cfg.dtype,
                    generator=init_gen)
    model.to(cfg.device)
    optimizer = Adam(model.parameters(), lr=cfg.lr)
    scheduler = ExponentialLR(optimizer, gamma=cfg.lr_decay)
    batches = Batches(data, cfg.seq_len, offset_seed=offset_seed(cfg))
    run = Run(cfg, vocab, model, optimizer, scheduler, batches, init_gen, Generator(cfg.seed + 1))
    if cfg.replay:
        run.forward_backward = capture_step(model)
    return run, val


def offset_seed(cfg: TrainConfig) -> int | None:
    """What :class:`~.corpus.Batches` draws each epoch's first column from (None: column 0 always)."""
    return cfg.seed if cfg.epoch_offset == "random" else None


def forward_backward(model: CharRNN, x: Any, y: Any, state: Any,
                     phase: Callable[[str], None] | None = None) -> tuple[Tensor, Any]:
    """Forward ids ``x`` (T, B) from ``state``, cross-entropy against the next ids ``y``, backward.
    Returns the loss and the new state, detached (truncated BPTT: the next chunk starts from its values,
    its gradient stops there). This is the part of a step that ``tinygrad_rnn.replay`` captures, so it
    does nothing but array work; ``phase("forward")``, if given, marks the end of the forward."""
    logits, state = model(Tensor(x), state)
    loss = F.cross_entropy(logits.reshape(-1, model.vocab_size), Tensor(y.reshape(-1)))
    if phase:
        phase("forward")
    loss.backward()
    return loss, detach_state(state)


def capture_step(model: CharRNN) -> Callable[[Any, Any, Any], tuple[Tensor, Any]]:
    """:func:`forward_backward` for ``model``, captured for replay (``tinygrad_rnn.replay``)."""
    return replay.capture(functools.partial(forward_backward, model))


def update(model: CharRNN, params: list[Tensor], optimizer: Adam, x: Any, y: Any, state: Any, grad_clip: float,
           phase: Callable[[str], None] | None = None, fb: Callable[..., Any] | None = None
           ) -> tuple[Tensor, Any, Any]:
    """The core of a training step (shared with ``tinygrad-rnn bench``): :func:`forward_backward`
    (or ``fb(x, y, state)``, its captured form), global-norm clipping of ``params``' gradients, an
    optimizer step. Returns (loss, the gradient norm before clipping as ``clip_grad_norm_`` gives it,
    the new state, detached). Nothing here reads a value back to the host.

    ``phase(name)``, if given, is called after the forward (``"forward"``, by the plain path), the
    backward and the optimizer step: the benchmark's timers.
    """
    optimizer.zero_grad()
    loss, state = forward_backward(model, x, y, state, phase) if fb is None else fb(x, y, state)
    if phase:
        phase("backward")
    norm = clip_grad_norm_(params, grad_clip)
    optimizer.step()
    if phase:
        phase("optimizer")
    return loss, norm, state


def train_step(run: Run) -> tuple[float, float]:
    """One step of truncated BPTT; returns (mean training loss in nats/char, gradient norm before clipping)."""
    x, y, state, new_epoch = run.batches.next()
    if new_epoch:  # the streams started over (and the state with them): decay the learning rate
        run.scheduler.step()
    loss, norm, state = update(run.model, list(run.model.parameters()), run.optimizer, x, y, state,
                               run.cfg.grad_clip, fb=run.forward_backward)
    run.batches.chunks.carry(state)  # already detached (the captured step must stay pure array work)
    run.step += 1
    # The step's only reads back to the host: one conversion each (the norm may be a float, a 0-d array or
    # a 0-d Tensor, depending on clip_grad_norm_).
    return float(loss.item()), float(norm)


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


# ---------------------------------------------------------------- the run

def train(cfg: TrainConfig | None = None, resume: str | None = None, log: Any = print,
          overrides: dict[str, Any] | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Train a new run with ``cfg``, or continue the run in the folder ``resume`` from its latest checkpoint,
    with the checkpoint's config and ``overrides`` (option name -> value, e.g. ``{"max_steps": 5000}``).
    ``overwrite`` lets a new run replace the run files in ``cfg.out``.

    Everything is checked (options, device, checkpoint, text, vocabulary, data length) before the
    run folder is created or any file is written. Returns the summary (best val loss/bpc, steps,
    chars/s, folder, a sample).

    Raises:
        TrainingFaultError: a non-finite or diverging loss or gradient norm (nothing of it is saved).
    """
    overrides = dict(overrides or {})
    ck = None
    if resume:
        if overwrite:
            raise ValueError("--overwrite cannot be used with --resume (it would delete the run being resumed)")
        latest = os.path.join(resume, "latest.npz")
        if not os.path.isdir(resume):
            raise FileNotFoundError(f"--resume {resume}: no such folder")
        if not os.path.isfile(latest):
            raise ValueError(f"--resume {resume}: no latest.npz there (not a run folder, or no checkpoint yet)")
        stamp = _stamp(latest)
        ck = read_checkpoint(latest, RUN_KEYS)
        cfg = resume_config(TrainConfig, ck["config"], overrides, resume)
    elif cfg is None:
        cfg = TrainConfig(**overrides)
    cfg.validate()
    if ck and cfg.max_steps is not None and ck["step"] >= cfg.max_steps:
        raise ValueError(f"--resume {resume}: the run is already at step {ck['step']} (--max-steps "
                         f"{cfg.max_steps}); pass a larger --max-steps to train further")
    backend.check_device(cfg.device)
    if not ck and cfg.out is not None:
        check_new_out(cfg.out, overwrite)
    corpus = load_corpus(cfg.data, cfg.encoding_errors)
    run, val = build(cfg, corpus.text, Vocab(ck["vocab"]) if ck else None)
    if ck:
        restore(run, ck, latest)
        apply_overrides(run, overrides)
    # Everything is checked: only now is anything created or written.
    folder = RunFolder.open(resume) if ck else RunFolder.create(cfg.out, overwrite)
    try:
        history: list[dict[str, Any]] = []
        if ck and _stamp(latest) != stamp:  # another train wrote it after we read it, before we held the lock
            raise RunFolderError(f"{latest}: changed while this command started (another train?); run it again")
        if ck:
            history = folder.truncate_metrics(run.step)
            folder.truncate_samples(ck.get("samples_bytes"))
            repair_best(folder, ck)
        cfg.out = folder.path
        folder.write_config(cfg, corpus.description, len(run.vocab))  # on resume too: the overrides now in force
        say = (lambda message: None) if cfg.quiet else log
        say(f"corpus: {corpus.description}, {len(corpus.text):,} characters, vocabulary of {len(run.vocab)}; "
            f"unigram baseline {unigram_bits(corpus.text):.3f} bits/char")
        say(f"model: {run.model.kind} {cfg.num_layers}x{cfg.hidden_size}, "
            f"{sum(p.numel() for p in run.model.parameters()):,} parameters, {cfg.device} {cfg.dtype}; "
            f"run folder {folder.path}" + (f" (resumed at step {run.step})" if ck else ""))
        budget = cfg.max_minutes * 60 if cfg.max_minutes else (DEFAULT_MINUTES * 60 if cfg.max_steps is None else None)
        with _quiet_float_warnings():
            return _loop(run, val, folder, history, budget, apply_threads(cfg.threads))
    finally:
        folder.close()


def _stamp(path: str) -> tuple[int, int, int]:
    """What changes when a file is replaced or rewritten."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


@contextmanager
def _quiet_float_warnings() -> Iterator[None]:
    """The loop checks every loss and gradient norm itself (and stops on a fault): NumPy's warnings about
    overflow or invalid values in the step that produced one would only repeat it, noisily."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"(overflow|invalid value|divide by zero|underflow) encountered",
                                RuntimeWarning)
        yield


_clock = time.perf_counter  # the loop's clock (tests replace it)


def _loop(run: Run, val: Any, folder: RunFolder, history: list[dict[str, Any]], budget: float | None,
          threads: AutoThreads | None = None) -> dict:
    cfg = run.cfg
    chars_per_step = cfg.batch_size * cfg.seq_len
    bar = plot.Progress(cfg.max_steps, run.step, cfg.quiet)
    start, session_steps, last_val, finishing = _clock(), 0, None, False
    step_time = 0.0  # training steps only: chars/s leaves out validation and file writing
    while not finishing:
        t0 = _clock()
        loss, norm = train_step(run)
        t1 = _clock()
        if threads:  # --threads auto: re-decided about once a second, between steps
            threads.update()
        _check(run, folder, "training loss", loss, norm)
        step_time += t1 - t0
        session_steps += 1
        now = t1 - start  # one reading decides both the row and whether this is the last step
        row = {"step": run.step, "train_loss": loss, "grad_norm": norm, "lr": run.optimizer.param_groups[0]["lr"],
               "epoch": run.batches.epoch, "elapsed_s": round(run.elapsed + now, 3),
               "chars_per_sec": round(session_steps * chars_per_step / max(step_time, 1e-12), 1)}
        finishing = (cfg.max_steps is not None and run.step >= cfg.max_steps) or \
                    (budget is not None and now >= budget)
        if run.step % cfg.eval_every == 0 or finishing:  # the last step always validates and checkpoints
            last_val = _evaluate_and_save(run, val, folder, row, history, run.elapsed + now)
        else:
            folder.append_metrics(row)
            history.append(row)
        bar.update(row, last_val, budget, now)
    bar.close()
    best = run.best_val
    return {"best_val_loss": best, "best_val_bpc": best / LN2 if math.isfinite(best) else None,
            "steps": run.step, "chars_per_sec": history[-1]["chars_per_sec"], "run": folder.path,
            "sample": sample(run.model, run.vocab, _prime(run.vocab), 300, 1.0, None, run.sample_gen)}


def _check(run: Run, folder: RunFolder, what: str, loss: float, norm: float | None = None) -> None:
    """Stop the run (TrainingFaultError) on a non-finite loss or gradient norm, or a loss above max_loss."""
    if not math.isfinite(loss):
        fault = f"the {what} is {loss}"
    elif norm is not None and not math.isfinite(norm):
        fault = f"the gradient norm is {norm} (the loss was {loss:.4g})"
    elif loss > run.max_loss:
        how = f"--max-loss {run.cfg.max_loss:g}" if run.cfg.max_loss else \
            f"--max-loss {run.max_loss:.4g} ({DIVERGED_FACTOR:g} x ln {len(run.vocab)}, {DIVERGED_FACTOR:g} times a " \
            "uniform guess)"
        fault = f"the {what} {loss:.4g} nats/char is above {how}: the training diverged"
    else:
        return
    _stop(run, folder, fault)


def _stop(run: Run, folder: RunFolder, fault: str) -> None:
    if run.saved_step is None:
        kept = "no checkpoint was written"
    else:
        kept = f"the last checkpoint, {folder.file('latest.npz')} (step {run.saved_step}), and best.npz are kept"
    raise TrainingFaultError(f"training stopped at step {run.step}: {fault}; {kept}; try a lower --lr "
                          f"(it is {run.optimizer.param_groups[0]['lr']:g})")


def _prime(vocab: Vocab) -> str:
    return "\n" if "\n" in vocab.index else vocab.chars[0]


def _evaluate_and_save(run: Run, val: Any, folder: RunFolder, row: dict[str, Any], history: list,
                       elapsed: float) -> float:
    """Score the validation split; then append the metrics line and a sample, write the checkpoints and the plot.

    In this order, a kill at any point leaves files that resume exactly: metrics lines and samples
    written after the last checkpoint are cut away on resume, and best.npz is repaired if its copy
    was cut short (see :func:`~tinygrad_rnn.charlm.resume.repair_best`).
    """
    val_loss = evaluate(run.model, val, run.cfg.seq_len)
    _check(run, folder, "validation loss", val_loss)
    if not all(backend.is_finite(p.data) for p in run.model.parameters()):
        _stop(run, folder, "the weights hold non-finite values")
    row["val_loss"], row["val_bpc"] = val_loss, val_loss / LN2
    improved = val_loss < run.best_val
    if improved:
        run.best_val = val_loss
    text = sample(run.model, run.vocab, _prime(run.vocab), 200, 1.0, None, run.sample_gen)
    folder.append_metrics(row)
    history.append(row)
    samples_bytes = folder.append_sample(run.step, text)
    checkpoint.save(folder.file("latest.npz"), checkpoint_state(run, elapsed, samples_bytes))
    run.saved_step = run.step
    if improved:  # the same state: a copy of the file, not a second build and write
        checkpoint.copy_atomic(folder.file("latest.npz"), folder.file("best.npz"))
    plot.save_loss_plot(history, folder.file("loss.png"))
    return val_loss
