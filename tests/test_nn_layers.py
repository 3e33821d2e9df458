"""Modules and layers: registration, names, state dicts, modes, dtype casts and repr; each layer's
shapes, initialisation and gradients; equivalence with torch.nn when PyTorch is installed; init.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import F64, t64
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.nn import init
from tinygrad_rnn.testing import gradcheck
from tinygrad_rnn.testing.strategies import arrays

class TwoLayer(nn.Module):
    """A small model with a nested container, a shared parameter and a non-parameter attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(7, 3)
        self.body = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2, bias=False))
        self.norm = nn.LayerNorm(2)
        self.tied = self.body[0].weight  # the same Parameter under a second name
        self.scale = 2.0

    def forward(self, idx: tg.Tensor) -> tg.Tensor:
        return self.norm(self.body(self.embed(idx))) * self.scale


# ---------------------------------------------------------------- Module behaviour

def test_named_parameters_gives_dotted_names_in_registration_order_and_shared_ones_once():
    m = TwoLayer()
    names = [n for n, _ in m.named_parameters()]
    # as in PyTorch: the module's own parameters first, then its children's; a shared one under its first name
    assert names == ["tied", "embed.weight", "body.0.bias", "body.2.weight", "norm.weight", "norm.bias"]
    assert len(list(m.parameters())) == 6
    assert all(p.requires_grad and p.is_leaf for p in m.parameters())
    assert [n for n, _ in m.named_modules()] == ["", "embed", "body", "body.0", "body.1", "body.2", "norm"]
    assert [n for n, _ in m.named_children()] == ["embed", "body", "norm"]


def test_reassigning_an_attribute_replaces_its_registration():
    lin = nn.Linear(2, 3)
    lin.bias = None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    lin.extra = nn.Tanh()
    del lin.extra
    assert list(lin.children()) == []


def test_state_dict_round_trip_reproduces_the_outputs():
    a, b = TwoLayer(), TwoLayer()
    idx = tg.tensor([[1, 2, 6], [0, 0, 3]])
    assert not np.allclose(a(idx).numpy(), b(idx).numpy())
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(idx).numpy(), b(idx).numpy())


def test_state_dict_holds_copies_of_the_arrays():
    lin = nn.Linear(2, 3)
    sd = lin.state_dict()
    assert list(sd) == ["weight", "bias"]
    sd["weight"][...] = 99.0
    assert not np.any(lin.weight.numpy() == 99.0)


def test_load_state_dict_lists_every_missing_unexpected_and_mismatched_key():
    lin = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    sd = lin.state_dict()
    del sd["0.bias"]
    sd["1.weight"] = np.zeros((2, 3))
    sd["extra.weight"] = np.zeros(1)
    with pytest.raises(tg.StateDictError) as info:
        lin.load_state_dict(sd)
    msg = str(info.value)
    assert "missing keys: 0.bias" in msg and "unexpected keys: extra.weight" in msg
    assert "1.weight: checkpoint (2, 3) vs model (1, 3)" in msg


def test_load_state_dict_non_strict_skips_missing_and_unexpected_but_not_shape_mismatches():
    lin = nn.Linear(2, 3)
    before = lin.bias.numpy().copy()
    lin.load_state_dict({"weight": np.ones((3, 2)), "other": np.zeros(2)}, strict=False)
    np.testing.assert_array_equal(lin.weight.numpy(), np.ones((3, 2)))
    np.testing.assert_array_equal(lin.bias.numpy(), before)
    with pytest.raises(tg.StateDictError, match="shape mismatches"):
        lin.load_state_dict({"weight": np.ones((2, 3))}, strict=False)


def test_load_state_dict_casts_to_the_parameter_dtype_and_keeps_identity():
    lin = nn.Linear(2, 3)
    w = lin.weight
    lin.load_state_dict({"weight": np.ones((3, 2), dtype=np.float64), "bias": np.zeros(3)})
    assert lin.weight is w and w.dtype == tg.float32


def test_train_and_eval_propagate_to_every_submodule():
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5)))
    assert all(mod.training for mod in m.modules())
    assert m.eval() is m
    assert not any(mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())


def test_zero_grad_drops_every_gradient():
    m = TwoLayer()
    m(tg.tensor([1, 2])).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_to_dtype_casts_parameters_and_grads_in_place():
    m = TwoLayer()
    m(tg.tensor([1, 2])).sum().backward()
    params = list(m.parameters())
    assert m.to("float64") is m
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(p.dtype == tg.float64 and p.grad.dtype == tg.float64 for p in m.parameters())
    assert m(tg.tensor([3])).dtype == tg.float64


