"""Placing a program in memory, then binding it to arrays.

1. Groups: storages that a ``stack`` or a weight gradient's ``concatenate`` would copy into one
   array are placed in that array from the start, and the copy is dropped (when nothing writes
   into them after the copy point, so the values are the same).
2. Lifetimes: each storage lives from the first instruction that touches it to the last one.
3. Allocation: a storage takes a free buffer of its exact shape, dtype and layout if one is no
   longer in use, else a new one. Buffers start on a page boundary (see
   ``backend.aligned_empty``): all arrays then sit at the same offset modulo 4096, which keeps
   elementwise ops clear of 4K aliasing (docs/performance.md).
4. Binding: every Val becomes an array (views made once); instructions hold arrays, except
   those that read a leaf tensor, which are filled in on every call (optimizers bind new arrays).
"""

from __future__ import annotations

from typing import Any

from .. import backend
from .ir import Builder, Group, Instr, Storage, Val


def _order(shape: tuple, strides: tuple | None) -> tuple:
    """Axes from the slowest-varying to the fastest (row-major when no strides are given)."""
    if strides is None:
        return tuple(range(len(shape)))
    return tuple(sorted(range(len(shape)), key=lambda i: (-abs(strides[i]), i)))


def _row_major(s: Storage) -> bool:
    return _order(s.shape, s.strides) == tuple(range(len(s.shape)))


# ---------------------------------------------------------------- groups

def _place_groups(b: Builder) -> set[int]:
    """Apply the groups that are safe; returns the ids of the instructions they make unnecessary."""
    position = {id(ins): i for i, ins in enumerate(b.instrs)}
    dropped: set[int] = set()
    for g in b.groups:
        if _group_ok(g, position):
            for k, m in enumerate(g.members):
                m.group = (g, k)
            dropped.add(id(g.instr))
    return dropped


def _group_ok(g: Group, position: dict) -> bool:
    at = position[id(g.instr)]
    shape, dtype = g.members[0].shape, g.members[0].dtype
    if len({id(m) for m in g.members}) != len(g.members) or g.whole.group is not None:
        return False
    if g.whole.kind != "buf" or not _row_major(g.whole) or g.whole.writes != [at]:
        return False
    for m in g.members:
        if m.kind != "buf" or m.persistent or m.group is not None or m.shape != shape or m.dtype != dtype:
            return False
        if not _row_major(m) or any(w >= at for w in m.writes):
            return False
    return True


# ---------------------------------------------------------------- lifetimes and allocation

def _root(s: Storage) -> Storage:
    return s.group[0].whole if s.group is not None else s


def _lifetimes(b: Builder, dropped: set[int], end: int, kept: list[Val]) -> None:
    for s in b.storages:
        s.first, s.last, s.writes = -1, -1, []
    for i, ins in enumerate(b.instrs):
        if id(ins) in dropped:
            continue
        touched = {id(_root(v.root)): _root(v.root) for v in ins.vals()}
        for s in touched.values():
            if s.first < 0:
                s.first = i
            s.last = i
        for w in ins.writes:
            _root(w.root).writes.append(i)
    for v in kept:  # outputs copied out and guards read after the last instruction
        s = _root(v.root)
        if s.first < 0:
            s.first = end
        s.last = end


def _scan_writes(b: Builder) -> None:
    for s in b.storages:
        s.writes = []
    for i, ins in enumerate(b.instrs):
        for w in ins.writes:
            w.root.writes.append(i)


