"""The hooks a capture installs on the package's classes while it records (and removes after).

``Function.apply`` (every op), ``autograd.run_backward`` (the backward pass), every op's
``backward`` rule (the form of the gradients it returns), ``Module.__call__`` (which modules
ran, in which mode), ``Tensor.numpy`` (a value read to Python) and the ``Generator`` draws.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from .. import autograd, backend
from ..autograd import Function
from ..backend import Generator
from ..gradsum import OuterGrad, SparseGrad
from ..nn.module import Module
from ..tensor import Tensor
from .trace import Apply, Recorder
from .traced import ACTIVE, TracedArray, _plain, _read, _shares, _unwrap, ndarray

_LOCK = threading.Lock()  # one capture at a time: the hooks are installed on shared classes

# ---------------------------------------------------------------- hooks on the package's classes

_apply_descriptor = Function.__dict__["apply"]
_orig_apply = _apply_descriptor.__func__
_orig_run_backward = autograd.run_backward
_orig_module_call = Module.__call__
_orig_numpy = Tensor.numpy
_DRAWS = ("normal", "uniform", "integers", "bernoulli", "choice")
_orig_draws = {name: getattr(Generator, name) for name in _DRAWS}


def _substitute(t: Tensor, data: Any) -> Tensor:
    """A Tensor like ``t`` (same node, same flag) holding the plain array: what an op's forward sees."""
    s = Tensor.__new__(Tensor)
    s.data, s.grad, s.node, s.requires_grad = data, None, t.node, t.requires_grad
    return s


def _apply(cls: type, *args: Any, **attrs: Any) -> Any:
    rec = ACTIVE.recorder
    if rec is None or rec.depth:
        return _orig_apply(cls, *args, **attrs)
    if rec.in_backward:
        rec.fail(f"{cls.__name__} ran during backward (create_graph=True is not supported by capture)")
    refs, call_args, plain_in = [], [], []
    for a in args:
        if isinstance(a, Tensor):
            d = a.data
            if type(d) is TracedArray:
                if a.requires_grad and a.node is None:
                    rec.fail(f"{cls.__name__} got a leaf that requires grad made inside the function from "
                             "computed values; create parameters outside the captured function")
                    refs.append(rec.ref(d))
                    call_args.append(a)
                    plain_in.append(_plain(d))
                    continue
                refs.append(rec.ref(d))
                call_args.append(_substitute(a, _plain(d)))
                plain_in.append(_plain(d))
                continue
            if a.node is not None:
                rec.fail(f"{cls.__name__} got a tensor computed before the captured call that is still "
                         "part of a graph; detach what you carry between calls")
            refs.append(rec.leaf(a) if a.node is None else ("c", rec._const(d)))
            call_args.append(a)
            plain_in.append(d)
        else:
            refs.append(rec.ref(a))
            call_args.append(_unwrap(a))
            plain_in.append(_unwrap(a))
    attr_refs = {k: rec.ref(v) for k, v in attrs.items()}
    rec.depth += 1
    try:
        out = _orig_apply(cls, *call_args, **_unwrap(attrs))
    finally:
        rec.depth -= 1
    alias = _shares(out.data, plain_in)
    ctx = out.node
    parents = None
    if ctx is not None:
        rec._node_ids[id(ctx)] = len(rec.trace.applies)
        rec._nodes.append(ctx)
        parents = [rec.node_ref(p) for p in ctx.parents]
    t = rec.new_value(out.data)
    rec.trace.applies.append(Apply(cls, refs, attr_refs, t._vid, parents, ctx.seq if ctx is not None else -1,
                                   alias))
    rec.trace.events.append(("apply", len(rec.trace.applies) - 1))
    out.data = t
    return out


