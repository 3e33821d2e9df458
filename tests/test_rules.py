"""``tinygrad_rnn.ops.rules``: the public functions for backward rules, which work on raw arrays
(normal backward) and on Tensors (create_graph). Each gives the same values both ways; ops written
with them pass the second-order check; a rule written with NumPy or backend functions gets an
error naming the op and the function to use instead (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import F64, leaf
from hypothesis import given

import tinygrad_rnn as tg
from tinygrad_rnn import Function, backend
from tinygrad_rnn.ops import rules
from tinygrad_rnn.testing import gradcheck, gradgradcheck
from tinygrad_rnn.testing.strategies import arrays

UNARY = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh,
    "sigmoid": lambda a: 1 / (1 + np.exp(-a)), "relu": lambda a: np.maximum(a, 0), "abs": np.abs,
    "sign": np.sign, "zeros_like": np.zeros_like,
}
BINARY = {"maximum": np.maximum, "minimum": np.minimum}


def test_every_public_rule_function_is_documented_and_listed():
    for name in rules.__all__:
        f = getattr(rules, name)
        assert f.__doc__ and f.__module__ == "tinygrad_rnn.ops.rules", name
    assert set(UNARY) | set(BINARY) | {"clip", "where", "broadcast_to", "sum_to", "scatter_add"} == set(rules.__all__)


@pytest.mark.parametrize("name", sorted(UNARY))
@given(a=arrays((2, 3), lo=0.1, hi=2.0))
def test_unary_rule_functions_give_the_same_values_on_arrays_and_tensors(name, a):
    f = getattr(rules, name)
    on_array, on_tensor = f(a.copy()), f(leaf(a))
    assert isinstance(on_tensor, tg.Tensor) and not isinstance(on_array, tg.Tensor)
    np.testing.assert_allclose(on_array, UNARY[name](a), **F64)
    np.testing.assert_allclose(on_tensor.numpy(), UNARY[name](a), **F64)


@pytest.mark.parametrize("name", sorted(BINARY))
@given(a=arrays((2, 3)), b=arrays((3,)))
def test_binary_rule_functions_broadcast_on_arrays_and_tensors(name, a, b):
    f = getattr(rules, name)
    np.testing.assert_allclose(f(a, b), BINARY[name](a, b), **F64)
    np.testing.assert_allclose(f(leaf(a), b).numpy(), BINARY[name](a, b), **F64)
    np.testing.assert_allclose(f(a, leaf(b)).numpy(), BINARY[name](a, b), **F64)


def test_where_clip_and_the_shape_functions_on_arrays_and_tensors():
    a = np.array([[-1.5, 0.5, 2.0], [0.25, -0.3, 1.0]])
    cond = a > 0
    for c in (cond, tg.Tensor(cond)):
        np.testing.assert_array_equal(rules.where(c, leaf(a), 0.0).numpy(), np.where(cond, a, 0.0))
        np.testing.assert_array_equal(rules.where(c, a, 0.0), np.where(cond, a, 0.0))
    np.testing.assert_array_equal(rules.clip(leaf(a), -1.0, 1.0).numpy(), np.clip(a, -1.0, 1.0))
    np.testing.assert_array_equal(rules.clip(a, None, 1.0), np.clip(a, None, 1.0))
    np.testing.assert_array_equal(rules.broadcast_to(leaf(a[0]), (4, 3)).numpy(), np.broadcast_to(a[0], (4, 3)))
    np.testing.assert_array_equal(rules.sum_to(leaf(a), (1, 3)).numpy(), a.sum(0, keepdims=True))
    np.testing.assert_array_equal(rules.sum_to(a, (3,)), a.sum(0))
    dense = rules.scatter_add(leaf(a[0]), (5, 3), np.array([1]))  # one row into a (5, 3) zero
    np.testing.assert_array_equal(dense.numpy()[1], a[0])
    assert not dense.numpy()[[0, 2, 3, 4]].any()


# ---------------------------------------------------------------- an op written by a user

class SoftplusWithBackend(Function):
    """softplus whose backward calls ``backend.exp``: right on arrays, wrong under create_graph."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return backend.log(1 + backend.exp(x))

    @staticmethod
    def backward(ctx, grad):
        # y = log(1 + exp(x)); dy/dx = 1 - 1 / (1 + exp(x))
        (x,) = ctx.saved
        return grad * (1 - 1 / (1 + backend.exp(x)))


class Softplus(SoftplusWithBackend):
    """The same op written with ``tinygrad_rnn.ops.rules``: differentiable twice."""

    @staticmethod
    def backward(ctx, grad):
        # y = log(1 + exp(x)); dy/dx = 1 - 1 / (1 + exp(x)) = sigmoid(x)
        (x,) = ctx.saved
        return grad * (1 - 1 / (1 + rules.exp(x)))


def test_a_rule_using_a_backend_function_gets_an_error_naming_the_op_and_the_rules_function():
    # issue 13: gradgradcheck failed with NumPy's "operand 'Tensor' does not support ufuncs"
    x = leaf([[-0.7, 0.2, 1.3], [0.4, -1.1, 0.9]])
    assert gradcheck(lambda t: SoftplusWithBackend.apply(t), [x])  # first order runs on arrays: fine
    with pytest.raises(tg.BackwardError) as info:
        gradgradcheck(lambda t: SoftplusWithBackend.apply(t), [x])
    msg = str(info.value)
    assert "SoftplusWithBackend.backward" in msg and "tinygrad_rnn.ops.rules.exp" in msg
    assert "create_graph" in msg
    assert gradgradcheck(lambda t: Softplus.apply(t), [x])  # the fix the message names


def test_a_rule_that_makes_an_object_array_from_tensors_gets_the_same_advice():
    class ReluWithNumpyWhere(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return backend.maximum(x, 0)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved
            return np.where(np.asarray(x.data if isinstance(x, tg.Tensor) else x) > 0, grad, 0.0)

    x = leaf([0.5, -1.0, 2.0])
    with pytest.raises(tg.BackwardError, match=r"ReluWithNumpyWhere.backward .*tinygrad_rnn.ops.rules"):
        tg.grad(ReluWithNumpyWhere.apply(x).sum(), x, create_graph=True)
