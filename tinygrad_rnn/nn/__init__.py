"""Neural-network building blocks with PyTorch's names: modules, layers, functional, init, utils."""

from .module import Module, ModuleList, Parameter, Sequential

__all__ = ["Module", "ModuleList", "Parameter", "Sequential"]
