"""``nn.functional`` and ``nn.utils``: every loss against an independent NumPy reference and
against ``torch.nn.functional`` (when installed), gradients by finite differences, stability
at logits of magnitude 1e4, clear errors, and gradient clipping against ``torch.nn.utils``.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
import pytest
from helpers import F64, t64
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn.nn import functional as F
from tinygrad_rnn.nn import utils
from tinygrad_rnn.testing import gradcheck
from tinygrad_rnn.testing.strategies import arrays, shapes

# ---------------------------------------------------------------- NumPy references
# Written independently of the package: loops over the target entries, np.logaddexp.

def ref_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def ref_class_loss(x, t, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0, log_probs=False):
    """PyTorch's cross_entropy (or nll_loss with ``log_probs=True``), one target entry at a time."""
    x, t = np.asarray(x, dtype=np.float64), np.asarray(t)
    unbatched = x.ndim == 1
    if unbatched:
        x, t = x[None], t[None]
    C = x.shape[1]
    lp = np.moveaxis(x if log_probs else ref_log_softmax(x, 1), 1, -1)  # (N, d..., C)
    w = np.ones(C) if weight is None else np.asarray(weight, dtype=np.float64)
    eps = label_smoothing
    losses, denom = np.zeros(t.shape), 0.0
    for pos in np.ndindex(*t.shape):
        c = int(t[pos])
        if c == ignore_index:
            continue
        row = lp[pos]
        losses[pos] = (1 - eps) * -w[c] * row[c] + eps / C * -(w * row).sum()
        denom += w[c]
    if reduction == "none":
        return losses[0] if unbatched else losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / denom if denom else np.nan


def ref_bce_with_logits(x, y, weight=None, pos_weight=None, reduction="mean"):
    # -[p y log s(x) + (1 - y) log(1 - s(x))], with log s(x) = -logaddexp(0, -x), log(1 - s(x)) = -logaddexp(0, x)
    p = 1.0 if pos_weight is None else pos_weight
    loss = p * y * np.logaddexp(0, -x) + (1 - y) * np.logaddexp(0, x)
    if weight is not None:
        loss = loss * weight
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


# ---------------------------------------------------------------- strategies

@st.composite
def class_problems(draw, max_classes: int = 5, with_weight: bool = True):
    """Logits (N, C, d...) or (C,), integer targets with some ignored entries, and options."""
    C = draw(st.integers(1, max_classes))
    unbatched = draw(st.booleans()) and draw(st.booleans())  # about a quarter of the examples
    extra = () if unbatched else tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    N = draw(st.integers(1, 4))
    shape = (C,) if unbatched else (N, C) + extra
    tshape = () if unbatched else (N,) + extra
    x = draw(arrays(shape, -6.0, 6.0))
    ignore_index = draw(st.sampled_from([-100, 0, 2]))
    t = np.asarray(draw(arrays(tshape, 0, C - 1e-9)), dtype=np.int64)  # arrays() draws floats: floor them
    if draw(st.booleans()):
        t = np.where(draw(arrays(tshape, 0, 1)) < 0.3, ignore_index, t)
    weight = draw(arrays((C,), 0.1, 2.0)) if with_weight and draw(st.booleans()) else None
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    smoothing = draw(st.sampled_from([0.0, 0.0, 0.1, 0.37, 1.0]))
    return x, t, weight, ignore_index, reduction, smoothing


def _has_target(t, ignore_index) -> bool:
    return bool((np.asarray(t) != ignore_index).any())


# ---------------------------------------------------------------- cross_entropy / nll_loss

CLASS_LOSSES = ["cross_entropy", "nll_loss"]


def _class_loss(loss: str, problem):
    """``loss`` on ``problem``: its input array, and the loss as a function of our tensor, as a
    function of PyTorch's (``theirs(torch, XT)``), and by the NumPy reference. nll_loss takes
    log-probabilities (the logits' log_softmax) and has no label smoothing."""
    x, t, weight, ii, reduction, eps = problem
    kw = {"ignore_index": ii, "reduction": reduction}
    if loss == "nll_loss":
        x = ref_log_softmax(x, 0 if x.ndim == 1 else 1)
    else:
        kw["label_smoothing"] = eps
    ref = ref_class_loss(x, t, weight, log_probs=loss == "nll_loss", **kw)

    def ours(X):
        return getattr(F, loss)(X, tg.tensor(t), None if weight is None else t64(weight), **kw)

    def theirs(torch, XT):
        w = None if weight is None else torch.tensor(weight)
        return getattr(torch.nn.functional, loss)(XT, torch.tensor(t), w, **kw)

    return x, ours, theirs, ref


