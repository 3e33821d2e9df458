"""Checkpoint files: every piece of a training run's state in one ``.npz``, written atomically.

Arrays (weights, optimizer moments, the carried hidden state) are stored as
arrays; everything else (config, vocabulary, step, data position, RNG and
scheduler states) as JSON text in the entry ``meta``. Nested structures that mix
the two are split: each array is replaced by ``{"__array__": key}``. No pickles,
so a checkpoint is safe to load and readable from any NumPy program; arrays are
always NumPy, so a file written on ``cuda`` loads on ``cpu`` and back.

Format and version policy: ``meta`` holds ``"format": "tinygrad_rnn.charlm/N"``. This version
writes format 2, whose ``meta`` also holds ``"sha256"``: the SHA-256 of the rest of ``meta``
(canonical JSON) and of every array's name, dtype, shape and bytes, checked at every load, so a
bit flip or an edited array is found before anything uses the file. Format 1 (no checksum,
written before it) is still read, unverified. A file of a newer format is refused by name.
Every failure to read is a :class:`CheckpointError` whose one-line message names the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from typing import Any, BinaryIO

from .. import backend
from ..errors import TinygradRNNError
from ..tensor import Tensor

FORMAT_NAME = "tinygrad_rnn.charlm"
VERSION = 2  # what this version writes; it reads 1 (no checksum) to VERSION
FORMAT = f"{FORMAT_NAME}/{VERSION}"
ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(TinygradRNNError, ValueError):
    """A checkpoint that cannot be used: damaged, not ours, or from a newer tinygrad_rnn (the message
    names the file and what is wrong)."""


class WriteError(TinygradRNNError, OSError):
    """A run file that could not be written (full disk, no permission); the previous file is intact."""


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
    arrays = {k: backend.to_numpy(v) for k, v in arrays.items()}
    meta = {"format": FORMAT, "state": skeleton}
    meta["sha256"] = _digest(meta, arrays)
    arrays["meta"] = backend.text_array(json.dumps(meta, allow_nan=False))
    write_atomic(path, lambda fh: backend.save_npz(fh, arrays))


def _digest(meta: dict[str, Any], arrays: dict[str, Any]) -> str:
    """SHA-256 of ``meta`` (canonical JSON, without its own ``sha256``) and of each array's name, dtype,
    shape and bytes, in name order."""
    h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True,
                                  allow_nan=False).encode("utf-8"))
    for name in sorted(arrays):
        a = arrays[name]
        h.update(f"\0{name}\0{a.dtype.str}\0{tuple(a.shape)}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_atomic(path: str, write: Callable[[BinaryIO], Any]) -> None:
    """Create or replace ``path`` with what ``write(fh)`` writes to a binary file, atomically.

    The bytes go to a temporary file next to ``path``, are flushed and fsynced, and the file is
    renamed over ``path`` (then the directory is fsynced): a reader sees the old file or the new
    one, never a part, and a failed write leaves no temporary file behind. A failure of the file
    system (full disk, no permission) raises :class:`WriteError`, one line naming ``path``.
    """
    tmp = f"{path}{TMP_MARK}{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        try:
            if os.path.exists(tmp):
                os.remove(tmp)
        except OSError:
            pass  # the folder refuses writes: then no temporary file could be created either
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


TMP_MARK = ".tmp"  # a temporary file is "<path>.tmp<pid>" (a kill can leave one: see is_temporary)


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`write_atomic`'s temporary files."""
    head, mark, pid = name.rpartition(TMP_MARK)
    return bool(head and mark and pid.isdigit())


def write_error(path: str, exc: OSError, atomic: bool = True) -> WriteError:
    """The one-line error for a failed write of ``path`` (by :func:`write_atomic` if ``atomic``)."""
    if isinstance(exc, WriteError):
        return exc
    reason = exc.strerror or str(exc) or type(exc).__name__
    message = f"{path}: cannot write it: {reason} (errno {exc.errno})"
    if atomic:
        message += "; the previous file is intact" if os.path.exists(path) else "; nothing was written"
    return WriteError(message)


