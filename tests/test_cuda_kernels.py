"""The CUDA kernels of the fused cells, checked on a machine without a GPU.

* ``nvcc`` compiles the very source CuPy hands NVRTC, for Hopper (sm_90), warnings as errors:
  a typo in a kernel fails here, not on the GPU.
* The kernels' arithmetic (each one's ``__host__ __device__`` element function) is compiled
  for the CPU in plain loops, and the fused ops and layers run their CUDA path on NumPy arrays
  with each launch answered by that loop: the launchers, the arguments they pass and the
  saved arrays are tested against the NumPy twins and the composed layers, values and
  gradients, on hypothesis-drawn shapes. A wrong gate offset, sign or argument fails here.
* With CuPy installed but no GPU, building the kernel objects works and cuda stays unavailable.

Each part skips where its tool (nvcc, CuPy) is missing; on a GPU, ``test_fused.py`` runs the
kernels themselves.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import TOL
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import backend, nn
from tinygrad_rnn.ops import cuda_kernels, fused
from tinygrad_rnn.ops.fused import GRUCellFused, LSTMCellFused

NVCC = shutil.which("nvcc") or next(
    (p for p in ("/usr/local/bin/nvcc", "/usr/local/cuda/bin/nvcc") if Path(p).exists()), None)
if not (shutil.which("g++") or shutil.which("c++")):
    NVCC = None  # nvcc compiles the host side with the system's C++ compiler
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA compiler) or a host C++ compiler is missing")
DTYPES = list(cuda_kernels.CTYPES)


def nvcc(args: list[str], cwd: Path) -> None:
    done = subprocess.run([NVCC, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"nvcc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@needs_nvcc
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_source_compiles_for_hopper_without_warnings(dtype, tmp_path):
    (tmp_path / "cells.cu").write_text(cuda_kernels.cuda_source(dtype))
    nvcc(["-c", "-arch=sm_90", "-std=c++17", "-Werror", "all-warnings", "-o", "cells.o", "cells.cu"], tmp_path)
    assert (tmp_path / "cells.o").stat().st_size > 0


def test_every_kernel_is_an_extern_c_global_function_of_n_and_h():
    src = cuda_kernels.cuda_source("float32")
    assert src.startswith("typedef float T;") and cuda_kernels.cuda_source("float64").startswith("typedef double T;")
    for name in cuda_kernels.KERNELS:
        assert f'extern "C" __global__ void {name}(long long n, long long H, ' in src
    with pytest.raises(ValueError, match="float16"):
        cuda_kernels.cuda_source("float16")


# ---------------------------------------------------------------- the arithmetic, on the CPU

@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    """dtype -> the kernels' element functions compiled for the CPU (ctypes library)."""
    if NVCC is None:
        pytest.skip("nvcc (the CUDA compiler) or a host C++ compiler is missing")
    out = tmp_path_factory.mktemp("host_kernels")
    libs = {}
    for dtype in DTYPES:
        (out / f"{dtype}.cu").write_text(cuda_kernels.host_source(dtype))
        nvcc(["-shared", "-Xcompiler", "-fPIC", "-arch=sm_90", "-std=c++17", "-o", f"{dtype}.so", f"{dtype}.cu"], out)
        libs[dtype] = ctypes.CDLL(str(out / f"{dtype}.so"))
    return libs


@contextmanager
def kernels_on_the_cpu(libs: dict):
    """The fused ops take their CUDA path on NumPy arrays: ``backend.cuda_kernel`` hands out, for
    each kernel, a stand-in that runs the same element function in the host library, receiving
    exactly what CuPy's kernel would (grid, block, the launcher's arguments). So the launchers'
    argument order, the saved arrays and the dispatch are tested, not only the arithmetic.
    Every output array is poisoned with NaN first: each element must be written. Yields the list
    of the kernels launched."""
    launched: list[str] = []

    def cuda_kernel(source: str, name: str):
        dtype = "float32" if source.startswith("typedef float T;") else "float64"
        host = getattr(libs[dtype], f"{name}_host")
        outputs = [not p.strip().startswith("const") for p in cuda_kernels.KERNELS[name].split(",")]

        def launch(grid, block, args):
            n, H, *arrays = args
            assert type(n) is type(H) is np.int64 and grid[0] * block[0] >= n
            assert len(arrays) == len(outputs) and all(a.dtype == dtype and a.flags.c_contiguous for a in arrays)
            for a, out in zip(arrays, outputs):
                if out:
                    a.fill(np.nan)
            launched.append(name)
            host(ctypes.c_longlong(n), ctypes.c_longlong(H), *[a.ctypes.data_as(ctypes.c_void_p) for a in arrays])
        return launch

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backend, "cuda_kernel", cuda_kernel)
        mp.setattr(fused, "_kernel_path", lambda a: a.dtype.name in cuda_kernels.CTYPES)
        yield launched


def value_and_grads(op, inputs: list[np.ndarray], up: np.ndarray, kernel: bool) -> list[np.ndarray]:
    xs = [tg.Tensor(x, requires_grad=True) for x in inputs]
    out = op(*xs)
    assert out.node.kernel == kernel  # which body ran
    return [out.numpy()] + [g.numpy() for g in tg.grad(out, xs, tg.Tensor(up))]


shapes = st.tuples(st.integers(1, 5), st.integers(1, 9), st.integers(0, 2**31 - 1), st.sampled_from(DTYPES))


