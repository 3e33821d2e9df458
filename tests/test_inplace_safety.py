"""No array that a recorded graph may have saved is ever written by the library.

A graph keeps the arrays its backward rules need (``ctx.saved``). If anything later wrote into
one of them, a backward through that graph would silently compute with the new values. The
library's rule (docs/autograd.md, "Arrays are never written in place"): every update it makes
(accumulating into ``.grad``, clipping, zeroing, initialising, optimizer steps, ``x -= y``) binds
a NEW array to the tensor; the old array, which a graph may hold, keeps its values.

Each test here builds a graph that saved an array, runs one of those updates, and checks that
the graph still computes with the values it was built from.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from helpers import leaf

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.nn import utils
from tinygrad_rnn.optim import SGD

PACKAGE = Path(tg.__file__).resolve().parent


def _grad_graph():
    """x = [1, 2]; x.grad = 3x^2 with a graph; z = sum(x.grad^2), whose Mul saved x.grad's array.
    dz/dx = 2 * 3x^2 * 6x = 36 x^3 = [36, 288]."""
    x = leaf([1.0, 2.0])
    (x ** 3).sum().backward(create_graph=True)
    z = (x.grad * x.grad).sum()
    return x, z


def test_accumulating_into_grad_leaves_the_array_a_retained_graph_saved_alone():
    # issue 11: [36, 288] then, after x.grad = None, [468, 7200] from the overwritten array
    x, z = _grad_graph()
    z.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), [3.0 + 36.0, 12.0 + 288.0])  # 3x^2 + dz/dx
    x.grad = None
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [36.0, 288.0])


def test_accumulation_binds_a_new_array_and_keeps_the_grad_tensor():
    x = leaf([1.0, 2.0])
    (x * 2.0).sum().backward()
    g, old = x.grad, x.grad.data
    before = old.copy()
    (x * 3.0).sum().backward()
    assert x.grad is g  # the same Tensor (a reference taken to .grad follows, as in PyTorch)
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 5.0])
    np.testing.assert_array_equal(old, before)  # ... but not the same array


@pytest.mark.parametrize("clip", [
    lambda ps: utils.clip_grad_norm_(ps, 1.0),
    lambda ps: utils.clip_grad_norm_(ps, 1.0, norm_type=float("inf")),
    lambda ps: utils.clip_grad_value_(ps, 1.0),
], ids=["clip_grad_norm_", "clip_grad_norm_inf", "clip_grad_value_"])
def test_clipping_leaves_the_array_a_recorded_graph_saved_alone(clip):
    x, z = _grad_graph()
    clip([x])
    assert np.abs(x.grad.numpy()).max() <= 1.0 + 1e-9  # clipped ...
    (dz,) = tg.grad(z, x)
    np.testing.assert_allclose(dz.numpy(), [36.0, 288.0])  # ... but z's graph kept 3x^2


def test_optimizer_zero_grad_without_set_to_none_leaves_a_recorded_graph_alone():
    x, z = _grad_graph()
    g = x.grad
    SGD([x], lr=0.1).zero_grad(set_to_none=False)
    assert x.grad is g and not x.grad.numpy().any()  # zeros, in the same Tensor ...
    assert x.grad.node is None and not x.grad.requires_grad  # ... detached, as in PyTorch
    (dz,) = tg.grad(z, x)
    np.testing.assert_allclose(dz.numpy(), [36.0, 288.0])  # z's graph still sees 3x^2


def test_module_zero_grad_without_set_to_none_gives_zeros_and_leaves_a_recorded_graph_alone():
    class Cube(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(np.array([1.0, 2.0]))

        def forward(self):
            return (self.p ** 3).sum()

    m = Cube()
    m().backward(create_graph=True)
    z = (m.p.grad * m.p.grad).sum()  # saved p.grad's array (3 p^2)
    g = m.p.grad
    m.zero_grad(set_to_none=False)
    assert m.p.grad is g and not g.numpy().any() and g.node is None
    (dz,) = tg.grad(z, m.p)
    np.testing.assert_allclose(dz.numpy(), [36.0, 288.0])
    m.zero_grad()
    assert m.p.grad is None


def test_initialising_a_parameter_leaves_a_recorded_graph_alone():
    w = leaf([1.0, 2.0])
    y = (w * w * w).sum()  # Mul saved w's array
    with tg.no_grad():
        nn.init.constant_(w, 5.0)
        nn.init.uniform_(w, 10.0, 11.0)
    assert w.numpy().min() >= 10.0
    (g,) = tg.grad(y, w)
    np.testing.assert_allclose(g.numpy(), [3.0, 12.0])  # 3 w^2 at the recorded w


def test_gradcheck_does_not_write_into_its_inputs_arrays():
    base = np.array([[0.3, -0.2], [0.7, 1.1]])
    x = tg.Tensor(base.T, requires_grad=True)  # a transposed view: reshape(-1) of it would be a copy
    before = base.copy()
    assert tg.testing.gradcheck(lambda t: (t * t).sum(), [x])
    np.testing.assert_array_equal(base, before)
    assert x.data.base is base  # the caller's array is back in place


def test_grad_results_own_their_memory():
    # issue 11: tg.grad(a + b, [a, b], grad_outputs=v) gave two tensors sharing v's array
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    v = tg.tensor([1.0, 1.0], dtype="float64")
    ga, gb = tg.grad(a + b, [a, b], grad_outputs=v)
    assert ga.data is not gb.data and ga.data is not v.data and gb.data is not v.data
    assert not np.shares_memory(ga.data, gb.data) and not np.shares_memory(ga.data, v.data)
    a.grad = ga
    (a * 1.0).sum().backward()
    np.testing.assert_array_equal(v.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(gb.numpy(), [1.0, 1.0])


def test_grad_results_own_their_memory_under_create_graph():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    v = tg.tensor([1.0, 1.0], dtype="float64")
    ga, gb = tg.grad(a + b, [a, b], grad_outputs=v, create_graph=True)
    assert ga is not gb and ga is not v
    assert not np.shares_memory(ga.data, gb.data) and not np.shares_memory(ga.data, v.data)


# Writes into a tensor's array in place: ``t.data[...] = ``, ``t.data += ``, ``t.data.fill(``.
_IN_PLACE = re.compile(r"\.data(\[[^\]]*\])?\s*([-+*/]|\*\*|//)?=(?!=)|\.data\.fill\(")


def test_no_library_module_writes_into_a_tensors_array_in_place():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            m = _IN_PLACE.search(code)
            if m and not re.search(r"\.data\s*=(?!=)", code[m.start():m.start() + 8]):
                offenders.append(f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}")
    assert not offenders, "in-place writes into .data (bind a new array instead):\n" + "\n".join(offenders)


# ---------------------------------------------------------------- clip_grad_norm_ stays on the device

def test_clip_grad_norm_reads_no_number_back_from_the_arrays(monkeypatch):
    # issue 12: float() once per parameter is a host-device synchronisation each on CuPy. Here any
    # float() of an array (or of a Tensor) inside nn.utils fails the test. (On the CPU one
    # comparison of the 0-d factor skips the multiply when it is 1: NumPy has no device to wait for.)
    def no_host_read(x=0.0):
        if not isinstance(x, (int, float, str)):
            raise AssertionError(f"clip_grad_norm_ read a {type(x).__name__} on the host")
        return float(x)

    monkeypatch.setattr(utils, "float", no_host_read, raising=False)
    monkeypatch.setattr(tg.backend, "is_finite", lambda a: pytest.fail("is_finite is a host read"))
    ps = [leaf([3.0, 4.0]), leaf([[12.0]]), leaf([0.0])]
    for p in ps:
        p.grad = tg.Tensor(p.data * 1.0)
    total = utils.clip_grad_norm_(ps, 6.5)
    assert isinstance(total, tg.Tensor) and total.shape == () and isinstance(total.data, np.ndarray)
    monkeypatch.undo()
    assert float(total) == 13.0
    np.testing.assert_allclose(ps[0].grad.numpy(), np.array([3.0, 4.0]) * 6.5 / (13.0 + 1e-6))


def test_clip_grad_norm_returns_the_norm_in_the_gradients_dtype():
    p = tg.tensor([3.0, 4.0], requires_grad=True)  # float32
    p.grad = tg.tensor([3.0, 4.0])
    total = utils.clip_grad_norm_([p], 1.0)
    assert total.dtype == np.float32 and p.grad.dtype == np.float32 and float(total) == 5.0
    assert float(utils.clip_grad_norm_([], 1.0)) == 0.0


def test_clip_grad_norm_on_a_gpu_scales_without_asking_the_host_whether_to(monkeypatch):
    # the CuPy path, run on NumPy arrays: the factor is applied even when it is 1 (no host decision)
    ps = [leaf([3.0, 4.0])]
    ps[0].grad = tg.Tensor(np.array([3.0, 4.0]))
    before = ps[0].grad.data
    monkeypatch.setattr(tg.backend, "reading_blocks", lambda a: True)  # as for every CuPy array
    total = utils.clip_grad_norm_(ps, 100.0)
    monkeypatch.undo()
    assert float(total) == 5.0 and ps[0].grad.data is not before
    np.testing.assert_array_equal(ps[0].grad.numpy(), [3.0, 4.0])


@pytest.mark.skipif(not tg.cuda_available(), reason="no CuPy / GPU here")
def test_clip_grad_norm_on_cupy_matches_numpy_and_does_not_synchronise():
    cupyx = pytest.importorskip("cupyx")
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (5,), (2, 2, 2))]
    on = {}
    for device in ("cpu", "cuda"):
        ps = [tg.tensor(np.zeros_like(g), requires_grad=True, device=device) for g in grads]
        for p, g in zip(ps, grads):
            p.grad = tg.tensor(g, device=device)
        if device == "cuda" and hasattr(cupyx, "allow_synchronize"):
            with cupyx.allow_synchronize(False):  # raises cupyx.DeviceSynchronized on a host read
                total = utils.clip_grad_norm_(ps, 1.0)
        else:
            total = utils.clip_grad_norm_(ps, 1.0)
        assert total.device == device and total.shape == ()
        on[device] = (float(total), [p.grad.numpy() for p in ps])
    np.testing.assert_allclose(on["cuda"][0], on["cpu"][0], rtol=1e-6)
    for a, b in zip(on["cuda"][1], on["cpu"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
