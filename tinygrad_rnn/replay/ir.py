"""The replay program before it is bound to memory: storages, values, instructions.

A :class:`Storage` is a block of memory the program reads or writes: a buffer it owns
(allocated once, reused between values whose lifetimes do not overlap), an argument's
input buffer, a leaf tensor's array (read from the Tensor on every call), or a constant.
A :class:`Val` is an array the program computes with: a whole storage, or a view of another
Val (a reshape, a transpose, a slice), made once when the program is bound. An
:class:`Instr` is one array call, ``fn(*args, **kwargs)``, whose arguments may hold Vals.
"""

from __future__ import annotations

from typing import Any


class Storage:
    """A block of memory: kind "buf" (the program's), "input", "leaf" or "const"."""

    __slots__ = ("kind", "shape", "dtype", "strides", "index", "persistent", "group", "array", "first", "last",
                 "writes")

    def __init__(self, kind: str, shape: tuple, dtype: Any, strides: tuple | None = None, index: Any = None) -> None:
        self.kind, self.shape, self.dtype, self.strides, self.index = kind, tuple(shape), dtype, strides, index
        self.persistent = False  # kept between calls (a leaf's gradient): never shared with another value
        self.group: tuple | None = None  # (Group, position): placed inside a bigger buffer
        self.array: Any = None
        self.first = self.last = -1
        self.writes: list[int] = []

    def __repr__(self) -> str:
        return f"<{self.kind} {self.shape} {self.dtype}>"


class Val:
    """An array of the program: a whole storage, or ``fn(base, *args)`` (a view) of another Val."""

    __slots__ = ("storage", "base", "fn", "args", "shape", "dtype", "dep", "array", "pos")

    def __init__(self, shape: tuple, dtype: Any, storage: Storage | None = None, base: Val | None = None,
                 fn: Any = None, args: tuple = (), dep: str = "data", pos: int = 0) -> None:
        self.shape, self.dtype = tuple(shape), dtype
        self.storage, self.base, self.fn, self.args = storage, base, fn, args
        self.dep = dep  # "arg": computed from the arguments and constants only; "data": anything else
        self.array: Any = None
        self.pos = pos  # where in the program the value comes to exist

    @property
    def root(self) -> Storage:
        v = self
        while v.storage is None:
            v = v.base
        return v.storage

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<Val {self.shape} {self.dtype} {'view' if self.storage is None else self.storage.kind}>"


class Instr:
    """``fn(*args, **kwargs)``: Vals in ``args``/``kwargs`` (also inside tuples and lists) are read;
    ``writes`` lists the Vals the call writes into (in place, or as its ``out``)."""

    __slots__ = ("fn", "args", "kwargs", "writes", "label")

    def __init__(self, fn: Any, args: tuple, kwargs: dict | None, writes: tuple, label: str = "") -> None:
        self.fn, self.args, self.kwargs, self.writes, self.label = fn, args, kwargs, writes, label

    def vals(self) -> list[Val]:
        """Every Val this instruction touches."""
        found: list[Val] = []
        _collect(self.args, found)
        _collect(self.kwargs, found)
        _collect(self.writes, found)
        return found


def _collect(x: Any, found: list) -> None:
    if isinstance(x, Val):
        found.append(x)
        _collect(x.args, found)
        if x.base is not None:
            _collect(x.base, found)
    elif isinstance(x, (tuple, list)):
        for v in x:
            _collect(v, found)
    elif isinstance(x, dict):
        for v in x.values():
            _collect(v, found)


class Group:
    """Storages placed one after another in one buffer of shape ``(n, *shape)``: the inputs of a
    ``stack`` (which then costs nothing) or the factors of a weight gradient's product (whose
    ``concatenate`` then costs nothing). ``instr`` is the copy made unnecessary."""

    __slots__ = ("members", "whole", "instr", "axis_rows")

    def __init__(self, members: list[Storage], whole: Storage, instr: Instr) -> None:
        self.members, self.whole, self.instr = members, whole, instr


class Builder:
    """Collects the instructions of a program, in order."""

    def __init__(self) -> None:
        self.instrs: list[Instr] = []
        self.groups: list[Group] = []
        self.storages: list[Storage] = []

    # -- values
    def storage(self, kind: str, shape: tuple, dtype: Any, strides: tuple | None = None, index: Any = None) -> Storage:
        s = Storage(kind, shape, dtype, strides, index)
        self.storages.append(s)
        return s

    def new(self, shape: tuple, dtype: Any, strides: tuple | None = None, dep: str = "data") -> Val:
        """A value in a fresh buffer of the program (layout of ``strides``' order; row-major if None)."""
        return Val(shape, dtype, self.storage("buf", shape, dtype, strides), dep=dep, pos=len(self.instrs))

    def view(self, base: Val, fn: Any, *args: Any, shape: tuple, dtype: Any = None) -> Val:
        """``fn(base, *args)``, a view made once at binding (a copy there if NumPy cannot view)."""
        return Val(shape, base.dtype if dtype is None else dtype, base=base, fn=fn, args=args, dep=base.dep,
                   pos=len(self.instrs))

    # -- instructions
    def emit(self, fn: Any, *args: Any, writes: tuple = (), kwargs: dict | None = None, label: str = "") -> Instr:
        ins = Instr(fn, args, kwargs, tuple(writes), label)
        self.instrs.append(ins)
        return ins

    def group(self, members: list[Storage], whole: Storage, instr: Instr) -> None:
        self.groups.append(Group(members, whole, instr))
