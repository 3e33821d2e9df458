"""``x ** p`` where its formulas meet 0 * inf: the values PyTorch gives, to every order asked.

The rules ``dz/dx = p x**(p-1)`` and ``dz/dp = x**p log(x)`` give NaN at x = 0 for p = 0
(0 * 0**-1) and for p >= 0 (0 * log 0). PyTorch defines them there: dz/dx = 0 where p = 0, and
dz/dp = 0 where x = 0 and p >= 0. Because the derivative of x**k is k x**(k-1), every higher
derivative of a power at 0 ends in the rule of x**0, so the second derivative of x**1 and the
third of x**2 at 0 depend on the same fix. Closed forms run without PyTorch; with it installed,
each value is also compared with PyTorch's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import leaf

import tinygrad_rnn as tg

try:
    import torch
except ImportError:
    torch = None

X = [0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 2.0, -1.0, -1.0]
P = [-1.0, 0.0, 0.5, 1.0, 2.0, 0.0, -1.5, 0.0, 2.0]


def _closed_forms(x: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dz/dx, dz/dp) of z = x ** p with PyTorch's values where the formulas give 0 * inf."""
    with np.errstate(all="ignore"):
        dx = np.where(p == 0, 0.0, p * x ** (p - 1))
        dp = np.where((x == 0) & (p >= 0), 0.0, x**p * np.log(x))
    return dx, dp


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pow_gradients_at_base_zero_and_exponent_zero_match_pytorch(dtype):
    x = tg.tensor(X, dtype=dtype, requires_grad=True)
    p = tg.tensor(P, dtype=dtype, requires_grad=True)
    with np.errstate(all="ignore"):
        gx, gp = tg.grad((x**p).sum(), [x, p])
    assert gx.dtype == gp.dtype == np.dtype(dtype)
    dx, dp = _closed_forms(np.array(X), np.array(P))
    np.testing.assert_allclose(gx.numpy(), dx, rtol=1e-6)  # NaN only where x < 0 meets p = 2's log
    np.testing.assert_allclose(gp.numpy(), dp, rtol=1e-6)
    assert np.isfinite(gx.numpy()[[1, 3, 4, 5, 7, 8]]).all() and np.isfinite(gp.numpy()[1:5]).all()
    if torch is not None:
        tx = torch.tensor(X, dtype=getattr(torch, dtype), requires_grad=True)
        tp = torch.tensor(P, dtype=getattr(torch, dtype), requires_grad=True)
        rx, rp = torch.autograd.grad((tx**tp).sum(), [tx, tp])
        np.testing.assert_allclose(gx.numpy(), rx.numpy(), rtol=1e-6)
        np.testing.assert_allclose(gp.numpy(), rp.numpy(), rtol=1e-6)


def _derivatives(f, x0: float, n: int, lib) -> list[float]:
    """The first ``n`` derivatives of sum(f(x)) at x0, each by differentiating the previous one
    (create_graph); a derivative that no longer depends on x is 0 from there on."""
    if lib is torch:
        x = torch.tensor([x0], dtype=torch.float64, requires_grad=True)
        y, out = f(x).sum(), []
        for _ in range(n):
            if not y.requires_grad:
                out.append(0.0)
                continue
            (y,) = torch.autograd.grad(y, x, create_graph=True)
            out.append(y.item())
            y = y.sum()
        return out
    x = leaf([x0])
    y, out = f(x).sum(), []
    for _ in range(n):
        if not y.requires_grad:
            out.append(0.0)
            continue
        (y,) = tg.grad(y, x, create_graph=True)
        out.append(y.item())
        y = y.sum()
    return out


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_every_derivative_of_an_integer_power_at_zero_is_finite_and_right(k):
    # d^n/dx^n x^k at 0 = k! if n == k, else 0 (issue 11: x**0's first, x**1's second and x**2's third were NaN)
    got = _derivatives(lambda x: x**k, 0.0, 4, tg)
    assert got == [float(math.factorial(k)) if n == k else 0.0 for n in range(1, 5)]
    if torch is not None:
        assert got == _derivatives(lambda x: x**k, 0.0, 4, torch)


@pytest.mark.parametrize("k", [0.0, 1.0, 2.0])
def test_derivatives_of_a_power_with_a_tensor_exponent_at_zero(k):
    p = tg.tensor([k], dtype="float64")  # a constant tensor exponent: the other code path
    got = _derivatives(lambda x: x**p, 0.0, 3, tg)
    assert got == [float(math.factorial(int(k))) if n == k else 0.0 for n in range(1, 4)]


@pytest.mark.parametrize("base", [0.0, 2.0, 0.5])
def test_a_constant_base_to_a_tensor_power(base):
    e = np.array([-1.0, 0.0, 1.5])
    x = leaf(e)
    with np.errstate(all="ignore"):
        (g,) = tg.grad((base**x).sum(), x)
        expected = np.where(e >= 0, 0.0, -np.inf) if base == 0 else base**e * np.log(base)
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-12)
    if torch is not None:
        t = torch.tensor(e, requires_grad=True)
        (r,) = torch.autograd.grad((base**t).sum(), t)
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-12)


def test_the_zero_exponent_fix_keeps_the_mixed_second_derivative_away_from_base_zero():
    # d/dp (p x**(p-1)) = x**(p-1) (1 + p log x) = 1/x at p = 0. Masking dz/dx to 0 wherever
    # p = 0 (as PyTorch does) would cut this path and give 0; only x = p = 0 is masked here.
    x, p = leaf([1.0, 2.0, 0.5]), leaf([0.0, 0.0, 0.0])
    (gx,) = tg.grad((x**p).sum(), x, create_graph=True)
    np.testing.assert_array_equal(gx.numpy(), [0.0, 0.0, 0.0])
    (gxp,) = tg.grad(gx.sum(), p)
    np.testing.assert_allclose(gxp.numpy(), [1.0, 0.5, 2.0], rtol=1e-12)
