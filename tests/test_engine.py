"""Properties of the engine itself: accumulation, linearity, grad modes, graph release and
memory, ``grad()`` and higher derivatives, anomaly mode, misuse errors, dtypes.

Per-op forward values and gradients are checked in test_ops.py; here the ops are only
the material the engine works on.
"""

from __future__ import annotations

import gc
import io
import sys
import tracemalloc
import weakref

import numpy as np
import pytest
from helpers import F64, leaf, run_python
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn.testing.strategies import arrays, shapes


# ---------------------------------------------------------------- accumulation

@given(arrays(shapes(max_dims=2)))
def test_value_used_twice_in_one_op_gets_both_gradients(a):
    x = leaf(a)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * a, **F64)


@given(arrays(shapes(max_dims=2)))
def test_value_used_by_two_branches_gets_the_sum_of_their_gradients(a):
    x = leaf(a)
    (x.tanh() + x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (1 - np.tanh(a) ** 2) + 3.0, **F64)


def test_grads_accumulate_across_backward_calls_until_reset_to_none():
    x = leaf([1.0, -2.0])
    for k in (1, 2, 3):
        (x * x).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), k * 2 * x.numpy())
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())


def test_leaf_grad_does_not_alias_the_upstream_gradient():
    x = leaf([1.0, 2.0])
    g = np.array([1.0, 1.0])
    (x + 0.0).backward(g)
    (x + 0.0).backward(g)
    np.testing.assert_array_equal(g, [1.0, 1.0])
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_backward_accepts_the_upstream_gradient_as_tensor_array_or_list():
    x = leaf([1.0, 2.0])
    for g in (leaf([1.0, 3.0], requires_grad=False), np.array([1.0, 3.0]), [1.0, 3.0]):
        x.grad = None
        (x * 2.0).backward(g)
        np.testing.assert_allclose(x.grad.numpy(), [2.0, 6.0])


@given(st.data(), shapes(min_dims=1, max_dims=2), st.floats(-3, 3), st.floats(-3, 3))
def test_backward_is_linear_in_the_upstream_gradient(data, shape, a, b):
    x = leaf(data.draw(arrays(shape)))
    g1, g2 = data.draw(arrays(shape)), data.draw(arrays(shape))
    y = (x.tanh() * x + x.sum()) * 2.0

    def vjp(g):
        return tg.grad(y, x, grad_outputs=leaf(g, requires_grad=False), retain_graph=True)[0].numpy()

    np.testing.assert_allclose(vjp(a * g1 + b * g2), a * vjp(g1) + b * vjp(g2), rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- grad modes

def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with tg.no_grad():
        y = (x * 2.0).tanh()
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()
    assert y.node is None and not y.requires_grad


def test_detach_records_nothing_and_shares_the_array():
    x = leaf([1.0, 2.0])
    d = (x * 2.0).detach()
    assert d.node is None and not d.requires_grad
    y = d * x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), d.numpy())  # no path back through d
    assert np.shares_memory(x.detach().numpy(), x.numpy())


def test_enable_grad_inside_no_grad_records():
    x = leaf([1.0, 2.0])
    with tg.no_grad():
        with tg.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.node is not None and y.requires_grad
    assert z.node is None


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(KeyError), tg.no_grad():
        raise KeyError("inside no_grad")
    assert tg.is_grad_enabled()


# ---------------------------------------------------------------- graph release

def test_second_backward_through_a_released_graph_raises_and_says_what_to_do():
    x = leaf([1.0, 2.0])
    y = (x.tanh() * x).sum()
    y.backward()
    with pytest.raises(tg.BackwardError) as info:
        y.backward()
    assert "retain_graph=True" in str(info.value) and "detach()" in str(info.value)


def test_retain_graph_allows_a_second_backward_that_doubles_the_grads():
    x = leaf([0.5, -1.5])
    y = (x.tanh() * x).sum()
    y.backward(retain_graph=True)
    once = x.grad.numpy().copy()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), 2 * once, **F64)


def test_backward_releases_every_nodes_saved_arrays():
    x = leaf(np.ones((3, 4)))
    h = x.tanh()
    hh = h * h
    y = hh.sum()
    nodes = [h.node, hh.node, y.node]
    assert all(n.saved is not None for n in nodes)
    y.backward()
    assert all(n.saved is None for n in nodes)


