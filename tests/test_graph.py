"""Inspecting the tape: trace(), print_graph() and to_dot()."""

from __future__ import annotations

import re

import pytest

import tinygrad_rnn as tg


@pytest.fixture
def mlp_loss() -> tg.Tensor:
    """loss = sum(tanh(x @ w) * 2): MatMul, Tanh, Mul, Sum on float32 leaves x (2, 3), w (3, 4)."""
    x = tg.ones(2, 3, requires_grad=True)
    w = tg.ones(3, 4, requires_grad=True)
    return ((x @ w).tanh() * 2.0).sum()


def test_trace_lists_nodes_in_recording_order_with_shapes_and_saved_bytes(mlp_loss):
    infos = tg.trace(mlp_loss)
    assert [i.op for i in infos] == ["MatMul", "Tanh", "Mul", "Sum"]
    assert [i.seq for i in infos] == sorted(i.seq for i in infos)
    assert [i.input_shapes[0] for i in infos] == [(2, 3), (2, 4), (2, 4), (2, 4)]
    assert infos[0].input_shapes[1] == (3, 4) and len(infos[2].input_shapes) == 2  # x * 2.0: two inputs
    assert [i.output_shape for i in infos] == [(2, 4), (2, 4), (2, 4), ()]
    # MatMul keeps x and w, Tanh its output, Mul its tensor input (the constant 2.0 has no bytes), Sum nothing
    assert [i.saved_bytes for i in infos] == [4 * (6 + 12), 4 * 8, 4 * 8, 0]
    assert not any(i.released for i in infos)


def test_trace_counts_an_array_saved_twice_once():
    x = tg.ones(5, requires_grad=True)
    (info,) = tg.trace(x * x)
    assert info.saved_bytes == 4 * 5


def test_trace_of_a_leaf_or_a_no_grad_result_is_empty():
    x = tg.ones(2, requires_grad=True)
    assert tg.trace(x) == []
    with tg.no_grad():
        assert tg.trace(x * 2.0) == []


def test_trace_after_backward_shows_released_nodes(mlp_loss):
    mlp_loss.backward()
    infos = tg.trace(mlp_loss)
    assert len(infos) == 4
    assert all(i.released and i.saved_bytes == 0 for i in infos)


def test_retain_graph_keeps_the_trace_unreleased(mlp_loss):
    mlp_loss.backward(retain_graph=True)
    assert not any(i.released for i in tg.trace(mlp_loss))


def test_print_graph_has_a_header_one_line_per_op_and_a_total(mlp_loss, capsys):
    tg.print_graph(mlp_loss)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 4 + 1
    assert lines[0].split() == ["#", "op", "inputs", "output", "saved"]
    ops = [line.split()[1] for line in lines[1:-1]]
    assert ops == ["MatMul", "Tanh", "Mul", "Sum"]
    assert "(2, 3) (3, 4)" in lines[1] and lines[1].rstrip().endswith("72 B")
    assert lines[-1] == "total: 4 ops, 136 B saved"


def test_print_graph_marks_released_nodes(mlp_loss, capsys):
    mlp_loss.backward()
    tg.print_graph(mlp_loss)
    lines = capsys.readouterr().out.splitlines()
    assert all(line.endswith("0 B (released)") for line in lines[1:-1])
    assert lines[-1] == "total: 4 ops, 0 B saved"


def test_to_dot_has_one_node_per_op_and_one_edge_per_input(mlp_loss):
    dot = tg.to_dot(mlp_loss)
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}") == 1
    op_nodes = re.findall(r"^\s*(op\d+) \[label=\"(\w+) #\d+", dot, flags=re.M)
    assert [name for _, name in op_nodes] == ["MatMul", "Tanh", "Mul", "Sum"]
    leaves = re.findall(r"^\s*(leaf\d+) \[shape=box", dot, flags=re.M)
    assert len(leaves) == 2
    edges = re.findall(r"^\s*(\w+) -> (\w+);$", dot, flags=re.M)
    ids = [node for node, _ in op_nodes]
    assert sorted(edges) == sorted([(leaves[0], ids[0]), (leaves[1], ids[0]), (ids[0], ids[1]), (ids[1], ids[2]),
                                    (ids[2], ids[3])])
    declared = set(ids) | set(leaves)
    assert all(a in declared and b in declared for a, b in edges)


def test_to_dot_shares_one_leaf_node_between_its_uses():
    x = tg.ones(3, requires_grad=True)
    dot = tg.to_dot((x * x).sum())
    assert len(re.findall(r"leaf\d+ \[shape=box", dot)) == 1
    assert dot.count("leaf0 -> ") == 2