def allocate(b: Builder, kept: list[Val]) -> tuple[set[int], int]:
    """Place groups, compute lifetimes and give every program buffer its memory.

    The buffers share one arena (see :func:`pack`). Returns the ids of the dropped instructions
    and the bytes allocated.
    """
    _scan_writes(b)
    dropped = _place_groups(b)
    end = len(b.instrs)
    _lifetimes(b, dropped, end, kept)
    placed, total = [], 0
    for s in b.storages:
        if s.kind != "buf" or s.group is not None or s.first < 0:
            continue
        if s.persistent:
            s.array = backend.aligned_empty(s.shape, s.dtype, _order(s.shape, s.strides))
            total += s.array.nbytes
        else:
            placed.append(s)
    offsets, size = pack([_nbytes(s) for s in placed], [s.first for s in placed], [s.last for s in placed])
    arena = backend.aligned_empty((max(size, 1),), "uint8")
    for s, offset in zip(placed, offsets):
        s.array = _view(arena[offset:], s)
    for g in {id(g): g for s in b.storages if s.group is not None for g in (s.group[0],)}.values():
        whole = g.whole.array
        stacked = whole.reshape((len(g.members),) + g.members[0].shape)
        for k, m in enumerate(g.members):
            m.array = stacked[k]
    return dropped, total + size


def pack(sizes: list[int], firsts: list[int], lasts: list[int]) -> tuple[list[int], int]:
    """Offsets in one arena for blocks of memory used from ``firsts[i]`` to ``lasts[i]`` (inclusive),
    so that no two blocks in use at the same time overlap; returns (offsets, arena size).

    Greedy by size, as TensorFlow Lite plans its arena: largest first, each at the lowest offset
    that clears every block already placed whose lifetime meets its own. Offsets are multiples
    of 4096 (a page): every array starts on a page boundary.
    """
    xp = backend.xp_for("cpu")
    n = len(sizes)
    size = (xp.asarray(sizes, dtype=xp.int64) + _PAGE - 1) // _PAGE * _PAGE
    first, last = xp.asarray(firsts, dtype=xp.int64), xp.asarray(lasts, dtype=xp.int64)
    order = sorted(range(n), key=lambda i: (-int(size[i]), firsts[i]))
    lo = xp.zeros(n, xp.int64)  # the offset of each placed block (in the order placed)
    hi, f_placed, l_placed = xp.zeros(n, xp.int64), xp.zeros(n, xp.int64), xp.zeros(n, xp.int64)
    offsets = [0] * n
    for k, i in enumerate(order):
        meet = (f_placed[:k] <= last[i]) & (l_placed[:k] >= first[i])
        offset = 0
        if meet.any():
            starts, ends = lo[:k][meet], hi[:k][meet]
            by = xp.argsort(starts, kind="stable")
            starts, reach = starts[by], xp.maximum.accumulate(ends[by])
            gaps = starts - xp.concatenate([[0], reach[:-1]])  # free space before each placed block
            fits = xp.nonzero(gaps >= size[i])[0]
            offset = int(xp.concatenate([[0], reach])[fits[0]]) if fits.size else int(reach[-1])
        offsets[i] = offset
        lo[k], hi[k], f_placed[k], l_placed[k] = offset, offset + size[i], first[i], last[i]
    return offsets, int(hi.max()) if n else 0


_PAGE = 4096


def _nbytes(s: Storage) -> int:
    n = backend.to_dtype(s.dtype).itemsize
    for d in s.shape:
        n *= d
    return n


def _view(block: Any, s: Storage) -> Any:
    """The first bytes of a block as an array of the storage's shape, dtype and axis order."""
    order = _order(s.shape, s.strides)
    permuted = tuple(s.shape[i] for i in order)
    inverse = tuple(sorted(range(len(order)), key=lambda k: order[k]))
    return block[:_nbytes(s)].view(s.dtype).reshape(permuted).transpose(inverse)


# ---------------------------------------------------------------- binding

class Bound:
    """A program bound to memory: ``code`` is a list of ``(fn, args, kwargs)`` ready to call;
    ``slots`` are the argument positions refilled on every call from the leaf tensors."""

    def __init__(self) -> None:
        self.code: list[list] = []
        self.labels: list[str] = []  # what each entry of ``code`` does (for profiles)
        self.slots: list[tuple[list | dict, Any, Any]] = []  # (container, key, rebuild())


