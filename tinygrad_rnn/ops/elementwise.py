"""Elementwise ops: arithmetic, the usual nonlinearities, where/clip/maximum/minimum.

Each op is one Function; backward sits right under forward and opens with the
derivative it implements. Rules use only operators and the functions of
``rules.py``, which work on raw arrays and on Tensors alike (so ``create_graph``
can record them). Binary ops broadcast; the engine sums their gradients back.
"""

from __future__ import annotations

import math

from .. import backend
from ..autograd import Function
from ..tensor import Tensor
from . import rules


# -- arithmetic

class Add(Function):
    broadcasting = True

    @staticmethod
    def forward(ctx, x, y):
        return x + y

    @staticmethod
    def backward(ctx, grad):
        # z = x + y; dz/dx = dz/dy = 1
        return grad, grad


class Sub(Function):
    broadcasting = True

    @staticmethod
    def forward(ctx, x, y):
        return x - y

    @staticmethod
    def backward(ctx, grad):
        # z = x - y; dz/dx = 1, dz/dy = -1
        return grad, (-grad if ctx.needs_input_grad[1] else None)


class Mul(Function):
    broadcasting = True

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, grad):
        # z = x * y; dz/dx = y, dz/dy = x
        x, y = ctx.saved
        gx, gy = ctx.needs_input_grad
        return (grad * y if gx else None), (grad * x if gy else None)


class Div(Function):
    broadcasting = True

    @staticmethod
    def forward(ctx, x, y):
        z = x / y
        ctx.save_for_backward(y, z)
        return z

    @staticmethod
    def backward(ctx, grad):
        # z = x / y; dz/dx = 1 / y, dz/dy = -x / y**2 = -z / y
        y, z = ctx.saved
        gx = grad / y
        return gx, (-(gx * z) if ctx.needs_input_grad[1] else None)


class Pow(Function):
    broadcasting = True

    @staticmethod
    def forward(ctx, x, p):
        z = x ** p
        ctx.save_for_backward(x, p, z)
        return z

    @staticmethod
    def backward(ctx, grad):
        # z = x ** p; dz/dx = p * x ** (p - 1), dz/dp = z * log(x)
        x, p, z = ctx.saved
        need_x, need_p = ctx.needs_input_grad
        return (_pow_grad_x(grad, x, p) if need_x else None), (_pow_grad_p(grad, x, p, z) if need_p else None)


def _pow_grad_x(grad, x, p):
    """``grad * p * x ** (p - 1)``, and 0 where p = 0 meets x = 0 (PyTorch's value; the formula
    gives 0 * inf = NaN there). This is what makes the second derivative of x**1 and the third
    of x**2 at 0 come out 0: their last rule is that of x**0. Elsewhere the formula stands, also
    at p = 0 where it is 0 too, so that its derivative in p (1 / x) is not cut off. Masked entries
    use the exponent 1 instead, so that nothing there is inf or NaN, not even in the masked
    branch's own derivative."""
    if isinstance(p, (int, float)):  # a constant exponent: x**0 has derivative 0 at every x
        return rules.zeros_like(x) if p == 0 else grad * p * x ** (p - 1)
    masked = ((p.data if isinstance(p, Tensor) else p) == 0) & ((x.data if isinstance(x, Tensor) else x) == 0)
    return rules.where(masked, 0, grad * p * x ** rules.where(masked, 1, p - 1))


def _pow_grad_p(grad, x, p, z):
    """``grad * z * log(x)``, and 0 where x = 0 and p >= 0 (PyTorch's value; the formula gives
    0 * -inf = NaN there, or 1 * -inf at p = 0). Masked entries take log(1) = 0 instead."""
    pr = p.data if isinstance(p, Tensor) else p
    if isinstance(x, (int, float)):  # a constant base (``2.0 ** t``)
        if x != 0:
            return grad * z * rules.log(x)
        # 0 ** p: 0 where p >= 0; z * log(0) = inf * -inf = -inf where p < 0
        return grad * z * rules.where(pr < 0, -math.inf, 0.0).astype(pr.dtype)
    masked = ((x.data if isinstance(x, Tensor) else x) == 0) & (pr >= 0)
    return grad * z * rules.log(rules.where(masked, 1, x))


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        # y = -x; dy/dx = -1
        return -grad


