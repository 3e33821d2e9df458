"""The ``tinygrad-rnn`` command (also ``python -m tinygrad_rnn``): train, sample, eval, bench.

Bad input ends the command with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from .backend import Generator
from .errors import TinygradRNNError

class UsageError(Exception):
    """Bad command-line input (reported as one line, status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    from .charlm.model import KINDS

    parser = _Parser(prog="tinygrad-rnn", description="Train, sample and evaluate character-level language "
                     "models (LSTM/GRU/RNN) with tinygrad_rnn.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a char-level model (default: LSTM on the Python stdlib's source)",
                       description="Train a character-level language model. Without --data the corpus is the "
                       "running Python's standard library source; without --max-steps or --max-minutes it "
                       "trains for 5 minutes.")
    add = t.add_argument
    add("--data", metavar="PATH", help="UTF-8 text file (default: built-in stdlib corpus)")
    add("--model", choices=list(KINDS), help="recurrent cell [lstm]")
    add("--hidden-size", type=int, help="hidden units per layer [256]")
    add("--num-layers", type=int, help="stacked recurrent layers [2]")
    add("--dropout", type=float, help="dropout between recurrent layers [0.0]")
    add("--seq-len", type=int, help="characters per truncated-BPTT chunk [100]")
    add("--batch-size", type=int, help="parallel streams [64]")
    add("--lr", type=float, help="Adam learning rate [2e-3]")
    add("--lr-decay", type=float, help="learning-rate factor per epoch [1.0]")
    add("--grad-clip", type=float, help="global gradient-norm limit [5.0]")
    add("--max-steps", type=int, help="stop at this step, counted from the run's start")
    add("--max-minutes", type=float, help="stop after this much training time in this session")
    add("--eval-every", type=int, help="steps between validations and checkpoints [250]")
    add("--val-frac", type=float, help="fraction of the text (at its end) held out for validation [0.1]")
    add("--out", metavar="DIR", help="run folder [runs/<timestamp>]")
    add("--resume", metavar="DIR", help="continue the run in DIR from its latest checkpoint")
    add("--seed", type=int, help="seed for weights, dropout and samples [0]")
    add("--device", choices=["cpu", "cuda"], help="[cpu]")
    add("--dtype", choices=["float32", "float64"], help="[float32]")
    add("--quiet", action="store_true", default=None, help="no progress bar")
    add("--no-replay", dest="replay", action="store_const", const=False, default=None,
        help="run every step through the engine instead of replaying the captured step (same results, slower)")

    s = sub.add_parser("sample", help="generate text from a checkpoint")
    s.add_argument("path", metavar="RUN_DIR_OR_CHECKPOINT")
    s.add_argument("--prime", default="\n", help="text to start from [newline]")
    s.add_argument("--length", type=int, default=500, help="characters to generate [500]")
    s.add_argument("--temperature", type=float, default=1.0, help="0 means argmax [1.0]")
    s.add_argument("--top-k", type=int, default=None, help="sample among the K most likely characters")
    s.add_argument("--seed", type=int, default=0, help="same seed, same text [0]")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")

    e = sub.add_parser("eval", help="loss and bits/char of a checkpoint on a text file")
    e.add_argument("path", metavar="RUN_DIR_OR_CHECKPOINT")
    e.add_argument("--data", metavar="PATH", required=True)
    e.add_argument("--device", choices=["cpu", "cuda"], default="cpu")

    b = sub.add_parser("bench", help="time a training step on synthetic data (chars/s, ops, memory)",
                       description="Time char-LM training steps (one-hot V=65 -> recurrent layers -> Linear -> "
                       "cross-entropy -> Adam) on random ids. Configs: S (H=128, 1 layer, B=32, T=64), "
                       "M (256, 2, 64, 100), L (512, 2, 64, 100); size options override them, or alone "
                       "describe one custom config built on S.")
    b.add_argument("configs", nargs="*", metavar="S|M|L", help="preset configs to run [S]")
    b.add_argument("--hidden", type=int, help="hidden units per layer")
    b.add_argument("--layers", type=int, help="stacked recurrent layers")
    b.add_argument("--batch", type=int, help="parallel streams")
    b.add_argument("--seq-len", type=int, help="time steps per training step")
    b.add_argument("--model", choices=list(KINDS), default="lstm")
    b.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    b.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    b.add_argument("--steps", type=int, default=10, help="timed steps [10]")
    b.add_argument("--warmup", type=int, default=2, help="untimed steps first [2]")
    b.add_argument("--both", action="store_true", help="LSTM: also time the fused cell op (a row 'lstm+f')")
    b.add_argument("--no-replay", dest="replay", action="store_false",
                   help="time the engine's step instead of the captured and replayed one")
    return parser


# ---------------------------------------------------------------- train

def train_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``train`` options given on the command line (option name -> value)."""
    from .charlm.trainer import TrainConfig

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if getattr(args, f.name, None) is not None}


def cmd_train(args: argparse.Namespace) -> None:
    """A new run, or (``--resume``) the trainer continues the run with its checkpoint's config and
    these options applied."""
    from .charlm.trainer import LN2, TrainConfig, train

    given = train_options(args)
    def log(msg: str) -> None:
        print(msg, flush=True)
    if args.resume:
        summary = train(resume=args.resume, log=log, overrides=given)
    else:
        summary = train(TrainConfig(**given), log=log)
    best = summary["best_val_loss"]
    best_txt = f"best val {best:.4f} nats/char ({best / LN2:.3f} bpc)" if math.isfinite(best) else "no validation"
    print(f"done: {best_txt} | {summary['steps']} steps | {summary['chars_per_sec']:,.0f} chars/s | "
          f"run {summary['run']}", flush=True)
    if summary.get("sample"):
        print("sample:\n" + summary["sample"])


# ---------------------------------------------------------------- sample / eval

def load_model(path: str, device: str) -> tuple[Any, Any, dict[str, Any]]:
    """Model, vocabulary and checkpoint from a run folder (best.npz, else latest.npz) or an .npz file."""
    from .charlm import checkpoint
    from .charlm.corpus import Vocab
    from .charlm.model import CharRNN

    if os.path.isdir(path):
        candidates = [os.path.join(path, n) for n in ("best.npz", "latest.npz")]
        found = [c for c in candidates if os.path.isfile(c)]
        if not found:
            raise UsageError(f"{path}: no best.npz or latest.npz in this folder")
        path = found[0]
    ck = checkpoint.load(path)
    cfg = ck["config"]
    vocab = Vocab(ck["vocab"])
    model = CharRNN(len(vocab), cfg["hidden_size"], cfg["num_layers"], cfg["model"], 0.0, dtype=cfg["dtype"])
    model.load_state_dict(ck["model"])
    model.to(device)
    return model, vocab, ck


def cmd_sample(args: argparse.Namespace) -> None:
    from .charlm.sampling import sample

    if args.length < 0:
        raise UsageError("sample: --length must be >= 0")
    model, vocab, _ = load_model(args.path, args.device)
    text = sample(model, vocab, args.prime, args.length, args.temperature, args.top_k, Generator(args.seed))
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def cmd_eval(args: argparse.Namespace) -> None:
    from .charlm.corpus import eval_streams, load_corpus, to_ids
    from .charlm.trainer import LN2, evaluate

    model, vocab, ck = load_model(args.path, args.device)
    ids = to_ids(vocab, load_corpus(args.data).text)
    cfg = ck["config"]
    data = eval_streams(ids, cfg["batch_size"], cfg["seq_len"], args.device, "evaluation")  # as validation does
    loss = evaluate(model, data, cfg["seq_len"])
    print(f"{args.data}: {loss:.4f} nats/char, {loss / LN2:.4f} bits/char over {len(ids):,} characters")


# ---------------------------------------------------------------- bench

def cmd_bench(args: argparse.Namespace) -> None:
    from .charlm.bench import BenchConfig, bench, format_row, table_header

    sizes = {"hidden": args.hidden, "layers": args.layers, "batch": args.batch, "seq_len": args.seq_len}
    # Size options alone describe one custom config, built on S.
    name = "custom" if not args.configs and any(v is not None for v in sizes.values()) else None
    configs = [BenchConfig.preset(n, **sizes, name=name, model=args.model, device=args.device, dtype=args.dtype,
                                  steps=args.steps, warmup=args.warmup, fused=fused, replay=args.replay)
               for n in (args.configs or ["S"]) for fused in ([False, True] if args.both else [False])]
    for cfg in configs:  # all checked before the first (possibly long) run
        cfg.validate()
    print(table_header(args.device, args.dtype), flush=True)
    for cfg in configs:
        print(format_row(bench(cfg)), flush=True)


# ---------------------------------------------------------------- entry point

COMMANDS = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "bench": cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        COMMANDS[args.command](args)
    except (UsageError, TinygradRNNError, ValueError, FileNotFoundError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        prefix = "" if message.startswith("tinygrad-rnn") else "tinygrad-rnn: error: "
        print(prefix + message, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinygrad-rnn: interrupted (the last checkpoint is intact)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
