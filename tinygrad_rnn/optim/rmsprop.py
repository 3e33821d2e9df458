"""RMSprop: divide the gradient by a running RMS of recent gradients (PyTorch's rule)."""

from __future__ import annotations

from typing import Any

from .. import backend
from .optimizer import Array, Optimizer, ParamsT, check_options, effective_grad, ema_

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e), optionally centered and with momentum, as ``torch.optim.RMSprop``.

    With ``g_t = ±∇f(θ_{t-1}) + λ θ_{t-1}``::

        v_t = α v_{t-1} + (1 - α) g_t²
        ḡ_t = α ḡ_{t-1} + (1 - α) g_t ;   ṽ_t = v_t - ḡ_t²     (centered; else ṽ_t = v_t)
        b_t = μ b_{t-1} + g_t / (sqrt(ṽ_t) + ε) ;   θ_t = θ_{t-1} - γ b_t     (momentum μ > 0)
        θ_t = θ_{t-1} - γ g_t / (sqrt(ṽ_t) + ε)                                (μ = 0)

    with ``v_0 = ḡ_0 = b_0 = 0``. Note ε is added outside the square root (as PyTorch does).

    Args:
        params: parameters or parameter groups.
        lr: learning rate γ (>= 0).
        alpha: smoothing constant α (>= 0).
        eps: ε (>= 0).
        weight_decay: λ (>= 0).
        momentum: μ (>= 0).
        centered: normalise by an estimate of the gradient's variance instead of its second moment.
        maximize: ascend the objective instead.

    State per parameter: ``step``, ``square_avg`` (v), ``grad_avg`` (ḡ, centered), ``momentum_buffer`` (b, μ > 0).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay, "momentum": momentum,
                    "centered": centered, "maximize": maximize}
        super().__init__(params, defaults)

    def _validate(self, options: dict[str, Any]) -> None:
        check_options("RMSprop", options, nonneg=("lr", "alpha", "eps", "weight_decay", "momentum"))

    def _update(self, p: Array, grad: Array, state: dict[str, Any], group: dict[str, Any]) -> Array:
        lr, alpha, eps = float(group["lr"]), float(group["alpha"]), float(group["eps"])
        momentum = float(group["momentum"])
        xp = backend.get_xp(p)
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p)
            if momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p)
        state["step"] += 1
        g = effective_grad(p, grad, float(group["weight_decay"]), group["maximize"])

        # One scratch array for every intermediate (ufuncs with out=): this runs every step.
        tmp = xp.multiply(g, g, out=xp.empty_like(p))
        square_avg = ema_(state["square_avg"], tmp, alpha, tmp)
        if group["centered"]:
            grad_avg = ema_(state["grad_avg"], g, alpha, tmp)
            xp.multiply(grad_avg, grad_avg, out=tmp)
            xp.subtract(square_avg, tmp, out=tmp)
            xp.sqrt(tmp, out=tmp)
        else:
            xp.sqrt(square_avg, out=tmp)
        tmp += eps
        xp.divide(g, tmp, out=tmp)  # g / (sqrt(ṽ) + ε)
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += tmp
            xp.multiply(buf, lr, out=tmp)
        else:
            tmp *= lr
        return xp.subtract(p, tmp, out=tmp)
