"""Tensor: an array, its gradient, and the node (op) that produced it.

Every operator and method below is one call into an op from ``ops/``; the op
records itself on the tape when an input requires grad. Methods follow PyTorch's
names, with NumPy's ``axis``/``keepdims`` for reductions.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from typing import Any

from . import backend
from .backend import DTypeLike
from .errors import BackwardError, DTypeError, ShapeError

Scalar = int | float | bool
Axis = int | Sequence[int] | None


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    ``Tensor(array)`` wraps a NumPy or CuPy array without copying (like
    ``torch.from_numpy``); ``tinygrad_rnn.tensor(data)`` copies any data.

    Attributes:
        data: the backend array.
        grad: the accumulated gradient (a Tensor), or None.
        requires_grad: whether ops on this tensor are recorded.
        node: the op that produced it (None for leaves); also ``grad_fn``.
    """

    __slots__ = ("data", "grad", "requires_grad", "node", "__weakref__")
    __array_ufunc__ = None  # make ``ndarray * Tensor`` call Tensor.__rmul__ instead of converting
    __hash__ = object.__hash__  # defining __eq__ below would otherwise remove hashing

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        if not isinstance(data, backend.CPU_ARRAY) and backend.device_of(data) == "cpu":
            data = backend.as_array(data, None, "cpu")
        self.data = data
        self.grad: Tensor | None = None
        self.node = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------ attributes
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def grad_fn(self) -> Any:
        return self.node

    @property
    def is_leaf(self) -> bool:
        return self.node is None

    @property
    def T(self) -> Tensor:  # noqa: N802  (NumPy's and PyTorch's name)
        return self.transpose()

    def size(self, axis: int | None = None) -> Any:
        """The shape, or the length of one axis."""
        return self.shape if axis is None else self.shape[axis]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        return (self[i] for i in range(len(self)))

    # ------------------------------------------------------------ conversion
    def numpy(self) -> Any:
        """The values as a NumPy array (shares memory on the CPU; copies from the GPU)."""
        return backend.to_numpy(self.data)

    def item(self) -> Any:
        if self.data.size != 1:
            raise ShapeError(f"item: only a tensor with one element has an item, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __format__(self, spec: str) -> str:
        """A 0-d tensor formats as its number (``f"{loss:.3f}"``), as in PyTorch; others as their repr."""
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                             "use (t).any() or (t).all() on the comparison")
        return bool(self.item())

    def detach(self) -> Tensor:
        """The same array, cut from the graph (no grad flows back through it)."""
        return Tensor(self.data)

    def detach_(self) -> Tensor:
        self.node, self.requires_grad = None, False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not backend.is_float(self.data.dtype):
            raise DTypeError(f"requires_grad: only float tensors can require grad, this one is {self.dtype}")
        if not requires_grad and self.node is not None:
            raise ValueError("requires_grad_(False) on a non-leaf: use detach() instead")
        self.requires_grad = requires_grad
        return self

    def to(self, target: Any) -> Tensor:
        """``to("cpu" | "cuda")`` moves the tensor; ``to(dtype)`` casts it. Both are differentiable."""
        if isinstance(target, str) and (target.startswith(("cpu", "cuda"))):
            device = backend.check_device(target)
            return self if device == self.device else ToDevice.apply(self, device=device)
        return self.astype(target)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def astype(self, dtype: DTypeLike) -> Tensor:
        d = backend.to_dtype(dtype)
        if d == self.data.dtype:
            return self  # as PyTorch's .to(): the tensor itself
        if self.requires_grad and not backend.is_float(d):
            return Tensor(self.data.astype(d))  # integers carry no gradient
        return Cast.apply(self, dtype=d)

    def float(self) -> Tensor:
        return self.astype(backend.float32)

    def double(self) -> Tensor:
        return self.astype(backend.float64)

    def long(self) -> Tensor:
        return self.astype(backend.int64)

    # ------------------------------------------------------------ autograd
    def backward(self, grad: Any = None, retain_graph: bool | None = None, create_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into the ``.grad`` of every leaf it depends on.

        Args:
            grad: upstream gradient of this tensor's shape; optional for a one-element tensor.
            retain_graph: keep the saved arrays for another backward through the same graph
                (by default only when ``create_graph``).
            create_graph: record the backward pass (for second derivatives).
        """
        grads = None if grad is None else [grad]  # one output: a list here is data, not one grad per output
        autograd.backward(self, grads, retain_graph=retain_graph, create_graph=create_graph)  # None: = create_graph

    def __repr__(self) -> str:
        body = repr(self.numpy()).replace("array(", "tensor(").replace("\n", "\n ")
        extras = []
        if self.dtype not in (backend.get_default_dtype(), backend.int64, backend.bool_):
            extras.append(f"dtype={self.dtype}")
        if "dtype=" in body:
            body = body[: body.rfind(", dtype=")] + ")"
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.node is not None:
            extras.append(f"grad_fn=<{self.node.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return body[:-1] + "".join(", " + e for e in extras) + ")" if extras else body

    # ------------------------------------------------------------ arithmetic
    def __add__(self, other: Any) -> Tensor:
        return Add.apply(*_pair(self, other, "add"))

    def __radd__(self, other: Any) -> Tensor:
        return Add.apply(*_pair(self, other, "add", reverse=True))

    def __sub__(self, other: Any) -> Tensor:
        return Sub.apply(*_pair(self, other, "sub"))

    def __rsub__(self, other: Any) -> Tensor:
        return Sub.apply(*_pair(self, other, "sub", reverse=True))

    def __mul__(self, other: Any) -> Tensor:
        return Mul.apply(*_pair(self, other, "mul"))

    def __rmul__(self, other: Any) -> Tensor:
        return Mul.apply(*_pair(self, other, "mul", reverse=True))

    def __truediv__(self, other: Any) -> Tensor:
        return Div.apply(*_pair(self, other, "div"))

    def __rtruediv__(self, other: Any) -> Tensor:
        return Div.apply(*_pair(self, other, "div", reverse=True))

    def __pow__(self, other: Any) -> Tensor:
        return Pow.apply(*_pair(self, other, "pow"))

    def __rpow__(self, other: Any) -> Tensor:
        return Pow.apply(*_pair(self, other, "pow", reverse=True))

    # in-place arithmetic: allowed only where nothing is recorded (updates under no_grad, plain data)
    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace("add", other)

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace("sub", other)

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace("mul", other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace("div", other)

    def _inplace(self, op: str, other: Any) -> Tensor:
        """``x op= y`` keeps the Tensor object (``w -= lr * w.grad`` under ``no_grad``, as in PyTorch).

        The result is a new array bound to this Tensor, not a write into the old one: a graph
        recorded earlier may have saved the old array for its backward, and must keep seeing
        the values it was computed with. Refused on tensors that take part in autograd.
        """
        if autograd.STATE.grad_enabled and (self.requires_grad or getattr(other, "requires_grad", False)):
            raise BackwardError(f"in-place {op} on a tensor that takes part in autograd: write x = x {_SYM[op]} y, "
                                "or update weights inside `with no_grad():`")
        x, y = _pair(self, other, op)
        y = y.data if isinstance(y, Tensor) else y
        if x is not self:  # _pair cast self (an int tensor meeting a float one): the result would not fit
            raise DTypeError(f"in-place {op}: a {self.dtype} tensor cannot hold the {op} with a {x.dtype} operand")
        a = self.data
        try:
            out = a + y if op == "add" else a - y if op == "sub" else a * y if op == "mul" else a / y
        except ValueError:
            out = None
        if out is None or out.shape != a.shape:
            raise ShapeError(f"in-place {op}: {_shape_of(y)} does not broadcast to {self.shape}")
        if out.dtype != a.dtype:
            raise DTypeError(f"in-place {op}: the result is {out.dtype}, the tensor {a.dtype}; "
                             f"write x = x {_SYM[op]} y")
        self.data = out
        return self

    def __neg__(self) -> Tensor:
        return Neg.apply(self)

    def __pos__(self) -> Tensor:
        return self

    def __matmul__(self, other: Any) -> Tensor:
        return matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return matmul(_as_tensor(other, self), self)

    # comparisons give tensors that carry no gradient
    def __lt__(self, other: Any) -> Tensor:
        return Tensor(self.data < _raw(other))

    def __le__(self, other: Any) -> Tensor:
        return Tensor(self.data <= _raw(other))

    def __gt__(self, other: Any) -> Tensor:
        return Tensor(self.data > _raw(other))

    def __ge__(self, other: Any) -> Tensor:
        return Tensor(self.data >= _raw(other))

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return Tensor(self.data == _raw(other))

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return Tensor(self.data != _raw(other))

    def __invert__(self) -> Tensor:
        return Tensor(~self.data)

    def __and__(self, other: Any) -> Tensor:
        return Tensor(self.data & _raw(other))

    def __or__(self, other: Any) -> Tensor:
        return Tensor(self.data | _raw(other))

    def any(self) -> bool:
        return bool(self.data.any())

    def all(self) -> bool:
        return bool(self.data.all())

    # ------------------------------------------------------------ elementwise
    def exp(self) -> Tensor:
        return Exp.apply(self)

    def log(self) -> Tensor:
        return Log.apply(self)

    def sqrt(self) -> Tensor:
        return Sqrt.apply(self)

    def tanh(self) -> Tensor:
        return Tanh.apply(self)

    def sigmoid(self) -> Tensor:
        return Sigmoid.apply(self)

    def relu(self) -> Tensor:
        return Relu.apply(self)

    def abs(self) -> Tensor:
        return Abs.apply(self)

    def __abs__(self) -> Tensor:
        return Abs.apply(self)

    def clip(self, min: Scalar | None = None, max: Scalar | None = None) -> Tensor:  # noqa: A002
        """Limit values to [min, max]; the gradient passes where min <= x <= max."""
        return Clip.apply(self, lo=min, hi=max)

    clamp = clip

    def maximum(self, other: Any) -> Tensor:
        return Maximum.apply(*_pair(self, other, "maximum"))

    def minimum(self, other: Any) -> Tensor:
        return Minimum.apply(*_pair(self, other, "minimum"))

    # ------------------------------------------------------------ reductions
    def sum(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return Sum.apply(self, axis=_axes(axis, self.ndim), keepdims=keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        axes = _axes(axis, self.ndim)
        n = _count(self.shape, axes)
        return Sum.apply(self, axis=axes, keepdims=keepdims) * (1.0 / n if n else float("nan"))

    def var(self, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
        """Variance (NumPy's ``ddof=0`` by default), composed from differentiable ops."""
        axes = _axes(axis, self.ndim)
        d = self - self.mean(axis=axes, keepdims=True)
        dof = _count(self.shape, axes) - ddof
        return (d * d).sum(axis=axes, keepdims=keepdims) * (1.0 / dof if dof > 0 else float("nan"))  # as NumPy

    def std(self, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
        return self.var(axis, keepdims, ddof).sqrt()

    def max(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Maximum values (ties share the gradient equally); indices are ``argmax``."""
        return Max.apply(self, axis=_axes(axis, self.ndim), keepdims=keepdims)

    def min(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return Min.apply(self, axis=_axes(axis, self.ndim), keepdims=keepdims)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return Tensor(backend.as_ndarray(self.data.argmax(axis=axis, keepdims=keepdims)))

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return Tensor(backend.as_ndarray(self.data.argmin(axis=axis, keepdims=keepdims)))

    def logsumexp(self, axis: Axis = -1, keepdims: bool = False) -> Tensor:
        return LogSumExp.apply(self, axis=_axes(axis, self.ndim), keepdims=keepdims)

    def softmax(self, axis: int = -1) -> Tensor:
        return Softmax.apply(self, axis=_softmax_axis(axis, self.ndim))

    def log_softmax(self, axis: int = -1) -> Tensor:
        return LogSoftmax.apply(self, axis=_softmax_axis(axis, self.ndim))

    # ------------------------------------------------------------ shape
    def reshape(self, *shape: Any) -> Tensor:
        """``reshape(2, 3)`` or ``reshape((2, 3))``; one entry may be -1."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return Reshape.apply(self, shape=shape)  # also to the same shape: a new tensor, never ``self``

    view = reshape

    def clone(self) -> Tensor:
        """A copy that owns its memory; gradients flow back through it."""
        return Clone.apply(self)

    def contiguous(self) -> Tensor:
        """The same values in row-major memory (a copy only if this is a strided view, e.g. a transpose)."""
        return Contiguous.apply(self)

    def flatten(self) -> Tensor:
        return self.reshape(-1)

    def transpose(self, *axes: Any) -> Tensor:
        """NumPy semantics: no axes reverses them; else a permutation (as args or a tuple)."""
        if not axes:  # no arguments: reverse the axes (an explicit empty tuple is a permutation of none)
            axes = tuple(range(self.ndim))[::-1]
        axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        if sorted(_axis(a, self.ndim) for a in axes) != list(range(self.ndim)):
            raise ShapeError(f"transpose: axes {axes} are not a permutation of the {self.ndim} axes of {self.shape}")
        return Transpose.apply(self, axes=tuple(_axis(a, self.ndim) for a in axes))

    def swapaxes(self, a: int, b: int) -> Tensor:
        axes = list(range(self.ndim))
        a, b = _axis(a, self.ndim), _axis(b, self.ndim)
        axes[a], axes[b] = axes[b], axes[a]
        return Transpose.apply(self, axes=tuple(axes))

    def expand(self, *shape: Any) -> Tensor:
        """Broadcast to ``shape`` (NumPy rules; the gradient sums over the copies)."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return Expand.apply(self, shape=shape)

    broadcast_to = expand

    def sum_to(self, shape: tuple) -> Tensor:
        """Sum over broadcast axes down to ``shape`` (the adjoint of ``expand``)."""
        return SumTo.apply(self, shape=tuple(shape))

    def squeeze(self, axis: Axis = None) -> Tensor:
        axes = _axes(axis, self.ndim) or tuple(i for i, n in enumerate(self.shape) if n == 1)
        if any(self.shape[a] != 1 for a in axes):
            raise ShapeError(f"squeeze: axis {axis} of shape {self.shape} is not of size 1")
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in axes))

    def unsqueeze(self, axis: int) -> Tensor:
        axis = _int("unsqueeze: axis", axis)
        if not -self.ndim - 1 <= axis <= self.ndim:  # a new axis may go at any of ndim + 1 places
            raise ShapeError(f"unsqueeze: axis {axis} is out of range for shape {self.shape} "
                             f"(from {-self.ndim - 1} to {self.ndim})")
        axis = axis % (self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def __getitem__(self, index: Any) -> Tensor:
        """Ints, slices (with steps), ``...``, None and integer or boolean arrays/tensors."""
        return GetItem.apply(self, index=_index(index, self))

    def split(self, split_size_or_sections: int | Sequence[int], axis: int = 0) -> tuple[Tensor, ...]:
        """PyTorch's split: pieces of ``split_size`` along ``axis`` (the last may be shorter),
        or pieces of the listed sizes."""
        axis = _axis(axis, self.ndim)
        n = self.shape[axis]
        if isinstance(split_size_or_sections, int):
            size = split_size_or_sections
            if size <= 0:
                raise ValueError(f"split: split_size must be a positive int, got {size}")
            sizes = [min(size, n - s) for s in range(0, n, size)]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n:
                raise ShapeError(f"split: sizes {sizes} add up to {sum(sizes)}, not to axis {axis} of {self.shape}")
        pieces, start, lead = [], 0, (slice(None),) * axis
        for s in sizes:
            pieces.append(self[lead + (slice(start, start + s),)])
            start += s
        return tuple(pieces)

    def chunk(self, chunks: int, axis: int = 0) -> tuple[Tensor, ...]:
        n = self.shape[_axis(axis, self.ndim)]
        return self.split(-(-n // chunks), axis)


# ---------------------------------------------------------------- helpers

_SYM = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def _shape_of(x: Any) -> tuple:
    return tuple(getattr(x, "shape", ()))


def _raw(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _as_tensor(x: Any, like: Tensor) -> Tensor:
    """An operand as a tensor on ``like``'s device: arrays keep their dtype, Python data of floats
    takes ``like``'s dtype; data that is not numbers (``[None]``, strings) is a DTypeError."""
    if isinstance(x, Tensor):
        return x
    if hasattr(x, "dtype"):
        return Tensor(backend.as_array(x, None, like.device))
    kind = backend.as_array(x, None, "cpu").dtype  # refuses objects and strings (NumPy would give NaN)
    return Tensor(backend.as_array(x, like.dtype if backend.is_float(kind) else None, like.device))


def _pair(x: Tensor, y: Any, op: str, reverse: bool = False) -> tuple[Any, Any]:
    """Operands of a binary op, in order. Python numbers pass through as constants (NumPy keeps
    the tensor's dtype for them); a float tensor meets an int/bool one by casting the latter;
    two different float dtypes are an error rather than a silent upcast. NumPy scalars count as
    Python numbers, arrays and lists as tensors (so the same dtype rules apply to them)."""
    if isinstance(y, backend.SCALAR_TYPES):  # np.float64(2.0) would otherwise upcast a float32 tensor
        y = y.item()
    if not isinstance(y, (int, float, Tensor)):
        if not isinstance(y, (list, tuple)) and not hasattr(y, "shape"):  # None, a string, an object
            raise TypeError(f"{op}: unsupported operand of type {type(y).__name__} (a Tensor, an array, "
                            "a list or a number is expected)")
        y = _as_tensor(y, x)
    if isinstance(y, Tensor):
        dx, dy = x.data.dtype, y.data.dtype
        if dx != dy:
            fx, fy = backend.is_float(dx), backend.is_float(dy)
            if fx and fy:
                raise DTypeError(f"{op}: operands have dtypes {dx} and {dy}; cast one first, "
                                 f"for example b.to('{dx}')")
            if fx:
                y = Tensor(y.data.astype(dx))
            elif fy:
                x = Tensor(x.data.astype(dy))
    return (y, x) if reverse else (x, y)


def _axis(axis: int, ndim: int) -> int:
    axis = _int("axis", axis)
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise ShapeError(f"axis {axis} is out of range for a tensor with {ndim} dimensions")
    return axis % ndim if ndim else 0


def _int(what: str, value: Any) -> int:
    """``value`` as an int (NumPy integers too), or a TypeError that says what was expected."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {value!r}") from None


def _softmax_axis(axis: int, ndim: int) -> int | None:
    """The axis of softmax/log_softmax; a 0-d tensor is its own row (axis None: NumPy accepts axis 0
    there, CuPy does not)."""
    a = _axis(axis, ndim)
    return a if ndim else None


def _axes(axis: Axis, ndim: int) -> tuple[int, ...] | None:
    """Normalise ``axis`` to a sorted tuple of non-negative ints, or None for all axes."""
    if axis is None:
        return None
    axes = tuple(sorted(_axis(a, ndim) for a in (axis if isinstance(axis, (tuple, list)) else (axis,))))
    return axes if ndim else ()  # a 0-d tensor accepts axis 0 or -1 (as PyTorch) but has no axis to reduce


def _count(shape: tuple, axes: tuple | None) -> int:
    n = 1
    for i, s in enumerate(shape):
        if axes is None or i in axes:
            n *= s
    return n


def _index(index: Any, x: Tensor) -> Any:
    """Replace tensors and lists in an index by arrays on ``x``'s device."""
    if isinstance(index, tuple):
        return tuple(_index(i, x) for i in index)
    if isinstance(index, Tensor):
        if backend.is_float(index.dtype):
            raise DTypeError(f"getitem: index tensors must be integer or bool, got {index.dtype}")
        return index.data
    if isinstance(index, list):
        return backend.as_array(index, None, x.device)
    return index


def matmul(x: Tensor, y: Any) -> Tensor:
    """Matrix product with NumPy semantics (1-D operands, broadcast batch dimensions)."""
    y = _as_tensor(y, x)
    xs, ys = x.shape, y.shape
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError(f"matmul: {xs} @ {ys}: 0-d operands are not allowed; use *")
    inner_y = ys[-2] if y.ndim > 1 else ys[0]
    if xs[-1] != inner_y:
        raise ShapeError(f"matmul: {xs} @ {ys}: inner dimensions {xs[-1]} and {inner_y} differ")
    if x.data.dtype != y.data.dtype:
        raise DTypeError(f"matmul: operands have dtypes {x.dtype} and {y.dtype}; cast one first")
    if x.ndim >= 2 and y.ndim >= 2:
        return MatMul.apply(x, y)
    out = MatMul.apply(x.reshape(1, -1) if x.ndim == 1 else x, y.reshape(-1, 1) if y.ndim == 1 else y)
    if x.ndim == 1:
        out = out.reshape(out.shape[:-2] + out.shape[-1:])
    if y.ndim == 1:
        out = out.reshape(out.shape[:-1])
    return out


# The ops wrap their outputs in Tensor, so they are imported once Tensor exists.
from . import autograd  # noqa: E402
from .ops.convert import Cast, ToDevice  # noqa: E402
from .ops.elementwise import (  # noqa: E402
    Abs, Add, Clip, Div, Exp, Log, Maximum, Minimum, Mul, Neg, Pow, Relu, Sigmoid, Sqrt, Sub, Tanh,
)
from .ops.linalg import MatMul  # noqa: E402
from .ops.reduce import LogSoftmax, LogSumExp, Max, Min, Softmax, Sum  # noqa: E402
from .ops.shape import Clone, Contiguous, Expand, GetItem, Reshape, SumTo, Transpose  # noqa: E402
