"""Shape ops: reshape, transpose, broadcast (expand) and its adjoint sum_to, indexing, cat, stack.

These move or copy elements without arithmetic, so each backward is the inverse
movement: reshape back, transpose by the inverse permutation, sum a broadcast
gradient down, scatter an indexed gradient into zeros.
"""

from __future__ import annotations


from .. import backend
from ..autograd import Function
from ..errors import IndexingError, ShapeError
from .rules import broadcast_to, scatter_add, sum_to


# -- ops

class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ShapeError(f"reshape: cannot reshape {tuple(x.shape)} ({x.size} elements) "
                             f"into {tuple(shape)}") from None

    @staticmethod
    def backward(ctx, grad):
        # y = reshape(x); dx = reshape(dy) back to x's shape
        return grad.reshape(ctx.in_shape)


class Transpose(Function):
    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, grad):
        # y = transpose(x, axes); dx = transpose(dy, inverse permutation of axes)
        inverse = [0] * len(ctx.axes)
        for i, a in enumerate(ctx.axes):
            inverse[a] = i
        return grad.transpose(tuple(inverse))


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        try:
            return backend.broadcast_to(x, shape)
        except ValueError:
            raise ShapeError(f"expand: cannot broadcast {tuple(x.shape)} to {tuple(shape)}") from None

    @staticmethod
    def backward(ctx, grad):
        # y = broadcast_to(x, shape): each x element is copied, so dx sums the copies' gradients
        return sum_to(grad, ctx.in_shape)


class SumTo(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return backend.sum_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        # y = sum_to(x, shape) (the adjoint of broadcasting); dx = broadcast_to(dy, x.shape)
        return broadcast_to(grad, ctx.in_shape)


class GetItem(Function):
    @staticmethod
    def forward(ctx, x, index):
        ctx.in_shape, ctx.index = x.shape, index
        try:
            return x[index]
        except IndexError as exc:
            raise IndexingError(f"getitem: index {index!r} into shape {tuple(x.shape)}: {exc}") from None

    @staticmethod
    def backward(ctx, grad):
        # y = x[index]; dx = zeros with dy added at index (repeated indices add up)
        return scatter_add(grad, ctx.in_shape, ctx.index)


class IndexAdd(Function):
    """``zeros(shape)`` with ``x`` added at ``index``: the adjoint of indexing."""

    @staticmethod
    def forward(ctx, x, shape, index):
        ctx.index = index
        return backend.scatter_add(shape, index, x)

    @staticmethod
    def backward(ctx, grad):
        # y = scatter_add(x, index); dx = dy[index]
        return grad[ctx.index]


class Cat(Function):
    @staticmethod
    def forward(ctx, *xs, axis):
        first = xs[0].shape
        for x in xs[1:]:
            if len(x.shape) != len(first) or any(a != b for k, (a, b) in enumerate(zip(x.shape, first)) if k != axis):
                shapes = ", ".join(str(tuple(x.shape)) for x in xs)
                raise ShapeError(f"cat: shapes {shapes} differ outside axis {axis}")
        ctx.axis = axis
        ctx.bounds = []
        start = 0
        for x in xs:
            ctx.bounds.append((start, start + x.shape[axis]))
            start += x.shape[axis]
        return backend.concatenate(list(xs), axis)

    @staticmethod
    def backward(ctx, grad):
        # y = cat(x_1, ..., x_n); dx_i = the slice of dy that x_i filled
        lead = (slice(None),) * ctx.axis
        return tuple(grad[lead + (slice(a, b),)] for a, b in ctx.bounds)


class Stack(Function):
    @staticmethod
    def forward(ctx, *xs, axis):
        first = xs[0].shape
        if any(x.shape != first for x in xs):
            shapes = ", ".join(str(tuple(x.shape)) for x in xs)
            raise ShapeError(f"stack: all tensors must have the same shape, got {shapes}")
        ctx.axis, ctx.n = axis, len(xs)
        return backend.stack(list(xs), axis)

    @staticmethod
    def backward(ctx, grad):
        # y = stack(x_1, ..., x_n); dx_i = dy[..., i, ...] along the new axis
        lead = (slice(None),) * ctx.axis
        return tuple(grad[lead + (i,)] for i in range(ctx.n))


class Contiguous(Function):
    """The same values in C order (a copy only when the input is a strided view, e.g. a transpose).

    BLAS multiplies by a row-major matrix faster than by a transposed view of one, so a weight
    used at every step of a loop is worth one copy before the loop.
    """

    @staticmethod
    def forward(ctx, x):
        return backend.ascontiguousarray(x)

    @staticmethod
    def backward(ctx, grad):
        # y = x (another memory layout); dy/dx = 1
        return grad


class Clone(Function):
    """A copy of x that owns its memory (PyTorch's ``clone``)."""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        # y = x (a copy); dy/dx = 1
        return grad
