"""Module, Parameter and the containers: PyTorch's way of organising a model's weights.

Assigning a :class:`Parameter` or a :class:`Module` to an attribute registers it,
so ``named_parameters()`` finds every weight under a dotted name
(``layers.0.weight``) and ``state_dict()`` / ``load_state_dict()`` move them
in and out as NumPy arrays, with PyTorch's names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .. import backend
from ..errors import StateDictError
from ..tensor import Tensor
from .utils import zero_grads

__all__ = ["Parameter", "Module", "Sequential", "ModuleList"]


class Parameter(Tensor):
    """A leaf Tensor that a Module registers as a weight (``requires_grad=True``).

    Args:
        data: a Tensor (its array is shared) or an array.
        requires_grad: whether the optimizer trains it.
    """

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and models: subclasses set attributes in ``__init__`` and define ``forward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)  # kept in __dict__ too: plain attribute access stays fast

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every submodule, depth first, with dotted names ("" for this one)."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            children = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        return iter(self._modules.items())

    def children(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Every parameter once (a shared one under its first name), with dotted names."""
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mod_name, mod in mods:
            for k, p in mod._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_name}.{k}" if mod_name else k), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters(recurse=recurse))

    # ------------------------------------------------------------ modes and devices
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active) for this module and all submodules."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (``.grad = None``, PyTorch's default), or with
        ``set_to_none=False`` give each ``.grad`` new zeros (see ``Optimizer.zero_grad``)."""
        zero_grads(list(self.parameters()), set_to_none)

    def to(self, target: Any) -> Module:
        """Move (``"cpu"``/``"cuda"``) or cast (a float dtype) every parameter in place.

        Parameters keep their identity, so an optimizer built before still holds them.
        """
        is_device = isinstance(target, str) and target.startswith(("cpu", "cuda"))
        device = backend.check_device(target) if is_device else None
        dtype = None if is_device else backend.to_dtype(target)
        for p in self.parameters():
            p.data = backend.to_device(p.data, device) if device else p.data.astype(dtype)
            if p.grad is not None:
                p.grad = Tensor(backend.to_device(p.grad.data, device) if device else p.grad.data.astype(dtype))
        return self

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``{dotted name: NumPy array}`` (copies), in registration order."""
        return {name: backend.to_numpy(p.data).copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy arrays (NumPy, Tensors, or PyTorch tensors) into the parameters, by name.

        Values are cast to each parameter's dtype and moved to its device.

        Raises:
            StateDictError: listing missing keys, unexpected keys (when ``strict``) and shape mismatches.
        """
        params = dict(self.named_parameters())
        arrays = {k: _to_numpy(v) for k, v in state.items()}
        missing = [k for k in params if k not in arrays]
        unexpected = [k for k in arrays if k not in params]
        mismatched = [f"{k}: checkpoint {tuple(arrays[k].shape)} vs model {tuple(p.shape)}"
                      for k, p in params.items() if k in arrays and tuple(arrays[k].shape) != tuple(p.shape)]
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        if problems:
            raise StateDictError(f"load_state_dict for {type(self).__name__}: " + " | ".join(problems))
        for k, p in params.items():
            if k in arrays:
                p.data = backend.as_array(arrays[k], p.data.dtype, p.device)

    # ------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """The constructor arguments shown in ``repr`` (override in layers)."""
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(mod).replace("\n", "\n  ") for name, mod in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _to_numpy(v: Any) -> Any:
    if isinstance(v, Tensor):
        return v.numpy()
    if hasattr(v, "detach") and hasattr(v, "cpu"):  # a PyTorch tensor
        return v.detach().cpu().numpy()
    return backend.to_numpy(v)


class _Sequence(Module):
    """Indexing, length and iteration over the submodules, in registration order."""

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class Sequential(_Sequence):
    """Modules applied in order: ``Sequential(Linear(4, 8), Tanh(), Linear(8, 1))``."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(_Sequence):
    """A list of modules whose parameters are registered (``layers.0.weight``, ...)."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        self.extend(modules)

    def append(self, module: Module) -> ModuleList:
        setattr(self, str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