def _run_backward(roots: Any, root_grads: Any, retain_graph: bool, create_graph: bool, targets: Any = None) -> Any:
    rec = ACTIVE.recorder
    if rec is None or rec.depth:
        return _orig_run_backward(roots, root_grads, retain_graph, create_graph, targets)
    if create_graph:
        rec.fail("backward(create_graph=True) inside the captured function is not supported")
    if targets is not None:
        rec.fail("autograd.grad() inside the captured function is not supported; use backward()")
    if any(e[0] == "backward" for e in rec.trace.events):
        rec.fail("the function runs backward more than once")
    root_refs = [rec.ref(r.data) for r in roots]
    grad_refs = [rec.ref(g) for g in root_grads]
    rec.trace.events.append(("backward", root_refs, grad_refs, bool(retain_graph)))
    rec.in_backward = True
    try:
        return _orig_run_backward(roots, root_grads, retain_graph, create_graph, targets)
    finally:
        rec.in_backward = False


def _rule_wrapper(rule: Any) -> Any:
    def backward(ctx: Function, grad: Any) -> Any:
        grads = rule(ctx, grad)
        rec = ACTIVE.recorder
        if rec is not None and rec.in_backward:
            idx = rec._node_ids.get(id(ctx))
            if idx is not None:
                rec.trace.applies[idx].forms = [describe(g, grad) for g in
                                                (grads if isinstance(grads, tuple) else (grads,))]
        return grads
    return backward


def describe(g: Any, upstream: Any) -> Any:
    """The form of one gradient a rule returned: what the replay's backward must produce."""
    if g is None:
        return None
    if isinstance(g, SparseGrad):
        basic = backend.is_basic_index(g.index)
        return ("sparse", g.shape, g.values.dtype, g.index if basic else None, g.values.shape, g.values.strides)
    if isinstance(g, OuterGrad):
        a, b = g.a[0], g.b[0]
        return ("outer", a.shape, a.dtype, a.strides, b.shape, b.dtype, b.strides)
    g = backend.as_ndarray(g)
    if not isinstance(g, ndarray):
        return ("other", type(g).__name__)
    return ("dense", tuple(g.shape), g.dtype, g.strides, g is upstream)


def _module_call(self: Module, *args: Any, **kwargs: Any) -> Any:
    rec = ACTIVE.recorder
    if rec is not None and not rec.depth:
        rec.module_called(self)
    return _orig_module_call(self, *args, **kwargs)


def _numpy(self: Tensor) -> Any:
    d = self.data
    if type(d) is TracedArray:
        return _read(d, "numpy", backend.to_numpy)
    return _orig_numpy(self)


def _draw_hook(name: str) -> Any:
    orig = _orig_draws[name]

    def draw(self: Generator, *args: Any, **kwargs: Any) -> Any:
        out = orig(self, *args, **kwargs)
        rec = ACTIVE.recorder
        if rec is None or rec.depth:
            return out
        if name == "choice":
            rec.fail("Generator.choice returns a Python number: it cannot be replayed")
            return out
        return rec.draw(self, name, args, kwargs, out)
    return draw


def _function_classes() -> list[type]:
    seen, stack = [], [Function]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                stack.append(sub)
    return seen


@contextlib.contextmanager
def recording(rec: Recorder) -> Iterator[Recorder]:
    """Install the hooks, make ``rec`` the active recorder, and take everything down afterwards."""
    with _LOCK:
        rules = [(cls, vars(cls)["backward"]) for cls in _function_classes() if "backward" in vars(cls)]
        try:
            Function.apply = classmethod(_apply)
            autograd.run_backward = _run_backward
            Module.__call__ = _module_call
            Tensor.numpy = _numpy
            for name in _DRAWS:
                setattr(Generator, name, _draw_hook(name))
            for cls, rule in rules:
                cls.backward = staticmethod(_rule_wrapper(getattr(rule, "__func__", rule)))
            ACTIVE.recorder = rec
            yield rec
        finally:
            ACTIVE.recorder = None
            Function.apply = _apply_descriptor
            autograd.run_backward = _orig_run_backward
            Module.__call__ = _orig_module_call
            Tensor.numpy = _orig_numpy
            for name, fn in _orig_draws.items():
                setattr(Generator, name, fn)
            for cls, rule in rules:
                cls.backward = rule
            rec._nodes.clear()
