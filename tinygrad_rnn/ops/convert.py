"""Conversions that keep values but change their dtype or device (both differentiable)."""

from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..tensor import Tensor


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        # y = x as another dtype; dy/dx = 1, so the gradient is cast back
        return grad.astype(ctx.in_dtype)


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, device):
        ctx.in_device = backend.device_of(x)
        return backend.to_device(x, device)

    @staticmethod
    def backward(ctx, grad):
        # y = x copied to another device; the gradient is copied back
        return grad.to(ctx.in_device) if isinstance(grad, Tensor) else backend.to_device(grad, ctx.in_device)
