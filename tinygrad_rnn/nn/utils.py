"""Training utilities: gradient clipping (PyTorch's semantics) and detaching recurrent state.

Clipping binds a new array to each ``p.grad.data`` rather than scaling it in place: a graph
recorded earlier may have saved the old gradient array (``x.grad`` used in a computation after
``create_graph``), and must keep the values it was built from (docs/autograd.md).

``clip_grad_norm_`` stays on the device: the joint norm is a 0-d array and the scale factor
``min(1, max_norm / (norm + 1e-6))`` is computed from it there, so a training step on CuPy does
not wait for the GPU to report a number. Only ``error_if_nonfinite=True`` reads the norm on the
host (it needs a yes/no answer), which costs one synchronisation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .. import backend
from ..errors import DeviceError
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "detach_state", "zero_grads"]


def _with_grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    """The parameters that have a gradient."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in params if p.grad is not None]


def _joint_norm(grads: list[Any], norm_type: float) -> tuple[Any, Any]:
    """The ``norm_type``-norm of all entries of ``grads`` as a float64 0-d array on their device
    (no host read), and the dtype the gradients promote to. Each parameter's part is reduced in its
    own dtype, the parts are combined in float64."""
    if norm_type == math.inf:
        parts = backend.stack([abs(g).max() if g.size else g.sum() for g in grads], 0)
        return parts.astype(backend.float64).max(), parts.dtype
    if norm_type == 2.0:
        parts = backend.stack([(g * g).sum() for g in grads], 0)
        return backend.sqrt(parts.astype(backend.float64).sum()), parts.dtype
    parts = backend.stack([(abs(g) ** norm_type).sum() for g in grads], 0)
    return parts.astype(backend.float64).sum() ** (1.0 / norm_type), parts.dtype


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    The joint norm is the ``norm_type``-norm of all gradient entries, as if they were
    concatenated into one vector (``float("inf")`` gives the largest absolute entry).
    As in PyTorch, every gradient is multiplied by ``min(1, max_norm / (total + 1e-6))``
    (a NaN norm makes every gradient NaN). Parameters without a gradient are skipped.

    Nothing is read back to the host (no GPU synchronisation) unless ``error_if_nonfinite``.

    Args:
        parameters: a tensor or an iterable of tensors (``model.parameters()``).
        max_norm: the largest allowed joint norm.
        norm_type: p > 0 of the p-norm, or ``inf``.
        error_if_nonfinite: raise if the joint norm is NaN or infinite (this reads the norm on
            the host: one synchronisation on a GPU).

    Returns:
        The joint norm before clipping, a 0-d Tensor in the gradients' dtype on their device
        (``float(norm)`` gives the number), as PyTorch returns.
    """
    params = _with_grads(parameters)
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be positive or inf, got {norm_type}")
    if not params:
        return Tensor(backend.zeros((), backend.get_default_dtype(), "cpu"))
    grads = [p.grad.data for p in params]
    devices = {backend.device_of(g) for g in grads}
    if len(devices) > 1:
        raise DeviceError(f"clip_grad_norm_: gradients on {' and '.join(sorted(devices))}; "
                          "move the parameters to one device first")
    total, dtype = _joint_norm(grads, norm_type)
    if error_if_nonfinite and not backend.is_finite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                           f"{float(total)}; pass error_if_nonfinite=False to scale them anyway")
    norm = Tensor(backend.as_ndarray(total.astype(dtype)))
    coef = backend.minimum(max_norm / (total + 1e-6), 1.0)  # a 0-d array, on the device
    if not backend.reading_blocks(coef) and coef >= 1.0:  # NumPy: reading it costs nothing and saves a pass
        return norm  # (a NaN factor is not >= 1: it reaches the gradients, as in PyTorch)
    by_dtype: dict[Any, Any] = {}
    for p, g in zip(params, grads):
        c = by_dtype.get(g.dtype)
        if c is None:  # cast once per dtype: a float64 factor would upcast a float32 gradient
            c = by_dtype[g.dtype] = coef.astype(g.dtype)
        p.grad.data = g * c
    return norm


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clip every gradient entry to [-clip_value, clip_value] (each ``.grad`` gets a new array)."""
    v = float(clip_value)
    for p in _with_grads(parameters):
        p.grad.data = backend.clip(p.grad.data, -v, v)


def zero_grads(params: Iterable[Tensor], set_to_none: bool = True) -> None:
    """``Module.zero_grad`` and ``Optimizer.zero_grad``: ``.grad = None``, or (``set_to_none=False``)
    the same ``.grad`` Tensor, detached, holding a NEW array of zeros (never zeroed in place: a
    graph recorded earlier may have saved the old array)."""
    for p in params:
        g = p.grad
        if g is None:
            continue
        if set_to_none:
            p.grad = None
        else:
            g.node, g.requires_grad = None, False  # a create_graph gradient stops recording, as in PyTorch
            g.data = backend.get_xp(g.data).zeros_like(g.data)


def detach_state(state: Any) -> Any:
    """Cut a recurrent state from the graph (truncated BPTT), keeping its structure.

    Args:
        state: a Tensor, None, or a (named) tuple or list of them, nested to any depth
            (an LSTM's ``(h, c)``).

    Returns:
        The same structure with every Tensor replaced by ``t.detach()`` (same arrays, no graph).
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a namedtuple takes fields as arguments
        return type(state)(*(detach_state(s) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    raise TypeError(f"detach_state: expected a Tensor or a tuple/list of Tensors, got {type(state).__name__}")
