"""Recurrent layers with PyTorch's API: the cells RNNCell, LSTMCell, GRUCell and the
multi-layer, optionally bidirectional sequence layers RNN, LSTM, GRU.

Parameter names, shapes, gate order and initialisation are PyTorch's, so a PyTorch
``state_dict()`` loads unchanged. Everything is composed from the engine's
differentiable ops: backpropagation through time is the generic reverse pass over
the unrolled loop, nothing here is a hand-written backward.

How the loop is built, and why (each op costs a few microseconds of Python, so the
count per time step is what sets the speed of small and medium models):

* All gates come from ONE matmul per step. For RNN and LSTM the step input, the
  previous hidden state and a column of ones are joined, ``[x_t, h, 1]`` (one
  ``cat``), and multiplied by ``[W_ih | W_hh | b_ih + b_hh]^T``, assembled once per
  forward call: the input projection, the recurrent product and both biases in one
  GEMM of shape (B, I + H + 1) @ (I + H + 1, G*H). GRU keeps the two products apart
  (its candidate gate needs ``W_hn h + b_hn`` on its own): ``[x_t, 1] @ [W_ih | b_ih]^T``
  and ``h @ W_hh^T + b_hh``.
* Nonlinearities run on slices of that one (B, G*H) array; LSTM takes one sigmoid
  over all 4H columns (the g block's sigmoid is computed and ignored: one op instead
  of three).
* Why not one (T*B, I) @ W_ih^T product for all steps before the loop? Cutting its
  (T, B, G*H) result into steps costs T ``getitem`` ops whose backward each returns a
  gradient of the full (T, B, G*H) shape (the engine's ops have one output), so the
  backward pass becomes O(T^2 B G H): 5x slower than this layout at T=100, B=64,
  H=256. Here only the layer-0 input is cut into steps (by halving, see ``_unbind``,
  O(T log T) and I-wide instead of 4H-wide, and free when the input needs no
  gradient); upper layers take the lower layer's per-step outputs as they are.
* Outputs are joined once per layer and direction with one ``stack``.

Ops per time step and direction, forward (the backward runs one rule per op):
RNN 3 (cat, matmul, tanh|relu); LSTM 13; GRU 16 (14 without biases); plus, for
layer 0 only and only when the input requires grad, about 1.5 ``getitem``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from .. import backend
from ..autograd import is_grad_enabled
from ..backend import DTypeLike, Generator
from ..errors import DeviceError, DTypeError, ShapeError
from ..functions import cat, stack
from ..tensor import Tensor
from . import functional as F
from .init import uniform_
from .module import Module, Parameter

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
_UNBIND_FLAT = 4  # _unbind cuts pieces of up to this many steps directly


# ---------------------------------------------------------------- the time steps

def _lstm_steps(xs: Sequence[list[Tensor]], h: Tensor, c: Tensor, w: Tensor, ones: list[Tensor],
                order: range, hs: int) -> tuple[list[Tensor], Tensor, Tensor]:
    """Run LSTM steps ``order`` over the per-step input pieces ``xs``; ``w`` is the fused weight.

    13 ops a step: cat, matmul, sigmoid, 4 slices, tanh, 3 for c, 2 for h.
    """
    i_, f_, g_, o_ = (slice(None), slice(0, hs)), (slice(None), slice(hs, 2 * hs)), \
        (slice(None), slice(2 * hs, 3 * hs)), (slice(None), slice(3 * hs, 4 * hs))
    outs: list[Any] = [None] * len(xs)
    for t in order:
        a = cat(xs[t] + [h] + ones, axis=1) @ w  # (B, 4H) pre-activations, gates i | f | g | o
        s = a.sigmoid()  # sigmoid of all four blocks; the g block's is not used
        c = s[f_] * c + s[i_] * a[g_].tanh()  # c' = f * c + i * g
        h = s[o_] * c.tanh()  # h' = o * tanh(c')
        outs[t] = h
    return outs, h, c


def _gru_steps(xs: Sequence[list[Tensor]], h: Tensor, wi: Tensor, whh_t: Tensor, b_hh: Tensor | None,
               ones: list[Tensor], order: range, hs: int) -> tuple[list[Tensor], Tensor]:
    """Run GRU steps; ``wi`` is ``[W_ih | b_ih]^T`` (or ``W_ih^T``), ``whh_t`` is ``W_hh^T``.

    16 ops a step: 2 for gi, 2 for gh, add, sigmoid, 2 slices for r and z, 5 for n, 3 for h'.
    """
    r_, z_, n_ = (slice(None), slice(0, hs)), (slice(None), slice(hs, 2 * hs)), (slice(None), slice(2 * hs, None))
    outs: list[Any] = [None] * len(xs)
    for t in order:
        pieces = xs[t] + ones
        gi = (cat(pieces, axis=1) if len(pieces) > 1 else pieces[0]) @ wi  # W_ih x + b_ih: r | z | n
        gh = h @ whh_t  # W_hh h + b_hh: r | z | n
        if b_hh is not None:
            gh = gh + b_hh
        s = (gi + gh).sigmoid()  # r and z; the n block's sigmoid is not used
        n = (gi[n_] + s[r_] * gh[n_]).tanh()  # n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h = n + s[z_] * (h - n)  # h' = (1 - z) * n + z * h
        outs[t] = h
    return outs, h


def _rnn_steps(xs: Sequence[list[Tensor]], h: Tensor, w: Tensor, ones: list[Tensor], order: range,
               relu: bool) -> tuple[list[Tensor], Tensor]:
    """Run Elman RNN steps; ``w`` is the fused weight. 3 ops a step: cat, matmul, tanh or relu."""
    outs: list[Any] = [None] * len(xs)
    for t in order:
        a = cat(xs[t] + [h] + ones, axis=1) @ w
        h = a.relu() if relu else a.tanh()
        outs[t] = h
    return outs, h


def _fused_weight(w_ih: Tensor, w_hh: Tensor | None, b: Tensor | None) -> Tensor:
    """``[W_ih | W_hh | b]^T`` (columns that are None left out): the weight that multiplies
    ``[x, h, 1]``. Built once per forward call; its gradient flows back to each piece."""
    parts = [w_ih] + ([w_hh] if w_hh is not None else []) + ([b.reshape(-1, 1)] if b is not None else [])
    return (cat(parts, axis=1) if len(parts) > 1 else w_ih).T


def _unbind(x: Tensor) -> list[list[Tensor]]:
    """``[[x[0]], ..., [x[T-1]]]``: the steps of a (T, B, I) tensor, each as a one-piece list.

    Each ``getitem``'s backward returns a gradient of its whole input, so cutting T steps
    straight from x would cost O(T^2 B I) in backward. Halving first (x[:T/2], x[T/2:], ...)
    keeps it O(T log T): each level of halving moves every element once. Without a gradient
    to carry, the steps are plain views and cost no op at all.
    """
    T = x.shape[0]
    if not (x.requires_grad and is_grad_enabled()):
        return [[Tensor(x.data[t])] for t in range(T)]
    out: list[Any] = [None] * T
    todo = [(x, 0)]
    while todo:  # a work list rather than recursion, like the engine
        part, start = todo.pop()
        n = part.shape[0]
        if n <= _UNBIND_FLAT:
            for k in range(n):
                out[start + k] = [part[k]]
        else:
            m = n // 2
            todo += [(part[:m], start), (part[m:], start + m)]
    return out


# ---------------------------------------------------------------- shared construction

def _make_params(module: Module, names: Sequence[str], shapes: Sequence[tuple[int, ...]], hidden_size: int,
                 dtype: DTypeLike | None, device: str, generator: Generator | None) -> None:
    """Register the parameters in order, each drawn from U(-1/sqrt(H), 1/sqrt(H)) as in PyTorch."""
    device = backend.check_device(device)
    if generator is not None and generator.device != device:
        raise DeviceError(f"{type(module).__name__}: a {generator.device} generator cannot initialise "
                          f"parameters on {device}; pass a Generator(seed, device='{device}')")
    d = backend.to_dtype(dtype)
    if not backend.is_float(d):
        raise DTypeError(f"{type(module).__name__}: parameters need a float dtype, got {d}")
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    for name, shape in zip(names, shapes):
        p = Parameter(backend.zeros(shape, d, device))
        uniform_(p, -bound, bound, generator)
        setattr(module, name, p)


def _check_sizes(cls: str, input_size: int, hidden_size: int) -> None:
    if not isinstance(hidden_size, int) or hidden_size <= 0:
        raise ValueError(f"{cls}: hidden_size must be a positive int, got {hidden_size!r}")
    if not isinstance(input_size, int) or input_size < 0:
        raise ValueError(f"{cls}: input_size must be a non-negative int, got {input_size!r}")


def _check_dtype(layer: str, what: str, t: Tensor, like: Tensor) -> None:
    if t.dtype != like.dtype:
        raise DTypeError(f"{layer}: {what} has dtype {t.dtype} but the parameters are {like.dtype}; "
                         f"cast one of them (tensor.to('{like.dtype}') or module.to('{t.dtype}'))")


def _check_state(layer: str, what: str, t: Any, expected: tuple[int, ...], like: Tensor) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{layer}: {what} must be a Tensor, got {type(t).__name__}")
    if tuple(t.shape) != expected:
        raise ShapeError(f"{layer}: expected {what} of shape {expected}, got {tuple(t.shape)}")
    _check_dtype(layer, what, t, like)


# ---------------------------------------------------------------- cells

class _CellBase(Module):
    """Parameters and input checks shared by the three cells."""

    mode = ""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, *, dtype: DTypeLike | None,
                 device: str, generator: Generator | None) -> None:
        super().__init__()
        _check_sizes(type(self).__name__, input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        g = _GATES[self.mode] * hidden_size
        names, shapes = ["weight_ih", "weight_hh"], [(g, input_size), (g, hidden_size)]
        if bias:
            names += ["bias_ih", "bias_hh"]
            shapes += [(g,), (g,)]
        _make_params(self, names, shapes, hidden_size, dtype, device, generator)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _prepare(self, x: Tensor, states: Sequence[Any]) -> tuple[Tensor, list[Tensor], bool]:
        """Check shapes; return x as (B, I), the states as (B, H) (zeros if None), and batchedness."""
        name = f"{type(self).__name__}({self.extra_repr()})"
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected input of shape (B, {self.input_size}) or ({self.input_size},), "
                             f"got {tuple(x.shape)}")
        _check_dtype(name, "input", x, self.weight_ih)
        batched = x.ndim == 2
        B = x.shape[0] if batched else 1
        expected = (B, self.hidden_size) if batched else (self.hidden_size,)
        out = []
        for what, s in zip(("h", "c"), states):
            if s is None:
                s = Tensor(backend.zeros((B, self.hidden_size), x.dtype, x.device))
            else:
                _check_state(name, what, s, expected, self.weight_ih)
            out.append(s if batched else s.reshape(1, self.hidden_size))
        return (x if batched else x.reshape(1, self.input_size)), out, batched

    def _ones(self, x: Tensor) -> list[Tensor]:
        return [Tensor(backend.full((x.shape[0], 1), 1.0, x.dtype, x.device))] if self.bias else []

    def _fused(self) -> Tensor:
        b = self.bias_ih + self.bias_hh if self.bias else None
        return _fused_weight(self.weight_ih, self.weight_hh, b)


class RNNCell(_CellBase):
    r"""An Elman RNN cell: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (ReLU with ``nonlinearity="relu"``).

    Args:
        input_size: I, features of the input.
        hidden_size: H, features of the hidden state.
        bias: whether to use ``b_ih`` and ``b_hh``.
        nonlinearity: ``"tanh"`` or ``"relu"``.
        dtype, device: of the parameters (default: the default float dtype, ``"cpu"``).
        generator: draws the initial values (default: the device's default generator).

    Parameters (every one drawn from U(-1/sqrt(H), 1/sqrt(H))):
        weight_ih (H, I), weight_hh (H, H), bias_ih (H,), bias_hh (H,).

    Call ``cell(x, h=None)``: x (B, I) or (I,), h (B, H) or (H,) (zeros when omitted) -> h' of h's shape.
    """

    mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", *,
                 dtype: DTypeLike | None = None, device: str = "cpu", generator: Generator | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; use 'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, bias, dtype=dtype, device=device, generator=generator)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002  (PyTorch's name)
        x, (h,), batched = self._prepare(input, [hx])
        _, h = _rnn_steps([[x]], h, self._fused(), self._ones(x), range(1), self.nonlinearity == "relu")
        return h if batched else h.reshape(self.hidden_size)


class LSTMCell(_CellBase):
    r"""A long short-term memory cell, PyTorch's equations and gate order (i, f, g, o)::

        i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)
        f = sigmoid(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)
        o = sigmoid(W_io x + b_io + W_ho h + b_ho)
        c' = f * c + i * g
        h' = o * tanh(c')

    Args:
        input_size: I; hidden_size: H; bias: whether to use the biases.
        dtype, device, generator: as for :class:`RNNCell`.

    Parameters (every one drawn from U(-1/sqrt(H), 1/sqrt(H))):
        weight_ih (4H, I) = [W_ii | W_if | W_ig | W_io] stacked by rows, weight_hh (4H, H),
        bias_ih (4H,), bias_hh (4H,).

    Call ``cell(x, (h, c)=None)``: x (B, I) or (I,); h, c (B, H) or (H,) -> ``(h', c')``.
    """

    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, dtype: DTypeLike | None = None,
                 device: str = "cpu", generator: Generator | None = None) -> None:
        super().__init__(input_size, hidden_size, bias, dtype=dtype, device=device, generator=generator)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None  # noqa: A002
                ) -> tuple[Tensor, Tensor]:
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError("LSTMCell: hx must be a tuple (h, c) of two tensors, or None")
        x, (h, c), batched = self._prepare(input, list(hx) if hx is not None else [None, None])
        _, h, c = _lstm_steps([[x]], h, c, self._fused(), self._ones(x), range(1), self.hidden_size)
        return (h, c) if batched else (h.reshape(self.hidden_size), c.reshape(self.hidden_size))


class GRUCell(_CellBase):
    r"""A gated recurrent unit cell, PyTorch's equations and gate order (r, z, n)::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    The reset gate multiplies ``W_hn h + b_hn``, after the matmul (PyTorch's and cuDNN's form).

    Args:
        input_size: I; hidden_size: H; bias: whether to use the biases.
        dtype, device, generator: as for :class:`RNNCell`.

    Parameters (every one drawn from U(-1/sqrt(H), 1/sqrt(H))):
        weight_ih (3H, I) = [W_ir | W_iz | W_in], weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,).

    Call ``cell(x, h=None)``: x (B, I) or (I,), h (B, H) or (H,) -> h'.
    """

    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, dtype: DTypeLike | None = None,
                 device: str = "cpu", generator: Generator | None = None) -> None:
        super().__init__(input_size, hidden_size, bias, dtype=dtype, device=device, generator=generator)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:  # noqa: A002
        x, (h,), batched = self._prepare(input, [hx])
        wi = _fused_weight(self.weight_ih, None, self.bias_ih if self.bias else None)
        _, h = _gru_steps([[x]], h, wi, self.weight_hh.T, self.bias_hh if self.bias else None,
                          self._ones(x), range(1), self.hidden_size)
        return h if batched else h.reshape(self.hidden_size)


# ---------------------------------------------------------------- sequence layers

class _RNNBase(Module):
    """Parameters, checks and the layer/direction loop shared by RNN, LSTM and GRU."""

    mode = ""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 dtype: DTypeLike | None = None, device: str = "cpu", generator: Generator | None = None) -> None:
        super().__init__()
        cls = type(self).__name__
        _check_sizes(cls, input_size, hidden_size)
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"{cls}: num_layers must be a positive int, got {num_layers!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{cls}: dropout must be a probability in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{cls}: dropout={dropout} acts between layers only (never on the last layer's "
                          "output), so with num_layers=1 it does nothing", stacklevel=3)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.generator = generator  # also draws the dropout masks
        g, h, dirs = _GATES[self.mode] * hidden_size, hidden_size, 2 if bidirectional else 1
        names: list[str] = []
        shapes: list[tuple[int, ...]] = []
        for layer in range(num_layers):
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                names += [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                shapes += [(g, input_size if layer == 0 else h * dirs), (g, h)]
                if bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                    shapes += [(g,), (g,)]
        self._flat_weights_names = names  # PyTorch's name for this list
        _make_params(self, names, shapes, hidden_size, dtype, device, generator)

    # ------------------------------------------------------------ PyTorch compatibility
    @property
    def all_weights(self) -> list[list[Parameter]]:
        """The parameters of each layer and direction: ``[[w_ih, w_hh, b_ih, b_hh], ...]``."""
        per = 4 if self.bias else 2
        ps = [getattr(self, n) for n in self._flat_weights_names]
        return [ps[i:i + per] for i in range(0, len(ps), per)]

    def flatten_parameters(self) -> None:
        """A no-op kept for PyTorch code (cuDNN's weight layout does not exist here)."""

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ------------------------------------------------------------ forward
    def _initial(self, name: str, hx: Any, B: int, batched: bool, x: Tensor) -> list[list[Tensor]]:
        """One list of states ([h] or [h, c]) per layer and direction, checked against the input."""
        k_total = self.num_layers * (2 if self.bidirectional else 1)
        n_states = 2 if self.mode == "LSTM" else 1
        if hx is None:
            zero = Tensor(backend.zeros((B, self.hidden_size), x.dtype, x.device))
            return [[zero] * n_states for _ in range(k_total)]
        if n_states == 2:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{name}: the initial state must be a tuple (h0, c0) of two tensors, or None")
            given = list(hx)
        else:
            given = [hx]
        expected = (k_total, B, self.hidden_size) if batched else (k_total, self.hidden_size)
        like = getattr(self, self._flat_weights_names[0])
        cut = []
        for what, s in zip(("h0", "c0"), given):
            _check_state(name, what, s, expected, like)
            cut.append(s if batched else s.reshape(k_total, 1, self.hidden_size))
        return [[s[k] for s in cut] for k in range(k_total)]

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Any]:  # noqa: A002  (PyTorch's name)
        """Run the layers over a sequence.

        Args:
            input: (T, B, I), or (B, T, I) with ``batch_first``, or (T, I) for one unbatched sequence.
            hx: the initial state, zeros when None: h0 of shape (L*D, B, H) ((L*D, H) unbatched),
                for LSTM a tuple (h0, c0). L = num_layers, D = 2 if bidirectional else 1.

        Returns:
            ``(output, h_n)``, for LSTM ``(output, (h_n, c_n))``: output (T, B, D*H) (batch first
            with ``batch_first``, (T, D*H) unbatched) holds the last layer's h at every step, both
            directions side by side; h_n and c_n have h0's shape and hold each layer and
            direction's final state (the reverse direction's is the one at t = 0).
        """
        name = f"{type(self).__name__}({self.extra_repr()})"
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        axes = "B, T" if self.batch_first else "T, B"
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected input of shape ({axes}, {self.input_size}), or (T, "
                             f"{self.input_size}) for one unbatched sequence, got {tuple(input.shape)}")
        _check_dtype(name, "input", input, getattr(self, self._flat_weights_names[0]))
        batched = input.ndim == 3
        if not batched:  # (T, I) -> (T, 1, I); batch_first does not apply to unbatched input
            x = input.reshape(input.shape[0], 1, self.input_size)
        else:
            x = input.transpose(1, 0, 2) if self.batch_first else input
        T, B = x.shape[0], x.shape[1]
        if T == 0:
            raise ShapeError(f"{name}: the input sequence is empty (T = 0)")
        states = self._initial(name, hx, B, batched, x)

        H, dirs, per = self.hidden_size, 2 if self.bidirectional else 1, 4 if self.bias else 2
        ones = [Tensor(backend.full((B, 1), 1.0, x.dtype, x.device))] if self.bias else []
        xs = _unbind(x)  # per step, the list of pieces that make the layer's input (one for layer 0)
        finals: list[list[Tensor]] = []
        outs: list[list[Tensor]] = []
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                order = range(T)
                names = self._flat_weights_names[k * per:(k + 1) * per]
                w_ih, w_hh, *b = (getattr(self, n) for n in names)
                out, *final = self._run(xs, states[k], w_ih, w_hh, b, ones, order)
                outs.append(out)
                finals.append(final)
            if layer < self.num_layers - 1:  # the next layer's input: [fwd_t] or [fwd_t, bwd_t]
                if self.training and self.dropout > 0:  # dropout between layers, never after the last
                    xs = [[F.dropout(o[t], self.dropout, True, self.generator) for o in outs] for t in range(T)]
                else:
                    xs = [[o[t] for o in outs] for t in range(T)]

        output = stack(outs[0]) if dirs == 1 else cat([stack(o) for o in outs], axis=2)  # (T, B, D*H)
        h_n = [stack([f[i] for f in finals]) for i in range(len(finals[0]))]  # (L*D, B, H) each
        if not batched:
            output = output.reshape(T, dirs * H)
            h_n = [h.reshape(len(finals), H) for h in h_n]
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        return output, (tuple(h_n) if self.mode == "LSTM" else h_n[0])

    def _run(self, xs: Sequence[list[Tensor]], state: list[Tensor], w_ih: Tensor, w_hh: Tensor,
             b: list[Tensor], ones: list[Tensor], order: range) -> tuple:
        """One layer in one direction: (per-step outputs, final h[, final c])."""
        if self.mode == "GRU":
            wi = _fused_weight(w_ih, None, b[0] if b else None)
            return _gru_steps(xs, state[0], wi, w_hh.T, b[1] if b else None, ones, order, self.hidden_size)
        w = _fused_weight(w_ih, w_hh, b[0] + b[1] if b else None)
        if self.mode == "LSTM":
            return _lstm_steps(xs, state[0], state[1], w, ones, order, self.hidden_size)
        return _rnn_steps(xs, state[0], w, ones, order, self.mode == "RNN_RELU")


