"""Linear: the affine layer ``y = x W^T + b``, with PyTorch's parameter names, shapes and initialisation."""

from __future__ import annotations

import math

from .. import backend
from ..backend import DTypeLike, Generator
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter

__all__ = ["Linear"]


class Linear(Module):
    """Affine map of the last axis: ``y = x @ weight.T + bias``.

    Args:
        in_features: size of each input's last axis.
        out_features: size of each output's last axis.
        bias: whether to learn an additive bias.
        dtype: parameter dtype (default: the default float dtype).
        device: "cpu" or "cuda".
        generator: draws the initial values (default: the device's default generator).

    Attributes:
        weight: (out_features, in_features), U(-k, k) with k = 1 / sqrt(in_features)
            (PyTorch's ``kaiming_uniform_(a=sqrt(5))``).
        bias: (out_features,), U(-k, k) with the same k; None when ``bias=False``.

    Shapes:
        input (..., in_features) -> output (..., out_features).

    >>> import tinygrad_rnn as tg
    >>> Linear(3, 4)(tg.zeros(2, 5, 3)).shape
    (2, 5, 4)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: DTypeLike | None = None,
                 device: str = "cpu", generator: Generator | None = None) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        dt, dev = backend.to_dtype(dtype), backend.check_device(device)
        self.weight = Parameter(backend.zeros((out_features, in_features), dt, dev))
        self.bias = Parameter(backend.zeros((out_features,), dt, dev)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator: Generator | None = None) -> None:
        """Redraw the parameters as PyTorch initialises them (see the class docstring)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound, generator)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
