"""Error classes of tinygrad_rnn: each names the op, the shapes, dtypes or devices, and the fix."""

from __future__ import annotations

__all__ = [
    "TinygradRNNError",
    "ShapeError",
    "DTypeError",
    "DeviceError",
    "BackwardError",
    "AnomalyError",
    "StateDictError",
    "IndexingError",
]


class TinygradRNNError(Exception):
    """Base class of every error this package raises on purpose."""


class ShapeError(TinygradRNNError, ValueError):
    """Shapes that an op cannot combine (matmul, broadcasting, reshape, cat, ...)."""


class DTypeError(TinygradRNNError, TypeError):
    """Dtypes that an op cannot combine, or a dtype an op does not accept."""


class DeviceError(TinygradRNNError, RuntimeError):
    """Tensors on different devices, or a device that is not available here."""


class BackwardError(TinygradRNNError, RuntimeError):
    """Misuse of the reverse pass: released graph, non-scalar root, bad gradient shape."""


class IndexingError(TinygradRNNError, IndexError):
    """An index that does not fit the tensor: out of range, too many indices, a mask of another shape."""


class AnomalyError(TinygradRNNError, FloatingPointError):
    """Raised under ``detect_anomaly()`` by the first op that produced NaN or Inf."""


class StateDictError(TinygradRNNError, KeyError):
    """``load_state_dict`` found missing keys, unexpected keys or shape mismatches (all listed)."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""
