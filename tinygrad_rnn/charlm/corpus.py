"""Text corpora, the character vocabulary, and char-rnn style batching.

The built-in corpus is the running interpreter's own standard library source
(top-level modules in sorted order, whole files, until about 1 MB), so the
char-LSTM trains on a fresh machine with nothing to download.
"""

from __future__ import annotations

import math
import os
import sys
import sysconfig
from collections import Counter
from dataclasses import dataclass

from .. import backend
from ..backend import Array

BUILTIN_CHARS = 1_000_000


@dataclass(frozen=True)
class Corpus:
    """A text and a one-line description of where it came from."""

    text: str
    description: str


def builtin_corpus(target_chars: int = BUILTIN_CHARS) -> Corpus:
    """Whole top-level ``*.py`` files of the standard library, sorted by name, until ``target_chars``."""
    root = sysconfig.get_paths()["stdlib"]
    names = sorted(f for f in os.listdir(root) if f.endswith(".py"))
    parts, total = [], 0
    for name in names:
        with open(os.path.join(root, name), encoding="utf-8", errors="replace") as fh:
            parts.append(fh.read())
        total += len(parts[-1])
        if total >= target_chars:
            break
    version = ".".join(map(str, sys.version_info[:3]))
    desc = f"built-in: Python {version} standard library source ({len(parts)} files from {root})"
    return Corpus("".join(parts), desc)


def load_corpus(path: str | None) -> Corpus:
    """The text at ``path`` (UTF-8), or the built-in corpus when ``path`` is None."""
    if path is None:
        return builtin_corpus()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--data {path}: no such file")
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    if not text:
        raise ValueError(f"--data {path}: the file is empty")
    return Corpus(text, f"file: {path}")


class Vocab:
    """The sorted set of characters of a text, with char <-> id maps."""

    def __init__(self, chars: str) -> None:
        self.chars = "".join(sorted(set(chars)))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str, what: str = "text") -> list[int]:
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            shown = "".join(unknown[:20])
            raise ValueError(f"{what} has {len(unknown)} character(s) not in the model's vocabulary: {shown!r}")
        return [self.index[c] for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)


def unigram_bits(text: str) -> float:
    """Entropy of the character frequencies (bits/char): what a model with no context achieves."""
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def split(ids: Array, val_frac: float) -> tuple[Array, Array]:
    """Train on the first part, validate on the last ``val_frac`` (by position, as char-rnn)."""
    n_val = int(len(ids) * val_frac)
    return ids[: len(ids) - n_val], ids[len(ids) - n_val:]


def streams(ids: Array, batch_size: int, seq_len: int, what: str) -> Array:
    """Cut ``ids`` into ``batch_size`` parallel streams: an int64 array (batch_size, L).

    Row b holds the b-th contiguous stretch of the text, so a hidden state carried
    from one batch to the next keeps reading the same stretch (truncated BPTT).
    """
    length = len(ids) // batch_size
    if length < seq_len + 1:
        raise ValueError(f"the {what} split has {len(ids)} characters: too short for {batch_size} streams of "
                         f"seq-len {seq_len} + 1; use a smaller --batch-size/--seq-len or more text")
    return ids[: length * batch_size].reshape(batch_size, length)


def eval_streams(ids: Array, max_batch: int, seq_len: int, device: str, what: str) -> Array:
    """Streams for scoring every character of ``ids`` (up to ``max_batch`` of them), on ``device``.

    Validation during training and ``tinygrad-rnn eval`` cut text the same way, so the same
    text gives the same loss in both.
    """
    batch = max(1, min(max_batch, len(ids) // (seq_len + 1)))
    return backend.to_device(streams(ids, batch, min(seq_len, max(1, len(ids) // batch - 1)), what), device)


def to_ids(vocab: Vocab, text: str) -> Array:
    return backend.as_array(vocab.encode(text), backend.int64, "cpu")


class Batches:
    """Consecutive (input, target) windows over the training streams, with an epoch counter.

    ``position`` is the column where the next window starts; windows advance by ``seq_len``;
    when the next window would run past the end, the epoch ends and ``position`` returns to 0
    (the caller then resets the hidden state).
    """

    def __init__(self, data: Array, seq_len: int, position: int = 0, epoch: int = 0) -> None:
        self.data, self.seq_len, self.position, self.epoch = data, seq_len, position, epoch

    def next(self) -> tuple[Array, Array, bool]:
        """(x, y, new_epoch): x and y are (seq_len, batch) int64, y shifted by one character."""
        new_epoch = self.position + self.seq_len + 1 > self.data.shape[1]
        if new_epoch:
            self.position, self.epoch = 0, self.epoch + 1
        p, t = self.position, self.seq_len
        x = self.data[:, p: p + t].T
        y = self.data[:, p + 1: p + t + 1].T
        self.position += t
        return x, y, new_epoch
