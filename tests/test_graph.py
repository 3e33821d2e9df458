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


# ---------------------------------------------------------------- recurrent layers, grouped by time step

def _all_nodes(*outs: tg.Tensor) -> dict[int, object]:
    """Every node the outputs depend on, by sequence number (an independent walk of the graph)."""
    found, stack = {}, [o.node for o in outs if o.node is not None]
    while stack:
        n = stack.pop()
        if n.seq not in found:
            found[n.seq] = n
            stack += [p for p in n.parents if isinstance(p, tg.Function)]
    return found


# (layer class, options, ops each step records in its loop): RNN addmm + tanh; the LSTM and GRU
# step counts of nn/rnn_cells.py less the slice of the input projection, which the setup takes.
RECURRENT = [("RNN", {}, 2), ("LSTM", {}, 12), ("GRU", {}, 15), ("LSTM", {"fused": True}, 4)]


@pytest.mark.parametrize("kind, options, per_step", RECURRENT)
def test_each_time_step_is_one_group_that_begins_with_the_op_reading_the_previous_h(kind, options, per_step):
    T = 4
    layer = getattr(tg.nn, kind)(2, 3, generator=tg.Generator(0), **options)
    out, state = layer(tg.randn(T, 2, 2, requires_grad=True))
    root = out.sum()
    for s in state if isinstance(state, tuple) else (state,):  # the last step's c is read by c_n only
        root = root + s.sum()
    infos = tg.trace(root)
    setup = [i for i in infos if i.layer is not None and i.step is None]
    steps = [[i for i in infos if i.step == t] for t in range(T)]
    assert [len(s) for s in steps] == [per_step] * T
    assert all(i.layer == f"{kind} layer 0" for s in steps for i in s)
    assert len({tuple(i.op for i in s) for s in steps}) == 1  # every step records the same ops
    # in tape order: the setup, the steps in order, then the ops outside the layer
    assert infos[:len(setup) + T * per_step] == setup + [i for s in steps for i in s]
    assert all(i.layer is None for i in infos[len(setup) + T * per_step:])
    # Independently of the clock: the stack's inputs are h_1..h_T, each in its own step, and
    # the first op of step t reads h_{t-1}.
    nodes = _all_nodes(root)
    by_seq = {i.seq: i for i in infos}
    hs = out.node.parents
    assert [by_seq[h.seq].step for h in hs] == list(range(T))
    for t in range(1, T):
        first = nodes[steps[t][0].seq]
        assert any(p is hs[t - 1] for p in first.parents)


def test_bidirectional_stacked_layers_are_grouped_per_layer_and_direction_in_run_order():
    gru = tg.nn.GRU(2, 3, num_layers=2, bidirectional=True, generator=tg.Generator(0))
    out, h_n = gru(tg.randn(3, 1, 2))
    infos = tg.trace(out.sum())
    runs = []  # (layer, step) in tape order, consecutive repeats dropped
    for i in infos:
        if i.layer is not None and (not runs or runs[-1] != (i.layer, i.step)):
            runs.append((i.layer, i.step))
    expected = []
    for layer in ("GRU layer 0", "GRU layer 0 reverse", "GRU layer 1", "GRU layer 1 reverse"):
        order = [2, 1, 0] if layer.endswith("reverse") else [0, 1, 2]
        expected += [(layer, None)] + [(layer, t) for t in order]
    assert runs == expected
    # the ops between the layers (concatenating both directions, joining the steps) belong to none
    assert {i.op for i in infos if i.layer is None} >= {"Stack", "Cat", "Sum"}


def test_step_clock_takes_one_tick_per_step_and_marks_only_the_output_nodes():
    from tinygrad_rnn import autograd
    T = 5
    rnn = tg.nn.RNN(2, 3, generator=tg.Generator(0))
    x = tg.randn(T, 1, 2)
    before = next(autograd._sequence)
    out, h_n = rnn(x)
    after = next(autograd._sequence)
    nodes = _all_nodes(out, h_n)  # every op the forward recorded feeds the output or the last state
    assert after - before - 1 == len(nodes) + T + 2  # the ops, a tick per step, a tick before and after
    marked = [n for n in nodes.values() if "recurrent_steps" in n.__dict__]
    assert sorted(marked, key=lambda n: n.seq) == sorted([out.node, h_n.node], key=lambda n: n.seq)
    with tg.no_grad():  # nothing recorded, not even a tick
        before = next(autograd._sequence)
        rnn(x)
        assert next(autograd._sequence) == before + 1


def test_two_calls_of_one_layer_in_one_graph_are_told_apart():
    lstm = tg.nn.LSTM(2, 3, generator=tg.Generator(0))
    out1, state = lstm(tg.randn(2, 1, 2))
    out2, _ = lstm(tg.randn(2, 1, 2), state)
    layers = {i.layer for i in tg.trace(out2.sum() + out1.sum())} - {None}
    assert layers == {"LSTM layer 0 (call 1)", "LSTM layer 0 (call 2)"}


def test_cells_and_no_grad_layers_are_not_grouped():
    cell = tg.nn.LSTMCell(2, 3, generator=tg.Generator(0))
    h, c = cell(tg.randn(1, 2))
    assert all(i.layer is None for i in tg.trace(h))


