"""Functions over several tensors (cat, stack, where, ...) and the free forms of Tensor methods."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import backend
from .errors import DTypeError, ShapeError
from .ops.elementwise import Maximum, Minimum, Where
from .ops.linalg import Addmm
from .ops.shape import Cat, Stack
from .tensor import Tensor, _as_tensor, _axis, _pair


def _same_dtype(op: str, tensors: Sequence[Tensor]) -> None:
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected a sequence of Tensors, got {type(t).__name__} at position {i}")
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        raise DTypeError(f"{op}: tensors have dtypes {sorted(map(str, dtypes))}; cast them to one dtype first")


def cat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (their other axes must agree)."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("cat: needs at least one tensor")
    _same_dtype("cat", tensors)
    return Cat.apply(*tensors, axis=_axis(axis, tensors[0].ndim))


concatenate = cat


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("stack: needs at least one tensor")
    _same_dtype("stack", tensors)
    return Stack.apply(*tensors, axis=_axis(axis, tensors[0].ndim + 1))


def where(cond: Any, x: Any, y: Any) -> Tensor:
    """``x`` where ``cond`` is true, else ``y`` (broadcasting; no gradient flows to ``cond``)."""
    c = cond.data if isinstance(cond, Tensor) else cond
    if not hasattr(c, "dtype") or c.dtype != backend.bool_:
        raise DTypeError("where: the condition must be a bool tensor (a comparison such as x > 0)")
    like = x if isinstance(x, Tensor) else y
    if not isinstance(like, Tensor):
        raise TypeError("where: x or y must be a Tensor")
    x, y = _pair(like, y if like is x else x, "where", reverse=like is not x)
    return Where.apply(c, x, y)


def maximum(x: Tensor, y: Any) -> Tensor:
    """Elementwise maximum (ties split the gradient)."""
    return Maximum.apply(*_pair(_as_tensor(x, y) if not isinstance(x, Tensor) else x, y, "maximum"))


def minimum(x: Tensor, y: Any) -> Tensor:
    """Elementwise minimum (ties split the gradient)."""
    return Minimum.apply(*_pair(_as_tensor(x, y) if not isinstance(x, Tensor) else x, y, "minimum"))


def addmm(c: Any, a: Tensor, b: Tensor) -> Tensor:
    """``c + a @ b`` in one op, for 2-D ``a`` (n, k) and ``b`` (k, m); ``c`` broadcasts to (n, m).

    >>> import tinygrad_rnn as tg
    >>> tg.addmm(tg.ones(2), tg.ones(1, 3), tg.ones(3, 2)).tolist()
    [[4.0, 4.0]]
    """
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"addmm: a and b must be 2-D, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[1] != b.shape[0]:
        raise ShapeError(f"addmm: {tuple(a.shape)} @ {tuple(b.shape)}: inner dimensions {a.shape[1]} and "
                         f"{b.shape[0]} differ")
    if a.dtype != b.dtype:
        raise DTypeError(f"addmm: a and b have dtypes {a.dtype} and {b.dtype}; cast one first")
    out_shape = (a.shape[0], b.shape[1])
    c_shape = tuple(getattr(c, "shape", ()))
    try:
        fits = backend.broadcast_shapes(c_shape, out_shape) == out_shape
    except ValueError:
        fits = False
    if not fits:
        raise ShapeError(f"addmm: c of shape {c_shape} does not broadcast to the product's shape {out_shape}")
    if isinstance(c, Tensor) and c.dtype != a.dtype:
        raise DTypeError(f"addmm: c has dtype {c.dtype}, the product {a.dtype}; cast one first")
    return Addmm.apply(c, a, b)


def one_hot(index: Tensor, num_classes: int, dtype: Any = None) -> Tensor:
    """Integer tensor of shape S to a (S..., num_classes) tensor of 0/1 (no gradient).

    An index outside [0, num_classes) is a ValueError, except for a float ``dtype`` on the GPU:
    there the check would make the host wait for the device, so that index's row is NaN instead
    (never a silent row of zeros).
    """
    if backend.is_float(index.dtype):
        raise DTypeError(f"one_hot: indices must be integers, got {index.dtype}")
    d, data = backend.to_dtype(dtype), index.data
    if backend.reading_blocks(data) and backend.is_float(d):
        return Tensor(backend.one_hot(data, num_classes, d, nan_out_of_range=True))
    # One yes/no question about the values (not their min and max): capture (tinygrad_rnn.replay)
    # turns a value read to Python into a check of that value on every replay.
    if index.numel() and bool(((data < 0) | (data >= num_classes)).any()):
        raise ValueError(f"one_hot: indices must lie in [0, {num_classes}), got "
                         f"[{int(data.min())}, {int(data.max())}]")
    return Tensor(backend.one_hot(data, num_classes, d))


def _axis_or_dim(op: str, axis: int, dim: int | None) -> int:
    """PyTorch code says ``dim=``, NumPy code ``axis=``: accept either (not both)."""
    if dim is None:
        return axis
    if axis != -1 and axis != dim:
        raise TypeError(f"{op}: got both axis={axis} and dim={dim}; pass one of them")
    return dim


def softmax(x: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis`` (``dim`` is PyTorch's name for it); same shape as x."""
    return x.softmax(_axis_or_dim("softmax", axis, dim))


def log_softmax(x: Tensor, axis: int = -1, *, dim: int | None = None) -> Tensor:
    """x - logsumexp(x) along ``axis``, computed stably; same shape as x."""
    return x.log_softmax(_axis_or_dim("log_softmax", axis, dim))


def logsumexp(x: Tensor, axis: Any = -1, keepdims: bool = False) -> Tensor:
    return x.logsumexp(axis, keepdims)


def exp(x: Tensor) -> Tensor:
    return x.exp()


def log(x: Tensor) -> Tensor:
    return x.log()


def sqrt(x: Tensor) -> Tensor:
    return x.sqrt()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def relu(x: Tensor) -> Tensor:
    return x.relu()