def test_a_20000_op_chain_runs_backward_and_inspection_without_recursion_error():
    assert sys.getrecursionlimit() < 20_000
    x = leaf([1.0])
    y = x
    for _ in range(20_000):
        y = y + x
    assert len(tg.trace(y)) == 20_000
    assert tg.to_dot(y).count("->") == 40_000
    out = io.StringIO()
    tg.print_graph(y, file=out)
    assert out.getvalue().count("\n") == 20_002
    y.backward(np.ones(1))
    np.testing.assert_allclose(x.grad.numpy(), [20_001.0])
    del y  # dropping a deep chain must not overflow the C stack either


def test_a_dropped_forward_pass_frees_its_graph_without_the_cycle_collector():
    x = leaf(np.ones((4, 3)))
    w = leaf(np.ones((3, 2)))
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        h = (x @ w).tanh()
        y = (h * h).sum()
        refs = [weakref.ref(h), weakref.ref(h.node), weakref.ref(y.node)]
        del h, y
        alive = [r() is not None for r in refs]
    finally:
        if gc_was_enabled:
            gc.enable()
    assert not any(alive), "the graph survives its output: Tensor -> node -> Tensor cycle?"


def test_a_graph_is_freed_after_backward_once_the_output_is_dropped():
    x = leaf(np.ones(3))
    e = x.exp()
    y = (e * 2.0).sum()
    ref = weakref.ref(e.node)
    del e
    y.backward()
    del y
    if ref() is not None:
        gc.collect()
    assert ref() is None
    assert x.grad is not None and x.grad.node is None


def _train(n_iter: int, checkpoints: tuple[int, ...]) -> dict[int, int]:
    gen = tg.Generator(0)
    w1 = tg.randn(8, 16, generator=gen, requires_grad=True)
    w2 = tg.randn(16, 1, generator=gen, requires_grad=True)
    xs = tg.randn(32, 8, generator=gen)
    target = tg.randn(32, 1, generator=gen)
    memory = {}
    for it in range(1, n_iter + 1):
        pred = (xs @ w1).tanh() @ w2
        loss = ((pred - target) ** 2).mean()
        loss.backward()
        with tg.no_grad():
            for p in (w1, w2):
                p.data -= 0.01 * p.grad.data
                p.grad = None
        if it in checkpoints:
            gc.collect()  # a full collection also empties the interpreter's free lists of tuples, floats...
            memory[it] = tracemalloc.get_traced_memory()[0]
    return memory


def test_training_loop_memory_does_not_grow_with_iterations():
    tracemalloc.start()
    try:
        memory = _train(400, (50, 400))
    finally:
        tracemalloc.stop()
    growth = memory[400] - memory[50]
    assert growth < 64 * 1024, f"traced memory grew by {growth} bytes between iterations 50 and 400"


# ---------------------------------------------------------------- grad()

def test_grad_returns_a_tuple_and_leaves_dot_grad_alone():
    x, w = leaf([1.0, 2.0]), leaf([3.0, -1.0])
    w.grad = leaf([7.0, 7.0], requires_grad=False)
    gx, gw = tg.grad((x * w).sum(), [x, w])
    np.testing.assert_allclose(gx.numpy(), [3.0, -1.0])
    np.testing.assert_allclose(gw.numpy(), [1.0, 2.0])
    assert x.grad is None
    np.testing.assert_array_equal(w.grad.numpy(), [7.0, 7.0])
    assert isinstance(tg.grad((x * x).sum(), x), tuple)


@given(arrays(shapes(min_dims=1, max_dims=2)))
def test_grad_with_respect_to_an_intermediate_tensor(a):
    x = leaf(a)
    h = x.tanh()
    (gh,) = tg.grad((h * h * 3.0).sum(), h)
    np.testing.assert_allclose(gh.numpy(), 6.0 * np.tanh(a), **F64)


def test_grad_of_a_sequence_of_outputs_sums_their_gradients():
    x = leaf([0.5, 2.0])
    (g,) = tg.grad([(x * x).sum(), (x * 3.0).sum()], [x])
    np.testing.assert_allclose(g.numpy(), 2 * x.numpy() + 3.0)


