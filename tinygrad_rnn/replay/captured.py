"""``capture(fn)``: record a function's work, check it is static, compile it, replay it.

Per argument signature (the structure of the arguments, and every array's shape, dtype,
layout and device), a :class:`Captured` function goes through:

1. recording: the call runs normally while a :class:`~.trace.Recorder` writes its trace;
2. after two recorded calls whose traces agree (same work, same constants, same Python
   numbers), the trace is compiled into a :class:`~.program.Program`;
3. verification: the next call runs both the program and the normal path, and the program is
   kept only if its outputs, every gradient and the random generators' states agree to the bit;
4. replay, from then on.

Whatever cannot be replayed runs the normal path, with the reason counted in ``reasons``
(and a :class:`ReplayWarning` the first time a signature is given up).
"""

from __future__ import annotations

import collections
import functools
import warnings
from collections.abc import Callable
from typing import Any

from .. import autograd, backend
from ..tensor import Tensor
from .compile import GuardFailedError, Marker, compile_trace
from .program import Program
from .hooks import recording
from .trace import Recorder, Trace
from .traced import TracedArray, _plain

ndarray = backend.CPU_ARRAY
_MISMATCHES = 3  # recorded calls that disagree with the one before, before a signature is given up


class ReplayWarning(UserWarning):
    """A captured function fell back to the normal path for good (the message says why)."""


class _Entry:
    """The state of one argument signature: recording, replaying, or given up."""

    def __init__(self) -> None:
        self.last: Trace | None = None
        self.program: Program | None = None
        self.disabled: str | None = None
        self.mismatches = 0


