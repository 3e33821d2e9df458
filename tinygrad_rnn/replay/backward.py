"""The engine's reverse walk, compiled: the same order, the same gradient sums, as instructions.

``autograd.run_backward`` visits the recorded nodes in decreasing tape order, pops the sum of
the gradients that reached each node, runs the node's rule and adds each input gradient to
its parent's sum (``gradsum.add_grads``): dense arrays add, indexing gradients (sparse) are
added into one buffer, matmul weight gradients (outer) keep their factors and become one
product when the weight's node is reached. Floating-point addition is not associative, so
this module does exactly that, in exactly that order; only the memory differs (the
program's buffers, and factors placed side by side so that their ``concatenate`` is free).
"""

from __future__ import annotations

from typing import Any

from .. import backend
from .ir import Builder, Val
from .generic import generic_backward
from .kernels import BACKWARD, K, emit_sum_to

ndarray = backend.CPU_ARRAY


class Sum:
    """The gradient the engine keeps for one value: a dense array (``owned`` when the engine
    allocated it, so it may add into it in place) or an outer product's factors (plus a dense part)."""

    __slots__ = ("val", "owned", "a", "b", "dense")

    def __init__(self, val: Val | None = None, owned: bool = False, a: list | None = None,
                 b: list | None = None) -> None:
        self.val, self.owned, self.a, self.b, self.dense = val, owned, a, b, None

    @property
    def outer(self) -> bool:
        return self.a is not None


