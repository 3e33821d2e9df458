"""Learning-rate schedules: set each parameter group's ``lr`` once per epoch (PyTorch's classes and values).

Call ``scheduler.step()`` after ``optimizer.step()``, once per epoch (``ReduceLROnPlateau.step``
takes the epoch's validation metric). The epoch-based schedules update each group's current
``lr`` recursively, as PyTorch does, so the values match PyTorch's to the last bit and a
manual change of ``lr`` carries on. ``state_dict()`` holds everything but the optimizer (and,
for LambdaLR, the functions); loading it into a fresh scheduler continues the schedule exactly
(load the optimizer's own state dict too: the current ``lr`` lives there).
"""

from __future__ import annotations

import copy
import math
import types
from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat

from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR", "ReduceLROnPlateau"]


class _SchedulerState:
    """What every scheduler shares: the optimizer check, the last lrs, and a state dict of all attributes
    but those named in ``_unsaved`` (the optimizer, and whatever a subclass saves its own way)."""

    optimizer: Any
    _last_lr: list[float]
    _unsaved: tuple[str, ...] = ("optimizer",)

    def _set_optimizer(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: {type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer

    def get_last_lr(self) -> list[float]:
        """The lrs the last ``step`` set, one per group."""
        return self._last_lr

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer (copies)."""
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k not in self._unsaved}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the attributes saved by ``state_dict``."""
        self.__dict__.update(copy.deepcopy(state_dict))


class LRScheduler(_SchedulerState):
    """Base class of the epoch-based schedules: ``step()`` advances ``last_epoch`` and sets each group's lr.

    Subclasses define ``get_lr()``, the new lr of every group from ``last_epoch`` and the current lrs.

    Args:
        optimizer: the optimizer whose groups' ``lr`` it sets. Each group gets an ``initial_lr``
            entry (its lr now), the base the schedule starts from.
        last_epoch: the index of the last epoch done; -1 starts a new schedule. Resuming with
            ``last_epoch >= 0`` needs the groups' ``initial_lr`` (from the optimizer's state dict).
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        self._set_optimizer(optimizer)
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{type(self).__name__}: param_groups[{i}] has no 'initial_lr', needed to resume "
                               f"at last_epoch={last_epoch}; load the optimizer's state dict first")
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        # The first step moves to epoch last_epoch + 1 and sets the lrs for it (PyTorch's convention);
        # get_lr knows it by _step_count == 1 (a loaded state dict has _step_count >= 1).
        self._step_count = 0
        self.step()

    def get_lr(self) -> list[float]:
        """The lr of every group for epoch ``last_epoch`` (called by ``step``)."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_lr()")

    def step(self) -> None:
        """Advance one epoch and set every group's ``lr``."""
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs: ``lr_e = lr_0 · γ^⌊e / step_size⌋``.

    Computed recursively (``lr_e = lr_{e-1} · γ`` when ``e`` is a positive multiple of ``step_size``).

    Args:
        optimizer: the optimizer.
        step_size: epochs between decays (> 0).
        gamma: the decay factor γ.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        if not step_size > 0:
            raise ValueError(f"StepLR: step_size must be > 0, got {step_size!r}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every epoch: ``lr_e = lr_0 · γ^e`` (computed recursively).

    Args:
        optimizer: the optimizer.
        gamma: the decay factor γ.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._step_count == 1:  # the constructor's step keeps the current lr
            return [group["lr"] for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing from the base lr down to ``eta_min`` over ``T_max`` epochs, then back up, and so on.

    Closed form: ``lr_e = η_min + (lr_0 - η_min) (1 + cos(π e / T_max)) / 2``. As PyTorch, each
    step applies the recursive form (so that manual lr changes carry on)::

        lr_e = η_min + (lr_{e-1} - η_min) (1 + cos(π e / T_max)) / (1 + cos(π (e-1) / T_max))

    except at ``e - 1 ≡ T_max (mod 2 T_max)``, where that ratio is 0/0 and the step adds
    ``(lr_0 - η_min)(1 - cos(π / T_max)) / 2`` instead. In practice it equals the closed form.

    Args:
        optimizer: the optimizer.
        T_max: half the period, in epochs (> 0).
        eta_min: the lowest lr.
        last_epoch: see :class:`LRScheduler`.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        if not T_max > 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be > 0, got {T_max!r}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups, e, T, eta_min = self.optimizer.param_groups, self.last_epoch, self.T_max, self.eta_min
        if self._step_count == 1:  # the constructor's step keeps the current lr
            return [group["lr"] for group in groups]
        if (e - 1 - T) % (2 * T) == 0:
            return [group["lr"] + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base, group in zip(self.base_lrs, groups)]
        ratio = (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T))
        return [ratio * (group["lr"] - eta_min) + eta_min for group in groups]


class LambdaLR(LRScheduler):
    """The lr is the base lr times a function of the epoch: ``lr_e = lr_0 · f(e)``.

    Args:
        optimizer: the optimizer.
        lr_lambda: ``f``, or a list of one function per group.
        last_epoch: see :class:`LRScheduler`.

    ``state_dict`` leaves the functions out (they are code, set again by the constructor),
    except the attributes of callable objects, which it saves as PyTorch does.
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
                 last_epoch: int = -1) -> None:
        n = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"LambdaLR: expected {n} lr_lambdas (one per param group), got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * f(self.last_epoch) for f, base in zip(self.lr_lambdas, self.base_lrs)]

    _unsaved = ("optimizer", "lr_lambdas")

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["lr_lambdas"] = [None if isinstance(f, types.FunctionType) else copy.deepcopy(f.__dict__)
                               for f in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = copy.deepcopy(state_dict)
        saved = state.pop("lr_lambdas", [])
        self.__dict__.update(state)
        for f, attrs in zip(self.lr_lambdas, saved):
            if attrs is not None:
                f.__dict__.update(attrs)


class ReduceLROnPlateau(_SchedulerState):
    """Multiply the lr by ``factor`` when a metric has stopped improving for ``patience`` epochs.

    Each ``step(metric)``: the metric improves on the best so far when it is below
    ``best · (1 - threshold)`` (mode "min", threshold_mode "rel"), below ``best - threshold``
    ("min", "abs"), above ``best · (1 + threshold)`` ("max", "rel") or above ``best + threshold``
    ("max", "abs"). After more than ``patience`` epochs without improvement, every group's lr
    becomes ``max(lr · factor, min_lr)`` (unless that changes it by no more than ``eps``), and
    the count waits ``cooldown`` epochs before it starts again.

    Args:
        optimizer: the optimizer.
        mode: "min" (a loss) or "max" (an accuracy).
        factor: the decay factor (< 1).
        patience: epochs without improvement tolerated before a decay.
        threshold: how much better counts as an improvement.
        threshold_mode: "rel" or "abs".
        cooldown: epochs after a decay during which bad epochs are not counted.
        min_lr: the lowest lr, or a list of one per group.
        eps: smallest change of lr worth making.
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | Sequence[float] = 0.0, eps: float = 1e-8) -> None:
        self._set_optimizer(optimizer)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1.0, got {factor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"ReduceLROnPlateau: expected {n} min_lrs (one per param group), got {len(min_lr)}")
            self.default_min_lr: float | None = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = min_lr
            self.min_lrs = [min_lr] * n
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.eps = cooldown, eps
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]
        self.best = math.inf if mode == "min" else -math.inf
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def is_better(self, a: float, best: float) -> bool:
        """Whether metric ``a`` improves on ``best`` by more than the threshold."""
        if self.mode == "min":
            return a < best * (1.0 - self.threshold) if self.threshold_mode == "rel" else a < best - self.threshold
        return a > best * (self.threshold + 1.0) if self.threshold_mode == "rel" else a > best + self.threshold

    def step(self, metrics: SupportsFloat) -> None:
        """Record one epoch's metric (a number or a one-element Tensor) and decay the lr if it has plateaued."""
        current = float(metrics)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during the cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(f"ReduceLROnPlateau: the optimizer now has {len(groups)} param groups but "
                                   f"min_lr lists {len(self.min_lrs)}; set .min_lrs to one value per group")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr

