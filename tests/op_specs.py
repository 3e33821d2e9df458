"""The op table that drives tests/test_ops.py: one OpSpec per op (or per calling form).

Each spec pairs ``fn``, which builds the tinygrad_rnn result from Tensors, with ``ref``,
which computes the same thing on float64 NumPy arrays, written independently of the
ops (np.tanh, explicit formulas, NumPy indexing). Input values come from ``domains``
that keep away from poles (log, sqrt and pow bases positive, denominators away
from 0); ops with kinks list them in ``avoid`` or ask for ``distinct`` values (max,
min, maximum, minimum: no ties). ``cases`` draws the input shapes and any keyword
arguments ``fn`` and ``ref`` take; by default the inputs share one shape, or
broadcast together when ``broadcasts`` is set.

Specs with ``grad=False`` are checked forward only (their result carries no
gradient); ``twice=False`` skips the second-order check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_rnn as tg
from tinygrad_rnn.testing import strategies as tst

Shape = tuple[int, ...]
Case = tuple[tuple[Shape, ...], dict[str, Any]]  # the inputs' shapes, keyword arguments of fn and ref

MARGIN = 0.1  # how far drawn values stay from the points an op lists in ``avoid``


@dataclass(frozen=True)
class OpSpec:
    name: str
    fn: Callable[..., Any]  # Tensors (+ keyword arguments) -> Tensor
    ref: Callable[..., Any]  # float64 arrays (+ keyword arguments) -> array
    arity: int = 1
    domains: tuple[tuple[float, float], ...] | None = None  # (lo, hi) per input; (-2, 2) by default
    broadcasts: bool = False
    cases: st.SearchStrategy | None = None  # draws a Case; default from arity, broadcasts, min_dims
    min_dims: int = 0
    min_side: int = 1
    distinct: bool = False  # all values of all inputs at least 1e-3 apart (no ties)
    avoid: tuple[float, ...] = ()  # kinks: values stay MARGIN away from these points
    grad: bool = True  # False: forward only, the result must not carry a gradient
    twice: bool = True  # second derivatives checked
    requires_grad: tuple[bool, ...] | None = None  # per input; all True by default (forward-only ops too)

    def input_domains(self) -> tuple[tuple[float, float], ...]:
        return self.domains or ((-2.0, 2.0),) * self.arity

    def input_requires_grad(self) -> tuple[bool, ...]:
        return self.requires_grad or (True,) * self.arity

    def case_strategy(self) -> st.SearchStrategy:
        if self.cases is not None:
            return self.cases
        if self.broadcasts:
            return tst.broadcastable_shapes(self.arity, min_dims=self.min_dims).map(lambda s: (tuple(s), {}))
        return tst.shapes(min_dims=self.min_dims, min_side=self.min_side).map(lambda s: ((s,) * self.arity, {}))


@st.composite
def examples(draw: Any, spec: OpSpec) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Float64 input arrays for ``spec`` and the keyword arguments of its ``fn`` and ``ref``."""
    shapes, kw = draw(spec.case_strategy())
    if spec.distinct:  # one distinct array split among the inputs: no ties within or across them
        sizes = [int(np.prod(s)) for s in shapes]
        lo, hi = spec.input_domains()[0]
        flat = draw(tst.distinct_arrays((sum(sizes),), lo, hi)).reshape(-1)
        parts = np.split(flat, np.cumsum(sizes)[:-1])
        return [p.reshape(s).copy() for p, s in zip(parts, shapes)], kw
    arrays = []
    for shape, (lo, hi) in zip(shapes, spec.input_domains()):
        elements = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
        if spec.avoid:
            elements = elements.filter(lambda v: all(abs(v - k) > MARGIN for k in spec.avoid))
        arrays.append(draw(hnp.arrays(np.float64, shape, elements=elements)))
    return arrays, kw


# ---------------------------------------------------------------- case strategies

def _unary(shapes: st.SearchStrategy, **kw: Any) -> st.SearchStrategy:
    return shapes.map(lambda s: ((s,), dict(kw)))


@st.composite
def _expand_case(draw: Any, reverse: bool = False) -> Case:
    """A shape and the shape it broadcasts to (``reverse``: the other way round, for sum_to)."""
    small, other = draw(tst.broadcastable_shapes(2))
    big = tuple(np.broadcast_shapes(small, other))
    return ((big,), {"shape": small}) if reverse else ((small,), {"shape": big})


