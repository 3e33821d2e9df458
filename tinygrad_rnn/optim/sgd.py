"""Stochastic gradient descent, with momentum, Nesterov momentum and L2 weight decay (PyTorch's rule)."""

from __future__ import annotations

from typing import Any

from .optimizer import Array, Optimizer, ParamsT, check_options, effective_grad

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``.

    With ``g_t = ±∇f(θ_{t-1}) + λ θ_{t-1}`` (minus sign when ``maximize``, λ = ``weight_decay``)::

        b_1 = g_1,   b_t = μ b_{t-1} + (1 - τ) g_t          (when μ = momentum ≠ 0; τ = dampening)
        g_t ← g_t + μ b_t   if nesterov,   else g_t ← b_t
        θ_t = θ_{t-1} - γ g_t                                (γ = lr)

    Note the first momentum buffer is the gradient itself, undamped (PyTorch's choice).

    Args:
        params: parameters or parameter groups.
        lr: learning rate γ (>= 0).
        momentum: μ (>= 0).
        dampening: τ, how much of the new gradient the buffer leaves out.
        weight_decay: λ, L2 penalty added to the gradient (>= 0).
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening = 0).
        maximize: ascend the objective instead.

    State per parameter: ``momentum_buffer`` (when momentum ≠ 0).

    >>> import tinygrad_rnn as tg
    >>> from tinygrad_rnn.nn import Parameter
    >>> from tinygrad_rnn.optim import SGD
    >>> w = Parameter(tg.tensor([1.0, -2.0]))
    >>> opt = SGD([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> [round(v, 6) for v in w.tolist()]
    [0.8, -1.6]
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        defaults = {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                    "nesterov": nesterov, "maximize": maximize}
        super().__init__(params, defaults)

    def _validate(self, options: dict[str, Any]) -> None:
        check_options("SGD", options, nonneg=("lr", "momentum", "weight_decay"))
        if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening "
                             f"(got momentum={options['momentum']}, dampening={options['dampening']})")

    def _update(self, p: Array, grad: Array, state: dict[str, Any], group: dict[str, Any]) -> Array:
        lr, momentum, dampening = float(group["lr"]), float(group["momentum"]), float(group["dampening"])
        g = effective_grad(p, grad, float(group["weight_decay"]), group["maximize"])
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                # astype copies, and gives the buffer the parameter's dtype whatever the gradient's.
                buf = state["momentum_buffer"] = g.astype(p.dtype)
            else:
                buf *= momentum
                buf += g if dampening == 0 else g * (1.0 - dampening)
            if group["nesterov"]:
                update = buf * momentum  # g + μ b, in one new array
                update += g
            else:
                update = buf
        else:
            update = g
        return p - update * lr  # new arrays: neither the caller's gradient nor the state is scaled
