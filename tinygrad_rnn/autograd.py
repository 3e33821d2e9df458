"""The tape and the reverse-mode engine.

Every op is a :class:`Function` subclass with ``forward(ctx, *arrays, **attrs)`` and
``backward(ctx, grad)``. Running an op while gradients are recorded creates a
*node*: the Function instance itself, which remembers its parents (the nodes
or leaves its inputs came from), the arrays it saved for backward and a
sequence number. Sequence numbers only grow, so they
order the nodes as they were recorded: that order is the tape.

``backward`` collects the nodes reachable from the outputs with an explicit stack
(never recursion: an unrolled LSTM is tens of thousands of nodes deep), visits
them in decreasing sequence number (every consumer of a value comes before its
producer), sums the gradients flowing into each node in a dict and pops each sum
as soon as the node consumes it, then frees the node's saved arrays unless
``retain_graph=True``.

Backward rules are written with operators and methods that both raw arrays and
Tensors support. Normally the engine runs them on raw arrays; with
``create_graph=True`` it hands them Tensors, so the backward pass is itself
recorded and can be differentiated again (one rule, two uses).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from . import backend
from .errors import AnomalyError, BackwardError, ShapeError, TinygradRNNError
from .gradsum import OuterGrad, SparseGrad, add_grads, add_grad_tensors

if TYPE_CHECKING:
    from .tensor import Tensor

__all__ = ["Function", "no_grad", "enable_grad", "is_grad_enabled", "detect_anomaly", "backward", "grad", "note_state"]


class _State(threading.local):
    """The switches of the thread that runs (grad mode, anomaly mode), as in PyTorch: ``no_grad`` in
    one thread records nothing there and leaves other threads recording. One object, so the hot path
    reads a switch with one lookup; the class attributes are each new thread's starting values."""

    grad_enabled = True
    anomaly = False


STATE = _State()
_sequence = itertools.count()  # the tape's clock


class Function:
    """One differentiable op; an instance recorded on the tape is a node.

    Subclasses define ``forward(ctx, *arrays, **attrs) -> array`` and
    ``backward(ctx, grad) -> grad or tuple of grads`` (one per positional input,
    ``None`` where no gradient is needed). Set ``broadcasting = True`` when
    forward broadcasts its inputs: the engine then sums each gradient back to its
    input's shape. Any other op must return gradients of its inputs' exact shapes.
    """

    __slots__ = ("parents", "saved", "seq", "out_shape", "out_dtype", "ids", "note", "__dict__")
    broadcasting: ClassVar[bool] = False

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep exactly what backward needs (inputs or the output, rather than recomputing)."""
        self.saved = arrays

    @property
    def needs_input_grad(self) -> tuple[bool, ...]:
        """One flag per positional input: does a gradient need to flow there?"""
        return tuple([p is not None for p in self.parents])  # a list comprehension is faster here

    @staticmethod
    def forward(ctx: Function, *args: Any, **attrs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Function, grad: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **attrs: Any) -> Tensor:
        """Run forward on the inputs' arrays; record a node if any input requires grad.

        ``args`` are Tensors or constants (Python numbers, raw arrays). A recorded node keeps,
        per input, its *parent*: the node that produced it, the leaf Tensor itself (which will
        receive ``.grad``), or None when no gradient flows there. It keeps no input arrays
        except those forward saved, so intermediate results die as soon as nothing needs them.
        """
        ctx = cls.__new__(cls)
        ctx.saved = ()
        datas = []
        parents = []
        record = False
        for a in args:
            if isinstance(a, Tensor):
                datas.append(a.data)
                if a.requires_grad:
                    record = True
                    parents.append(a.node or a)
                else:
                    parents.append(None)
            else:
                datas.append(a)
                parents.append(None)
        if record and len(datas) > 1 and _shared(datas):
            _separate(datas, parents)
        try:
            out = cls.forward(ctx, *datas, **attrs)
        except TinygradRNNError:  # already ours, naming the op
            raise
        except Exception as exc:  # turn a deep NumPy/CuPy error into one that names the op
            raise diagnose(cls, args, exc) from exc
        if isinstance(out, backend.SCALAR_TYPES):  # NumPy gives scalars for 0-d results: keep arrays,
            scalar, out = out, backend.as_ndarray(out)  # and a saved output still the output itself
            ctx.saved = tuple(out if s is scalar else s for s in ctx.saved)
        t = Tensor.__new__(Tensor)
        t.data = out
        t.grad = None
        t.node = None
        t.requires_grad = False
        if record and STATE.grad_enabled:
            t.requires_grad = True
            t.node = ctx
            ctx.parents = parents
            ctx.seq = next(_sequence)
            ctx.out_shape = out.shape
            ctx.out_dtype = out.dtype
            if ctx.saved:  # for create_graph, which saved array is which input or the output: their ids
                ctx.ids = (*map(id, datas), id(out))
        if STATE.anomaly and not backend.is_finite(out):
            raise AnomalyError(f"detect_anomaly: forward of {cls.__name__} produced NaN or Inf "
                               f"(input shapes {shapes(args)})")
        return t

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        seq = getattr(self, "seq", "?")
        return f"<{type(self).__name__} #{seq}>"


def _shared(datas: list) -> bool:
    """Does one array object come in as two inputs (``x * x``, ``x * x.detach()``)?"""
    if len(datas) == 2:
        return datas[0] is datas[1]
    return len({id(d) for d in datas}) < len(datas)


def _separate(datas: list, parents: list) -> None:
    """Give an input a view of its own where it shares its array with another input that sits
    elsewhere in the graph (``x * x.detach()``). ``create_graph`` tells which input a saved
    array was by its identity; one object for both would make the detached one differentiable."""
    first: dict[int, int] = {}
    for i, d in enumerate(datas):
        j = first.setdefault(id(d), i)
        if j != i and parents[j] is not parents[i] and isinstance(d, backend.ARRAY_TYPES):
            datas[i] = d.view()


# ---------------------------------------------------------------- grad mode

@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Run ops without recording them (inference, optimizer updates)."""
    prev, STATE.grad_enabled = STATE.grad_enabled, False
    try:
        yield
    finally:
        STATE.grad_enabled = prev


