"""Replay kernels: each op's forward and backward rule as array calls into the program's buffers.

Every kernel does exactly the arithmetic of the op's own rule (``ops/*.py``), call for call and
in the same operand order, writing with ``out=`` into buffers laid out as the rule's results
would be, so that replay and the normal path agree to the bit. Views stay views (a reshape,
a transpose, a basic index cost nothing). An op without a kernel here is replayed by calling
its own ``forward`` and ``backward`` (:func:`generic_forward`), which is exact by construction
and only costs a copy into the buffers.

A backward kernel returns one *form* per input, as the rule does: None, ``("dense", val)``,
``("sparse", shape, index, values)`` (indexing's gradient) or ``("outer", a, b)`` (a matmul's
weight gradient ``a^T b``); ``backward.py`` sums them as the engine does.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..ops import elementwise as E
from ..ops import linalg as LA
from ..ops import reduce as R
from ..ops import shape as S
from ..ops.convert import Cast
from .ir import Builder, Val

ndarray = backend.CPU_ARRAY


class K:
    """What a kernel works with: the builder, the op's record, its output's layout, its rule's forms."""

    def __init__(self, b: Builder, apply: Any, meta: tuple, backward: bool = False) -> None:
        self.b, self.a, self.meta = b, apply, meta
        self.name = apply.cls.__name__ + (" backward" if backward else "")  # what profiles call its instructions

    def out(self) -> Val:
        shape, dtype, strides = self.meta
        return self.b.new(shape, dtype, strides)

    def grad(self, i: int, shape: tuple, dtype: Any) -> Val:
        """A fresh buffer for input i's gradient, laid out as the rule's result was."""
        form = self.a.forms[i] if self.a.forms and i < len(self.a.forms) else None
        strides = form[3] if form is not None and form[0] == "dense" and tuple(form[1]) == tuple(shape) else None
        return self.b.new(shape, dtype, strides)

    def emit(self, fn: Any, *args: Any, out: Val | None = None, label: str = "", kwargs: dict | None = None) -> Any:
        self.b.emit(fn, *args, writes=(out,) if out is not None else (), kwargs=kwargs, label=label or self.name)
        return out


def _shape(x: Any) -> tuple:
    return tuple(x.shape) if isinstance(x, Val) else ()


def _dtype(x: Any) -> Any:
    return x.dtype if isinstance(x, Val) else None


def dense(v: Val) -> tuple:
    return ("dense", v)


# ---------------------------------------------------------------- elementwise

def _binary(name: str) -> Any:
    def fwd(k: K, ins: list, attrs: dict) -> tuple:
        out = k.out()
        k.emit(name, ins[0], ins[1], out, out=out)
        return out, ins
    return fwd


def _ufunc_into(k: K, name: str, i: int, *args: Any, like: Val) -> Val:
    out = k.grad(i, like.shape, like.dtype)
    k.emit(name, *args, out, out=out)
    return out


def add_bwd(k: K, saved: Any, g: Val, needs: tuple) -> list:
    return [dense(g), dense(g)]  # z = x + y; dz/dx = dz/dy = 1


def sub_bwd(k: K, saved: Any, g: Val, needs: tuple) -> list:
    return [dense(g), dense(_ufunc_into(k, "negative", 1, g, like=g)) if needs[1] else None]


def mul_bwd(k: K, saved: Any, g: Val, needs: tuple) -> list:
    x, y = saved  # z = x * y; dz/dx = y, dz/dy = x
    return [dense(_ufunc_into(k, "multiply", 0, g, y, like=g)) if needs[0] else None,
            dense(_ufunc_into(k, "multiply", 1, g, x, like=g)) if needs[1] else None]


def div_fwd(k: K, ins: list, attrs: dict) -> tuple:
    out = k.out()
    k.emit("true_divide", ins[0], ins[1], out, out=out)
    return out, (ins[1], out)


def div_bwd(k: K, saved: Any, g: Val, needs: tuple) -> list:
    y, z = saved  # z = x / y; dx = g / y, dy = -(dx * z)
    gx = _ufunc_into(k, "true_divide", 0, g, y, like=g)
    gy = None
    if needs[1]:
        gy = _ufunc_into(k, "multiply", 1, gx, z, like=g)
        k.emit("negative", gy, gy, out=gy)
    return [dense(gx), dense(gy) if gy is not None else None]


