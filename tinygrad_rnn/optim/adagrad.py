"""Adagrad: per-coordinate steps shrinking with the sum of squared past gradients (PyTorch's rule)."""

from __future__ import annotations

from typing import Any

from .. import backend
from .optimizer import Array, Optimizer, ParamsT, check_options, effective_grad

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``.

    With ``g_t = ±∇f(θ_{t-1}) + λ θ_{t-1}``::

        γ̃_t = γ / (1 + (t - 1) η)                  (η = lr_decay)
        s_t = s_{t-1} + g_t²                       (s_0 = initial_accumulator_value)
        θ_t = θ_{t-1} - γ̃_t g_t / (sqrt(s_t) + ε)

    Args:
        params: parameters or parameter groups.
        lr: learning rate γ (>= 0).
        lr_decay: η (>= 0).
        weight_decay: λ (>= 0).
        initial_accumulator_value: s_0 (>= 0).
        eps: ε (>= 0).
        maximize: ascend the objective instead.

    State per parameter: ``step``, ``sum`` (s). (PyTorch creates it in the constructor; here it is
    created at a parameter's first update, which gives the same trajectory.)
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        defaults = {"lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
                    "initial_accumulator_value": initial_accumulator_value, "maximize": maximize}
        super().__init__(params, defaults)

    def _validate(self, options: dict[str, Any]) -> None:
        check_options("Adagrad", options,
                      nonneg=("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"))

    def _update(self, p: Array, grad: Array, state: dict[str, Any], group: dict[str, Any]) -> Array:
        xp = backend.get_xp(p)
        if not state:
            state["step"] = 0
            state["sum"] = xp.full_like(p, float(group["initial_accumulator_value"]))
        state["step"] += 1
        clr = float(group["lr"]) / (1.0 + (state["step"] - 1) * float(group["lr_decay"]))
        g = effective_grad(p, grad, float(group["weight_decay"]), group["maximize"])

        tmp = xp.multiply(g, g, out=xp.empty_like(p))  # one scratch array for every intermediate
        s = state["sum"]
        s += tmp
        xp.sqrt(s, out=tmp)
        tmp += float(group["eps"])
        xp.divide(g, tmp, out=tmp)
        tmp *= clr
        return xp.subtract(p, tmp, out=tmp)
