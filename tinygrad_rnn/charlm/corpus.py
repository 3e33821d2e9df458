"""Text corpora, the character vocabulary, and char-rnn style batching.

The built-in corpus is the running interpreter's own standard library source
(top-level modules in sorted order, whole files, until about 1 MB), so the
char-LSTM trains on a fresh machine with nothing to download.
"""

from __future__ import annotations

import math
import os
import random
import sys
import sysconfig
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .. import backend
from ..backend import Array
from ..nn.tbptt import TBPTT

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


ENCODING_ERRORS = ("strict", "replace")


def load_corpus(path: str | None, encoding_errors: str = "strict") -> Corpus:
    """The text at ``path``, or the built-in corpus when ``path`` is None.

    Args:
        path: a UTF-8 text file.
        encoding_errors: ``"strict"``: bytes that are not UTF-8 are an error giving the byte offset
            of the first one; ``"replace"``: each invalid sequence reads as U+FFFD.
    """
    if path is None:
        return builtin_corpus()
    if encoding_errors not in ENCODING_ERRORS:
        raise ValueError(f"--encoding-errors {encoding_errors!r}: choose one of {', '.join(ENCODING_ERRORS)}")
    if os.path.isdir(path):
        raise ValueError(f"--data {path}: is a folder, not a text file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--data {path}: no such file")
    with open(path, "rb") as fh:
        raw = fh.read()
    if not raw:
        raise ValueError(f"--data {path}: the file is empty")
    try:
        text = raw.decode("utf-8", errors=encoding_errors)
    except UnicodeDecodeError as exc:
        raise ValueError(f"--data {path}: not UTF-8 text: byte 0x{raw[exc.start]:02x} at byte offset {exc.start} "
                         f"is {exc.reason}; to read it anyway with U+FFFD for each invalid sequence, pass "
                         "--encoding-errors replace") from None
    description = f"file: {path}"
    replaced = text.count("\ufffd") - raw.decode("utf-8", errors="ignore").count("\ufffd")
    if replaced:
        description += f" ({replaced:,} invalid UTF-8 sequence(s) read as U+FFFD)"
    return Corpus(text, description)


def parse_unknown(policy: str) -> str:
    """Check an ``--unknown`` policy: ``error``, ``skip`` or ``map:C`` (C one character)."""
    if policy in ("error", "skip") or (policy.startswith("map:") and len(policy) == 5):
        return policy
    raise ValueError(f"--unknown {policy!r}: use error, skip, or map:C with C one character (e.g. map:?)")


class Vocab:
    """The sorted set of characters of a text, with char <-> id maps."""

    def __init__(self, chars: str) -> None:
        self.chars = "".join(sorted(set(chars)))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def unknown(self, text: str) -> Counter:
        """How often each character of ``text`` that is not in the vocabulary occurs."""
        return Counter(c for c in text if c not in self.index)

    def encode(self, text: str, what: str = "text", unknown: str = "error", hint: str = "") -> list[int]:
        """Ids of ``text``'s characters.

        Args:
            unknown: what to do with characters outside the vocabulary: ``"error"`` (a ValueError
                naming them, then ``hint``), ``"skip"`` (leave them out) or ``"map:C"`` (read each as C).
        """
        index = self.index
        if unknown == "skip":
            return [index[c] for c in text if c in index]
        if unknown.startswith("map:"):
            sub = unknown[4:]
            if sub not in index:
                raise ValueError(f"--unknown {unknown}: {sub!r} is not in the model's vocabulary either")
            return [index.get(c, index[sub]) for c in text]
        missing = self.unknown(text)
        if missing:
            shown = "".join(sorted(missing)[:20])
            raise ValueError(f"{what} has {sum(missing.values()):,} character(s) ({len(missing)} distinct) not in "
                             f"the model's vocabulary: {shown!r}{hint}")
        return [index[c] for c in text]

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
        hint = {"validation": "; use a larger --val-frac, a smaller --batch-size/--seq-len, or more text",
                "training": "; use a smaller --batch-size/--seq-len or more text"}.get(what, "")
        noun = "split" if what in ("training", "validation") else "text"
        raise ValueError(f"the {what} {noun} has {len(ids):,} characters: too short for {batch_size} stream(s) of "
                         f"seq-len {seq_len} + 1{hint}")
    return ids[: length * batch_size].reshape(batch_size, length)


def eval_streams(ids: Array, max_batch: int, seq_len: int, device: str, what: str) -> Array:
    """Streams for scoring every character of ``ids`` (up to ``max_batch`` of them), on ``device``.

    Validation during training and ``tinygrad-rnn eval`` cut text the same way, so the same
    text gives the same loss in both.
    """
    batch = max(1, min(max_batch, len(ids) // (seq_len + 1)))
    return backend.to_device(streams(ids, batch, min(seq_len, max(1, len(ids) // batch - 1)), what), device)


def to_ids(vocab: Vocab, text: str, unknown: str = "error", hint: str = "", what: str = "the text") -> Array:
    """The ids of ``text`` as an int64 array (see :meth:`Vocab.encode`; ``what`` names the text in errors)."""
    return backend.as_array(vocab.encode(text, what, unknown, hint), backend.int64, "cpu")


class Batches:
    """The training streams read in windows of ``seq_len`` (truncated BPTT), epoch after epoch.

    Each epoch is one :func:`~tinygrad_rnn.nn.tbptt` pass over the streams: x = the columns
    [o, L - 1), y = the columns [o + 1, L), chunks of ``seq_len`` columns, a last shorter chunk
    left out; the hidden state it carries starts each epoch at None (the model's zeros).
    ``position`` is the column (counted from o) where the next window starts, ``state`` the
    carried state. The offset o is 0 in the first epoch; with ``offset_seed`` every later epoch
    starts at a column drawn from [0, seq_len), so that the windows (and the places where
    backpropagation is cut) move from epoch to epoch instead of showing the model the same
    chunks every time. The draw depends on the seed and the epoch only: nothing to save.
    """

    def __init__(self, data: Array, seq_len: int, position: int = 0, epoch: int = 0, state: Any = None,
                 offset_seed: int | None = None) -> None:
        self.data, self.seq_len, self.epoch, self.offset_seed = data, seq_len, epoch, offset_seed
        self.chunks = self._epoch(position, state)

    def offset(self, epoch: int) -> int:
        """The first column epoch ``epoch`` reads (see the class)."""
        if self.offset_seed is None or epoch == 0:
            return 0
        return random.Random(self.offset_seed * 1_000_003 + epoch).randrange(self.seq_len)

    def _epoch(self, position: int, state: Any) -> TBPTT:
        o = self.offset(self.epoch)
        x, y = self.data[:, o:-1].T, self.data[:, o + 1:].T  # (L - 1 - o, B): y is x one character later
        return TBPTT(x, y, k=self.seq_len, state=state, start=position, drop_last=True)

    @property
    def position(self) -> int:
        return self.chunks.position

    @property
    def state(self) -> Any:
        return self.chunks.state

    def next(self) -> tuple[Array, Array, Any, bool]:
        """(x, y, state, new_epoch): x and y (seq_len, batch) int64, y shifted by one character; the state
        to start from. Hand the state the model ends in back with ``chunks.backward``/``chunks.carry``."""
        new_epoch = len(self.chunks) == 0
        if new_epoch:  # the streams start over, and so does the state
            self.epoch += 1
            self.chunks = self._epoch(0, None)
        x, y, state = next(self.chunks)
        return x, y, state, new_epoch
