"""In-place initialisers with PyTorch's names and formulas (``torch.nn.init``).

Each one overwrites ``t.data`` and returns ``t``. They write the array directly,
so nothing is recorded on the tape and a Parameter stays a leaf. Random ones
draw from ``generator`` (a :class:`tinygrad_rnn.Generator` on the tensor's
device), or from that device's default generator (seeded by ``manual_seed``).

>>> import tinygrad_rnn as tg
>>> w = tg.zeros(4, 8)
>>> _ = kaiming_uniform_(w, a=5 ** 0.5, generator=tg.Generator(0))
>>> bool((abs(w.numpy()) <= 8 ** -0.5).all())
True
"""

from __future__ import annotations

import math

from .. import backend
from ..backend import Generator
from ..errors import DeviceError, DTypeError
from ..tensor import Tensor

__all__ = [
    "calculate_gain", "uniform_", "normal_", "zeros_", "ones_", "constant_", "xavier_uniform_", "xavier_normal_",
    "kaiming_uniform_", "kaiming_normal_",
]


def _generator(t: Tensor, generator: Generator | None, op: str) -> Generator:
    gen = generator if generator is not None else backend.default_generator(t.device)
    if gen.device != t.device:
        raise DeviceError(f"{op}: a {gen.device} generator cannot fill a {t.device} tensor; "
                          f"pass Generator(seed, device='{t.device}')")
    if not backend.is_float(t.dtype):
        raise DTypeError(f"{op}: random initialisation needs a float tensor, got {t.dtype}")
    return gen


def _fill(t: Tensor, values: backend.Array) -> Tensor:
    # A new array bound to t (of t's dtype, device and shape), not a write into the old one: a
    # graph recorded earlier may have saved the old array, and must keep the values it was built
    # from (as optimizer steps and ``x -= y`` do; docs/autograd.md).
    # ``values`` is a fresh array the caller drew for t: bound as it is when it fits.
    if not backend.same_array_kind(values, t.data):
        values = backend.as_array(backend.broadcast_to(values, t.shape), t.dtype, t.device, copy=True)
    t.data = values
    return t


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The gain PyTorch recommends for a nonlinearity (scales xavier/kaiming initialisations).

    Args:
        nonlinearity: "linear", "conv*", "sigmoid" (1), "tanh" (5/3), "relu" (sqrt 2),
            "leaky_relu" (sqrt(2 / (1 + slope**2)), slope ``param`` or 0.01), "selu" (3/4).
    """
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fans(t: Tensor, op: str) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in, *receptive_field), as PyTorch computes them."""
    if t.ndim < 2:
        raise ValueError(f"{op}: fan in and fan out need a tensor with at least 2 dimensions, got shape {t.shape}")
    receptive = 1
    for n in t.shape[2:]:
        receptive *= n
    return t.shape[1] * receptive, t.shape[0] * receptive


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill ``t`` with samples from U(a, b)."""
    gen = _generator(t, generator, "uniform_")
    return _fill(t, gen.uniform(t.shape, a, b, t.dtype))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill ``t`` with samples from N(mean, std**2)."""
    gen = _generator(t, generator, "normal_")
    values = gen.normal(t.shape, t.dtype)
    values *= std
    values += mean
    return _fill(t, values)


def constant_(t: Tensor, val: float) -> Tensor:
    """Fill ``t`` with ``val``."""
    return _fill(t, backend.full(t.shape, val, t.dtype, t.device))


def zeros_(t: Tensor) -> Tensor:
    """Fill ``t`` with 0."""
    return constant_(t, 0)


def ones_(t: Tensor) -> Tensor:
    """Fill ``t`` with 1."""
    return constant_(t, 1)


def xavier_uniform_(t: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Glorot uniform: U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(t, "xavier_uniform_")
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std  # U(-a, a) has standard deviation a / sqrt(3)
    return uniform_(t, -bound, bound, generator)


def xavier_normal_(t: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Glorot normal: N(0, std**2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = _fans(t, "xavier_normal_")
    return normal_(t, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(t: Tensor, a: float, mode: str, nonlinearity: str, op: str) -> float | None:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{op}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    if t.numel() == 0:  # PyTorch leaves an empty tensor alone (a fan of 0 would divide by zero)
        return None
    fan_in, fan_out = _fans(t, op)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)


def kaiming_uniform_(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator: Generator | None = None) -> Tensor:
    """He uniform: U(-bound, bound) with ``bound = gain * sqrt(3 / fan)``.

    ``gain = calculate_gain(nonlinearity, a)``; with the defaults and ``a = sqrt(5)``
    (what Linear uses) the bound is ``1 / sqrt(fan_in)``.
    """
    std = _kaiming_std(t, a, mode, nonlinearity, "kaiming_uniform_")
    if std is None:
        return t
    bound = math.sqrt(3.0) * std
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator: Generator | None = None) -> Tensor:
    """He normal: N(0, std**2) with ``std = gain / sqrt(fan)``."""
    std = _kaiming_std(t, a, mode, nonlinearity, "kaiming_normal_")
    return t if std is None else normal_(t, 0.0, std, generator)
