"""The fuzzer's reference (tests/test_fuzz.py): every op the fuzzer draws, as a float64 NumPy
forward and a hand-written NumPy vector-Jacobian product, next to the library call it checks.

Nothing here uses the library's ops or engine: the reference is a tape of its own
(``RefTape``), so a bug in the library's rules, its engine or its gradient sums cannot hide in
the reference. Conventions at kinks are the library's documented ones (and PyTorch's): relu'(0)
= 0, |x|'(0) = 0, clip passes at its bounds, ties of max/min/maximum/minimum split the gradient
evenly, and x ** p at 0 as PyTorch defines it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import tinygrad_rnn as tg


def sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a broadcast gradient back to ``shape``."""
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _kept(g: np.ndarray, shape: tuple, axis: Any, keepdims: bool) -> np.ndarray:
    """A reduction's gradient reshaped so that it broadcasts against the input."""
    if keepdims:
        return g
    axes = range(len(shape)) if axis is None else np.atleast_1d(axis)
    return np.expand_dims(g, tuple(int(a) % len(shape) for a in axes)) if len(shape) else g


def _count(shape: tuple, axis: Any) -> int:
    axes = range(len(shape)) if axis is None else [int(a) % len(shape) for a in np.atleast_1d(axis)]
    return int(np.prod([shape[a] for a in axes])) if len(shape) else 1


def _pick_grad(g, out, a, axis, keepdims, reducer):
    """max/min: the gradient goes to the extremal elements, split evenly among ties."""
    m = reducer(a, axis=axis, keepdims=True)
    mask = (a == m).astype(np.float64)
    mask /= mask.sum(axis=axis, keepdims=True)
    return (_kept(g, a.shape, axis, keepdims) * mask,)


def _softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _lse(a, axis, keepdims):
    m = a.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.exp(a - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _pow_grads(g, z, a, p):
    """PyTorch's values: dz/da = 0 where p = 0 meets a = 0; dz/dp = g * 0 where a = 0 and p >= 0
    (so NaN for an infinite g, as in PyTorch, which multiplies by g outside its ``where``)."""
    ga = np.where((p == 0) & (a == 0), 0.0, g * p * a ** np.where((p == 0) & (a == 0), 1.0, p - 1))
    gp = g * np.where((a == 0) & (p >= 0), 0.0, z * np.log(np.where((a == 0) & (p >= 0), 1.0, a)))
    return ga, gp


def _matmul_grads(g, out, a, b):
    a2, b2 = (a[None, :] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
    g2 = g.reshape(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1]))
    ga = sum_to(g2 @ np.swapaxes(b2, -1, -2), a2.shape)
    gb = sum_to(np.swapaxes(a2, -1, -2) @ g2, b2.shape)
    return ga.reshape(a.shape), gb.reshape(b.shape)


def _select_grads(g, out, first, tie):
    """maximum/minimum: the gradient goes to the selected input, half to each at a tie; NaN where
    the result is NaN (which input a NaN "selects" is undefined: the library and PyTorch differ)."""
    w = first + 0.5 * tie
    g = np.where(np.isnan(out), np.nan, g)
    return g * w, g * (1 - w)


def _getitem_grad(g, out, a, index):
    full = np.zeros(a.shape)
    np.add.at(full, index, g)
    return (full,)


def _cat_grads(g, out, *xs, axis):
    bounds = np.cumsum([x.shape[axis] for x in xs])[:-1]
    return tuple(np.split(g, bounds, axis=axis))


def _inverse(perm):
    return tuple(np.argsort(perm))


@dataclass(frozen=True)
class Op:
    """One op: the library call, the float64 NumPy forward and its VJP (one gradient per array
    input, each summed to that input's shape when ``broadcasting``)."""

    lib: Callable[..., Any]
    fwd: Callable[..., np.ndarray]
    vjp: Callable[..., tuple]
    broadcasting: bool = False