def test_grad_of_an_unused_input_raises_unless_allow_unused():
    x, unused = leaf([1.0]), leaf([2.0])
    with pytest.raises(tg.BackwardError, match="allow_unused=True"):
        tg.grad((x * 2.0).sum(), [x, unused])
    gx, gu = tg.grad((x * 2.0).sum(), [x, unused], allow_unused=True)
    assert gu is None and gx.item() == 2.0


def _hessian_of_sum_tanh_squared(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    # f = sum(tanh(u)^2), u = A x: df/du = 2 t (1 - t^2), d2f/du2 = 2 (1 - t^2)(1 - 3 t^2), H = A^T diag(.) A
    t = np.tanh(a @ x)
    return a.T @ np.diag(2 * (1 - t**2) * (1 - 3 * t**2)) @ a


@given(st.integers(1, 4), st.integers(1, 4), st.data())
def test_hessian_vector_product_matches_the_hand_derived_hessian(m, n, data):
    a_np = data.draw(arrays((m, n)))
    x_np, v_np = data.draw(arrays((n,))), data.draw(arrays((n,)))
    a, x = leaf(a_np, requires_grad=False), leaf(x_np)
    f = (a @ x).tanh() ** 2
    (g,) = tg.grad(f.sum(), x, create_graph=True)
    assert g.requires_grad
    (hv,) = tg.grad(g, x, grad_outputs=leaf(v_np, requires_grad=False))
    np.testing.assert_allclose(hv.numpy(), _hessian_of_sum_tanh_squared(a_np, x_np) @ v_np,
                               rtol=1e-9, atol=1e-9)


@given(arrays((3,), lo=-2, hi=2))
def test_third_derivative_of_x_to_the_fourth_is_24x(a):
    x = leaf(a)
    (d1,) = tg.grad((x**4).sum(), x, create_graph=True)
    (d2,) = tg.grad(d1.sum(), x, create_graph=True)
    (d3,) = tg.grad(d2.sum(), x)
    np.testing.assert_allclose(d1.numpy(), 4 * a**3, **F64)
    np.testing.assert_allclose(d2.numpy(), 12 * a**2, **F64)
    np.testing.assert_allclose(d3.numpy(), 24 * a, **F64)


def test_backward_with_create_graph_gives_a_differentiable_grad():
    x = leaf([1.5, -0.5])
    (x**3).sum().backward(create_graph=True)
    (h,) = tg.grad(x.grad.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.numpy())


def _rebind_under_no_grad(x):
    with tg.no_grad():
        x -= 1.0


def _rebind_by_an_optimizer_step(x):
    x.grad = leaf([1.0, -34.0], requires_grad=False)
    tg.optim.SGD([x], lr=0.5).step()


@pytest.mark.parametrize("rebind", [_rebind_under_no_grad, _rebind_by_an_optimizer_step],
                         ids=["x -= 1 under no_grad", "optimizer step"])
def test_create_graph_after_a_leaf_was_rebound_uses_the_values_the_graph_was_built_from(rebind):
    # issue 11: the rule got the leaf Tensor itself, whose .data the update had rebound
    x = leaf([1.0, 2.0])
    y = (x**3).sum()
    rebind(x)
    assert x.numpy().tolist() != [1.0, 2.0]
    (g,) = tg.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.numpy(), [3.0, 12.0])  # 3 x^2 at the recorded x = [1, 2]
    (h,) = tg.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), [6.0, 12.0])  # 6 x there too, and it still reaches x
    z = (x**3).sum()  # a new graph sees the new values
    (g,) = tg.grad(z, x, create_graph=True)
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)




@given(arrays((3,), lo=0.5, hi=2))
def test_second_derivative_tells_an_input_from_its_detached_self(a):
    # x and x.detach() hand an op the same array object; only x is a variable.
    x = leaf(a)
    for f in (lambda x: x * x.detach(), lambda x: x.detach() * x, lambda x: x / x.detach()):
        (g,) = tg.grad(f(x).sum(), x, create_graph=True)
        assert not g.requires_grad  # the first derivative is a constant (x.detach() or 1 / x.detach())
    (g,) = tg.grad((x.detach() / x).sum(), x, create_graph=True)  # -c / x**2, c = x.detach()
    (h,) = tg.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 2 / a**2, **F64)  # 2 c / x**3
    (g,) = tg.grad((x * x).sum(), x, create_graph=True)  # one variable twice: both uses count
    (h,) = tg.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), np.full(3, 2.0), **F64)
