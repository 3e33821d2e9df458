"""Hypothesis strategies for testing ops and layers (shapes, broadcastable shapes, arrays, tensors).

Values are float64 NumPy arrays drawn inside a domain ``(lo, hi)``, so that a
test can keep away from an op's kinks and poles (log needs ``(0.1, 3)``, say).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..tensor import Tensor

__all__ = ["shapes", "broadcastable_shapes", "arrays", "tensors", "distinct_arrays"]


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Array shapes, 0-d and size-1 axes included."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3,
                         max_side: int = 4) -> st.SearchStrategy:
    """Tuples of ``num_shapes`` shapes that broadcast together (NumPy rules)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims,
                                             min_side=1, max_side=max_side).map(lambda r: r.input_shapes)


def arrays(shape: Any, lo: float = -2.0, hi: float = 2.0) -> st.SearchStrategy:
    """float64 arrays of ``shape`` with values in ``[lo, hi]`` (no NaN, no Inf)."""
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False))


def distinct_arrays(shape: Any, lo: float = -2.0, hi: float = 2.0, gap: float = 1e-3) -> st.SearchStrategy:
    """Like ``arrays`` but with values at least ``gap`` apart: max/min/sort have no ties to kink on."""
    size = int(np.prod(shape))
    return st.permutations(range(size)).flatmap(
        lambda perm: st.floats(0.0, 1.0).map(
            lambda offset: (lo + (np.array(perm, dtype=np.float64) + offset * 0.5)
                            * max((hi - lo) / max(size, 1), gap)).reshape(shape)))


def tensors(shape: Any, lo: float = -2.0, hi: float = 2.0, requires_grad: bool = True) -> st.SearchStrategy:
    """float64 Tensors of ``shape`` with values in ``[lo, hi]``."""
    return arrays(shape, lo, hi).map(lambda a: Tensor(a, requires_grad=requires_grad))