UNARY: dict[str, Op] = {
    "neg": Op(lambda a: -a, lambda a: -a, lambda g, o, a: (-g,)),
    "exp": Op(lambda a: a.exp(), np.exp, lambda g, o, a: (g * o,)),
    "log": Op(lambda a: a.log(), np.log, lambda g, o, a: (g / a,)),
    "sqrt": Op(lambda a: a.sqrt(), np.sqrt, lambda g, o, a: (g / (2 * o),)),
    "tanh": Op(lambda a: a.tanh(), np.tanh, lambda g, o, a: (g * (1 - o * o),)),
    "sigmoid": Op(lambda a: a.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), lambda g, o, a: (g * o * (1 - o),)),
    "relu": Op(lambda a: a.relu(), lambda a: np.maximum(a, 0.0), lambda g, o, a: (g * (a > 0),)),
    "abs": Op(lambda a: abs(a), np.abs, lambda g, o, a: (g * np.sign(a),)),
    "clone": Op(lambda a: a.clone(), lambda a: a.copy(), lambda g, o, a: (g,)),
    "detach": Op(lambda a: a.detach(), lambda a: a.copy(), lambda g, o, a: (None,)),
    "pow_k": Op(lambda a, k: a**k, lambda a, k: a**k,
                lambda g, o, a, k: (np.zeros_like(a) if k == 0 else g * k * a ** (k - 1),)),
    "clip": Op(lambda a, lo, hi: a.clip(lo, hi), lambda a, lo, hi: np.clip(a, lo, hi), lambda g, o, a, lo, hi:
               (g * ((True if lo is None else a >= lo) & (True if hi is None else a <= hi)),)),  # no bound: identity
    "sum": Op(lambda a, axis, keepdims: a.sum(axis, keepdims), lambda a, axis, keepdims: a.sum(axis, keepdims=keepdims),
              lambda g, o, a, axis, keepdims: (np.broadcast_to(_kept(g, a.shape, axis, keepdims), a.shape),)),
    "mean": Op(lambda a, axis, keepdims: a.mean(axis, keepdims),
               lambda a, axis, keepdims: a.sum(axis, keepdims=keepdims) / _count(a.shape, axis),
               lambda g, o, a, axis, keepdims: (np.broadcast_to(_kept(g, a.shape, axis, keepdims), a.shape)
                                                / _count(a.shape, axis),)),
    "var": Op(lambda a, axis, keepdims: a.var(axis, keepdims),
              lambda a, axis, keepdims: np.var(a, axis=axis, keepdims=keepdims),
              lambda g, o, a, axis, keepdims: (_kept(g, a.shape, axis, keepdims) * 2
                                               * (a - a.mean(axis=axis, keepdims=True)) / _count(a.shape, axis),)),
    "max": Op(lambda a, axis, keepdims: a.max(axis, keepdims), lambda a, axis, keepdims: a.max(axis, keepdims=keepdims),
              lambda g, o, a, axis, keepdims: _pick_grad(g, o, a, axis, keepdims, np.max)),
    "min": Op(lambda a, axis, keepdims: a.min(axis, keepdims), lambda a, axis, keepdims: a.min(axis, keepdims=keepdims),
              lambda g, o, a, axis, keepdims: _pick_grad(g, o, a, axis, keepdims, np.min)),
    "softmax": Op(lambda a, axis: a.softmax(axis), _softmax,
                  lambda g, o, a, axis: (o * (g - (g * o).sum(axis=axis, keepdims=True)),)),
    "log_softmax": Op(lambda a, axis: a.log_softmax(axis), lambda a, axis: a - _lse(a, axis, True),
                      lambda g, o, a, axis: (g - np.exp(o) * g.sum(axis=axis, keepdims=True),)),
    "logsumexp": Op(lambda a, axis, keepdims: a.logsumexp(axis, keepdims), _lse,
                    lambda g, o, a, axis, keepdims: (_kept(g, a.shape, axis, keepdims)
                                                     * np.exp(a - _lse(a, axis, True)),)),
    "reshape": Op(lambda a, shape: a.reshape(shape), lambda a, shape: a.reshape(shape),
                  lambda g, o, a, shape: (g.reshape(a.shape),)),
    "transpose": Op(lambda a, perm: a.transpose(perm), lambda a, perm: a.transpose(perm),
                    lambda g, o, a, perm: (g.transpose(_inverse(perm)),)),
    "expand": Op(lambda a, shape: a.expand(shape), lambda a, shape: np.broadcast_to(a, shape),
                 lambda g, o, a, shape: (sum_to(g, a.shape),)),
    "unsqueeze": Op(lambda a, axis: a.unsqueeze(axis), lambda a, axis: np.expand_dims(a, axis),
                    lambda g, o, a, axis: (g.reshape(a.shape),)),
    "squeeze": Op(lambda a, axis: a.squeeze(axis), lambda a, axis: np.squeeze(a, axis),
                  lambda g, o, a, axis: (g.reshape(a.shape),)),
    "getitem": Op(lambda a, index: a[index], lambda a, index: a[index], _getitem_grad),
}

