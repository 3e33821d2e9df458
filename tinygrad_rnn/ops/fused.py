"""Fused recurrent-cell ops: the elementwise part of an LSTM or GRU step as ONE op, with a
hand-written backward. Optional: the layers use the composed cell unless built with
``fused=True``, and ``tests/test_fused.py`` proves each op equal to the composed one.

Why: the composed LSTM step is 13 ops (forward) and the GRU step 16, whose rules each read
and write whole (B, G*H) or (B, H) arrays; fused, the arithmetic runs in fewer passes over
memory. Each op has two bodies, as Chainer's fused LSTM has: on CuPy arrays of float32 or
float64 one CUDA kernel forward and one backward (``cuda_kernels.py``); otherwise the NumPy
twin below, written with array methods that NumPy and CuPy share. They compute the same
function (tested against each other and against the composed cell). The ops are first-order
only (their backward is written on arrays); differentiate twice with the composed cell.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..autograd import Function
from ..errors import BackwardError, DTypeError, ShapeError
from ..tensor import Tensor
from . import cuda_kernels

# False runs the NumPy twins on CuPy arrays too (the GPU tests compare kernel and twin there).
USE_CUDA_KERNELS = True


def _kernel_path(a: Any) -> bool:
    return USE_CUDA_KERNELS and cuda_kernels.has_kernels(a)


def _check(op: str, gates: int, pre: tuple[Any, ...], state: Any) -> None:
    """Shapes (B, gates*H) for the pre-activations and (B, H) for the state, one dtype: the kernels
    index memory directly, so a mismatch must stop here rather than read out of bounds."""
    if state.ndim != 2 or any(p.shape != (state.shape[0], gates * state.shape[1]) for p in pre):
        shapes = ", ".join(str(tuple(p.shape)) for p in (*pre, state))
        raise ShapeError(f"{op}: expected pre-activations of shape (B, {gates}H) and a state of shape (B, H), "
                         f"got {shapes}")
    if any(p.dtype != state.dtype for p in pre):
        raise DTypeError(f"{op}: inputs have dtypes {', '.join(str(p.dtype) for p in (*pre, state))}; "
                         "cast them to one dtype")


def _first_order(op: str, grad: Any) -> None:
    if isinstance(grad, Tensor):
        raise BackwardError(f"{op} is first-order only: build the layer with fused=False "
                            "to take second derivatives")


class LSTMCellFused(Function):
    """``(h', c')`` stacked as (2, B, H) from the gate pre-activations a (B, 4H), in the block
    order i | f | g | o, and the previous cell state c (B, H)::

        i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
        c' = f * c + i * g;  h' = o * tanh(c')
    """

    @staticmethod
    def forward(ctx, a, c):
        _check("LSTMCellFused", 4, (a,), c)
        ctx.kernel = _kernel_path(a)  # backward takes the same path, whatever changes meanwhile
        if ctx.kernel:
            out = cuda_kernels.lstm_forward(a, c)
            ctx.save_for_backward(a, c, out[1])  # the kernel recomputes the gates from a
            return out
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
        _first_order("LSTMCellFused", grad)
        # With dc_t = dc' + dh' * o * (1 - tanh(c')^2):
        #   da_i = dc_t * g * i(1 - i)    da_f = dc_t * c * f(1 - f)
        #   da_g = dc_t * i * (1 - g^2)   da_o = dh' * tanh(c') * o(1 - o)    dc = dc_t * f
        if ctx.kernel:
            a, c, c_new = ctx.saved
            da, dc = cuda_kernels.lstm_backward(a, c, c_new, grad[0], grad[1])
            return da, (dc if ctx.needs_input_grad[1] else None)
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


class GRUCellFused(Function):
    """h' (B, H) from gi = W_ih x + b_ih (B, 3H), gh = W_hh h + b_hh (B, 3H), both in the gate
    order r | z | n, and the previous state h (B, H), in PyTorch's (and cuDNN's) form::

        r = sigmoid(gi_r + gh_r);  z = sigmoid(gi_z + gh_z)
        n = tanh(gi_n + r * gh_n);  h' = (1 - z) * n + z * h  (computed as n + z * (h - n))
    """

    @staticmethod
    def forward(ctx, gi, gh, h):
        _check("GRUCellFused", 3, (gi, gh), h)
        ctx.kernel = _kernel_path(h)
        if ctx.kernel:
            ctx.save_for_backward(gi, gh, h)  # the kernel recomputes r, z and n from these
            return cuda_kernels.gru_forward(gi, gh, h)
        hs = h.shape[-1]
        pre = gi[:, :2 * hs] + gh[:, :2 * hs]
        rz = backend.sigmoid(pre)                        # r | z
        gh_n = gh[:, 2 * hs:]
        n = gi[:, 2 * hs:] + rz[:, :hs] * gh_n
        n = backend.tanh(n)
        out = h - n
        out *= rz[:, hs:]
        out += n
        ctx.save_for_backward(rz, n, gh_n, h)
        return out

    @staticmethod
    def backward(ctx, grad):
        _first_order("GRUCellFused", grad)
        # dn = dh' (1 - z) (1 - n^2) (through n's tanh);  dz = dh' (h - n) z (1 - z)
        # dr = dn * gh_n * r (1 - r):  dgi = dr | dz | dn,  dgh = dr | dz | dn * r,  dh = dh' * z
        need = ctx.needs_input_grad
        if ctx.kernel:
            dgi, dgh, dh = cuda_kernels.gru_backward(*ctx.saved, grad)
        else:
            rz, n, gh_n, h = ctx.saved
            hs = h.shape[-1]
            r, z = rz[:, :hs], rz[:, hs:]
            dgi = backend.get_xp(h).empty(h.shape[:1] + (3 * hs,), dtype=h.dtype)
            dn = dgi[:, 2 * hs:]
            backend.multiply(grad, 1 - z, out=dn)
            dn *= 1 - n * n
            dz = dgi[:, hs: 2 * hs]
            backend.multiply(grad, h - n, out=dz)
            dz *= z - z * z
            dr = dgi[:, :hs]
            backend.multiply(dn, gh_n, out=dr)
            dr *= r - r * r
            dgh = backend.owned_copy(dgi) if need[1] else None
            if dgh is not None:
                dgh[:, 2 * hs:] *= r
            dh = grad * z if need[2] else None
        return (dgi if need[0] else None), (dgh if need[1] else None), (dh if need[2] else None)


# ---------------------------------------------------------------- the same cells from primitive ops

def lstm_cell_composed(a: Tensor, c: Tensor) -> Tensor:
    """What :class:`LSTMCellFused` computes, from primitive ops: the reference it is tested against.

    a: (B, 4H) pre-activations, gates i | f | g | o; c: (B, H) -> (h', c') stacked as (2, B, H).
    """
    from ..functions import stack  # here, not at the top: functions imports the ops package

    i, f, g, o = a.split(a.shape[1] // 4, axis=1)
    c_new = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return stack([o.sigmoid() * c_new.tanh(), c_new])


def gru_cell_composed(gi: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """What :class:`GRUCellFused` computes, from primitive ops, in the textbook form (1 - z) n + z h.

    gi, gh: (B, 3H) input and hidden projections, gates r | z | n; h: (B, H) -> h' (B, H).
    """
    xr, xz, xn = gi.split(h.shape[1], axis=1)
    hr, hz, hn = gh.split(h.shape[1], axis=1)
    r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
    n = (xn + r * hn).tanh()
    return (1.0 - z) * n + z * h
