"""Functions for writing backward rules: each works on raw backend arrays AND on Tensors.

A backward rule runs in two ways. In a normal ``backward()`` the engine hands it raw NumPy or
CuPy arrays: nothing is recorded, nothing is wasted. Under ``create_graph=True`` it hands the
same rule Tensors, so that the rule's own ops are recorded and can be differentiated again
(second derivatives, Hessian-vector products). One rule, two uses: see docs/autograd.md.

Operators (``+ - * / ** @``, unary ``-``, comparisons), ``abs()`` and the methods ``.sum(axis,
keepdims)``, ``.reshape``, ``.transpose``, ``.astype`` and indexing already work on both kinds.
For everything else use the functions below, never NumPy's or ``backend``'s: ``np.exp(t)`` or
``backend.exp(t)`` on a Tensor fails (the engine then raises a ``BackwardError`` naming your op
and the function here to use instead), and computing on ``t.data`` would silently drop the
second-order graph (``testing.gradgradcheck`` catches that).

Example, a softplus op written from public names::

    from tinygrad_rnn import Function
    from tinygrad_rnn.ops import rules

    class Softplus(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return rules.log(1 + rules.exp(x))

        @staticmethod
        def backward(ctx, grad):
            # y = log(1 + exp(x)); dy/dx = sigmoid(x)
            (x,) = ctx.saved
            return grad * rules.sigmoid(x)
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..gradsum import SparseGrad
from ..tensor import Tensor

__all__ = [
    "abs", "broadcast_to", "clip", "exp", "log", "maximum", "minimum", "relu", "scatter_add", "sigmoid",
    "sign", "sqrt", "sum_to", "tanh", "where", "zeros_like",
]


# ---------------------------------------------------------------- elementwise

def exp(x: Any) -> Any:
    """``e ** x``, elementwise."""
    return _ew.Exp.apply(x) if isinstance(x, Tensor) else backend.exp(x)


def log(x: Any) -> Any:
    """Natural logarithm, elementwise (a Python number stays a Python float)."""
    if isinstance(x, (int, float)):  # a constant operand: a Python float never upcasts a float32 array
        return float(backend.log(x))
    return _ew.Log.apply(x) if isinstance(x, Tensor) else backend.log(x)


def sqrt(x: Any) -> Any:
    """Square root, elementwise."""
    return _ew.Sqrt.apply(x) if isinstance(x, Tensor) else backend.sqrt(x)


def tanh(x: Any) -> Any:
    """Hyperbolic tangent, elementwise."""
    return _ew.Tanh.apply(x) if isinstance(x, Tensor) else backend.tanh(x)


def sigmoid(x: Any) -> Any:
    """The logistic function ``1 / (1 + exp(-x))``, elementwise (stable for large ``|x|``)."""
    return _ew.Sigmoid.apply(x) if isinstance(x, Tensor) else backend.sigmoid(x)


def relu(x: Any) -> Any:
    """``max(x, 0)``, elementwise."""
    return _ew.Relu.apply(x) if isinstance(x, Tensor) else backend.maximum(x, 0)


def abs(x: Any) -> Any:  # noqa: A001  (NumPy's and PyTorch's name)
    """``|x|``, elementwise (its derivative is ``sign(x)``, 0 at 0)."""
    return _ew.Abs.apply(x) if isinstance(x, Tensor) else backend.get_xp(x).abs(x)


def sign(x: Any) -> Any:
    """-1, 0 or 1, elementwise. A constant: its derivative is zero wherever it exists, so on a
    Tensor it returns a Tensor that does not require grad."""
    return Tensor(backend.sign(x.data)) if isinstance(x, Tensor) else backend.sign(x)


def clip(x: Any, lo: Any = None, hi: Any = None) -> Any:
    """``x`` limited to ``[lo, hi]`` (either bound may be None); the gradient passes where
    ``lo <= x <= hi``."""
    return _ew.Clip.apply(x, lo=lo, hi=hi) if isinstance(x, Tensor) else backend.clip(x, lo, hi)


def maximum(x: Any, y: Any) -> Any:
    """Elementwise maximum, broadcasting (ties split the gradient evenly, as in PyTorch)."""
    if isinstance(x, Tensor) or isinstance(y, Tensor):
        return _ew.Maximum.apply(x, y)
    return backend.maximum(x, y)


def minimum(x: Any, y: Any) -> Any:
    """Elementwise minimum, broadcasting (ties split the gradient evenly, as in PyTorch)."""
    if isinstance(x, Tensor) or isinstance(y, Tensor):
        return _ew.Minimum.apply(x, y)
    return backend.minimum(x, y)


def where(cond: Any, x: Any, y: Any) -> Any:
    """``x`` where the bool ``cond`` holds, else ``y``, broadcasting. ``cond`` is a constant (an
    array or a Tensor that carries no gradient); gradients flow to ``x`` and ``y`` where selected."""
    c = cond.data if isinstance(cond, Tensor) else cond
    if isinstance(x, Tensor) or isinstance(y, Tensor):
        return _ew.Where.apply(c, x, y)
    return backend.where(c, x, y)


def zeros_like(x: Any) -> Any:
    """Zeros of ``x``'s shape, dtype and device (a Tensor that carries no gradient for a Tensor)."""
    if isinstance(x, Tensor):
        return Tensor(backend.zeros(x.shape, x.dtype, x.device))
    return backend.get_xp(x).zeros_like(x)


# ---------------------------------------------------------------- shapes

def broadcast_to(x: Any, shape: tuple) -> Any:
    """``x`` broadcast to ``shape`` (NumPy rules; the adjoint is ``sum_to``)."""
    return _shape.Expand.apply(x, shape=shape) if isinstance(x, Tensor) else backend.broadcast_to(x, shape)


def sum_to(x: Any, shape: tuple) -> Any:
    """``x`` summed over its broadcast axes down to ``shape`` (the adjoint of ``broadcast_to``)."""
    return _shape.SumTo.apply(x, shape=shape) if isinstance(x, Tensor) else backend.sum_to(x, shape)


def scatter_add(x: Any, shape: tuple, index: Any) -> Any:
    """``zeros(shape)`` with ``x`` added at ``index`` (repeated indices add up): indexing's adjoint.

    On arrays the result stays sparse (a ``SparseGrad``), which only the engine consumes: return
    it from a rule as it is. The engine adds it into one buffer per input, so T slices of one
    tensor cost O(T) in backward, not O(T^2)."""
    if isinstance(x, Tensor):
        return _shape.IndexAdd.apply(x, shape=shape, index=index)
    return SparseGrad(shape, index, x)


# The op modules import this one: bound last (as modules, looked up at call time) to break the cycle.
from . import elementwise as _ew  # noqa: E402
from . import shape as _shape  # noqa: E402
