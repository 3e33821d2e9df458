"""BLAS threads: how many NumPy's BLAS runs, and a policy that holds up on a busy machine.

Why it matters. OpenBLAS splits every matrix product over its threads and waits for the
slowest. When another busy process takes one of the cores, the BLAS thread that shares
that core gets half of it, and every product waits for it. On the 2-core reference machine
``tinygrad-rnn bench S`` fell from 94k chars/s to 43k with one busy process beside it at
OpenBLAS's default of 2 threads, while 1 thread gave 72k (docs/performance.md has the table).

* :func:`set_num_threads` / :func:`get_num_threads` fix or read the count for the whole
  process (as ``torch.set_num_threads``), through threadpoolctl, the maintained library for
  this (it finds the BLAS that NumPy loaded, whichever it is); :func:`num_threads` does it
  for a ``with`` block only.
* :class:`AutoThreads` is the policy of the ``tinygrad-rnn`` command (``--threads auto``):
  once a second it measures how much CPU time *other* processes took (the machine's busy
  time from ``/proc/stat`` minus this process's own) and gives BLAS the cores they leave.

Importing tinygrad_rnn changes no thread setting: a library user's process keeps its BLAS
defaults unless it calls these functions. Results do not depend on the count: OpenBLAS
splits products by rows and columns, never along the summed axis (a test checks this for
the step's shapes), so ``--threads auto`` keeps runs reproducible.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

from threadpoolctl import ThreadpoolController

__all__ = ["get_num_threads", "set_num_threads", "num_threads", "AutoThreads", "cpu_count", "parse_threads",
           "apply_threads"]

_controller: ThreadpoolController | None = None


def _blas() -> ThreadpoolController:
    """The BLAS libraries loaded in this process (found once: the search walks the loaded libraries)."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def get_num_threads() -> int:
    """Threads the BLAS runs matrix products on (1 when no BLAS with a thread pool is loaded)."""
    counts = [lib.num_threads for lib in _blas().lib_controllers]
    return max(counts) if counts else 1


def _check(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: the thread count must be a positive int, got {n!r}")
    return n


def set_num_threads(n: int) -> None:
    """Run BLAS on ``n`` threads from now on, for the whole process."""
    _blas().limit(limits=_check(n))


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run BLAS on ``n`` threads inside the ``with`` block; the previous count comes back after it."""
    with _blas().limit(limits=_check(n)):
        yield


# ---------------------------------------------------------------- the auto policy

def _machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine spent busy since boot (``/proc/stat``), or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal ...: busy is everything but idle and iowait
    ticks = [int(v) for v in fields[1:]]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    if len(ticks) > 9:  # guest time is already counted in user and nice
        busy -= ticks[8] + ticks[9]
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds this process (all its threads) has used."""
    t = os.times()
    return t.user + t.system


class AutoThreads:
    """Give BLAS the cores that other processes leave free, re-decided about once a second.

    Call :meth:`update` often (the trainer calls it once per step: it reads a clock and
    returns until ``interval`` seconds have passed). Then it compares the machine's busy
    time with this process's own over the interval; the difference is how many cores other
    processes kept busy, and :meth:`decide` turns that into a count. Where ``/proc/stat``
    does not exist (not Linux) the policy leaves the count alone.

    Args:
        cores: the cores to share (default: those this process may run on).
        interval: seconds between decisions.
        probe: seconds to watch the machine before the first decision (the command uses 0.25 s,
            so that a short run starts with the right count).
        apply: sets a count (default :func:`set_num_threads`; tests pass their own, and
            ``machine``, ``own``, ``clock`` and ``sleep``: busy seconds of the machine and of
            this process, a monotonic clock and a pause).
    """

    def __init__(self, cores: int | None = None, interval: float = 1.0, probe: float = 0.0,
                 apply: Callable[[int], None] = set_num_threads, clock: Callable[[], float] = time.monotonic,
                 machine: Callable[[], float | None] = _machine_busy_seconds,
                 own: Callable[[], float] = _own_seconds, sleep: Callable[[float], None] = time.sleep) -> None:
        self.cores = cores or cpu_count()
        self.interval, self._apply, self._clock, self._machine, self._own = interval, apply, clock, machine, own
        self.others = 0.0  # cores other processes kept busy over the last interval
        self.available = machine() is not None
        self.threads = self.cores
        self._mark = (clock(), machine() or 0.0, own())
        if self.available and probe > 0:  # a first look before any work: this process idles, others show
            sleep(probe)
            self.threads = self.decide(self._measure(clock()), self.threads, self.cores)
        if self.available:
            self._apply(self.threads)

    def update(self) -> int:
        """Re-decide if ``interval`` has passed since the last decision; return the thread count."""
        t = self._clock()
        if not self.available or t - self._mark[0] < self.interval:
            return self.threads
        want = self.decide(self._measure(t), self.threads, self.cores)
        if want != self.threads:
            self._apply(want)
            self.threads = want
        return self.threads

    def _measure(self, t: float) -> float:
        """Cores other processes kept busy since the last mark (which moves to now)."""
        machine, own = self._machine() or 0.0, self._own()
        (t0, machine0, own0), self._mark = self._mark, (t, machine, own)
        self.others = min(float(self.cores), max(0.0, (machine - machine0 - (own - own0)) / max(t - t0, 1e-9)))
        return self.others

    @staticmethod
    def decide(others: float, current: int, cores: int) -> int:
        """The thread count for ``others`` busy cores of ``cores``, running ``current`` now.

        Fewer threads as soon as the others take more than half a core of ours (a BLAS thread
        sharing a core with a busy process stalls every product); more again only once the
        others leave three quarters of a core more than we use, so the count does not flap.
        """
        free = cores - others
        if free < current - 0.5:
            return max(1, int(free + 0.5))
        if free > current + 0.75:
            return min(cores, int(free + 0.25))
        return current


# ---------------------------------------------------------------- the command's option

def parse_threads(value: str | int) -> str | int:
    """The ``--threads`` choice: ``"auto"``, ``"blas"`` (the BLAS library's own default) or a count >= 1."""
    if value in ("auto", "blas"):
        return value
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if isinstance(value, bool) or n < 1 or str(n) != str(value).strip():
        raise ValueError(f"--threads: invalid value {value!r}: use auto, blas or a positive number of threads")
    return n


def apply_threads(choice: str | int) -> AutoThreads | None:
    """Put a ``--threads`` choice in force; returns the auto policy (call its ``update()`` between steps)."""
    choice = parse_threads(choice)
    if choice == "auto":
        return AutoThreads(probe=0.25)
    if choice != "blas":
        set_num_threads(int(choice))
    return None
