"""How the engine explains what went wrong: a failure inside an op's forward, a backward that
reaches a graph an earlier backward released (and the carried state that leads there), a
backward rule that calls NumPy on the Tensors ``create_graph`` hands it.

Nothing here runs unless something failed, except ``note_state``: one attribute per call.
"""

from __future__ import annotations

import linecache
import re
import traceback
from collections.abc import Sequence
from typing import Any

from .autograd import Function
from .errors import BackwardError, DeviceError, DTypeError, ShapeError
from .tensor import Tensor

__all__ = ["note_state"]


def shapes(args: Sequence[Any]) -> str:
    return ", ".join(str(tuple(a.shape)) if hasattr(a, "shape") else repr(a) for a in args)


def diagnose(cls: type, args: Sequence[Any], exc: Exception) -> Exception:
    """Explain a failure inside an op's forward: devices first, then shapes."""
    name = cls.__name__.lower()
    devices = sorted({a.device for a in args if isinstance(a, Tensor)})
    if len(devices) > 1:
        return DeviceError(f"{name}: tensors on different devices ({' and '.join(devices)}); "
                           f"move them with .to('{devices[0]}') first")
    if isinstance(exc, ValueError) and "broadcast" in str(exc):
        return ShapeError(f"{name}: shapes {shapes(args)} cannot be broadcast together")
    # Our own class (not type(exc): NumPy's exception classes need more constructor arguments).
    kind = DTypeError if isinstance(exc, TypeError) else ShapeError if isinstance(exc, ValueError) else BackwardError
    return kind(f"{name} (input shapes {shapes(args)}): {exc}")


def freed_error(roots: Sequence[Function], freed: Function) -> BackwardError:
    """The error for a backward that reached a node an earlier backward released.

    Either the same graph is walked twice (the root itself was released), or a value computed
    before that backward was used after it without ``detach()``: in truncated BPTT, the carried
    state. The recurrent layers label the node of a state they receive (``note``): the note found
    nearest the released node on the way from the root names that state.
    """
    head = (f"backward through {freed.name} (#{freed.seq}) a second time: its saved arrays were released "
            "by an earlier backward.")
    if freed in roots:
        return BackwardError(f"{head} Pass retain_graph=True to the first backward if you need to go through "
                             "the graph twice, or detach() what you keep across steps (for example the hidden "
                             "state between truncated-BPTT chunks).")
    note = _note_towards(roots, freed)
    if note is None:
        return BackwardError(
            f"{head} This graph reaches it through a tensor computed before that backward and used after "
            "it (a value kept from an earlier step?): detach() it before using it again, or pass "
            "retain_graph=True to the earlier backward if you mean to backpropagate through that graph twice.")
    return BackwardError(
        f"{head} This graph reaches it through {note}, which still carries the graph of an earlier chunk: "
        "detach it between chunks: state = tuple(s.detach() for s in state) (h = h.detach() for one tensor), "
        "or use tinygrad_rnn.nn.tbptt, which carries and detaches the state for you. (retain_graph=True on "
        "the earlier backward would instead backpropagate through every earlier chunk again.)")


def _note_towards(roots: Sequence[Function], target: Function) -> str | None:
    """The note of ``target``, or of the nearest labelled node on a path from the roots to it."""
    seen: set[Function] = set()
    stack: list[tuple[Function, str | None]] = [(r, None) for r in roots]
    while stack:
        node, note = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        note = getattr(node, "note", None) or note
        if node is target:
            return note
        if node.saved is not None:  # do not wander through released graphs
            stack.extend((p, note) for p in node.parents if isinstance(p, Function))
    return None


def note_state(state: Any, note: str) -> None:
    """Label the node of each Tensor in ``state`` (a Tensor or a sequence of them; leaves and
    detached tensors have no node) with ``note``, a short description (e.g. "the initial state
    (h0, c0) passed to LSTM(65, 256)") that a backward finding the node released puts in its error.
    """
    for t in (state if isinstance(state, (tuple, list)) else (state,)):
        node = getattr(t, "node", None)
        if node is not None:
            node.note = note


def array_function_advice(node: Function, exc: Exception | None) -> str:
    """Say that a rule called a NumPy/CuPy/backend function on the Tensors create_graph hands it,
    and which function of ``tinygrad_rnn.ops.rules`` to call instead (found in the failing line)."""
    from .ops import rules  # the ops import this module: looked up when needed

    used = []
    for frame, _ in traceback.walk_tb(exc.__traceback__) if exc is not None else ():
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
        used += [name for name in re.findall(r"\b(\w+)\s*\(", line) if name in rules.__all__]
    used = list(dict.fromkeys(used))  # each name once, in the order met
    fix = (", ".join(f"tinygrad_rnn.ops.rules.{name}" for name in used) if used else
           "the functions of tinygrad_rnn.ops.rules (" + ", ".join(rules.__all__) + ")")
    what = f" ({exc})" if exc is not None else " (it returned an array of Python objects)"
    return (f"{node.name}.backward called a NumPy, CuPy or backend function on a Tensor{what}. Under "
            "create_graph=True (second derivatives, gradgradcheck) a backward rule gets Tensors, not arrays: "
            f"use {fix} instead, which work on both (operators and .sum/.reshape/.transpose already do).")