class BackwardCompiler:
    """Emits the instructions of one ``backward()`` over the recorded nodes."""

    def __init__(self, b: Builder, applies: list, saved: dict, meta: dict, leaf_vals: list) -> None:
        self.b, self.applies, self.saved, self.meta, self.leaf_vals = b, applies, saved, meta, leaf_vals
        self.failed: str | None = None

    # -- sums (gradsum.add_grads)
    def add(self, prev: Sum | None, form: tuple) -> Sum:
        kind = form[0]
        if prev is not None and prev.outer:
            if kind == "outer":
                prev.a.append(form[1])
                prev.b.append(form[2])
                return prev
            if kind == "dense":
                prev.dense = form[1] if prev.dense is None else self._add_new(prev.dense, form[1])
                return prev
            prev = Sum(self.value(prev), owned=True)
        if kind == "outer":
            s = Sum(a=[form[1]], b=[form[2]])
            if prev is not None:
                s.dense = prev.val
            return s
        if kind == "sparse":
            _, shape, index, values = form
            if prev is None:
                buf = self.b.new(shape, values.dtype)
                self.b.emit("copyto", buf, 0, writes=(buf,), label="sum: zeros")
                self._scatter(buf, index, values, first=True)
                return Sum(buf, owned=True)
            buf = prev.val if prev.owned else self._copy(prev.val)
            self._scatter(buf, index, values, first=False)
            return Sum(buf, owned=True)
        g = form[1]
        if prev is None:
            return Sum(g, owned=False)
        if prev.owned:
            self.b.emit("add", prev.val, g, prev.val, writes=(prev.val,), label="sum")
            return prev
        return Sum(self._add_new(prev.val, g), owned=True)

    def _add_new(self, x: Val, y: Val) -> Val:
        out = self.b.new(x.shape, x.dtype)
        self.b.emit("add", x, y, out, writes=(out,), label="sum")
        return out

    def _copy(self, x: Val) -> Val:
        out = self.b.new(x.shape, x.dtype)
        self.b.emit("copyto", out, x, writes=(out,), label="sum: copy")
        return out

    def _scatter(self, buf: Val, index: Any, values: Val, first: bool) -> None:
        """``buf[index] = values`` (first, basic index) or ``buf[index] += values`` (backend.index_add_)."""
        if backend.is_basic_index(index):
            view = self.b.view(buf, ndarray.__getitem__, index, shape=values.shape)
            if first:
                self.b.emit("copyto", view, values, writes=(view,), label="sum: sparse")
            else:
                self.b.emit("add", view, values, view, writes=(view,), label="sum: sparse")
        else:
            self.b.emit("add.at", buf, index, values, writes=(buf,), label="sum: sparse")

    def value(self, s: Sum) -> Val:
        """A sum as one array: ``OuterGrad.value`` for factors (one product over all of them)."""
        if not s.outer:
            return s.val
        b = self.b
        if len(s.a) == 1:
            a, g = s.a[0], s.b[0]
        else:
            a, g = self._concat(s.a), self._concat(s.b)
        at = b.view(a, ndarray.transpose, shape=(a.shape[1], a.shape[0]))
        out = b.new((a.shape[1], g.shape[1]), g.dtype)
        b.emit("matmul", at, g, out, writes=(out,), label="weight gradient")
        if s.dense is not None:
            b.emit("add", out, s.dense, out, writes=(out,), label="weight gradient + dense")
        return out

    def _concat(self, parts: list[Val]) -> Val:
        rows = sum(p.shape[0] for p in parts)
        out = self.b.new((rows,) + tuple(parts[0].shape[1:]), parts[0].dtype)
        instr = self.b.emit("concatenate", list(parts), 0, out, writes=(out,), label="weight gradient: concat")
        if all(p.storage is not None for p in parts):  # placed side by side: the concatenate is free
            self.b.group([p.storage for p in parts], out.storage, instr)
        return out

    # -- the walk (autograd.run_backward)
    def run(self, roots: list[tuple[int, Val]]) -> dict[int, Val]:
        """``roots``: (apply index, gradient) pairs. Returns the gradient of every leaf reached."""
        sums: dict[int, Sum] = {}
        leaf_sums: dict[int, Sum] = {}
        for idx, g in roots:
            sums[idx] = self.add(sums.get(idx), ("dense", g))
        for idx in self._order(list(sums)):
            s = sums.pop(idx, None)
            if s is None:
                continue
            g = self.value(s)
            a = self.applies[idx]
            forms = self._rule(idx, a, g)
            if isinstance(forms, str):
                self.failed = self.failed or forms
                return {}
            for parent, form in zip(a.parents, forms):
                if form is None or parent is None:
                    continue
                form = self._fit(a, parent, form)
                if parent[0] == "n":
                    sums[parent[1]] = self.add(sums.get(parent[1]), form)
                else:
                    leaf_sums[parent[1]] = self.add(leaf_sums.get(parent[1]), form)
        return {i: self._final(s) for i, s in leaf_sums.items()}

    def _order(self, roots: list[int]) -> list[int]:
        seen, stack = set(), list(roots)
        while stack:
            idx = stack.pop()
            if idx in seen:
                continue
            seen.add(idx)
            for p in self.applies[idx].parents or ():
                if p is not None and p[0] == "n":
                    stack.append(p[1])
                elif p is not None and p[0] == "foreign":
                    self.failed = self.failed or ("backward reaches ops recorded before the captured call "
                                                  "(detach the state you carry between calls)")
        return sorted(seen, key=lambda i: self.applies[i].seq, reverse=True)

    def _rule(self, idx: int, a: Any, g: Val) -> list | str:
        k = K(self.b, a, self.meta[a.out])
        needs = tuple(p is not None for p in a.parents)
        kernel = BACKWARD.get(a.cls)
        if kernel is None:
            return generic_backward(k, self.saved[idx], g, needs)
        forms = kernel(k, self.saved[idx], g, needs)
        problem = _check_forms(a, forms)
        return problem if problem else forms

    def _fit(self, a: Any, parent: tuple, form: tuple) -> tuple:
        """The engine's ``_fit``: a broadcasting op's dense gradient summed back to its input's shape."""
        if form[0] != "dense":
            return form
        shape = self.meta[self.applies[parent[1]].out][0] if parent[0] == "n" else self.leaf_vals[parent[1]].shape
        if tuple(form[1].shape) == tuple(shape):
            return form
        return ("dense", emit_sum_to(self.b, form[1], tuple(shape), a.cls.__name__))

    def _final(self, s: Sum) -> Val:
        """A leaf's gradient, in a buffer of its own that survives the call (it becomes ``.grad``)."""
        v = self.value(s)
        if (s.owned or s.outer) and v.storage is not None and v.storage.kind == "buf":
            v.storage.persistent = True
            return v
        out = self.b.new(v.shape, v.dtype)
        out.storage.persistent = True
        self.b.emit("copyto", out, v, writes=(out,), label="leaf gradient")
        return out


def _check_forms(a: Any, forms: list) -> str | None:
    """Compare a kernel's gradients with what the op's own rule returned during capture."""
    seen = a.forms
    if seen is None:
        return f"{a.cls.__name__}'s backward rule did not run during capture"
    for i, (parent, mine, theirs) in enumerate(zip(a.parents, forms, list(seen) + [None] * len(forms))):
        if parent is None:
            continue
        if (mine is None) != (theirs is None):
            return f"replay kernel of {a.cls.__name__} disagrees with its rule about input {i}'s gradient"
        if mine is None:
            continue
        shape = mine[1].shape if mine[0] == "dense" else mine[1] if mine[0] == "sparse" else None
        ok = mine[0] == theirs[0] and (shape is None or tuple(shape) == tuple(theirs[1]))
        if mine[0] == "outer":
            ok = ok and tuple(mine[1].shape) == tuple(theirs[1]) and tuple(mine[2].shape) == tuple(theirs[4])
        if not ok:
            return (f"replay kernel of {a.cls.__name__} disagrees with its rule about input {i}'s gradient "
                    f"({mine[0]} vs {theirs[0]})")
    return None
