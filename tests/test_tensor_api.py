"""The Tensor API users touch: construction, attributes, conversion, shape methods, Python
protocols (sum, iteration, len, bool, NumPy operands) and seeded random numbers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn.testing.strategies import shapes

# ---------------------------------------------------------------- construction


@pytest.mark.parametrize(("data", "dtype", "shape"), [
    (1.5, tg.float32, ()),
    (3, tg.int64, ()),
    (True, tg.bool_, ()),
    ([1.0, 2], tg.float32, (2,)),
    ([[1, 2], [3, 4], [5, 6]], tg.int64, (3, 2)),
    ([[True], [False]], tg.bool_, (2, 1)),
    (np.arange(3, dtype=np.int32), tg.int32, (3,)),
    (np.zeros((2, 3)), tg.float64, (2, 3)),
])
def test_tensor_infers_dtype_and_shape_from_python_and_numpy_data(data, dtype, shape):
    t = tg.tensor(data)
    assert t.dtype == dtype and t.shape == shape
    np.testing.assert_array_equal(t.numpy(), np.asarray(data))


def test_tensor_copies_its_data():
    a = np.array([1.0, 2.0])
    t = tg.tensor(a)
    a[0] = 99.0
    assert t.tolist() == [1.0, 2.0]
    u = tg.tensor(t)
    u.data[1] = -1.0
    assert t.tolist() == [1.0, 2.0]


def test_tensor_dtype_argument_casts():
    assert tg.tensor([1, 2], dtype="float64").dtype == tg.float64
    assert tg.tensor([1.7], dtype=tg.int32).dtype == tg.int32
    with pytest.raises(tg.DTypeError, match="unknown dtype"):
        tg.tensor([1.0], dtype="float17")


def test_filled_constructors_take_shape_and_dtype():
    assert tg.zeros(2, 3).shape == (2, 3) and tg.zeros((2, 3)).shape == (2, 3)
    assert tg.zeros(2, 3).dtype == tg.float32
    assert tg.ones(4, dtype="float64").dtype == tg.float64
    assert tg.zeros(2, dtype=tg.int64).tolist() == [0, 0]
    assert tg.full((2, 2), 7, dtype="int32").tolist() == [[7, 7], [7, 7]]
    assert tg.full((3,), 0.5).dtype == tg.float32
    assert tg.ones(2, 2).numpy().sum() == 4.0


def test_like_constructors_keep_shape_and_dtype_unless_told():
    t = tg.arange(6).reshape(2, 3)
    assert tg.zeros_like(t).dtype == tg.int64 and tg.zeros_like(t).shape == (2, 3)
    assert tg.ones_like(t, dtype="float64").dtype == tg.float64
    assert tg.ones_like(t).tolist() == [[1, 1, 1], [1, 1, 1]]


def test_arange_follows_numpy_and_the_default_float_dtype():
    assert tg.arange(5).tolist() == [0, 1, 2, 3, 4] and tg.arange(5).dtype == tg.int64
    assert tg.arange(1, 7, 2).tolist() == [1, 3, 5]
    assert tg.arange(0.0, 1.0, 0.25).dtype == tg.float32
    assert tg.arange(3, dtype="float64").tolist() == [0.0, 1.0, 2.0]


def test_random_constructors_take_shape_and_dtype():
    assert tg.randn(2, 3).shape == (2, 3) and tg.randn(2, 3).dtype == tg.float32
    assert tg.randn((4,), dtype="float64").dtype == tg.float64
    assert tg.rand(2, dtype=tg.float16).dtype == tg.float16
    r = tg.rand(1000).numpy()
    assert r.min() >= 0.0 and r.max() < 1.0
    i = tg.randint(-2, 3, (1000,))
    assert i.dtype == tg.int64 and set(i.tolist()) == {-2, -1, 0, 1, 2}
    assert tg.randint(0, 4, (3,), dtype="int32").dtype == tg.int32
    assert tg.randn(2, requires_grad=True).requires_grad


# ---------------------------------------------------------------- attributes and conversion

def test_attributes_describe_the_tensor():
    t = tg.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    assert t.shape == (1, 3) and t.ndim == 2 and t.dtype == tg.float32 and t.device == "cpu"
    assert t.requires_grad and t.grad is None and t.is_leaf and t.numel() == 3
    assert isinstance(t.data, np.ndarray)
    y = t * 2.0
    assert not y.is_leaf and y.grad_fn is y.node


def test_numpy_shares_memory_on_cpu_and_detach_shares_the_array():
    t = tg.tensor([1.0, 2.0], requires_grad=True)
    assert np.shares_memory(t.numpy(), t.data)
    d = t.detach()
    assert d.data is t.data and not d.requires_grad and d.node is None


def test_item_and_tolist_return_python_values():
    assert tg.tensor(2.5).item() == 2.5 and isinstance(tg.tensor(2.5).item(), float)
    assert isinstance(tg.tensor([3]).item(), int)
    assert tg.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert float(tg.tensor([1.5])) == 1.5 and int(tg.tensor(7)) == 7
    with pytest.raises(tg.ShapeError, match="one element"):
        tg.tensor([1.0, 2.0]).item()


def test_repr_looks_like_the_constructor_call():
    assert repr(tg.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(tg.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(tg.tensor([1.0], requires_grad=True)) == "tensor([1.], requires_grad=True)"
    assert repr(tg.tensor([1.0], dtype="float64")) == "tensor([1.], dtype=float64)"
    assert repr(tg.tensor([1.0], requires_grad=True) * 2) == "tensor([2.], grad_fn=<Mul>)"
    assert repr(tg.zeros(2, 2)) == "tensor([[0., 0.],\n        [0., 0.]])"


def test_astype_and_to_dtype_cast():
    t = tg.tensor([1.5, -2.5])
    assert t.to("float64").dtype == tg.float64 and t.double().dtype == tg.float64
    assert t.long().tolist() == [1, -2]
    assert t.astype(tg.float32) is t


# ---------------------------------------------------------------- shape methods

@given(shapes(min_dims=1, max_dims=4, max_side=3), st.data())
def test_reshape_accepts_varargs_a_tuple_and_minus_one(shape, data):
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    t = tg.tensor(a)
    n = a.size
    assert t.reshape(n).shape == (n,)
    assert t.reshape((n, 1)).shape == (n, 1)
    assert t.reshape(-1).shape == (n,)
    assert t.reshape(1, -1).shape == (1, n)
    perm = data.draw(st.permutations(shape))
    np.testing.assert_array_equal(t.reshape(*perm).numpy(), a.reshape(perm))
    np.testing.assert_array_equal(t.reshape(list(perm)).numpy(), a.reshape(perm))


@given(shapes(min_dims=1, max_dims=4, max_side=3), st.data())
def test_transpose_follows_numpy(shape, data):
    a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    t = tg.tensor(a)
    np.testing.assert_array_equal(t.transpose().numpy(), a.transpose())
    np.testing.assert_array_equal(t.T.numpy(), a.T)
    perm = tuple(data.draw(st.permutations(range(a.ndim))))
    np.testing.assert_array_equal(t.transpose(*perm).numpy(), a.transpose(perm))
    np.testing.assert_array_equal(t.transpose(perm).numpy(), a.transpose(perm))
    negative = tuple(p - a.ndim for p in perm)
    np.testing.assert_array_equal(t.transpose(negative).numpy(), a.transpose(perm))


def test_transpose_rejects_a_non_permutation():
    with pytest.raises(tg.ShapeError, match="permutation"):
        tg.zeros(2, 3, 4).transpose(0, 0, 1)


@given(st.integers(1, 10), st.integers(1, 10))
def test_split_and_chunk_give_torchs_piece_sizes(n, k):
    torch = pytest.importorskip("torch")
    a = np.arange(2 * n, dtype=np.float64).reshape(2, n)
    t, ref = tg.tensor(a), torch.from_numpy(a)
    for ours, theirs in ((t.split(k, axis=1), ref.split(k, dim=1)), (t.chunk(k, axis=1), ref.chunk(k, dim=1))):
        assert [p.shape for p in ours] == [tuple(p.shape) for p in theirs]
        np.testing.assert_array_equal(np.concatenate([p.numpy() for p in ours], axis=1), a)


def test_split_by_sizes_and_bad_sizes():
    t = tg.arange(6)
    assert [p.tolist() for p in t.split([1, 2, 3])] == [[0], [1, 2], [3, 4, 5]]
    with pytest.raises(tg.ShapeError, match="add up to 5"):
        t.split([2, 3])


# ---------------------------------------------------------------- Python protocols

def test_python_sum_of_tensors_is_differentiable():
    xs = [tg.tensor([float(i)], requires_grad=True) for i in range(3)]
    total = sum(xs)
    assert isinstance(total, tg.Tensor) and total.item() == 3.0
    total.backward()
    assert [x.grad.item() for x in xs] == [1.0, 1.0, 1.0]


def test_numpy_array_on_the_left_goes_through_the_tensor():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    a = np.array([3.0, 4.0], dtype=np.float32)
    for y in (a * x, a + x, a - x, a / x, a @ x):
        assert isinstance(y, tg.Tensor) and y.requires_grad
    (a * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), a)


def test_numpy_operands_follow_the_tensor_dtype_rules():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    assert (x * np.float64(2.0)).dtype == tg.float32  # a NumPy scalar is a number, not an upcast
    assert (np.float64(2.0) * x).dtype == tg.float32
    assert (x + np.arange(2)).dtype == tg.float32  # integer arrays are cast to the float tensor
    with pytest.raises(tg.DTypeError, match="float64"):
        np.ones(2) * x  # a float64 array meets a float32 tensor: no silent upcast
    (x * np.float64(3.0) + np.arange(2)).sum().backward()
    assert x.grad.dtype == tg.float32 and x.grad.tolist() == [3.0, 3.0]


def test_iteration_and_len_walk_the_first_axis():
    t = tg.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert len(t) == 3
    rows = list(t)
    assert len(rows) == 3 and all(isinstance(r, tg.Tensor) for r in rows)
    assert [r.tolist() for r in rows] == t.tolist()
    with pytest.raises(TypeError, match="0-d"):
        len(tg.tensor(1.0))


def test_bool_of_a_multi_element_tensor_is_an_error():
    assert bool(tg.tensor([1.0])) and not bool(tg.tensor(0.0))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(tg.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="ambiguous"):
        if tg.tensor([1.0, 2.0]) > 0:
            pass


def test_tensors_hash_by_identity_despite_elementwise_eq():
    a, b = tg.tensor([1.0]), tg.tensor([1.0])
    assert {a: 1, b: 2}[a] == 1 and len({a, b}) == 2
    assert isinstance(a == b, tg.Tensor)


# ---------------------------------------------------------------- random numbers

def test_manual_seed_makes_randn_reproducible():
    tg.manual_seed(123)
    a = tg.randn(5).numpy()
    tg.manual_seed(123)
    b = tg.randn(5).numpy()
    c = tg.randn(5).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_generators_are_independent_of_each_other_and_of_the_default():
    g1, g2 = tg.Generator(7), tg.Generator(7)
    tg.manual_seed(0)
    first = tg.randn(4).numpy()
    a = tg.randn(3, generator=g1).numpy()
    tg.randn(10, generator=g1)  # advancing g1 touches neither g2 nor the default generator
    b = tg.randn(3, generator=g2).numpy()
    np.testing.assert_array_equal(a, b)
    tg.manual_seed(0)
    tg.randn(3, generator=g2)
    np.testing.assert_array_equal(tg.randn(4).numpy(), first)


def test_generator_state_round_trips():
    g = tg.Generator(1)
    state = g.get_state()
    a = tg.rand(3, generator=g).numpy()
    g.set_state(state)
    np.testing.assert_array_equal(tg.rand(3, generator=g).numpy(), a)


def test_readme_style_snippet_runs():
    tg.manual_seed(0)
    w = tg.randn(3, 2, requires_grad=True)
    x = tg.tensor([[1.0, 2.0, 3.0]])
    loss = (x @ w).tanh().sum()
    loss.backward()
    assert w.grad.shape == (3, 2)
    before = w.numpy().copy()
    w.data -= 0.1 * w.grad.data  # an SGD step updates the array in place: w stays the same leaf
    np.testing.assert_allclose(w.numpy(), before - 0.1 * w.grad.numpy())
    assert w.is_leaf and w.requires_grad


def test_inplace_update_under_no_grad_keeps_the_leaf_and_changes_its_data():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    before = w
    with tg.no_grad():
        w -= 0.5 * w.grad
    assert w is before and w.requires_grad and w.is_leaf
    np.testing.assert_allclose(w.numpy(), [0.0, 0.0])


def test_inplace_op_that_would_be_recorded_is_refused():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(tg.BackwardError, match="no_grad"):
        w += 1.0


def test_inplace_op_on_plain_tensors_checks_shape_and_dtype():
    x = tg.zeros(2)
    x *= 3.0
    x += tg.ones(2)
    np.testing.assert_array_equal(x.numpy(), [1.0, 1.0])
    with pytest.raises(tg.ShapeError, match=r"\(3,\)"):
        x += tg.ones(3)
    with pytest.raises(tg.DTypeError):
        x += tg.ones(2, dtype="float64")


def test_inplace_update_of_a_constant_does_not_change_a_recorded_gradient():
    x = tg.tensor([1.0, 2.0])
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    h = (x * w).sum()  # Mul saved x's values for backward
    x += 10.0
    h.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(x.numpy(), [11.0, 12.0])


def test_unsqueeze_checks_its_axis_and_var_with_too_few_values_is_nan():
    assert tg.tensor([1.0, 2.0]).unsqueeze(-2).shape == (1, 2)
    with pytest.raises(tg.ShapeError, match="unsqueeze"):
        tg.tensor([1.0, 2.0]).unsqueeze(2)
    assert np.isnan(tg.tensor([1.0]).var(ddof=1).item())


# ---------------------------------------------------------------- found by tests/test_fuzz.py

@pytest.mark.parametrize("same_shape", [lambda t: t.reshape(t.shape), lambda t: t.expand(t.shape),
                                        lambda t: t.sum_to(t.shape), lambda t: t.reshape(-1)],
                         ids=["reshape", "expand", "sum_to", "reshape(-1)"])
def test_a_shape_op_that_keeps_the_shape_gives_a_new_tensor(same_shape):
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with tg.no_grad():
        y = same_shape(x)
    assert y is not x and not y.requires_grad  # nothing is recorded under no_grad (it was x itself)
    z = same_shape(x)
    assert z is not x and z.grad_fn is not None  # recorded: the gradient reaches x through it
    with tg.no_grad():
        z += 1.0  # an in-place update of the result no longer changes x
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])
    (z * z).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 6.0])


def test_transpose_of_an_explicit_empty_permutation_is_refused_as_numpy_does():
    with pytest.raises(tg.ShapeError, match="not a permutation"):
        tg.tensor([1.0, 2.0]).transpose(())
    assert tg.tensor(3.0).transpose(()).shape == ()
    assert tg.tensor([[1.0, 2.0]]).transpose().shape == (2, 1)


def test_an_index_that_does_not_fit_raises_the_librarys_indexing_error():
    t = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    for index in (5, (0, 0, 0), [0, 7], np.array([True, False, True])):
        with pytest.raises(tg.IndexingError, match=r"getitem: index .* into shape \(2, 2\)"):
            t[index]
    with pytest.raises(IndexError):  # still an IndexError, for code that catches that
        t[2]


@pytest.mark.parametrize("call, error, match", [
    (lambda t: t + None, TypeError, "add: unsupported operand of type NoneType"),  # was: adds NaN silently
    (lambda t: t + [None, 1.0], TypeError, "data of dtype object"),  # was: NaN too
    (lambda t: t ** "a", TypeError, "pow: unsupported operand of type str"),
    (lambda t: tg.maximum(t, "a"), TypeError, "maximum: unsupported operand"),
    (lambda t: tg.where(t > 0, t, "x"), TypeError, "where: unsupported operand"),
    (lambda t: tg.cat([2.0, t]), TypeError, "cat: expected a sequence of Tensors, got float at position 0"),
    (lambda t: tg.stack([t, None]), TypeError, "stack: expected a sequence of Tensors"),
    (lambda t: tg.grad(t.sum(), [1.0]), TypeError, "grad: outputs and inputs must be Tensors"),
    (lambda t: tg.backward([t.sum(), 3.0]), TypeError, "backward: expected Tensors"),
    (lambda t: t.sum(axis=1.5), TypeError, "axis must be an integer, got 1.5"),
    (lambda t: t.softmax((0, 1)), TypeError, "axis must be an integer"),
    (lambda t: t.transpose("a"), TypeError, "axis must be an integer"),
    (lambda t: t.unsqueeze(0.5), TypeError, "unsqueeze: axis must be an integer"),
    (lambda t: t.split(0), ValueError, "split: split_size must be a positive int"),
], ids=["add None", "add [None]", "pow str", "maximum str", "where str", "cat float", "stack None", "grad float",
        "backward float", "sum float axis", "softmax tuple axis", "transpose str", "unsqueeze float", "split 0"])
def test_misuse_gets_a_type_or_value_error_that_names_the_op(call, error, match):
    # found by probing the API as the fuzzer's programs do (AttributeErrors and NumPy's messages before)
    t = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    with pytest.raises(error, match=match):
        call(t)
    assert tg.ones(2).sum(axis=np.int64(0)).item() == 2.0  # NumPy integers are integers


def test_a_0d_tensor_formats_as_its_number_and_others_refuse_a_format_spec():
    loss = tg.tensor(1.23456)
    assert f"{loss:.3f}" == "1.235" and f"{tg.tensor(7, dtype='int64'):>4}" == "   7"
    assert f"{tg.tensor([1.0, 2.0])}" == str(tg.tensor([1.0, 2.0]))  # no spec: the repr, as before
    with pytest.raises(TypeError):
        f"{tg.tensor([1.0, 2.0]):.3f}"  # as PyTorch: only a 0-d tensor is a number