@st.composite
def _along_axis_case(draw: Any, n: int, axis: int) -> Case:
    """``n`` shapes that agree except along ``axis`` (for cat)."""
    base = draw(tst.shapes(min_dims=1))
    ax = axis % len(base)
    sizes = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    return tuple(base[:ax] + (k,) + base[ax + 1:] for k in sizes), {}


@st.composite
def _sections_case(draw: Any) -> Case:
    """A shape and sizes that add up to its first axis (for split with a list of sizes)."""
    shape = draw(tst.shapes(min_dims=1))
    cuts = sorted(draw(st.sets(st.integers(1, shape[0] - 1), max_size=3))) if shape[0] > 1 else []
    bounds = [0, *cuts, shape[0]]
    return (shape,), {"sections": [b - a for a, b in zip(bounds, bounds[1:])]}


@st.composite
def _squeeze_case(draw: Any) -> Case:
    """A shape with a size-1 axis at position 1."""
    s = draw(tst.shapes(min_dims=1, max_dims=2))
    return (s[:1] + (1,) + s[1:],), {"axis": 1}


@st.composite
def _matmul_case(draw: Any, a_dims: int, b_dims: int, batch: bool = False) -> Case:
    """Operands of ``a_dims`` and ``b_dims`` (1 or 2) dims; ``batch`` adds broadcast batch dims."""
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    a, b = ((m, k) if a_dims == 2 else (k,)), ((k, n) if b_dims == 2 else (k,))
    if batch:
        ba, bb = draw(tst.broadcastable_shapes(2, max_dims=2, max_side=3))
        a, b = (ba + a if a_dims == 2 else a), (bb + b if b_dims == 2 else b)
    return (a, b), {}


@st.composite
def _addmm_case(draw: Any) -> Case:
    """c, a (m, k), b (k, n) with c of a shape that broadcasts to (m, n)."""
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    c = draw(st.sampled_from([(m, n), (n,), (1, n), (m, 1), ()]))
    return (c, (m, k), (k, n)), {}


# ---------------------------------------------------------------- references

def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _logsumexp(x, axis, keepdims=False):
    return np.log(np.exp(x).sum(axis=axis, keepdims=keepdims))


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _sum_to(x, shape):
    lead = x.ndim - len(shape)
    x = x.sum(axis=tuple(range(lead))) if lead else x
    return x.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)


def _matmul(a, b):
    """Matrix product as a broadcast multiply-and-sum, with NumPy's 1-D promotion rules."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    out = (a2[..., :, :, None] * b2[..., None, :, :]).sum(axis=-2)
    if a.ndim == 1:
        out = out[..., 0, :]
    return out[..., 0] if b.ndim == 1 else out


def _pieces(x, size, axis):
    """PyTorch's split: pieces of ``size`` along ``axis``, the last maybe shorter."""
    return np.split(x, list(range(size, x.shape[axis], size)), axis)


def _weighted_cat(pieces, axis, cat):
    """Join pieces, each scaled by its rank: a misplaced piece changes the result."""
    return cat([p * float(i + 1) for i, p in enumerate(pieces)], axis)


def _bool_mask(shape):
    return np.arange(int(np.prod(shape))).reshape(shape) % 3 != 1


def _var(x, axis=None, keepdims=False, ddof=0):
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    d = x - x.mean(axis=axis, keepdims=True)
    return (d * d).sum(axis=axis, keepdims=keepdims) / (n - ddof)


def _dev(x: tg.Tensor, data: Any) -> tg.Tensor:
    """An index tensor on ``x``'s device."""
    return tg.tensor(data, device=x.device)


def _int_index_tensor():
    return np.array([[0, -1], [0, 0]])


# ---------------------------------------------------------------- the table

POS = ((0.1, 3.0),)  # log, sqrt
BASE = (0.5, 2.0)  # pow bases