def _unary(name: str, save: str) -> Any:
    def fwd(k: K, ins: list, attrs: dict) -> tuple:
        out = k.out()
        k.emit(name, ins[0], out, out=out)
        return out, (out if save == "out" else ins[0])
    return fwd


def neg_bwd(k: K, saved: Any, g: Val, needs: tuple) -> list:
    return [dense(_ufunc_into(k, "negative", 0, g, like=g))]


def exp_bwd(k: K, y: Val, g: Val, needs: tuple) -> list:
    return [dense(_ufunc_into(k, "multiply", 0, g, y, like=g))]


def log_bwd(k: K, x: Val, g: Val, needs: tuple) -> list:
    return [dense(_ufunc_into(k, "true_divide", 0, g, x, like=g))]


def sqrt_bwd(k: K, y: Val, g: Val, needs: tuple) -> list:
    two_y = k.b.new(y.shape, y.dtype)  # grad / (y * 2)
    k.emit("multiply", y, 2, two_y, out=two_y)
    return [dense(_ufunc_into(k, "true_divide", 0, g, two_y, like=g))]


def tanh_bwd(k: K, y: Val, g: Val, needs: tuple) -> list:
    out = k.grad(0, y.shape, y.dtype)  # the rule's own function, into the buffer
    k.emit(backend.tanh_grad, g, y, out=out, kwargs={"out": out})
    return [dense(out)]


def sigmoid_fwd(k: K, ins: list, attrs: dict) -> tuple:
    out = k.out()  # the op's own function, into the buffer: one definition of the arithmetic
    k.emit(backend.sigmoid, ins[0], out=out, kwargs={"out": out})
    return out, out


def sigmoid_bwd(k: K, y: Val, g: Val, needs: tuple) -> list:
    out = k.grad(0, y.shape, y.dtype)
    k.emit(backend.sigmoid_grad, g, y, out=out, kwargs={"out": out})
    return [dense(out)]


def relu_fwd(k: K, ins: list, attrs: dict) -> tuple:
    x = ins[0]
    mask = k.b.new(x.shape, backend.bool_)
    k.emit("greater", x, 0, mask, out=mask)
    out = k.out()
    k.emit("maximum", x, 0, out=out, kwargs={"out": out})  # np.maximum takes out= by keyword only
    return out, mask


def relu_bwd(k: K, mask: Val, g: Val, needs: tuple) -> list:
    return [dense(_ufunc_into(k, "multiply", 0, g, mask, like=g))]


def where_into(out: Any, cond: Any, x: Any, y: Any) -> None:
    """``out[...] = where(cond, x, y)``: the selected values, unchanged."""
    xp = backend.get_xp(out)
    xp.copyto(out, y, casting="unsafe")
    xp.copyto(out, x, casting="unsafe", where=cond)


def where_fwd(k: K, ins: list, attrs: dict) -> tuple:
    out = k.out()
    k.emit(where_into, out, ins[0], ins[1], ins[2], out=out)
    return out, ins[0]


def where_bwd(k: K, cond: Any, g: Val, needs: tuple) -> list:
    gx = gy = None  # z = cond ? x : y; dx = g * cond, dy = g * ~cond
    if needs[1]:
        gx = dense(_ufunc_into(k, "multiply", 1, g, cond, like=g))
    if needs[2]:
        inv = k.b.new(_shape(cond), backend.bool_)
        k.emit("invert", cond, inv, out=inv)
        gy = dense(_ufunc_into(k, "multiply", 2, g, inv, like=g))
    return [None, gx, gy]


# ---------------------------------------------------------------- reductions

def _method_into(name: str) -> Any:
    def call(x: Any, out: Any, kwargs: dict) -> None:
        getattr(ndarray, name)(x, out=out, **kwargs)
    return call


_sum_into, _max_into = _method_into("sum"), _method_into("max")