class Captured:
    """A function captured for replay; call it like the function. See :func:`capture`.

    Attributes:
        enabled: set False to always run the normal path.
        on_backward: see the property.
        calls: counts of ``"replayed"``, ``"recorded"``, ``"verified"`` and ``"normal"`` calls.
        reasons: why calls ran the normal path, with counts.
    """

    def __init__(self, fn: Callable[..., Any], verify: bool = True, max_signatures: int = 8) -> None:
        self.fn, self.verify, self.max_signatures = fn, verify, max_signatures
        self.enabled = True
        self.calls: collections.Counter[str] = collections.Counter()
        self.reasons: collections.Counter[str] = collections.Counter()
        self._entries: dict[Any, _Entry] = {}
        self._warned: set[str] = set()
        self._marker = Marker()
        functools.update_wrapper(self, fn)

    @property
    def on_backward(self) -> Callable[[], Any] | None:
        """A function a replayed call runs where the function's backward pass starts (a timer's
        mark, say); the normal path runs only ``fn`` itself."""
        return self._marker.fn

    @on_backward.setter
    def on_backward(self, fn: Callable[[], Any] | None) -> None:
        self._marker.fn = fn

    def reset(self) -> None:
        """Forget every program and recording (for example after changing what ``fn`` reads)."""
        self._entries.clear()

    @property
    def programs(self) -> list[Program]:
        return [e.program for e in self._entries.values() if e.program is not None]

    def explain(self) -> str:
        """One line per count: how the calls ran, and why the normal path ran when it did."""
        lines = [f"{k}: {n}" for k, n in sorted(self.calls.items())]
        lines += [f"normal path because {r}: {n}" for r, n in self.reasons.most_common()]
        return "\n".join(lines)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.enabled:
            return self._normal("capture is turned off (enabled=False)", args, kwargs)
        leaves: list = []
        template = _flatten((args, kwargs), leaves)
        key, reason = _signature(template, leaves)
        if reason:
            self._warn(reason)
            return self._normal(reason, args, kwargs)
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self.max_signatures:
                return self._normal(f"more than {self.max_signatures} different argument signatures", args, kwargs)
            entry = self._entries[key] = _Entry()
        if entry.disabled:
            return self._normal(entry.disabled, args, kwargs)
        if entry.program is not None:
            why = entry.program.check()
            if why is not None:  # capture again, for the new state
                self._entries[key] = _Entry()
                return self._normal(why, args, kwargs)
            if not entry.program.verified and self.verify:
                return self._verify(entry, args, kwargs, leaves)
            return self._replay(entry, args, kwargs, leaves)
        return self._record(entry, args, kwargs, template, leaves)

    # -- the three ways to run a call
    def _normal(self, reason: str, args: tuple, kwargs: dict) -> Any:
        self.calls["normal"] += 1
        self.reasons[reason] += 1
        return self.fn(*args, **kwargs)

    def _replay(self, entry: _Entry, args: tuple, kwargs: dict, leaves: list) -> Any:
        try:
            outputs, _ = entry.program.run([_array(x) for x in leaves])
        except GuardFailedError as exc:
            return self._normal(str(exc), args, kwargs)
        self.calls["replayed"] += 1
        return outputs

    def _record(self, entry: _Entry, args: tuple, kwargs: dict, template: Any, leaves: list) -> Any:
        trace, result = _record(self.fn, template, leaves)
        self.calls["recorded"] += 1
        if trace.failed:
            self._give_up(entry, trace.failed)
        elif entry.last is None:
            entry.last = trace
        else:
            diff = _difference(entry.last, trace)
            if diff is None:
                self._compile(entry, entry.last, trace)
            else:
                entry.last = trace
                entry.mismatches += 1
                if entry.mismatches >= _MISMATCHES:
                    self._give_up(entry, f"the function does different work from call to call ({diff})")
        return result

    def _compile(self, entry: _Entry, first: Trace, trace: Trace) -> None:
        by_reference = [a is b for a, b in zip(first.params, trace.params)]
        compiled = compile_trace(trace, by_reference, self._marker)
        if compiled.failed:
            self._give_up(entry, compiled.failed)
            return
        entry.program = Program(compiled, trace.params, by_reference, trace.gens, trace.modules)
        entry.last = None

    def _verify(self, entry: _Entry, args: tuple, kwargs: dict, leaves: list) -> Any:
        """Run the program and the normal path on the same call; keep the program if they agree."""
        program = entry.program
        states = [g.get_state() for g in program.gens]
        before = [(t, None if t.grad is None else backend.owned_copy(t.grad.data)) for t, _ in program.grads]
        try:
            outputs, grads = program.run([_array(x) for x in leaves], assign=False)
        except GuardFailedError as exc:
            return self._normal(str(exc), args, kwargs)
        replay_states = [g.get_state() for g in program.gens]
        for g, s in zip(program.gens, states):
            g.set_state(s)
        result = self.fn(*args, **kwargs)
        self.calls["verified"] += 1
        problem = _compare(outputs, result, "the returned values")
        for (t, old), (_, g) in zip(before, grads):
            expected = g if old is None else old + g
            if problem is None and (t.grad is None or not backend.same_bits(t.grad.data, expected)):
                problem = f"the gradient of a leaf of shape {tuple(t.shape)}"
        if problem is None and replay_states != [g.get_state() for g in program.gens]:
            problem = "the random generators' states"
        if problem:
            self._give_up(entry, f"replay differs from the normal path in {problem} (please report this)")
        else:
            program.verified = True
        return result

    def _give_up(self, entry: _Entry, reason: str) -> None:
        entry.disabled, entry.program, entry.last = reason, None, None
        self._warn(reason)

    def _warn(self, reason: str) -> None:
        """Say once per reason that some calls will take the normal path."""
        if reason not in self._warned:
            self._warned.add(reason)
            warnings.warn(f"{getattr(self.fn, '__name__', 'function')}: replay is off for these arguments, the "
                          f"normal path runs instead: {reason}", ReplayWarning, stacklevel=4)


def capture(fn: Callable[..., Any] | None = None, *, verify: bool = True, max_signatures: int = 8) -> Any:
    """Capture ``fn`` for replay: a tracing JIT, in the manner of tinygrad's ``TinyJit``.

    ``fn`` runs tensor ops (forward, and ``backward()`` if it trains) on its arguments and on
    leaf tensors such as a model's parameters. After two calls with the same argument shapes
    that do the same work, later calls replay the recorded work as a flat list of array calls
    into preallocated buffers: no Tensor or Function objects, no graph walk. Results are the
    normal path's to the bit (checked on the first replay with ``verify``).

    Args:
        fn: the function; arguments may be Tensors (not requiring grad), arrays, Python
            values (baked in) and tuples, lists or dicts of them.
        verify: check the first replay of each signature against the normal path.
        max_signatures: how many argument signatures get a program of their own.

    Returns:
        A :class:`Captured` callable (``capture`` also works as a decorator, with or without options).

    What replay does not do: run Python code inside ``fn`` again (print, counters, anything
    that is not an array op); see docs/replay.md for the rules and the reasons it falls back.
    """
    if fn is None:
        return lambda f: Captured(f, verify, max_signatures)
    return Captured(fn, verify, max_signatures)


