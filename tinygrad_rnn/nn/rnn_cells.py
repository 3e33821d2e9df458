"""The recurrent cells RNNCell, LSTMCell, GRUCell, and the time-step loops that the cells and
the sequence layers (``rnn.py``) share.

Parameter names, shapes, gate order and initialisation are PyTorch's, so a PyTorch
``state_dict()`` loads unchanged. Each step is composed from the engine's differentiable
ops; backpropagation through time is the engine's generic reverse pass over the unrolled
loop, nothing here is a hand-written backward.

A step is a handful of ops, and each op costs a few microseconds of Python, so the count
per step is what sets the speed of small and medium models:

* The input-to-hidden products ``W_ih x_t + b_ih (+ b_hh)`` do not depend on h, so the
  caller computes them for all steps at once (``input_projection``: one matmul for the
  whole sequence, biases folded in) and a step only picks its (B, G*H) row block out of
  that: a view whose backward the engine adds into one buffer (a ``SparseGrad``).
* ONE matmul per step, ``h @ W_hh^T``, gives the recurrent part of all gates (for RNN and
  LSTM as ``addmm(xw_t, h, W_hh^T)``: the step's input projection is added into the product
  in the same op); the gate nonlinearities run on slices of that one (B, G*H) array. LSTM takes one sigmoid over all
  4H columns (the g block's is computed and ignored: one op instead of three).
* The loops apply ops directly (``GetItem.apply(s, index=...)``, ``Addmm.apply``,
  ``Mul.apply``...) rather than through ``s[...]``, ``@`` and ``*``: those normalise and
  check arguments that are fixed and already checked, which costs about as much as a small op.

Forward ops per step: RNN 3 (pick, addmm, tanh|relu); LSTM 13 (pick, addmm, sigmoid,
4 slices, tanh(g), 3 for c', 2 for h'); GRU 16 (pick, addmm (+ b_hh),
2 slices, add and sigmoid for r and z only, 2 slices for r and z, 5 for n, 3 for h'; with a
matmul in place of the addmm without biases). The backward pass
runs one rule per op.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .. import backend
from ..autograd import note_state
from ..backend import DTypeLike, Generator
from ..errors import DeviceError, DTypeError, ShapeError
from ..ops.elementwise import Add, Mul, Relu, Sigmoid, Sub, Tanh, Where
from ..ops.fused import GRUCellFused, LSTMCellFused
from ..ops.linalg import Addmm, MatMul
from ..ops.shape import GetItem
from ..tensor import Tensor
from .init import uniform_
from .module import Module, Parameter

__all__ = ["RNNCell", "LSTMCell", "GRUCell"]

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}  # gate blocks per mode (PyTorch's mode names)


# ---------------------------------------------------------------- the time steps
# Each loop runs the steps in ``order`` (forwards, or backwards for a reverse direction) over
# ``xw``: per step, the (B, G*H) input projection ``W_ih x_t + b_ih`` (+ ``b_hh`` for RNN and
# LSTM, where it simply adds). Outputs are returned in time order whatever the order run.
# ``masks`` (only for sequences of different lengths, see packing.py): per step None, or a
# (B, 1) bool array "still running"; where it is False the state is held, h = where(m, h', h),
# so a finished sequence keeps its last state and a reverse direction starts at each
# sequence's own last step. Where's backward sends no gradient into the masked-out h'.

def _cols(start: int, stop: int) -> tuple[slice, slice]:
    return (slice(None), slice(start, stop))


def input_projection(x: Tensor, w_ih: Tensor, b: Tensor | None) -> list[Tensor]:
    """``W_ih x_t + b`` for every step of x (T, B, I), in ONE matmul: a list of T (B, G*H) views."""
    T, B = x.shape[0], x.shape[1]
    x2 = x.reshape(T * B, x.shape[2])
    xw = x2 @ w_ih.T if b is None else Addmm.apply(b, x2, w_ih.T)  # b + x W_ih^T in one op
    xw = xw.reshape(T, B, w_ih.shape[0])
    return [GetItem.apply(xw, index=t) for t in range(T)]


def lstm_steps(xw: Sequence[Tensor], h: Tensor, c: Tensor, whh_t: Tensor, order: range,
               hs: int, fused: bool = False, whh: Any = None, masks: Sequence[Any] | None = None
               ) -> tuple[list[Tensor], Tensor, Tensor]:
    """LSTM steps; ``whh_t`` is ``W_hh^T`` (H, 4H). Returns (outputs by time, last h, last c).

    ``fused``: the cell's elementwise part as one op (``LSTMCellFused``, first-order only).
    ``whh``: optionally ``W_hh`` as a row-major array, for the backward products (``Addmm``'s ``bt``).
    """
    i_, f_, g_, o_ = _cols(0, hs), _cols(hs, 2 * hs), _cols(2 * hs, 3 * hs), _cols(3 * hs, 4 * hs)
    pick, addmm, hold = GetItem.apply, Addmm.apply, Where.apply
    outs: list[Any] = [None] * len(xw)
    if fused:
        cell = LSTMCellFused.apply
        for t in order:
            hc = cell(addmm(xw[t], h, whh_t, bt=whh), c)  # (2, B, H): h' and c' of one step
            if masks is not None and masks[t] is not None:
                h, c = hold(masks[t], pick(hc, index=0), h), hold(masks[t], pick(hc, index=1), c)
            else:
                h, c = pick(hc, index=0), pick(hc, index=1)
            outs[t] = h
        return outs, h, c
    mul, add, sigmoid, tanh = Mul.apply, Add.apply, Sigmoid.apply, Tanh.apply
    for t in order:
        a = addmm(xw[t], h, whh_t, bt=whh)  # (B, 4H) pre-activations x W_ih^T + b + h W_hh^T: i | f | g | o
        g = tanh(pick(a, index=g_))
        s = sigmoid(a)  # all four blocks at once; the g block's sigmoid is not used. Recorded after g's
        # tanh, so backward meets it first: its dense gradient becomes the buffer g's slice is added into.
        c_new = add(mul(pick(s, index=f_), c), mul(pick(s, index=i_), g))  # c' = f*c + i*g
        h_new = mul(pick(s, index=o_), tanh(c_new))  # h' = o * tanh(c')
        if masks is not None and masks[t] is not None:
            h_new, c_new = hold(masks[t], h_new, h), hold(masks[t], c_new, c)
        h, c = h_new, c_new
        outs[t] = h
    return outs, h, c


def gru_steps(xw: Sequence[Tensor], h: Tensor, whh_t: Tensor, b_hh: Tensor | None, order: range,
              hs: int, whh: Any = None, fused: bool = False, masks: Sequence[Any] | None = None
              ) -> tuple[list[Tensor], Tensor]:
    """GRU steps; ``xw`` holds ``W_ih x_t + b_ih`` only, ``whh_t`` is ``W_hh^T`` (H, 3H), ``whh``
    optionally ``W_hh`` itself (row-major, for the backward products). ``fused``: the cell's
    elementwise part as one op (``GRUCellFused``, first-order only)."""
    rz_, n_, r_, z_ = _cols(0, 2 * hs), _cols(2 * hs, 3 * hs), _cols(0, hs), _cols(hs, 2 * hs)
    pick, mm, addmm = GetItem.apply, MatMul.apply, Addmm.apply
    outs: list[Any] = [None] * len(xw)
    if fused:
        for t in order:
            gh = mm(h, whh_t) if b_hh is None else addmm(b_hh, h, whh_t, bt=whh)  # W_hh h + b_hh: r | z | n
            h_new = GRUCellFused.apply(xw[t], gh, h)
            h = outs[t] = h_new if masks is None or masks[t] is None else Where.apply(masks[t], h_new, h)
        return outs, h
    mul, add, sub, sigmoid, tanh = Mul.apply, Add.apply, Sub.apply, Sigmoid.apply, Tanh.apply
    for t in order:
        gi = xw[t]  # W_ih x + b_ih: r | z | n
        gh = mm(h, whh_t) if b_hh is None else addmm(b_hh, h, whh_t, bt=whh)  # W_hh h + b_hh: r | z | n
        s = sigmoid(add(pick(gi, index=rz_), pick(gh, index=rz_)))  # r | z, one op for both gates
        # n = tanh(W_in x + b_in + r * (W_hn h + b_hn)): the reset gate acts after the matmul
        n = tanh(add(pick(gi, index=n_), mul(pick(s, index=r_), pick(gh, index=n_))))
        h_new = add(n, mul(pick(s, index=z_), sub(h, n)))  # h' = (1 - z) * n + z * h
        h = h_new if masks is None or masks[t] is None else Where.apply(masks[t], h_new, h)
        outs[t] = h
    return outs, h


def rnn_steps(xw: Sequence[Tensor], h: Tensor, whh_t: Tensor, order: range,
              relu: bool, whh: Any = None, masks: Sequence[Any] | None = None) -> tuple[list[Tensor], Tensor]:
    """Elman RNN steps; ``whh_t`` is ``W_hh^T`` (H, H), ``whh`` optionally ``W_hh`` (row-major).
    Returns (outputs by time, last h)."""
    addmm, act = Addmm.apply, (Relu if relu else Tanh).apply
    outs: list[Any] = [None] * len(xw)
    for t in order:
        h_new = act(addmm(xw[t], h, whh_t, bt=whh))
        h = h_new if masks is None or masks[t] is None else Where.apply(masks[t], h_new, h)
        outs[t] = h
    return outs, h


# ---------------------------------------------------------------- shared construction

def make_params(module: Module, names: Sequence[str], shapes: Sequence[tuple[int, ...]], hidden_size: int,
                 dtype: DTypeLike | None, device: str, generator: Generator | None) -> None:
    """Register the parameters in order, each drawn from U(-1/sqrt(H), 1/sqrt(H)) as in PyTorch."""
    device = backend.check_device(device)
    if generator is not None and generator.device != device:
        raise DeviceError(f"{type(module).__name__}: a {generator.device} generator cannot initialise "
                          f"parameters on {device}; pass a Generator(seed, device='{device}')")
    d = backend.to_dtype(dtype)
    if not backend.is_float(d):
        raise DTypeError(f"{type(module).__name__}: parameters need a float dtype, got {d}")
    bound = 1.0 / math.sqrt(hidden_size)
    for name, shape in zip(names, shapes):
        p = Parameter(backend.zeros(shape, d, device))
        uniform_(p, -bound, bound, generator)
        setattr(module, name, p)


def check_sizes(cls: str, input_size: int, hidden_size: int) -> None:
    """Reject sizes PyTorch rejects, naming the layer class."""
    if not isinstance(hidden_size, int) or hidden_size <= 0:
        raise ValueError(f"{cls}: hidden_size must be a positive int, got {hidden_size!r}")
    if not isinstance(input_size, int) or input_size < 0:
        raise ValueError(f"{cls}: input_size must be a non-negative int, got {input_size!r}")


def check_dtype(layer: str, what: str, t: Tensor, like: Tensor) -> None:
    """A DTypeError naming the layer when ``t`` and the parameters (``like``) differ in dtype."""
    if t.dtype != like.dtype:
        raise DTypeError(f"{layer}: {what} has dtype {t.dtype} but the parameters are {like.dtype}; "
                         f"cast one of them (tensor.to('{like.dtype}') or module.to('{t.dtype}'))")


def check_state(layer: str, what: str, t: Any, expected: tuple[int, ...], like: Tensor) -> None:
    """A ShapeError naming the layer, the expected and the actual shape of an initial state."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{layer}: {what} must be a Tensor, got {type(t).__name__}")
    if tuple(t.shape) != expected:
        raise ShapeError(f"{layer}: expected {what} of shape {expected}, got {tuple(t.shape)}")
    check_dtype(layer, what, t, like)