SPECS: list[OpSpec] = [
    # -- arithmetic (binary ops broadcast)
    OpSpec("add", lambda x, y: x + y, lambda x, y: x + y, 2, broadcasts=True),
    OpSpec("sub", lambda x, y: x - y, lambda x, y: x - y, 2, broadcasts=True),
    OpSpec("mul", lambda x, y: x * y, lambda x, y: x * y, 2, broadcasts=True),
    OpSpec("div", lambda x, y: x / y, lambda x, y: x / y, 2, broadcasts=True, avoid=(0.0,),
           domains=((-2.0, 2.0), (-2.0, 2.0))),
    OpSpec("pow", lambda x, y: x ** y, lambda x, y: np.exp(y * np.log(x)), 2, broadcasts=True,
           domains=(BASE, (-2.0, 2.0))),
    OpSpec("pow_scalar_exponent", lambda x: x ** 2.5, lambda x: np.sqrt(x) ** 5, domains=(BASE,)),
    OpSpec("pow_int_exponent", lambda x: x ** 3, lambda x: x * x * x),
    OpSpec("pow_negative_exponent", lambda x: x ** -2.0, lambda x: 1.0 / (x * x), domains=(BASE,)),
    OpSpec("rpow_scalar_base", lambda x: 2.5 ** x, lambda x: np.exp(x * np.log(2.5))),
    OpSpec("radd_scalar", lambda x: 2.0 + x, lambda x: x + 2.0),
    OpSpec("rsub_scalar", lambda x: 2.0 - x, lambda x: 2.0 - x),
    OpSpec("rmul_scalar", lambda x: 3.0 * x, lambda x: x * 3.0),
    OpSpec("rdiv_scalar", lambda x: 2.0 / x, lambda x: 2.0 / x, avoid=(0.0,)),
    OpSpec("sub_scalar", lambda x: x - 0.5, lambda x: x - 0.5),
    OpSpec("div_scalar", lambda x: x / 4.0, lambda x: x * 0.25),
    OpSpec("neg", lambda x: -x, lambda x: 0.0 - x),
    OpSpec("builtin_sum", lambda a, b, c: sum([a, b, c]), lambda a, b, c: a + b + c, 3, broadcasts=True),
    # -- nonlinearities
    OpSpec("exp", lambda x: x.exp(), np.exp),
    OpSpec("log", lambda x: x.log(), np.log, domains=POS),
    OpSpec("sqrt", lambda x: x.sqrt(), np.sqrt, domains=POS),
    OpSpec("tanh", lambda x: x.tanh(), np.tanh),
    OpSpec("sigmoid", lambda x: x.sigmoid(), _sigmoid),
    OpSpec("relu", lambda x: x.relu(), lambda x: np.where(x > 0, x, 0.0), avoid=(0.0,)),
    OpSpec("abs", lambda x: abs(x), lambda x: np.where(x < 0, -x, x), avoid=(0.0,)),
    OpSpec("functional_tanh", lambda x: tg.tanh(x), np.tanh),
    # -- selection
    OpSpec("maximum", lambda x, y: x.maximum(y), lambda x, y: np.where(x > y, x, y), 2, broadcasts=True,
           distinct=True),
    OpSpec("minimum", lambda x, y: tg.minimum(x, y), lambda x, y: np.where(x < y, x, y), 2, broadcasts=True,
           distinct=True),
    OpSpec("maximum_scalar", lambda x: tg.maximum(x, 0.5), lambda x: np.where(x > 0.5, x, 0.5), avoid=(0.5,)),
    OpSpec("where", lambda c, x, y: tg.where(c > 0, x, y), lambda c, x, y: np.where(c > 0, x, y), 3,
           broadcasts=True, avoid=(0.0,), requires_grad=(False, True, True)),
    OpSpec("clip", lambda x: x.clip(-1.0, 1.0), lambda x: np.minimum(np.maximum(x, -1.0), 1.0),
           avoid=(-1.0, 1.0)),
    OpSpec("clip_min_only", lambda x: x.clip(min=0.5), lambda x: np.maximum(x, 0.5), avoid=(0.5,)),
    OpSpec("clamp_max_only", lambda x: x.clamp(max=-0.5), lambda x: np.minimum(x, -0.5), avoid=(-0.5,)),
    # -- reductions
    OpSpec("sum", lambda x: x.sum(), np.sum),
    OpSpec("sum_axis0", lambda x: x.sum(axis=0), lambda x: x.sum(axis=0), min_dims=1),
    OpSpec("sum_axis_neg1_keepdims", lambda x: x.sum(-1, keepdims=True), lambda x: x.sum(-1, keepdims=True),
           min_dims=1),
    OpSpec("sum_axis_tuple", lambda x: x.sum(axis=(0, 2)), lambda x: x.sum(axis=(0, 2)), min_dims=3),
    OpSpec("sum_axis_empty_tuple", lambda x: x.sum(axis=()), lambda x: x + 0.0),
    OpSpec("mean", lambda x: x.mean(), lambda x: x.sum() / x.size),
    OpSpec("mean_axis1_keepdims", lambda x: x.mean(1, keepdims=True), lambda x: x.mean(1, keepdims=True),
           min_dims=2),
    OpSpec("mean_axis_tuple", lambda x: x.mean(axis=(-1, 0)), lambda x: x.mean(axis=(0, -1)), min_dims=2),
    OpSpec("max", lambda x: x.max(), np.max, distinct=True),
    OpSpec("max_axis0", lambda x: x.max(axis=0), lambda x: x.max(axis=0), min_dims=1, distinct=True),
    OpSpec("max_axis_tuple_keepdims", lambda x: x.max(axis=(0, 1), keepdims=True),
           lambda x: x.max(axis=(0, 1), keepdims=True), min_dims=2, distinct=True),
    OpSpec("min", lambda x: x.min(), np.min, distinct=True),
    OpSpec("min_axis_neg1_keepdims", lambda x: x.min(-1, keepdims=True), lambda x: x.min(-1, keepdims=True),
           min_dims=1, distinct=True),
    OpSpec("min_axis_tuple", lambda x: x.min(axis=(1, 2)), lambda x: x.min(axis=(1, 2)), min_dims=3,
           distinct=True),
    OpSpec("var", lambda x: x.var(), _var),
    OpSpec("var_axis0_ddof1", lambda x: x.var(axis=0, ddof=1), lambda x: _var(x, 0, ddof=1), min_dims=1,
           min_side=2),
    OpSpec("var_axis_tuple_keepdims", lambda x: x.var(axis=(0, 1), keepdims=True),
           lambda x: _var(x, (0, 1), keepdims=True), min_dims=2),
    OpSpec("var_axis_neg1_keepdims_ddof1", lambda x: x.var(-1, keepdims=True, ddof=1),
           lambda x: _var(x, -1, keepdims=True, ddof=1), min_dims=1, min_side=2),
    OpSpec("std_axis_neg1", lambda x: x.std(-1), lambda x: np.sqrt(_var(x, -1)), min_dims=1, min_side=2,
           distinct=True),
    # -- the softmax family
    OpSpec("logsumexp", lambda x: x.logsumexp(), lambda x: _logsumexp(x, -1)),
    OpSpec("logsumexp_axis0_keepdims", lambda x: x.logsumexp(0, keepdims=True),
           lambda x: _logsumexp(x, 0, keepdims=True), min_dims=1),
    OpSpec("logsumexp_axis_tuple", lambda x: tg.logsumexp(x, (0, 1)), lambda x: _logsumexp(x, (0, 1)),
           min_dims=2),
    OpSpec("logsumexp_axis_none", lambda x: x.logsumexp(None), lambda x: _logsumexp(x, None)),
    OpSpec("softmax", lambda x: x.softmax(), lambda x: _softmax(x, -1)),
    OpSpec("softmax_axis0", lambda x: tg.softmax(x, 0), lambda x: _softmax(x, 0), min_dims=1),
    OpSpec("softmax_axis1", lambda x: x.softmax(axis=1), lambda x: _softmax(x, 1), min_dims=2),
    OpSpec("log_softmax", lambda x: x.log_softmax(), lambda x: x - _logsumexp(x, -1, keepdims=True)),
    OpSpec("log_softmax_axis0", lambda x: tg.log_softmax(x, 0), lambda x: x - _logsumexp(x, 0, keepdims=True),
           min_dims=1),
    # -- shape
    OpSpec("reshape_tuple", lambda x: x.reshape((-1,)), lambda x: x.ravel()),
    OpSpec("reshape_args", lambda x: x.reshape(1, -1, 1), lambda x: x.ravel()[None, :, None]),
    OpSpec("reshape_keep_first_axis", lambda x: x.reshape(x.shape[0], -1), lambda x: x.reshape(len(x), -1),
           min_dims=1),
    OpSpec("flatten", lambda x: x.flatten(), lambda x: x.ravel()),
    OpSpec("transpose", lambda x: x.transpose(), lambda x: x.T),
    OpSpec("transpose_args", lambda x: x.transpose(1, 0, 2), lambda x: np.swapaxes(x, 0, 1), min_dims=3),
    OpSpec("transpose_tuple_negative", lambda x: x.transpose((-1, 0, 1)), lambda x: np.moveaxis(x, 2, 0),
           min_dims=3),
    OpSpec("T", lambda x: x.T, lambda x: np.moveaxis(x, range(x.ndim), range(x.ndim)[::-1])),
    OpSpec("swapaxes", lambda x: x.swapaxes(0, -1), lambda x: np.swapaxes(x, 0, -1), min_dims=1),
    OpSpec("expand", lambda x, shape: x.expand(shape), lambda x, shape: x + np.zeros(shape), cases=_expand_case()),
    OpSpec("broadcast_to_args", lambda x, shape: x.broadcast_to(*shape), lambda x, shape: x + np.zeros(shape),
           cases=_expand_case()),
    OpSpec("sum_to", lambda x, shape: x.sum_to(shape), _sum_to, cases=_expand_case(reverse=True)),
    OpSpec("squeeze", lambda x: x.squeeze(), lambda x: x.reshape([n for n in x.shape if n != 1])),
    OpSpec("squeeze_axis", lambda x, axis: x.squeeze(axis), lambda x, axis: np.squeeze(x, axis),
           cases=_squeeze_case()),
    OpSpec("unsqueeze_0", lambda x: x.unsqueeze(0), lambda x: x[None]),
    OpSpec("unsqueeze_neg1", lambda x: x.unsqueeze(-1), lambda x: x[..., None]),
    OpSpec("astype_identity", lambda x: x.astype(x.dtype), lambda x: x),
    # -- indexing
    OpSpec("getitem_int", lambda x: x[0], lambda x: x[0], min_dims=1),
    OpSpec("getitem_ints_negative", lambda x: x[-1, 0], lambda x: x[-1, 0], min_dims=2),
    OpSpec("getitem_slice_step", lambda x: x[::2], lambda x: x[::2], min_dims=1),
    OpSpec("getitem_slices_negative_step", lambda x: x[1::2, ::-1], lambda x: x[1::2, ::-1], min_dims=2),
    OpSpec("getitem_reversed", lambda x: x[::-1], lambda x: np.flip(x, 0), min_dims=1),
    OpSpec("getitem_ellipsis_negative_step", lambda x: x[..., :-3:-2], lambda x: x[..., :-3:-2], min_dims=1),
    OpSpec("getitem_none_ellipsis", lambda x: x[None, ..., None], lambda x: x[None, ..., None]),
    OpSpec("getitem_none_int", lambda x: x[:, None, 0], lambda x: x[:, None, 0], min_dims=2),
    OpSpec("getitem_repeated_int_list", lambda x: x[[0, 0, -1, 0]], lambda x: x[np.array([0, 0, -1, 0])],
           min_dims=1),
    OpSpec("getitem_int_list_second_axis", lambda x: x[:, [-1, 0, -1]], lambda x: x[:, np.array([-1, 0, -1])],
           min_dims=2),
    OpSpec("getitem_int_tensor", lambda x: x[_dev(x, _int_index_tensor())], lambda x: x[_int_index_tensor()],
           min_dims=1),
    OpSpec("getitem_bool_mask", lambda x: x[_dev(x, _bool_mask(x.shape))], lambda x: x[_bool_mask(x.shape)],
           min_dims=1),
    OpSpec("getitem_bool_mask_first_axis", lambda x: x[_dev(x, _bool_mask(x.shape[:1]))],
           lambda x: x[_bool_mask(x.shape[:1])], min_dims=1),
    OpSpec("getitem_comparison_mask", lambda x: x[x > 0], lambda x: x[x > 0], avoid=(0.0,)),
    # -- joining and splitting
    OpSpec("cat", lambda a, b, c: tg.cat([a, b, c]), lambda a, b, c: np.concatenate([a, b, c]), 3,
           cases=_along_axis_case(3, 0)),
    OpSpec("cat_axis_neg1", lambda a, b: tg.cat([a, b], axis=-1), lambda a, b: np.concatenate([a, b], -1), 2,
           cases=_along_axis_case(2, -1)),
    OpSpec("stack", lambda a, b, c: tg.stack([a, b, c]), lambda a, b, c: np.stack([a, b, c]), 3),
    OpSpec("stack_axis_neg1", lambda a, b: tg.stack((a, b), axis=-1), lambda a, b: np.stack([a, b], -1), 2),
    OpSpec("split", lambda x: _weighted_cat(x.split(2), 0, tg.cat),
           lambda x: _weighted_cat(_pieces(x, 2, 0), 0, np.concatenate), min_dims=1),
    OpSpec("split_axis_neg1", lambda x: _weighted_cat(x.split(3, axis=-1), -1, tg.cat),
           lambda x: _weighted_cat(_pieces(x, 3, -1), -1, np.concatenate), min_dims=1),
    OpSpec("split_sections", lambda x, sections: _weighted_cat(x.split(sections), 0, tg.cat),
           lambda x, sections: _weighted_cat(np.split(x, np.cumsum(sections)[:-1]), 0, np.concatenate),
           cases=_sections_case()),
    OpSpec("chunk", lambda x: _weighted_cat(x.chunk(3, axis=-1), -1, tg.cat),
           lambda x: _weighted_cat(_pieces(x, -(-x.shape[-1] // 3), -1), -1, np.concatenate), min_dims=1),
    # -- matrix products
    OpSpec("matmul", lambda a, b: a @ b, _matmul, 2, cases=_matmul_case(2, 2)),
    OpSpec("contiguous_of_transpose", lambda a: a.T.contiguous(), lambda a: a.T, 1),
    OpSpec("addmm", lambda c, a, b: tg.addmm(c, a, b), lambda c, a, b: c + _matmul(a, b), 3, cases=_addmm_case()),
    OpSpec("matmul_batched_broadcast", lambda a, b: a @ b, _matmul, 2, cases=_matmul_case(2, 2, batch=True)),
    OpSpec("matmul_vector_matrix", lambda a, b: a @ b, _matmul, 2, cases=_matmul_case(1, 2)),
    OpSpec("matmul_vector_batched", lambda a, b: tg.matmul(a, b), _matmul, 2, cases=_matmul_case(1, 2, batch=True)),
    OpSpec("matmul_matrix_vector", lambda a, b: a @ b, _matmul, 2, cases=_matmul_case(2, 1)),
    OpSpec("matmul_batched_vector", lambda a, b: a @ b, _matmul, 2, cases=_matmul_case(2, 1, batch=True)),
    OpSpec("matmul_vector_vector", lambda a, b: a @ b, _matmul, 2, cases=_matmul_case(1, 1)),
    # -- forward only: integer or boolean results, no gradient
    OpSpec("one_hot", lambda x: tg.one_hot(x.astype("int64"), 4, dtype=x.dtype),
           lambda x: (np.floor(x)[..., None] == np.arange(4)).astype(np.float64), domains=((0.0, 3.9),),
           avoid=(1.0, 2.0, 3.0), grad=False),
    OpSpec("argmax", lambda x: x.argmax(), lambda x: np.argmax(x), distinct=True, grad=False),
    OpSpec("argmax_axis_neg1", lambda x: x.argmax(-1), lambda x: np.argmax(x, -1), min_dims=1, distinct=True,
           grad=False),
    OpSpec("argmin_axis0_keepdims", lambda x: x.argmin(0, keepdims=True), lambda x: np.argmin(x, 0, keepdims=True),
           min_dims=1, distinct=True, grad=False),
    OpSpec("lt", lambda x, y: x < y, np.less, 2, broadcasts=True, grad=False),
    OpSpec("le", lambda x, y: x <= y, np.less_equal, 2, broadcasts=True, grad=False),
    OpSpec("gt_scalar", lambda x: x > 0.5, lambda x: x > 0.5, grad=False),
    OpSpec("ge", lambda x, y: x >= y, np.greater_equal, 2, broadcasts=True, grad=False),
    OpSpec("eq", lambda x: x == x[..., :1], lambda x: x == x[..., :1], min_dims=1, grad=False),
    OpSpec("ne", lambda x: x != x[..., :1], lambda x: x != x[..., :1], min_dims=1, grad=False),
]

GRAD_SPECS = [s for s in SPECS if s.grad]
TWICE_SPECS = [s for s in GRAD_SPECS if s.twice]
FORWARD_ONLY_SPECS = [s for s in SPECS if not s.grad]
