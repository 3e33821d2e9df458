"""Looking at the tape: the nodes reachable from a tensor, as a table or as Graphviz DOT text."""

from __future__ import annotations

from dataclasses import dataclass

from .autograd import Function
from .tensor import Tensor


@dataclass(frozen=True)
class NodeInfo:
    """One recorded op: its place on the tape, its name, shapes and the bytes it keeps for backward."""

    seq: int
    op: str
    input_shapes: tuple
    output_shape: tuple
    saved_bytes: int
    released: bool


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


def trace(t: Tensor) -> list[NodeInfo]:
    """The ops that ``t`` depends on, in recording (tape) order."""
    return [NodeInfo(n.seq, n.name, tuple(_input_shape(p) for p in n.parents), tuple(n.out_shape),
                     _saved_bytes(n), n.saved is None) for n in _nodes(t)]


def print_graph(t: Tensor, file=None) -> None:
    """Print the tape behind ``t``: one line per op with input/output shapes and saved bytes.

    >>> import tinygrad_rnn as tg
    >>> x = tg.tensor([1.0, 2.0], requires_grad=True)
    >>> print_graph((x * x).sum())
       #  op   inputs          output  saved
       0  Mul  (2,) (2,)       (2,)    8 B
       1  Sum  (2,)            ()      0 B
    total: 2 ops, 8 B saved
    """
    infos = trace(t)
    rows = [(str(i.seq - infos[0].seq), i.op, " ".join(str(s) for s in i.input_shapes), str(i.output_shape),
             f"{i.saved_bytes} B" + (" (released)" if i.released else "")) for i in infos]
    header = ("#", "op", "inputs", "output", "saved")
    widths = [max(len(r[k]) for r in rows + [header]) for k in range(5)]
    def line(r):
        return (f"{r[0]:>{widths[0] + 3}}  {r[1]:<{widths[1]}}  {r[2]:<{max(widths[2], 14)}}  "
                f"{r[3]:<{max(widths[3], 6)}}  {r[4]}").rstrip()
    print(line(header), file=file)
    for r in rows:
        print(line(r), file=file)
    print(f"total: {len(infos)} ops, {sum(i.saved_bytes for i in infos)} B saved", file=file)


def to_dot(t: Tensor) -> str:
    """Graphviz DOT text of the graph behind ``t`` (leaves as boxes, ops as ellipses)."""
    lines = ["digraph tape {", "  rankdir=LR;"]
    leaves: dict[int, str] = {}
    for n in _nodes(t):
        lines.append(f'  op{n.seq} [label="{n.name} #{n.seq}\\n{tuple(n.out_shape)}"];')
        for p in n.parents:
            if isinstance(p, Function):
                lines.append(f"  op{p.seq} -> op{n.seq};")
            elif isinstance(p, Tensor):
                name = leaves.setdefault(id(p), f"leaf{len(leaves)}")
                lines.append(f"  {name} -> op{n.seq};")
    for name in leaves.values():
        lines.insert(2, f'  {name} [shape=box, label="leaf"];')
    lines.append("}")
    return "\n".join(lines)
