"""Truncated backpropagation through time: chunks of a long sequence, with the state carried for you.

A recurrent model trained on a sequence too long for one graph reads it in chunks of ``k``
steps, starting each chunk from the state the previous one ended in. Backpropagating through
that state would reach back into every chunk before it, so the state is *detached* between
chunks: its values carry over, its graph does not. :func:`tbptt` does that bookkeeping::

    chunks = tbptt(x, y, k=25)                    # x, y: (T_total, B, ...)
    for x_k, y_k, state in chunks:                # x_k, y_k: (k, B, ...); state: None at first
        out, state = model(x_k, state)
        loss = F.cross_entropy(head(out).reshape(-1, V), y_k.reshape(-1))
        optimizer.zero_grad()
        chunks.backward(loss, state)              # backward, then carry the state (detached)
        optimizer.step()

The window (Williams & Peng's BPTT(k2; k1), here ``window`` and ``k``): with ``window = m * k``,
each chunk's loss is backpropagated through that chunk *and the m - 1 chunks before it*; the
state that entered the oldest of those chunks is a constant. So the loss at the last step of a
chunk reaches ``window`` steps back, the one at its first step ``window - k + 1``; the weights
are updated every ``k`` steps. ``window = k`` (the default) is the usual truncated BPTT. With a
longer window the graphs of the previous ``m - 1`` chunks are kept, as they were recorded (with
the weights of their time), and each chunk starts from a leaf copy of the carried state whose
gradient is handed on to the chunk before it: the graph is cut only at chunk boundaries, which
is why ``window`` must be a multiple of ``k``. Gradients accumulate into the parameters' ``.grad``
as ``loss.backward()`` would (zero them yourself, before ``backward``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from .. import autograd
from ..tensor import Tensor

__all__ = ["TBPTT", "tbptt"]


def _tensors(state: Any) -> list[Tensor]:
    """The Tensors of a state (a Tensor, None, or a tuple/list of them, nested), in order."""
    if state is None:
        return []
    if isinstance(state, Tensor):
        return [state]
    if isinstance(state, (tuple, list)):
        return [t for s in state for t in _tensors(s)]
    raise TypeError(f"tbptt: a recurrent state is a Tensor or a tuple/list of Tensors (an LSTM's (h, c)), "
                    f"got {type(state).__name__}")


def _map(state: Any, fn: Any) -> Any:
    """``state`` with every Tensor replaced by ``fn(tensor)``, keeping its structure."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a namedtuple takes fields as arguments
        return type(state)(*(_map(s, fn) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(_map(s, fn) for s in state)
    raise TypeError(f"tbptt: a recurrent state is a Tensor or a tuple/list of Tensors (an LSTM's (h, c)), "
                    f"got {type(state).__name__}")


def _leaf(t: Tensor) -> Tensor:
    """A new leaf over ``t``'s array that records gradients: a chunk's start, when the window is longer."""
    return Tensor(t.data, requires_grad=True)


class _Segment:
    """One chunk's graph, kept while a later window reaches back into it: the state it started from
    (``leaves``: leaves made by :class:`TBPTT`, whose gradient is handed on to the chunk before; None
    when the chunk starts a window, e.g. the first one) and the state it ended in, still attached."""

    __slots__ = ("leaves", "end")

    def __init__(self, leaves: list[Tensor] | None) -> None:
        self.leaves, self.end = leaves, None


class TBPTT:
    """Chunks of ``k`` steps of ``x`` (and ``y``) along the time axis, with the recurrent state carried.

    Iterating yields ``(x_chunk, y_chunk, state)``: the chunk's inputs and targets, and the state to
    start it from (the ``state`` given for the first chunk, then the one handed back). After each
    chunk, hand back the state the model ended in with :meth:`backward` (to learn) or :meth:`carry`
    (no gradient, e.g. evaluation); asking for the next chunk first is an error, so a state is never
    silently dropped.

    Args:
        x: inputs, a Tensor or an array, time along ``time_axis`` (T_total, B, ...).
        y: targets with the same time axis, or None (then ``y_chunk`` is None).
        k: steps per chunk (>= 1): the weights can be updated every k steps.
        window: steps each chunk's loss is backpropagated through, counted back from the chunk's
            last step: a multiple of ``k``, ``k`` by default (see the module's docstring).
        state: the state for the first chunk (None: the model's zeros). It is used as given, so a
            learned initial state gets its gradient when the window reaches back to it.
        start: the time index of the first chunk (to resume in the middle of a sequence).
        drop_last: leave out a last chunk shorter than ``k``.
        time_axis: 0 for (T, B, ...), 1 for batch-first (B, T, ...).

    Attributes:
        position: the time index of the next chunk's first step.
        state: the state handed back by the last :meth:`backward`/:meth:`carry` (detached).
    """

    def __init__(self, x: Any, y: Any = None, *, k: int, window: int | None = None, state: Any = None,
                 start: int = 0, drop_last: bool = False, time_axis: int = 0) -> None:
        self.k = _positive_int(k, "k")
        self.window = self.k if window is None else _positive_int(window, "window")
        if self.window % self.k:
            lower, upper = max(self.window // self.k, 1) * self.k, (self.window // self.k + 1) * self.k
            raise ValueError(f"tbptt: window={self.window} must be a multiple of k={self.k} (the graph is cut "
                             f"only between chunks): use window={lower} or {upper}")
        if time_axis not in (0, 1) or len(x.shape) <= time_axis:
            raise ValueError(f"tbptt: time_axis must be 0 or 1 and exist in x of shape {tuple(x.shape)}")
        self.total = x.shape[time_axis]
        if y is not None and (len(y.shape) <= time_axis or y.shape[time_axis] != self.total):
            raise ValueError(f"tbptt: x has {self.total} time steps along axis {time_axis} but y has shape "
                             f"{tuple(y.shape)}")
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= self.total:
            raise ValueError(f"tbptt: start={start!r} is not a time index of the sequence of {self.total} steps")
        _tensors(state)  # a clear error now for a state of the wrong kind
        self.x, self.y, self.time_axis, self.drop_last = x, y, time_axis, drop_last
        self.position, self.state = start, state
        self._pending = False  # a chunk was yielded and its state not handed back yet
        self._segments: deque[_Segment] = deque()  # kept graphs, oldest first (window > k only)

    # ------------------------------------------------------------ iteration
    def __len__(self) -> int:
        """The number of chunks left, from ``position`` to the end."""
        left = self.total - self.position
        return left // self.k if self.drop_last else -(-left // self.k)

    def __iter__(self) -> Iterator[tuple[Any, Any, Any]]:
        return self

    def __next__(self) -> tuple[Any, Any, Any]:
        if self._pending:
            raise RuntimeError("tbptt: the last chunk's state was not handed back: call chunks.backward(loss, "
                               "state) (or chunks.carry(state) without gradients) before the next chunk")
        p = self.position
        n = min(self.k, self.total - p)
        if n <= 0 or (self.drop_last and n < self.k):
            raise StopIteration
        self.position, self._pending = p + n, True
        state = self.state
        if self.window > self.k:
            # While the previous chunk's graph is kept, this chunk starts from leaves over the carried
            # arrays: the gradient that reaches them is handed on to that graph in backward().
            leaves = None
            if self._segments and state is not None:
                state = _map(state, _leaf)
                leaves = _tensors(state)
            self._segments.append(_Segment(leaves))
        return self._cut(self.x, p, n), None if self.y is None else self._cut(self.y, p, n), state

    def _cut(self, a: Any, p: int, n: int) -> Any:
        return a[p: p + n] if self.time_axis == 0 else a[:, p: p + n]

    # ------------------------------------------------------------ handing the state back
    def backward(self, loss: Tensor, state: Any) -> Any:
        """Backpropagate ``loss`` over the window, then carry ``state`` (detached) to the next chunk.

        Args:
            loss: a scalar computed from this chunk.
            state: the state the model ended the chunk in (still attached to its graph).

        Returns:
            The carried state (the same arrays, cut from the graph): what the next chunk starts from.
        """
        self._check_pending("backward")
        if self.window == self.k:
            loss.backward()
            return self._carry(state)
        segments = self._segments
        for seg in segments:  # what reached the leaves in the previous window's pass was another loss's
            for leaf in seg.leaves or ():
                leaf.grad = None
        # Graphs stay: later windows go back through them. One is released when it leaves the deque.
        loss.backward(retain_graph=True)
        for i in range(len(segments) - 1, 0, -1):  # newest first: hand the gradient at a start back
            leaves = segments[i].leaves
            pairs = [(end, leaf.grad) for end, leaf in zip(_tensors(segments[i - 1].end), leaves or ())
                     if leaf.grad is not None]
            if not pairs:  # the chunk started a window (or nothing flowed back): the window ends here
                break
            autograd.backward([end for end, _ in pairs], [g for _, g in pairs], retain_graph=True)
        segments[-1].end = state
        while len(segments) >= self.window // self.k:  # keep the m - 1 chunks the next window reaches
            segments.popleft()
        return self._carry(state)

    def carry(self, state: Any) -> Any:
        """Carry ``state`` (detached) to the next chunk without backpropagating (a longer window is cut here).

        Returns:
            The carried state.
        """
        self._check_pending("carry")
        self._segments.clear()
        return self._carry(state)

    def _carry(self, state: Any) -> Any:
        _tensors(state)
        self.state = _map(state, Tensor.detach)
        self._pending = False
        return self.state

    def _check_pending(self, what: str) -> None:
        if not self._pending:
            raise RuntimeError(f"tbptt: {what}() without a chunk: call it once after each chunk the iteration "
                               "yields")


def tbptt(x: Any, y: Any = None, *, k: int, window: int | None = None, state: Any = None, start: int = 0,
          drop_last: bool = False, time_axis: int = 0) -> TBPTT:
    """Iterate over ``x`` (and ``y``) in chunks of ``k`` time steps with the recurrent state carried and
    detached between them (truncated BPTT). See :class:`TBPTT` for the arguments.

    >>> import tinygrad_rnn as tg
    >>> chunks = tbptt(tg.zeros(10, 2, 3), k=4)
    >>> for x_k, _, state in chunks:
    ...     print(tuple(x_k.shape), chunks.position)
    ...     _ = chunks.carry(state)
    (4, 2, 3) 4
    (4, 2, 3) 8
    (2, 2, 3) 10
    """
    return TBPTT(x, y, k=k, window=window, state=state, start=start, drop_last=drop_last, time_axis=time_axis)


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"tbptt: {name} must be an integer >= 1, got {value!r}")
    return value