def cell_arrays(cell: str, B: int, H: int, seed: int, dtype: str) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    if cell == "lstm":
        ins, up = [rng.uniform(-3, 3, (B, 4 * H)), rng.uniform(-2, 2, (B, H))], rng.standard_normal((2, B, H))
    else:
        ins = [rng.uniform(-3, 3, (B, 3 * H)), rng.uniform(-3, 3, (B, 3 * H)), rng.uniform(-1, 1, (B, H))]
        up = rng.standard_normal((B, H))
    return [x.astype(dtype) for x in ins], up.astype(dtype)


@pytest.mark.parametrize("cell,op", [("lstm", LSTMCellFused.apply), ("gru", GRUCellFused.apply)], ids=["lstm", "gru"])
@given(case=shapes)
def test_fused_op_through_its_kernels_matches_the_numpy_twin(host_kernels, cell, op, case):
    B, H, seed, dtype = case
    inputs, up = cell_arrays(cell, B, H, seed, dtype)
    want = value_and_grads(op, inputs, up, kernel=False)
    with kernels_on_the_cpu(host_kernels):
        got = value_and_grads(op, inputs, up, kernel=True)
    for name, u, v in zip(["value", "gradient 0", "gradient 1", "gradient 2"], got, want):
        np.testing.assert_allclose(u, v, err_msg=f"{cell} {dtype} {name}", **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_layers_through_the_kernels_equal_the_composed_layers(host_kernels, mode):
    """Two layers, both directions, float64: every output and gradient, kernels against composed ops."""
    rng = np.random.default_rng(3)
    x = tg.Tensor(rng.standard_normal((6, 3, 4)), requires_grad=True)
    up = tg.Tensor(rng.standard_normal((6, 3, 10)))
    results = []
    for fused_cell in (False, True):
        layer = getattr(nn, mode)(4, 5, 2, bidirectional=True, dtype="float64", generator=tg.Generator(1),
                                  fused=fused_cell)
        with kernels_on_the_cpu(host_kernels) as launched:
            out, state = layer(x)
            finals = list(state) if mode == "LSTM" else [state]
            loss = (out * up).sum() + sum((s * s).sum() for s in finals)
            grads = tg.grad(loss, [x, *layer.parameters()])
        steps = 6 * 2 * 2 if fused_cell else 0  # T steps, 2 layers, 2 directions: one launch each way
        assert sorted(set(launched)) == ([f"{mode.lower()}_backward", f"{mode.lower()}_forward"] if fused_cell else [])
        assert len(launched) == 2 * steps
        results.append([out.numpy()] + [s.numpy() for s in finals] + [g.numpy() for g in grads])
    for u, v in zip(*results):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------- CuPy without a GPU

def test_kernel_objects_build_without_a_gpu_and_cuda_stays_unavailable():
    pytest.importorskip("cupy")
    if tg.cuda_available():
        pytest.skip("a GPU is here: test_fused.py runs the kernels themselves")
    k = backend.cuda_kernel(cuda_kernels.cuda_source("float32"), "lstm_forward")
    assert k is backend.cuda_kernel(cuda_kernels.cuda_source("float32"), "lstm_forward")  # built once
    assert k.name == "lstm_forward"
    with pytest.raises(tg.DeviceError, match="sees no GPU"):
        tg.zeros(2, device="cuda")


def test_launch_starts_nothing_for_no_elements():
    backend.launch(None, 0, ())  # no kernel is touched, so None stands for one


def test_launch_passes_ints_as_64_bit_and_fills_the_grid():
    calls = []
    backend.launch(lambda grid, block, args: calls.append((grid, block, args)), 1000, (1000, 7, "array"))
    (grid, block, args), = calls
    assert grid[0] * block[0] >= 1000 > (grid[0] - 1) * block[0]
    assert [type(a) for a in args[:2]] == [np.int64, np.int64] and args[2] == "array"


# ---------------------------------------------------------------- scatter-add (cupy.add.at on the GPU)

@pytest.mark.parametrize("dtype", DTYPES)
def test_index_add_sums_repeated_indices_on_each_device(device, dtype):
    """The backward of advanced indexing (cross-entropy's pick, embedding): float64 too on the GPU."""
    rng = np.random.default_rng(0)
    index = (np.arange(6)[:, None], rng.integers(0, 4, (6, 5)))  # each row hits its 4 columns 5 times
    values = rng.standard_normal((6, 5))
    want = np.zeros((6, 4))
    np.add.at(want, index, values)
    out = backend.zeros((6, 4), np.dtype(dtype), device)
    backend.index_add_(out, tuple(backend.to_device(i, device) for i in index),
                       backend.to_device(values.astype(dtype), device))
    np.testing.assert_allclose(backend.to_numpy(out), want, **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_value_and_gradient_match_the_cpu_on_each_device(device, dtype):
    from tinygrad_rnn.nn import functional as F

    rng = np.random.default_rng(1)
    logits, target = rng.standard_normal((12, 7)).astype(dtype), rng.integers(0, 7, 12)
    target[3] = -100  # ignored
    results = []
    for dev in ("cpu", device):
        x = tg.tensor(logits, device=dev, requires_grad=True)
        loss = F.cross_entropy(x, tg.tensor(target, device=dev))
        (g,) = tg.grad(loss, [x])
        results.append((loss.item(), g.numpy()))
    (l0, g0), (l1, g1) = results
    np.testing.assert_allclose(l1, l0, **TOL[np.dtype(dtype)])
    np.testing.assert_allclose(g1, g0, **TOL[np.dtype(dtype)])
