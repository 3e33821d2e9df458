"""Training utilities: gradient clipping (PyTorch's semantics) and detaching recurrent state.

Clipping rescales each ``p.grad.data`` in place; the engine guarantees that
every leaf's ``.grad`` array is its own, so no other tensor changes with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .. import backend
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "detach_state"]


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Any]:
    """The gradient arrays of the parameters that have one."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad.data for p in params if p.grad is not None]


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    The joint norm is the ``norm_type``-norm of all gradient entries, as if they were
    concatenated into one vector (``float("inf")`` gives the largest absolute entry).
    As in PyTorch, every gradient is multiplied by ``max_norm / (total + 1e-6)`` when
    that factor is below 1. Parameters without a gradient are skipped.

    Args:
        parameters: a tensor or an iterable of tensors (``model.parameters()``).
        max_norm: the largest allowed joint norm.
        norm_type: p > 0 of the p-norm, or ``inf``.
        error_if_nonfinite: raise if the joint norm is NaN or infinite (else the grads get NaN).

    Returns:
        The joint norm before clipping, as a float.
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be positive or inf, got {norm_type}")
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(abs(g).max()) if g.size else 0.0 for g in grads)
    elif norm_type == 2.0:
        total = math.sqrt(sum(float((g * g).sum()) for g in grads))
    else:
        total = sum(float((abs(g) ** norm_type).sum()) for g in grads) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}; "
                           "pass error_if_nonfinite=False to scale them anyway")
    coef = max_norm / (total + 1e-6)
    if not coef >= 1.0:  # also true for NaN, which then spreads to the grads, as in PyTorch
        for g in grads:
            g *= coef
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clip every gradient entry to [-clip_value, clip_value] in place."""
    v = float(clip_value)
    for g in _grads(parameters):
        g[...] = backend.clip(g, -v, v)


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
