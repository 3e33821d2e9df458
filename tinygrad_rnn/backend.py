"""The array backend: the only module that imports NumPy or CuPy.

Everything above this module handles arrays through the names defined here and
through the methods and operators that NumPy and CuPy arrays share (Chainer's
``xp`` pattern). Devices are ``"cpu"`` (NumPy) and ``"cuda"`` (CuPy).
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

import numpy as np

try:  # CuPy is optional: the package must import and run on "cpu" without it.
    import cupy as cp  # type: ignore[import-not-found]

    _CUPY_ERROR: str | None = None
except Exception as exc:  # ImportError, or a CUDA runtime that fails to load
    cp = None
    _CUPY_ERROR = f"{type(exc).__name__}: {exc}"

from .errors import DeviceError, DTypeError

Array = Any  # a numpy.ndarray or a cupy.ndarray
DTypeLike = str | type | np.dtype

float16 = np.dtype(np.float16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

# NumPy reductions over all axes return NumPy scalars (np.float32 ...), not arrays.
SCALAR_TYPES = (np.generic,)
CPU_ARRAY = np.ndarray
ARRAY_TYPES = (np.ndarray,) if cp is None else (np.ndarray, cp.ndarray)

_default_dtype = float32


# ---------------------------------------------------------------- the C allocator

def tune_allocator() -> bool:
    """Keep freed memory for reuse instead of handing it back to the OS at once (glibc only).

    An LSTM step allocates and frees the same few hundred kB arrays thousands of times.
    By default glibc serves arrays above 128 kB with fresh mmap pages or trims the heap
    after a free, so each new array first page-faults its memory in: measured here, that
    made a 64x1024 tanh forward+backward 4x slower than the arithmetic. Raising the mmap
    and trim thresholds lets freed blocks be reused. Set TINYGRAD_RNN_MALLOC_TUNING=0 to
    leave the allocator alone. Returns whether the thresholds were set.

    It changes the whole process's allocator, so importing tinygrad_rnn does not call it: the
    ``tinygrad-rnn`` command and the benchmarks do, and a library user opts in with one line,
    ``tinygrad_rnn.tune_allocator()`` (docs/performance.md has its measured effect).
    """
    if os.environ.get("TINYGRAD_RNN_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        ok = libc.mallopt(m_mmap_threshold, 32 * 2**20) and libc.mallopt(m_trim_threshold, 256 * 2**20)
        return bool(ok)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False



# ---------------------------------------------------------------- dtypes

def to_dtype(dtype: DTypeLike | None) -> np.dtype:
    """Normalise a dtype name or object; ``None`` gives the default float dtype."""
    if dtype is None:
        return _default_dtype
    try:
        return np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"unknown dtype {dtype!r}: use 'float32', 'float64', 'int64' or 'bool'") from None


def set_default_dtype(dtype: DTypeLike) -> None:
    """Set the dtype of new float tensors (``"float32"`` by default, or ``"float64"``)."""
    global _default_dtype
    d = np.dtype(dtype)
    if d.kind != "f":
        raise DTypeError(f"set_default_dtype: {d} is not a floating dtype; use 'float32' or 'float64'")
    _default_dtype = d


def get_default_dtype() -> np.dtype:
    """The dtype that new float tensors get."""
    return _default_dtype


def is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f"


# ---------------------------------------------------------------- devices

def cuda_available() -> bool:
    """True when CuPy imported and sees at least one GPU."""
    return _gpu_problem() is None


def _gpu_problem() -> str | None:
    """Why CuPy cannot use a GPU here, or None when it can."""
    if cp is None:
        return f"CuPy is not installed ({_CUPY_ERROR})"
    try:
        return None if cp.cuda.runtime.getDeviceCount() > 0 else "no GPU found"
    except Exception as exc:  # no driver, or a driver older than the CUDA the wheel was built for
        return f"{type(exc).__name__}: {exc}"


def check_device(device: str) -> str:
    """Normalise ``"cpu" | "cuda" | "cuda:0"`` and fail clearly if it cannot be used."""
    if not isinstance(device, str):
        raise DeviceError(f"device must be 'cpu' or 'cuda', got {device!r}")
    name = device.lower()
    if name.startswith("cuda"):
        if cp is None:
            raise DeviceError(
                "device 'cuda' needs CuPy, which is not installed here "
                f"({_CUPY_ERROR}); install the gpu extra of your CUDA major version: "
                "pip install 'tinygrad_rnn[gpu-cuda13]' or 'tinygrad_rnn[gpu-cuda12]' (the README says which)"
            )
        problem = _gpu_problem()
        if problem:
            raise DeviceError(
                f"device 'cuda': CuPy is installed but sees no GPU ({problem}). Without a GPU use "
                "device='cpu'; with one, install the gpu extra of the CUDA version nvidia-smi shows "
                "(gpu-cuda12 or gpu-cuda13)"
            )
        return "cuda"
    if name == "cpu":
        return "cpu"
    raise DeviceError(f"unknown device {device!r}: use 'cpu' or 'cuda'")


def device_of(a: Array) -> str:
    """``"cpu"`` for NumPy arrays and scalars, ``"cuda"`` for CuPy arrays."""
    return "cuda" if cp is not None and isinstance(a, cp.ndarray) else "cpu"


def get_xp(a: Array) -> Any:
    """The array module (numpy or cupy) that owns ``a``; use it only to create arrays."""
    return cp if cp is not None and isinstance(a, cp.ndarray) else np


def xp_for(device: str) -> Any:
    return cp if device == "cuda" else np


def reading_blocks(a: Array) -> bool:
    """True when reading a value of ``a`` on the host makes the host wait for the device.

    That is every CuPy array: kernels run asynchronously, so ``float(a)``, ``bool(a)``,
    ``a.item()`` or a copy to NumPy first waits for all the work queued before it (a
    synchronisation, which also stops the host from queuing more work meanwhile). Ops use
    this to keep checks that would read a value out of a training step on the GPU, where
    the value can carry the check instead (see ``nn.functional.cross_entropy``). On NumPy
    arrays a read costs nothing and the checks run at once.
    """
    return cp is not None and isinstance(a, cp.ndarray)


def synchronize(device: str) -> None:
    """Wait until the device has finished the work queued on it (a no-op on the CPU).

    GPU kernels run asynchronously: a timer read without this stops when the work is
    queued, not when it is done.
    """
    if device == "cuda" and cp is not None:
        cp.cuda.get_current_stream().synchronize()


def to_device(a: Array, device: str) -> Array:
    """Copy an array to ``device`` (a no-op if it is already there)."""
    if device_of(a) == device:
        return a
    if device == "cuda":
        return cp.asarray(a)
    return cp.asnumpy(a)


def to_numpy(a: Array) -> np.ndarray:
    """A NumPy array for ``a`` (shared memory on the CPU, a copy from the GPU)."""
    if cp is not None and isinstance(a, cp.ndarray):
        return cp.asnumpy(a)
    return np.asarray(a)


# ---------------------------------------------------------------- creation

def as_array(data: Any, dtype: np.dtype | None, device: str, copy: bool = True) -> Array:
    """Build an array from Python data, a NumPy array or a CuPy array.

    Python floats become the default float dtype, ints int64, bools bool;
    arrays keep their dtype unless ``dtype`` is given.
    """
    xp = xp_for(device)
    if cp is not None and isinstance(data, cp.ndarray) and device == "cpu":
        data = cp.asnumpy(data)
    elif isinstance(data, np.ndarray) and device == "cuda":
        data = cp.asarray(data)
    if dtype is None and not hasattr(data, "dtype"):
        probe = np.asarray(data)
        if probe.dtype.kind == "f":
            dtype = _default_dtype
        elif probe.dtype.kind in "iu":
            dtype = int64
        elif probe.dtype.kind == "b":
            dtype = bool_
        else:
            raise DTypeError(f"tensor: cannot make a tensor from data of dtype {probe.dtype}")
    return xp.array(data, dtype=dtype, copy=copy) if copy else xp.asarray(data, dtype=dtype)


def as_ndarray(a: Any) -> Array:
    """Turn a NumPy scalar (what a full reduction returns) into a 0-d array."""
    return np.asarray(a) if isinstance(a, np.generic) else a


def zeros(shape: tuple, dtype: np.dtype, device: str) -> Array:
    return xp_for(device).zeros(shape, dtype=dtype)


def full(shape: tuple, value: float, dtype: np.dtype, device: str) -> Array:
    return xp_for(device).full(shape, value, dtype=dtype)


def arange(start: float, stop: float | None, step: float, dtype: np.dtype | None, device: str) -> Array:
    xp = xp_for(device)
    return xp.arange(start, stop, step, dtype=dtype) if stop is not None else xp.arange(start, dtype=dtype)


def ascontiguousarray(a: Array) -> Array:
    """``a`` in row-major order: itself if it already is, else a copy (0-d stays 0-d)."""
    if a.flags.c_contiguous:
        return a
    if isinstance(a, np.ndarray) and a.ndim == 2 and a.flags.f_contiguous and a.size >= _BLOCKED_COPY_MIN:
        return _transposed_copy(a)
    return a.copy(order="C")


_BLOCKED_COPY_MIN = 2**16  # elements: below this the whole transpose stays in cache anyway
_BLOCK_ROWS = 64


def _transposed_copy(a: np.ndarray) -> np.ndarray:
    """Row-major copy of a column-major 2-D array (``w.T``), a block of columns of the source at a time.

    NumPy's one-pass copy reads the source with a stride of a whole row: measured here, a
    (512, 2048) float32 ``w.T`` took 7.4 ms that way and 0.8 ms in blocks of 64 source rows.
    """
    out = np.empty(a.shape, a.dtype)
    src = a.T  # row-major (n, m): its rows are our columns
    for j in range(0, src.shape[0], _BLOCK_ROWS):
        out[:, j:j + _BLOCK_ROWS] = src[j:j + _BLOCK_ROWS].T
    return out


def owned_copy(a: Array) -> Array:
    """A fresh, writable, row-major copy (of an array, a broadcast view or a NumPy scalar).

    Row-major whatever ``a`` is: a weight's gradient arrives as a transposed view when the
    weight was used as ``W.T``, and a column-major ``.grad`` next to a row-major parameter
    made every optimizer pass over them strided (Adam on L: 35 ms instead of 14).
    """
    if isinstance(a, np.ndarray):
        out = ascontiguousarray(a)  # copies a transposed view in cache-friendly blocks
        return out if out is not a else a.copy()
    return get_xp(a).array(a, copy=True, order="C")


def owns_data(a: Array) -> bool:
    """True for a writable array that is not a view of another (safe to update in place)."""
    if isinstance(a, np.ndarray):
        return a.flags.owndata and a.flags.writeable
    return cp is not None and isinstance(a, cp.ndarray) and a.base is None


def same_array_kind(a: Any, like: Array) -> bool:
    """True if ``a`` is an array of ``like``'s type (NumPy or CuPy), shape and dtype."""
    return type(a) is type(like) and a.shape == like.shape and a.dtype == like.dtype \
        and (type(a) is np.ndarray or a.device == like.device)