BINARY: dict[str, Op] = {
    "add": Op(lambda a, b: a + b, lambda a, b: a + b, lambda g, o, a, b: (g, g), True),
    "sub": Op(lambda a, b: a - b, lambda a, b: a - b, lambda g, o, a, b: (g, -g), True),
    "mul": Op(lambda a, b: a * b, lambda a, b: a * b, lambda g, o, a, b: (g * b, g * a), True),
    "div": Op(lambda a, b: a / b, lambda a, b: a / b, lambda g, o, a, b: (g / b, -g * a / (b * b)), True),
    "pow": Op(lambda a, b: a**b, lambda a, b: a**b, lambda g, o, a, b: _pow_grads(g, o, a, b), True),
    "maximum": Op(tg.maximum, np.maximum, lambda g, o, a, b: _select_grads(g, o, a > b, a == b), True),
    "minimum": Op(tg.minimum, np.minimum, lambda g, o, a, b: _select_grads(g, o, a < b, a == b), True),
    "where": Op(lambda a, b: tg.where(a > 0.5, a, b), lambda a, b: np.where(a > 0.5, a, b),
                lambda g, o, a, b: (g * (a > 0.5), g * ~(a > 0.5)), True),
    "matmul": Op(lambda a, b: a @ b, lambda a, b: a @ b, _matmul_grads, True),
    "cat": Op(lambda a, b, axis: tg.cat([a, b], axis), lambda a, b, axis: np.concatenate([a, b], axis), _cat_grads),
    "stack": Op(lambda a, b, axis: tg.stack([a, b], axis), lambda a, b, axis: np.stack([a, b], axis),
                lambda g, o, a, b, axis: (np.take(g, 0, axis=axis), np.take(g, 1, axis=axis))),
}


class RefTape:
    """The reference's own reverse mode: entries (output id, input ids, VJP) in recording order."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, list[int | None], Callable[[np.ndarray], tuple]]] = []

    def record(self, out: int, ins: list[int | None], vjp: Callable[[np.ndarray], tuple]) -> None:
        self.entries.append((out, ins, vjp))

    def backward(self, root: int, v: np.ndarray, noise: Callable[[np.ndarray], np.ndarray]) -> dict[int, np.ndarray]:
        """{id: d<root, v>/d(value id)} for every id the root's recorded graph reaches."""
        grads: dict[int, np.ndarray] = {root: v}
        for out, ins, vjp in reversed(self.entries):
            g = grads.pop(out, None)
            if g is None:
                continue
            for i, gi in zip(ins, vjp(g)):
                if i is not None and gi is not None:
                    gi = noise(np.asarray(gi, dtype=v.dtype))
                    grads[i] = grads[i] + gi if i in grads else gi
        return grads


REDUCE = ("sum", "mean", "var", "max", "min", "logsumexp")
SUMMING = ("sum", "mean", "var", "logsumexp", "softmax", "log_softmax", "matmul")
SYM = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
OPS = {**UNARY, **BINARY}
F64 = np.dtype(np.float64)


