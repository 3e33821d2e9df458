"""Gradient flow through time: how much of a loss on the last step reaches each earlier step.

``gradient_flow(model, x)`` runs a recurrent layer (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``, any
number of layers) over x, takes a loss of the LAST step's output, and asks the engine
(``tinygrad_rnn.grad``) for the gradient with respect to the input at every step and to every
layer's hidden state at every step. Nothing is derived by hand: the numbers are what
backpropagation through time delivers, reported by distance d = T - 1 - t from the loss.

For a vanilla RNN, dh_t/dh_{t-1} = diag(1 - h_t^2) W_hh, so the gradient at distance d is a
product of d such Jacobians: it shrinks (or grows) geometrically. An LSTM's cell path has
dc_t/dc_{t-1} = diag(f_t): a product of forget gates, which stays near 1 when the gates are open.

Also reported: the fraction of saturated units per gate kind, where a saturated unit passes
(almost) no gradient: sigmoid outputs below 0.05 or above 0.95 (derivative y(1 - y) < 0.0475),
|tanh| above 0.95 (derivative 1 - y^2 < 0.0975), and ReLU outputs equal to 0 (derivative 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import backend
from ..autograd import enable_grad, grad, no_grad
from ..errors import ShapeError
from ..functions import stack
from ..tensor import Tensor
from .rnn import GRU, LSTM, RNN, _RNNBase
from .rnn_cells import check_dtype

__all__ = ["GradientFlow", "gradient_flow", "SIGMOID_SATURATION", "TANH_SATURATION"]

SIGMOID_SATURATION = 0.05  # a sigmoid unit is saturated when y < 0.05 or y > 0.95
TANH_SATURATION = 0.95  # a tanh unit is saturated when |y| > 0.95

GATE_KINDS = {"RNN_TANH": ("h",), "RNN_RELU": ("h",), "LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n")}


@dataclass(frozen=True)
class GradientFlow:
    """What :func:`gradient_flow` measured. Every array is a NumPy array indexed by the
    distance d from the loss: index d is time step t = T - 1 - d.

    Attributes:
        distance: (T,) ints 0, 1, ..., T - 1.
        input_norm: (T,) mean over the batch of ||dL/dx_t|| (2-norm over the I features).
        hidden_norm: (L, T) for each layer, mean over the batch of ||dL/dh_t|| (over the H units),
            where h_t is that layer's hidden state after step t (the total derivative: through the
            later steps and through the layers above).
        saturation: gate kind -> (L, T) fraction of saturated units at each step (over the batch
            and the H units). Kinds: "i", "f", "g", "o" (LSTM); "r", "z", "n" (GRU); "h" (RNN:
            tanh units with |h| > 0.95, or ReLU units at 0). Sigmoid gates count y < 0.05 or y > 0.95.
        loss: the value of the loss.
        mode: the layer's mode ("RNN_TANH", "RNN_RELU", "LSTM", "GRU").
    """

    distance: Any
    input_norm: Any
    hidden_norm: Any
    saturation: dict[str, Any] = field(default_factory=dict)
    loss: float = 0.0
    mode: str = ""

    def saturated_fraction(self) -> dict[str, float]:
        """The fraction of saturated units per gate kind over all layers and steps."""
        return {k: float(v.mean()) for k, v in self.saturation.items()}

    def at(self, distances: list[int], layer: int | None = None) -> list[float]:
        """input_norm (or the hidden_norm of ``layer``) at the given distances, as floats."""
        values = self.input_norm if layer is None else self.hidden_norm[layer]
        return [float(values[d]) for d in distances]


def _last_step_sum(last: Tensor) -> Tensor:
    return last.sum()


def gradient_flow(model: _RNNBase, x: Tensor, loss_fn: Callable[[Tensor], Tensor] | None = None,
                  hx: Any = None) -> GradientFlow:
    """Norms of the gradient of a loss on the last step's output with respect to every earlier step.

    Args:
        model: an ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` (any number of layers; one direction:
            a reverse direction's "last step" is t = 0, so distance would mean nothing).
        x: (T, B, I), or (B, T, I) when the model is ``batch_first``.
        loss_fn: maps the last layer's output at the last step, (B, H), to a scalar Tensor;
            default: its sum (every unit of every sequence weighted 1).
        hx: the initial state as for ``model(x, hx)`` (zeros when None).

    Returns:
        A :class:`GradientFlow`. Dropout between layers is not applied (as in eval mode); the
        model's parameters and their ``.grad`` are left unchanged.

    >>> import tinygrad_rnn as tg
    >>> flow = gradient_flow(tg.nn.RNN(2, 8, generator=tg.Generator(0)), tg.randn(30, 4, 2))
    >>> flow.input_norm.shape, flow.hidden_norm.shape, sorted(flow.saturation)
    ((30,), (1, 30), ['h'])
    >>> bool(flow.input_norm[20] < 1e-3 * flow.input_norm[0])  # vanished after 20 steps
    True
    """
    if not isinstance(model, (RNN, LSTM, GRU)):
        raise TypeError(f"gradient_flow: model must be an nn.RNN, nn.LSTM or nn.GRU, got {type(model).__name__}")
    if model.bidirectional:
        raise ValueError("gradient_flow: the model is bidirectional; the distance from the last step is defined "
                         "for a forward direction only (build it with bidirectional=False)")
    if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[2] != model.input_size:
        axes = "B, T" if model.batch_first else "T, B"
        raise ShapeError(f"gradient_flow: expected x of shape ({axes}, {model.input_size}), "
                         f"got {tuple(getattr(x, 'shape', ()))}")
    check_dtype("gradient_flow", "x", x, model.weight_ih_l0)
    loss_fn = loss_fn or _last_step_sum
    with enable_grad():
        x_leaf = Tensor(x.data.transpose(1, 0, 2) if model.batch_first else x.data, requires_grad=True)
        T, B = x_leaf.shape[0], x_leaf.shape[1]
        states = model._initial(type(model).__name__, hx, B, True, x_leaf)
        per = 4 if model.bias else 2
        layer_in, hs, inputs = x_leaf, [], []  # hs[l]: layer l's h after each step (the graph's own tensors)
        for layer in range(model.num_layers):
            weights = [getattr(model, n) for n in model._flat_weights_names[layer * per:(layer + 1) * per]]
            out, *_ = model._run(layer_in, states[layer], weights[0], weights[1], weights[2:], range(T))
            inputs.append(layer_in)
            hs.append(out)
            layer_in = stack(out)
        loss = loss_fn(hs[-1][-1])
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ShapeError("gradient_flow: loss_fn must return a scalar Tensor, got "
                             f"{tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__}")
        targets = [x_leaf] + [h for layer_hs in hs for h in layer_hs]
        grads = grad(loss, targets, allow_unused=True)
    with no_grad():
        input_norm = _per_step_norms([grads[0][t] for t in range(T)])
        hidden_norm = stack([_per_step_norms(grads[1 + layer * T:1 + (layer + 1) * T])
                             for layer in range(model.num_layers)])
        saturation = _saturation(model, inputs, states, hs, per)
    reverse = slice(None, None, -1)  # time order -> distance order
    return GradientFlow(
        distance=Tensor(backend.arange(0, T, 1, backend.int64, "cpu")).numpy(),
        input_norm=input_norm.numpy()[reverse].copy(),
        hidden_norm=hidden_norm.numpy()[:, reverse].copy(),
        saturation={k: v.numpy()[:, reverse].copy() for k, v in saturation.items()},
        loss=float(loss.item()), mode=model.mode)


def _per_step_norms(grads: list[Tensor | None]) -> Tensor:
    """(T,) in time order: the batch mean of each step's per-sequence gradient 2-norm (0 where unused)."""
    rows = []
    for g in grads:
        if g is None:  # the loss does not depend on this step (cannot happen forwards; kept safe)
            rows.append(Tensor(backend.zeros((), backend.float64, "cpu")))
        else:
            rows.append((g * g).sum(axis=1).sqrt().mean().astype("float64").to("cpu"))
    return stack(rows)


def _saturation(model: _RNNBase, inputs: list[Tensor], states: list[list[Tensor]], hs: list[list[Tensor]],
                per: int) -> dict[str, Tensor]:
    """Gate kind -> (L, T) fraction of saturated units, from each layer's inputs and recorded states."""
    H, kinds = model.hidden_size, GATE_KINDS[model.mode]
    rows: dict[str, list[Tensor]] = {k: [] for k in kinds}
    for layer, (x, out) in enumerate(zip(inputs, hs)):
        h = stack(out)  # (T, B, H)
        if model.mode in ("RNN_TANH", "RNN_RELU"):
            gates = {"h": (h, "relu" if model.mode == "RNN_RELU" else "tanh")}
        else:
            w_ih, w_hh, *b = (getattr(model, n) for n in model._flat_weights_names[layer * per:(layer + 1) * per])
            h_prev = stack([states[layer][0]] + out[:-1])  # the h each step started from
            gi, gh = x @ w_ih.T, h_prev @ w_hh.T  # (T, B, G*H)
            if b:
                gi, gh = gi + b[0], gh + b[1]
            gates = _lstm_gates(gi + gh, H) if model.mode == "LSTM" else _gru_gates(gi, gh, H)
        for kind, (y, act) in gates.items():
            rows[kind].append(_saturated(y, act).mean(axis=(1, 2)).astype("float64").to("cpu"))
    return {k: stack(v) for k, v in rows.items()}


def _lstm_gates(a: Tensor, H: int) -> dict[str, tuple[Tensor, str]]:
    """The LSTM's gate values from its pre-activations (T, B, 4H), blocks i, f, g, o."""
    def block(k: int) -> Tensor:
        return a[:, :, k * H:(k + 1) * H]
    return {"i": (block(0).sigmoid(), "sigmoid"), "f": (block(1).sigmoid(), "sigmoid"),
            "g": (block(2).tanh(), "tanh"), "o": (block(3).sigmoid(), "sigmoid")}


def _gru_gates(gi: Tensor, gh: Tensor, H: int) -> dict[str, tuple[Tensor, str]]:
    """The GRU's gate values from W_ih x + b_ih and W_hh h + b_hh (T, B, 3H), blocks r, z, n."""
    r = (gi[:, :, :H] + gh[:, :, :H]).sigmoid()
    z = (gi[:, :, H:2 * H] + gh[:, :, H:2 * H]).sigmoid()
    n = (gi[:, :, 2 * H:] + r * gh[:, :, 2 * H:]).tanh()
    return {"r": (r, "sigmoid"), "z": (z, "sigmoid"), "n": (n, "tanh")}


def _saturated(y: Tensor, act: str) -> Tensor:
    """1.0 where a unit is saturated, else 0.0 (y's dtype)."""
    if act == "sigmoid":
        hit = (y < SIGMOID_SATURATION) | (y > 1 - SIGMOID_SATURATION)
    elif act == "tanh":
        hit = y.abs() > TANH_SATURATION
    else:  # relu: a unit at 0 passes no gradient
        hit = y == 0
    return hit.astype(y.dtype)
