"""The ops: one Function per differentiable operation, grouped by kind; ``rules`` holds the
functions their backward rules use (public, for people who write their own ops)."""

from . import rules

from .convert import Cast, ToDevice
from .elementwise import (
    Abs, Add, Clip, Div, Exp, Log, Maximum, Minimum, Mul, Neg, Pow, Relu, Sigmoid, Sqrt, Sub, Tanh, Where,
)
from .linalg import Addmm, MatMul
from .reduce import LogSoftmax, LogSumExp, Max, Min, Softmax, Sum
from .shape import (
    Cat, Clone, Contiguous, Expand, GetItem, IndexAdd, Reshape, Stack, SumTo, Transpose,
)

__all__ = [
    "Abs", "Add", "Addmm", "Cast", "Cat", "Clip", "Clone", "Contiguous", "Div", "Exp", "Expand", "GetItem", "IndexAdd",
    "Log", "LogSoftmax", "LogSumExp", "MatMul", "Max", "Maximum", "Min", "Minimum", "Mul", "Neg", "Pow",
    "Relu", "Reshape", "Sigmoid", "Softmax", "Sqrt", "Stack", "Sub", "Sum", "SumTo", "Tanh", "ToDevice",
    "Transpose", "Where", "rules",
]