# ---------------------------------------------------------------- anomaly mode

def test_detect_anomaly_names_the_op_whose_forward_gives_nan():
    x = leaf([-1.0, 1.0])
    with np.errstate(invalid="ignore"), tg.detect_anomaly(), pytest.raises(tg.AnomalyError, match="Log"):
        x.log()


def test_detect_anomaly_names_the_op_whose_backward_gives_inf():
    x = leaf([0.0, 4.0])
    y = x.sqrt().sum()  # forward is finite: sqrt(0) = 0
    with np.errstate(divide="ignore"), tg.detect_anomaly(), pytest.raises(tg.AnomalyError, match="Sqrt"):
        y.backward()


def test_without_detect_anomaly_nan_and_inf_pass_silently():
    x = leaf([-1.0, 0.0])
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(x.log().numpy()[0])
        x.sqrt().sum().backward()
    assert np.isinf(x.grad.numpy()[1])


# ---------------------------------------------------------------- misuse

def test_backward_on_a_non_scalar_without_grad_says_it_needs_one():
    y = leaf([1.0, 2.0]) * 2.0
    with pytest.raises(tg.BackwardError, match="not a scalar"):
        y.backward()


def test_backward_with_a_gradient_of_the_wrong_shape_raises_shape_error():
    y = leaf([1.0, 2.0]) * 2.0
    with pytest.raises(tg.ShapeError, match=r"\(3,\)"):
        y.backward(np.ones(3))


def test_backward_on_a_tensor_without_graph_raises():
    with pytest.raises(tg.BackwardError, match="requires_grad=True"):
        tg.tensor([1.0]).sum().backward()


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(tg.DTypeError):
        tg.tensor([1, 2], requires_grad=True)
    with pytest.raises(tg.DTypeError):
        tg.arange(3).requires_grad_()


def test_comparisons_return_tensors_without_gradient():
    x = leaf([-1.0, 0.0, 2.0])
    for c in (x > 0, x >= 0, x < 0, x <= 0, x == 0, x != 0):
        assert isinstance(c, tg.Tensor)
        assert c.dtype == tg.bool_ and not c.requires_grad and c.node is None
    np.testing.assert_array_equal((x > 0).numpy(), [False, False, True])


# ---------------------------------------------------------------- dtypes

def test_float32_inputs_give_float32_values_and_grads_everywhere():
    x = tg.randn(4, 3, requires_grad=True)
    w = tg.randn(3, 5, requires_grad=True)
    b = tg.zeros(5, requires_grad=True)
    h = (x @ w + b).tanh() * 0.5 - 1 / (1 + (x**2).mean())
    p = h.softmax(axis=-1)
    loss = (p.log_softmax() * 2).mean() + (h.sigmoid() / 3.0).sum() + h.exp().mean(axis=0).sum() \
        + h.logsumexp().sum() + h.var(axis=0).sum() + tg.where(h > 0, h, h * 0.1)[1:].sum() \
        + (2.0 ** tg.cat([h, h.relu()])).max()
    assert all(t.dtype == tg.float32 for t in (h, p, loss))
    loss.backward()
    assert [t.grad.dtype for t in (x, w, b)] == [tg.float32] * 3


def test_second_derivatives_of_float32_stay_float32():
    x = tg.randn(3, requires_grad=True)
    a = tg.randn(4, 3)
    f = ((a @ x).tanh() ** 2).sum() + (x.softmax() * x).sum() + x.sigmoid().mean()
    (g,) = tg.grad(f, x, create_graph=True)
    (h,) = tg.grad(g.sum(), x)
    assert g.dtype == h.dtype == tg.float32


def test_default_dtype_float64_makes_new_float_tensors_float64():
    tg.set_default_dtype("float64")
    assert tg.get_default_dtype() == tg.float64
    for t in (tg.tensor([1.0]), tg.tensor(2.5), tg.zeros(2), tg.ones(2), tg.randn(2), tg.rand(2),
              tg.full((2,), 3.0), tg.arange(0.0, 1.0, 0.5)):
        assert t.dtype == tg.float64
    assert tg.tensor([1]).dtype == tg.int64
    tg.set_default_dtype("float32")
    assert tg.zeros(2).dtype == tg.float32


