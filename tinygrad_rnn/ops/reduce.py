"""Reductions: sum, max, min, and the numerically stable softmax family.

``axis`` has already been normalised by the Tensor method to a tuple of
non-negative ints (or None for all axes). A reduction's backward first reshapes
the gradient to ``keepdims`` shape so that it broadcasts against the input.
"""

from __future__ import annotations

from .. import backend
from ..autograd import Function
from .rules import broadcast_to, exp


def kept_shape(shape: tuple, axis: tuple | None) -> tuple:
    """``shape`` with the reduced axes set to 1 (what ``keepdims=True`` gives)."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.in_shape, ctx.kept = x.shape, kept_shape(x.shape, axis)
        return x.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, grad):
        # y = sum(x); dy/dx_i = 1 for every summed element
        return broadcast_to(grad.reshape(ctx.kept), ctx.in_shape)


def _reduced_shape(shape: tuple, axis: tuple | None) -> tuple:
    """``shape`` without the reduced axes (what ``keepdims=False`` gives)."""
    return () if axis is None else tuple(n for i, n in enumerate(shape) if i not in axis)


def _pick(ctx, x, y, axis, keepdims):
    """Shared forward of Max/Min given ``y``, the extremum with keepdims=True."""
    mask = (x == y).astype(x.dtype)
    mask /= mask.sum(axis=axis, keepdims=True)  # ties share the gradient equally
    ctx.save_for_backward(mask)
    ctx.kept = y.shape
    return y if keepdims else y.reshape(_reduced_shape(x.shape, axis))


class Max(Function):
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return _pick(ctx, x, x.max(axis=axis, keepdims=True), axis, keepdims)

    @staticmethod
    def backward(ctx, grad):
        # y = max(x); dy/dx = 1 at the maximum (1/k each for a k-way tie), 0 elsewhere
        (mask,) = ctx.saved
        return grad.reshape(ctx.kept) * mask


class Min(Max):
    """Same backward as Max: the gradient goes to the selected (minimal) elements."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return _pick(ctx, x, x.min(axis=axis, keepdims=True), axis, keepdims)


def _stable_max(x, axis):
    """Row maxima used only to shift exponents; rows of all -inf shift by 0 instead of NaN."""
    m = x.max(axis=axis, keepdims=True)
    return backend.where(backend.get_xp(m).isfinite(m), m, 0)


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, axis=-1, keepdims=False):
        m = _stable_max(x, axis)
        y = backend.log(backend.exp(x - m).sum(axis=axis, keepdims=True)) + m
        ctx.kept = y.shape
        out = y if keepdims else y.reshape(_reduced_shape(x.shape, axis))
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        # y = log(sum(exp(x))); dy/dx = exp(x - y) = softmax(x)
        x, y = ctx.saved
        return grad.reshape(ctx.kept) * exp(x - y.reshape(ctx.kept))


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        e = backend.exp(x - _stable_max(x, axis))
        y = e / e.sum(axis=axis, keepdims=True)
        ctx.axis = axis
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        # y = softmax(x); dx = y * (dy - sum(dy * y))  (the Jacobian diag(y) - y y^T applied to dy)
        (y,) = ctx.saved
        return y * (grad - (grad * y).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        shifted = x - _stable_max(x, axis)
        y = shifted - backend.log(backend.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.axis = axis
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        # y = x - logsumexp(x); dx = dy - softmax(x) * sum(dy) with softmax(x) = exp(y)
        (y,) = ctx.saved
        return grad - exp(y) * grad.sum(axis=ctx.axis, keepdims=True)