def test_repr_matches_pytorchs_layout():
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Dropout(0.25), nn.LayerNorm(4), nn.Softmax(dim=1))
    expected = ("Sequential(\n"
                "  (0): Linear(in_features=3, out_features=4, bias=True)\n"
                "  (1): Tanh()\n"
                "  (2): Dropout(p=0.25)\n"
                "  (3): LayerNorm((4,), eps=1e-05, elementwise_affine=True)\n"
                "  (4): Softmax(dim=1)\n"
                ")")
    assert repr(m) == expected
    assert repr(nn.Embedding(10, 3)) == "Embedding(10, 3)"
    assert repr(nn.Linear(2, 1, bias=False)) == "Linear(in_features=2, out_features=1, bias=False)"


def test_repr_of_nested_modules_matches_torch():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Linear(4, 1, bias=False)), nn.Sigmoid())
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sequential(torch.nn.ReLU(),
                              torch.nn.Linear(4, 1, bias=False)), torch.nn.Sigmoid())
    assert repr(ours) == repr(ref)


# ---------------------------------------------------------------- Linear

@pytest.mark.parametrize("lead", [(), (5,), (2, 3), (2, 1, 4)])
def test_linear_maps_the_last_axis_for_any_leading_axes(lead, device):
    lin = nn.Linear(3, 4, device=device)
    x = tg.randn(*lead, 3, device=device)
    y = lin(x)
    assert y.shape == lead + (4,) and y.device == device
    w, b = lin.weight.numpy(), lin.bias.numpy()
    np.testing.assert_allclose(y.numpy(), x.numpy() @ w.T + b, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    assert lin.weight.grad.shape == (4, 3) and lin.bias.grad.shape == (4,)


def test_linear_parameters_have_pytorchs_shapes_dtype_and_bounds():
    lin = nn.Linear(50, 200, dtype="float64", generator=tg.Generator(0))
    assert lin.weight.shape == (200, 50) and lin.bias.shape == (200,)
    assert lin.weight.dtype == lin.bias.dtype == tg.float64
    k = 1 / math.sqrt(50)
    w, b = lin.weight.numpy(), lin.bias.numpy()
    assert np.abs(w).max() <= k and np.abs(b).max() <= k
    assert np.abs(w).max() > 0.95 * k  # fills the range: U(-k, k), not something narrower
    np.testing.assert_allclose(w.var(), k * k / 3, rtol=0.05)  # the variance of U(-k, k)
    assert abs(w.mean()) < 0.03 * k  # about 5 standard errors of the mean of 10,000 draws
    assert nn.Linear(3, 2).weight.dtype == tg.get_default_dtype()
    assert nn.Linear(3, 2, bias=False).bias is None


def test_linear_initialisation_is_reproducible_with_a_generator():
    a = nn.Linear(4, 3, generator=tg.Generator(7))
    b = nn.Linear(4, 3, generator=tg.Generator(7))
    c = nn.Linear(4, 3, generator=tg.Generator(8))
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    np.testing.assert_array_equal(a.bias.numpy(), b.bias.numpy())
    assert not np.array_equal(a.weight.numpy(), c.weight.numpy())
    tg.manual_seed(3)
    d = nn.Linear(4, 3)
    tg.manual_seed(3)
    np.testing.assert_array_equal(d.weight.numpy(), nn.Linear(4, 3).weight.numpy())


@settings(max_examples=10)
@given(st.sampled_from([(3,), (2, 3), (2, 2, 3)]), st.booleans())
def test_linear_gradients_match_finite_differences(shape, bias):
    lin = nn.Linear(3, 2, bias=bias, dtype="float64")
    x = t64(np.random.default_rng(0).standard_normal(shape), requires_grad=True)
    gradcheck(lambda x, *params: lin(x), [x, *lin.parameters()])


def assert_matches_torch(ours, ref, shape, torch) -> None:
    """Same output, input gradient and weight/bias gradients as the PyTorch layer (float64)."""
    x = np.random.default_rng(0).standard_normal(shape)
    X, XT = t64(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = ours(X), ref(XT)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), **F64)
    g = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(X.grad.numpy(), XT.grad.numpy(), **F64)
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), **F64)
    np.testing.assert_allclose(ours.bias.grad.numpy(), ref.bias.grad.numpy(), **F64)