def is_finite(a: Array) -> bool:
    return bool(get_xp(a).isfinite(a).all())


# ---------------------------------------------------------------- array functions used by ops
# Ops call these rather than numpy/cupy directly, so that the two modules stay swappable.

def broadcast_shapes(*shapes: tuple) -> tuple:
    return np.broadcast_shapes(*shapes)


def broadcast_to(a: Array, shape: tuple) -> Array:
    return get_xp(a).broadcast_to(a, shape)


def sum_to(a: Array, shape: tuple) -> Array:
    """Sum a broadcast array back down to ``shape`` (the adjoint of broadcast_to)."""
    if a.shape == shape:
        return a
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and a.shape[i + lead] != 1)
    out = a.sum(axis=axes, keepdims=True) if axes else a
    if lead:
        out = out.reshape(shape)
    return as_ndarray(out)


def scatter_add(shape: tuple, index: Any, values: Array) -> Array:
    """zeros(shape) with ``values`` added at ``index``; repeated indices add up."""
    out = get_xp(values).zeros(shape, dtype=values.dtype)
    if is_basic_index(index):
        out[index] = values  # each element selected at most once: writing is adding to zero
    else:
        index_add_(out, index, values)
    return out


def index_add_(out: Array, index: Any, values: Array) -> None:
    """``out[index] += values`` in place, where repeated (advanced) indices add up."""
    if is_basic_index(index):
        out[index] += values  # basic indexing selects each element at most once
    elif isinstance(out, np.ndarray):
        np.add.at(out, index, values)
    else:
        # CuPy's ufunc.at (CuPy >= 13; cupyx.scatter_add is its older spelling): atomic adds on
        # the GPU, float64 included (atomicAdd on doubles exists from compute capability 6.0).
        cp.add.at(out, index, values)


