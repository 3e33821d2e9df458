"""What a checkpoint holds of a training run, and how a run continues from one exactly.

A checkpoint is everything needed to go on as if never stopped: weights, Adam moments, the
learning-rate schedule, both random generators, the step, the position in the text and the
carried hidden state, plus the config and the vocabulary (see :mod:`.checkpoint` for the file).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from .. import backend
from ..tensor import Tensor
from . import checkpoint
from .checkpoint import CheckpointError
from .corpus import Batches

# Options fixed by a run's first start: resuming with a different value is refused.
FIXED_ON_RESUME = ("data", "model", "hidden_size", "num_layers", "seq_len", "batch_size", "val_frac", "dtype", "seed",
                   "encoding_errors", "epoch_offset")

MODEL_KEYS = ("config", "vocab", "model")  # what sampling and evaluation need
RUN_KEYS = MODEL_KEYS + ("step", "elapsed", "best_val", "position", "epoch", "optimizer", "scheduler", "rng",
                         "hidden")  # what resuming needs
CONFIG_KEYS = ("model", "hidden_size", "num_layers", "dtype", "seq_len", "batch_size")


def read_checkpoint(path: str, keys: tuple[str, ...] = MODEL_KEYS) -> dict[str, Any]:
    """A checkpoint of a char-LM run (verified; see :func:`.checkpoint.load`) holding ``keys``.

    Raises:
        CheckpointError: damaged, foreign, newer, or not a char-LM training checkpoint.
    """
    ck = checkpoint.load(path)
    missing = [k for k in keys if k not in ck] if isinstance(ck, dict) else list(keys)
    config = ck.get("config") if isinstance(ck, dict) else None
    if not missing and isinstance(config, dict):
        missing = [f"config.{k}" for k in CONFIG_KEYS if k not in config]
    elif not missing:
        missing = ["config"]
    if missing:
        raise CheckpointError(f"{path}: not a char-LM training checkpoint (it has no {', '.join(missing)})")
    if not isinstance(ck["vocab"], str) or not ck["vocab"]:
        raise CheckpointError(f"{path}: not a char-LM training checkpoint (its vocabulary is not text)")
    return ck


def checkpoint_state(run: Any, elapsed: float, samples_bytes: int | None) -> dict[str, Any]:
    """Everything needed to continue ``run`` exactly, plus the size of samples.txt at this point."""
    return {"config": dataclasses.asdict(run.cfg), "vocab": run.vocab.chars, "step": run.step,
            "elapsed": elapsed, "best_val": run.best_val if math.isfinite(run.best_val) else None,
            "position": run.batches.position, "epoch": run.batches.epoch, "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
            "rng": {"init": run.init_gen.get_state(), "sample": run.sample_gen.get_state()},
            "hidden": run.batches.state, "samples_bytes": samples_bytes}


def restore(run: Any, ck: dict[str, Any], path: str) -> None:
    """Put a checkpoint's state into a freshly built run (same config and vocabulary)."""
    try:
        run.model.load_state_dict(ck["model"])
        run.optimizer.load_state_dict(ck["optimizer"])
        run.scheduler.load_state_dict(ck["scheduler"])
        run.init_gen.set_state(ck["rng"]["init"])
        run.sample_gen.set_state(ck["rng"]["sample"])
        run.step, run.elapsed = int(ck["step"]), float(ck["elapsed"])
        run.best_val = float(ck["best_val"]) if ck["best_val"] is not None else math.inf
        run.batches = Batches(run.batches.data, run.cfg.seq_len, int(ck["position"]), int(ck["epoch"]),
                              _to_tensors(ck["hidden"], run.cfg.device), run.batches.offset_seed)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: does not fit the run it belongs to: {message}") from None
    run.saved_step = run.step


def apply_overrides(run: Any, overrides: dict[str, Any]) -> None:
    """Make ``--lr`` / ``--lr-decay`` given on resume win over the optimizer and scheduler state that
    :func:`restore` just put back: the lr becomes the new base of the schedule, the decay its factor."""
    if "lr" in overrides:
        for group in run.optimizer.param_groups:
            group["lr"] = group["initial_lr"] = run.cfg.lr
        run.scheduler.base_lrs = [run.cfg.lr] * len(run.optimizer.param_groups)
        run.scheduler._last_lr = [run.cfg.lr] * len(run.optimizer.param_groups)
    if "lr_decay" in overrides:
        run.scheduler.gamma = run.cfg.lr_decay


def resume_config(config_class: type, saved: dict[str, Any], overrides: dict[str, Any], run_dir: str) -> Any:
    """The config of a resumed run: the one in its latest checkpoint, with ``overrides`` applied
    (options fixed by the run's start may not change)."""
    names = {f.name for f in dataclasses.fields(config_class)}
    # Runs from before an option existed ran as it then did: text read with replacement, fixed windows.
    saved = {"encoding_errors": "replace", "epoch_offset": "fixed"} | saved
    cfg = config_class(**{k: v for k, v in saved.items() if k in names})
    for name, value in overrides.items():
        if name not in names:
            raise ValueError(f"--resume: unknown option {name!r}")
        if name == "out":
            if os.path.abspath(value) != os.path.abspath(run_dir):
                raise ValueError(f"--out cannot be used with --resume: the run stays in {run_dir}")
            continue
        if name in FIXED_ON_RESUME and value != getattr(cfg, name):
            raise ValueError(f"--resume: --{name.replace('_', '-')} was {getattr(cfg, name)!r} in this run "
                             f"and cannot change")
        setattr(cfg, name, value)
    cfg.out = run_dir
    return cfg


def repair_best(folder: Any, ck: dict[str, Any]) -> None:
    """If the run was killed between writing latest.npz and copying it to best.npz, copy it now.

    The copy was due exactly when latest.npz's best validation loss is below best.npz's (an
    improvement is only ever recorded at the step being checkpointed).
    """
    if ck["best_val"] is None:
        return
    best = folder.file("best.npz")
    stale = not os.path.isfile(best) or checkpoint.load(best).get("best_val") is None or \
        checkpoint.load(best)["best_val"] > ck["best_val"]
    if stale:
        checkpoint.copy_atomic(folder.file("latest.npz"), best)


def _to_tensors(state: Any, device: str) -> Any:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(_to_tensors(s, device) for s in state)
    return Tensor(backend.as_array(state, None, device))
