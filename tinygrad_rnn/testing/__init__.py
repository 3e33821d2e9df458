"""Public test kit for people who extend tinygrad_rnn: gradient checks (first and second order).

The hypothesis strategies live in ``tinygrad_rnn.testing.strategies`` (they need hypothesis).
"""

from .gradcheck import GradcheckError, gradcheck, gradgradcheck, numerical_grad

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck", "numerical_grad"]