def test_linear_matches_torch_in_outputs_and_gradients():
    torch = pytest.importorskip("torch")
    ours = nn.Linear(5, 3, dtype="float64")
    ref = torch.nn.Linear(5, 3, dtype=torch.float64)
    ours.load_state_dict(ref.state_dict())
    assert_matches_torch(ours, ref, (2, 4, 5), torch)


def test_torch_state_dicts_load_into_a_sequential_by_name():
    torch = pytest.importorskip("torch")
    ref = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    ours = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3), nn.LayerNorm(3))
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(tg.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_linear_rejects_wrong_feature_counts_and_dtypes():
    lin = nn.Linear(3, 2)
    with pytest.raises(tg.ShapeError, match=r"linear.*\(4, 2\).*in_features=3"):
        lin(tg.zeros(4, 2))
    with pytest.raises(tg.DTypeError, match="linear"):
        lin(t64(np.zeros((4, 3))))


# ---------------------------------------------------------------- Embedding

def test_embedding_shapes_and_standard_normal_init():
    emb = nn.Embedding(500, 40, generator=tg.Generator(0))
    assert emb.weight.shape == (500, 40)
    w = emb.weight.numpy()
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1.0) < 0.02
    out = emb(tg.tensor([[1, 2, 3], [4, 4, 499]]))
    assert out.shape == (2, 3, 40)
    np.testing.assert_array_equal(out.numpy()[1, 2], w[499])


def test_embedding_accumulates_the_gradients_of_repeated_ids():
    emb = nn.Embedding(4, 2, dtype="float64")
    g = np.arange(8.0).reshape(4, 2)
    emb(tg.tensor([1, 3, 1, 1])).backward(g)
    expected = np.zeros((4, 2))
    expected[1] = g[0] + g[2] + g[3]
    expected[3] = g[1]
    np.testing.assert_array_equal(emb.weight.grad.numpy(), expected)


def test_embedding_gradient_matches_finite_differences():
    emb = nn.Embedding(5, 3, dtype="float64")
    idx = tg.tensor([[0, 4], [4, 2]])
    gradcheck(lambda w: emb(idx), [emb.weight])


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    ref = torch.nn.Embedding(6, 3, dtype=torch.float64)
    ours = nn.Embedding(6, 3, dtype="float64")
    ours.load_state_dict(ref.state_dict())
    idx = np.array([[0, 5, 5], [2, 0, 1]])
    y, yt = ours(tg.tensor(idx)), ref(torch.tensor(idx))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), **F64)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), **F64)


def test_embedding_rejects_float_and_out_of_range_ids():
    emb = nn.Embedding(3, 2)
    with pytest.raises(tg.DTypeError, match="embedding"):
        emb(tg.tensor([1.0]))
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        emb(tg.tensor([3]))


# ---------------------------------------------------------------- LayerNorm

@pytest.mark.parametrize("normalized_shape", [4, (4,), (3, 4)])
def test_layer_norm_normalises_the_trailing_axes(normalized_shape):
    ln = nn.LayerNorm(normalized_shape, dtype="float64")
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    assert ln.weight.shape == ln.bias.shape == shape
    np.testing.assert_array_equal(ln.weight.numpy(), np.ones(shape))
    np.testing.assert_array_equal(ln.bias.numpy(), np.zeros(shape))
    x = np.random.default_rng(0).standard_normal((2, 3, 4)) * 5 + 3
    y = ln(t64(x)).numpy()
    axes = tuple(range(3 - len(shape), 3))
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=axes), 1.0, rtol=1e-4)


def test_layer_norm_without_affine_has_no_parameters():
    assert list(nn.LayerNorm(3, elementwise_affine=False).parameters()) == []
    assert [n for n, _ in nn.LayerNorm(3, bias=False).named_parameters()] == ["weight"]


def test_layer_norm_gradients_match_finite_differences():
    ln = nn.LayerNorm((2, 3), dtype="float64")
    rng = np.random.default_rng(0)
    ln.weight.data[...] = rng.standard_normal((2, 3))
    ln.bias.data[...] = rng.standard_normal((2, 3))
    x = t64(rng.standard_normal((2, 2, 3)), requires_grad=True)
    gradcheck(lambda x, w, b: ln(x), [x, ln.weight, ln.bias])


