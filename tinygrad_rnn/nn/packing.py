"""Batches of sequences of different lengths, with PyTorch's names and semantics
(``torch.nn.utils.rnn``): ``PackedSequence``, ``pack_padded_sequence``, ``pad_packed_sequence``,
``pad_sequence``, ``pack_sequence``, ``unpad_sequence``, ``unpack_sequence``.

A packed sequence stores the real steps of B sequences, time-major, without padding: the
rows of step t are the sequences still running at t, longest first. With the sequences
sorted by decreasing length (``sorted_indices``) those are the first ``batch_sizes[t]``
of them::

    lengths 3, 1, 2  ->  sorted order (0, 2, 1), batch_sizes [3, 2, 1]
    data rows: a0 c0 b0 | a1 c1 | a2

Packing and unpacking are gathers (``GetItem`` with an integer index), so gradients flow
through them: a padded position is never read, so its gradient is exactly zero. The
recurrent layers (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``) take a PackedSequence and return one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from .. import backend
from ..errors import ShapeError
from ..functions import cat, stack
from ..tensor import Tensor

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence", "pack_sequence",
           "unpad_sequence", "unpack_sequence"]


class PackedSequence(NamedTuple):
    """The real steps of a batch of sequences, without padding (PyTorch's fields and order).

    Attributes:
        data: (N, *) where N = sum of the lengths: the rows of step 0, then of step 1, ...
        batch_sizes: (T,) int64 on the CPU: how many sequences are still running at each step.
        sorted_indices: (B,) int64, or None when the batch was already sorted: the original batch
            index of each sequence in decreasing-length order.
        unsorted_indices: (B,) int64, or None: the inverse permutation (position in sorted order
            of each original sequence).
    """

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None

    def to(self, target: Any) -> PackedSequence:
        """The same packed sequence with ``data`` cast to a dtype or moved to a device (with the
        index tensors; ``batch_sizes`` stays on the CPU, as in PyTorch)."""
        if not (isinstance(target, str) and target in ("cpu", "cuda")):
            return self._replace(data=self.data.to(target))
        idx = [None if i is None else i.to(target) for i in (self.sorted_indices, self.unsorted_indices)]
        return PackedSequence(self.data.to(target), self.batch_sizes, idx[0], idx[1])

    @property
    def lengths(self) -> list[int]:
        """Each sequence's length, in the original batch order (a convenience, not in PyTorch)."""
        return _lengths_of(self)


# ---------------------------------------------------------------- index arithmetic (plain ints)

def _as_lengths(op: str, lengths: Any) -> list[int]:
    """Lengths as a list of Python ints, from a list, a tuple or a 1-D integer tensor or array."""
    if isinstance(lengths, Tensor):
        if backend.is_float(lengths.dtype) or lengths.ndim != 1:
            raise TypeError(f"{op}: lengths must be a 1-D integer tensor or a list of ints, "
                            f"got a {lengths.ndim}-D {lengths.dtype} tensor")
        return [int(v) for v in lengths.tolist()]
    if hasattr(lengths, "tolist"):  # a NumPy array
        lengths = lengths.tolist()
    if not isinstance(lengths, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                          for v in lengths):
        raise TypeError(f"{op}: lengths must be a list of ints or a 1-D integer tensor, got {lengths!r}")
    return list(lengths)


def _sort_order(lengths: list[int]) -> list[int]:
    """Batch indices by decreasing length; ties keep their original order (a stable sort)."""
    return sorted(range(len(lengths)), key=lambda b: -lengths[b])


def _batch_sizes(sorted_lengths: list[int]) -> list[int]:
    """How many of the (decreasingly sorted) sequences are longer than t, for each t."""
    return [sum(1 for n in sorted_lengths if n > t) for t in range(sorted_lengths[0])]


def _offsets(batch_sizes: list[int]) -> list[int]:
    """The first data row of each step."""
    out, start = [], 0
    for n in batch_sizes:
        out.append(start)
        start += n
    return out


def _int_tensor(values: list[int], device: str = "cpu") -> Tensor:
    return Tensor(backend.as_array(values, backend.int64, device))


def _order(packed: PackedSequence) -> list[int]:
    """The original batch index of each sorted position."""
    if packed.sorted_indices is None:
        return list(range(int(packed.batch_sizes.tolist()[0])))
    return [int(v) for v in packed.sorted_indices.tolist()]


def _lengths_of(packed: PackedSequence) -> list[int]:
    """Each sequence's length, in the original batch order."""
    sizes = [int(v) for v in packed.batch_sizes.tolist()]
    sorted_lengths = [sum(1 for n in sizes if n > b) for b in range(sizes[0])]
    out = [0] * sizes[0]
    for pos, b in enumerate(_order(packed)):
        out[b] = sorted_lengths[pos]
    return out


def padded_index(batch_sizes: list[int], order: list[int] | None = None, total_length: int | None = None,
                 batch_first: bool = False) -> list[int]:
    """For each position of a padded (T, B) grid (or (B, T) with ``batch_first``), flattened,
    the data row it comes from, or N (the number of rows: a padding row) past a sequence's end.

    ``order`` lists the original batch index of each sorted position (None: already sorted);
    without it the grid's columns are in sorted order.
    """
    B, T = batch_sizes[0], total_length if total_length is not None else len(batch_sizes)
    n_rows, offsets = sum(batch_sizes), _offsets(batch_sizes)
    column = list(range(B))  # padded column -> sorted position
    if order is not None:
        for pos, b in enumerate(order):
            column[b] = pos
    index = [[n_rows] * B for _ in range(T)]
    for t in range(min(T, len(batch_sizes))):
        for col in range(B):
            if column[col] < batch_sizes[t]:
                index[t][col] = offsets[t] + column[col]
    if batch_first:
        return [index[t][col] for col in range(B) for t in range(T)]
    return [i for row in index for i in row]


def step_masks(batch_sizes: list[int], like: Tensor) -> list[Any]:
    """Per step, a (B, 1) bool array "this sequence is still running" in sorted order, or None
    where all B are (the recurrent layers then skip the mask: nothing to hold)."""
    B = batch_sizes[0]
    xp_bool = backend.bool_
    return [None if n == B else backend.as_array([[b < n] for b in range(B)], xp_bool, like.device)
            for n in batch_sizes]


# ---------------------------------------------------------------- public functions

def pack_padded_sequence(input: Tensor, lengths: Any, batch_first: bool = False,  # noqa: A002 (PyTorch's name)
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch of sequences of different lengths.

    Args:
        input: (T, B, *) padded sequences, or (B, T, *) with ``batch_first``; anything past a
            sequence's length is never read (its gradient is exactly zero).
        lengths: B ints (a list or a 1-D integer tensor), each in [1, T].
        batch_first: whether ``input`` is (B, T, *).
        enforce_sorted: require ``lengths`` in decreasing order (``sorted_indices`` is then None);
            with False any order is accepted and the batch is sorted here.

    Returns:
        A :class:`PackedSequence`.

    >>> import tinygrad_rnn as tg
    >>> x = tg.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [5.0, 6.0, 0.0]])  # (B, T) = (3, 3)
    >>> p = pack_padded_sequence(x, [3, 1, 2], batch_first=True, enforce_sorted=False)
    >>> p.data.tolist(), p.batch_sizes.tolist(), p.sorted_indices.tolist()
    ([1.0, 5.0, 4.0, 2.0, 6.0, 3.0], [3, 2, 1], [0, 2, 1])
    """
    op = "pack_padded_sequence"
    if not isinstance(input, Tensor) or input.ndim < 2:
        raise ShapeError(f"{op}: input must be a Tensor of shape ({'B, T' if batch_first else 'T, B'}, *), "
                         f"got {getattr(input, 'shape', type(input).__name__)}")
    lens = _as_lengths(op, lengths)
    T, B = (input.shape[1], input.shape[0]) if batch_first else (input.shape[0], input.shape[1])
    if len(lens) != B:
        raise ShapeError(f"{op}: {len(lens)} lengths for a batch of {B} sequences (input {tuple(input.shape)}, "
                         f"batch_first={batch_first})")
    if B == 0 or min(lens) < 1:
        raise ValueError(f"{op}: every length must be at least 1, got {lens}")
    if max(lens) > T:
        raise ShapeError(f"{op}: a length of {max(lens)} exceeds the padded input's {T} steps")
    if enforce_sorted and any(a < b for a, b in zip(lens, lens[1:])):
        raise ValueError(f"{op}: lengths {lens} are not in decreasing order; sort the batch or pass "
                         "enforce_sorted=False")
    order = None if enforce_sorted else _sort_order(lens)
    sorted_lengths = sorted(lens, reverse=True)
    sizes = _batch_sizes(sorted_lengths)
    rows, seq = [], order if order is not None else list(range(B))
    for t, n in enumerate(sizes):  # data row offsets[t] + pos holds step t of sequence seq[pos]
        rows += [(seq[pos] * T + t) if batch_first else (t * B + seq[pos]) for pos in range(n)]
    flat = input.reshape(T * B, *input.shape[2:])
    data = flat[_int_tensor(rows, input.device)]
    if order is None:
        return PackedSequence(data, _int_tensor(sizes))
    inverse = [0] * B
    for pos, b in enumerate(order):
        inverse[b] = pos
    return PackedSequence(data, _int_tensor(sizes), _int_tensor(order, input.device),
                          _int_tensor(inverse, input.device))


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, Tensor]:
    """Undo :func:`pack_padded_sequence`: the padded batch, in the original batch order.

    Args:
        sequence: a :class:`PackedSequence`.
        batch_first: return (B, T, *) instead of (T, B, *).
        padding_value: the value of every position past a sequence's end.
        total_length: pad to this many steps (at least the longest length) instead of the longest.

    Returns:
        ``(padded, lengths)``: padded (T, B, *) or (B, T, *), and lengths (B,) int64 on the CPU.
    """
    op = "pad_packed_sequence"
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{op}: expected a PackedSequence, got {type(sequence).__name__}")
    sizes = [int(v) for v in sequence.batch_sizes.tolist()]
    T = len(sizes)
    if total_length is not None and total_length < T:
        raise ValueError(f"{op}: total_length={total_length} is shorter than the longest sequence ({T} steps)")
    T = T if total_length is None else total_length
    data = sequence.data
    rest = tuple(data.shape[1:])
    pad = Tensor(backend.full((1, *rest), padding_value, data.dtype, data.device))
    index = padded_index(sizes, None if sequence.sorted_indices is None else _order(sequence), T, batch_first)
    padded = cat([data, pad])[_int_tensor(index, data.device)]  # row N is the padding row
    B = sizes[0]
    padded = padded.reshape(*((B, T) if batch_first else (T, B)), *rest)
    return padded, _int_tensor(_lengths_of(sequence))


def pad_sequence(sequences: Sequence[Tensor], batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack sequences of shape (L_i, *) into one (T, B, *) tensor (or (B, T, *)), T = max L_i.

    ``padding_side`` is ``"right"`` (pad after each sequence) or ``"left"``.
    """
    op = "pad_sequence"
    seqs = list(sequences)
    if not seqs or not all(isinstance(s, Tensor) and s.ndim >= 1 for s in seqs):
        raise TypeError(f"{op}: expected a non-empty list of Tensors of shape (L, *)")
    if padding_side not in ("right", "left"):
        raise ValueError(f"{op}: padding_side must be 'right' or 'left', got {padding_side!r}")
    rest = tuple(seqs[0].shape[1:])
    for s in seqs:
        if tuple(s.shape[1:]) != rest:
            raise ShapeError(f"{op}: sequences have shapes {[tuple(s.shape) for s in seqs]}; all but the "
                             "first axis must agree")
    T = max(s.shape[0] for s in seqs)
    rows = []
    for s in seqs:
        if s.shape[0] == T:
            rows.append(s)
            continue
        pad = Tensor(backend.full((T - s.shape[0], *rest), padding_value, s.dtype, s.device))
        rows.append(cat([s, pad] if padding_side == "right" else [pad, s]))
    return stack(rows, axis=0 if batch_first else 1)


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences of shape (L_i, *): ``pack_padded_sequence(pad_sequence(...), lengths)``."""
    seqs = list(sequences)
    return pack_padded_sequence(pad_sequence(seqs), [s.shape[0] for s in seqs], enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences: Tensor, lengths: Any, batch_first: bool = False) -> list[Tensor]:
    """Undo :func:`pad_sequence`: the list of B sequences, each cut to its length."""
    lens = _as_lengths("unpad_sequence", lengths)
    x = padded_sequences if batch_first else padded_sequences.swapaxes(0, 1)
    return [x[b, :n] for b, n in enumerate(lens)]


def unpack_sequence(packed_sequences: PackedSequence) -> list[Tensor]:
    """Undo :func:`pack_sequence`: the list of sequences, in the original batch order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