def sum_fwd(k: K, ins: list, attrs: dict) -> tuple:
    x, axis, keepdims = ins[0], attrs.get("axis"), attrs.get("keepdims", False)
    out = k.out()
    k.emit(_sum_into, x, out, {"axis": axis, "keepdims": keepdims}, out=out)
    return out, (x.shape, R.kept_shape(x.shape, axis))


def sum_bwd(k: K, saved: tuple, g: Val, needs: tuple) -> list:
    in_shape, kept = saved  # y = sum(x); dx = broadcast of dy
    r = k.b.view(g, ndarray.reshape, kept, shape=kept)
    return [dense(k.b.view(r, backend.broadcast_to, in_shape, shape=in_shape))]


def log_softmax_fwd(k: K, ins: list, attrs: dict) -> tuple:
    x, axis = ins[0], attrs["axis"]
    kept = tuple(1 if i == axis else n for i, n in enumerate(x.shape))
    b = k.b
    m, fin, m2 = b.new(kept, x.dtype), b.new(kept, backend.bool_), b.new(kept, x.dtype)
    k.emit(_max_into, x, m, {"axis": axis, "keepdims": True}, out=m)  # R._stable_max
    k.emit("isfinite", m, fin, out=fin)
    k.emit(where_into, m2, fin, m, 0, out=m2)
    shifted, e, s, lg = b.new(x.shape, x.dtype), b.new(x.shape, x.dtype), b.new(kept, x.dtype), b.new(kept, x.dtype)
    k.emit("subtract", x, m2, shifted, out=shifted)
    k.emit("exp", shifted, e, out=e)
    k.emit(_sum_into, e, s, {"axis": axis, "keepdims": True}, out=s)
    k.emit("log", s, lg, out=lg)
    out = k.out()
    k.emit("subtract", shifted, lg, out, out=out)
    return out, (out, axis, kept)


def log_softmax_bwd(k: K, saved: tuple, g: Val, needs: tuple) -> list:
    y, axis, kept = saved  # dx = dy - exp(y) * sum(dy)
    b = k.b
    ey, gs = b.new(y.shape, y.dtype), b.new(kept, y.dtype)
    k.emit("exp", y, ey, out=ey)
    k.emit(_sum_into, g, gs, {"axis": axis, "keepdims": True}, out=gs)
    k.emit("multiply", ey, gs, ey, out=ey)
    return [dense(_ufunc_into(k, "subtract", 0, g, ey, like=g))]


def sum_to_into(out: Any, a: Any, shape: tuple) -> None:
    """``backend.sum_to(a, shape)`` written into ``out`` (of the kept-dims shape)."""
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and a.shape[i + lead] != 1)
    ndarray.sum(a, axis=axes, keepdims=True, out=out)


def emit_sum_to(b: Builder, g: Val, shape: tuple, label: str) -> Val:
    """The engine's reduction of a broadcast gradient to its input's shape (``backend.sum_to``)."""
    lead = g.ndim - len(shape)
    kept_shape = (1,) * lead + tuple(shape)
    kept = b.new(kept_shape, g.dtype)
    b.emit(sum_to_into, kept, g, tuple(shape), writes=(kept,), label=label + " sum_to")
    return b.view(kept, ndarray.reshape, tuple(shape), shape=shape) if lead else kept


# ---------------------------------------------------------------- shapes

def _view_fwd(fn: Any, args: Any) -> Any:
    def fwd(k: K, ins: list, attrs: dict) -> tuple:
        x, call_args = ins[0], args(attrs, x=ins[0])
        if k.a.alias == 0:
            return k.b.view(x, fn, *call_args, shape=k.meta[0]), (x.shape, call_args)
        out = k.out()  # NumPy had to copy (a reshape of a strided array)
        k.emit(copy_call, out, fn, x, call_args, out=out)
        return out, (x.shape, call_args)
    return fwd


def copy_call(out: Any, fn: Any, x: Any, args: tuple) -> None:
    backend.copy_into(out, fn(x, *args))


def reshape_bwd(k: K, saved: tuple, g: Val, needs: tuple) -> list:
    in_shape = saved[0]  # y = reshape(x); dx = reshape(dy)
    return [dense(k.b.view(g, ndarray.reshape, in_shape, shape=in_shape))]


