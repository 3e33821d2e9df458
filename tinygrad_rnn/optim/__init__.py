"""Optimizers and learning-rate schedules with PyTorch's names, options, update rules and state dicts.

Example:
    >>> import tinygrad_rnn as tg
    >>> from tinygrad_rnn.nn import Parameter
    >>> from tinygrad_rnn.optim import Adam, lr_scheduler
    >>> w = Parameter(tg.tensor([0.5, -1.0]))
    >>> opt = Adam([w], lr=0.1)
    >>> sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    >>> for epoch in range(4):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()
    ...     opt.step()
    ...     sched.step()
    >>> sched.get_last_lr()
    [0.025]
"""

from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Adadelta", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "lr_scheduler"]
