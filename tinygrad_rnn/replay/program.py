"""A compiled program, bound to memory, and how one call runs it.

A call copies the arguments into the program's input buffers, reads each leaf tensor's current
array (an optimizer binds new ones every step) after checking it has the layout seen at
capture, runs the instructions, copies the returned values out, and gives each leaf its
gradient as ``.grad`` the way the engine does (a new ``.grad``, or the sum with the one
already there).
"""

from __future__ import annotations

import gc
import time
from typing import Any

from .. import backend
from ..tensor import Tensor
from .compile import Compiled, GuardFailedError
from .plan import Binder, _order, allocate

ndarray = backend.CPU_ARRAY


def _layout(a: Any) -> tuple:
    return (type(a), a.shape, a.dtype, a.flags.c_contiguous, a.flags.f_contiguous)


def _tensor(data: Any) -> Tensor:
    t = Tensor.__new__(Tensor)
    t.data, t.grad, t.node, t.requires_grad = data, None, None, False
    return t


class Program:
    """The replay of one captured function for one argument signature."""

    def __init__(self, c: Compiled, params: list, by_reference: list[bool], gens: list, modules: list) -> None:
        b = c.builder
        dropped, self.nbytes = allocate(b, c.kept)
        for v in c.inputs:
            s = v.storage
            s.array = backend.aligned_empty(s.shape, s.dtype, _order(s.shape, s.strides))
            self.nbytes += s.array.nbytes
        self.leaf_arrays: list = [None] * len(c.leaves)
        self.binder = Binder(self.leaf_arrays)
        bound = self.binder.bind(b.instrs, dropped)
        self.code, self.slots, self.labels = bound.code, bound.slots, bound.labels
        self.inputs = [v.storage.array for v in c.inputs]
        self.leaves = [(i, t, _layout(t.data), t.requires_grad) for i, t in enumerate(params) if by_reference[i]]
        self.grads = [(params[i], self.binder.static(v)) for i, v in c.grads.items()]
        self.outputs = self.binder.static(c.outputs)
        self.gens = gens
        self.modules = modules
        self.snapshot = c.draws_before_guard
        self.ops, self.guards = c.ops, c.guards
        self.instructions = len(self.code)
        self.verified = False
        self.profile: dict | None = None  # when a dict: every run adds its seconds per instruction label
        self._matmuls = [(ins.label, ins.args[:3]) for ins in b.instrs if ins.fn == "matmul" and id(ins) not in dropped]

    # -- one call
    def check(self) -> str | None:
        """Why this program cannot run now (a leaf or a module changed), or None."""
        for _, t, layout, requires_grad in self.leaves:
            if _layout(t.data) != layout or t.requires_grad != requires_grad:
                return (f"a leaf tensor of shape {layout[1]} changed its dtype, layout, device or requires_grad "
                        "since capture")
        for m, training in self.modules:
            if m.training != training:
                return f"{type(m).__name__} was called in {'training' if training else 'eval'} mode at capture"
        return None

    def run(self, arrays: list, assign: bool = True, timings: dict | None = None) -> tuple[Any, list]:
        """Run one call on the argument arrays; returns (outputs, [(leaf, gradient array)]).

        With ``assign`` the gradients go to the leaves' ``.grad``; the arrays returned are the
        program's own (overwritten by the next call). ``timings``, if given, receives the seconds
        spent per instruction label (a profile; slower).
        """
        for buf, a in zip(self.inputs, arrays):
            backend.copy_into(buf, a)
        for i, t, _, _ in self.leaves:
            self.leaf_arrays[i] = t.data
        cache: dict = {}
        for container, key, x in self.slots:
            container[key] = self.binder.per_call(x, cache)
        if assign:
            self._release_handed_grads()
        states = [g.get_state() for g in self.gens] if self.snapshot else None
        timings = timings if timings is not None else self.profile
        collecting = gc.isenabled()
        gc.disable()  # the loop makes no reference cycles; a collection in it would only stall it
        try:
            if timings is None:
                for fn, args, kwargs in self.code:
                    if kwargs is None:
                        fn(*args)
                    else:
                        fn(*args, **kwargs)
            else:
                self._timed(timings)
        except GuardFailedError:
            if states is not None:
                for g, s in zip(self.gens, states):
                    g.set_state(s)
            raise
        finally:
            if collecting:
                gc.enable()
        outputs = _copy_out(self.outputs)
        if assign:
            for t, g in self.grads:
                t.grad = _tensor(g) if t.grad is None else _tensor(t.grad.data + g)
        return outputs, self.grads

    def _timed(self, timings: dict) -> None:
        clock = time.perf_counter
        for (fn, args, kwargs), label in zip(self.code, self.labels):
            t0 = clock()
            if kwargs is None:
                fn(*args)
            else:
                fn(*args, **kwargs)
            timings[label] = timings.get(label, 0.0) + clock() - t0

    def _release_handed_grads(self) -> None:
        """A ``.grad`` still holding the program's buffer from the last call (no ``zero_grad`` in
        between) gets its own copy first: this call is about to overwrite the buffer."""
        for t, g in self.grads:
            if t.grad is not None and t.grad.data is g:
                t.grad = _tensor(g.copy())

    def gemms(self) -> list[dict]:
        """Every matrix product of one call: shapes, strides and dtype of both operands and the result."""
        out, cache = [], {}
        for i, t, _, _ in self.leaves:
            self.leaf_arrays[i] = t.data
        for label, (a, b, c) in self._matmuls:
            arrays = [self.binder.per_call(v, cache) for v in (a, b, c)]
            out.append({"label": label, "dtype": str(arrays[0].dtype),
                        "a": (arrays[0].shape, arrays[0].strides), "b": (arrays[1].shape, arrays[1].strides),
                        "out": (arrays[2].shape, arrays[2].strides)})
        return out


def _copy_out(template: Any) -> Any:
    if not isinstance(template, tuple) or not template:
        return template
    tag = template[0]
    if tag == "tensor":
        return _tensor(backend.owned_copy(template[1]))
    if tag == "array":
        return backend.owned_copy(template[1])
    if tag == "seq":
        return template[1](_copy_out(x) for x in template[2])
    if tag == "dict":
        return {k: _copy_out(x) for k, x in template[1].items()}
    if tag == "leaf":
        return template[1]
    if tag == "lit":
        return template[1]
    return template
