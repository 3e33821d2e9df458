"""Adam and AdamW: bias-corrected moment estimates, with L2 or decoupled weight decay (PyTorch's rules)."""

from __future__ import annotations

from typing import Any

from .. import backend
from .optimizer import Array, Optimizer, ParamsT, check_options, effective_grad, ema_

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), optionally AMSGrad, as ``torch.optim.Adam``.

    With ``g_t = ±∇f(θ_{t-1}) + λ θ_{t-1}`` (the λ term only without decoupled decay)::

        θ_{t-1} ← θ_{t-1} (1 - γ λ)                    (decoupled_weight_decay, i.e. AdamW, instead)
        m_t = β1 m_{t-1} + (1 - β1) g_t
        v_t = β2 v_{t-1} + (1 - β2) g_t²
        v̂_t = max(v̂_{t-1}, v_t) if amsgrad else v_t
        θ_t = θ_{t-1} - γ / (1 - β1^t) · m_t / (sqrt(v̂_t) / sqrt(1 - β2^t) + ε)

    ``m_0 = v_0 = v̂_0 = 0``; ``t`` counts this parameter's updates. The bias corrections
    are Python floats, so float32 parameters stay float32.

    Args:
        params: parameters or parameter groups.
        lr: learning rate γ (>= 0).
        betas: (β1, β2), each in [0, 1).
        eps: ε added to the denominator (>= 0).
        weight_decay: λ (>= 0).
        amsgrad: use the running maximum of v (AMSGrad).
        maximize: ascend the objective instead.
        decoupled_weight_decay: decay the weights directly (AdamW) instead of adding λθ to the gradient.

    State per parameter: ``step`` (int), ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq`` (v̂, amsgrad).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False) -> None:
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
                    "maximize": maximize, "decoupled_weight_decay": decoupled_weight_decay}
        super().__init__(params, defaults)

    def _validate(self, options: dict[str, Any]) -> None:
        name = type(self).__name__
        check_options(name, options, nonneg=("lr", "eps", "weight_decay"))
        betas = options["betas"]
        if len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"{name}: invalid beta parameter at index {i}: {b!r}; it must be in [0, 1)")

    def _update(self, p: Array, grad: Array, state: dict[str, Any], group: dict[str, Any]) -> Array:
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        xp = backend.get_xp(p)
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p)
            state["exp_avg_sq"] = xp.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(p)
        state["step"] += 1
        step = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]

        decoupled = group["decoupled_weight_decay"]
        if decoupled and weight_decay != 0:
            p = p * (1.0 - lr * weight_decay)  # a new array: the old one may be saved in a graph
        g = effective_grad(p, grad, 0.0 if decoupled else weight_decay, group["maximize"])

        # One scratch array serves every intermediate (the ufuncs write into it with out=),
        # instead of the four or five temporaries the plain expressions would allocate.
        tmp = xp.empty_like(p)
        ema_(m, g, beta1, tmp)
        ema_(v, xp.multiply(g, g, out=tmp), beta2, tmp)
        if group["amsgrad"]:
            vmax = state["max_exp_avg_sq"]
            xp.maximum(vmax, v, out=vmax)
            v = vmax

        bias_correction1 = 1.0 - beta1**step
        bias_correction2_sqrt = (1.0 - beta2**step) ** 0.5
        xp.sqrt(v, out=tmp)
        tmp /= bias_correction2_sqrt
        tmp += eps
        xp.divide(m, tmp, out=tmp)
        tmp *= lr / bias_correction1
        return xp.subtract(p, tmp, out=tmp)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    The weights decay directly, before the Adam step, instead of through the gradient::

        θ_{t-1} ← θ_{t-1} (1 - γ λ)
        m_t, v_t, v̂_t as in Adam with g_t = ±∇f(θ_{t-1})
        θ_t = θ_{t-1} - γ / (1 - β1^t) · m_t / (sqrt(v̂_t) / sqrt(1 - β2^t) + ε)

    Args are those of :class:`Adam`, except that ``weight_decay`` defaults to 1e-2.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize, decoupled_weight_decay=True)