def test_set_default_dtype_rejects_integer_dtypes():
    with pytest.raises(tg.DTypeError):
        tg.set_default_dtype("int64")


def test_weight_used_by_many_matmuls_sums_lazy_dense_and_sparse_terms_exactly():
    # A recurrent weight's gradient: T matmul terms (kept as factors and summed in one product),
    # plus a dense term and an indexing (sparse) term reaching the same leaf.
    rng = np.random.default_rng(3)
    w = tg.Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    xs = [rng.standard_normal((2, 4)) for _ in range(5)]
    gs = [rng.standard_normal((2, 3)) for _ in range(5)]
    loss = sum(((tg.Tensor(x) @ w) * tg.Tensor(g)).sum() for x, g in zip(xs, gs))
    loss = loss + (w * 2.0).sum() + w[1].sum()
    loss.backward()
    expected = sum(x.T @ g for x, g in zip(xs, gs)) + 2.0
    expected[1] += 1.0
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-12)


def test_weight_reused_through_its_transpose_at_every_step_matches_finite_differences():
    from tinygrad_rnn.testing import gradcheck

    rng = np.random.default_rng(4)
    h0 = rng.standard_normal((2, 4))

    def unrolled(w):
        wt, h, outs = w.T, tg.Tensor(h0), []  # W^T built once and used at every step, as in the RNN layers
        for _ in range(6):
            h = (h @ wt).tanh() @ w
            outs.append(h)
        return tg.stack(outs)

    assert gradcheck(unrolled, [tg.Tensor(rng.standard_normal((3, 4)) * 0.5, requires_grad=True)])


def test_create_graph_gives_each_leaf_its_own_writable_grad():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward(create_graph=True)  # Add hands both inputs one (broadcast) gradient
    assert a.grad.data is not b.grad.data
    tg.nn.utils.clip_grad_norm_([a, b], 0.1)  # binds each .grad a scaled array
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy())
    (a * 1.0).sum().backward()  # a later plain backward accumulates into it
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy() + 1.0)


def test_broadcasting_rule_whose_gradient_does_not_reduce_to_the_input_shape_is_named():
    class BadBroadcast(tg.Function):
        broadcasting = True

        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            return grad[:, :2]  # wrong: (3, 2) for a (3, 3) input

    x = tg.tensor(np.ones((3, 3)), requires_grad=True)
    with pytest.raises(tg.BackwardError, match="BadBroadcast"):
        BadBroadcast.apply(x).sum().backward()


def test_a_numpy_failure_inside_an_op_becomes_our_error_naming_the_op():
    with pytest.raises(tg.DTypeError, match="sigmoid"):
        tg.tensor([1, 2]).sigmoid()  # int data: NumPy refuses the in-place float arithmetic


def test_relu_of_minus_infinity_is_zero():
    np.testing.assert_array_equal(tg.tensor([-np.inf, 1.0, -2.0]).relu().numpy(), [0.0, 1.0, 0.0])


# ---------------------------------------------------------------- buffers the engine may write into

def test_a_sum_is_added_into_in_place_only_when_nothing_else_holds_it():
    from tinygrad_rnn.gradsum import SparseGrad, add_grads

    sums = {0: np.ones(3)}  # a rule's fresh result, held only by the engine's dict of sums
    first = id(sums[0])
    sums[0] = add_grads(sums.get(0), np.ones(3), set())
    assert id(sums[0]) == first and sums[0].tolist() == [2.0, 2.0, 2.0]  # added in place
    sums[0] = add_grads(sums.get(0), SparseGrad((3,), 1, np.float64(5.0)), set())
    assert id(sums[0]) == first and sums[0].tolist() == [2.0, 7.0, 2.0]

    kept = np.ones(3)  # also held elsewhere (the caller's array, a saved one, a + b's shared one)
    view_base = np.ones(4)
    for held in (kept, view_base[:3]):
        sums = {0: held}
        before = held.copy()
        sums[0] = add_grads(sums.get(0), np.ones(3), set())
        sums[0] = add_grads(sums.get(0), SparseGrad((3,), 0, np.float64(1.0)), set())
        assert sums[0] is not held and sums[0].tolist() == (before + [2.0, 1.0, 1.0]).tolist()
        np.testing.assert_array_equal(held, before)  # never written to