@contextlib.contextmanager
def enable_grad() -> Iterator[None]:
    """Record ops again inside a ``no_grad`` block."""
    prev, STATE.grad_enabled = STATE.grad_enabled, True
    try:
        yield
    finally:
        STATE.grad_enabled = prev


def is_grad_enabled() -> bool:
    return STATE.grad_enabled


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise :class:`AnomalyError` naming the first op whose forward or backward gives NaN/Inf."""
    prev, STATE.anomaly = STATE.anomaly, True
    try:
        yield
    finally:
        STATE.anomaly = prev


# ---------------------------------------------------------------- the reverse walk

def _collect(roots: Sequence[Function]) -> list[Function]:
    """Nodes reachable from ``roots``, in decreasing tape order (explicit stack, no recursion)."""
    seen: set[Function] = set()
    nodes = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node.saved is None:
            raise freed_error(roots, node)
        nodes.append(node)
        for p in node.parents:
            if isinstance(p, Function):
                stack.append(p)
    nodes.sort(key=_seq, reverse=True)
    return nodes


def _seq(node: Function) -> int:
    return node.seq


def _fit(node: Function, i: int, parent: Any, ig: Any) -> Any:
    """Check (or, for broadcasting ops, reduce) one input gradient to the input's shape and dtype."""
    shape, dtype = (parent.out_shape, parent.out_dtype) if isinstance(parent, Function) \
        else (parent.data.shape, parent.data.dtype)
    if isinstance(ig, backend.SCALAR_TYPES):
        ig = backend.as_ndarray(ig)
    if ig.shape != shape:
        if not type(node).broadcasting:
            raise BackwardError(f"{node.name}.backward returned a gradient of shape {tuple(ig.shape)} "
                                f"for input {i} of shape {tuple(shape)}")
        ig = ig.sum_to(shape) if isinstance(ig, Tensor) else backend.sum_to(ig, shape)
        if ig.shape != shape:  # summing can only remove broadcast axes: anything else is a bug in the rule
            raise BackwardError(f"{node.name}.backward returned a gradient that does not reduce to input {i}'s "
                                f"shape {tuple(shape)} (got {tuple(ig.shape)} after summing broadcast axes)")
    if ig.dtype != dtype:
        raise BackwardError(f"{node.name}.backward returned a {ig.dtype} gradient for input {i} "
                            f"of dtype {dtype} (a silent upcast in the rule?)")
    if STATE.anomaly and not backend.is_finite(ig.data if isinstance(ig, Tensor) else ig.values if
                                               isinstance(ig, SparseGrad) else ig.value() if
                                               isinstance(ig, OuterGrad) else ig):
        raise AnomalyError(f"detect_anomaly: backward of {node.name} (#{node.seq}) produced NaN or Inf "
                           f"in the gradient of input {i} (shape {tuple(shape)})")
    return ig