# -- nonlinearities

class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = backend.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        # y = exp(x); dy/dx = y
        (y,) = ctx.saved
        return grad * y


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.log(x)

    @staticmethod
    def backward(ctx, grad):
        # y = log(x); dy/dx = 1 / x
        (x,) = ctx.saved
        return grad / x


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        y = backend.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        # y = sqrt(x); dy/dx = 1 / (2 y)
        (y,) = ctx.saved
        return grad / (y * 2)


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        y = backend.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        # y = tanh(x); dy/dx = 1 - y**2
        (y,) = ctx.saved
        if isinstance(grad, Tensor):  # create_graph: the formula as recorded ops
            return grad * (1 - y * y)
        return backend.tanh_grad(grad, y)  # the same formula in one new array instead of three


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        y = backend.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        # y = 1 / (1 + exp(-x)); dy/dx = y (1 - y)
        (y,) = ctx.saved
        if isinstance(grad, Tensor):  # create_graph: the formula as recorded ops
            return grad * (y * (1 - y))
        return backend.sigmoid_grad(grad, y)  # the same formula in one new array instead of three


class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x > 0)
        return backend.maximum(x, 0)  # not x * mask: -inf * 0 would be NaN

    @staticmethod
    def backward(ctx, grad):
        # y = max(x, 0); dy/dx = [x > 0] (a constant mask: the second derivative is 0)
        (mask,) = ctx.saved
        return grad * mask


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        s = backend.sign(x)
        ctx.save_for_backward(s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        # y = |x|; dy/dx = sign(x) (0 at 0, as PyTorch)
        (s,) = ctx.saved
        return grad * s


# -- selection

class Maximum(Function):
    broadcasting = True

    @staticmethod
    def forward(ctx, x, y):
        z = backend.maximum(x, y)
        w = ((x > y) + (x == y) * 0.5).astype(z.dtype)  # ties split the gradient evenly, as PyTorch does
        ctx.save_for_backward(w)
        return z

    @staticmethod
    def backward(ctx, grad):
        # z = max(x, y); dz/dx = w = [x > y] (+1/2 at ties), dz/dy = 1 - w  (Minimum: w = [x < y] ...)
        (w,) = ctx.saved
        return grad * w, (grad - grad * w if ctx.needs_input_grad[1] else None)


class Minimum(Maximum):
    """Same backward as Maximum: the weights ``w`` say which input was selected."""

    @staticmethod
    def forward(ctx, x, y):
        z = backend.minimum(x, y)
        w = ((x < y) + (x == y) * 0.5).astype(z.dtype)  # not in place: 0-d inputs give NumPy scalars
        ctx.save_for_backward(w)
        return z


class Where(Function):
    broadcasting = True

    @staticmethod
    def forward(ctx, cond, x, y):
        ctx.save_for_backward(cond)
        return backend.where(cond, x, y)

    @staticmethod
    def backward(ctx, grad):
        # z = cond ? x : y; dz/dx = cond, dz/dy = not cond
        (cond,) = ctx.saved
        _, need_x, need_y = ctx.needs_input_grad
        gx = grad * cond if need_x else None
        gy = grad * ~cond if need_y else None
        return None, gx, gy


class Clip(Function):
    @staticmethod
    def forward(ctx, x, lo=None, hi=None):
        mask = True
        if lo is not None:
            mask = x >= lo
        if hi is not None:
            mask = mask & (x <= hi)
        ctx.save_for_backward(mask)
        return backend.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, grad):
        # y = min(max(x, lo), hi); dy/dx = [lo <= x <= hi] (PyTorch's clamp passes at the bounds)
        (mask,) = ctx.saved
        return grad * mask
