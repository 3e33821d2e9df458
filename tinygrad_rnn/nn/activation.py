"""Activation modules (parameter-free wrappers of ``functional``), for use in ``Sequential``."""

from __future__ import annotations

from ..tensor import Tensor
from . import functional as F
from .module import Module

__all__ = ["Identity", "ReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"]


class Identity(Module):
    """Returns its input unchanged (a placeholder layer)."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class Tanh(Module):
    """Elementwise tanh; any shape."""

    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class ReLU(Module):
    """Elementwise max(x, 0); any shape."""

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Sigmoid(Module):
    """Elementwise 1 / (1 + exp(-x)); any shape."""

    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Softmax(Module):
    """Softmax along axis ``dim`` (PyTorch's name); same shape as the input."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """Log-softmax along axis ``dim``; same shape as the input."""

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.dim)