class RNN(_RNNBase):
    r"""A multi-layer Elman RNN: at each step ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``
    (ReLU with ``nonlinearity="relu"``); layer l > 0 takes layer l-1's outputs as its x_t.

    Args:
        input_size: I, features of x_t.
        hidden_size: H, features of h_t.
        num_layers: L, stacked layers.
        nonlinearity: ``"tanh"`` or ``"relu"`` (PyTorch's fourth positional argument).
        bias: whether to use the biases.
        batch_first: input and output as (B, T, features) instead of (T, B, features).
        dropout: probability of zeroing each output of every layer but the last, in training mode.
        bidirectional: also run each layer backwards in time (D = 2) and join both outputs.
        dtype, device: of the parameters (default: the default float dtype, ``"cpu"``).
        generator: draws the initial values and the dropout masks (default: the device's default).

    Parameters, for layer l and each direction (suffix ``_l{l}``, ``_l{l}_reverse`` backwards),
    every one drawn from U(-1/sqrt(H), 1/sqrt(H)):
        weight_ih_l{l} (H, I) for l = 0, (H, D*H) above; weight_hh_l{l} (H, H);
        bias_ih_l{l} (H,); bias_hh_l{l} (H,).

    Call ``rnn(input, h0=None) -> (output, h_n)``; shapes in :meth:`forward`.

    >>> import tinygrad_rnn as tg
    >>> rnn = RNN(3, 5, num_layers=2, generator=tg.Generator(0))
    >>> out, h_n = rnn(tg.randn(7, 2, 3))
    >>> out.shape, h_n.shape
    ((7, 2, 5), (2, 2, 5))
    """

    mode = "RNN_TANH"  # "RNN_RELU" with nonlinearity="relu" (PyTorch's mode names)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 *, dtype: DTypeLike | None = None, device: str = "cpu", generator: Generator | None = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; use 'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype, device=device, generator=generator)
        self.nonlinearity = nonlinearity
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