def ref_layer_norm(x, w, b, eps, n_axes):
    """LayerNorm over the last ``n_axes`` axes and its input/weight/bias gradients for upstream ``g``,
    derived by hand: with xhat = (x - m) / sqrt(v + eps) and gh = g * w, the input gradient is
    (gh - mean(gh) - xhat * mean(gh * xhat)) / sqrt(v + eps)."""
    axes = tuple(range(x.ndim - n_axes, x.ndim))
    m, v = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    r = 1 / np.sqrt(v + eps)
    xhat = (x - m) * r
    lead = tuple(range(x.ndim - n_axes))

    def grads(g):
        gh = g * w
        gx = r * (gh - gh.mean(axis=axes, keepdims=True) - xhat * (gh * xhat).mean(axis=axes, keepdims=True))
        return gx, (g * xhat).sum(axis=lead), g.sum(axis=lead)

    return xhat * w + b, grads


def test_layer_norm_matches_the_numpy_reference_where_eps_matters():
    # spread 1e-2: the variance (~1e-4) is below eps, so eps's place in the formula decides the result
    rng = np.random.default_rng(0)
    eps = 1e-3
    ln = nn.LayerNorm((3, 4), eps=eps, dtype="float64")
    w, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    ln.weight.data[...], ln.bias.data[...] = w, b
    x = rng.standard_normal((2, 3, 4)) * 1e-2 + 0.5
    expected, grads = ref_layer_norm(x, w, b, eps, 2)
    X = t64(x, requires_grad=True)
    y = ln(X)
    np.testing.assert_allclose(y.numpy(), expected, **F64)
    g = rng.standard_normal(y.shape)
    y.backward(g)
    gx, gw, gb = grads(g)
    np.testing.assert_allclose(X.grad.numpy(), gx, **F64)
    np.testing.assert_allclose(ln.weight.grad.numpy(), gw, **F64)
    np.testing.assert_allclose(ln.bias.grad.numpy(), gb, **F64)
    gradcheck(lambda x, w, b: ln(x), [t64(x, requires_grad=True), ln.weight, ln.bias])


def test_layer_norm_matches_torch():
    torch = pytest.importorskip("torch")
    ref = torch.nn.LayerNorm((3, 4), eps=1e-3, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.normal_()
        ref.bias.normal_()
    ours = nn.LayerNorm((3, 4), eps=1e-3, dtype="float64")
    ours.load_state_dict(ref.state_dict())
    assert_matches_torch(ours, ref, (2, 3, 4), torch)


def test_layer_norm_rejects_inputs_not_ending_in_normalized_shape():
    with pytest.raises(tg.ShapeError, match=r"layer_norm.*\(2, 5\).*\(4,\)"):
        nn.LayerNorm(4)(tg.zeros(2, 5))


# ---------------------------------------------------------------- Dropout

def test_dropout_is_the_identity_in_eval_mode_and_for_p_zero():
    x = tg.randn(4, 5)
    d = nn.Dropout(0.5).eval()
    assert d(x) is x
    assert nn.Dropout(0.0)(x) is x


def test_dropout_zeros_a_fraction_p_and_scales_survivors(device):
    p = 0.3
    x = tg.ones(200, 500, device=device)
    y = nn.Dropout(p, generator=tg.Generator(0, device=device))(x).numpy()
    dropped = (y == 0).mean()
    assert abs(dropped - p) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.02  # inverted scaling keeps the expectation


def test_dropout_with_p_one_zeros_everything():
    x = tg.randn(3, 4, requires_grad=True)
    y = nn.Dropout(1.0)(x)
    np.testing.assert_array_equal(y.numpy(), 0.0)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 0.0)


def test_dropout_masks_are_reproducible_with_a_generator_and_vary_between_calls():
    x = tg.ones(10, 10)
    a = nn.Dropout(0.5, generator=tg.Generator(3))
    b = nn.Dropout(0.5, generator=tg.Generator(3))
    first = a(x).numpy()
    np.testing.assert_array_equal(first, b(x).numpy())
    assert not np.array_equal(first, a(x).numpy())


def test_dropout_gradient_is_the_mask_times_the_scale():
    x = t64(np.random.default_rng(0).standard_normal((4, 6)), requires_grad=True)
    gradcheck(lambda x: nn.Dropout(0.4, generator=tg.Generator(1))(x), [x])
    y = nn.Dropout(0.4, generator=tg.Generator(1))(x)
    y.sum().backward()
    mask = y.numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), mask / 0.6, **F64)


def test_dropout_rejects_probabilities_outside_zero_one():
    with pytest.raises(ValueError, match="Dropout"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="dropout"):
        nn.functional.dropout(tg.ones(2), -0.1)


# ---------------------------------------------------------------- activations

