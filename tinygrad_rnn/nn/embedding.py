"""Embedding: a lookup table from integer ids to learned vectors."""

from __future__ import annotations

from .. import backend
from ..backend import DTypeLike, Generator
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """Rows of a learned table, picked by integer ids.

    Args:
        num_embeddings: number of rows (ids run from 0 to num_embeddings - 1).
        embedding_dim: length of each row.
        dtype: as for :class:`Linear`.
        device: as for :class:`Linear`.
        generator: as for :class:`Linear`.

    Attributes:
        weight: (num_embeddings, embedding_dim), N(0, 1) as in PyTorch.

    Shapes:
        integer input S -> output (*S, embedding_dim). An id used several times
        accumulates the gradients of all its uses into its row.

    >>> import tinygrad_rnn as tg
    >>> Embedding(10, 3)(tg.tensor([[1, 2], [1, 9]])).shape
    (2, 2, 3)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, dtype: DTypeLike | None = None,
                 device: str = "cpu", generator: Generator | None = None) -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight = Parameter(backend.zeros((num_embeddings, embedding_dim), backend.to_dtype(dtype),
                                              backend.check_device(device)))
        self.reset_parameters(generator)

    def reset_parameters(self, generator: Generator | None = None) -> None:
        """Redraw the table from N(0, 1)."""
        init.normal_(self.weight, 0.0, 1.0, generator)

    def forward(self, idx: Tensor) -> Tensor:
        return F.embedding(idx, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