def transpose_bwd(k: K, saved: tuple, g: Val, needs: tuple) -> list:
    axes = saved[1][0]  # y = transpose(x, axes); dx = transpose(dy, inverse)
    inverse = [0] * len(axes)
    for i, a in enumerate(axes):
        inverse[a] = i
    shape = tuple(g.shape[a] for a in inverse)
    return [dense(k.b.view(g, ndarray.transpose, tuple(inverse), shape=shape))]


def expand_bwd(k: K, saved: tuple, g: Val, needs: tuple) -> list:
    return [dense(emit_sum_to(k.b, g, saved[0], "Expand"))]


def getitem_fwd(k: K, ins: list, attrs: dict) -> tuple:
    x, index = ins[0], attrs["index"]
    if k.a.alias == 0:
        return k.b.view(x, ndarray.__getitem__, index, shape=k.meta[0]), (x.shape, index)
    out = k.out()
    k.emit(copy_call, out, ndarray.__getitem__, x, (index,), out=out)
    return out, (x.shape, index)


def getitem_bwd(k: K, saved: tuple, g: Val, needs: tuple) -> list:
    in_shape, index = saved  # y = x[index]; dx = zeros with dy added at index (kept sparse)
    return [("sparse", in_shape, index, g)]


def stack_fwd(k: K, ins: list, attrs: dict) -> tuple:
    axis = attrs["axis"]
    out = k.out()
    ins_ = list(ins)
    instr = k.b.emit("stack", ins_, axis, out, writes=(out,), label="Stack")
    if axis == 0 and all(isinstance(v, Val) and v.storage is not None for v in ins_):
        k.b.group([v.storage for v in ins_], out.storage, instr)  # the steps' outputs written in place
    return out, (axis, len(ins_), ins_[0].shape)


def stack_bwd(k: K, saved: tuple, g: Val, needs: tuple) -> list:
    axis, n, shape = saved
    lead = (slice(None),) * axis
    return [dense(k.b.view(g, ndarray.__getitem__, lead + (i,), shape=shape)) for i in range(n)]


def cat_fwd(k: K, ins: list, attrs: dict) -> tuple:
    axis = attrs["axis"]
    out = k.out()
    k.emit("concatenate", list(ins), axis, out, out=out)
    bounds, start = [], 0
    for v in ins:
        bounds.append((start, start + v.shape[axis], v.shape))
        start += v.shape[axis]
    return out, (axis, bounds)


def cat_bwd(k: K, saved: tuple, g: Val, needs: tuple) -> list:
    axis, bounds = saved
    lead = (slice(None),) * axis
    return [dense(k.b.view(g, ndarray.__getitem__, lead + (slice(a, c),), shape=shape)) for a, c, shape in bounds]


def contiguous_fwd(k: K, ins: list, attrs: dict) -> tuple:
    if k.a.alias == 0:  # already row-major: the op returned its input
        return ins[0], None
    out = k.out()
    k.emit(backend.copy_into, out, ins[0], out=out)
    return out, None


def clone_fwd(k: K, ins: list, attrs: dict) -> tuple:
    out = k.out()
    k.emit("copyto", out, ins[0], out=out)
    return out, None


def identity_bwd(k: K, saved: Any, g: Val, needs: tuple) -> list:
    return [dense(g)]


def cast_fwd(k: K, ins: list, attrs: dict) -> tuple:
    out = k.out()
    k.emit(copy_cast, out, ins[0], out=out)
    return out, ins[0].dtype


def copy_cast(out: Any, x: Any) -> None:
    backend.get_xp(out).copyto(out, x, casting="unsafe")


def cast_bwd(k: K, in_dtype: Any, g: Val, needs: tuple) -> list:
    out = k.grad(0, g.shape, in_dtype)
    k.emit(copy_cast, out, g, out=out)
    return [dense(out)]


# ---------------------------------------------------------------- products

def swap_last(b: Builder, v: Val) -> Val:
    axes = tuple(range(v.ndim - 2)) + (v.ndim - 1, v.ndim - 2)
    return b.view(v, ndarray.transpose, axes, shape=tuple(v.shape[a] for a in axes))


def matmul_fwd(k: K, ins: list, attrs: dict) -> tuple:
    out = k.out()
    k.emit("matmul", ins[0], ins[1], out, out=out, label="MatMul matmul")
    return out, (ins[0], ins[1])


