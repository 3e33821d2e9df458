"""Errors are ours, raised at the user's call, and name the op, the shapes or dtypes, and the fix."""

from __future__ import annotations

import operator

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn.testing.strategies import shapes


@pytest.mark.parametrize(("error", "builtin"), [
    (tg.ShapeError, ValueError), (tg.DTypeError, TypeError), (tg.DeviceError, RuntimeError),
    (tg.BackwardError, RuntimeError), (tg.AnomalyError, FloatingPointError),
])
def test_error_classes_are_exported_and_share_one_base(error, builtin):
    assert error.__name__ in tg.__all__ and getattr(tg, error.__name__) is error
    assert issubclass(error, tg.TinygradRNNError) and issubclass(error, builtin)


# ---------------------------------------------------------------- shapes

def test_matmul_inner_dimension_message():
    with pytest.raises(tg.ShapeError) as info:
        tg.zeros(2, 3) @ tg.zeros(4, 5)
    assert "matmul: (2, 3) @ (4, 5): inner dimensions 3 and 4 differ" in str(info.value)


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5), st.integers(1, 5), st.booleans())
def test_matmul_mismatch_names_both_shapes(m, k1, k2, n, vector):
    assume(k1 != k2)
    a, b = tg.zeros(m, k1), (tg.zeros(k2) if vector else tg.zeros(k2, n))
    with pytest.raises(tg.ShapeError, match=rf"inner dimensions {k1} and {k2} differ"):
        a @ b


def test_broadcasting_add_names_the_op_and_both_shapes():
    with pytest.raises(tg.ShapeError) as info:
        tg.zeros(2, 3) + tg.zeros(4)
    message = str(info.value)
    assert "add" in message and "(2, 3)" in message and "(4,)" in message


@given(shapes(max_dims=3, max_side=3), shapes(max_dims=3, max_side=3),
       st.sampled_from([("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                        ("div", operator.truediv), ("maximum", tg.maximum)]))
def test_binary_ops_broadcast_exactly_when_numpy_does(sa, sb, op):
    name, fn = op
    a, b = tg.ones(sa, requires_grad=True), tg.ones(sb)
    try:
        expected = np.broadcast_shapes(sa, sb)
    except ValueError:
        with pytest.raises(tg.ShapeError) as info:
            fn(a, b)
        assert name in str(info.value) and str(sa) in str(info.value) and str(sb) in str(info.value)
    else:
        assert fn(a, b).shape == expected


def test_reshape_to_a_bad_size_names_both_shapes():
    with pytest.raises(tg.ShapeError) as info:
        tg.zeros(2, 3).reshape(4, 2)
    assert "reshape" in str(info.value) and "(2, 3)" in str(info.value) and "(4, 2)" in str(info.value)


def test_cat_mismatch_names_cat_and_the_shapes():
    with pytest.raises(tg.ShapeError) as info:
        tg.cat([tg.zeros(2, 3), tg.zeros(2, 4)], axis=0)
    assert "cat" in str(info.value) and "(2, 3)" in str(info.value) and "(2, 4)" in str(info.value)
    assert tg.cat([tg.zeros(2, 3), tg.zeros(2, 4)], axis=1).shape == (2, 7)


def test_stack_mismatch_names_stack_and_the_shapes():
    with pytest.raises(tg.ShapeError, match=r"stack.*\(2, 3\), \(3, 2\)"):
        tg.stack([tg.zeros(2, 3), tg.zeros(3, 2)])


def test_expand_and_squeeze_explain_bad_shapes():
    with pytest.raises(tg.ShapeError, match=r"expand: cannot broadcast \(2, 3\) to \(3, 3\)"):
        tg.zeros(2, 3).expand(3, 3)
    with pytest.raises(tg.ShapeError, match="squeeze"):
        tg.zeros(2, 3).squeeze(0)


def test_axis_out_of_range_is_a_shape_error():
    for call in (lambda t: t.sum(axis=2), lambda t: t.softmax(axis=-3), lambda t: t.max(axis=(0, 5))):
        with pytest.raises(tg.ShapeError, match="out of range"):
            call(tg.zeros(2, 3))


# ---------------------------------------------------------------- dtypes

@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow,
                                operator.matmul, tg.maximum, tg.minimum, lambda a, b: tg.cat([a, b]),
                                lambda a, b: tg.stack([a, b]), lambda a, b: tg.where(a > 0, a, b)])
def test_float32_meeting_float64_raises_dtype_error_naming_both(op):
    a, b = tg.ones(2), tg.ones(2, dtype="float64")
    for x, y in ((a, b), (b, a)):
        with pytest.raises(tg.DTypeError) as info:
            op(x, y)
        assert "float32" in str(info.value) and "float64" in str(info.value)


def test_where_needs_a_bool_condition():
    with pytest.raises(tg.DTypeError, match="bool"):
        tg.where(tg.ones(2), tg.ones(2), tg.zeros(2))


def test_float_index_tensors_are_rejected():
    with pytest.raises(tg.DTypeError, match="integer or bool"):
        tg.zeros(3)[tg.tensor([0.0])]


def test_tensor_from_strings_is_a_dtype_error():
    with pytest.raises(tg.DTypeError):
        tg.tensor(["a", "b"])


# ---------------------------------------------------------------- where errors surface

@pytest.mark.parametrize("call", [
    lambda: tg.zeros(2, 3) + tg.zeros(4),
    lambda: tg.zeros(2, 3, requires_grad=True) * tg.zeros(3, 2),
    lambda: tg.zeros(2, 3).reshape(7),
    lambda: tg.zeros(2, 3) @ tg.zeros(2, 3),
    lambda: tg.zeros(2, 3).expand(2, 4),
    lambda: tg.cat([tg.zeros(1, 2), tg.zeros(1, 3)]),
    lambda: tg.zeros(2) + tg.zeros(2, dtype="float64"),
])
def test_errors_are_ours_not_deep_numpy_errors(call):
    with pytest.raises(tg.TinygradRNNError) as info:
        call()
    # the last frame of the traceback is in tinygrad_rnn, not inside NumPy
    assert "numpy" not in info.traceback[-1].path.parts