def write_text_atomic(path: str, text: str) -> None:
    """:func:`write_atomic` for UTF-8 text."""
    write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def copy_atomic(src: str, dst: str) -> None:
    """Copy the file ``src`` to ``dst`` with :func:`write_atomic`."""
    with open(src, "rb") as source:
        write_atomic(dst, lambda fh: shutil.copyfileobj(source, fh))


def load(path: str) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` (arrays as NumPy arrays), verifying its checksum.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: a damaged, foreign or newer file (one line, naming ``path``).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint")
    arrays = _read_arrays(path)
    meta = _read_meta(path, arrays.pop("meta", None), arrays)
    version = _version(path, meta.get("format"))
    if version >= 2:
        stored = meta.get("sha256")
        if not isinstance(stored, str):
            raise CheckpointError(f"{path}: damaged checkpoint: its checksum is missing")
        if _digest(meta, arrays) != stored:
            raise CheckpointError(f"{path}: damaged checkpoint: its contents do not match the SHA-256 checksum "
                                  "stored in it (a changed byte, or a partial copy); use another checkpoint")
    try:
        return _join(meta["state"], arrays)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint: its layout does not match its arrays ({exc!r})") from None


def _read_arrays(path: str) -> dict[str, Any]:
    """Every entry of the ``.npz`` at ``path``, or a one-line CheckpointError saying why not."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(ZIP_MAGIC))
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if not head:
        raise CheckpointError(f"{path}: the file is empty: not a checkpoint (a copy that failed?)")
    if head != ZIP_MAGIC:
        raise CheckpointError(f"{path}: not a tinygrad_rnn checkpoint: not an .npz (zip) file")
    try:
        return backend.load_npz(path)
    except Exception as exc:  # noqa: BLE001  (zipfile, zlib and NumPy raise many kinds for a damaged file)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "pickle" in reason:
            raise CheckpointError(f"{path}: not a tinygrad_rnn checkpoint: it holds pickled objects, which "
                                  "ours never do (refused: loading pickles runs code)") from None
        if "is not a zip file" in reason:  # it starts like one: the directory at its end is missing
            reason = "the end of the zip archive is missing"
        raise CheckpointError(f"{path}: damaged checkpoint (truncated or corrupted .npz: {reason})") from None


def _read_meta(path: str, meta: Any, arrays: dict[str, Any]) -> dict[str, Any]:
    if meta is None:
        names = ", ".join(sorted(arrays)[:5]) or "none"
        raise CheckpointError(f"{path}: not a tinygrad_rnn checkpoint: no 'meta' entry (its entries: {names})")
    if getattr(meta, "dtype", None) is None or meta.dtype.kind != "U" or meta.shape != ():
        raise CheckpointError(f"{path}: not a tinygrad_rnn checkpoint: its 'meta' entry is not text")
    try:
        parsed = json.loads(str(meta), parse_constant=_no_constant)
    except ValueError:
        raise CheckpointError(f"{path}: damaged checkpoint, or not ours: its 'meta' entry is not valid JSON") from None
    if not isinstance(parsed, dict) or "state" not in parsed:
        raise CheckpointError(f"{path}: not a tinygrad_rnn checkpoint: its 'meta' entry has no 'state'")
    return parsed


def _version(path: str, fmt: Any) -> int:
    name, _, number = str(fmt).rpartition("/")
    if name != FORMAT_NAME or not number.isdigit():
        raise CheckpointError(f"{path}: not a tinygrad_rnn char-LM checkpoint (format {fmt!r}, expected {FORMAT})")
    version = int(number)
    if version > VERSION:
        raise CheckpointError(f"{path}: written by a newer tinygrad_rnn: format {version}, this one reads up to "
                              f"{VERSION}; upgrade tinygrad_rnn to load it")
    if version < 1:
        raise CheckpointError(f"{path}: unknown checkpoint format {fmt!r}")
    return version


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


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