class Ref:
    """Runs a program's instructions on float64 NumPy arrays, recording its own tape. ``eps`` > 0
    perturbs every op's result by a relative ``eps`` (the tolerance runs)."""

    def __init__(self, leaves: list[np.ndarray], rgs: list[bool], eps: float = 0.0, seed: int = 0,
                 frozen: Ref | None = None, dtype: np.dtype = F64) -> None:
        self.dtype = dtype  # float32: the same formulas computed in float32 (a tolerance run)
        self.values = [np.array(v, dtype=dtype) for v in leaves]
        self.rg, self.ids = list(rgs), list(range(len(leaves)))
        self.tape, self.eps, self.rng = RefTape(), eps, np.random.default_rng(seed)
        self.snapshots: list[np.ndarray] = []  # each instruction's result (an in-place op's: the target's)
        self.befores: list[np.ndarray | None] = []  # an in-place op's target before it (None for ops)
        # ``frozen``: a run at the unperturbed leaves whose results stand in for everything computed
        # without recording (no_grad, detach, constants): to autodiff those are constants, so finite
        # differences through the leaves must hold them fixed too.
        self.frozen = frozen
        self.kinked = False  # a recorded op met its kink (|x| at 0, a tie...): chain rule != limits

    def noise(self, a: np.ndarray) -> np.ndarray:
        """``a`` perturbed by a relative ``eps``, each zero with a random sign (which sign a zero
        gets is an accident of the formula: the log_softmax of one element is +0 or -0)."""
        if not self.eps:
            return a
        shape = np.shape(a)
        with np.errstate(all="ignore"):
            out = a * (1 + self.eps * self.rng.uniform(-1, 1, shape))
            return np.where(out == 0, out * self.rng.choice([-1.0, 1.0], shape), out)

    def noise_abs(self, out: np.ndarray, args: list) -> np.ndarray:
        """For ops that sum (reductions, the softmax family, matmul): also an absolute error of eps
        times the terms' size times their number, as rounding inside a sum of them leaves (the
        logsumexp of a log_softmax is 0 up to that, and 1 / it anything large); a result within
        that error of 0 becomes exactly 0 or a value in that error, at random."""
        if not self.eps:
            return out
        with np.errstate(all="ignore"):
            terms = [np.abs(np.asarray(a, dtype=np.float64)) for a in args if np.size(a)]
            size = max((float(np.max(t, initial=0.0, where=np.isfinite(t))) for t in terms), default=0.0)
            count = max(np.size(args[0]) // max(np.size(out), 1), args[0].shape[-1] if np.ndim(args[0]) else 1, 1)
            err = self.eps * size * count
            shape = np.shape(out)
            # a result within rounding of 0 may be exactly 0 (x / x is then NaN, not 1), or not
            # (the variance of equal values: 1 / it is then large, not inf)
            near = np.where(self.rng.random(shape) < 0.5, 0.0, err * self.rng.uniform(-1, 1, shape))
            return np.where(np.abs(out) <= err, near, self.noise(out) + err * self.rng.uniform(-1, 1, shape))

    def summed(self, g: np.ndarray, shape: tuple) -> np.ndarray:
        """``sum_to(g, shape)``, in the tolerance runs with the absolute rounding error of that sum
        (eps times the sum of the terms' sizes: broadcast terms may cancel)."""
        out = sum_to(g, shape)
        if not self.eps or g.shape == shape:
            return out
        with np.errstate(all="ignore"):
            err = self.eps * sum_to(np.abs(g), shape)
            return out + np.where(np.isfinite(err), err, 0.0) * self.rng.uniform(-1, 1, np.shape(out))

    def arg(self, ref: tuple) -> object:
        kind, x = ref
        if kind == "junk":  # not an operand at all (None, a string): refused
            raise TypeError(f"not an operand: {x!r}")
        return self.values[x] if kind == "slot" else x

    def run(self, instr: tuple) -> None:
        if instr[0] == "inplace":
            _, sym, target, ref, _mode = instr
            a = self.values[target]
            with np.errstate(all="ignore"):
                out = np.asarray(SYM[sym](a, self.arg(ref)), dtype=self.dtype)
            if out.shape != a.shape:
                raise ValueError("in-place result does not fit")
            if self.frozen is not None:  # a no_grad update: its change is a constant
                k = len(self.snapshots)
                change = self.frozen.snapshots[k] - self.frozen.befores[k]
                out = a + change if self.rg[target] else self.frozen.snapshots[k]
            self.befores.append(a)
            self.values[target] = self.noise(out)
            self.snapshots.append(self.values[target])
            return
        _, name, refs, params, mode = instr
        op, args = OPS[name], [self.arg(r) for r in refs]
        if name == "getitem" and isinstance(params["index"], tg.Tensor):
            params = {"index": params["index"].numpy()}
        if name in REDUCE and np.ndim(args[0]) == 0 and params["axis"] in (0, -1):
            params = {**params, "axis": ()}  # a 0-d tensor takes axis 0 or -1 and reduces nothing (PyTorch)
        with np.errstate(all="ignore"):
            out = np.array(op.fwd(*args, **params), dtype=self.dtype)
            out = self.noise(out) if name not in SUMMING else self.noise_abs(out, args)
        rg = mode == "grad" and name != "detach" and any(k == "slot" and self.rg[x] for k, x in refs)
        if self.frozen is not None and not rg:
            out = self.frozen.snapshots[len(self.snapshots)]
        if rg and _at_kink(name, args, params):
            self.kinked = True
        oid = len(self.ids)
        if rg:
            ins = [self.ids[x] if k == "slot" and self.rg[x] else None for k, x in refs]

            def vjp(g, op=op, out=out, args=args, params=params):
                with np.errstate(all="ignore"):
                    gs = op.vjp(g, out, *args, **params)
                    if op.broadcasting:
                        gs = tuple(None if gi is None else self.summed(np.asarray(gi), np.shape(a))
                                   for gi, a in zip(gs, args))
                return gs

            self.tape.record(oid, ins, vjp)
        self.values.append(out)
        self.rg.append(rg)
        self.ids.append(oid)
        self.snapshots.append(out)
        self.befores.append(None)

    def grads(self, root: int, v: np.ndarray) -> dict[int, np.ndarray]:
        return self.tape.backward(self.ids[root], np.asarray(v, dtype=self.dtype), self.noise)


def _at_kink(name: str, args: list, params: dict) -> bool:
    """Is a recorded op evaluated exactly where it is not differentiable? There autodiff follows a
    convention (relu'(0) = 0, ties split...), which finite differences of compositions need not
    follow (|x|**2 has second derivative 2 at 0, the chain rule gives 0, as in PyTorch)."""
    a = np.asarray(args[0])
    b = np.asarray(args[1]) if len(args) > 1 else None
    with np.errstate(all="ignore"):
        if name in ("relu", "abs", "sqrt", "log", "pow_k"):
            return bool((a == 0).any())
        if name == "clip":
            return any(bound is not None and bool((a == bound).any()) for bound in (params["lo"], params["hi"]))
        if name in ("max", "min") and a.ndim:
            m = (a.max if name == "max" else a.min)(axis=params["axis"], keepdims=True)
            return bool(((a == m).sum(axis=params["axis"]) > 1).any())
        if name in ("maximum", "minimum", "div", "pow"):
            return bool((np.broadcast_to(a, np.broadcast_shapes(a.shape, b.shape)) == b).any()
                        or (b == 0).any() or (a == 0).any())
        if name == "where":
            return bool((a == 0.5).any())
    return False


def replay(program: dict, leaves: list[np.ndarray] | None = None, eps: float = 0.0, seed: int = 0,
           frozen: Ref | None = None, dtype: np.dtype = F64) -> Ref:
    ref = Ref(program["leaves"] if leaves is None else leaves, program["rgs"], eps, seed, frozen, dtype)
    for instr in program["instrs"]:
        ref.run(instr)
    return ref


