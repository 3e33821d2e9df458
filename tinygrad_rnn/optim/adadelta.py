"""Adadelta: steps scaled by the ratio of running RMS of updates to running RMS of gradients (PyTorch's rule)."""

from __future__ import annotations

from typing import Any

from .. import backend
from .optimizer import Array, Optimizer, ParamsT, check_options, effective_grad, ema_

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler, 2012), as ``torch.optim.Adadelta``.

    With ``g_t = ±∇f(θ_{t-1}) + λ θ_{t-1}``::

        v_t = ρ v_{t-1} + (1 - ρ) g_t²
        Δ_t = sqrt(u_{t-1} + ε) / sqrt(v_t + ε) · g_t
        u_t = ρ u_{t-1} + (1 - ρ) Δ_t²
        θ_t = θ_{t-1} - γ Δ_t

    with ``v_0 = u_0 = 0``.

    Args:
        params: parameters or parameter groups.
        lr: γ, a factor on the update (>= 0; 1.0 is the paper's rule).
        rho: ρ, in [0, 1].
        eps: ε (>= 0).
        weight_decay: λ (>= 0).
        maximize: ascend the objective instead.

    State per parameter: ``step``, ``square_avg`` (v), ``acc_delta`` (u).
    """

    def __init__(self, params: ParamsT, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, *, maximize: bool = False) -> None:
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    def _validate(self, options: dict[str, Any]) -> None:
        check_options("Adadelta", options, nonneg=("lr", "eps", "weight_decay"))
        if not 0.0 <= options["rho"] <= 1.0:
            raise ValueError(f"Adadelta: invalid rho {options['rho']!r}: it must be in [0, 1]")

    def _update(self, p: Array, grad: Array, state: dict[str, Any], group: dict[str, Any]) -> Array:
        lr, rho, eps = float(group["lr"]), float(group["rho"]), float(group["eps"])
        xp = backend.get_xp(p)
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p)
            state["acc_delta"] = xp.zeros_like(p)
        state["step"] += 1
        g = effective_grad(p, grad, float(group["weight_decay"]), group["maximize"])
        v, u = state["square_avg"], state["acc_delta"]

        # Two scratch arrays (tmp, delta) serve every intermediate, through ufuncs with out=.
        tmp = xp.multiply(g, g, out=xp.empty_like(p))
        ema_(v, tmp, rho, tmp)
        xp.add(v, eps, out=tmp)
        xp.sqrt(tmp, out=tmp)  # sqrt(v_t + ε)
        delta = xp.add(u, eps, out=xp.empty_like(p))
        xp.sqrt(delta, out=delta)
        delta /= tmp
        delta *= g  # Δ_t
        ema_(u, xp.multiply(delta, delta, out=tmp), rho, tmp)
        delta *= lr
        return xp.subtract(p, delta, out=delta)
