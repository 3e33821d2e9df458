"""Capture and replay: a tracing JIT for static training steps (docs/replay.md).

``step = tinygrad_rnn.replay.capture(fn)`` records what ``fn`` does on its first calls (every
op, its backward pass, the array work around them) and, once two calls agree, replays it as a
flat list of NumPy calls into preallocated buffers, without creating Tensor or Function objects
or walking the graph. The normal path stays the reference: replay gives the same bits, checks
it on its first run, and falls back to the normal path, saying why, whenever it cannot be sure.

Modules: ``trace`` (recording), ``compile`` and ``kernels``/``backward`` (the program),
``plan`` (memory), ``program`` (running it), ``captured`` (the front: ``capture``, ``Captured``).
"""

from .captured import Captured, ReplayWarning, capture

__all__ = ["capture", "Captured", "ReplayWarning"]