@given(arrays((3, 4), -4, 4))
def test_activation_modules_match_numpy(x):
    X = t64(x)
    np.testing.assert_allclose(nn.Tanh()(X).numpy(), np.tanh(x), **F64)
    np.testing.assert_allclose(nn.ReLU()(X).numpy(), np.maximum(x, 0), **F64)
    np.testing.assert_allclose(nn.Sigmoid()(X).numpy(), 1 / (1 + np.exp(-x)), **F64)
    e = np.exp(x - x.max(axis=0))
    np.testing.assert_allclose(nn.Softmax(dim=0)(X).numpy(), e / e.sum(axis=0), **F64)
    np.testing.assert_allclose(nn.LogSoftmax(dim=0)(X).numpy(), np.log(e / e.sum(axis=0)), **F64)
    assert nn.Identity()(X) is X


def test_a_sequential_mlp_trains_down_on_a_tiny_problem():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2), nn.Identity())
    x = tg.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = tg.tensor([0, 1, 1, 0])
    losses = []
    for _ in range(300):
        loss = nn.functional.cross_entropy(model(x), y)
        model.zero_grad()
        loss.backward()
        with tg.no_grad():
            for p in model.parameters():
                p.data -= 0.5 * p.grad.data
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


# ---------------------------------------------------------------- init

def test_uniform_and_normal_fill_a_new_array_without_recording():
    p = nn.Parameter(tg.zeros(400, 250))
    data = p.data
    assert init.uniform_(p, -2.0, 3.0, generator=tg.Generator(0)) is p
    assert p.is_leaf and p.requires_grad and p.grad_fn is None
    assert p.data is not data and not data.any()  # bound anew: a graph may have saved the old array
    a = p.numpy()
    assert a.min() >= -2.0 and a.max() < 3.0 and abs(a.mean() - 0.5) < 0.02
    init.normal_(p, 1.5, 0.5, generator=tg.Generator(0))
    a = p.numpy()
    assert abs(a.mean() - 1.5) < 0.01 and abs(a.std() - 0.5) < 0.01


def test_constant_initialisers():
    t = tg.zeros(2, 3)
    np.testing.assert_array_equal(init.ones_(t).numpy(), 1.0)
    np.testing.assert_array_equal(init.constant_(t, 0.25).numpy(), 0.25)
    np.testing.assert_array_equal(init.zeros_(t).numpy(), 0.0)


@pytest.mark.parametrize("shape", [(300, 200), (40, 30, 5)])
def test_xavier_and_kaiming_use_pytorchs_bounds(shape):
    receptive = int(np.prod(shape[2:]))
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    t = tg.zeros(*shape, dtype="float64")
    cases = [
        (lambda: init.xavier_uniform_(t, gain=2.0, generator=tg.Generator(0)), 2.0 * math.sqrt(6 / (fan_in + fan_out))),
        (lambda: init.kaiming_uniform_(t, generator=tg.Generator(0)), math.sqrt(6 / fan_in)),
        (lambda: init.kaiming_uniform_(t, a=math.sqrt(5), generator=tg.Generator(0)), 1 / math.sqrt(fan_in)),
        (lambda: init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu", generator=tg.Generator(0)),
         math.sqrt(6 / fan_out)),
    ]
    for fill, bound in cases:
        a = fill().numpy()
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.95 * bound
        np.testing.assert_allclose(a.var(), bound**2 / 3, rtol=0.05)
    np.testing.assert_allclose(init.xavier_normal_(t, generator=tg.Generator(0)).numpy().std(),
                               math.sqrt(2 / (fan_in + fan_out)), rtol=0.05)
    np.testing.assert_allclose(init.kaiming_normal_(t, nonlinearity="tanh", generator=tg.Generator(0)).numpy().std(),
                               (5 / 3) / math.sqrt(fan_in), rtol=0.05)


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for name, param in [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("selu", None),
                        ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5))]:
        assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))
    with pytest.raises(ValueError, match="unsupported"):
        init.calculate_gain("swish")


def test_initialisers_reject_what_they_cannot_fill():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform_(tg.zeros(5))
    with pytest.raises(tg.DTypeError, match="float"):
        init.normal_(tg.tensor([1, 2]))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(tg.zeros(2, 2), mode="fan_avg")


def test_initialisers_use_the_default_generator_seeded_by_manual_seed():
    tg.manual_seed(11)
    a = init.uniform_(tg.zeros(5)).numpy().copy()
    tg.manual_seed(11)
    np.testing.assert_array_equal(init.uniform_(tg.zeros(5)).numpy(), a)
