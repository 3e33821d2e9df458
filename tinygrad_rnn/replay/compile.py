"""From a trace to a program: the recorded events, in order, as instructions.

Raw NumPy calls are replayed as the same calls writing into the program's buffers (views stay
views); random draws call the same generator method; values read to Python become guards;
each op runs its replay kernel (``kernels.py``); ``backward()`` becomes the compiled reverse
walk (``backward.py``). The result says which arrays are the arguments, the leaves, the
leaves' gradients and the returned values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import backend
from .backward import BackwardCompiler
from .ir import Builder, Val
from .generic import generic_forward
from .kernels import FORWARD, K, copy_call, copy_cast, where_into
from .trace import Trace

ndarray = backend.CPU_ARRAY
_xp = backend.xp_for("cpu")


class GuardFailedError(Exception):
    """A value the function read to Python differs from the one seen at capture."""


@dataclass
class Compiled:
    builder: Builder
    inputs: list  # Val per argument array
    leaves: list  # Val per leaf tensor (read from the tensor on every call), or a constant
    grads: dict  # leaf index -> Val of its gradient
    outputs: Any  # the returned structure, Vals in place of arrays
    kept: list = field(default_factory=list)  # Vals read after the last instruction
    ops: int = 0  # ops recorded on the tape per call (what the normal path would record)
    guards: int = 0
    draws_before_guard: bool = False
    failed: str | None = None


class Marker:
    """A callback the program calls where the backward pass starts (``Captured.on_backward``)."""

    __slots__ = ("fn",)

    def __init__(self) -> None:
        self.fn: Any = None


def fire(marker: Marker) -> None:
    if marker.fn is not None:
        marker.fn()


class _Compiler:
    def __init__(self, trace: Trace, by_reference: list[bool], marker: Marker) -> None:
        self.t = trace
        self.marker = marker
        self.b = Builder()
        self.vals: dict[int, Val] = {}
        self.failed: str | None = None
        self.saved: dict[int, Any] = {}
        self.draws = 0
        self.guards = 0
        self.draws_before_guard = False
        b = self.b
        self.inputs = []
        for k, vid in enumerate(trace.args):
            shape, dtype, strides = trace.meta[vid]
            v = Val(shape, dtype, b.storage("input", shape, dtype, strides, k), dep="arg")
            self.vals[vid] = v
            self.inputs.append(v)
        self.leaves = []
        for i, (t, copy) in enumerate(zip(trace.params, trace.leaf_values)):
            if by_reference[i]:
                s = b.storage("leaf", t.data.shape, t.data.dtype, t.data.strides, i)
                self.leaves.append(Val(s.shape, s.dtype, s))
            else:  # a constant made anew on every call, with the same values: baked in
                s = b.storage("const", copy.shape, copy.dtype, copy.strides)
                s.array = copy
                self.leaves.append(Val(s.shape, s.dtype, s, dep="arg"))
        self.consts = []
        for c in trace.consts:
            s = b.storage("const", c.shape, c.dtype, c.strides)
            s.array = c
            self.consts.append(Val(c.shape, c.dtype, s, dep="arg"))

    def fail(self, reason: str) -> None:
        self.failed = self.failed or reason

    # -- references
    def resolve(self, ref: Any) -> Any:
        kind = ref[0]
        if kind == "v":
            return self.vals[ref[1]]
        if kind in ("p", "pd"):
            return self.leaves[ref[1]]
        if kind == "c":
            return self.consts[ref[1]]
        if kind == "t":
            return ref[1](self.resolve(r) for r in ref[2])
        return ref[1]

    @staticmethod
    def dep(*xs: Any) -> str:
        for x in xs:
            if isinstance(x, Val) and x.dep != "arg":
                return "data"
            if isinstance(x, (tuple, list)) and _Compiler.dep(*x) == "data":
                return "data"
            if isinstance(x, dict) and _Compiler.dep(*x.values()) == "data":
                return "data"
        return "arg"

    def new(self, vid: int, dep: str) -> Val:
        shape, dtype, strides = self.t.meta[vid]
        v = self.b.new(shape, dtype, strides, dep=dep)
        self.vals[vid] = v
        return v

    # -- events
    def run(self) -> Compiled:
        for event in self.t.events:
            getattr(self, "on_" + event[0])(*event[1:])
            if self.failed:
                break
        outputs = self._outputs(self.t.outputs)
        kept = [v for v in _vals_in(outputs)]
        ops = sum(1 for a in self.t.applies if a.parents is not None)
        return Compiled(self.b, self.inputs, self.leaves, getattr(self, "grads", {}), outputs, kept, ops,
                        self.guards, self.draws_before_guard, self.failed)

    def on_apply(self, idx: int) -> None:
        a = self.t.applies[idx]
        ins = [self.resolve(r) for r in a.inputs]
        attrs = {k: self.resolve(v) for k, v in a.attrs.items()}
        k = K(self.b, a, self.t.meta[a.out])
        fwd = FORWARD.get(a.cls) if a.cls in FORWARD else generic_forward
        out, saved = fwd(k, ins, attrs)
        out.dep = self.dep(*ins, *attrs.values())
        self.vals[a.out] = out
        self.saved[idx] = saved

    def on_raw(self, func: Any, refs: list, kw: dict, outs: list, inplace: bool, views: list | None = None) -> None:
        ins = [self.resolve(r) for r in refs]
        kwargs = {k: self.resolve(v) for k, v in kw.items()}
        dep = self.dep(*ins, *kwargs.values())
        if inplace:
            targets = [self.vals[v] for v in outs]
            _emit_inplace(self.b, func, ins, kwargs, targets)
            for t in targets:
                if dep == "data":
                    t.dep = "data"
            return
        results = []
        for i, vid in enumerate(outs):
            src = views[i] if views else None
            if src is not None:
                shape, dtype, _ = self.t.meta[vid]
                fn = _RawView(func, src, i, len(outs))
                view = self.b.view(ins[src], fn, tuple(ins), kwargs, shape=shape, dtype=dtype)
                view.dep = dep
                self.vals[vid] = view
            else:
                results.append(self.new(vid, dep))
        if results:
            reason = _emit_raw(self.b, func, ins, kwargs, results)
            if reason:
                self.fail(reason)

    def on_draw(self, gen_idx: int, method: str, args: Any, kwargs: Any, vid: int) -> None:
        gen = self.t.gens[gen_idx]
        out = self.new(vid, "data")
        self.b.emit(draw_into, out, getattr(gen, method), self.resolve(args), self.resolve(kwargs), writes=(out,),
                    label="draw")
        self.draws += 1

    def on_read(self, vid: int, kind: str, args: tuple, value: Any) -> None:
        v = self.vals[vid]
        if v.dep != "arg":
            self.fail(f"the function reads a computed value to Python ({kind}() of an array of shape {v.shape}); "
                      "the code around it may depend on it, which replay cannot follow: move it out of the "
                      "captured function")
            return
        self.b.emit(check_guard, v, kind, args, value, label="guard")
        self.guards += 1
        self.draws_before_guard = self.draws_before_guard or self.draws > 0

    def on_backward(self, root_refs: list, grad_refs: list, retain: bool) -> None:
        roots = []
        for r, g in zip(root_refs, grad_refs):
            idx = next((i for i, a in enumerate(self.t.applies) if a.out == r[1]), None) if r[0] == "v" else None
            if idx is None or self.t.applies[idx].parents is None:
                self.fail("backward() from a tensor that is not the output of a recorded op")
                return
            roots.append((idx, self.resolve(g)))
        self.b.emit(fire, self.marker, label="backward starts")
        bc = BackwardCompiler(self.b, self.t.applies, self.saved, self.t.meta, self.leaves)
        self.grads = bc.run(roots)
        if bc.failed:
            self.fail(bc.failed)

    def _outputs(self, template: Any) -> Any:
        if not isinstance(template, tuple) or not template:
            return template
        tag = template[0]
        if tag == "tensor":
            return ("tensor", self.resolve(template[1]))
        if tag == "array":
            return ("array", self.resolve(template[1]))
        if tag == "seq":
            return ("seq", template[1], [self._outputs(x) for x in template[2]])
        if tag == "dict":
            return ("dict", {k: self._outputs(x) for k, x in template[1].items()})
        return template


def _vals_in(x: Any) -> list[Val]:
    if isinstance(x, Val):
        return [x]
    if isinstance(x, (tuple, list)):
        return [v for item in x for v in _vals_in(item)]
    if isinstance(x, dict):
        return [v for item in x.values() for v in _vals_in(item)]
    return []


def compile_trace(trace: Trace, by_reference: list[bool], marker: Marker | None = None) -> Compiled:
    """``by_reference[i]``: read leaf i from its Tensor on every call (else bake its value in);
    ``marker`` is called where the backward pass starts."""
    return _Compiler(trace, by_reference, marker or Marker()).run()


# ---------------------------------------------------------------- raw NumPy calls

class _RawView:
    """A raw call that made a view (a reshape, a transpose, an index): made again from the base,
    the call's other arguments coming in resolved as ``(ins, kwargs)``."""

    def __init__(self, func: Any, src: int, out_index: int, n_out: int) -> None:
        self.func, self.src, self.out_index, self.n_out = func, src, out_index, n_out

    def __call__(self, base: Any, ins: tuple, kwargs: dict) -> Any:
        ins = list(ins)
        ins[self.src] = base
        result = _call(self.func, ins, kwargs)
        return result[self.out_index] if self.n_out > 1 else result