@pytest.mark.parametrize("loss", CLASS_LOSSES)
@given(problem=class_problems())
def test_class_loss_matches_the_numpy_reference(loss, problem):
    x, ours, _, ref = _class_loss(loss, problem)
    out = ours(t64(x))
    assert out.shape == np.shape(ref)
    np.testing.assert_allclose(out.numpy(), ref, **F64)


@pytest.mark.parametrize("loss", CLASS_LOSSES)
@given(problem=class_problems())
def test_class_loss_matches_torch_in_value_and_gradient(loss, problem):
    torch = pytest.importorskip("torch")
    x, ours, theirs, _ = _class_loss(loss, problem)
    X, XT = t64(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = ours(X), theirs(torch, XT)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), **F64)
    t, ii = problem[1], problem[3]
    if _has_target(t, ii):  # PyTorch's mean over no targets is NaN, and so are its gradients
        g = np.random.default_rng(0).standard_normal(out.shape)
        out.backward(g)
        ref.backward(torch.tensor(g))
        np.testing.assert_allclose(X.grad.numpy(), XT.grad.numpy(), **F64)


@pytest.mark.parametrize("loss", CLASS_LOSSES)
@settings(max_examples=15)
@given(problem=class_problems(max_classes=4))
def test_class_loss_gradient_matches_finite_differences(loss, problem):
    x, ours, _, _ = _class_loss(loss, problem)
    assume(_has_target(problem[1], problem[3]))
    gradcheck(ours, [t64(x, requires_grad=True)])


def test_cross_entropy_mean_divides_by_the_number_of_non_ignored_targets():
    x = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0], [0.0, 0.0, 0.0], [5.0, 1.0, 1.0]])
    t = np.array([1, -100, 2, -100])
    out = F.cross_entropy(t64(x), tg.tensor(t))
    per = -ref_log_softmax(x, 1)[[0, 2], [1, 2]]
    np.testing.assert_allclose(out.item(), per.sum() / 2, **F64)


def test_cross_entropy_gives_zero_loss_and_gradient_to_ignored_entries():
    X = t64([[1.0, 2.0], [3.0, -1.0]], requires_grad=True)
    out = F.cross_entropy(X, tg.tensor([0, 1]), ignore_index=1, reduction="none")
    assert out.numpy()[1] == 0.0
    out.sum().backward()
    np.testing.assert_array_equal(X.grad.numpy()[1], [0.0, 0.0])


def test_cross_entropy_mean_over_only_ignored_targets_is_nan_as_in_torch():
    out = F.cross_entropy(t64([[1.0, 2.0]]), tg.tensor([-100]))
    assert math.isnan(out.item())
    assert F.cross_entropy(t64([[1.0, 2.0]]), tg.tensor([-100]), reduction="sum").item() == 0.0


def test_cross_entropy_ignores_minus_inf_logits_of_ignored_rows():
    x = t64([[-np.inf, 0.0], [1.0, 2.0]], requires_grad=True)
    out = F.cross_entropy(x, tg.tensor([-100, 1]))
    out.backward()
    assert np.isfinite(out.item()) and np.isfinite(x.grad.numpy()).all()


def test_cross_entropy_label_smoothing_follows_torchs_formula():
    x = np.array([[2.0, -1.0, 0.5, 0.0]])
    eps, C = 0.2, 4
    lp = ref_log_softmax(x, 1)[0]
    expected = (1 - eps) * -lp[2] + eps / C * -lp.sum()
    np.testing.assert_allclose(F.cross_entropy(t64(x), tg.tensor([2]), label_smoothing=eps).item(), expected, **F64)


