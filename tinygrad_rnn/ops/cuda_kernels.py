"""CUDA C++ kernels of the fused recurrent cells (``ops/fused.py``), and their launchers.

Each kernel runs one thread per element ``k = b * H + j`` of the (B, H) state, in a
grid-stride loop, and reads that element's gates straight out of the row-major
pre-activation arrays: an LSTM's ``a`` (B, 4H) in the block order i | f | g | o, a GRU's
``gi`` and ``gh`` (B, 3H) in the order r | z | n. So a whole cell step is one launch
forward and one backward, instead of a dozen elementwise passes. The backward kernels
recompute the gates from the saved pre-activations: arithmetic is free next to the memory
traffic of saving (B, 4H) activations and reading them back.

The arithmetic of each kernel is a ``__host__ __device__`` function ``<name>_at`` of the
element index. ``cuda_source`` wraps those in ``__global__`` kernels (what CuPy compiles with
NVRTC on the GPU); ``host_source`` wraps the same functions in plain loops, which the tests
compile for the CPU so that the kernels' arithmetic is checked against the NumPy twins on a
machine without a GPU. The sources are written once for a type ``T``: the text starts with
``typedef float T;`` or ``typedef double T;`` (one module per dtype, no C++ templates, so the
kernel names are plain C names).

Only ``backend.py`` touches CuPy: the launchers below get compiled kernels from
``backend.cuda_kernel`` and start them with ``backend.launch``.
"""

from __future__ import annotations

from typing import Any

from .. import backend

CTYPES = {"float32": "float", "float64": "double"}  # the dtypes the kernels are built for

_ELEMENTS = r"""
// tanh in the precision of its argument, named so that no overload resolution is left to chance.
__host__ __device__ inline float tanh_(float x) { return tanhf(x); }
__host__ __device__ inline double tanh_(double x) { return tanh(x); }
// The logistic function in the form the NumPy twin uses (stable for large |x|).
__host__ __device__ inline T sigmoid_(T x) { return tanh_(x * (T)0.5) * (T)0.5 + (T)0.5; }

// LSTM, forward: c' = f c + i g, h' = o tanh(c'); a is (B, 4H) = i | f | g | o.
__host__ __device__ inline void lstm_forward_at(long long k, long long H, const T* a, const T* c,
                                                T* h_out, T* c_out) {
    const long long b = k / H, j = k - b * H;
    const T* ab = a + b * 4 * H + j;
    const T i = sigmoid_(ab[0]), f = sigmoid_(ab[H]), g = tanh_(ab[2 * H]), o = sigmoid_(ab[3 * H]);
    const T cn = f * c[k] + i * g;
    c_out[k] = cn;
    h_out[k] = o * tanh_(cn);
}

// LSTM, backward. With dct = dc' + dh' o (1 - tanh(c')^2):
//   da_i = dct g i(1-i), da_f = dct c f(1-f), da_g = dct i (1-g^2), da_o = dh' tanh(c') o(1-o); dc = dct f.
__host__ __device__ inline void lstm_backward_at(long long k, long long H, const T* a, const T* c,
                                                 const T* c_new, const T* dh, const T* dc,
                                                 T* da, T* dc_prev) {
    const long long b = k / H, j = k - b * H;
    const T* ab = a + b * 4 * H + j;
    T* db = da + b * 4 * H + j;
    const T i = sigmoid_(ab[0]), f = sigmoid_(ab[H]), g = tanh_(ab[2 * H]), o = sigmoid_(ab[3 * H]);
    const T tc = tanh_(c_new[k]);
    const T dct = dc[k] + dh[k] * o * ((T)1 - tc * tc);
    db[0] = dct * g * i * ((T)1 - i);
    db[H] = dct * c[k] * f * ((T)1 - f);
    db[2 * H] = dct * i * ((T)1 - g * g);
    db[3 * H] = dh[k] * tc * o * ((T)1 - o);
    dc_prev[k] = dct * f;
}

// GRU, forward: r = s(gi_r + gh_r), z = s(gi_z + gh_z), n = tanh(gi_n + r gh_n), h' = n + z (h - n).
__host__ __device__ inline void gru_forward_at(long long k, long long H, const T* gi, const T* gh,
                                               const T* h, T* h_out) {
    const long long b = k / H, j = k - b * H;
    const T* xi = gi + b * 3 * H + j;
    const T* hh = gh + b * 3 * H + j;
    const T r = sigmoid_(xi[0] + hh[0]), z = sigmoid_(xi[H] + hh[H]);
    const T n = tanh_(xi[2 * H] + r * hh[2 * H]);
    h_out[k] = n + z * (h[k] - n);
}

// GRU, backward. dn = dh' (1-z)(1-n^2) (through n's tanh), dz = dh' (h-n) z(1-z),
// dr = dn gh_n r(1-r): dgi = dr | dz | dn, dgh = dr | dz | dn r, dh = dh' z.
__host__ __device__ inline void gru_backward_at(long long k, long long H, const T* gi, const T* gh,
                                                const T* h, const T* dh_out, T* dgi, T* dgh, T* dh) {
    const long long b = k / H, j = k - b * H;
    const T* xi = gi + b * 3 * H + j;
    const T* hh = gh + b * 3 * H + j;
    T* dxi = dgi + b * 3 * H + j;
    T* dhh = dgh + b * 3 * H + j;
    const T r = sigmoid_(xi[0] + hh[0]), z = sigmoid_(xi[H] + hh[H]);
    const T n = tanh_(xi[2 * H] + r * hh[2 * H]);
    const T d = dh_out[k];
    const T dn = d * ((T)1 - z) * ((T)1 - n * n);
    const T dz = d * (h[k] - n) * z * ((T)1 - z);
    const T dr = dn * hh[2 * H] * r * ((T)1 - r);
    dxi[0] = dr;
    dxi[H] = dz;
    dxi[2 * H] = dn;
    dhh[0] = dr;
    dhh[H] = dz;
    dhh[2 * H] = dn * r;
    dh[k] = d * z;
}
"""

