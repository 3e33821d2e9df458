# stand-in until the engine branch's rules module merges
"""Functions for backward rules that work on raw arrays (normal backward) and on Tensors
(``create_graph=True``, where the rule's ops are recorded so it can be differentiated again).

A backward rule receives raw backend arrays in a normal ``backward()`` and Tensors under
``create_graph=True``. Operators (``*``, ``/``, ``-``) and methods (``.sum``, ``.reshape``)
work on both; for the rest, call these functions instead of ``backend``'s, which only take
arrays.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..tensor import Tensor
from .elementwise import Sigmoid, exp, log

__all__ = ["exp", "log", "sigmoid"]


def sigmoid(x: Any) -> Any:
    """``1 / (1 + exp(-x))`` of an array, or of a Tensor as a recorded op."""
    return Sigmoid.apply(x) if isinstance(x, Tensor) else backend.sigmoid(x)