# ---------------------------------------------------------------- cells

class _CellBase(Module):
    """Parameters and input checks shared by the three cells."""

    mode = ""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, *, dtype: DTypeLike | None,
                 device: str, generator: Generator | None) -> None:
        super().__init__()
        check_sizes(type(self).__name__, input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        g = GATES[self.mode] * hidden_size
        names, shapes = ["weight_ih", "weight_hh"], [(g, input_size), (g, hidden_size)]
        if bias:
            names += ["bias_ih", "bias_hh"]
            shapes += [(g,), (g,)]
        make_params(self, names, shapes, hidden_size, dtype, device, generator)

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
        check_dtype(name, "input", x, self.weight_ih)
        batched = x.ndim == 2
        B = x.shape[0] if batched else 1
        expected = (B, self.hidden_size) if batched else (self.hidden_size,)
        out = []
        for what, s in zip(("h", "c"), states):
            if s is None:
                s = Tensor(backend.zeros((B, self.hidden_size), x.dtype, x.device))
            else:
                check_state(name, what, s, expected, self.weight_ih)
                if s.node is not None:  # a backward through a released graph names it (autograd.note_state)
                    note_state(s, f"the state {what} passed to {name}")
            out.append(s if batched else s.reshape(1, self.hidden_size))
        return (x if batched else x.reshape(1, self.input_size)), out, batched

    def _projection(self, x: Tensor, fold_b_hh: bool) -> list[Tensor]:
        """``[W_ih x + b_ih (+ b_hh)]`` for x (B, I): the step loops' input, as a one-step list."""
        b = (self.bias_ih + self.bias_hh if fold_b_hh else self.bias_ih) if self.bias else None
        return [x @ self.weight_ih.T if b is None else Addmm.apply(b, x, self.weight_ih.T)]


class RNNCell(_CellBase):
    r"""An Elman RNN cell: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (ReLU with ``nonlinearity="relu"``).

    Args:
        input_size: I, features of the input.
        hidden_size: H, features of the hidden state.
        bias: whether to use ``b_ih`` and ``b_hh``.
        nonlinearity: ``"tanh"`` or ``"relu"``.
        dtype: of the parameters (default: the default float dtype).
        device: of the parameters (default ``"cpu"``).
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
        _, h = rnn_steps(self._projection(x, True), h, self.weight_hh.T, range(1), self.nonlinearity == "relu")
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
        input_size: I, features of the input.
        hidden_size: H, features of the hidden state.
        bias: whether to use the biases.
        dtype: as for :class:`RNNCell`.
        device: as for :class:`RNNCell`.
        generator: as for :class:`RNNCell`.

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
        _, h, c = lstm_steps(self._projection(x, True), h, c, self.weight_hh.T, range(1), self.hidden_size)
        return (h, c) if batched else (h.reshape(self.hidden_size), c.reshape(self.hidden_size))


class GRUCell(_CellBase):
    r"""A gated recurrent unit cell, PyTorch's equations and gate order (r, z, n)::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    The reset gate multiplies ``W_hn h + b_hn``, after the matmul (PyTorch's and cuDNN's form).

    Args:
        input_size: I, features of the input.
        hidden_size: H, features of the hidden state.
        bias: whether to use the biases.
        dtype: as for :class:`RNNCell`.
        device: as for :class:`RNNCell`.
        generator: as for :class:`RNNCell`.

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
        _, h = gru_steps(self._projection(x, False), h, self.weight_hh.T, self.bias_hh if self.bias else None,
                         range(1), self.hidden_size)
        return h if batched else h.reshape(self.hidden_size)
