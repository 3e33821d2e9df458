"""Dropout: random zeroing during training, the identity in evaluation mode."""

from __future__ import annotations

from ..backend import Generator
from ..tensor import Tensor
from . import functional as F
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability ``p`` in training mode; scale survivors by 1 / (1 - p).

    Args:
        p: drop probability in [0, 1].
        generator: draws the masks (default: the device's default generator), for reproducible runs.

    Shapes:
        any shape -> the same shape. No parameters.
    """

    def __init__(self, p: float = 0.5, generator: Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability p must lie in [0, 1], got {p}")
        self.p = p
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"