def is_basic_index(index: Any) -> bool:
    """True when ``index`` uses only ints, slices, None and Ellipsis (no array)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items)


def exp(a: Array) -> Array:
    return get_xp(a).exp(a)


def log(a: Array) -> Array:
    return get_xp(a).log(a)


def sqrt(a: Array) -> Array:
    return get_xp(a).sqrt(a)


def tanh(a: Array) -> Array:
    return get_xp(a).tanh(a)


def sign(a: Array) -> Array:
    return get_xp(a).sign(a)


def multiply(a: Array, b: Any, out: Array) -> Array:
    """``a * b`` written into ``out`` (no new array)."""
    return get_xp(out).multiply(a, b, out=out)


def maximum(a: Array, b: Any) -> Array:
    return get_xp(a).maximum(a, b)


def minimum(a: Array, b: Any) -> Array:
    return get_xp(a).minimum(a, b)


def where(cond: Array, a: Any, b: Any) -> Array:
    return get_xp(cond).where(cond, a, b)


def clip(a: Array, lo: Any, hi: Any) -> Array:
    return get_xp(a).clip(a, lo, hi)


def matmul(a: Array, b: Array) -> Array:
    return get_xp(a).matmul(a, b)


def concatenate(arrays: list, axis: int) -> Array:
    return get_xp(arrays[0]).concatenate(arrays, axis=axis)


def stack(arrays: list, axis: int) -> Array:
    return get_xp(arrays[0]).stack(arrays, axis=axis)


def sigmoid(a: Array, out: Array | None = None) -> Array:
    """Logistic function ``1 / (1 + exp(-a))``, accurate to a few ulps, relatively, for every a.

    (The form 0.5 * (1 + tanh(a / 2)) cancels for a < 0: in float32 it gave 0 below a = -17.)
    For very negative a, exp(-a) overflows to inf and the result is 0, the right limit; NumPy's
    overflow warning for that is silenced. ``out``: write the result there (replay's buffers).
    """
    xp = get_xp(a)
    out = xp.negative(a, out=xp.empty_like(a) if out is None else out)  # one array (also 0-d), then in place
    if xp is np:
        with np.errstate(over="ignore"):
            xp.exp(out, out=out)
    else:
        xp.exp(out, out=out)
    out += 1
    return xp.divide(1, out, out=out)


def tanh_grad(grad: Array, y: Array, out: Array | None = None) -> Array:
    """``grad * (1 - y * y)`` (tanh's backward from its output) in one new array (or ``out``), not three."""
    xp = get_xp(y)
    out = xp.multiply(y, y, out=xp.empty_like(y) if out is None else out)  # out= keeps 0-d results arrays
    xp.subtract(1, out, out=out)
    out *= grad
    return out


def sigmoid_grad(grad: Array, y: Array, out: Array | None = None) -> Array:
    """``grad * y * (1 - y)`` (the logistic function's backward from its output) in one new array (or ``out``)."""
    xp = get_xp(y)
    out = xp.subtract(1, y, out=xp.empty_like(y) if out is None else out)
    out *= y
    out *= grad
    return out


def one_hot(index: Array, num_classes: int, dtype: np.dtype, nan_out_of_range: bool = False) -> Array:
    """(*S, num_classes) 0/1 rows for an integer ``index`` of shape S; with ``nan_out_of_range``
    (float dtypes), an index outside [0, num_classes) gets a row of NaN instead of zeros."""
    xp = get_xp(index)
    out = (index[..., None] == xp.arange(num_classes)).astype(dtype)
    if nan_out_of_range:
        inside = (index >= 0) & (index < num_classes)
        out = xp.where(inside[..., None], out, np.nan).astype(dtype, copy=False)  # NaN as a kernel argument
    return out


def reciprocal_count(count: Array, dtype: np.dtype) -> Array:
    """``1 / count`` as a 0-d array of ``dtype``, without leaving the device: computed in float64,
    so that it rounds as ``1.0 / float(count)`` would; NaN for a count of 0, so that a mean over
    no entries is NaN (0/0, as in PyTorch) without a division-by-zero warning."""
    xp = get_xp(count)
    n = xp.asarray(count, dtype=float64)
    return xp.where(n == 0, np.nan, 1.0 / xp.where(n == 0, 1.0, n)).astype(dtype)


# ---------------------------------------------------------------- CUDA kernels

_kernels: dict[tuple[str, str], Any] = {}


def cuda_kernel(source: str, name: str) -> Any:
    """The ``extern "C" __global__`` function ``name`` of the CUDA C++ ``source``, as a CuPy
    RawKernel: built once per (source, name); NVRTC compiles it at its first launch, for the
    GPU it runs on (CuPy keeps the binary in its kernel cache on disk)."""
    if cp is None:
        raise DeviceError(f"cuda_kernel {name}: CuPy is not installed ({_CUPY_ERROR})")
    kernel = _kernels.get((source, name))
    if kernel is None:
        kernel = _kernels[(source, name)] = cp.RawKernel(source, name)  # NVRTC: C++17 by default
    return kernel


_THREADS = 256  # threads per block: a multiple of the warp, small enough for any register use
_MAX_BLOCKS = 65535 * 16  # enough to fill any GPU; the kernels loop over the rest (grid-stride)


def launch(kernel: Any, n: int, args: tuple) -> None:
    """Start ``kernel`` over ``n`` elements, one thread each (none when ``n`` is 0). Python ints
    in ``args`` are passed as 64-bit ints (C ``long long``), arrays as device pointers."""
    if n == 0:
        return
    blocks = min(-(-n // _THREADS), _MAX_BLOCKS)
    kernel((blocks,), (_THREADS,), tuple(np.int64(x) if isinstance(x, int) else x for x in args))


# ---------------------------------------------------------------- files

def save_npz(file: Any, arrays: dict[str, Any]) -> None:
    """Write arrays (NumPy or CuPy, converted to NumPy) to an open binary file as ``.npz``."""
    np.savez(file, **{k: to_numpy(v) for k, v in arrays.items()})


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file (no pickles: checkpoints hold arrays and JSON text only)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def text_array(text: str) -> np.ndarray:
    """A 0-d string array, to store JSON inside an ``.npz``."""
    return np.array(text)


# ---------------------------------------------------------------- random numbers

class Generator:
    """A seeded random generator for one device (NumPy's PCG64, or CuPy's RandomState).

    Args:
        seed: an integer seed; ``None`` draws one from the OS.
        device: ``"cpu"`` or ``"cuda"``.
    """

    def __init__(self, seed: int | None = None, device: str = "cpu") -> None:
        self.device = check_device(device)
        self.manual_seed(seed)

    def manual_seed(self, seed: int | None) -> Generator:
        if self.device == "cuda":
            self._rng = cp.random.RandomState(seed)
        else:
            self._rng = np.random.default_rng(seed)
        return self

    def normal(self, shape: tuple, dtype: np.dtype) -> Array:
        if self.device == "cuda":
            return self._rng.standard_normal(shape, dtype=dtype)
        return self._rng.standard_normal(shape, dtype=dtype) if dtype.kind == "f" and dtype.itemsize >= 4 \
            else self._rng.standard_normal(shape).astype(dtype)

    def uniform(self, shape: tuple, low: float, high: float, dtype: np.dtype) -> Array:
        if self.device == "cuda":
            return self._rng.uniform(low, high, shape, dtype=dtype)
        out = self._rng.random(shape, dtype=dtype) if dtype.itemsize >= 4 else self._rng.random(shape).astype(dtype)
        if (low, high) != (0.0, 1.0):
            out *= high - low
            out += low
        return out

    def integers(self, low: int, high: int, shape: tuple) -> Array:
        if self.device == "cuda":
            return self._rng.randint(low, high, size=shape, dtype=np.int64)
        return self._rng.integers(low, high, size=shape, dtype=np.int64)

    def bernoulli(self, shape: tuple, p: float) -> Array:
        """Boolean mask, each entry True with probability ``p``."""
        if self.device == "cuda":
            return self._rng.uniform(0.0, 1.0, shape, dtype=np.float32) < p
        return self._rng.random(shape, dtype=np.float32) < p

    def choice(self, probs: Array) -> int:
        """Draw one index from a 1-D probability vector (on the CPU)."""
        p = to_numpy(probs).astype(np.float64)
        p /= p.sum()
        u = self.uniform((), 0.0, 1.0, float64) if self.device == "cpu" else float(self._rng.uniform())
        return int(min(np.searchsorted(np.cumsum(p), float(u), side="right"), len(p) - 1))

    def get_state(self) -> dict:
        """A picklable, JSON-able state (CPU generators only)."""
        if self.device == "cuda":
            raise DeviceError("Generator.get_state: saving a CUDA generator's state is not supported; "
                              "reseed it with manual_seed instead")
        return self._rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        if self.device == "cuda":
            raise DeviceError("Generator.set_state: CUDA generators can only be reseeded (manual_seed)")
        self._rng.bit_generator.state = state


_default_generators: dict[str, Generator] = {}


def default_generator(device: str = "cpu") -> Generator:
    """The per-device generator used when no ``generator=`` is passed."""
    gen = _default_generators.get(device)
    if gen is None:
        gen = _default_generators[device] = Generator(None, device)
    return gen


def manual_seed(seed: int) -> None:
    """Seed the default generator of every device (as ``torch.manual_seed``)."""
    default_generator("cpu").manual_seed(seed)
    if cuda_available():
        default_generator("cuda").manual_seed(seed)


# ---------------------------------------------------------------- helpers for capture and replay

_PAGE = 4096


def aligned_empty(shape: tuple, dtype: Any, order: tuple | None = None) -> np.ndarray:
    """An uninitialised NumPy array that starts on a page boundary, its axes laid out slowest to
    fastest in ``order`` (row-major when None).

    Replay (``tinygrad_rnn.replay``) puts all its buffers at the same offset modulo 4096, so that an
    elementwise op never writes at a small distance after where it reads in the 4 KB address space
    (4K aliasing, docs/performance.md), whichever buffers it gets.
    """
    dtype = np.dtype(dtype)
    order = tuple(range(len(shape))) if order is None else tuple(order)
    permuted = tuple(shape[i] for i in order)
    nbytes = int(np.prod(permuted, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + _PAGE, np.uint8)
    start = (-raw.ctypes.data) % _PAGE
    flat = raw[start:start + nbytes].view(dtype)
    inverse = tuple(sorted(range(len(order)), key=lambda k: order[k]))
    return flat.reshape(permuted).transpose(inverse)


def shares_memory(a: Any, b: Any) -> bool:
    """Whether two arrays may overlap in memory (bounds check, no exact solve)."""
    return bool(get_xp(a).may_share_memory(a, b))


def copy_into(dst: Any, src: Any) -> None:
    """``dst[...] = src``; a column-major 2-D ``src`` into a row-major ``dst`` is copied in blocks
    (see ``_transposed_copy``: many times faster than NumPy's one pass for large matrices)."""
    if (isinstance(src, np.ndarray) and src.ndim == 2 and src.flags.f_contiguous and not src.flags.c_contiguous
            and dst.flags.c_contiguous and src.size >= _BLOCKED_COPY_MIN):
        s = src.T
        for j in range(0, s.shape[0], _BLOCK_ROWS):
            dst[:, j:j + _BLOCK_ROWS] = s[j:j + _BLOCK_ROWS].T
        return
    get_xp(dst).copyto(dst, src)


def same_bits(a: Any, b: Any) -> bool:
    """True when two arrays have the same shape, dtype and bytes (NaNs, -0.0 and all)."""
    a, b = as_ndarray(a), as_ndarray(b)
    if a.shape != b.shape or a.dtype != b.dtype or get_xp(a) is not get_xp(b):
        return False
    xp = get_xp(a)
    raw = [xp.ascontiguousarray(x).reshape(-1).view(np.uint8) for x in (a, b)]
    return bool(xp.array_equal(*raw))


def strided_random(shape: tuple, strides: tuple, dtype: Any, gen: Generator) -> Array:
    """A new array of ``shape`` whose elements sit ``strides`` bytes apart (a transposed or sliced
    layout), filled with uniform values from ``gen`` on its device (for timing an op on a given layout)."""
    dtype = np.dtype(dtype)
    extent = sum((n - 1) * abs(s) for n, s in zip(shape, strides)) + dtype.itemsize
    flat = gen.uniform((extent // dtype.itemsize + 1,), -1.0, 1.0, dtype)
    xp = get_xp(flat)
    return xp.lib.stride_tricks.as_strided(flat, shape=tuple(shape), strides=tuple(strides))
