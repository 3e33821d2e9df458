"""Stateless layers and losses with PyTorch's names (``torch.nn.functional``, imported as ``F``).

Everything here is composed from differentiable Tensor ops (log_softmax,
logsumexp, indexing, where, sum), so the engine derives every gradient and
``create_graph`` works through the losses too. Losses are stable for logits of
any magnitude: they never exponentiate a large positive number.

>>> import tinygrad_rnn as tg
>>> from tinygrad_rnn.nn import functional as F
>>> logits = tg.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
>>> round(F.cross_entropy(logits, tg.tensor([0, 2])).item(), 4)
0.6342
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import backend
from ..backend import DTypeLike, Generator
from ..errors import DTypeError, ShapeError
from ..functions import (  # the same functions as at the top level
    log_softmax, logsumexp, relu, sigmoid, softmax, stack, tanh, where,
)
from ..functions import one_hot as _one_hot
from ..ops.linalg import Addmm
from ..tensor import Tensor

__all__ = [
    "softmax", "log_softmax", "logsumexp", "relu", "tanh", "sigmoid", "linear", "embedding", "dropout", "one_hot",
    "layer_norm", "softplus", "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits",
]

_REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------- activations

def softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x)) elementwise, as logsumexp([0, x]): stable and smooth for any x."""
    return stack([Tensor(backend.zeros(x.shape, x.dtype, x.device)), x], axis=-1).logsumexp(axis=-1)


# ---------------------------------------------------------------- layers

def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias``.

    Args:
        x: (..., in_features).
        weight: (out_features, in_features).
        bias: (out_features,) or None.

    Returns:
        (..., out_features).
    """
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ShapeError(f"linear: input of shape {x.shape} does not end in in_features={weight.shape[1]} "
                         f"(weight has shape {weight.shape} = (out_features, in_features))")
    if x.dtype != weight.dtype:
        raise DTypeError(f"linear: input is {x.dtype} but the weight is {weight.dtype}; cast the input "
                         f"(x.to('{weight.dtype}')) or the layer (layer.to('{x.dtype}'))")
    lead = x.shape[:-1]
    # One 2-D matrix product for any number of leading axes: a batched matmul would broadcast
    # the weight and then have to sum its gradient over the batch.
    x2 = x.reshape(-1, x.shape[-1]) if x.ndim > 2 else x
    if bias is not None and x2.ndim == 2:
        y = Addmm.apply(bias, x2, weight.T)  # bias + x W^T in one op
    else:
        y = x2 @ weight.T
        if bias is not None:
            y = y + bias
    return y.reshape(lead + (weight.shape[0],)) if x.ndim > 2 else y


def _index_array(op: str, idx: Any, device: str) -> Any:
    """The integer array of an index or target tensor, on ``device``; floats and bools are refused."""
    data = idx.data if isinstance(idx, Tensor) else backend.as_array(idx, None, device)
    if data.dtype.kind not in "iu":
        raise DTypeError(f"{op}: indices must be an integer tensor (int64), got {data.dtype}; "
                         "convert with .long() if the values are whole numbers")
    return backend.to_device(data, device)


def embedding(idx: Tensor, weight: Tensor) -> Tensor:
    """Rows of ``weight`` picked by ``idx``; repeated indices accumulate their gradients.

    Args:
        idx: integer tensor of any shape S, values in [0, num_embeddings).
        weight: (num_embeddings, embedding_dim).

    Returns:
        (*S, embedding_dim).
    """
    data = _index_array("embedding", idx, weight.device)
    n = weight.shape[0]
    if data.size and (int(data.min()) < 0 or int(data.max()) >= n):
        raise IndexError(f"embedding: indices must lie in [0, {n}) for a weight of shape {weight.shape}, "
                         f"got values in [{int(data.min())}, {int(data.max())}]")
    return weight[data]


def dropout(x: Tensor, p: float = 0.5, training: bool = True, generator: Generator | None = None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p) (same shape as x).

    The identity when ``training`` is False or ``p`` is 0, so the expected value never changes.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must lie in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    gen = generator if generator is not None else backend.default_generator(x.device)
    # A layer built with a CPU generator and moved to the GPU keeps drawing from it (its state is
    # what a checkpoint saves); the mask then crosses to the tensor's device.
    keep = backend.to_device(gen.bernoulli(x.shape, 1.0 - p), x.device)
    scale = keep.astype(x.dtype)
    scale *= 1.0 / (1.0 - p)  # inverted dropout: no rescaling is needed at evaluation time
    return x * Tensor(scale)


def one_hot(index: Tensor, num_classes: int = -1, dtype: DTypeLike | None = None) -> Tensor:
    """Integer tensor of shape S to a (*S, num_classes) tensor of 0/1, int64 as in PyTorch.

    ``num_classes=-1`` uses ``index.max() + 1``. No gradient flows through it.
    """
    if num_classes == -1:
        num_classes = int(index.data.max()) + 1 if index.numel() else 0
    return _one_hot(index, num_classes, backend.int64 if dtype is None else dtype)


def layer_norm(x: Tensor, normalized_shape: Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last ``len(normalized_shape)`` axes to mean 0 and variance 1, then scale and shift.

    Args:
        x: (..., *normalized_shape).
        weight: of shape ``normalized_shape``, or None.
        bias: of shape ``normalized_shape``, or None.
    """
    shape = tuple(normalized_shape)
    k = len(shape)
    if x.ndim < k or x.shape[x.ndim - k:] != shape:
        raise ShapeError(f"layer_norm: input of shape {x.shape} does not end in normalized_shape {shape}")
    axes = tuple(range(x.ndim - k, x.ndim))
    d = x - x.mean(axis=axes, keepdims=True)
    var = (d * d).mean(axis=axes, keepdims=True)  # biased variance, as PyTorch
    y = d / (var + eps).sqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


