"""Every op in tests/op_specs.py against its NumPy reference: forward values (on every device,
and in float32), first and second derivatives against finite differences, no mutation of
inputs or upstream gradients, gradients shaped and typed like their inputs. Then tests that
show the gradient checks catch wrong backward rules, and a few explicit examples.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOL
from helpers import leaf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from op_specs import FORWARD_ONLY_SPECS, GRAD_SPECS, SPECS, TWICE_SPECS, OpSpec, examples

import tinygrad_rnn as tg
from tinygrad_rnn import Function, Tensor
from tinygrad_rnn.testing import GradcheckError, gradcheck, gradgradcheck


def _ids(specs: list[OpSpec]) -> list[str]:
    return [s.name for s in specs]


def _tensors(spec: OpSpec, arrays: list[np.ndarray], dtype=np.float64, device: str = "cpu") -> list[Tensor]:
    """Fresh tensors holding copies of ``arrays`` (so the arrays stay a record of the inputs)."""
    return [tg.tensor(a.astype(dtype), requires_grad=rg, device=device)
            for a, rg in zip(arrays, spec.input_requires_grad())]


def _check_forward(out: Tensor, expected: np.ndarray, dtype: np.dtype) -> None:
    """Values match the reference; float results keep the inputs' dtype, others the reference's."""
    expected = np.asarray(expected)
    got = out.numpy()
    assert got.shape == expected.shape
    if expected.dtype.kind == "f":
        assert out.dtype == dtype, f"{dtype} inputs gave a {out.dtype} result"
        np.testing.assert_allclose(got, expected, **TOL[np.dtype(dtype)])
    else:
        assert out.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def _upstream(out: Tensor) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(out.shape).astype(out.dtype)


# ---------------------------------------------------------------- forward

# ``device`` is a plain string, so sharing it across the examples of one test is safe.
SHARED_FIXTURE_OK = settings(suppress_health_check=[*settings.default.suppress_health_check,
                                                    HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("spec", SPECS, ids=_ids(SPECS))
@SHARED_FIXTURE_OK
@given(data=st.data())
def test_op_forward_matches_numpy_reference(spec: OpSpec, device: str, data) -> None:
    arrays, kw = data.draw(examples(spec))
    out = spec.fn(*_tensors(spec, arrays, device=device), **kw)
    assert out.device == device
    _check_forward(out, spec.ref(*arrays, **kw), np.dtype(np.float64))


@pytest.mark.parametrize("spec", SPECS, ids=_ids(SPECS))
@given(data=st.data())
def test_op_forward_in_float32_matches_reference_and_stays_float32(spec: OpSpec, data) -> None:
    arrays, kw = data.draw(examples(spec))
    arrays = [a.astype(np.float32).astype(np.float64) for a in arrays]  # the values float32 can hold
    out = spec.fn(*_tensors(spec, arrays, np.float32), **kw)
    _check_forward(out, spec.ref(*arrays, **kw), np.dtype(np.float32))


@pytest.mark.parametrize("spec", FORWARD_ONLY_SPECS, ids=_ids(FORWARD_ONLY_SPECS))
@given(data=st.data())
def test_forward_only_op_result_carries_no_gradient(spec: OpSpec, data) -> None:
    arrays, kw = data.draw(examples(spec))
    out = spec.fn(*_tensors(spec, arrays), **kw)
    assert not out.requires_grad and out.grad_fn is None


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("spec", GRAD_SPECS, ids=_ids(GRAD_SPECS))
@given(data=st.data())
def test_op_grad_matches_finite_difference(spec: OpSpec, data) -> None:
    arrays, kw = data.draw(examples(spec))
    gradcheck(lambda *xs: spec.fn(*xs, **kw), _tensors(spec, arrays))


@pytest.mark.parametrize("spec", TWICE_SPECS, ids=_ids(TWICE_SPECS))
@given(data=st.data())
def test_op_second_derivative_matches_finite_difference(spec: OpSpec, data) -> None:
    arrays, kw = data.draw(examples(spec))
    gradgradcheck(lambda *xs: spec.fn(*xs, **kw), _tensors(spec, arrays))


@pytest.mark.parametrize("spec", GRAD_SPECS, ids=_ids(GRAD_SPECS))
@given(data=st.data())
def test_op_does_not_mutate_inputs_or_upstream_grad(spec: OpSpec, data) -> None:
    arrays, kw = data.draw(examples(spec))
    xs = _tensors(spec, arrays)
    out = spec.fn(*xs, **kw)
    g = _upstream(out)
    g_before = g.copy()
    out.backward(Tensor(g))
    for x, a in zip(xs, arrays):
        np.testing.assert_array_equal(x.numpy(), a)
    np.testing.assert_array_equal(g, g_before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("spec", GRAD_SPECS, ids=_ids(GRAD_SPECS))
@given(data=st.data())
def test_op_grad_has_input_shape_and_dtype(spec: OpSpec, dtype, data) -> None:
    arrays, kw = data.draw(examples(spec))
    xs = _tensors(spec, arrays, dtype)
    out = spec.fn(*xs, **kw)
    out.backward(Tensor(_upstream(out)))
    for x in xs:
        if x.requires_grad:
            assert x.grad is not None
            assert x.grad.shape == x.shape and x.grad.dtype == x.dtype


# ---------------------------------------------------------------- the checks have teeth

class _TanhTwiceTooSteep(Function):
    """tanh with a backward that doubles the derivative."""

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved
        return grad * (1 - y * y) * 2  # wrong: dy/dx = 1 - y**2


class _SinOnRawArrays(Function):
    """sin whose first derivative is right but computed on raw arrays, so create_graph cannot
    record it: the second derivative comes out as 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        raw = x.data if isinstance(x, Tensor) else x  # wrong: drops the graph of x
        return grad * np.cos(raw)


