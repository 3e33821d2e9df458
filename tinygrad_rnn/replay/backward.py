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
    allocated it, or a rule's fresh result nothing else holds, so it may add into it in place)
    or an outer product's factors (plus a dense part). ``cover`` tracks which parts of a buffer
    made from indexing gradients have been written (see :class:`Cover`)."""

    __slots__ = ("val", "owned", "a", "b", "dense", "cover")

    def __init__(self, val: Val | None = None, owned: bool = False, a: list | None = None,
                 b: list | None = None) -> None:
        self.val, self.owned, self.a, self.b, self.dense, self.cover = val, owned, a, b, None, None

    @property
    def outer(self) -> bool:
        return self.a is not None


class Cover:
    """Which elements of a sum built from indexing gradients hold values yet (the rest: zeros).

    The engine starts such a sum from a zero buffer. Here the zeros are written only where no
    gradient lands, when the sum is used: ``0 + v`` is ``v + 0.0`` to the bit (IEEE addition
    commutes), and a region's first gradient is a copy. A boolean mask at compile time for
    small buffers; for big ones, the set of rows of axis 0 written (slices ``x[t]`` of a
    sequence), or nothing (then the buffer is zero-filled first, as the engine does).
    """

    MASK_LIMIT = 1 << 20

    def __init__(self, shape: tuple) -> None:
        self.shape = shape
        xp = backend.xp_for("cpu")
        self.mask = xp.zeros(shape, backend.bool_) if _size(shape) <= self.MASK_LIMIT else None
        self.rows: set[int] | None = None if self.mask is not None else set()

    def state(self, index: Any) -> str | None:
        """"untouched", "full" or "partial" for the region ``index``; None if it cannot be tracked."""
        if self.mask is not None:
            region = self.mask[index]
            return "untouched" if not region.any() else "full" if region.all() else "partial"
        row = _row(index, len(self.shape))
        if row is None or self.rows is None:
            return None
        return "full" if row in self.rows else "untouched"

    def mark(self, index: Any) -> None:
        if self.mask is not None:
            self.mask[index] = True
        else:
            self.rows.add(_row(index, len(self.shape)))

    def holes(self) -> list:
        """Basic indices of the regions still to be zero-filled (one box, rows, or the whole buffer)."""
        if self.mask is not None:
            if self.mask.all():
                return []
            empty = ~self.mask
            box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in empty.nonzero())
            return [box] if empty[box].all() else [Ellipsis]
        return [(r,) for r in range(self.shape[0]) if r not in self.rows]


def _size(shape: tuple) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _row(index: Any, ndim: int) -> int | None:
    """t for an index selecting row t of axis 0 (``t`` or ``(t, :, ...)``), else None."""
    items = index if isinstance(index, tuple) else (index,)
    if not items or not isinstance(items[0], int) or isinstance(items[0], bool):
        return None
    if any(i != slice(None) for i in items[1:]):
        return None
    return items[0]


class BackwardCompiler:
    """Emits the instructions of one ``backward()`` over the recorded nodes."""

    def __init__(self, b: Builder, applies: list, saved: dict, meta: dict, leaf_vals: list) -> None:
        self.b, self.applies, self.saved, self.meta, self.leaf_vals = b, applies, saved, meta, leaf_vals
        self.failed: str | None = None

    # -- sums (gradsum.add_grads)
    def add(self, prev: Sum | None, form: tuple, fresh: bool = False) -> Sum:
        """``prev + form`` as ``gradsum.add_grads`` computes it. ``fresh``: the form's array was
        just made by a rule and nothing else holds it (what the engine's ``_sole`` finds out)."""
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
                s.dense = self.settle(prev)
            return s
        if kind == "sparse":
            _, shape, index, values = form
            if prev is None:
                return self._first_sparse(shape, index, values)
            if prev.cover is None and not prev.owned:
                prev = Sum(self._copy(prev.val), owned=True)
            self._sparse_into(prev, index, values)
            return prev
        g = form[1]
        if prev is None:
            return Sum(g, owned=fresh)
        if prev.owned:
            val = self.settle(prev)
            self.b.emit("add", val, g, val, writes=(val,), label="sum")
            return prev
        return Sum(self._add_new(prev.val, g), owned=True)

    def _first_sparse(self, shape: tuple, index: Any, values: Val) -> Sum:
        buf = self.b.new(shape, values.dtype)
        s = Sum(buf, owned=True)
        cover = Cover(tuple(shape)) if backend.is_basic_index(index) else None
        if cover is not None and cover.state(index) is not None:
            s.cover = cover  # no zero fill now: scatter_add's assignment is a copy
            view = self.b.view(buf, ndarray.__getitem__, index, shape=values.shape)
            self.b.emit("copyto", view, values, writes=(view,), label="sum: sparse")
            cover.mark(index)
            return s
        self.b.emit("copyto", buf, 0, writes=(buf,), label="sum: zeros")
        self._scatter(buf, index, values, first=True)
        return s

    def _sparse_into(self, s: Sum, index: Any, values: Val) -> None:
        """``backend.index_add_(buf, index, values)``, skipping the zeros not written yet."""
        cover = s.cover
        state = cover.state(index) if cover is not None and backend.is_basic_index(index) else None
        if state == "untouched":
            view = self.b.view(s.val, ndarray.__getitem__, index, shape=values.shape)
            self.b.emit("add", values, 0.0, view, writes=(view,), label="sum: sparse")  # 0 + v, to the bit
            cover.mark(index)
            return
        if state != "full":
            self.settle(s)
        self._scatter(s.val, index, values, first=False)

    def settle(self, s: Sum) -> Val:
        """Write the zeros a sparse-built buffer still lacks; returns its array."""
        if s.cover is not None:
            for hole in s.cover.holes():
                view = s.val if hole is Ellipsis else self.b.view(s.val, ndarray.__getitem__, hole,
                                                                   shape=_shape_of(s.val.shape, hole))
                if hole is Ellipsis:  # an irregular region: zero where nothing was written
                    mask = self._const(~s.cover.mask)
                    self.b.emit(_zero_where, s.val, mask, writes=(s.val,), label="sum: zeros")
                else:
                    self.b.emit("copyto", view, 0, writes=(view,), label="sum: zeros")
            s.cover = None
        return s.val

    def _const(self, array: Any) -> Val:
        st = self.b.storage("const", array.shape, array.dtype, array.strides)
        st.array = array
        return Val(array.shape, array.dtype, st, dep="arg")

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
            return self.settle(s)
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
            made = len(self.b.storages)
            forms = self._rule(idx, a, g)
            if isinstance(forms, str):
                self.failed = self.failed or forms
                return {}
            for parent, form in zip(a.parents, forms):
                if form is None or parent is None:
                    continue
                form = self._fit(a, parent, form)
                fresh = form[0] == "dense" and _fresh(form[1], forms, self.b.storages[made:])
                if parent[0] == "n":
                    sums[parent[1]] = self.add(sums.get(parent[1]), form, fresh)
                else:
                    leaf_sums[parent[1]] = self.add(leaf_sums.get(parent[1]), form, fresh)
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
        k = K(self.b, a, self.meta[a.out], backward=True)
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
        out = self.b.new(v.shape, v.dtype)  # row-major, as backend.owned_copy makes it
        out.storage.persistent = True
        self.b.emit(backend.copy_into, out, v, writes=(out,), label="leaf gradient")
        return out


def _fresh(v: Val, forms: list, made: list) -> bool:
    """Was ``v`` made by the rule that just ran (a new buffer), and handed to one input only?"""
    if v.storage is None or not any(v.storage is s for s in made):
        return False
    return sum(1 for f in forms if f is not None and f[0] == "dense" and f[1] is v) == 1


def _zero_where(buf: Any, mask: Any) -> None:
    backend.get_xp(buf).copyto(buf, 0, where=mask)


def _shape_of(shape: tuple, index: tuple) -> tuple:
    """The shape of ``x[index]`` for a basic index of slices and ints."""
    out, axes = [], list(shape)
    for i, item in enumerate(index):
        if isinstance(item, slice):
            out.append(len(range(*item.indices(axes[i]))))
    return tuple(out) + tuple(axes[len(index):])


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