def test_cross_entropy_class_weights_may_be_arrays_or_lists_of_another_dtype():
    x = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])
    t = np.array([2, 0])
    w = np.array([0.5, 2.0, 1.5])  # float64, for float32 logits
    expected = ref_class_loss(x, t, w)
    for weight in (w, w.tolist(), t64(w)):
        out = F.cross_entropy(tg.tensor(x.astype(np.float32)), tg.tensor(t), weight)
        assert out.dtype == tg.float32
        np.testing.assert_allclose(out.item(), expected, rtol=1e-6)


# ---------------------------------------------------------------- stability

def _big_logits(dtype, shape=(6, 5), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 1.0], shape) * 1e4 * rng.uniform(0.5, 1.0, shape)
    x[0] = 1e4  # a row of equal huge logits
    x[1] = -1e4
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_is_finite_and_correct_for_logits_of_magnitude_1e4(dtype, smoothing):
    x = _big_logits(dtype)
    t = np.array([0, 1, 2, 3, 4, 0])
    X = tg.tensor(x, requires_grad=True)
    out = F.cross_entropy(X, tg.tensor(t), label_smoothing=smoothing)
    out.backward()
    assert np.isfinite(out.item()) and np.isfinite(X.grad.numpy()).all()
    tol = F64 if dtype == "float64" else {"rtol": 1e-6, "atol": 1e-6}
    np.testing.assert_allclose(out.item(), ref_class_loss(x.astype(np.float64), t, label_smoothing=smoothing), **tol)
    torch = pytest.importorskip("torch")
    XT = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(XT, torch.tensor(t), label_smoothing=smoothing)
    ref.backward()
    np.testing.assert_allclose(out.item(), ref.item(), **tol)
    np.testing.assert_allclose(X.grad.numpy(), XT.grad.numpy(), **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_with_logits_is_finite_and_correct_for_logits_of_magnitude_1e4(dtype):
    x = _big_logits(dtype)
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 1, x.shape).astype(dtype)
    pw = rng.uniform(0.5, 2.0, x.shape[-1]).astype(dtype)
    X = tg.tensor(x, requires_grad=True)
    out = F.binary_cross_entropy_with_logits(X, tg.tensor(y), pos_weight=tg.tensor(pw))
    out.backward()
    assert np.isfinite(out.item()) and np.isfinite(X.grad.numpy()).all()
    tol = F64 if dtype == "float64" else {"rtol": 1e-6, "atol": 1e-6}
    np.testing.assert_allclose(out.item(), ref_bce_with_logits(x.astype(np.float64), y, pos_weight=pw), **tol)
    torch = pytest.importorskip("torch")
    XT = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(XT, torch.tensor(y), pos_weight=torch.tensor(pw))
    ref.backward()
    np.testing.assert_allclose(out.item(), ref.item(), **tol)
    np.testing.assert_allclose(X.grad.numpy(), XT.grad.numpy(), **tol)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp", "softplus"])
def test_softmax_family_is_finite_and_matches_torch_at_magnitude_1e4(name):
    x = _big_logits("float64")
    X = t64(x, requires_grad=True)
    out = getattr(F, name)(X)
    out.backward(np.ones(out.shape))
    assert np.isfinite(out.numpy()).all() and np.isfinite(X.grad.numpy()).all()
    torch = pytest.importorskip("torch")
    XT = torch.tensor(x, requires_grad=True)
    fn = {"softmax": lambda a: torch.softmax(a, -1), "log_softmax": lambda a: torch.log_softmax(a, -1),
          "logsumexp": lambda a: torch.logsumexp(a, -1), "softplus": torch.nn.functional.softplus}[name]
    ref = fn(XT)
    ref.backward(torch.ones_like(ref))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), **F64)
    np.testing.assert_allclose(X.grad.numpy(), XT.grad.numpy(), **F64)


# ---------------------------------------------------------------- binary cross-entropy, mse

@st.composite
def bce_problems(draw):
    shape = draw(shapes(min_dims=1, max_dims=3))
    x = draw(arrays(shape, -8.0, 8.0))
    y = draw(arrays(shape, 0.0, 1.0))
    weight = draw(arrays(shape[-1:], 0.1, 2.0)) if draw(st.booleans()) else None
    pos_weight = draw(arrays(shape[-1:], 0.1, 3.0)) if draw(st.booleans()) else None
    return x, y, weight, pos_weight, draw(st.sampled_from(["mean", "sum", "none"]))