class Binder:
    """Turns Vals into arrays. Leaf storages change on every call (``leaf_arrays``)."""

    def __init__(self, leaf_arrays: list) -> None:
        self.leaf_arrays = leaf_arrays  # filled per call, by leaf index
        self.inserts: list[tuple[int, list]] = []

    def dynamic(self, x: Any) -> bool:
        if isinstance(x, Val):
            return x.root.kind == "leaf" or any(self.dynamic(a) for a in x.args)
        if isinstance(x, (tuple, list)):
            return any(self.dynamic(v) for v in x)
        if isinstance(x, dict):
            return any(self.dynamic(v) for v in x.values())
        return False

    def static(self, x: Any) -> Any:
        """Resolve ``x`` once, at binding (no leaf inside)."""
        if isinstance(x, Val):
            if x.array is None:
                x.array = self._view_or_storage(x)
            return x.array
        if isinstance(x, (tuple, list)):
            return type(x)(self.static(v) for v in x)
        if isinstance(x, dict):
            return {k: self.static(v) for k, v in x.items()}
        return x

    def _view_or_storage(self, v: Val) -> Any:
        if v.storage is not None:
            s = v.storage
            return s.array
        base = self.static(v.base)
        arr = v.fn(base, *self.static(v.args))
        if arr.size and not backend.shares_memory(arr, base):
            # NumPy copied (a reshape it could not view): copy again on every call, where it was made
            buf = backend.aligned_empty(arr.shape, arr.dtype, _order(arr.shape, arr.strides))
            fn, args = v.fn, self.static(v.args)
            self.inserts.append((v.pos, [_copy_view, [buf, fn, base, args], None]))
            return buf
        return arr

    def per_call(self, x: Any, cache: dict) -> Any:
        """Resolve ``x`` with this call's leaf arrays."""
        if isinstance(x, Val):
            key = id(x)
            if key not in cache:
                if x.storage is not None:
                    cache[key] = self.leaf_arrays[x.storage.index] if x.storage.kind == "leaf" else self.static(x)
                elif not self.dynamic(x):
                    cache[key] = self.static(x)
                else:
                    cache[key] = x.fn(self.per_call(x.base, cache), *self.per_call(x.args, cache))
            return cache[key]
        if isinstance(x, (tuple, list)):
            return type(x)(self.per_call(v, cache) for v in x)
        if isinstance(x, dict):
            return {k: self.per_call(v, cache) for k, v in x.items()}
        return x

    def bind(self, instrs: list[Instr], dropped: set[int]) -> Bound:
        out = Bound()
        kept_before = []  # per program position: how many instructions are kept before it
        for ins in instrs:
            kept_before.append(len(out.code))
            if id(ins) in dropped:
                continue
            fn = resolve_fn(ins.fn)
            args = list(ins.args)
            kwargs = dict(ins.kwargs) if ins.kwargs else None
            for container in (args, kwargs) if kwargs else (args,):
                keys = range(len(container)) if isinstance(container, list) else list(container)
                for k in keys:
                    x = container[k]
                    if self.dynamic(x):
                        container[k] = None
                        out.slots.append((container, k, x))
                    else:
                        container[k] = self.static(x)
            out.code.append([fn, args, kwargs])
            out.labels.append(ins.label)
        kept_before.append(len(out.code))
        for pos, entry in sorted(self.inserts, key=lambda e: -e[0]):  # copies NumPy made instead of views
            at = kept_before[min(pos, len(kept_before) - 1)]
            out.code.insert(at, entry)
            out.labels.insert(at, "copy (a view NumPy could not make)")
        return out


def _copy_view(buf: Any, fn: Any, base: Any, args: tuple) -> None:
    backend.copy_into(buf, fn(base, *args))


def resolve_fn(fn: Any) -> Any:
    """Instruction functions are callables, or names of the CPU array module's (``"add"``, ``"add.reduce"``)."""
    if not isinstance(fn, str):
        return fn
    obj: Any = backend.xp_for("cpu")
    for part in fn.split("."):
        obj = getattr(obj, part)
    return obj