def run_backward(roots: Sequence[Tensor], root_grads: Sequence[Any], retain_graph: bool,
                 create_graph: bool, targets: Sequence[Tensor] | None = None) -> dict[int, Any] | None:
    """The engine. Without ``targets`` it accumulates into leaf ``.grad``; with ``targets`` it
    returns ``{id(target): grad}`` and leaves every ``.grad`` alone (as ``grad()`` does)."""
    node_grads: dict[Function, Any] = {}
    leaf_grads: dict[int, Any] = {}
    leaves: dict[int, Tensor] = {}
    for r, g in zip(roots, root_grads):
        if r.node is None:  # a leaf differentiated with respect to itself
            leaves[id(r)] = r
            leaf_grads[id(r)] = leaf_grads[id(r)] + g if id(r) in leaf_grads else g
        else:
            node_grads[r.node] = node_grads[r.node] + g if r.node in node_grads else g
    wanted = {id(t.node): id(t) for t in targets if t.node is not None} if targets is not None else {}
    results: dict[int, Any] = {}
    owned: set[int] = set()  # ids of the sum buffers the engine allocated (safe to add into in place)
    add = add_grads if not create_graph else add_grad_tensors
    checked = not STATE.anomaly  # under detect_anomaly every gradient goes through _fit's finiteness check
    mode, STATE.grad_enabled = STATE.grad_enabled, create_graph
    try:
        for node in _collect(list(node_grads)):
            g = node_grads.pop(node, None)  # SparseGrads are already summed into dense buffers
            if type(g) is OuterGrad:
                g = g.value()
            if owned:
                owned.discard(id(g))  # consumed: from now on the array may be shared by the rule's outputs
            if wanted and id(node) in wanted:
                results[wanted[id(node)]] = g
            if g is not None:
                if create_graph:
                    grads = run_rule(node, g)
                else:
                    grads = node.backward(node, g)
                    if type(grads) is not tuple:
                        grads = (grads,)
                for i, (parent, ig) in enumerate(zip(node.parents, grads)):
                    if ig is None or parent is None:
                        continue
                    if isinstance(parent, Function):
                        # fast path: the common case needs no reduction and no conversion
                        if not (checked and ig.shape == parent.out_shape and ig.dtype == parent.out_dtype):
                            ig = _fit(node, i, parent, ig)
                        node_grads[parent] = add(node_grads.get(parent), ig, owned)
                    else:  # a leaf tensor
                        data = parent.data
                        if not (checked and ig.shape == data.shape and ig.dtype == data.dtype):
                            ig = _fit(node, i, parent, ig)
                        key = id(parent)
                        leaves[key] = parent
                        leaf_grads[key] = add(leaf_grads.get(key), ig, owned)
            if not retain_graph:
                node.saved = None  # frees the arrays; a second backward through here raises
    finally:
        STATE.grad_enabled = mode
    if targets is not None:  # grad(): return the gradients asked for, leave every .grad alone
        for t in targets:
            g = leaf_grads.get(id(t))
            if g is not None:
                results[id(t)] = g.value() if type(g) is OuterGrad else g
        return results
    handed = {id(g) for g in root_grads}  # the caller's arrays: a leaf that gets one as-is copies it
    for key, g in leaf_grads.items():
        _accumulate_leaf(leaves[key], g.value() if type(g) is OuterGrad else g, create_graph, handed)
    return None


def _accumulate_leaf(leaf: Tensor, g: Any, create_graph: bool, handed: set[int]) -> None:
    """``leaf.grad += g``, binding a new array: never written in place.

    The old ``.grad`` array may have been saved by a graph (``x.grad`` used in a computation
    after ``create_graph``), which must keep the values it was built from; so accumulation binds
    ``old + g`` (the same one pass over memory as ``old += g``). A plain ``.grad`` keeps its Tensor
    (a reference to it follows); one with a graph is replaced by a plain Tensor, as in PyTorch.

    A new ``.grad`` takes ``g`` itself only when no one else can see it: a view (a reshape,
    a broadcast) or an array already handed to another leaf (``a + b`` gives both the same
    array) is copied first, so that a write into one ``.grad`` never reaches another tensor.
    """
    if create_graph:
        g = g if isinstance(g, Tensor) else Tensor(g)
        # A recorded copy: g may be shared with another leaf or a read-only broadcast view.
        leaf.grad = g.clone() if leaf.grad is None else leaf.grad + g
    elif leaf.grad is None:
        leaf.grad = _plain(_owned(g, handed))
    elif leaf.grad.node is None:
        leaf.grad.data = leaf.grad.data + g
    else:
        leaf.grad = _plain(leaf.grad.data + g)


def _owned(g: Any, handed: set[int]) -> Any:
    """``g``, or a copy of it if someone else can see it (a view, or an array already handed out)."""
    if id(g) in handed or not backend.owns_data(g):
        g = backend.owned_copy(g)
    handed.add(id(g))
    return g


def _plain(data: Any) -> Tensor:
    """A plain leaf around an array the engine owns (no checks, no conversion)."""
    t = Tensor.__new__(Tensor)
    t.data, t.grad, t.node, t.requires_grad = data, None, None, False
    return t


