"""The ``tinygrad-rnn`` command (also ``python -m tinygrad_rnn``): train, sample, eval, bench.

Exit status (also in ``--help``): 0 done; 2 bad input, or a file that cannot be read or
written (a damaged checkpoint, a full disk...), with one line on stderr and nothing left
half-written; 3 training stopped on a numerical fault (a NaN or infinite loss or gradient
norm, or a diverging loss), one line on stderr, the last finite checkpoints kept; 130
interrupted (Ctrl-C), the last checkpoint intact; 141 stdout closed early (``| head``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from .backend import Generator, tune_allocator
from .errors import TinygradRNNError

EXIT_USAGE = 2      # bad input, or a file that cannot be read or written
EXIT_STOPPED = 3    # training stopped on a numerical fault
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a tool killed by it
EXIT_STATUS_HELP = ("exit status: 0 done; 2 bad input or a file that cannot be read or written (one line on "
                    "stderr); 3 training stopped on a NaN/infinite or diverging loss (the last finite checkpoints "
                    "are kept); 130 interrupted")


class UsageError(Exception):
    """Bad command-line input (reported as one line, status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _number(kind: type, low: float | None = None, high: float | None = None, low_open: bool = False,
            high_open: bool = False) -> Any:
    """An argparse ``type``: a finite ``kind`` (int or float) within the given bounds."""
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
            hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
            raise argparse.ArgumentTypeError(f"must be {' and '.join(b for b in (lo, hi) if b)}, got {text!r}")
        return value
    convert.__name__ = kind.__name__  # argparse names the type in some messages
    return convert


POSITIVE_INT, NONNEGATIVE_INT = _number(int, 1), _number(int, 0)
POSITIVE = _number(float, 0, low_open=True)


def threads_option(text: str) -> str | int:
    """``--threads``: ``auto``, ``blas`` or a positive number of threads."""
    from .threads import parse_threads

    try:
        return parse_threads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


THREADS_HELP = ("BLAS threads: auto gives matrix products the cores other processes leave free (re-decided each "
                "second), blas keeps the BLAS library's own default, N fixes the count [auto]")


def build_parser() -> argparse.ArgumentParser:
    from .charlm.corpus import ENCODING_ERRORS
    from .charlm.model import KINDS

    parser = _Parser(prog="tinygrad-rnn", description="Train, sample and evaluate character-level language "
                     "models (LSTM/GRU/RNN) with tinygrad_rnn.", epilog=EXIT_STATUS_HELP)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a char-level model (default: LSTM on the Python stdlib's source)",
                       description="Train a character-level language model. Without --data the corpus is the "
                       "running Python's standard library source; without --max-steps or --max-minutes it "
                       "trains for 5 minutes.", epilog=EXIT_STATUS_HELP)
    add = t.add_argument
    add("--data", metavar="PATH", help="UTF-8 text file (default: built-in stdlib corpus)")
    add("--encoding-errors", choices=ENCODING_ERRORS, help="bytes of --data that are not UTF-8: strict refuses the "
        "file, replace reads each invalid sequence as U+FFFD [strict]")
    add("--model", choices=list(KINDS), help="recurrent cell [lstm]")
    add("--hidden-size", type=POSITIVE_INT, help="hidden units per layer [256]")
    add("--num-layers", type=POSITIVE_INT, help="stacked recurrent layers [2]")
    add("--dropout", type=_number(float, 0, 1, high_open=True), help="dropout between recurrent layers [0.0]")
    add("--seq-len", type=POSITIVE_INT, help="characters per truncated-BPTT chunk [100]")
    add("--batch-size", type=POSITIVE_INT, help="parallel streams [64]")
    add("--lr", type=POSITIVE, help="Adam learning rate [2e-3]")
    add("--lr-decay", type=POSITIVE, help="learning-rate factor per epoch [1.0]")
    add("--grad-clip", type=POSITIVE, help="global gradient-norm limit [5.0]")
    add("--max-steps", type=POSITIVE_INT, help="stop at this step, counted from the run's start")
    add("--max-minutes", type=POSITIVE, help="stop after this much training time in this session")
    add("--max-loss", type=POSITIVE, help="stop (exit 3) when the training loss exceeds this many nats/char "
        "[3 ln V: three times a uniform guess]")
    add("--eval-every", type=POSITIVE_INT, help="steps between validations and checkpoints [250]")
    add("--val-frac", type=_number(float, 0, 1, low_open=True, high_open=True),
        help="fraction of the text (at its end) held out for validation [0.1]")
    add("--out", metavar="DIR", help="run folder [runs/<timestamp>]; refused if it holds a run")
    add("--overwrite", action="store_true", help="with --out: replace the run in DIR (its files are deleted)")
    add("--resume", metavar="DIR", help="continue the run in DIR from its latest checkpoint")
    add("--seed", type=NONNEGATIVE_INT, help="seed for weights, dropout and samples [0]")
    add("--device", choices=["cpu", "cuda"], help="[cpu]")
    add("--dtype", choices=["float32", "float64"], help="[float32]")
    add("--epoch-offset", choices=["fixed", "random"], help="where each epoch's windows start: fixed (column 0), "
        "or random (a column drawn per epoch after the first, so the model does not see the same chunks) [fixed]")
    add("--threads", type=threads_option, help=THREADS_HELP)
    add("--quiet", action="store_true", default=None, help="no progress bar")
    add("--no-replay", dest="replay", action="store_const", const=False, default=None,
        help="run every step through the engine instead of replaying the captured step (same results, slower)")

    s = sub.add_parser("sample", help="generate text from a checkpoint")
    s.add_argument("path", metavar="RUN_DIR_OR_CHECKPOINT")
    s.add_argument("--prime", default="\n", help="text to start from [newline]")
    s.add_argument("--length", type=NONNEGATIVE_INT, default=500, help="characters to generate [500]")
    s.add_argument("--temperature", type=_number(float, 0), default=1.0, help="0 means argmax [1.0]")
    s.add_argument("--top-k", type=POSITIVE_INT, default=None, help="sample among the K most likely characters")
    s.add_argument("--seed", type=NONNEGATIVE_INT, default=0, help="same seed, same text [0]")
    s.add_argument("--device", choices=["cpu", "cuda"], default="cpu")

    e = sub.add_parser("eval", help="loss and bits/char of a checkpoint on a text file")
    e.add_argument("path", metavar="RUN_DIR_OR_CHECKPOINT")
    e.add_argument("--data", metavar="PATH", required=True)
    e.add_argument("--encoding-errors", choices=ENCODING_ERRORS, default="strict",
                   help="bytes that are not UTF-8: strict refuses the file, replace reads them as U+FFFD [strict]")
    e.add_argument("--unknown", default="error", metavar="error|skip|map:C",
                   help="characters outside the model's vocabulary: error, skip them, or read each as C [error]")
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
    b.add_argument("--threads", type=threads_option, default="auto", help=THREADS_HELP)
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
    if args.overwrite and not args.out and not args.resume:
        raise UsageError("tinygrad-rnn: --overwrite needs --out DIR (the run folder to replace)")
    if args.resume:
        summary = train(resume=args.resume, log=log, overrides=given, overwrite=args.overwrite)
    else:
        summary = train(TrainConfig(**given), log=log, overwrite=args.overwrite)
    best = summary["best_val_loss"]
    best_txt = f"best val {best:.4f} nats/char ({best / LN2:.3f} bpc)" if math.isfinite(best) else "no validation"
    print(f"done: {best_txt} | {summary['steps']} steps | {summary['chars_per_sec']:,.0f} chars/s | "
          f"run {summary['run']}", flush=True)
    if summary.get("sample"):
        print("sample:\n" + summary["sample"])


# ---------------------------------------------------------------- sample / eval

def load_model(path: str, device: str) -> tuple[Any, Any, dict[str, Any]]:
    """Model, vocabulary and checkpoint from a run folder (best.npz, else latest.npz) or an .npz file."""
    from .charlm.checkpoint import CheckpointError
    from .charlm.corpus import Vocab
    from .charlm.model import CharRNN
    from .charlm.resume import read_checkpoint

    if os.path.isdir(path):
        candidates = [os.path.join(path, n) for n in ("best.npz", "latest.npz")]
        found = [c for c in candidates if os.path.isfile(c)]
        if not found:
            raise UsageError(f"{path}: no best.npz or latest.npz in this folder")
        path = found[0]
    elif not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such run folder or checkpoint")
    ck = read_checkpoint(path)
    cfg = ck["config"]
    try:
        vocab = Vocab(ck["vocab"])
        model = CharRNN(len(vocab), cfg["hidden_size"], cfg["num_layers"], cfg["model"], 0.0, dtype=cfg["dtype"])
        model.load_state_dict(ck["model"])
    except (KeyError, TypeError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: its weights do not fit its config: {message}") from None
    model.to(device)
    return model, vocab, ck


def cmd_sample(args: argparse.Namespace) -> None:
    from .charlm.sampling import sample

    model, vocab, _ = load_model(args.path, args.device)
    text = sample(model, vocab, args.prime, args.length, args.temperature, args.top_k, Generator(args.seed))
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def cmd_eval(args: argparse.Namespace) -> None:
    from .charlm.corpus import eval_streams, load_corpus, parse_unknown, to_ids
    from .charlm.trainer import LN2, evaluate

    policy = parse_unknown(args.unknown)
    model, vocab, ck = load_model(args.path, args.device)
    text = load_corpus(args.data, args.encoding_errors).text
    unknown = vocab.unknown(text)
    ids = to_ids(vocab, text, policy, hint="; pass --unknown skip to leave them out, or --unknown map:C to read each "
                 "as the character C", what=f"--data {args.data}")
    cfg = ck["config"]
    data = eval_streams(ids, cfg["batch_size"], cfg["seq_len"], args.device, "evaluation")  # as validation does
    loss = evaluate(model, data, cfg["seq_len"])
    note = ""
    if unknown:
        shown = "".join(sorted(unknown)[:20])
        how = "skipped" if policy == "skip" else f"read as {policy[4:]!r}"
        note = f"; {sum(unknown.values()):,} character(s) outside the vocabulary {how} ({len(unknown)} distinct: " \
               f"{shown!r})"
    print(f"{args.data}: {loss:.4f} nats/char, {loss / LN2:.4f} bits/char over {len(ids):,} characters{note}")


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
    from . import threads

    policy = threads.apply_threads(args.threads)

    title, columns = table_header(args.device, args.dtype).split("\n", 1)
    used = f" (auto: other processes kept {policy.others:.1f} of {policy.cores} cores busy)" if policy else ""
    print(f"{title}, BLAS threads {threads.get_num_threads()}{used}\n{columns}", flush=True)
    for cfg in configs:
        print(format_row(bench(cfg)), flush=True)


# ---------------------------------------------------------------- entry point

COMMANDS = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "bench": cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (see the module docstring)."""
    from .charlm.trainer import TrainingFaultError

    parser = build_parser()
    tune_allocator()  # the command's arrays come and go by the thousand: keep freed memory for reuse
    try:
        args = parser.parse_args(argv)
        COMMANDS[args.command](args)
    except TrainingFaultError as exc:
        _error(exc)
        return EXIT_STOPPED
    except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the final flush at exit does not raise again
        return EXIT_BROKEN_PIPE
    except (UsageError, TinygradRNNError, ValueError, FileNotFoundError, OSError) as exc:
        _error(exc)
        return EXIT_USAGE
    except MemoryError:
        _error("out of memory: the model or the data is too large for this machine (try a smaller "
               "--hidden-size, --batch-size or --seq-len)")
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("tinygrad-rnn: interrupted (the last checkpoint is intact)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _error(exc: BaseException | str) -> None:
    """One line on stderr."""
    text = str(exc)
    message = text.splitlines()[0] if text.strip() else type(exc).__name__
    prefix = "" if message.startswith("tinygrad-rnn") else "tinygrad-rnn: error: "
    print(prefix + message, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
