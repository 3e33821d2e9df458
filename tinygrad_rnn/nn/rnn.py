"""The multi-layer, optionally bidirectional sequence layers RNN, LSTM and GRU, with PyTorch's
API, parameter names, shapes, gate order and initialisation (the cells and the time-step
loops they share are in ``rnn_cells.py``; the cells are re-exported here).

Layout. For each layer and direction: the input-to-hidden product of all T steps in ONE
matmul before the time loop, ``(T*B, I) @ W_ih^T + b_ih + b_hh`` (GRU folds only b_ih: its
b_hn sits inside the reset gate's product); then per step ONE matmul ``h @ W_hh^T`` for all
gates and the gate nonlinearities on slices of that (B, G*H) array (see ``rnn_cells``); the
step outputs joined once with ``stack``. Backpropagation through time is the engine's
reverse pass over that unrolled loop. Slicing the T steps out of the projection is O(T) in
backward because the engine sums indexing gradients into one buffer (``SparseGrad``).

Forward ops per time step, per layer and direction: RNN 3, LSTM 13, GRU 16 (with or without
biases); per layer and direction about 8 more (projection, transposes, stack), and between
layers in training mode one dropout multiply on the whole (T, B, D*H) output.
"""

from __future__ import annotations

import warnings
from typing import Any

from .. import backend
from ..autograd import is_grad_enabled, note_state
from ..backend import DTypeLike, Generator
from ..errors import ShapeError
from ..functions import cat, stack
from ..graph import StepClock, tag_steps
from ..ops.shape import Contiguous
from ..tensor import Tensor
from . import functional as F
from .module import Module, Parameter
from .packing import PackedSequence, padded_index, step_masks
from .rnn_cells import (
    GATES, GRUCell, LSTMCell, RNNCell, check_dtype, check_sizes, check_state, gru_steps, input_projection,
    lstm_steps, make_params, rnn_steps,
)

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU"]


# ---------------------------------------------------------------- sequence layers