def _call(func: Any, ins: list, kwargs: dict) -> Any:
    if isinstance(func, tuple):
        ufunc, method = func
        return getattr(ufunc, method)(*ins, **kwargs)
    if isinstance(func, str):
        return getattr(ndarray, func)(*ins, **kwargs)
    return func(*ins, **kwargs)


_UFUNC_OUT = {"__call__", "reduce", "accumulate", "reduceat", "outer"}
_VIEWISH = {"__getitem__", "reshape", "transpose", "ravel", "squeeze", "swapaxes"}


def _emit_raw(b: Builder, func: Any, ins: list, kwargs: dict, outs: list[Val]) -> str | None:
    """A raw call that made new arrays: the same call, writing into the program's buffers."""
    out = outs[0]
    if isinstance(func, tuple):
        ufunc, method = func
        if method not in _UFUNC_OUT:
            return f"numpy ufunc method {method} is not replayed"
        kw = dict(kwargs)
        kw["out"] = tuple(outs) if method == "__call__" else out
        b.emit(getattr(ufunc, method), *ins, kwargs=kw, writes=tuple(outs), label=f"raw {ufunc.__name__}")
        return None
    if func in _VIEWISH:  # NumPy copied here: copy again
        b.emit(copy_call, out, getattr(ndarray, func), ins[0], tuple(ins[1:]), writes=(out,), label=f"raw {func}")
    elif func == "astype":
        b.emit(copy_cast, out, ins[0], writes=(out,), label="raw astype")
    elif func == "copy" or func is _xp.ravel:
        b.emit(copy_cast, out, ins[0], writes=(out,), label="raw copy")
    elif func is _xp.where:
        b.emit(where_into, out, *ins, writes=(out,), label="raw where")
    elif func in (_xp.concatenate, _xp.stack):
        b.emit(func, *ins, kwargs={**kwargs, "out": out}, writes=(out,), label=f"raw {func.__name__}")
    elif func in (_xp.zeros_like, _xp.ones_like, _xp.full_like):
        value = 0 if func is _xp.zeros_like else 1 if func is _xp.ones_like else ins[1]
        b.emit("copyto", out, value, writes=(out,), label=f"raw {func.__name__}")
    elif func is _xp.empty_like:
        pass  # its contents are written by what follows
    elif func in (_xp.broadcast_to, _xp.reshape, _xp.transpose, _xp.expand_dims, _xp.squeeze):
        b.emit(copy_call, out, func, ins[0], tuple(ins[1:]), writes=(out,), label=f"raw {func.__name__}")
    else:
        return f"the NumPy call {getattr(func, '__name__', func)} is not replayed"
    return None


