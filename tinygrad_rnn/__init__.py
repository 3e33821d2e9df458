"""tinygrad_rnn: a small tape-based autograd engine over NumPy/CuPy, with recurrent layers.

The public API is listed explicitly below (no ``import *``).
"""

# tensor must be imported first: it defines Tensor, then imports the ops that wrap their outputs in it.
from .tensor import Tensor, matmul  # isort: skip
from .autograd import Function, backward, detect_anomaly, enable_grad, grad, is_grad_enabled, no_grad
from .backend import (
    Generator, bool_, cuda_available, tune_allocator, float16, float32, float64, get_default_dtype, int32, int64,
    set_default_dtype,
)
from .creation import arange, full, manual_seed, ones, ones_like, rand, randint, randn, tensor, zeros, zeros_like
from .errors import (
    AnomalyError, BackwardError, DeviceError, DTypeError, IndexingError, ShapeError, StateDictError, TinygradRNNError,
)
from .functions import (
    addmm, cat, concatenate, exp, log, log_softmax, logsumexp, maximum, minimum, one_hot, relu, sigmoid, softmax,
    sqrt, stack, tanh, where,
)
from .graph import print_graph, to_dot, trace

from . import nn, optim, replay, testing, threads  # noqa: E402  (subpackages, after the core they build on)

__version__ = "0.1.0"

__all__ = [
    "AnomalyError", "BackwardError", "addmm", "DTypeError", "DeviceError", "Function", "Generator", "IndexingError",
    "ShapeError",
    "StateDictError",
    "Tensor", "TinygradRNNError", "arange", "backward", "bool_", "cat", "concatenate", "cuda_available",
    "detect_anomaly", "enable_grad", "exp", "float16", "float32", "float64", "full", "get_default_dtype",
    "grad", "int32", "int64", "is_grad_enabled", "log", "log_softmax", "logsumexp", "manual_seed", "matmul",
    "maximum", "minimum", "no_grad", "one_hot", "ones", "ones_like", "print_graph", "rand", "randint", "randn",
    "relu", "set_default_dtype", "sigmoid", "softmax", "sqrt", "stack", "tanh", "tensor", "to_dot", "trace",
    "tune_allocator", "where", "zeros", "zeros_like", "nn", "optim", "replay", "testing", "threads",
]
