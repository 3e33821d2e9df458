"""How the engine sums the gradients flowing into one value.

A value used several times receives several gradients; the engine adds them up before
the value's producer consumes the sum. Two kinds of gradient are kept in a cheaper form
until then:

* ``SparseGrad``: what indexing's backward gives (zero except at the index). Slicing T
  steps out of one (T, B, N) tensor gives T of them; they are written into ONE buffer.
* ``OuterGrad``: what a matmul's weight gradient is (``x^T @ dz``). A weight used at every
  step gives T of them; they become ONE (K, T*B) @ (T*B, N) product at the end.

Sums go into buffers the engine allocated itself whenever possible, in place. An array a
backward rule returned may be shared (``a + b`` hands the same array to both inputs; a rule
may return its upstream gradient or a saved array), so it is written to only when its
reference count shows that the engine's dict of sums is its one holder (``_sole``).
"""

from __future__ import annotations

import sys
from typing import Any

from . import backend

__all__ = ["SparseGrad", "OuterGrad", "add_grads", "add_grad_tensors"]


class SparseGrad:
    """A gradient that is zero except for ``values`` at ``index`` (what indexing's backward gives).

    The engine never materialises it alone: it adds it into the one dense buffer it keeps per
    input, so slicing a (T, B, N) tensor into T steps costs O(T B N) in backward, not O(T^2 B N).
    """

    __slots__ = ("shape", "index", "values")

    def __init__(self, shape: tuple, index: Any, values: Any) -> None:
        self.shape, self.index, self.values = tuple(shape), index, values

    @property
    def dtype(self) -> Any:
        return self.values.dtype

    def add_into(self, buf: Any) -> Any:
        backend.index_add_(buf, self.index, self.values)
        return buf

    def dense(self) -> Any:
        return backend.scatter_add(self.shape, self.index, self.values)


class OuterGrad:
    """A sum of products ``a_1^T b_1 + a_2^T b_2 + ... (+ dense)`` kept as its factors.

    This is what a matmul's weight gradient is. A weight used at every time step of an RNN gets
    one term per step; summing them as they come costs T small (K, B) @ (B, N) products plus T
    additions of a (K, N) array. Kept as factors, they become ONE (K, T*B) @ (T*B, N) product
    when the engine reaches the weight's node, which is what BLAS does best.
    """

    __slots__ = ("a", "b", "dense")

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b, self.dense = [a], [b], None

    @property
    def shape(self) -> tuple:
        return (self.a[0].shape[1], self.b[0].shape[1])

    @property
    def dtype(self) -> Any:
        return self.b[0].dtype

    def value(self) -> Any:
        """The dense sum (a fresh array)."""
        if len(self.a) == 1:
            out = self.a[0].T @ self.b[0]
        else:
            out = backend.concatenate(self.a, 0).T @ backend.concatenate(self.b, 0)
        if self.dense is not None:
            out += self.dense
        return out


def add_grads(prev: Any, g: Any, owned: set[int]) -> Any:
    """``prev + g`` for gradient sums. Buffers the engine allocated itself (``owned``) are
    updated in place; anything a rule returned may be shared (``a + b`` hands both inputs one
    array), so it is never written to. OuterGrads collect their factors (summed at the end)."""
    if type(prev) is OuterGrad:
        if type(g) is OuterGrad:
            prev.a += g.a
            prev.b += g.b
            return prev
        if type(g) is not SparseGrad:
            prev.dense = g if prev.dense is None else prev.dense + g
            return prev
        prev = prev.value()
        owned.add(id(prev))
    if type(g) is OuterGrad:
        if prev is not None:
            owned.discard(id(prev))  # from now on read only: its id must not mark a later array as ours
            g.dense = prev
        return g
    if isinstance(g, SparseGrad):
        if prev is None:
            buf = g.dense()
        elif id(prev) in owned or _sole(prev):
            buf = g.add_into(prev)
        else:
            buf = g.add_into(backend.owned_copy(prev))
    elif prev is None:
        return g
    elif id(prev) in owned or _sole(prev):
        prev += g
        buf = prev
    else:
        buf = backend.as_ndarray(prev + g)  # 0-d arithmetic gives a NumPy scalar: keep a writable array
    owned.add(id(buf))
    return buf


def _sole(prev: Any) -> bool:
    """Is ``prev``, a sum the engine keeps for one value, an array nothing else refers to and not
    a view? Then it is a rule's fresh result (not the caller's array, not a saved one, not one
    handed to two inputs as ``a + b`` does) and the next gradient can be added into it in place."""
    return sys.getrefcount(prev) == _SOLE_REFS and backend.owns_data(prev)


def add_grad_tensors(prev: Any, g: Any, owned: set[int]) -> Any:
    """create_graph mode: gradients are Tensors and every sum is a recorded op."""
    return g if prev is None else prev + g


def _refs_seen_in_sole(prev: Any) -> int:
    """Calls ``_refs_in_sole`` the way ``add_grads`` calls ``_sole``: one argument passed on."""
    return _refs_in_sole(prev)


def _refs_in_sole(prev: Any) -> int:
    return sys.getrefcount(prev)


def _calibrate() -> int:
    # A tracer or profiler (a debugger stepping through the import) may hold each frame's locals
    # in an extra dict, which would make the count too high and _sole too trusting: switched off
    # while counting. Under tracing later, counts only come out higher, so _sole only says no.
    trace, profile = sys.gettrace(), sys.getprofile()
    sys.settrace(None)
    sys.setprofile(None)
    try:
        sums = {0: backend.zeros((1,), backend.float64, "cpu")}  # held by a dict of sums only, as node_grads holds one
        return _refs_seen_in_sole(sums[0])
    finally:
        sys.settrace(trace)
        sys.setprofile(profile)


# What sys.getrefcount reports inside _sole for an array held only by the engine's dict of sums
# (the dict, two arguments, getrefcount's own; the count differs between Python versions).
_SOLE_REFS = _calibrate()
