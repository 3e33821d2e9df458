"""Recording one call of a function, for replay: the trace and the recorder.

While a :class:`Recorder` is active, four things are followed:

* every ``Function.apply`` (recorded on the tape or not): the op, where each input came from,
  its attributes, its output's layout and, for recorded nodes, its parents;
* the NumPy work done *between* ops on the arguments, on random draws and on op outputs
  (``one_hot`` of the ids, a loss's target indices, a dropout mask): those arrays are
  :class:`TracedArray` views, whose ufuncs, views and copies are written down as raw calls;
* values read to Python (``float(x)``, ``x.item()``, ``bool(x)``, ``Tensor.numpy()``): on
  arguments they become guards checked on every replay; on computed values they make the
  call impossible to replay (the Python code around them may branch on them);
* the backward pass (its root and options) and the form of every gradient each backward
  rule returns (dense, sparse, outer product), which the replay's backward must reproduce.

Anything the recorder cannot follow marks the trace as failed with a reason; the call itself
still runs normally and returns its normal results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import backend
from ..autograd import Function
from ..backend import Generator
from ..nn.module import Module
from ..tensor import Tensor
from .traced import TracedArray, _plain, _shares, ndarray

# ---------------------------------------------------------------- the trace

@dataclass
class Apply:
    """One ``Function.apply``: inputs as references (see :meth:`Recorder.ref`), attributes, output."""

    cls: type
    inputs: list
    attrs: dict
    out: int  # the output's value id
    parents: list | None  # per input: ("n", apply index) | ("p", param index) | None; None if not recorded
    seq: int
    alias: int | None  # index of the input whose memory the output shares (a view or the input itself)
    forms: list | None = None  # what its backward rule returned, per input (filled during backward)


@dataclass
class Trace:
    """Everything one call did, in order: events, value layouts, and the objects it referred to."""

    events: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # value id -> (shape, dtype, strides)
    params: list = field(default_factory=list)  # leaf Tensors (by identity)
    leaf_values: list = field(default_factory=list)  # copies of the leaves that do not require grad
    consts: list = field(default_factory=list)  # arrays copied at capture
    gens: list = field(default_factory=list)  # Generators drawn from
    modules: list = field(default_factory=list)  # (module, training) of every module called
    applies: list = field(default_factory=list)
    args: list = field(default_factory=list)  # value ids of the argument arrays, in order
    outputs: Any = None  # the returned structure, with references in place of arrays
    failed: str | None = None


class Recorder:
    """Builds a :class:`Trace` while the function runs (see the module docstring)."""

    def __init__(self) -> None:
        self.trace = Trace()
        self.depth = 0  # > 0 inside an op's forward: its own array work is not recorded
        self.in_backward = False
        self._param_ids: dict[int, int] = {}
        self._pdata_ids: dict[int, int] = {}
        self._gen_ids: dict[int, int] = {}
        self._node_ids: dict[int, int] = {}
        self._nodes: list = []  # keeps recorded nodes alive, so their ids stay unique
        self._module_ids: set[int] = set()

    # -- references
    def fail(self, reason: str) -> None:
        if self.trace.failed is None:
            self.trace.failed = reason

    def new_value(self, plain: Any) -> TracedArray:
        """Wrap ``plain`` as a traced array with the next value id."""
        if isinstance(plain, backend.SCALAR_TYPES):
            plain = backend.as_ndarray(plain)
        if type(plain) is not ndarray:
            self.fail(f"an array of type {type(plain).__name__} appeared (only NumPy arrays are followed)")
            return plain
        t = ndarray.view(plain, TracedArray)
        t._vid, t._rec, t._plain = len(self.trace.meta), self, plain
        self.trace.meta[t._vid] = (plain.shape, plain.dtype, plain.strides)
        return t

    def leaf(self, t: Tensor) -> tuple:
        """A leaf tensor (a parameter, or a constant input): referred to by the Tensor object. Its
        array is read on every replay, or baked in if another call used another object."""
        idx = self._param_ids.get(id(t))
        if idx is None:
            idx = self._param_ids[id(t)] = len(self.trace.params)
            self.trace.params.append(t)
            self.trace.leaf_values.append(None if t.requires_grad else backend.owned_copy(t.data))
            self._pdata_ids[id(t.data)] = idx
        return ("p", idx)

    def ref(self, x: Any) -> Any:
        """How the trace refers to ``x``: ("v", id) a traced value, ("pd", i) a leaf's array,
        ("c", i) a constant array (copied), ("t", [...]) a tuple or list, ("l", x) anything else."""
        if type(x) is TracedArray:
            if x._vid is None or x._rec is not self:
                self.fail("an array made by a NumPy routine that capture does not follow was used "
                          f"(shape {x.shape}); use the package's ops, or plain ufuncs and indexing")
                return ("c", self._const(_plain(x)))
            return ("v", x._vid)
        if isinstance(x, ndarray):
            idx = self._pdata_ids.get(id(x))
            return ("pd", idx) if idx is not None else ("c", self._const(x))
        if isinstance(x, (tuple, list)):
            return ("t", type(x), [self.ref(v) for v in x])
        if isinstance(x, backend.ARRAY_TYPES):  # a CuPy array
            self.fail("capture follows NumPy arrays only (replay runs on the CPU)")
        return ("l", x)

    def _const(self, a: Any) -> int:
        self.trace.consts.append(backend.owned_copy(a) if a.size else a.copy())
        return len(self.trace.consts) - 1

    # -- events
    def raw(self, func: Any, inputs: tuple, kwargs: dict, result: Any, out: Any = None) -> Any:
        """A NumPy call on traced arrays: record it and return its traced result (or ``out``)."""
        refs = [self.ref(x) for x in inputs]
        kw = {k: self.ref(v) for k, v in kwargs.items() if k != "out"}
        if out is None and "out" in kwargs:
            out = kwargs["out"]
        if out is not None:  # written in place: the destination must be a value of this trace
            targets = out if isinstance(out, tuple) else (out,)
            dest = [self.ref(o) for o in targets]
            if any(d[0] != "v" for d in dest):
                self.fail("a computation writes into an array that was not made inside the function")
            self.trace.events.append(("raw", func, refs, kw, [d[1] for d in dest if d[0] == "v"], True))
            return out if not isinstance(out, tuple) or len(out) > 1 else out[0]
        if result is None:  # in place on the first input (ufunc.at)
            dest = refs[0]
            self.trace.events.append(("raw", func, refs, kw, [dest[1]] if dest[0] == "v" else [], True))
            return None
        many = isinstance(result, tuple)
        wrapped = tuple(self.new_value(r) for r in (result if many else (result,)))
        views = [_shares(w, inputs) for w in wrapped]
        self.trace.events.append(("raw", func, refs, kw, [w._vid for w in wrapped], False, views))
        return wrapped if many else wrapped[0]

    def host_read(self, a: TracedArray, kind: str, value: Any, args: tuple) -> None:
        if a._vid is None:
            self.fail("a value of unknown origin was read to Python")
            return
        self.trace.events.append(("read", a._vid, kind, args, value))

    def draw(self, gen: Generator, method: str, args: tuple, kwargs: dict, out: Any) -> Any:
        if gen.device != "cpu":
            self.fail("random draws on the GPU are not followed by capture")
            return out
        idx = self._gen_ids.setdefault(id(gen), len(self.trace.gens))
        if idx == len(self.trace.gens):
            self.trace.gens.append(gen)
        t = self.new_value(out)
        self.trace.events.append(("draw", idx, method, self.ref(args), self.ref(kwargs), t._vid))
        return t

    def module_called(self, m: Module) -> None:
        if id(m) not in self._module_ids:
            self._module_ids.add(id(m))
            self.trace.modules.append((m, m.training))

    def node_ref(self, p: Any) -> Any:
        if p is None:
            return None
        if isinstance(p, Function):
            idx = self._node_ids.get(id(p))
            return ("n", idx) if idx is not None else ("foreign",)
        return self.leaf(p)
