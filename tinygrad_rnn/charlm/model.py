"""The character-level language model: one-hot characters -> recurrent layers -> logits.

Its parameters carry PyTorch's names (``rnn.weight_ih_l0``, ``head.weight``...),
so the same model built from ``torch.nn.LSTM`` and ``torch.nn.Linear`` loads them.
"""

from __future__ import annotations

from typing import Any

from ..backend import Generator
from ..functions import one_hot
from ..nn.linear import Linear
from ..nn.module import Module
from ..nn.rnn import GRU, LSTM, RNN
from ..tensor import Tensor

KINDS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


class CharRNN(Module):
    """``logits, state = model(ids, state)``.

    Args:
        vocab_size: V, the number of distinct characters.
        hidden_size: H of every recurrent layer.
        num_layers: stacked recurrent layers.
        kind: ``"lstm"``, ``"gru"`` or ``"rnn"`` (tanh).
        dropout: between recurrent layers, in training mode only.
        fused: LSTM only: the cell's elementwise part as one first-order op (faster).

    Shapes: ids (T, B) integer; logits (T, B, V); state as the recurrent layer's
    (``(h, c)`` with h, c (num_layers, B, H) for an LSTM, h otherwise).
    """

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, kind: str = "lstm",
                 dropout: float = 0.0, dtype: Any = None, device: str = "cpu",
                 generator: Generator | None = None, fused: bool = False) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"--model {kind!r}: choose one of {', '.join(KINDS)}")
        self.vocab_size, self.kind = vocab_size, kind
        extra = {"fused": True} if fused else {}  # the fused cell exists for LSTM only
        self.rnn = KINDS[kind](vocab_size, hidden_size, num_layers, dropout=dropout, dtype=dtype, device=device,
                               generator=generator, **extra)
        self.head = Linear(hidden_size, vocab_size, dtype=dtype, device=device, generator=generator)

    def forward(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        x = one_hot(ids, self.vocab_size, dtype=self.head.weight.dtype)   # (T, B, V)
        out, state = self.rnn(x, state)                                      # (T, B, H)
        return self.head(out), state                                         # (T, B, V)