class LSTM(_RNNBase):
    r"""A multi-layer long short-term memory RNN. At each step, for each layer (gate order i, f, g, o)::

        i_t = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
        f_t = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        o_t = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)

    Layer l > 0 takes layer l-1's h_t (both directions joined) as its x_t.

    Args:
        as for :class:`RNN` (without ``nonlinearity``).

    Parameters, for layer l and each direction (suffix ``_l{l}``, ``_l{l}_reverse`` backwards),
    every one drawn from U(-1/sqrt(H), 1/sqrt(H)):
        weight_ih_l{l} (4H, I) for l = 0, (4H, D*H) above: [W_ii | W_if | W_ig | W_io] by rows;
        weight_hh_l{l} (4H, H); bias_ih_l{l} (4H,); bias_hh_l{l} (4H,).

    Call ``lstm(input, (h0, c0)=None) -> (output, (h_n, c_n))``; shapes in :meth:`forward`.

    >>> import tinygrad_rnn as tg
    >>> lstm = LSTM(65, 256, num_layers=2, generator=tg.Generator(0))
    >>> lstm
    LSTM(65, 256, num_layers=2)
    >>> out, (h_n, c_n) = lstm(tg.randn(10, 4, 65))
    >>> out.shape, h_n.shape, c_n.shape
    ((10, 4, 256), (2, 4, 256), (2, 4, 256))
    """

    mode = "LSTM"


class GRU(_RNNBase):
    r"""A multi-layer gated recurrent unit RNN. At each step, for each layer (gate order r, z, n)::

        r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    The reset gate multiplies ``W_hn h + b_hn``, after the matmul (PyTorch's and cuDNN's form).

    Args:
        as for :class:`RNN` (without ``nonlinearity``).

    Parameters, for layer l and each direction (suffix ``_l{l}``, ``_l{l}_reverse`` backwards),
    every one drawn from U(-1/sqrt(H), 1/sqrt(H)):
        weight_ih_l{l} (3H, I) for l = 0, (3H, D*H) above: [W_ir | W_iz | W_in] by rows;
        weight_hh_l{l} (3H, H); bias_ih_l{l} (3H,); bias_hh_l{l} (3H,).

    Call ``gru(input, h0=None) -> (output, h_n)``; shapes in :meth:`forward`.
    """

    mode = "GRU"