# ---------------------------------------------------------------- arguments

def _flatten(obj: Any, leaves: list) -> Any:
    """The structure of ``obj`` with every Tensor and array replaced by a marker (collected in ``leaves``)."""
    if isinstance(obj, Tensor) or isinstance(obj, backend.ARRAY_TYPES):
        leaves.append(obj)
        return ("T",) if isinstance(obj, Tensor) else ("A",)
    if isinstance(obj, (tuple, list)):
        return ("seq", type(obj), tuple(_flatten(x, leaves) for x in obj))
    if type(obj) is dict:
        return ("dict", tuple((k, _flatten(v, leaves)) for k, v in obj.items()))
    try:
        hash(obj)
        return ("lit", type(obj), obj)
    except TypeError:
        return ("obj", id(obj))


def _unflatten(template: Any, leaves: list) -> Any:
    it = iter(leaves)

    def build(t: Any) -> Any:
        tag = t[0]
        if tag in ("T", "A"):
            return next(it)
        if tag == "seq":
            items = [build(x) for x in t[2]]
            return t[1](*items) if hasattr(t[1], "_fields") else t[1](items)
        if tag == "dict":
            return {k: build(v) for k, v in t[1]}
        return t[2] if tag == "lit" else None
    return build(template)


def _signature(template: Any, leaves: list) -> tuple[Any, str | None]:
    """A hashable key for the call, or a reason it cannot be replayed."""
    if autograd.STATE.anomaly:
        return None, "detect_anomaly() is on (replay does not check every op for NaN)"
    parts = []
    for x in leaves:
        a = x.data if isinstance(x, Tensor) else x
        if type(a) is not ndarray and type(a) is not TracedArray:
            return None, "an argument is not a NumPy array (replay runs on the CPU)"
        if isinstance(x, Tensor) and (x.requires_grad or x.node is not None):
            return None, ("an argument requires grad or is part of a graph: pass it detached "
                          "(leaves to train are found inside the function)")
        parts.append((isinstance(x, Tensor), a.shape, a.dtype.str, a.flags.c_contiguous, a.flags.f_contiguous))
    return (template, tuple(parts), autograd.STATE.grad_enabled), None


def _array(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


# ---------------------------------------------------------------- recording

def _record(fn: Callable[..., Any], template: Any, leaves: list) -> tuple[Trace, Any]:
    rec = Recorder()
    traced = []
    for x in leaves:
        t = rec.new_value(_array(x))
        rec.trace.args.append(t._vid)
        if isinstance(x, Tensor):
            s = Tensor.__new__(Tensor)
            s.data, s.grad, s.node, s.requires_grad = t, None, None, False
            traced.append(s)
        else:
            traced.append(t)
    args, kwargs = _unflatten(template, traced)
    with recording(rec):
        result = fn(*args, **kwargs)
    rec.trace.outputs = _output_template(rec, result)
    return rec.trace, _untrace(result)


def _output_template(rec: Recorder, x: Any) -> Any:
    if isinstance(x, Tensor):
        if x.node is not None and x.node.saved is not None:
            rec.fail("the function returns a tensor that is still part of a graph: call backward() inside it, "
                     "or return the tensor detached")
        if type(x.data) is TracedArray:
            return ("tensor", rec.ref(x.data))
        if x.node is None:
            return ("leaf", x)
        rec.fail("the function returns a tensor it did not compute")
        return ("lit", None)
    if isinstance(x, ndarray):
        return ("array", rec.ref(x))
    if isinstance(x, (tuple, list)):
        return ("seq", type(x), [_output_template(rec, v) for v in x])
    if type(x) is dict:
        return ("dict", {k: _output_template(rec, v) for k, v in x.items()})
    return ("lit", x)


def _untrace(x: Any) -> Any:
    """The call's result with plain arrays (the traced ones are only for the recorder)."""
    if isinstance(x, Tensor):
        if type(x.data) is TracedArray:
            x.data = _plain(x.data)
        return x
    if type(x) is TracedArray:
        return _plain(x)
    if isinstance(x, (tuple, list)):
        items = [_untrace(v) for v in x]
        return type(x)(*items) if hasattr(x, "_fields") else type(x)(items)
    if type(x) is dict:
        return {k: _untrace(v) for k, v in x.items()}
    return x


# ---------------------------------------------------------------- comparing two recorded calls

def _same(x: Any, y: Any) -> bool:
    """Literal equality that also tells 0.5 from np.float32(0.5) and NaN from NaN."""
    if type(x) is not type(y):
        return False
    if isinstance(x, Tensor):
        return x is y
    if isinstance(x, (tuple, list)):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, ndarray):
        return backend.same_bits(x, y)
    if isinstance(x, float) and x != x:
        return y != y
    try:
        return bool(x == y) or x is y
    except Exception:
        return x is y