def _bce(X, Y, weight, pos_weight, reduction):
    return F.binary_cross_entropy_with_logits(X, Y, None if weight is None else t64(weight), reduction=reduction,
                                              pos_weight=None if pos_weight is None else t64(pos_weight))


@given(bce_problems())
def test_bce_with_logits_matches_the_numpy_reference_and_torch(problem):
    x, y, weight, pos_weight, reduction = problem
    X, Y = t64(x, requires_grad=True), t64(y, requires_grad=True)
    out = _bce(X, Y, weight, pos_weight, reduction)
    np.testing.assert_allclose(out.numpy(), ref_bce_with_logits(x, y, weight, pos_weight, reduction), **F64)
    torch = pytest.importorskip("torch")
    XT, YT = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        XT, YT, None if weight is None else torch.tensor(weight), reduction=reduction,
        pos_weight=None if pos_weight is None else torch.tensor(pos_weight))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), **F64)
    g = np.random.default_rng(2).standard_normal(out.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(X.grad.numpy(), XT.grad.numpy(), **F64)
    np.testing.assert_allclose(Y.grad.numpy(), YT.grad.numpy(), **F64)


@settings(max_examples=15)
@given(bce_problems())
def test_bce_with_logits_gradient_matches_finite_differences(problem):
    x, y, weight, pos_weight, reduction = problem
    inputs = [t64(x, requires_grad=True), t64(y, requires_grad=True)]
    gradcheck(lambda X, Y: _bce(X, Y, weight, pos_weight, reduction), inputs)


def test_bce_with_logits_gradient_at_zero_is_sigmoid_minus_target():
    # a composition through |x| or relu(-x) would kink here and give 1 - t instead of 1/2 - t
    X = t64([0.0, 0.0, 0.0], requires_grad=True)
    F.binary_cross_entropy_with_logits(X, t64([0.0, 0.3, 1.0]), reduction="sum").backward()
    np.testing.assert_allclose(X.grad.numpy(), [0.5, 0.2, -0.5], **F64)


def test_bce_with_logits_accepts_integer_targets():
    out = F.binary_cross_entropy_with_logits(t64([0.5, -1.0]), tg.tensor([1, 0]))
    np.testing.assert_allclose(out.item(), ref_bce_with_logits(np.array([0.5, -1.0]), np.array([1.0, 0.0])), **F64)


@given(st.data(), shapes(max_dims=3), st.sampled_from(["mean", "sum", "none"]))
def test_mse_loss_matches_the_numpy_reference_torch_and_finite_differences(data, shape, reduction):
    x, y = data.draw(arrays(shape)), data.draw(arrays(shape))
    X, Y = t64(x, requires_grad=True), t64(y, requires_grad=True)
    out = F.mse_loss(X, Y, reduction)
    sq = (x - y) ** 2
    np.testing.assert_allclose(out.numpy(), {"mean": sq.mean(), "sum": sq.sum(), "none": sq}[reduction], **F64)
    gradcheck(lambda a, b: F.mse_loss(a, b, reduction), [X, Y])
    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.mse_loss(torch.tensor(x), torch.tensor(y), reduction=reduction)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), **F64)


# ---------------------------------------------------------------- errors

def test_cross_entropy_rejects_float_targets_naming_the_op_and_dtype():
    with pytest.raises(tg.DTypeError, match=r"cross_entropy.*float"):
        F.cross_entropy(t64([[1.0, 2.0]]), t64([1.0]))
    with pytest.raises(tg.DTypeError, match="cross_entropy"):
        F.cross_entropy(t64([[1.0, 2.0]]), tg.tensor([True]))


@pytest.mark.parametrize("bad", [3, 7, -1, -5])
def test_cross_entropy_rejects_targets_out_of_range(bad):
    with pytest.raises(ValueError, match=rf"cross_entropy.*\[0, 3\).*found {bad}"):
        F.cross_entropy(t64(np.zeros((2, 3))), tg.tensor([0, bad]))


