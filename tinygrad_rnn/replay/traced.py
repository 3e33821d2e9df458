"""Arrays that write down what is computed with them, while a capture records.

The arguments of a captured call, its random draws and the outputs of its ops are handed to
the function as :class:`TracedArray` views. NumPy routes their ufuncs (arithmetic,
comparisons, reductions) and most functions (``where``, ``concatenate``...) through
``__array_ufunc__``/``__array_function__``; indexing, reshapes, casts and copies go through
the methods below. Each becomes a *raw call* of the trace, so that the NumPy work a function
does between ops (``one_hot`` of the ids, a loss's target indices, a dropout mask) is replayed
too. Values read to Python (``float(x)``, ``bool(x)``...) are written down as well.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .. import backend

if TYPE_CHECKING:
    from .trace import Recorder


class _State(threading.local):
    """The recorder of the capture running now in this thread (one at a time in the process), or None.
    Per thread: while one thread captures, the hooks let other threads' ops run as usual."""

    recorder: Recorder | None = None


ACTIVE = _State()

ndarray = backend.CPU_ARRAY


# ---------------------------------------------------------------- traced arrays

class TracedArray(ndarray):
    """A NumPy array whose computations are written to the active recorder.

    ``_vid`` numbers the value in the trace (None: made by a NumPy routine the recorder does
    not follow, so using it makes the trace fail). Outside a capture it computes like a
    plain array and returns plain arrays.
    """

    def __array_finalize__(self, obj: Any) -> None:
        self._vid = None
        self._rec = None
        self._plain = None

    # -- ufuncs (arithmetic, comparisons, reductions: sum, any, max ...)
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        rec = _live(inputs, kwargs.get("out", ()))
        args = tuple(_unwrap(x) for x in inputs)
        kw = {k: (tuple(_unwrap(o) for o in v) if k == "out" else _unwrap(v)) for k, v in kwargs.items()}
        result = getattr(ufunc, method)(*args, **kw)
        if rec is None:
            return result
        return rec.raw((ufunc, method), inputs, kwargs, result)

    # -- NumPy functions (where, concatenate, stack, copyto ...)
    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        rec = _live(args, kwargs.values())
        result = func(*_unwrap(args), **_unwrap(kwargs))
        if rec is None or func in _QUERIES:
            return result
        if func not in _FOLLOWED:
            rec.fail(f"numpy.{func.__name__} on an array computed inside the function is not followed by "
                     "capture")
            return result
        out = kwargs.get("out") if func is not _xp.copyto else args[0]
        return rec.raw(func, args, kwargs, result if out is None else None, out=out)

    # -- methods that make views or copies without going through a ufunc
    def __getitem__(self, index: Any) -> Any:
        return _method(self, "__getitem__", (index,), {})

    def __setitem__(self, index: Any, value: Any) -> None:
        rec = _live((self, index, value), ())
        ndarray.__setitem__(_unwrap(self), _unwrap(index), _unwrap(value))
        if rec is not None:
            rec.raw("__setitem__", (self, index, value), {}, None, out=self)

    def reshape(self, *shape: Any, **kwargs: Any) -> Any:
        return _method(self, "reshape", shape, kwargs)

    def transpose(self, *axes: Any) -> Any:
        return _method(self, "transpose", axes, {})

    @property
    def T(self) -> Any:  # noqa: N802
        return _method(self, "transpose", (), {})

    def astype(self, *args: Any, **kwargs: Any) -> Any:
        return _method(self, "astype", args, kwargs)

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        return _method(self, "copy", args, kwargs)

    def ravel(self, *args: Any, **kwargs: Any) -> Any:
        return _method(self, "ravel", args, kwargs)

    def squeeze(self, *args: Any, **kwargs: Any) -> Any:
        return _method(self, "squeeze", args, kwargs)

    def swapaxes(self, *args: Any) -> Any:
        return _method(self, "swapaxes", args, {})

    def fill(self, value: Any) -> None:
        rec = _live((self,), ())
        ndarray.fill(_unwrap(self), value)
        if rec is not None:
            rec.raw("fill", (self, value), {}, None, out=self)

    # -- values read to Python
    def __bool__(self) -> bool:
        return _read(self, "bool", ndarray.__bool__)

    def __int__(self) -> int:
        return _read(self, "int", ndarray.__int__)

    def __float__(self) -> float:
        return _read(self, "float", ndarray.__float__)

    def __index__(self) -> int:
        return _read(self, "index", ndarray.__index__)

    def item(self, *args: Any) -> Any:
        return _read(self, "item", lambda a: ndarray.item(a, *args), args)

    def tolist(self) -> Any:
        return _read(self, "tolist", ndarray.tolist)

    def __repr__(self) -> str:
        return _read(self, "repr", ndarray.__repr__)

    def __str__(self) -> str:
        return _read(self, "str", ndarray.__str__)


_xp = backend.xp_for("cpu")
_FOLLOWED = {_xp.where, _xp.concatenate, _xp.stack, _xp.copyto, _xp.broadcast_to, _xp.reshape, _xp.transpose,
             _xp.expand_dims, _xp.squeeze, _xp.ravel, _xp.empty_like, _xp.zeros_like, _xp.ones_like,
             _xp.full_like}
_QUERIES = {_xp.shares_memory, _xp.may_share_memory, _xp.ndim, _xp.shape, _xp.size, _xp.result_type,
            _xp.can_cast, _xp.iscomplexobj, _xp.isrealobj}


def _plain(a: TracedArray) -> Any:
    if a._plain is None:
        a._plain = ndarray.view(a, ndarray)
    return a._plain


def _unwrap(x: Any) -> Any:
    """The plain NumPy form of ``x`` (traced arrays inside tuples, lists and dicts too)."""
    if type(x) is TracedArray:
        return _plain(x)
    if type(x) in (tuple, list):
        return type(x)(_unwrap(v) for v in x)
    if type(x) is dict:
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _live(*groups: Any) -> Recorder | None:
    """The active recorder, if one of the traced arrays among ``groups`` belongs to it."""
    rec = ACTIVE.recorder
    if rec is None or rec.depth:
        return None
    for group in groups:
        for x in group if isinstance(group, (tuple, list)) else tuple(group):
            if type(x) is TracedArray and x._rec is rec:
                return rec
            if type(x) in (tuple, list) and _live(x):
                return rec
    return None


def _method(a: TracedArray, name: str, args: tuple, kwargs: dict) -> Any:
    rec = _live((a,), args)
    result = getattr(ndarray, name)(_unwrap(a), *_unwrap(args), **_unwrap(kwargs))
    if rec is None:
        return result
    return rec.raw(name, (a, *args), kwargs, result)


def _read(a: TracedArray, kind: str, convert: Any, args: tuple = ()) -> Any:
    value = convert(_plain(a))
    rec = ACTIVE.recorder
    if rec is not None and a._rec is rec and not rec.depth:
        rec.host_read(a, kind, backend.owned_copy(value) if isinstance(value, ndarray) else value, args)
    return value


def _shares(a: Any, candidates: Any) -> int | None:
    """Index of the first candidate array whose memory ``a`` shares (a view of it), or None."""
    a = _unwrap(a)
    for i, c in enumerate(candidates):
        c = _unwrap(c)
        if isinstance(c, ndarray) and isinstance(a, ndarray) and _xp.may_share_memory(a, c):
            return i
    return None


