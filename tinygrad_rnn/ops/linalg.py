"""Matrix product with NumPy's batch broadcasting (operands of 2 or more dimensions;
``Tensor.__matmul__`` reshapes 1-D operands around it as NumPy does)."""

from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..gradsum import OuterGrad
from ..tensor import Tensor


def swap_last(x):
    """Transpose the last two axes (works on arrays and Tensors)."""
    axes = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return x.transpose(axes)


class MatMul(Function):
    broadcasting = True  # batch dimensions broadcast; the engine sums them back

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return backend.matmul(x, y)

    @staticmethod
    def backward(ctx, grad):
        # Z = X @ Y; dX = dZ @ Y^T, dY = X^T @ dZ
        x, y = ctx.saved
        need_x, need_y = ctx.needs_input_grad
        return (grad @ swap_last(y) if need_x else None), (weight_grad(x, grad) if need_y else None)


def weight_grad(x, grad):
    """``x^T @ grad``; for 2-D arrays kept as factors (an OuterGrad) that the engine sums with the
    other uses of the same weight in one product (a recurrent weight is used at every step)."""
    if x.ndim == 2 and grad.ndim == 2 and not isinstance(grad, Tensor):
        return OuterGrad(x, grad)
    return swap_last(x) @ grad


class Addmm(Function):
    """``c + a @ b`` for 2-D ``a``, ``b`` (``c`` broadcasts): PyTorch's addmm.

    One op instead of two: the sum is added into the product's fresh output in place, saving
    an array and a pass over it (a Linear layer's bias, an RNN step's input projection).

    ``bt``, optional: a row-major array equal to ``b.T`` that the caller already has (a
    recurrent layer passes ``W_hh`` beside its row-major copy ``W_hh^T``). Backward multiplies
    by it instead of by a transposed view of ``b``, which BLAS does about 20% faster here.
    """

    broadcasting = True

    @staticmethod
    def forward(ctx, c, a, b, bt=None):
        ctx.save_for_backward(a, b, bt)
        out = backend.matmul(a, b)
        out += c
        return out

    @staticmethod
    def backward(ctx, grad):
        # z = c + A @ B; dc = dz (summed over broadcast axes by the engine), dA = dz @ B^T, dB = A^T @ dz
        a, b, bt = ctx.saved
        gc, ga, gb = ctx.needs_input_grad
        # (with create_graph, b is a Tensor and bt, a constant, must not stand in for it)
        b_t = bt if bt is not None and not isinstance(b, Tensor) else swap_last(b)
        return (grad if gc else None), (grad @ b_t if ga else None), (weight_grad(a, grad) if gb else None)