def test_class_losses_reject_target_shapes_that_do_not_pair_with_the_input():
    with pytest.raises(tg.ShapeError, match=r"cross_entropy.*\(4, 5\).*\(4,\).*\(3,\)"):
        F.cross_entropy(t64(np.zeros((4, 5))), tg.tensor([0, 1, 2]))
    with pytest.raises(tg.ShapeError, match=r"nll_loss.*\(2, 3, 4\).*\(2, 4\).*\(2, 3\)"):
        F.nll_loss(t64(np.zeros((2, 3, 4))), tg.tensor(np.zeros((2, 3), dtype=np.int64)))
    with pytest.raises(tg.ShapeError, match=r"weight.*\(3,\)"):
        F.cross_entropy(t64(np.zeros((2, 3))), tg.tensor([0, 1]), t64([1.0, 2.0]))


def test_losses_reject_unknown_reductions_and_bad_smoothing():
    x = t64(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, tg.tensor([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(x, x, reduction="batchmean")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, tg.tensor([0, 1]), label_smoothing=1.5)


def test_mse_and_bce_reject_mismatched_shapes():
    with pytest.raises(tg.ShapeError, match=r"mse_loss.*\(2, 3\).*\(3,\)"):
        F.mse_loss(t64(np.zeros((2, 3))), t64(np.zeros(3)))
    with pytest.raises(tg.ShapeError, match="binary_cross_entropy_with_logits"):
        F.binary_cross_entropy_with_logits(t64(np.zeros((2, 3))), t64(np.zeros((3, 2))))


# ---------------------------------------------------------------- small functions

@pytest.mark.parametrize("lead", [(), (4,), (2, 3), (2, 1, 3)])
def test_linear_is_x_times_weight_transposed_plus_bias_for_any_leading_axes(lead):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(lead + (5,)), rng.standard_normal((3, 5)), rng.standard_normal(3)
    out = F.linear(t64(x), t64(w), t64(b))
    np.testing.assert_allclose(out.numpy(), x @ w.T + b, **F64)
    np.testing.assert_allclose(F.linear(t64(x), t64(w)).numpy(), x @ w.T, **F64)
    gradcheck(F.linear, [t64(x, True), t64(w, True), t64(b, True)])


def test_linear_errors_name_the_shapes_and_dtypes():
    with pytest.raises(tg.ShapeError, match=r"linear.*\(2, 4\).*in_features=5"):
        F.linear(t64(np.zeros((2, 4))), t64(np.zeros((3, 5))))
    with pytest.raises(tg.DTypeError, match="linear.*float32.*float64"):
        F.linear(tg.zeros(2, 5), t64(np.zeros((3, 5))))


def test_softmax_accepts_pytorchs_dim_keyword():
    x = t64(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(F.softmax(x, dim=0).numpy(), F.softmax(x, 0).numpy())
    np.testing.assert_array_equal(F.log_softmax(x, dim=0).numpy(), F.log_softmax(x, 0).numpy())
    with pytest.raises(TypeError, match="both"):
        F.softmax(x, 0, dim=1)


def test_one_hot_infers_the_class_count_and_returns_int64_as_torch():
    out = F.one_hot(tg.tensor([[0, 2], [1, 2]]))
    assert out.shape == (2, 2, 3) and out.dtype == tg.int64
    np.testing.assert_array_equal(out.numpy(), np.eye(3, dtype=np.int64)[[[0, 2], [1, 2]]])
    assert F.one_hot(tg.tensor([1]), 4, dtype="float64").dtype == tg.float64
    with pytest.raises(ValueError, match="one_hot"):
        F.one_hot(tg.tensor([4]), 3)


def test_embedding_picks_rows_and_checks_its_indices():
    w = t64(np.arange(12.0).reshape(4, 3))
    np.testing.assert_array_equal(F.embedding(tg.tensor([3, 0]), w).numpy(), [[9, 10, 11], [0, 1, 2]])
    with pytest.raises(IndexError, match=r"embedding.*\[0, 4\)"):
        F.embedding(tg.tensor([4]), w)
    with pytest.raises(IndexError, match="embedding"):
        F.embedding(tg.tensor([-1]), w)
    with pytest.raises(tg.DTypeError, match="embedding"):
        F.embedding(t64([1.0]), w)


# ---------------------------------------------------------------- nn.utils

def _params_with_grads(grad_arrays):
    params = []
    for g in grad_arrays:
        p = tg.nn.Parameter(t64(np.zeros_like(g)))
        p.grad = t64(g.copy())
        params.append(p)
    return params


@given(st.lists(arrays(shapes(min_dims=1, max_dims=2)), min_size=1, max_size=3),
       st.floats(0.01, 5.0), st.sampled_from([1.0, 2.0, 3.0, math.inf]))
def test_clip_grad_norm_matches_numpy_and_torch(grads, max_norm, norm_type):
    flat = np.concatenate([g.reshape(-1) for g in grads])
    total = np.abs(flat).max() if norm_type == math.inf else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    params = _params_with_grads(grads)
    got = utils.clip_grad_norm_(params, max_norm, norm_type)
    assert isinstance(got, tg.Tensor) and got.shape == () and got.dtype == np.float64  # as PyTorch: 0-d
    np.testing.assert_allclose(float(got), total, **F64)
    coef = min(1.0, max_norm / (total + 1e-6))
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, **F64)
    torch = pytest.importorskip("torch")
    tparams = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for tp, g in zip(tparams, grads):
        tp.grad = torch.tensor(g)
    ref = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type)
    np.testing.assert_allclose(float(got), ref.item(), **F64)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), **F64)