def _emit_inplace(b: Builder, func: Any, ins: list, kwargs: dict, targets: list[Val]) -> None:
    """A raw call that wrote into existing arrays (``out=``, ``x[i] = v``, ``copyto``, ``ufunc.at``)."""
    if isinstance(func, tuple):
        ufunc, method = func
        kw = dict(kwargs)
        if method != "at":
            kw["out"] = tuple(targets) if method == "__call__" else targets[0]
        b.emit(getattr(ufunc, method), *ins, kwargs=kw, writes=tuple(targets), label=f"raw {ufunc.__name__}")
    elif isinstance(func, str):
        b.emit(getattr(ndarray, func), *ins, kwargs=kwargs or None, writes=tuple(targets), label=f"raw {func}")
    else:
        kw = dict(kwargs)
        if func is not _xp.copyto:
            kw["out"] = targets[0]
        b.emit(func, *ins, kwargs=kw or None, writes=tuple(targets), label=f"raw {func.__name__}")


# ---------------------------------------------------------------- draws and guards

def draw_into(out: Any, method: Any, args: tuple, kwargs: dict) -> None:
    """Draw from the same generator, with the same arguments: the same random stream as the normal path."""
    backend.copy_into(out, method(*args, **kwargs))


def check_guard(a: Any, kind: str, args: tuple, value: Any) -> None:
    converters = {"bool": ndarray.__bool__, "int": ndarray.__int__, "float": ndarray.__float__,
                  "index": ndarray.__index__, "tolist": ndarray.tolist, "repr": ndarray.__repr__,
                  "str": ndarray.__str__, "numpy": lambda x: x}
    now = ndarray.item(a, *args) if kind == "item" else converters[kind](a)
    same = backend.same_bits(now, value) if isinstance(value, ndarray) else (now == value or now != now and
                                                                               value != value)
    if not same:
        raise GuardFailedError(f"a value the function reads to Python changed ({kind}() gave {_short(value)} "
                               f"at capture, {_short(now)} now)")


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."
