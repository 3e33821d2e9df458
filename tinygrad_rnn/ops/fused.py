"""Fused recurrent-cell ops: the elementwise part of an LSTM step as ONE op, with a
hand-written backward. Optional: the layers use the composed cell unless built with
``fused=True``, and ``tests/test_fused.py`` proves this op equal to the composed one.

Why: the composed LSTM step is 13 ops (forward) whose rules each read and write whole
(B, 4H) or (B, H) arrays; fused, the step is pick + addmm + this op + 2 picks, and the
arithmetic runs in fewer passes over memory. It is first-order only (its backward is
written on arrays); differentiate twice with the composed cell.
"""

from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..errors import BackwardError
from ..tensor import Tensor


class LSTMCellFused(Function):
    """``(h', c')`` stacked as (2, B, H) from the gate pre-activations a (B, 4H), in the block
    order i | f | g | o, and the previous cell state c (B, H)::

        i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
        c' = f * c + i * g;  h' = o * tanh(c')
    """

    @staticmethod
    def forward(ctx, a, c):
        hs = c.shape[-1]
        s = backend.sigmoid(a)                          # i | f | . | o (the g block is overwritten next)
        s[:, 2 * hs: 3 * hs] = backend.tanh(a[:, 2 * hs: 3 * hs])
        i, f, g, o = s[:, :hs], s[:, hs: 2 * hs], s[:, 2 * hs: 3 * hs], s[:, 3 * hs:]
        out = backend.get_xp(a).empty((2,) + c.shape, dtype=a.dtype)
        h_new, c_new = out[0], out[1]
        backend.multiply(f, c, out=c_new)
        c_new += i * g
        tc = backend.tanh(c_new)
        backend.multiply(o, tc, out=h_new)
        ctx.save_for_backward(s, c, tc)
        return out

    @staticmethod
    def backward(ctx, grad):
        if isinstance(grad, Tensor):
            raise BackwardError("LSTMCellFused is first-order only: build the layer with fused=False "
                                "to take second derivatives")
        # With dc_t = dc' + dh' * o * (1 - tanh(c')^2):
        #   da_i = dc_t * g * i(1 - i)    da_f = dc_t * c * f(1 - f)
        #   da_g = dc_t * i * (1 - g^2)   da_o = dh' * tanh(c') * o(1 - o)    dc = dc_t * f
        s, c, tc = ctx.saved
        hs = c.shape[-1]
        dh, dc = grad[0], grad[1]
        i, f, g, o = s[:, :hs], s[:, hs: 2 * hs], s[:, 2 * hs: 3 * hs], s[:, 3 * hs:]
        dct = backend.tanh_grad(dh, tc)  # dh' (1 - tanh(c')^2), in one new array
        dct *= o
        dct += dc
        da = backend.get_xp(s).empty(s.shape, dtype=s.dtype)
        backend.multiply(dct, g, out=da[:, :hs])
        backend.multiply(dct, c, out=da[:, hs: 2 * hs])
        backend.multiply(dct, i, out=da[:, 2 * hs: 3 * hs])
        backend.multiply(dh, tc, out=da[:, 3 * hs:])
        for lo, hi in ((0, hs), (hs, 2 * hs), (3 * hs, 4 * hs)):  # the sigmoid blocks: * y (1 - y)
            y = s[:, lo:hi]
            da[:, lo:hi] *= y - y * y
        da[:, 2 * hs: 3 * hs] *= 1 - g * g                     # the tanh block: * (1 - g^2)
        return da, (dct * f if ctx.needs_input_grad[1] else None)
