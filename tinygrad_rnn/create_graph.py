"""``create_graph``: running a backward rule on Tensors, so that its ops are recorded and the
gradient can be differentiated again (one rule, two uses: docs/autograd.md, section 5).

The rule's saved arrays become Tensors connected to where they came from: a second handle on
an input's or the output's node, the leaf itself, or (for a leaf bound to a new array since the
graph was recorded) a ``_LeafAlias`` that stands for the recorded values.
"""

from __future__ import annotations

from typing import Any

from .autograd import Function, _sequence
from .diagnose import array_function_advice
from .errors import BackwardError
from .tensor import Tensor


def _saved_as_tensors(node: Function) -> tuple:
    """For create_graph: saved inputs and outputs become Tensors connected to their nodes, so the
    backward rule's ops extend the graph; other saved arrays are constants (masks, indices)."""
    if not node.saved:
        return ()
    out = []
    ids = node.ids  # the inputs' ids, then the output's (all alive at forward: no two alike)
    for s in node.saved:
        key = id(s)
        parent: Any = node if key == ids[-1] else node.parents[ids.index(key)] if key in ids else None
        if isinstance(parent, Function):  # a second handle on that node's output: same array, same node
            out.append(_handle(s, parent))
        elif parent is None:  # a constant (a mask, an index, an input that needs no gradient)
            out.append(s)
        elif parent.data is s:  # the leaf itself, still holding the array the graph saved
            out.append(parent)
        else:  # the leaf was rebound since (an optimizer step, x -= 1): keep the recorded values
            out.append(_handle(s, _LeafAlias.record(parent, s)))
    return tuple(out)


def _handle(data: Any, node: Function) -> Tensor:
    """A Tensor holding ``data``, recorded as the output of ``node``."""
    t = Tensor.__new__(Tensor)
    t.data, t.grad, t.node, t.requires_grad = data, None, node, True
    return t


class _LeafAlias(Function):
    """Identity from a leaf, for create_graph: stands for the leaf's values as a graph recorded
    them, after the leaf was bound to a new array. Its gradient flows to the leaf unchanged."""

    @staticmethod
    def record(leaf: Tensor, recorded: Any) -> Function:
        node = _LeafAlias.__new__(_LeafAlias)
        node.saved, node.parents, node.seq = (), [leaf], next(_sequence)
        node.out_shape, node.out_dtype = recorded.shape, recorded.dtype
        return node

    @staticmethod
    def backward(ctx: Function, grad: Any) -> Any:
        # y = x (the leaf's earlier values); dy/dx = 1
        return grad


def run_rule(node: Function, g: Any) -> tuple:
    """Run a backward rule on Tensors (create_graph), so that its ops are recorded."""
    saved = node.saved
    node.saved = _saved_as_tensors(node)
    try:
        grads = node.backward(node, g)
    except TypeError as exc:
        if "Tensor" not in str(exc):
            raise
        raise BackwardError(array_function_advice(node, exc)) from exc  # np.exp(t), backend.exp(t), ...
    finally:
        node.saved = saved
    grads = grads if isinstance(grads, tuple) else (grads,)
    if any(getattr(getattr(ig, "dtype", None), "kind", "") == "O" for ig in grads):  # np.where(c, t, 0)
        raise BackwardError(array_function_advice(node, None))
    return grads