def test_grouping_survives_backward():
    lstm = tg.nn.LSTM(2, 3, generator=tg.Generator(0))
    out, _ = lstm(tg.randn(3, 1, 2))
    loss = out.sum()
    loss.backward()
    infos = tg.trace(loss)
    assert all(i.released for i in infos) and {i.step for i in infos} == {None, 0, 1, 2}


@pytest.fixture
def lstm_loss() -> tg.Tensor:
    """loss = sum of the outputs of LSTM(2, 3) over 3 steps (12 ops a step, 9 in the setup)."""
    lstm = tg.nn.LSTM(2, 3, generator=tg.Generator(0))
    out, _ = lstm(tg.randn(3, 1, 2))
    return out.sum()


def test_print_graph_group_step_gives_one_line_per_step_with_its_op_counts(lstm_loss, capsys):
    tg.print_graph(lstm_loss, group="step")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["#", "ops", "step", "saved", "op", "counts"]
    rows = lines[1:-1]
    assert [r.split()[0] for r in rows] == ["0-8", "9-20", "21-32", "33-44", "45", "46"]
    assert [" ".join(r.split()[2:6]) for r in rows[:4]] == [
        "LSTM layer 0, setup", "LSTM layer 0, t=0", "LSTM layer 0, t=1", "LSTM layer 0, t=2"]
    for r in rows[1:4]:
        assert r.endswith("Addmm 1, GetItem 4, Tanh 2, Sigmoid 1, Mul 3, Add 1")
    assert sum(int(r.split()[1]) for r in rows) == 47 and lines[-1].startswith("total: 47 ops,")
    saved = sum(i.saved_bytes for i in tg.trace(lstm_loss))
    assert sum(int(r.split(" B")[0].split()[-1]) for r in rows) == saved


def test_print_graph_group_layer_and_op(lstm_loss, capsys):
    tg.print_graph(lstm_loss, group="layer")
    rows = capsys.readouterr().out.splitlines()[1:-1]
    assert [r.split()[:3] for r in rows] == [["0-44", "45", "LSTM"], ["45", "1", "Stack"], ["46", "1", "Sum"]]
    tg.print_graph(lstm_loss)  # every op, under a heading per step
    lines = capsys.readouterr().out.splitlines()
    headings = [line.strip() for line in lines if line.lstrip().startswith("-- ")]
    assert headings == ["-- LSTM layer 0, setup", "-- LSTM layer 0, t=0", "-- LSTM layer 0, t=1",
                        "-- LSTM layer 0, t=2", "-- outside the recurrent layers"]
    assert len(lines) == 1 + 47 + len(headings) + 1


def test_to_dot_group_op_nests_each_step_in_its_layer(lstm_loss):
    dot = tg.to_dot(lstm_loss, rankdir="TB")
    assert "rankdir=TB;" in dot and dot.count("{") == dot.count("}") == 1 + 1 + 4  # graph, layer, setup + 3 steps
    labels = re.findall(r'^\s*label="([^"]+)";$', dot, flags=re.M)
    assert labels == ["LSTM layer 0", "setup", "t=0", "t=1", "t=2"]
    assert len(re.findall(r"^\s*op\d+ \[label=", dot, flags=re.M)) == 47
    edges = re.findall(r"^\s*(\w+) -> (\w+);$", dot, flags=re.M)
    assert len(edges) == sum(len(i.input_shapes) - list(i.input_shapes).count("const") for i in tg.trace(lstm_loss))


def test_to_dot_group_step_draws_one_node_per_step_and_the_recurrence_between_them(lstm_loss):
    dot = tg.to_dot(lstm_loss, group="step")
    groups = dict(re.findall(r'^\s*(g\d+) \[shape=box, style=rounded, label="([^"]+)\\n\d+ ops"\];', dot, flags=re.M))
    assert list(groups.values()) == ["LSTM layer 0, setup", "LSTM layer 0, t=0", "LSTM layer 0, t=1",
                                     "LSTM layer 0, t=2"]
    edges = re.findall(r"^\s*(\w+) -> (\w+);$", dot, flags=re.M)
    assert len(edges) == len(set(edges)) and all(a != b for a, b in edges)
    g = list(groups)
    assert (g[1], g[2]) in edges and (g[2], g[3]) in edges and (g[1], g[3]) not in edges
    assert tg.to_dot(lstm_loss, group="layer").count("style=rounded") == 1


def test_to_dot_names_the_leaves_it_is_given():
    lstm = tg.nn.LSTM(2, 3, generator=tg.Generator(0))
    x = tg.randn(2, 1, 2, requires_grad=True)
    out, _ = lstm(x)
    dot = tg.to_dot(out.sum(), group="step", names={"x": x, **dict(lstm.named_parameters())})
    leaves = re.findall(r'^\s*leaf\d+ \[shape=box, label="(\w+)\\n', dot, flags=re.M)
    assert sorted(leaves) == sorted(["x", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"])


def test_grouping_options_are_checked(lstm_loss):
    with pytest.raises(ValueError, match="group must be one of 'op', 'step', 'layer'"):
        tg.print_graph(lstm_loss, group="steps")
    with pytest.raises(ValueError, match="group must be one of"):
        tg.to_dot(lstm_loss, group="time")
    with pytest.raises(ValueError, match="rankdir"):
        tg.to_dot(lstm_loss, rankdir="up")
