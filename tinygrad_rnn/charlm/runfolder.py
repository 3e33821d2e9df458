"""A training run's folder: created without clobbering anything, locked while a run writes to it.

Files: ``config.json``, ``metrics.jsonl`` (one strict JSON object per step), ``latest.npz`` and
``best.npz`` (checkpoints), ``samples.txt``, ``loss.png``. A new run never writes into a folder
that holds a run unless told to (``overwrite``), and default folders (``runs/<timestamp>``) are
created exclusively, with a suffix when two runs start in the same second. A run holds an
exclusive lock on its folder (``flock`` on the directory, released by the kernel even when the
process is killed), so two commands never write one run at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import TinygradRNNError
from . import checkpoint
from .checkpoint import WriteError, write_error

try:  # POSIX; elsewhere a run folder is not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

RUN_FILES = ("config.json", "metrics.jsonl", "latest.npz", "best.npz", "samples.txt", "loss.png")


class RunFolderError(TinygradRNNError, ValueError):
    """A run folder that cannot be used: it holds another run, is in use, or is not a folder."""


def run_files(path: str) -> list[str]:
    """The run files present in ``path`` (empty if it is not a folder)."""
    return [n for n in RUN_FILES if os.path.isfile(os.path.join(path, n))] if os.path.isdir(path) else []


def check_new_out(out: str, overwrite: bool) -> None:
    """Refuse ``--out`` when it is not a folder, or holds a run and ``overwrite`` was not asked for.

    Called before anything is created; :meth:`RunFolder.create` checks again under the lock.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunFolderError(f"--out {out}: exists and is not a folder")
    found = run_files(out)
    if found and not overwrite:
        raise RunFolderError(f"--out {out}: already holds a run ({', '.join(found)}): continue it with "
                             f"--resume {out}, or replace it with --overwrite")


def timestamp() -> str:
    """The default run folder's name (tests replace it to start two runs "in the same second")."""
    return time.strftime("%Y%m%d-%H%M%S")


@contextmanager
def _write_guard(path: str) -> Iterator[None]:
    """Turn an OSError while writing ``path`` into a one-line WriteError naming it."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise write_error(path, exc, atomic=False) from exc


class RunFolder:
    """The files of one run; ``create`` (new run) or ``open`` (resume) it, ``close`` when done."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.metrics_path = os.path.join(path, "metrics.jsonl")
        self.samples_path = os.path.join(path, "samples.txt")
        self._lock_fd: int | None = None

    # ------------------------------------------------------------ opening
    @classmethod
    def create(cls, out: str | None, overwrite: bool = False, root: str = "runs") -> RunFolder:
        """A folder for a new run: ``out`` (made if missing; with ``overwrite`` the run files in it are
        removed first), or a new ``root/<timestamp>[-N]``, created exclusively."""
        if out is None:
            folder = cls(_exclusive_folder(root))
        else:
            with _write_guard(out):
                os.makedirs(out, exist_ok=True)
            folder = cls(out)
        folder._lock()
        try:
            if out is not None:
                check_new_out(out, overwrite)  # again, now that no other run can start here
                for name in run_files(out):
                    with _write_guard(folder.file(name)):
                        os.remove(folder.file(name))
            folder._remove_temporaries()
        except BaseException:
            folder.close()
            raise
        return folder

    @classmethod
    def open(cls, path: str) -> RunFolder:
        """The folder of a run to continue (locked; temporary files left by a killed save removed)."""
        folder = cls(path)
        folder._lock()
        folder._remove_temporaries()
        return folder

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise RunFolderError(f"{self.path}: cannot open the run folder: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunFolderError(f"{self.path}: another tinygrad-rnn train is writing this run folder; wait for "
                                 "it to end (or stop it) first") from None
        self._lock_fd = fd

    def close(self) -> None:
        """Release the folder's lock."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _remove_temporaries(self) -> None:
        for name in os.listdir(self.path):
            if checkpoint.is_temporary(name) and name.split(checkpoint.TMP_MARK)[0] in RUN_FILES:
                with _write_guard(self.file(name)):
                    os.remove(self.file(name))

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # ------------------------------------------------------------ files
    def write_config(self, cfg: Any, corpus: str, vocab_size: int) -> None:
        info = dataclasses.asdict(cfg) | {"corpus": corpus, "vocab_size": vocab_size}
        checkpoint.write_text_atomic(self.file("config.json"), json.dumps(info, indent=2, allow_nan=False) + "\n")

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Append one strict JSON line (a NaN or an infinity raises ValueError instead of being written)."""
        line = json.dumps(row, allow_nan=False) + "\n"
        with _write_guard(self.metrics_path), open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(line)  # one write per complete line

    def truncate_metrics(self, step: int) -> list[dict[str, Any]]:
        """Keep the lines up to ``step`` (those after it were logged after the last checkpoint) and return
        them. A damaged last line (a write cut short) is dropped; damage elsewhere is an error."""
        rows = read_metrics(self.metrics_path, allow_partial_last=True)
        kept = [r for r in rows if r["step"] <= step]
        checkpoint.write_text_atomic(self.metrics_path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept))
        return kept

    def append_sample(self, step: int, text: str) -> int:
        """Append a sample; returns the size of samples.txt after it (recorded in the checkpoint)."""
        with _write_guard(self.samples_path), open(self.samples_path, "a", encoding="utf-8") as fh:
            fh.write(f"===== step {step} =====\n{text}\n\n")
        return os.path.getsize(self.samples_path)

    def truncate_samples(self, size: int | None) -> None:
        """Cut samples.txt back to ``size`` bytes (its size at the last checkpoint), if it grew since."""
        if size is not None and os.path.isfile(self.samples_path) and os.path.getsize(self.samples_path) > size:
            with _write_guard(self.samples_path):
                os.truncate(self.samples_path, size)


def read_metrics(path: str, allow_partial_last: bool = False) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl, parsed strictly (NaN or Infinity is an error, as in any strict parser)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().split("\n")
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_refuse_constant)
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                raise ValueError("not a metrics row")
        except ValueError as exc:
            last = all(not rest.strip() for rest in lines[n:])
            if allow_partial_last and last:
                break
            raise RunFolderError(f"{path}: line {n} is damaged ({exc}); remove that line to go on") from None
        rows.append(row)
    return rows


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _exclusive_folder(root: str) -> str:
    """Create ``root/<timestamp>``, or ``root/<timestamp>-2``, ``-3``... if taken; return its path."""
    with _write_guard(root):
        os.makedirs(root, exist_ok=True)
    base = os.path.join(root, timestamp())
    for n in range(1, 10_000):
        path = base if n == 1 else f"{base}-{n}"
        try:
            os.mkdir(path)  # atomic: exactly one process creates a given name
        except FileExistsError:
            continue
        except OSError as exc:
            raise write_error(path, exc, atomic=False) from None
        return path
    raise RunFolderError(f"{base}: 10,000 run folders with this timestamp already exist")