# ---------------------------------------------------------------- losses

def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _class_loss(op: str, log_probs: Tensor, target: Any, weight: Any, ignore_index: int,
                reduction: str, label_smoothing: float) -> Tensor:
    """Negative log-likelihood of class ``target`` under ``log_probs`` (N, C, d1, ...), with PyTorch's
    weights, ignore_index and label smoothing (the last needs normalised log-probabilities)."""
    _check_reduction(op, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must lie in [0, 1], got {label_smoothing}")
    t = _index_array(op, target, log_probs.device)
    if log_probs.ndim == 0:
        raise ShapeError(f"{op}: input must have a class axis, got a 0-d tensor")
    unbatched = log_probs.ndim == 1  # (C,) with a scalar target, as PyTorch allows
    expected = () if unbatched else log_probs.shape[:1] + log_probs.shape[2:]
    if tuple(t.shape) != expected:
        raise ShapeError(f"{op}: input of shape {log_probs.shape} (N, C, d1, ...) needs a target of shape "
                         f"{expected} (N, d1, ...), got {tuple(t.shape)}")
    if unbatched:
        log_probs, t = log_probs.reshape(1, -1), t.reshape(1)
    C = log_probs.shape[1]
    # class weights are constants (as in PyTorch), cast to the input's dtype and device
    w = None if weight is None else backend.as_array(weight.data if isinstance(weight, Tensor) else weight,
                                                     log_probs.dtype, log_probs.device)
    if w is not None and tuple(w.shape) != (C,):
        raise ShapeError(f"{op}: weight must have shape ({C},), one entry per class, got {tuple(w.shape)}")

    valid = t != ignore_index
    in_range = (t >= 0) & (t < C)
    deferred = backend.reading_blocks(t)  # on the GPU, checking a value here would stall the step
    if not deferred:
        bad = valid & ~in_range
        if bad.any():
            raise ValueError(f"{op}: target values must be class indices in [0, {C}) or ignore_index={ignore_index}; "
                             f"found {int(t[bad].reshape(-1)[0])} (input shape {log_probs.shape})")
    safe = backend.where(valid & in_range, t, 0)  # ignored (and, deferred, bad) entries pick class 0

    # Pick log_probs[n, t[n, d...], d...] by advanced indexing: one arange per non-class axis,
    # shaped to broadcast against the target. Only the picked entries get a gradient.
    nd = t.ndim
    index: list[Any] = []
    for axis, size in enumerate(t.shape):
        shape = [1] * nd
        shape[axis] = size
        index.append(backend.arange(0, size, 1, backend.int64, log_probs.device).reshape(shape))
    index.insert(1, safe)
    picked = log_probs[tuple(index)]  # (N, d1, ...)
    if deferred:  # an out-of-range target's entry becomes NaN, in the loss and in every gradient
        picked = picked * Tensor(backend.where(valid & ~in_range, float("nan"), 1.0).astype(log_probs.dtype))

    # The denominator of "mean" stays a device array: float() of it would be a synchronisation.
    if w is None:
        loss = -picked
        count = valid.sum()
    else:
        coef = w[safe] * valid  # weight of each target's class; 0 where ignored
        loss = -(picked * Tensor(coef))
        count = coef.sum()
    if label_smoothing > 0:
        # PyTorch: (1 - eps) * nll + eps / C * sum_c(-w_c * log p_c), both reduced with nll's denominator
        if w is None:
            smooth = -log_probs.sum(axis=1)
        else:
            w_shape = (C,) + (1,) * (log_probs.ndim - 2)
            smooth = -(log_probs * Tensor(w.reshape(w_shape))).sum(axis=1)
        loss = loss * (1.0 - label_smoothing) + smooth * (label_smoothing / C)
    # where() rather than a 0/1 product: an ignored row may hold -inf, and -inf * 0 is NaN
    loss = where(Tensor(valid), loss, 0.0)
    if unbatched and reduction == "none":
        return loss.reshape(())
    if reduction == "mean":  # sum / count, with 0 / 0 = NaN as in PyTorch
        return loss.sum() * Tensor(backend.reciprocal_count(count, loss.dtype))
    return _reduce(loss, reduction)


def cross_entropy(logits: Tensor, target: Any, weight: Any = None, *, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of integer class targets, as ``torch.nn.functional.cross_entropy``.

    Args:
        logits: (N, C), (N, C, d1, ...) with classes on axis 1, or (C,) for one example.
        target: integer class indices, (N,), (N, d1, ...) or (); ``ignore_index`` entries add nothing.
        weight: (C,) per-class weights (a constant: Tensor, array or list; no gradient), or None.
        ignore_index: target value whose entries are skipped; "mean" divides by the (weighted)
            number of the other entries.
        reduction: "mean", "sum" or "none" (the per-entry losses, shape of ``target``).
        label_smoothing: eps in [0, 1]: the target becomes (1 - eps) one-hot + eps / C uniform.

    Returns:
        A scalar, or the target's shape for ``reduction="none"``.

    Raises:
        DTypeError: the target is not an integer tensor. ShapeError: the shapes do not pair up.
        ValueError: a target outside [0, C) that is not ``ignore_index`` (on the CPU).

    On the GPU (CuPy arrays) no value is read back during the call, so a training step never
    waits for the device here: an out-of-range target is not raised but makes its entry NaN,
    so the loss and all the gradients are NaN (never a silently wrong value; PyTorch stops
    with a device-side assert instead). To get the error with the offending value, run the
    same batch on the CPU.
    """
    if logits.ndim == 0:
        raise ShapeError("cross_entropy: logits must have a class axis, got a 0-d tensor")
    return _class_loss("cross_entropy", logits.log_softmax(axis=0 if logits.ndim == 1 else 1), target, weight,
                       ignore_index, reduction, label_smoothing)


def nll_loss(log_probs: Tensor, target: Any, weight: Any = None, *, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood ``-log_probs[n, target[n]]`` (weighted), as ``torch.nn.functional.nll_loss``.

    Args:
        log_probs: (N, C), (N, C, d1, ...) or (C,), usually from ``log_softmax(x, axis=1)``.
        target: as in :func:`cross_entropy`.
        weight: as in :func:`cross_entropy`.
        ignore_index: as in :func:`cross_entropy`.
        reduction: as in :func:`cross_entropy`.
    """
    return _class_loss("nll_loss", log_probs, target, weight, ignore_index, reduction, 0.0)


def mse_loss(x: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """Squared error ``(x - y)**2``, averaged, summed or elementwise; x and y have the same shape."""
    _check_reduction("mse_loss", reduction)
    y_shape = tuple(getattr(y, "shape", ()))
    if isinstance(y, Tensor) and y_shape != x.shape:
        raise ShapeError(f"mse_loss: input of shape {x.shape} and target of shape {y_shape} differ; "
                         "reshape one so that they match (no silent broadcasting)")
    d = x - y
    return _reduce(d * d, reduction)


def binary_cross_entropy_with_logits(logits: Tensor, target: Any, weight: Tensor | None = None, *,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable expression, as PyTorch's.

    ``loss = (1 - t) x + (1 + (pos_weight - 1) t) softplus(-x)``, which equals
    ``-[pos_weight t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]`` without overflow.

    Args:
        logits: any shape S.
        target: probabilities in [0, 1], shape S (integer 0/1 targets are cast to the logits' dtype).
        weight: broadcastable to S, multiplies each element's loss.
        reduction: "mean", "sum" or "none".
        pos_weight: broadcastable to S (usually (C,) for the last axis), weights the positive term.
    """
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    if not isinstance(target, Tensor):
        target = Tensor(backend.as_array(target, logits.dtype, logits.device))
    if target.shape != logits.shape:
        raise ShapeError(f"binary_cross_entropy_with_logits: target of shape {target.shape} must have the "
                         f"logits' shape {logits.shape}")
    if not backend.is_float(target.dtype):
        target = target.astype(logits.dtype)
    sp = softplus(-logits)  # -log sigmoid(x)
    if pos_weight is None:
        loss = (1.0 - target) * logits + sp
    else:
        loss = (1.0 - target) * logits + (1.0 + (pos_weight - 1.0) * target) * sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)
