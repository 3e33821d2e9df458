"""The CUDA kernels of the fused cells, checked on a machine without a GPU.

* ``nvcc`` compiles the very source CuPy hands NVRTC, for Hopper (sm_90), warnings as errors:
  a typo in a kernel fails here, not on the GPU.
* The kernels' arithmetic (each one's ``__host__ __device__`` element function) is compiled
  for the CPU in plain loops and compared with the NumPy twins of the fused ops, values and
  gradients, on hypothesis-drawn shapes: a wrong gate offset or sign fails here too.
* With CuPy installed but no GPU, building the kernel objects works and cuda stays unavailable.

Each part skips where its tool (nvcc, CuPy) is missing; on a GPU, ``test_fused.py`` runs the
kernels themselves.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import TOL
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import backend
from tinygrad_rnn.ops import cuda_kernels
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


def call(lib, name: str, B: int, H: int, *arrays: np.ndarray) -> None:
    """``<name>_host(B * H, H, pointers...)``: the kernel's loop over the (B, H) state, on the CPU."""
    assert all(a.flags.c_contiguous for a in arrays)
    getattr(lib, f"{name}_host")(ctypes.c_longlong(B * H), ctypes.c_longlong(H),
                                 *[a.ctypes.data_as(ctypes.c_void_p) for a in arrays])


def twin(op, inputs: list[np.ndarray], up: np.ndarray) -> list[np.ndarray]:
    xs = [tg.Tensor(x, requires_grad=True) for x in inputs]
    out = op(*xs)
    assert not out.node.kernel  # the NumPy twin
    return [out.numpy()] + [g.numpy() for g in tg.grad(out, xs, tg.Tensor(up))]


shapes = st.tuples(st.integers(1, 5), st.integers(1, 9), st.integers(0, 2**31 - 1), st.sampled_from(DTYPES))


@given(case=shapes)
def test_lstm_kernel_arithmetic_matches_the_numpy_twin(host_kernels, case):
    B, H, seed, dtype = case
    rng = np.random.default_rng(seed)
    a, c = rng.uniform(-3, 3, (B, 4 * H)).astype(dtype), rng.uniform(-2, 2, (B, H)).astype(dtype)
    up = rng.standard_normal((2, B, H)).astype(dtype)
    lib = host_kernels[dtype]
    out = np.full((2, B, H), np.nan, dtype)  # poisoned: every element must be written
    call(lib, "lstm_forward", B, H, a, c, out[0], out[1])
    da, dc = np.full_like(a, np.nan), np.full_like(c, np.nan)
    dh, dcn = np.ascontiguousarray(up[0]), np.ascontiguousarray(up[1])
    call(lib, "lstm_backward", B, H, a, c, np.ascontiguousarray(out[1]), dh, dcn, da, dc)
    for got, want in zip([out, da, dc], twin(LSTMCellFused.apply, [a, c], up)):
        np.testing.assert_allclose(got, want, **TOL[np.dtype(dtype)])


@given(case=shapes)
def test_gru_kernel_arithmetic_matches_the_numpy_twin(host_kernels, case):
    B, H, seed, dtype = case
    rng = np.random.default_rng(seed)
    gi, gh = (rng.uniform(-3, 3, (B, 3 * H)).astype(dtype) for _ in range(2))
    h, up = rng.uniform(-1, 1, (B, H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype)
    lib = host_kernels[dtype]
    out = np.full((B, H), np.nan, dtype)
    call(lib, "gru_forward", B, H, gi, gh, h, out)
    dgi, dgh, dh = np.full_like(gi, np.nan), np.full_like(gh, np.nan), np.full_like(h, np.nan)
    call(lib, "gru_backward", B, H, gi, gh, h, up, dgi, dgh, dh)
    for got, want in zip([out, dgi, dgh, dh], twin(GRUCellFused.apply, [gi, gh, h], up)):
        np.testing.assert_allclose(got, want, **TOL[np.dtype(dtype)])


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
