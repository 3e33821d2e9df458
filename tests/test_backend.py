"""The backend boundary: only backend.py imports NumPy/CuPy, the package works without CuPy,
imports silently, and moves tensors between devices only through ``.to`` and ``.numpy``."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from helpers import run_python

import tinygrad_rnn as tg

PACKAGE = Path(tg.__file__).parent
ARRAY_MODULES = {"numpy", "cupy", "cupyx"}
needs_cuda = pytest.mark.skipif(not tg.cuda_available(), reason="no CuPy / GPU here")


def array_imports(source: str) -> list[str]:
    """The array modules that ``source`` imports (import, from-import, importlib/__import__ of a literal)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in ARRAY_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in ARRAY_MODULES:
                found.append(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            arg = node.args[0].value
            if name in ("import_module", "__import__") and isinstance(arg, str) and arg.split(".")[0] in ARRAY_MODULES:
                found.append(arg)
    return found


# ---------------------------------------------------------------- the import rule

def test_the_import_checker_sees_every_form_of_import():
    src = "import numpy as np\nfrom cupy import ndarray\nimport cupyx.scatter\nimportlib.import_module('numpy')\n"
    assert array_imports(src) == ["numpy", "cupy", "cupyx.scatter", "numpy"]
    assert array_imports("from . import backend\nimport numbers\nfrom .numpy_like import x\n") == []


def test_only_backend_imports_numpy_or_cupy():
    files = sorted(PACKAGE.rglob("*.py"))
    assert PACKAGE / "backend.py" in files and len(files) > 10
    offenders = {}
    for path in files:
        rel = path.relative_to(PACKAGE)
        if rel == Path("backend.py") or rel.parts[0] == "testing":
            continue
        found = array_imports(path.read_text())
        if found:
            offenders[str(rel)] = found
    assert not offenders, f"array modules imported outside backend.py: {offenders}"


# ---------------------------------------------------------------- import behaviour

def test_package_imports_and_runs_on_cpu_without_cupy():
    result = run_python("""
        import sys
        sys.modules["cupy"] = None  # makes "import cupy" raise ImportError
        import tinygrad_rnn as tg
        assert not tg.cuda_available()
        t = tg.tensor([1.0], requires_grad=True)
        assert t.device == "cpu"
        (t * t).sum().backward()
        assert t.grad.item() == 2.0
        attempts = (lambda: t.to("cuda"), lambda: tg.tensor([1.0], device="cuda"), lambda: tg.zeros(2, device="cuda"))
        for attempt in attempts:
            try:
                attempt()
            except tg.DeviceError as exc:
                assert "gpu" in str(exc), exc
            else:
                raise AssertionError("no DeviceError")
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_import_prints_nothing():
    result = run_python("import tinygrad_rnn")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


def test_unknown_device_names_are_rejected():
    with pytest.raises(tg.DeviceError, match="unknown device"):
        tg.zeros(2, device="tpu")
    with pytest.raises(tg.DeviceError, match="must be 'cpu' or 'cuda'"):
        tg.zeros(2, device=0)


# ---------------------------------------------------------------- devices

def test_to_device_and_numpy_round_trip(device):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = tg.tensor(a).to(device)
    assert t.device == device and t.dtype == tg.float32
    np.testing.assert_array_equal(t.numpy(), a)
    back = t.to("cpu")
    assert back.device == "cpu" and isinstance(back.numpy(), np.ndarray)
    np.testing.assert_array_equal(back.numpy(), a)
    assert t.to(device) is t


def test_constructors_place_tensors_on_the_device(device):
    for t in (tg.tensor([1.0, 2.0], device=device), tg.zeros(2, device=device), tg.ones(2, device=device),
              tg.randn(2, device=device), tg.rand(2, device=device), tg.arange(2, device=device),
              tg.randint(0, 3, (2,), device=device), tg.full((2,), 1.0, device=device)):
        assert t.device == device
        assert isinstance(t.numpy(), np.ndarray)


def test_gradient_flows_back_across_to(device):
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.to(device) * 3.0).sum()
    assert y.device == device
    y.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_ops_keep_the_device(device):
    x = tg.randn(3, 4, device=device, requires_grad=True)
    w = tg.randn(4, 2, device=device, requires_grad=True)
    loss = (x @ w).tanh().softmax().sum()
    assert loss.device == device
    loss.backward()
    assert x.grad.device == device and w.grad.device == device


@needs_cuda
def test_ops_on_two_devices_raise_device_error_naming_both():
    a = tg.ones(2)
    b = tg.ones(2, device="cuda")
    with pytest.raises(tg.DeviceError) as info:
        a + b
    assert "cpu" in str(info.value) and "cuda" in str(info.value)


@pytest.mark.parametrize("shape", [(70, 2048), (1024, 257), (2048, 512), (3, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_major_copy_of_a_transpose_is_exact_whatever_the_block_split(shape, dtype):
    from tinygrad_rnn import backend

    w = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    out = backend.ascontiguousarray(w.T)  # large ones are copied in blocks of rows
    assert out.flags.c_contiguous and out.dtype == dtype
    np.testing.assert_array_equal(out, w.T)
    assert not np.shares_memory(out, w)
