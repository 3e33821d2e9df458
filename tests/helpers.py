"""Helpers shared by the test modules: ``from helpers import ...`` (pytest puts tests/ on sys.path,
as it does for ``from conftest import TOL``).

Subprocesses run with this checkout first on the path, so that they test the same package as the
process that starts them, whatever else is installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
from conftest import TOL

import tinygrad_rnn as tg

CHECKOUT = Path(tg.__file__).resolve().parent.parent  # holds the package this process imported
DEMOS = Path(__file__).resolve().parent.parent / "demos"

F64 = TOL[np.dtype(np.float64)]


def t64(a, requires_grad: bool = False) -> tg.Tensor:
    """A float64 tensor holding a copy of ``a``."""
    return tg.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def leaf(a, requires_grad: bool = True) -> tg.Tensor:
    """A float64 leaf (requiring gradients unless told) holding a copy of ``a``."""
    return t64(a, requires_grad=requires_grad)


def checkout_env() -> dict[str, str]:
    """The environment with this checkout first on PYTHONPATH."""
    rest = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(CHECKOUT), *([rest] if rest else [])])}


def run_script(args: list[str], timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python *args`` with this checkout first on the path."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=checkout_env())


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -c code`` (dedented) run from this checkout, with it first on the path."""
    return run_script(["-c", textwrap.dedent(code)], timeout=timeout, cwd=CHECKOUT)


def load_demo(name: str) -> ModuleType:
    """demos/<name>.py imported as a module (the demos directory is not a package)."""
    spec = importlib.util.spec_from_file_location(name, DEMOS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
