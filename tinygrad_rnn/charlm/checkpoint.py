"""Checkpoint files: every piece of a training run's state in one ``.npz``, written atomically.

Arrays (weights, optimizer moments, the carried hidden state) are stored as
arrays; everything else (config, vocabulary, step, data position, RNG and
scheduler states) as JSON text in the entry ``meta``. Nested structures that mix
the two are split: each array is replaced by ``{"__array__": key}``. No pickles,
so a checkpoint is safe to load and readable from any NumPy program; arrays are
always NumPy, so a file written on ``cuda`` loads on ``cpu`` and back.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from typing import Any, BinaryIO

from .. import backend
from ..tensor import Tensor

FORMAT = "tinygrad_rnn.charlm/1"


def _split(obj: Any, key: str, arrays: dict[str, Any]) -> Any:
    """A JSON-able copy of ``obj`` with arrays and Tensors moved into ``arrays``."""
    if isinstance(obj, Tensor):
        obj = obj.data
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_split(k, f"{key}.k{i}", arrays), _split(v, f"{key}.{i}", arrays)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        items = [_split(v, f"{key}.{i}", arrays) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    return obj


def _join(obj: Any, arrays: dict[str, Any]) -> Any:
    """Inverse of ``_split`` (arrays come back as NumPy arrays)."""
    if isinstance(obj, dict):
        if "__array__" in obj:
            return arrays[obj["__array__"]]
        if "__dict__" in obj:
            return {_join(k, arrays): _join(v, arrays) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_join(v, arrays) for v in obj["__tuple__"])
        return {k: _join(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, arrays) for v in obj]
    return obj


def save(path: str, state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts/lists/tuples of JSON values, arrays and Tensors) to ``path``.

    Atomic: the file is written next to ``path``, flushed and fsynced, then renamed over it,
    so a crash or a kill during the save leaves the previous checkpoint intact.
    """
    arrays: dict[str, Any] = {}
    skeleton = _split(state, "a", arrays)
    arrays["meta"] = backend.text_array(json.dumps({"format": FORMAT, "state": skeleton}))
    write_atomic(path, lambda fh: backend.save_npz(fh, arrays))


def write_atomic(path: str, write: Callable[[BinaryIO], Any]) -> None:
    """Create or replace ``path`` with what ``write(fh)`` writes to a binary file, atomically.

    The bytes go to a temporary file next to ``path``, are flushed and fsynced, and the file is
    renamed over ``path`` (then the directory is fsynced): a reader sees the old file or the new
    one, never a part, and a failed write leaves no temporary file behind.
    """
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_text_atomic(path: str, text: str) -> None:
    """:func:`write_atomic` for UTF-8 text."""
    write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def copy_atomic(src: str, dst: str) -> None:
    """Copy the file ``src`` to ``dst`` with :func:`write_atomic`."""
    with open(src, "rb") as source:
        write_atomic(dst, lambda fh: shutil.copyfileobj(source, fh))


def load(path: str) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` (arrays as NumPy arrays)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        arrays = backend.load_npz(path)
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a tinygrad_rnn checkpoint ({exc})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {meta.get('format')!r} (expected {FORMAT})")
    return _join(meta["state"], arrays)


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable (where the platform allows opening a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