@given(arrays((2, 3), lo=-2, hi=2))
def test_gradients_summed_into_a_rule_output_leave_shared_arrays_alone(a):
    # y = x * 2 gets a fresh gradient from s = y + y (one array for both inputs) ... and more
    # gradient reaches y later; also a slice of y (a sparse term added in place).
    x = leaf(a)
    y = x * 2.0
    s = (y + y).tanh() + y[:, 1:].sum() + (y * y).sum()  # (2, 3): the sums broadcast
    g = np.full(s.shape, 0.5)
    s.backward(g)
    t, in_slice = np.tanh(4 * a), np.arange(3) >= 1
    # ds/dy: 2 * 0.5 (1 - t^2) from the tanh, sum(g) = 3 on the slice, sum(g) * 2y from y*y
    expected = 2 * ((1 - t**2) + 3.0 * in_slice + 3.0 * 2 * (2 * a))
    np.testing.assert_allclose(x.grad.numpy(), expected, **F64)
    np.testing.assert_array_equal(g, np.full(s.shape, 0.5))  # the caller's array is untouched


@given(arrays((3, 4)), arrays((4, 5)), arrays((5,)))
def test_addmm_with_the_row_major_transpose_of_b_gives_the_same_gradients(a, b, c):
    from tinygrad_rnn.ops.linalg import Addmm

    grads = []
    for bt in (None, np.ascontiguousarray(b.T)):
        ta, tb, tc = leaf(a), leaf(b), leaf(c)
        Addmm.apply(tc, ta, tb, bt=bt).tanh().sum().backward()
        grads.append([t.grad.numpy() for t in (ta, tb, tc)])
    for g0, g1 in zip(*grads):
        np.testing.assert_allclose(g1, g0, **F64)
    ta, tb, tc = leaf(a), leaf(b), leaf(c)  # create_graph: b itself (a Tensor) is used, bt ignored
    (ga,) = tg.grad(Addmm.apply(tc, ta, tb, bt=np.zeros_like(b.T)).sum(), ta, create_graph=True)
    np.testing.assert_allclose(ga.numpy(), np.ones((3, 5)) @ b.T, **F64)


def test_a_leaf_used_through_its_transpose_gets_a_row_major_grad():
    # the gradient reaches W as a transposed view; .grad must match W's layout (optimizers
    # run elementwise passes over both) and hold the right values
    w = leaf(np.arange(6.0).reshape(2, 3))
    x = leaf(np.ones((4, 3)))
    (x @ w.T).sum().backward()
    assert w.grad.numpy().flags.c_contiguous
    np.testing.assert_array_equal(w.grad.numpy(), np.full((2, 3), 4.0))
    big = leaf(np.ones((300, 400)))  # large enough for the blocked transposed copy
    (leaf(np.ones((2, 400))) @ big.T).sum().backward()
    assert big.grad.numpy().flags.c_contiguous
    np.testing.assert_array_equal(big.grad.numpy(), np.full((300, 400), 2.0))


def test_in_place_sums_are_calibrated_without_a_tracer_in_the_way():
    # a tracer that reads frame locals during the import (a debugger) must not inflate the
    # reference count that decides when a gradient sum may be written in place
    out = run_python("""
        import sys
        def tracer(frame, event, arg):
            frame.f_locals
            return tracer
        sys.settrace(tracer)
        from tinygrad_rnn import gradsum
        sys.settrace(None)
        print(gradsum._SOLE_REFS, gradsum._calibrate())
    """)
    assert out.returncode == 0, out.stderr
    traced, plain = out.stdout.split()
    assert traced == plain


# ---------------------------------------------------------------- found by tests/test_fuzz.py

def test_gradients_of_a_0d_tensor_used_densely_and_through_indexing_add_up():
    # NumPy returns scalars for 0-d arithmetic: a sum of two was a scalar the engine then tried
    # to add a sparse (indexing) gradient into in place ("does not support item assignment")
    x = tg.tensor(2.0, requires_grad=True)
    (x[...] + x * 2.0 + x * 3.0).backward()
    assert x.grad.item() == 6.0 and x.grad.shape == ()
    y = leaf(1.5)
    (y[()] * y + y ** 2 + y[...]).backward()
    assert y.grad.item() == 2 * 1.5 + 2 * 1.5 + 1
