"""Gradient checks against central finite differences, for ops and layers you add.

The check contracts the function's output with a random upstream gradient ``v``
into the scalar ``L(x) = <f(x), v>``, then compares ``dL/dx`` from the engine with
``(L(x + eps e) - L(x - eps e)) / (2 eps)``: for every element ``e`` of small
inputs, and along random unit directions for large ones (HIPS autograd's
projection check, ``<grad, u> = dL/du``). Run it in float64.

Second order: ``gradgradcheck`` applies the same check to the function
``x -> <grad L(x), w>``, whose gradient the engine computes by differentiating
its own backward pass (``create_graph=True``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..autograd import grad, no_grad
from ..tensor import Tensor

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck", "numerical_grad"]


class GradcheckError(AssertionError):
    """The analytic and the numerical gradient disagree (or an input was mutated)."""


def _scalar(fn: Callable[..., Tensor], inputs: Sequence[Tensor], v: Any) -> float:
    out = fn(*inputs)  # recorded, not under no_grad: gradgradcheck's fn itself calls grad()
    return float((np.asarray(out.numpy(), dtype=np.float64) * v).sum())


def numerical_grad(fn: Callable[..., Tensor], inputs: Sequence[Tensor], k: int, v: Any, eps: float,
                   directions: Sequence[Any] | None = None) -> np.ndarray:
    """Central differences of ``<fn(*inputs), v>`` w.r.t. ``inputs[k]``: one per element, or one per
    direction when ``directions`` is given.

    Each perturbed point is a new array bound to the input (the library's rule: an array a tensor
    holds is never written, so neither the caller's array nor one a graph saved changes); the
    input's own array is bound back at the end.
    """
    x = inputs[k]
    original = x.data
    orig = np.array(original, dtype=original.dtype).reshape(-1)  # a flat copy (of any view)

    def at(flat: np.ndarray) -> float:
        x.data = flat.reshape(x.shape)
        return _scalar(fn, inputs, v)

    try:
        if directions is None:
            out = np.empty(orig.size)
            for i in range(orig.size):
                hi, lo = orig.copy(), orig.copy()
                hi[i] += eps
                lo[i] -= eps
                out[i] = (at(hi) - at(lo)) / (2 * eps)
            return out.reshape(x.shape)
        out = np.empty(len(directions))
        for j, u in enumerate(directions):
            out[j] = (at(orig + eps * u) - at(orig - eps * u)) / (2 * eps)
        return out
    finally:
        x.data = original


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], *, eps: float = 1e-6, atol: float = 1e-6,
              rtol: float = 1e-5, max_elements: int = 64, n_directions: int = 6, seed: int = 0,
              raise_exception: bool = True, _constant_ok: bool = False) -> bool:
    """Check the gradients of ``fn`` w.r.t. every input that requires grad.

    Args:
        fn: maps the input tensors to one output tensor.
        inputs: float64 CPU tensors; those with ``requires_grad=True`` are checked.
        eps: finite-difference step.
        atol: allowed absolute error: ``|analytic - numeric| <= atol + rtol * |numeric|`` elementwise.
        rtol: allowed relative error (see ``atol``).
        max_elements: inputs up to this size are checked element by element, larger ones
            along ``n_directions`` random unit directions.
        seed: seeds the upstream gradient and the directions.

    Returns:
        True; raises :class:`GradcheckError` with the worst element otherwise (or returns
        False when ``raise_exception=False``).
    """
    rng = np.random.default_rng(seed)
    for t in inputs:
        if t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck: inputs must be float64 for finite differences, got {t.dtype}")
    before = [np.array(t.numpy(), copy=True) for t in inputs]
    out = fn(*inputs)
    v = rng.standard_normal(out.shape)
    checked = [k for k, t in enumerate(inputs) if t.requires_grad]
    if out.requires_grad:
        analytic = grad(out, [inputs[k] for k in checked], grad_outputs=Tensor(v.astype(out.dtype)),
                        allow_unused=True)
    elif _constant_ok:  # nothing recorded: the analytic derivative is 0, the numbers must agree
        analytic = tuple(None for _ in checked)
    else:
        raise GradcheckError("gradcheck: the output does not depend on any input that requires grad")
    for t, b in zip(inputs, before):
        if not np.array_equal(t.numpy(), b, equal_nan=True):
            return _fail("gradcheck: fn mutated one of its inputs", raise_exception)
    for k, g in zip(checked, analytic):
        x = inputs[k]
        a = np.zeros(x.shape) if g is None else np.asarray(g.numpy(), dtype=np.float64)
        if a.shape != tuple(x.shape):
            return _fail(f"gradcheck: gradient of input {k} has shape {a.shape}, input has {x.shape}",
                         raise_exception)
        if x.numel() <= max_elements:
            num = numerical_grad(fn, inputs, k, v, eps)
            ana = a
        else:
            dirs = [u / np.linalg.norm(u) for u in rng.standard_normal((n_directions, x.numel()))]
            num = numerical_grad(fn, inputs, k, v, eps, dirs)
            ana = np.array([a.reshape(-1) @ u for u in dirs])
        err = np.abs(ana - num) - (atol + rtol * np.abs(num))
        if not np.all(err <= 0) or not np.all(np.isfinite(ana)):
            i = np.unravel_index(np.nanargmax(np.where(np.isfinite(err), err, np.inf)), err.shape)
            return _fail(f"gradcheck: input {k} (shape {tuple(x.shape)}): analytic {ana[i]!r} vs numerical "
                         f"{num[i]!r} at {'element' if ana is a else 'direction'} {tuple(map(int, i))} "
                         f"(atol={atol}, rtol={rtol})", raise_exception)
    return True


def gradgradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], *, seed: int = 0, **kwargs: Any) -> bool:
    """Check second derivatives: gradcheck of ``x -> <grad <fn(x), v>, w>`` built with create_graph.

    The function checked is the full first-order gradient contracted with random ``w``: every
    input's term counts in its VALUE (what the finite differences see), whether or not the engine
    recorded a graph for it. A term whose gradient came back without a graph (a rule that computed
    it on raw arrays, or detached it) therefore counts as zero in the analytic second derivative,
    and the check fails unless that derivative really is zero.

    Args:
        fn: as for :func:`gradcheck`.
        inputs: as for :func:`gradcheck` (float64 CPU tensors).
        seed: seeds ``v``, ``w`` and gradcheck's own draws.
        kwargs: passed on to :func:`gradcheck` (eps, atol, rtol, ...).
    """
    rng = np.random.default_rng(seed + 1)
    with no_grad():
        out_shape = fn(*inputs).shape
    v = Tensor(rng.standard_normal(out_shape))
    checked = [t for t in inputs if t.requires_grad]
    ws = [Tensor(rng.standard_normal(t.shape)) for t in checked]

    def first_order(*xs: Tensor) -> Tensor:
        out = fn(*xs)
        targets = [x for x in xs if x.requires_grad]
        gs = grad(out, targets, grad_outputs=v, create_graph=True, allow_unused=True)
        # Every term, recorded or not: an unrecorded one is a constant here, so its change under
        # the finite differences shows up against an analytic derivative of zero.
        terms = [(g * w).sum() for g, w in zip(gs, ws) if g is not None]
        total = Tensor(np.zeros(())) if not terms else terms[0]
        for term in terms[1:]:
            total = total + term
        return total

    return gradcheck(first_order, inputs, seed=seed, _constant_ok=True, **kwargs)


def _fail(msg: str, raise_exception: bool) -> bool:
    if raise_exception:
        raise GradcheckError(msg)
    return False