class _MulSquareDetachedY(Function):
    """z = x * y**2 whose y-gradient is right but detached under create_graph: second derivatives
    through it (d2z/dy2 = 2x, d2z/dxdy = 2y) are lost, although first order is right."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y * y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved
        gy = grad * 2 * x * y
        return grad * y * y, (gy.detach() if isinstance(gy, Tensor) else gy)  # wrong: drops gy's graph


def test_gradcheck_rejects_a_wrong_first_derivative() -> None:
    x = leaf([[-0.7, 0.2, 1.3], [0.4, -1.1, 0.9]])
    assert gradcheck(lambda t: t.tanh(), [x])
    with pytest.raises(GradcheckError):
        gradcheck(lambda t: _TanhTwiceTooSteep.apply(t), [x])


def test_gradgradcheck_rejects_a_backward_that_is_not_differentiable() -> None:
    x = leaf([[-0.7, 0.2, 1.3], [0.4, -1.1, 0.9]])
    assert gradcheck(lambda t: _SinOnRawArrays.apply(t), [x])  # first order is right
    with pytest.raises(GradcheckError):
        gradgradcheck(lambda t: _SinOnRawArrays.apply(t), [x])


def test_gradgradcheck_rejects_a_rule_that_detaches_one_inputs_gradient() -> None:
    # issue 11: the detached term was dropped from the function being differentiated, so the
    # finite differences never saw it either and the check passed
    x, y = leaf([0.5, -1.2, 0.8]), leaf([1.1, 0.3, -0.7])
    assert gradcheck(lambda a, b: _MulSquareDetachedY.apply(a, b), [x, y])  # first order is right
    assert gradgradcheck(lambda a, b: a * b * b, [x, y])  # the correct op passes
    with pytest.raises(GradcheckError):
        gradgradcheck(lambda a, b: _MulSquareDetachedY.apply(a, b), [x, y])
    with pytest.raises(GradcheckError):  # also when y is the only input checked
        gradgradcheck(lambda b: _MulSquareDetachedY.apply(tg.tensor([0.5, -1.2, 0.8], dtype="float64"), b), [y])


# ---------------------------------------------------------------- explicit examples

def test_repeated_integer_indices_add_up_in_backward() -> None:
    x = leaf([1.0, 2.0, 3.0])
    x[[0, 2, 0, 0]].backward(Tensor(np.array([1.0, 10.0, 100.0, 1000.0])))
    np.testing.assert_array_equal(x.grad.numpy(), [1101.0, 0.0, 10.0])


def test_repeated_rows_of_an_index_tensor_add_up_in_backward() -> None:
    x = leaf(np.zeros((3, 2)))
    x[tg.tensor([[2, 2], [0, 2]])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1.0, 1.0], [0.0, 0.0], [3.0, 3.0]])


def test_builtin_sum_over_tensors_adds_values_and_passes_gradients_to_each() -> None:
    xs = [leaf([float(k), -float(k)]) for k in (1, 2, 3)]
    total = sum(xs)
    np.testing.assert_array_equal(total.numpy(), [6.0, -6.0])
    (total * total).sum().backward()
    for x in xs:
        np.testing.assert_array_equal(x.grad.numpy(), [12.0, -12.0])


def test_astype_float64_to_float64_is_identity_and_passes_the_gradient() -> None:
    x = leaf([0.5, -1.5])
    y = x.astype("float64")
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    (y * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_keeps_relative_accuracy_for_negative_inputs(dtype) -> None:
    # found by tests/test_fuzz.py: 0.5 (1 + tanh(x / 2)) cancels for x < 0 and gave 0 for
    # x < -17 in float32 (x < -37 in float64), so log(sigmoid(-20)) was -inf instead of -20
    x = np.array([-80.0, -40.0, -20.0, -17.0, -12.0, -5.0, -0.5, 0.0, 0.5, 5.0, 20.0, 40.0])
    if dtype == np.float32:
        x = x[1:]  # sigmoid(-80) is below float32's normal range
    exact = 1.0 / (1.0 + np.exp(-x.astype(np.longdouble)))
    got = tg.tensor(x.astype(dtype)).sigmoid().numpy()
    assert got.dtype == dtype
    np.testing.assert_allclose(got, exact.astype(np.float64), rtol=8 * np.finfo(dtype).eps, atol=0)
    np.testing.assert_allclose(tg.tensor(np.array([-20.0], dtype)).sigmoid().log().numpy(), [-20.0], rtol=1e-6)


def test_sigmoid_of_very_negative_inputs_is_zero_without_warnings() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = tg.tensor([-1000.0, -100.0, 1000.0]).sigmoid().numpy()  # float32: exp(100) overflows to inf
    assert y[0] == 0.0 and 0.0 <= y[1] < 1e-38 and y[2] == 1.0


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_of_a_0d_tensor_is_one_row_of_one_element(name):
    """A 0-d tensor is its own row (found on the GPU: CuPy, unlike NumPy, refuses axis 0 on a 0-d array)."""
    x = tg.tensor(2.5, dtype="float64", requires_grad=True)
    y = getattr(x, name)()
    assert y.shape == () and y.item() == (1.0 if name == "softmax" else 0.0)
    y.backward()
    assert x.grad.item() == 0.0