def test_clip_grad_norm_skips_parameters_without_grad_and_leaves_small_grads_alone():
    a, b = _params_with_grads([np.array([3.0, 4.0]), np.array([1.0])])
    b.grad = None
    assert utils.clip_grad_norm_(iter([a, b]), 10.0) == 5.0
    np.testing.assert_array_equal(a.grad.numpy(), [3.0, 4.0])
    assert utils.clip_grad_norm_(a, 1.0) == 5.0  # a single tensor is accepted too
    np.testing.assert_allclose(a.grad.numpy(), np.array([3.0, 4.0]) / (5.0 + 1e-6), **F64)
    assert utils.clip_grad_norm_([b], 1.0) == 0.0


def test_clip_grad_norm_can_refuse_a_nonfinite_norm():
    (p,) = _params_with_grads([np.array([np.inf, 1.0])])
    with pytest.raises(RuntimeError, match="error_if_nonfinite"):
        utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="norm_type"):
        utils.clip_grad_norm_([p], 1.0, norm_type=0)


@given(st.lists(arrays(shapes(min_dims=1, max_dims=2), -3, 3), min_size=1, max_size=3), st.floats(0.0, 2.0))
def test_clip_grad_value_matches_numpy_and_torch(grads, clip):
    params = _params_with_grads(grads)
    assert utils.clip_grad_value_(params, clip) is None
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad.numpy(), np.clip(g, -clip, clip))
    torch = pytest.importorskip("torch")
    tparams = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for tp, g in zip(tparams, grads):
        tp.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_value_(tparams, clip)
    for p, tp in zip(params, tparams):
        np.testing.assert_array_equal(p.grad.numpy(), tp.grad.numpy())


def test_clipping_binds_new_grad_arrays_and_touches_no_other_array():
    x = t64([1.0, 2.0], requires_grad=True)
    upstream = np.array([30.0, 40.0])
    (x * 1.0).backward(upstream)
    grad, grad_array = x.grad, x.grad.data
    utils.clip_grad_norm_([x], 5.0)
    assert x.grad is grad and x.grad.data is not grad_array  # the same Tensor, a new array
    np.testing.assert_allclose(x.grad.numpy(), np.array([30.0, 40.0]) * 5.0 / (50.0 + 1e-6), **F64)
    np.testing.assert_array_equal(grad_array, [30.0, 40.0])
    np.testing.assert_array_equal(upstream, [30.0, 40.0])


State = namedtuple("State", ["h", "c"])


def test_detach_state_keeps_the_structure_and_cuts_the_graph():
    x = t64([1.0, 2.0], requires_grad=True)
    h, c = x * 2.0, x.tanh()
    state = [(h, c), State(h, c), None, h]
    out = utils.detach_state(state)
    assert isinstance(out, list) and isinstance(out[0], tuple) and isinstance(out[1], State) and out[2] is None
    for old, new in [(h, out[0][0]), (c, out[0][1]), (h, out[1].h), (c, out[1].c), (h, out[3])]:
        assert new.node is None and not new.requires_grad
        assert new.data is old.data  # same array, no copy
    assert h.node is not None  # the originals keep their graph
    with pytest.raises(TypeError, match="detach_state"):
        utils.detach_state({"h": h})
