"""Shared test setup: hypothesis profiles, the backend fixture, tolerances per dtype.

Profiles: ``ci`` (default; derandomized, bounded, no deadline: never flaky) and
``dev`` (many more examples, random: finds bugs). Pick one with
``HYPOTHESIS_PROFILE=dev pytest``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import tinygrad_rnn as tg

try:  # optional: imported here so that every test, run alone or in the suite, sees the same torch seed
    import torch
except ImportError:
    torch = None

settings.register_profile("ci", max_examples=25, derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=400, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Tolerances per dtype for comparing a result with a reference computed differently.
TOL = {
    np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-12},
    np.dtype(np.float32): {"rtol": 2e-5, "atol": 1e-6},
}

BACKENDS = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not tg.cuda_available(),
                                                                  reason="no CuPy / GPU here"))]


@pytest.fixture(params=BACKENDS)
def device(request) -> str:
    """Every test taking ``device`` runs on "cpu" and, where a GPU and CuPy are present, on "cuda"."""
    return request.param


@pytest.fixture(autouse=True)
def _reset_global_state():
    """Each test starts in float32 with gradients enabled and a seeded generator."""
    tg.set_default_dtype("float32")
    tg.manual_seed(0)
    if torch is not None:  # PyTorch's own random initialisations, when a test builds its layers
        torch.manual_seed(0)
    yield
    tg.set_default_dtype("float32")