def _product(k: K, i: int, a: Val, b: Val) -> Val:
    shape = tuple(backend.broadcast_shapes(a.shape[:-2], b.shape[:-2])) + (a.shape[-2], b.shape[-1])
    out = k.grad(i, shape, a.dtype)
    k.emit("matmul", a, b, out, out=out, label=k.name + " matmul")
    return out


def weight_grad(k: K, i: int, x: Val, g: Val) -> tuple:
    """``x^T g``: kept as factors for 2-D operands (the engine sums a weight's uses in one product)."""
    if x.ndim == 2 and g.ndim == 2:
        return ("outer", x, g)
    return dense(_product(k, i, swap_last(k.b, x), g))


def matmul_bwd(k: K, saved: tuple, g: Val, needs: tuple) -> list:
    x, y = saved  # Z = X Y; dX = dZ Y^T, dY = X^T dZ
    return [dense(_product(k, 0, g, swap_last(k.b, y))) if needs[0] else None,
            weight_grad(k, 1, x, g) if needs[1] else None]


def addmm_fwd(k: K, ins: list, attrs: dict) -> tuple:
    c, a, b = ins
    out = k.out()
    k.emit("matmul", a, b, out, out=out, label="Addmm matmul")
    k.emit("add", out, c, out, out=out, label="Addmm add")
    return out, (a, b, attrs.get("bt"))


def addmm_bwd(k: K, saved: tuple, g: Val, needs: tuple) -> list:
    a, b, bt = saved  # z = c + A B; dc = dz, dA = dz B^T (bt: B^T row-major), dB = A^T dz
    b_t = bt if bt is not None else swap_last(k.b, b)
    return [dense(g) if needs[0] else None,
            dense(_product(k, 1, g, b_t)) if needs[1] else None,
            weight_grad(k, 2, a, g) if needs[2] else None]


# ---------------------------------------------------------------- the table

FORWARD: dict[type, Any] = {
    E.Add: _binary("add"), E.Sub: _binary("subtract"), E.Mul: _binary("multiply"), E.Div: div_fwd,
    E.Neg: _unary("negative", "none"), E.Exp: _unary("exp", "out"), E.Log: _unary("log", "in"),
    E.Sqrt: _unary("sqrt", "out"), E.Tanh: _unary("tanh", "out"), E.Sigmoid: sigmoid_fwd, E.Relu: relu_fwd,
    E.Where: where_fwd, R.Sum: sum_fwd, R.LogSoftmax: log_softmax_fwd,
    S.Reshape: _view_fwd(ndarray.reshape, lambda attrs, x: (attrs["shape"],)),
    S.Transpose: _view_fwd(ndarray.transpose, lambda attrs, x: (attrs["axes"],)),
    S.Expand: _view_fwd(backend.broadcast_to, lambda attrs, x: (attrs["shape"],)),
    S.GetItem: getitem_fwd, S.Stack: stack_fwd, S.Cat: cat_fwd, S.Contiguous: contiguous_fwd, S.Clone: clone_fwd,
    LA.MatMul: matmul_fwd, LA.Addmm: addmm_fwd, Cast: cast_fwd,
}

BACKWARD: dict[type, Any] = {
    E.Add: add_bwd, E.Sub: sub_bwd, E.Mul: mul_bwd, E.Div: div_bwd, E.Neg: neg_bwd, E.Exp: exp_bwd,
    E.Log: log_bwd, E.Sqrt: sqrt_bwd, E.Tanh: tanh_bwd, E.Sigmoid: sigmoid_bwd, E.Relu: relu_bwd,
    E.Where: where_bwd, R.Sum: sum_bwd, R.LogSoftmax: log_softmax_bwd, S.Reshape: reshape_bwd,
    S.Transpose: transpose_bwd, S.Expand: expand_bwd, S.GetItem: getitem_bwd, S.Stack: stack_bwd,
    S.Cat: cat_bwd, S.Contiguous: identity_bwd, S.Clone: identity_bwd, LA.MatMul: matmul_bwd,
    LA.Addmm: addmm_bwd, Cast: cast_bwd,
}
