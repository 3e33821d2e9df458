"""Looking at the tape: the nodes reachable from a tensor, as a table or as Graphviz DOT text.

An unrolled recurrent layer records thousands of ops. To make them readable, the sequence
layers (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``) note where each time step begins on the tape:
they iterate over their steps through a :class:`StepClock`, which takes one tick of the tape's
clock (``autograd._sequence``) per step as a boundary marker and nothing per op. The clocks are
attached to the layer's output nodes; ``trace``, ``print_graph`` and ``to_dot`` map every
node to its layer and step by its sequence number, and can show one line (or one box) per
step or per layer instead of one per op (``group="step"`` or ``group="layer"``).
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from . import autograd
from .autograd import Function
from .tensor import Tensor

__all__ = ["NodeInfo", "StepClock", "trace", "print_graph", "to_dot", "tag_steps"]

GROUPS = ("op", "step", "layer")


@dataclass(frozen=True)
class NodeInfo:
    """One recorded op: its place on the tape, its name, shapes, the bytes it keeps for backward,
    and, for an op of a recurrent layer, the layer (``"LSTM layer 0"``) and time step (None for
    the layer's ops before its first step: transposes, the input projection)."""

    seq: int
    op: str
    input_shapes: tuple
    output_shape: tuple
    saved_bytes: int
    released: bool
    layer: str | None = None
    step: int | None = None

    @property
    def group(self) -> str | None:
        """``"LSTM layer 0, t=2"``, ``"LSTM layer 0, setup"``, or None outside recurrent layers."""
        if self.layer is None:
            return None
        return f"{self.layer}, " + ("setup" if self.step is None else f"t={self.step}")


class StepClock:
    """The time steps of one recurrent layer run (``order``, e.g. ``range(T)``), iterated like the
    range itself while noting where each step begins on the tape.

    Before each step it takes one tick of the tape's clock (well under a microsecond, where a
    step records ops of several microseconds each); a tick marks a boundary and is never a
    node's number, so step ``k``'s ops are exactly those numbered between its tick and the next.
    """

    def __init__(self, layer: str, order: Iterable[int]) -> None:
        self.layer = layer
        self.order = order
        self.start = next(autograd._sequence)  # before the layer's setup ops
        self.times: list[int] = []  # t of each step, in the order run (T-1 first for a reverse direction)
        self.ticks: list[int] = []  # the tick taken just before each step's first op
        self.end: int | None = None  # the tick after the last step; None until the loop ran to the end

    def __iter__(self) -> Iterator[int]:
        times, ticks, clock = self.times, self.ticks, autograd._sequence
        for t in self.order:
            times.append(t)
            ticks.append(next(clock))
            yield t
        self.end = next(clock)

    def __len__(self) -> int:
        return len(self.order)  # type: ignore[arg-type]

    def spans(self) -> list[tuple[int, int, int | None]]:
        """``(first tick, last tick, t)`` of the setup (t None) and of every step, in tape order."""
        bounds = [self.start, *self.ticks, self.end]
        return [(bounds[k], bounds[k + 1], None if k == 0 else self.times[k - 1]) for k in range(len(bounds) - 1)]


def tag_steps(clocks: list[StepClock], *outputs: Any) -> None:
    """Attach a layer call's step clocks to the nodes of its outputs (once per call, not per op)."""
    done = [c for c in clocks if c.end is not None]
    for out in outputs:
        if isinstance(out, Tensor) and out.node is not None:
            out.node.recurrent_steps = done


# ---------------------------------------------------------------- collecting the graph

def _nodes(t: Tensor) -> list[Function]:
    seen, nodes, stack = set(), [], [t.node] if t.node is not None else []
    while stack:  # explicit stack: graphs of unrolled RNNs are far deeper than the recursion limit
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        for p in node.parents:
            if isinstance(p, Function):
                stack.append(p)
    return sorted(nodes, key=lambda n: n.seq)


def _saved_bytes(node: Function) -> int:
    unique = {id(s): s for s in (node.saved or ())}  # x * x saves one array twice
    return sum(int(getattr(s, "nbytes", 0)) for s in unique.values())


def _input_shape(parent: object) -> object:
    """An input's shape from its parent: a node's output or a leaf; "const" where no grad flows."""
    if isinstance(parent, Function):
        return tuple(parent.out_shape)
    return tuple(parent.shape) if isinstance(parent, Tensor) else "const"


def _locate(nodes: list[Function]) -> list[tuple[str | None, int | None]]:
    """(layer, step) of every node, from the step clocks found on the nodes (by sequence number)."""
    calls: dict[int, list[StepClock]] = {}
    for n in nodes:
        clocks = n.__dict__.get("recurrent_steps")
        if clocks:
            calls.setdefault(id(clocks), clocks)
    if not calls:
        return [(None, None)] * len(nodes)
    ordered = sorted(calls.values(), key=lambda cs: cs[0].start)
    spans = []  # (first tick, last tick, layer name, t), disjoint
    for k, clocks in enumerate(ordered):
        suffix = f" (call {k + 1})" if len(ordered) > 1 else ""
        for c in clocks:
            spans += [(lo, hi, c.layer + suffix, t) for lo, hi, t in c.spans()]
    spans.sort()
    starts = [s[0] for s in spans]
    where: list[tuple[str | None, int | None]] = []
    for n in nodes:
        k = bisect.bisect(starts, n.seq) - 1
        where.append((spans[k][2], spans[k][3]) if k >= 0 and n.seq < spans[k][1] else (None, None))
    return where


def trace(t: Tensor) -> list[NodeInfo]:
    """The ops that ``t`` depends on, in recording (tape) order, with their layer and time step."""
    nodes = _nodes(t)
    return [NodeInfo(n.seq, n.name, tuple(_input_shape(p) for p in n.parents), tuple(n.out_shape),
                     _saved_bytes(n), n.saved is None, layer, step)
            for n, (layer, step) in zip(nodes, _locate(nodes))]


def _groups(infos: list[NodeInfo], group: str) -> list[tuple[str | None, list[int]]]:
    """Consecutive ops of one step (``group="step"``) or layer (``"layer"``) as (label, positions);
    every other op alone, as (None, [position])."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(map(repr, GROUPS))}, got {group!r}")
    runs: list[tuple[str | None, list[int]]] = []
    for k, i in enumerate(infos):
        key = None if i.layer is None or group == "op" else i.layer if group == "layer" else i.group
        if key is not None and runs and runs[-1][0] == key:
            runs[-1][1].append(k)
        else:
            runs.append((key, [k]))
    return runs


# ---------------------------------------------------------------- the table

def _table(rows: list[tuple[str, ...]], header: tuple[str, ...], file: IO[str] | None, minimum: tuple[int, ...],
           right: int) -> None:
    """Columns as wide as their longest cell (at least ``minimum``); the first ``right`` right-aligned
    and indented by 3; a one-cell row is a heading printed as it is."""
    cells = [r for r in rows if len(r) > 1] + [header]
    widths = [max([len(r[k]) for r in cells] + [minimum[k]]) + (3 if k == 0 else 0) for k in range(len(header))]

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(f"{c:>{w}}" if k < right else f"{c:<{w}}" for k, (c, w) in enumerate(zip(r, widths))).rstrip()
    print(line(header), file=file)
    for r in rows:
        print(r[0] if len(r) == 1 else line(r), file=file)


def print_graph(t: Tensor, file: IO[str] | None = None, group: str = "op") -> None:
    """Print the tape behind ``t``: one line per op with input/output shapes and saved bytes.

    Args:
        t: the tensor whose graph to show.
        file: where to print (default: standard output).
        group: ``"op"`` lists every op (under a heading per time step inside recurrent layers);
            ``"step"`` gives one line per time step of each recurrent layer with its op counts;
            ``"layer"`` one line per recurrent layer. Ops outside recurrent layers always get
            a line each. ``#`` numbers the ops in tape order.

    >>> import tinygrad_rnn as tg
    >>> x = tg.tensor([1.0, 2.0], requires_grad=True)
    >>> print_graph((x * x).sum())
       #  op   inputs          output  saved
       0  Mul  (2,) (2,)       (2,)    8 B
       1  Sum  (2,)            ()      0 B
    total: 2 ops, 8 B saved
    """
    infos = trace(t)
    runs = _groups(infos, group)
    if group == "op":
        rows: list[tuple[str, ...]] = []
        heading = None
        for _, (k,) in runs:
            i = infos[k]
            if i.group != heading and (i.group is not None or heading is not None):
                heading = i.group
                rows.append((f"      -- {heading or 'outside the recurrent layers'}",))
            rows.append((str(k), i.op, " ".join(str(s) for s in i.input_shapes), str(i.output_shape),
                         f"{i.saved_bytes} B" + (" (released)" if i.released else "")))
        _table(rows, ("#", "op", "inputs", "output", "saved"), file, (0, 0, 14, 6, 0), 1)
    else:
        rows = []
        for label, ks in runs:
            saved = sum(infos[k].saved_bytes for k in ks)
            counts = Counter(infos[k].op for k in ks)
            first_seen = dict.fromkeys(infos[k].op for k in ks)  # op names in tape order
            rows.append((str(ks[0]) if len(ks) == 1 else f"{ks[0]}-{ks[-1]}", str(len(ks)),
                         label or infos[ks[0]].op, f"{saved} B",
                         "" if label is None else ", ".join(f"{op} {counts[op]}" for op in first_seen)))
        _table(rows, ("#", "ops", group if group == "layer" else "step", "saved", "op counts"), file,
               (0, 0, 0, 0, 0), 2)
    print(f"total: {len(infos)} ops, {sum(i.saved_bytes for i in infos)} B saved", file=file)


# ---------------------------------------------------------------- Graphviz

def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(t: Tensor, group: str = "op", names: Mapping[str, Tensor] | None = None, rankdir: str = "LR") -> str:
    """Graphviz DOT text of the graph behind ``t``: leaves as boxes, ops as ellipses.

    Args:
        t: the tensor whose graph to draw.
        group: ``"op"``: every op, those of a recurrent layer inside a box per time step,
            inside a box per layer; ``"step"`` or ``"layer"``: one node per time step or per
            layer (labelled with its op count), and the edges between them.
        names: optional ``{name: tensor}`` (``dict(model.named_parameters())``) to label leaves.
        rankdir: Graphviz's layout direction: ``"LR"`` (left to right) or ``"TB"`` (top to bottom).

    Ops are numbered in tape order, as ``print_graph`` numbers them. Render the text with
    Graphviz: ``dot -Tsvg tape.dot -o tape.svg``.
    """
    nodes = _nodes(t)
    infos = trace(t)
    runs = _groups(infos, group)
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"to_dot: rankdir must be 'LR', 'TB', 'RL' or 'BT', got {rankdir!r}")
    owner = {}  # position of an op -> the DOT node that draws it (the op itself, or its group)
    for r, (label, ks) in enumerate(runs):
        for k in ks:
            owner[k] = f"op{k}" if label is None else f"g{r}"
    label_of = {id(v): k for k, v in (names or {}).items()}
    position = {id(n): k for k, n in enumerate(nodes)}
    leaves: dict[int, str] = {}
    seen: set[tuple[str, str]] = set()
    lines = ["digraph tape {", f"  rankdir={rankdir};", '  graph [fontname="Helvetica"];',
             '  node [fontname="Helvetica", fontsize=10];']
    edges: list[tuple[str, str]] = []  # one per input (x * x: two); between groups, once each
    for k, n in enumerate(nodes):
        for p in n.parents:
            if isinstance(p, Function):
                src = owner[position[id(p)]]
            elif isinstance(p, Tensor):
                if id(p) not in leaves:
                    leaves[id(p)] = f"leaf{len(leaves)}"
                    text = f"{label_of.get(id(p), 'leaf')}\n{tuple(p.shape)}"
                    lines.append(f"  {leaves[id(p)]} [shape=box, label={_quote(text)}];")
                src = leaves[id(p)]
            else:
                continue  # a constant: no gradient flows there
            if group == "op" or (src != owner[k] and (src, owner[k]) not in seen):
                edges.append((src, owner[k]))
                seen.add((src, owner[k]))
    if group == "op":
        lines += _dot_clusters(infos)
    else:
        for r, (label, ks) in enumerate(runs):
            lines.append(_dot_op(ks[0], infos[ks[0]], "  ") if label is None else
                         f"  g{r} [shape=box, style=rounded, label={_quote(f'{label}{chr(10)}{len(ks)} ops')}];")
    lines += [f"  {a} -> {b};" for a, b in edges]
    lines.append("}")
    return "\n".join(lines)


def _dot_op(k: int, i: NodeInfo, indent: str) -> str:
    return f"{indent}op{k} [label={_quote(f'{i.op} #{k}{chr(10)}{i.output_shape}')}];"


def _dot_clusters(infos: list[NodeInfo]) -> list[str]:
    """Every op; those of a recurrent layer in a cluster per layer holding a cluster per step."""
    lines = []
    for layer, members in itertools.groupby(enumerate(infos), key=lambda ki: ki[1].layer):
        members = list(members)
        if layer is None:
            lines += [_dot_op(k, i, "  ") for k, i in members]
            continue
        lines += [f"  subgraph cluster_{members[0][0]} {{", f"    label={_quote(layer)};"]
        for step, ops in itertools.groupby(members, key=lambda ki: ki[1].step):
            ops = list(ops)
            lines += [f"    subgraph cluster_{ops[0][0]}_t {{",
                      f"      label={_quote('setup' if step is None else f't={step}')};",
                      *(_dot_op(k, i, "      ") for k, i in ops), "    }"]
        lines.append("  }")
    return lines