def _difference(a: Trace, b: Trace) -> str | None:
    """None when two traces describe the same work; else where they first differ."""
    if len(a.events) != len(b.events) or len(a.applies) != len(b.applies):
        return f"{len(a.applies)} ops then {len(b.applies)}"
    for i, (ea, eb) in enumerate(zip(a.events, b.events)):
        if ea[0] != eb[0]:
            return f"step {i}: {ea[0]} then {eb[0]}"
        if ea[0] == "apply":
            x, y = a.applies[ea[1]], b.applies[eb[1]]
            same = (x.cls is y.cls and _same(x.inputs, y.inputs) and _same(x.attrs, y.attrs) and x.out == y.out
                    and _same(x.parents, y.parents) and x.alias == y.alias and _same(x.forms, y.forms))
            if not same:
                return f"op {x.cls.__name__} (step {i}) got other inputs, options or Python numbers"
        elif ea[0] == "read":
            if ea[1:3] != eb[1:3]:
                return f"step {i}: another value read to Python"
        elif not _same(ea, eb):
            return f"step {i} ({ea[0]}): other arguments or Python numbers"
    if a.meta != b.meta:
        return "arrays of other shapes or layouts"
    if len(a.consts) != len(b.consts) or not all(backend.same_bits(x, y) for x, y in zip(a.consts, b.consts)):
        return ("an array that is neither an argument nor computed inside the function changed between calls "
                "(pass it as an argument)")
    if len(a.params) != len(b.params):
        return "other leaf tensors"
    for ta, tb, va, vb in zip(a.params, b.params, a.leaf_values, b.leaf_values):
        if ta is tb:
            continue
        if ta.requires_grad or tb.requires_grad:
            return "a leaf tensor that requires grad is created anew on every call"
        if not backend.same_bits(va, vb):
            return "a tensor made inside the function from outside data changed between calls"
    if [id(g) for g in a.gens] != [id(g) for g in b.gens]:
        return "other random generators"
    if [(id(m), t) for m, t in a.modules] != [(id(m), t) for m, t in b.modules]:
        return "other modules, or modules in another mode"
    if a.args != b.args or not _same(a.outputs, b.outputs):
        return "other returned values"
    return None


def _compare(ours: Any, theirs: Any, what: str) -> str | None:
    if isinstance(theirs, Tensor):
        return None if isinstance(ours, Tensor) and backend.same_bits(ours.data, theirs.data) else what
    if isinstance(theirs, ndarray):
        return None if isinstance(ours, ndarray) and backend.same_bits(ours, theirs) else what
    if isinstance(theirs, (tuple, list)):
        if not isinstance(ours, (tuple, list)) or len(ours) != len(theirs):
            return what
        for x, y in zip(ours, theirs):
            problem = _compare(x, y, what)
            if problem:
                return problem
        return None
    if isinstance(theirs, dict):
        if not isinstance(ours, dict) or ours.keys() != theirs.keys():
            return what
        return next((p for k in theirs if (p := _compare(ours[k], theirs[k], what))), None)
    return None if _same(ours, theirs) else what
