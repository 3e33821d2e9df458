"""The optimizer base class: parameter groups, per-parameter state, ``state_dict``.

An optimizer holds ``param_groups``, a list of dicts, each with a ``"params"`` list
and that group's options (``lr``, ``momentum``...), filled from the optimizer's
defaults where the group does not set them (PyTorch's semantics). ``state`` maps
each parameter to a dict of its running buffers (NumPy or CuPy arrays, on the
parameter's device and in its dtype) and its step count.

Updates work on the raw ``.data`` arrays, so nothing is recorded on the tape. The
Parameters keep their identity (a model's weights stay the optimizer's), but each step
binds a new array to ``.data`` rather than writing into the old one, as ``x -= y`` on a
Tensor and ``load_state_dict`` do: a graph recorded before the step (kept with
``retain_graph=True``) saved the old arrays and must keep seeing the values it was
computed with. The new array is the update's own scratch array, so this costs no extra
pass. No float32 parameter meets a float64 array (scalars are Python floats, which NumPy
and CuPy treat as "weak" and never promote a float32 array with).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from .. import backend
from ..autograd import enable_grad
from ..errors import DeviceError, DTypeError, ShapeError, StateDictError
from ..nn.utils import zero_grads
from ..tensor import Tensor

__all__ = ["Optimizer"]

Array = backend.Array
ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class of optimizers: holds parameter groups and per-parameter state.

    Subclasses set their defaults, validate options in ``_validate`` and implement
    ``_update(p, grad, state, group)``, the rule for one parameter; ``step`` runs it
    for every parameter that has a ``.grad``.

    Args:
        params: an iterable of Parameters (one group), or of dicts ``{"params": [...], **options}``
            (one group each, options overriding ``defaults``).
        defaults: the options a group gets when it does not set them.

    Raises:
        TypeError: ``params`` is a single Tensor, a set, or holds something that is not a Tensor.
        ValueError: an empty parameter list, a parameter in two groups, or an invalid option.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or of dicts, "
                            "got a single Tensor; wrap it in a list: [p]")
        if isinstance(params, (set, frozenset)):
            # A set's order changes between runs, and state_dict indices depend on the order.
            raise TypeError(f"{type(self).__name__}: parameters must be in an ordered collection (a list), not a set")
        self._validate(defaults)
        self.defaults = dict(defaults)
        # Keyed by the parameter itself, as in PyTorch: Tensor hashes by identity.
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (missing ones come from the defaults).

        Useful to unfreeze layers while training. The dict is stored (with ``"params"``
        turned into a list and the defaults filled in), not copied.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"{type(self).__name__}.add_param_group: expected a dict, got {type(param_group).__name__}")
        params = param_group.get("params")
        if params is None:
            raise ValueError(f"{type(self).__name__}.add_param_group: the group has no 'params' entry")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{type(self).__name__}: parameters must be in an ordered collection (a list), "
                            "not a set")
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: can only optimize Tensors, got {type(p).__name__}")
            if p.node is not None:
                raise ValueError(f"{type(self).__name__}: can't optimize a non-leaf Tensor "
                                 "(it is the output of an op); optimize the leaves it was computed from")
            if not backend.is_float(p.dtype):
                raise DTypeError(f"{type(self).__name__}: can only optimize float tensors, got {p.dtype}")
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{type(self).__name__}: a parameter group lists the same parameter twice")
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if taken.intersection(ids):
            raise ValueError(f"{type(self).__name__}: some parameters appear in more than one parameter group")
        param_group["params"] = params
        self.param_groups.append(self._complete(param_group))

    def _complete(self, group: dict[str, Any]) -> dict[str, Any]:
        """Fill the options ``group`` lacks from the defaults (in place), validate them, and return it.

        Every group goes through here, added or loaded, so the update rules and ``_validate``
        always see every option.
        """
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._validate(group)
        return group

    def _validate(self, options: dict[str, Any]) -> None:
        """Raise ValueError for invalid options (subclasses check their own); ``options`` has them all."""

    # ------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: ``.grad = None`` (default), or zeros.

        With ``set_to_none=False`` each ``.grad`` Tensor stays (detached, as in PyTorch) and gets
        a new array of zeros rather than being zeroed in place: a graph recorded earlier may have
        saved the old array, and must keep the values it was built from.
        """
        zero_grads([p for group in self.param_groups for p in group["params"]], set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient (those whose ``.grad`` is None are skipped).

        Args:
            closure: optional; re-evaluates the model and returns the loss (run with gradients enabled).

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.data
                if grad.shape != p.data.shape:
                    raise ShapeError(f"{type(self).__name__}.step: gradient of shape {grad.shape} "
                                     f"for a parameter of shape {p.data.shape}")
                if backend.device_of(grad) != backend.device_of(p.data):
                    raise DeviceError(f"{type(self).__name__}.step: gradient on {backend.device_of(grad)} "
                                      f"for a parameter on {backend.device_of(p.data)}; move both with .to()")
                p.data = self._update(p.data, grad, self.state.setdefault(p, {}), group)
        return loss

    def _update(self, p: Array, grad: Array, state: dict[str, Any], group: dict[str, Any]) -> Array:
        """The update rule for one parameter array ``p``: returns the updated values as a new
        array (``p`` itself is left as it was) and updates ``state`` in place."""
        raise NotImplementedError(f"{type(self).__name__} does not define _update()")

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state, in PyTorch's layout, with NumPy copies of every array.

        ``{"state": {index: {name: array or number}}, "param_groups": [{**options, "params": [indices]}]}``,
        where parameters are numbered 0, 1, ... in group order. Parameters themselves are not saved.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if id(p) in index and s:
                state[index[id(p)]] = {k: _to_numpy_copy(v) for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore options and state saved by ``state_dict`` (the groups must have the same sizes).

        Arrays are copied to each parameter's device and cast to its float dtype, so a checkpoint
        saved on a GPU loads on a CPU and the other way round. Group options (``lr``...) are
        replaced by the saved ones; options the checkpoint lacks take the defaults.

        Raises:
            StateDictError: a different number of groups, a group of a different size,
                an unknown parameter index or a state array of the wrong shape.
            ValueError: a saved option is invalid.
        """
        name = f"{type(self).__name__}.load_state_dict"
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise StateDictError(f"{name}: the checkpoint has {len(saved_groups)} parameter groups, "
                                 f"this optimizer {len(self.param_groups)}")
        for i, (g, s) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise StateDictError(f"{name}: parameter group {i} has {len(s['params'])} parameters in the "
                                     f"checkpoint but {len(g['params'])} here")
        by_index = {int(k): p for g, s in zip(self.param_groups, saved_groups)
                    for k, p in zip(s["params"], g["params"])}
        # int(): a checkpoint that went through JSON has its indices as strings.
        saved_state = {int(k): v for k, v in state_dict["state"].items()}
        unknown = [k for k in saved_state if k not in by_index]
        if unknown:
            raise StateDictError(f"{name}: state for parameter indices {unknown} that no group lists")
        new_state: dict[Tensor, dict[str, Any]] = {}
        for k, saved in saved_state.items():
            p = by_index[k]
            new_state[p] = {key: _to_param(v, p, key, name) for key, v in saved.items()}
        # Options the checkpoint lacks (saved by an older version) take the defaults, as new groups do.
        new_groups = [self._complete({**copy.deepcopy({k: v for k, v in s.items() if k != "params"}),
                                      "params": g["params"]})
                      for g, s in zip(self.param_groups, saved_groups)]
        # Build everything first, then swap in: a failed load leaves the optimizer untouched.
        self.state = new_state
        self.param_groups = new_groups

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join(lines) + "\n)"


# ---------------------------------------------------------------- helpers for the update rules

def effective_grad(p: Array, grad: Array, weight_decay: float, maximize: bool) -> Array:
    """The gradient the rule sees: ``g = ±grad + weight_decay * p`` (L2 penalty, sign flipped to maximize).

    Returns ``grad`` itself (never to be written to) when there is nothing to add, else a new array
    of ``p``'s dtype. (Ufuncs with ``out=``: plain NumPy arithmetic on a 0-d array returns an immutable
    scalar, which the rules could not update in place.)
    """
    if weight_decay == 0 and not maximize:
        return grad
    xp = backend.get_xp(p)
    g = xp.empty_like(p)
    if weight_decay == 0:
        return xp.negative(grad, out=g)
    xp.multiply(p, weight_decay, out=g)
    return xp.subtract(g, grad, out=g) if maximize else xp.add(g, grad, out=g)


def ema_(buf: Array, x: Array, beta: float, tmp: Array) -> Array:
    """The moving average ``buf ← β buf + (1 - β) x``, in place; returns ``buf``.

    ``tmp`` is a scratch array of ``buf``'s shape and dtype that receives ``(1 - β) x``; it may be
    ``x`` itself (which is then overwritten).
    """
    backend.get_xp(buf).multiply(x, 1.0 - beta, out=tmp)
    buf *= beta
    buf += tmp
    return buf


def check_options(owner: str, options: dict[str, Any], nonneg: tuple[str, ...]) -> None:
    """Raise ValueError naming ``owner`` if an option in ``nonneg`` is < 0 (or NaN)."""
    for key in nonneg:
        if not options[key] >= 0.0:
            raise ValueError(f"{owner}: invalid {key} {options[key]!r}: it must be >= 0")


def _to_numpy_copy(v: Any) -> Any:
    """A state value for ``state_dict``: a CuPy array fetched to NumPy (the transfer is the copy), anything
    else (NumPy arrays, step counts) deep-copied."""
    if backend.device_of(v) == "cuda":
        return backend.to_numpy(v)
    return copy.deepcopy(v)


def _to_param(v: Any, p: Tensor, key: str, name: str) -> Any:
    """A saved state value made ready for ``p``: arrays copied to its device and float dtype."""
    if isinstance(v, Tensor):
        v = v.data
    elif hasattr(v, "detach") and hasattr(v, "cpu"):  # a PyTorch tensor (a torch checkpoint)
        v = v.detach().cpu().numpy()
    if key == "step":
        return int(float(v))  # a count; PyTorch saves it as a float tensor
    if not (hasattr(v, "shape") and hasattr(v, "dtype")):
        return copy.deepcopy(v)
    if tuple(v.shape) != tuple(p.shape):
        raise StateDictError(f"{name}: state {key!r} has shape {tuple(v.shape)} for a parameter of shape "
                             f"{tuple(p.shape)}")
    dtype = p.dtype if backend.is_float(v.dtype) else None
    return backend.as_array(v, dtype, p.device, copy=True)