# ---------------------------------------------------------------- public entry points

def _as_list(x: Any) -> list:
    """None -> [], a list/tuple -> a list, anything else (a Tensor, an array) -> [x]."""
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _root_grads(outputs: list[Tensor], grad_outputs: list[Any], create_graph: bool) -> list[Any]:
    grads = []
    for k, out in enumerate(outputs):
        g = grad_outputs[k] if k < len(grad_outputs) else None
        if backend.same_array_kind(g, out.data) and not create_graph:  # the common case: nothing to convert
            grads.append(g)
            continue
        if g is None:
            if out.data.size != 1:
                raise BackwardError(
                    f"backward: the output has shape {tuple(out.shape)}, not a scalar: pass a gradient "
                    "of the same shape (out.backward(grad)), or reduce it first (out.sum().backward())")
            g = backend.full(out.data.shape, 1.0, out.data.dtype, out.device)
        elif isinstance(g, Tensor):
            g = g if create_graph else g.data
        else:
            g = backend.as_array(g, out.data.dtype, out.device, copy=False)
        gshape = tuple(g.shape)
        if gshape != tuple(out.data.shape):
            raise ShapeError(f"backward: gradient of shape {gshape} for an output of shape {tuple(out.shape)}")
        gdata = g.data if isinstance(g, Tensor) else g
        if gdata.dtype != out.data.dtype:
            g = g.astype(out.data.dtype)
        if create_graph and not isinstance(g, Tensor):
            g = Tensor(g)
        grads.append(g)
    return grads


def backward(tensors: Tensor | Sequence[Tensor], grad_tensors: Any = None,
             retain_graph: bool | None = None, create_graph: bool = False) -> None:
    """Accumulate d(tensors)/d(leaf) into every leaf's ``.grad`` (as ``torch.autograd.backward``)."""
    outputs = _as_list(tensors)
    for out in outputs:
        if not isinstance(out, Tensor):
            raise TypeError(f"backward: expected Tensors, got {type(out).__name__}")
        if not out.requires_grad:
            raise BackwardError("backward: the tensor does not require grad and has no graph: "
                                "create the leaves with requires_grad=True, and do not run under no_grad()")
    grads = _root_grads(outputs, _as_list(grad_tensors), create_graph)
    retain = create_graph if retain_graph is None else retain_graph
    run_backward(outputs, grads, retain, create_graph)


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, returned rather than accumulated.

    Args:
        outputs: a tensor or a sequence of tensors.
        inputs: the tensors to differentiate with respect to (leaves or intermediates).
        grad_outputs: upstream gradients, one per output (required for non-scalar outputs).
        retain_graph: keep the graph for another backward (defaults to ``create_graph``).
        create_graph: record the backward pass, for second and higher derivatives.
        allow_unused: return None for an input the outputs do not depend on, instead of raising.

    Returns:
        A tuple with one gradient Tensor (shape of the input) per input.
    """
    outs, ins = _as_list(outputs), _as_list(inputs)
    for t in (*outs, *ins):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: outputs and inputs must be Tensors, got {type(t).__name__}")
    for t in ins:
        if not t.requires_grad:
            raise BackwardError("grad: one of the inputs does not require grad")
    for out in outs:
        if not out.requires_grad:
            raise BackwardError("grad: an output does not require grad (no input it depends on requires grad)")
    grads = _root_grads(outs, _as_list(grad_outputs), create_graph)
    retain = create_graph if retain_graph is None else retain_graph
    found = run_backward(outs, grads, retain, create_graph, targets=ins)
    handed = {id(g.data if isinstance(g, Tensor) else g) for g in grads}  # the caller's arrays
    result: list[Tensor | None] = []
    for t in ins:
        g = found.get(id(t)) if found is not None else None
        if g is None:
            if not allow_unused:
                raise BackwardError("grad: one of the inputs was not used to compute the outputs; "
                                    "pass allow_unused=True to get None for it")
            result.append(None)
        else:
            result.append(_own_result(g, handed))
    return tuple(result)


def _own_result(g: Any, handed: set[int]) -> Tensor:
    """A result of ``grad()`` that owns its memory, as ``.grad`` does: ``a + b`` hands both inputs
    one array (maybe the caller's ``grad_outputs``); each result gets its own copy of a shared one."""
    if not isinstance(g, Tensor):
        return _plain(_owned(g, handed))
    if id(g.data) in handed or not backend.owns_data(g.data):  # create_graph: a recorded copy
        g = g.clone()
    handed.add(id(g.data))
    return g


# Bound last: these modules (and tensor.py, which imports this one) build on the names above.
from .create_graph import run_rule  # noqa: E402
from .diagnose import diagnose, freed_error, note_state, shapes  # noqa: E402
from .tensor import Tensor  # noqa: E402
