"""LayerNorm: normalisation over the trailing axes of each example, with PyTorch's parameter names."""

from __future__ import annotations

from collections.abc import Sequence

from .. import backend
from ..backend import DTypeLike
from ..tensor import Tensor
from . import functional as F
from .module import Module, Parameter

__all__ = ["LayerNorm"]


class LayerNorm(Module):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last ``len(normalized_shape)`` axes.

    Args:
        normalized_shape: an int or the trailing shape to normalise over.
        eps: added to the (biased) variance, for stability.
        elementwise_affine: learn ``weight`` and ``bias``.
        bias: learn ``bias`` (when ``elementwise_affine``).
        dtype: as for :class:`Linear`.
        device: as for :class:`Linear`.

    Attributes:
        weight: normalized_shape, initialised to 1.
        bias: normalized_shape, initialised to 0.

    Shapes:
        input (..., *normalized_shape) -> the same shape.
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype: DTypeLike | None = None, device: str = "cpu") -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape = shape
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        dt, dev = backend.to_dtype(dtype), backend.check_device(device)
        self.weight = Parameter(backend.full(shape, 1.0, dt, dev)) if elementwise_affine else None
        self.bias = Parameter(backend.zeros(shape, dt, dev)) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