class _RNNBase(Module):
    """Parameters, checks and the layer/direction loop shared by RNN, LSTM and GRU."""

    mode = ""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 dtype: DTypeLike | None = None, device: str = "cpu", generator: Generator | None = None,
                 fused: bool = False) -> None:
        super().__init__()
        cls = type(self).__name__
        check_sizes(cls, input_size, hidden_size)
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"{cls}: num_layers must be a positive int, got {num_layers!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{cls}: dropout must be a probability in [0, 1], got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{cls}: dropout={dropout} acts between layers only (never on the last layer's "
                          "output), so with num_layers=1 it does nothing",
                          stacklevel=2 if type(self).__init__ is _RNNBase.__init__ else 3)  # the user's line
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.generator = generator  # also draws the dropout masks
        if fused and self.mode not in ("LSTM", "GRU"):
            raise ValueError(f"{cls}: fused=True exists for LSTM and GRU only")
        self.fused = fused  # the cell's elementwise part as one first-order op (ops/fused.py)
        g, h, dirs = GATES[self.mode] * hidden_size, hidden_size, 2 if bidirectional else 1
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
        make_params(self, names, shapes, hidden_size, dtype, device, generator)

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
            check_state(name, what, s, expected, like)
            cut.append(s if batched else s.reshape(k_total, 1, self.hidden_size))
        # [issue 13: freed-graph error] a state with a graph is labelled, so that a backward through
        # an earlier chunk's released graph names it (and says how to detach it)
        if any(s.node is not None for s in given):
            note_state(given, f"the initial state {'(h0, c0)' if n_states == 2 else 'h0'} passed to {name}")
        return [[s[k] for s in cut] for k in range(k_total)]

    def forward(self, input: Tensor | PackedSequence, hx: Any = None) -> tuple[Any, Any]:  # noqa: A002
        """Run the layers over a sequence, or over a batch of sequences of different lengths.

        Args:
            input: (T, B, I), or (B, T, I) with ``batch_first``, or (T, I) for one unbatched sequence;
                or a :class:`~tinygrad_rnn.nn.PackedSequence` (``pack_padded_sequence``): each
                sequence then runs over its own length only (see :meth:`_forward_packed`).
            hx: the initial state, zeros when None: h0 of shape (L*D, B, H) ((L*D, H) unbatched),
                for LSTM a tuple (h0, c0). L = num_layers, D = 2 if bidirectional else 1.

        Returns:
            ``(output, h_n)``, for LSTM ``(output, (h_n, c_n))``: output (T, B, D*H) (batch first
            with ``batch_first``, (T, D*H) unbatched) holds the last layer's h at every step, both
            directions side by side; h_n and c_n have h0's shape and hold each layer and
            direction's final state (the reverse direction's is the one at t = 0). For a
            PackedSequence input, output is a PackedSequence with the input's ``batch_sizes`` and
            indices, and h_n (c_n) holds each sequence's state after its own last step, in the
            original batch order.
        """
        name = f"{type(self).__name__}({self.extra_repr()})"
        if isinstance(input, PackedSequence):
            return self._forward_packed(name, input, hx)
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        axes = "B, T" if self.batch_first else "T, B"
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected input of shape ({axes}, {self.input_size}), or (T, "
                             f"{self.input_size}) for one unbatched sequence, got {tuple(input.shape)}")
        check_dtype(name, "input", input, getattr(self, self._flat_weights_names[0]))
        batched = input.ndim == 3
        if not batched:  # (T, I) -> (T, 1, I); batch_first does not apply to unbatched input
            x = input.reshape(input.shape[0], 1, self.input_size)
        else:
            x = input.transpose(1, 0, 2) if self.batch_first else input
        T, B = x.shape[0], x.shape[1]
        if T == 0:
            raise ShapeError(f"{name}: the input sequence is empty (T = 0)")
        states = self._initial(name, hx, B, batched, x)
        output, h_n = self._layers(x, states)
        H, dirs = self.hidden_size, 2 if self.bidirectional else 1
        if not batched:
            output = output.reshape(T, dirs * H)
            h_n = [h.reshape(h.shape[0], H) for h in h_n]
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        return output, (tuple(h_n) if self.mode == "LSTM" else h_n[0])

    def _forward_packed(self, name: str, packed: PackedSequence, hx: Any) -> tuple[PackedSequence, Any]:
        """The layers over sequences of different lengths; returns ``(PackedSequence, h_n)``.

        The packed rows are spread over a dense (T, B, I) grid in decreasing-length order (padding
        rows are zeros) and the usual step loops run over it with a per-step mask that holds each
        finished sequence's state (``h = where(t < length, h', h)``), so h_n is taken at each
        sequence's own last step and a reverse direction starts there. Only the real steps are
        gathered back into the output, so padding reaches neither the output nor any gradient.
        h0 and h_n are in the original batch order, as in PyTorch.
        """
        data = packed.data
        if not isinstance(data, Tensor) or data.ndim != 2 or data.shape[1] != self.input_size:
            raise ShapeError(f"{name}: expected packed data of shape (N, {self.input_size}), got "
                             f"{tuple(getattr(data, 'shape', ()))}")
        check_dtype(name, "input", data, getattr(self, self._flat_weights_names[0]))
        sizes = [int(n) for n in packed.batch_sizes.tolist()]
        T, B, n_rows = len(sizes), sizes[0], sum(sizes)
        if data.shape[0] != n_rows:
            raise ShapeError(f"{name}: packed data has {data.shape[0]} rows but batch_sizes add up to {n_rows}")
        grid = padded_index(sizes)  # sorted order: column b is the b-th longest sequence
        zero = Tensor(backend.zeros((1, self.input_size), data.dtype, data.device))
        x = cat([data, zero])[Tensor(backend.as_array(grid, backend.int64, data.device))]
        states = self._initial(name, hx, B, True, data)
        if packed.sorted_indices is not None and hx is not None:  # h0 is given in the original order
            states = [[s[packed.sorted_indices] for s in st] for st in states]
        output, h_n = self._layers(x.reshape(T, B, self.input_size), states, step_masks(sizes, data))
        real = [g for g in range(T * B) if grid[g] != n_rows]  # in data-row order: t, then position
        out = output.reshape(T * B, output.shape[2])[Tensor(backend.as_array(real, backend.int64, data.device))]
        if packed.unsorted_indices is not None:
            h_n = [h[:, packed.unsorted_indices] for h in h_n]
        result = PackedSequence(out, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        return result, (tuple(h_n) if self.mode == "LSTM" else h_n[0])

    def _layers(self, x: Tensor, states: list[list[Tensor]], masks: list[Any] | None = None
                ) -> tuple[Tensor, list[Tensor]]:
        """All layers and directions over x (T, B, I): (last layer's output (T, B, D*H), [h_n(, c_n)])."""
        T = x.shape[0]
        dirs, per = 2 if self.bidirectional else 1, 4 if self.bias else 2
        finals: list[list[Tensor]] = []
        clocks: list[StepClock] = []  # where each layer's steps lie on the tape, for graph.print_graph/to_dot
        for layer in range(self.num_layers):
            if layer > 0 and self.training and self.dropout > 0:  # between layers only, never after the last
                x = F.dropout(x, self.dropout, True, self.generator)
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                order: Any = range(T - 1, -1, -1) if d else range(T)
                if is_grad_enabled():  # one tick of the tape's clock per step, nothing per op
                    order = StepClock(f"{type(self).__name__} layer {layer}" + (" reverse" if d else ""), order)
                    clocks.append(order)
                w_ih, w_hh, *b = (getattr(self, n) for n in self._flat_weights_names[k * per:(k + 1) * per])
                out, *final = self._run(x, states[k], w_ih, w_hh, b, order, masks)
                outs.append(stack(out))
                finals.append(final)
            x = outs[0] if dirs == 1 else cat(outs, axis=2)  # (T, B, D*H): the next layer's input
        h_n = [stack([f[i] for f in finals]) for i in range(len(finals[0]))]  # (L*D, B, H) each
        if clocks:
            tag_steps(clocks, x, *h_n)
        return x, h_n

    def _run(self, x: Tensor, state: list[Tensor], w_ih: Tensor, w_hh: Tensor, b: list[Tensor],
             order: range, masks: list[Any] | None = None) -> tuple:
        """One layer in one direction over x (T, B, I): (per-step outputs, final h[, final c]).
        ``masks``: per step None or a (B, 1) bool "still running" (sequences of different lengths)."""
        # Used at every step: BLAS is faster on a row-major copy of W_hh^T than on a view, and the
        # backward product dA @ W_hh faster on W_hh's own row-major array (parameter updates bind
        # new arrays, so a graph keeps the values it was recorded with).
        whh_t, whh = Contiguous.apply(w_hh.T), w_hh.data
        if self.mode == "GRU":
            xw = input_projection(x, w_ih, b[0] if b else None)
            return gru_steps(xw, state[0], whh_t, b[1] if b else None, order, self.hidden_size, whh, self.fused,
                             masks)
        xw = input_projection(x, w_ih, b[0] + b[1] if b else None)  # both biases simply add: folded
        if self.mode == "LSTM":
            return lstm_steps(xw, state[0], state[1], whh_t, order, self.hidden_size, self.fused, whh, masks)
        return rnn_steps(xw, state[0], whh_t, order, self.mode == "RNN_RELU", whh, masks)


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
        dtype: of the parameters (default: the default float dtype).
        device: of the parameters (default ``"cpu"``).
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

    Takes the arguments of :class:`RNN`, without ``nonlinearity``, and ``fused``: run each step's
    elementwise part as one first-order op (``ops/fused.py``; a CUDA kernel on the GPU), equal up to rounding.

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

    Takes the arguments of :class:`RNN`, without ``nonlinearity``, and ``fused``: run each step's
    elementwise part as one first-order op (``ops/fused.py``; a CUDA kernel on the GPU), equal up to rounding.

    Parameters, for layer l and each direction (suffix ``_l{l}``, ``_l{l}_reverse`` backwards),
    every one drawn from U(-1/sqrt(H), 1/sqrt(H)):
        weight_ih_l{l} (3H, I) for l = 0, (3H, D*H) above: [W_ir | W_iz | W_in] by rows;
        weight_hh_l{l} (3H, H); bias_ih_l{l} (3H,); bias_hh_l{l} (3H,).

    Call ``gru(input, h0=None) -> (output, h_n)``; shapes in :meth:`forward`.
    """

    mode = "GRU"
