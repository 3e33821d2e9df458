"""Making tensors: from data, filled, ranges and random draws (seeded per device)."""

from __future__ import annotations

from typing import Any

from . import backend
from .backend import DTypeLike, Generator
from .tensor import Tensor


def _shape(shape: tuple) -> tuple[int, ...]:
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)


def tensor(data: Any, requires_grad: bool = False, dtype: DTypeLike | None = None, device: str = "cpu") -> Tensor:
    """A new tensor holding a copy of ``data`` (numbers, nested lists, arrays or a Tensor).

    Python floats get the default dtype (float32), ints int64, bools bool.

    >>> import tinygrad_rnn as tg
    >>> tg.tensor([[1.0, 2.0]]).shape
    (1, 2)
    """
    if isinstance(data, Tensor):
        data = data.data
    device = backend.check_device(device)
    arr = backend.as_array(data, backend.to_dtype(dtype) if dtype is not None else None, device)
    return Tensor(arr, requires_grad=requires_grad)


def full(shape: tuple, fill_value: float, dtype: DTypeLike | None = None, device: str = "cpu",
         requires_grad: bool = False) -> Tensor:
    arr = backend.full(tuple(shape), fill_value, backend.to_dtype(dtype), backend.check_device(device))
    return Tensor(arr, requires_grad=requires_grad)


def zeros(*shape: Any, dtype: DTypeLike | None = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    return full(_shape(shape), 0, dtype, device, requires_grad)


def ones(*shape: Any, dtype: DTypeLike | None = None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    return full(_shape(shape), 1, dtype, device, requires_grad)


def zeros_like(t: Tensor, dtype: DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    return full(t.shape, 0, dtype or t.dtype, t.device, requires_grad)


def ones_like(t: Tensor, dtype: DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    return full(t.shape, 1, dtype or t.dtype, t.device, requires_grad)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: DTypeLike | None = None,
           device: str = "cpu") -> Tensor:
    """Like ``numpy.arange``: int64 for integer arguments, else the default float dtype."""
    if dtype is None and all(isinstance(v, int) for v in (start, stop if stop is not None else 0, step)):
        d = backend.int64
    else:
        d = backend.to_dtype(dtype)
    return Tensor(backend.arange(start, stop, step, d, backend.check_device(device)))


def _generator(generator: Generator | None, device: str) -> Generator:
    gen = generator if generator is not None else backend.default_generator(device)
    if gen.device != device:
        raise backend.DeviceError(f"random: a {gen.device} generator cannot fill a {device} tensor")
    return gen


def randn(*shape: Any, dtype: DTypeLike | None = None, device: str = "cpu", requires_grad: bool = False,
          generator: Generator | None = None) -> Tensor:
    """Standard normal samples from ``generator`` (or the device's default, see ``manual_seed``)."""
    device = backend.check_device(device)
    arr = _generator(generator, device).normal(_shape(shape), backend.to_dtype(dtype))
    return Tensor(arr, requires_grad=requires_grad)


def rand(*shape: Any, dtype: DTypeLike | None = None, device: str = "cpu", requires_grad: bool = False,
         generator: Generator | None = None) -> Tensor:
    """Uniform samples in [0, 1)."""
    device = backend.check_device(device)
    arr = _generator(generator, device).uniform(_shape(shape), 0.0, 1.0, backend.to_dtype(dtype))
    return Tensor(arr, requires_grad=requires_grad)


def randint(low: int, high: int, shape: tuple, device: str = "cpu", generator: Generator | None = None,
            dtype: DTypeLike | None = None) -> Tensor:
    """Uniform integer samples in [low, high) (int64 unless ``dtype`` says otherwise)."""
    device = backend.check_device(device)
    arr = _generator(generator, device).integers(low, high, tuple(shape))
    return Tensor(arr if dtype is None else arr.astype(backend.to_dtype(dtype)))


def manual_seed(seed: int) -> None:
    """Seed every device's default generator (``randn``, ``rand``, initialisers, dropout)."""
    backend.manual_seed(seed)