# name -> the parameters after (n, H), as in the element function <name>_at
KERNELS = {
    "lstm_forward": "const T* a, const T* c, T* h_out, T* c_out",
    "lstm_backward": "const T* a, const T* c, const T* c_new, const T* dh, const T* dc, T* da, T* dc_prev",
    "gru_forward": "const T* gi, const T* gh, const T* h, T* h_out",
    "gru_backward": "const T* gi, const T* gh, const T* h, const T* dh_out, T* dgi, T* dgh, T* dh",
}


def _arguments(params: str) -> str:
    """``"const T* a, T* b"`` -> ``"a, b"``: the names, to pass the parameters on."""
    return ", ".join(p.split()[-1].lstrip("*") for p in params.split(","))


def _header(dtype: str) -> str:
    if dtype not in CTYPES:
        raise ValueError(f"fused cell kernels exist for {', '.join(CTYPES)}, not {dtype}")
    return f"typedef {CTYPES[dtype]} T;\n" + _ELEMENTS


def cuda_source(dtype: str) -> str:
    """The CUDA C++ module for ``dtype`` ("float32" or "float64"): one ``extern "C" __global__``
    kernel per entry of ``KERNELS``, taking ``(long long n, long long H, ...)``."""
    kernels = "".join(
        f'\nextern "C" __global__ void {name}(long long n, long long H, {params}) {{\n'
        f"    for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < n;\n"
        f"         k += (long long)gridDim.x * blockDim.x)\n"
        f"        {name}_at(k, H, {_arguments(params)});\n}}\n"
        for name, params in KERNELS.items())
    return _header(dtype) + kernels


def host_source(dtype: str) -> str:
    """``cuda_source(dtype)`` plus, per kernel, ``extern "C" void <name>_host(n, H, ...)``: the same
    element function in a plain loop on the CPU (for tests: build it as a shared library with nvcc)."""
    loops = "".join(
        f'\nextern "C" void {name}_host(long long n, long long H, {params}) {{\n'
        f"    for (long long k = 0; k < n; ++k) {name}_at(k, H, {_arguments(params)});\n}}\n"
        for name, params in KERNELS.items())
    return cuda_source(dtype) + loops


def has_kernels(a: Any) -> bool:
    """True when ``a`` is a CuPy array of a dtype the kernels are built for."""
    return backend.device_of(a) == "cuda" and a.dtype.name in CTYPES


def _run(name: str, n: int, H: int, *arrays: Any) -> None:
    dtype = arrays[0].dtype.name
    backend.launch(backend.cuda_kernel(cuda_source(dtype), name), n, (n, H, *arrays))


def _empty(shape: tuple, like: Any) -> Any:
    return backend.get_xp(like).empty(shape, dtype=like.dtype)


# ---------------------------------------------------------------- launchers (CuPy arrays)
# Every input is made row-major first (a no-op for the arrays the layers pass; an upstream
# gradient may be a broadcast view), since the kernels index the memory directly.

def lstm_forward(a: Any, c: Any) -> Any:
    """``(h', c')`` stacked as (2, B, H) from a (B, 4H) and c (B, H)."""
    a, c = backend.ascontiguousarray(a), backend.ascontiguousarray(c)
    B, H = c.shape
    out = _empty((2, B, H), c)
    _run("lstm_forward", B * H, H, a, c, out[0], out[1])
    return out


def lstm_backward(a: Any, c: Any, c_new: Any, dh: Any, dc: Any) -> tuple[Any, Any]:
    """``(da (B, 4H), dc (B, H))`` from the forward's a, c, c' and the upstream dh', dc'."""
    a, c, c_new, dh, dc = (backend.ascontiguousarray(x) for x in (a, c, c_new, dh, dc))
    B, H = c.shape
    da, dc_prev = _empty(a.shape, a), _empty(c.shape, c)
    _run("lstm_backward", B * H, H, a, c, c_new, dh, dc, da, dc_prev)
    return da, dc_prev


def gru_forward(gi: Any, gh: Any, h: Any) -> Any:
    """h' (B, H) from gi, gh (B, 3H) and h (B, H)."""
    gi, gh, h = (backend.ascontiguousarray(x) for x in (gi, gh, h))
    B, H = h.shape
    out = _empty((B, H), h)
    _run("gru_forward", B * H, H, gi, gh, h, out)
    return out


def gru_backward(gi: Any, gh: Any, h: Any, dh_out: Any) -> tuple[Any, Any, Any]:
    """``(dgi (B, 3H), dgh (B, 3H), dh (B, H))`` from the forward's inputs and the upstream dh'."""
    gi, gh, h, dh_out = (backend.ascontiguousarray(x) for x in (gi, gh, h, dh_out))
    B, H = h.shape
    dgi, dgh, dh = _empty(gi.shape, gi), _empty(gh.shape, gh), _empty(h.shape, h)
    _run("gru_backward", B * H, H, gi, gh, h, dh_out, dgi, dgh, dh)
    return dgi, dgh, dh
