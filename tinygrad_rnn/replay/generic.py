"""Replaying an op that has no kernel of its own: its own ``forward`` and ``backward``.

Exact by construction (the op's code runs, on the same arrays), at the cost of one copy of
each result into the program's buffers. The gradients' forms (dense, sparse, outer) are the
ones the rule returned during capture.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from .kernels import K, dense
from .ir import Val

class Slot:
    """Where an op's forward leaves its context for its backward (one per op of the program)."""

    __slots__ = ("ctx",)

    def __init__(self) -> None:
        self.ctx: Any = None


def generic_forward(k: K, ins: list, attrs: dict) -> tuple:
    """Replay an op that has no kernel above by calling its ``forward`` (a fresh context each call)
    and copying the result into the program's buffer: exact, at the cost of one copy."""
    slot = Slot()
    parents = tuple(p is not None for p in k.a.parents) if k.a.parents is not None else None
    out = k.out()
    k.b.emit(run_forward, slot, k.a.cls, parents, out, list(ins), dict(attrs), writes=(out,), label=k.a.cls.__name__)
    return out, (slot, list(ins), out)


def run_forward(slot: Slot, cls: type, parents: tuple | None, out: Any, ins: list, attrs: dict) -> None:
    ctx = cls.__new__(cls)
    ctx.saved = ()
    if parents is not None:
        ctx.parents = [True if p else None for p in parents]
    result = cls.forward(ctx, *ins, **attrs)
    if isinstance(result, backend.SCALAR_TYPES):  # as Function.apply does
        scalar, result = result, backend.as_ndarray(result)
        ctx.saved = tuple(result if s is scalar else s for s in ctx.saved)
    slot.ctx = ctx
    backend.copy_into(out, result)


def generic_backward(k: K, saved: tuple, g: Val, needs: tuple) -> list | str:
    """Call the op's own backward rule; its results are copied into buffers shaped like the forms
    the rule returned during capture. Returns a reason string when a form cannot be replayed."""
    slot, ins, out = saved
    targets, forms = [], []
    for f in k.a.forms or ():
        if f is None:
            targets.append(None)
            forms.append(None)
        elif f[0] == "dense":
            buf = k.b.new(f[1], f[2], f[3])
            targets.append(("dense", buf))
            forms.append(dense(buf))
        elif f[0] == "sparse" and f[3] is not None:
            vals = k.b.new(f[4], f[2], f[5])
            targets.append(("sparse", vals))
            forms.append(("sparse", f[1], f[3], vals))
        elif f[0] == "outer":
            a, b = k.b.new(f[1], f[2], f[3]), k.b.new(f[4], f[5], f[6])
            targets.append(("outer", a, b))
            forms.append(("outer", a, b))
        else:
            return f"the backward rule of {k.a.cls.__name__} returned a gradient capture cannot replay ({f[0]})"
    writes = tuple(v for t in targets if t is not None for v in t[1:])
    k.b.emit(run_backward_rule, slot, g, targets, (ins, out), writes=writes, label=k.a.cls.__name__ + " rule")
    return forms


def run_backward_rule(slot: Slot, g: Any, targets: list, keep: tuple) -> None:
    ctx, slot.ctx = slot.ctx, None
    grads = ctx.backward(ctx, g)
    if not isinstance(grads, tuple):
        grads = (grads,)
    for t, r in zip(targets, grads):
        if t is None:
            continue
        if t[0] == "dense":
            backend.copy_into(t[1], r)
        elif t[0] == "sparse":
            backend.copy_into(t[1], r.values)
        else:
            backend.copy_into(t[1], r.a[0])
            backend.copy_into(t[2], r.b[0])
