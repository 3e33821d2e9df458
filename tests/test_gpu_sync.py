"""A training step never makes the host wait for the GPU, except where the caller asks for a value.

On a GPU, kernels run asynchronously: the host queues a step's few thousand launches and the
device works through them. Reading a value back (``float(a)``, ``bool(a)``, ``a.item()``, a
copy to NumPy, a boolean mask, which needs its count) makes the host wait until everything
queued before it has run, and stops it queuing meanwhile: for the small LSTMs here, where
launch overhead decides the speed, one such wait per step costs a large part of it.

Two tests count those reads in one full training step (``charlm.trainer.update``: forward,
cross-entropy, backward, ``clip_grad_norm_``, Adam) and in the next, from the carried state:

* on the CPU, a proxy: every array of the step is a NumPy subclass that logs each conversion
  to a Python value, and ``backend.reading_blocks`` says yes for it, so the step takes the
  branches it takes on the GPU;
* on cuda (where CuPy and a GPU exist), CuPy's own hook: every device-to-host copy CuPy
  makes (``ndarray.get``, which ``float``, ``item``... go through) calls
  ``cupy._core.syncdetect._declare_synchronize``, which the test replaces with a counter.

ALLOWANCE (remove when merged): on this branch ``clip_grad_norm_`` still reads one float per
gradient; the engine branch makes it sync-free, returning a 0-d device Tensor. The tests allow
at most one read per parameter inside ``clip_grad_norm_`` while it returns a Python float, and
none once it returns a Tensor, so the allowance switches itself off with that merge.
"""

from __future__ import annotations

import traceback
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import backend
from tinygrad_rnn.charlm import trainer
from tinygrad_rnn.charlm.model import CharRNN
from tinygrad_rnn.nn import functional as F
from tinygrad_rnn.optim import Adam

V, H, LAYERS, T, B = 11, 6, 2, 5, 3


class Reads:
    """The host reads seen while counting, each with the label of the code it happened in."""

    current: Reads | None = None  # the log being filled, None when not counting

    def __init__(self) -> None:
        self.log: list[tuple[str, str, str]] = []  # (label, what, where)
        self.label = "step"

    def add(self, what: str) -> None:
        frames = [f for f in traceback.extract_stack()[:-2] if "tinygrad_rnn" in f.filename]
        where = f"{frames[-1].filename.split('tinygrad_rnn')[-1]}:{frames[-1].lineno}" if frames else "?"
        self.log.append((self.label, what, where))

    def outside(self, label: str) -> list[tuple[str, str, str]]:
        return [r for r in self.log if r[0] != label]

    def inside(self, label: str) -> list[tuple[str, str, str]]:
        return [r for r in self.log if r[0] == label]


def _read(what: str) -> None:
    if Reads.current is not None:
        Reads.current.add(what)


def _wrap(out: Any) -> Any:
    if isinstance(out, np.generic):  # CuPy gives 0-d arrays where NumPy gives scalars
        return np.asarray(out).view(Counting)
    if type(out) is np.ndarray:
        return out.view(Counting)
    if isinstance(out, (tuple, list)):
        return type(out)(_wrap(o) for o in out)
    return out


class Counting(np.ndarray):
    """A NumPy array that logs every conversion to a host value, as a GPU array would sync on it."""

    def __float__(self) -> float:
        _read("float()")
        return super().__float__()

    def __int__(self) -> int:
        _read("int()")
        return super().__int__()

    def __index__(self) -> int:
        _read("index()")
        return super().__index__()

    def __bool__(self) -> bool:
        _read("bool()")
        return super().__bool__()

    def __complex__(self) -> complex:
        _read("complex()")
        return super().__complex__()

    def item(self, *args: Any) -> Any:
        _read("item()")
        return super().item(*args)

    def tolist(self) -> Any:
        _read("tolist()")
        return super().tolist()

    def __repr__(self) -> str:
        _read("repr()")
        return super().__repr__()

    def __getitem__(self, index: Any) -> Any:
        items = index if isinstance(index, tuple) else (index,)
        if any(getattr(i, "dtype", None) == np.bool_ for i in items):
            _read("boolean mask")  # its result's size is the mask's count, read from the device
        return _wrap(super().__getitem__(index))

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return _wrap(super().__array_function__(func, types, args, kwargs))


class CountingNumPy:
    """``numpy`` for the backend's array creation, with every array it returns viewed as Counting."""

    def __getattr__(self, name: str) -> Any:
        attr = getattr(np, name)
        if callable(attr) and not isinstance(attr, type):
            return lambda *args, **kwargs: _wrap(attr(*args, **kwargs))
        return attr


def as_device(monkeypatch) -> None:
    """Make the backend treat Counting arrays as GPU arrays: checks deferred, new arrays Counting."""
    xp = CountingNumPy()
    get_xp, transposed_copy = backend.get_xp, backend._transposed_copy
    monkeypatch.setattr(backend, "reading_blocks", lambda a: isinstance(a, Counting))
    monkeypatch.setattr(backend, "get_xp", lambda a: xp if isinstance(a, Counting) else get_xp(a))
    monkeypatch.setattr(backend, "xp_for", lambda device: xp)
    monkeypatch.setattr(backend, "_transposed_copy", lambda a: _wrap(transposed_copy(a)))


@contextmanager
def counting():
    Reads.current = reads = Reads()
    try:
        yield reads
    finally:
        Reads.current = None


def label_clip(monkeypatch) -> list:
    """Run the trainer's clip_grad_norm_ under the label "clip"; return the list of its results."""
    results: list = []
    real = trainer.clip_grad_norm_

    def clip(params, max_norm):
        log = Reads.current
        if log is not None:
            log.label = "clip"
        try:
            results.append(real(params, max_norm))
        finally:
            if log is not None:
                log.label = "step"
        return results[-1]
    monkeypatch.setattr(trainer, "clip_grad_norm_", clip)
    return results


def check_reads(reads: Reads, clip_results: list, n_params: int, exact: bool = False) -> None:
    """No read outside clip_grad_norm_; inside it, none once it returns a Tensor, else (ALLOWANCE)
    at most one per parameter and step, exactly one with ``exact`` (the proxy sees every gradient)."""
    assert reads.outside("clip") == [], f"host reads inside a training step: {reads.outside('clip')}"
    inside = reads.inside("clip")
    if all(isinstance(r, tg.Tensor) for r in clip_results):  # the sync-free clip_grad_norm_ (engine branch)
        assert inside == [], f"clip_grad_norm_ returns a Tensor but still reads: {inside}"
    elif exact:  # ALLOWANCE until the engine branch is merged: one float() per gradient
        assert len(inside) == n_params * len(clip_results), inside
    else:
        assert len(inside) <= n_params * len(clip_results), inside


def two_steps(model: CharRNN, x: Any, y: Any, monkeypatch) -> tuple[Reads, list, Any]:
    params = list(model.parameters())
    opt = Adam(params, lr=1e-2)
    clip_results = label_clip(monkeypatch)
    state = None
    with counting() as reads:
        for _ in range(2):
            loss, _, state = trainer.update(model, params, opt, x, y, state, 5.0)
    return reads, clip_results, loss


CASES = [("lstm", False), ("lstm", True), ("gru", False), ("gru", True), ("rnn", False)]


@pytest.mark.parametrize("kind,fused", CASES)
def test_training_step_reads_nothing_back_cpu_proxy(kind, fused, monkeypatch):
    model = CharRNN(V, H, LAYERS, kind, generator=tg.Generator(0), fused=fused)
    as_device(monkeypatch)
    for p in model.parameters():
        p.data = p.data.view(Counting)
    rng = np.random.default_rng(0)
    x, y = (rng.integers(0, V, (T, B)).view(Counting) for _ in range(2))
    reads, clip_results, loss = two_steps(model, x, y, monkeypatch)
    params = list(model.parameters())
    # the proxy followed every array that matters: the weights, their gradients, the loss
    assert isinstance(loss.data, Counting)
    assert all(isinstance(a, Counting) for p in params for a in (p.data, p.grad.data))
    check_reads(reads, clip_results, len(params), exact=True)
    with counting() as caller:
        value = loss.item()  # the caller asks for the value: that read is the one it makes
    assert [r[1] for r in caller.log] == ["item()"] and abs(value - np.log(V)) < 0.5


def test_the_proxy_sees_the_reads_the_old_cross_entropy_made(monkeypatch):
    """The counter is not vacuous: the range check and float(count) of the CPU path are reads."""
    logits = tg.Tensor(np.zeros((4, 3)).view(Counting))
    target = tg.Tensor(np.array([0, 1, 2, 1]).view(Counting))
    with counting() as reads:
        F.cross_entropy(logits, target)  # reading_blocks is False here: the CPU path checks at once
    assert [r[1] for r in reads.log] == ["bool()"]
    as_device(monkeypatch)
    with counting() as reads:
        loss = F.cross_entropy(logits, target)
    assert reads.log == [] and isinstance(loss.data, Counting)


@pytest.mark.skipif(not tg.cuda_available(), reason="no CuPy / GPU here")
@pytest.mark.parametrize("kind,fused", CASES)
def test_training_step_reads_nothing_back_on_cuda(kind, fused, monkeypatch):
    cupy = pytest.importorskip("cupy")
    from cupy._core import syncdetect

    monkeypatch.setattr(syncdetect, "_declare_synchronize", lambda: _read("device-to-host copy"))
    with counting() as sanity:
        float(cupy.ones(()))
    assert sanity.log, "CuPy did not call syncdetect._declare_synchronize on float(): the hook moved"
    model = CharRNN(V, H, LAYERS, kind, generator=tg.Generator(0), fused=fused)
    model.to("cuda")
    rng = np.random.default_rng(0)
    x, y = (cupy.asarray(rng.integers(0, V, (T, B))) for _ in range(2))
    reads, clip_results, loss = two_steps(model, x, y, monkeypatch)
    check_reads(reads, clip_results, len(list(model.parameters())))
    assert abs(loss.item() - np.log(V)) < 0.5


def test_out_of_range_targets_raise_on_the_cpu_and_poison_the_loss_where_checks_are_deferred(monkeypatch):
    logits = tg.Tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    target = tg.Tensor(np.array([0, 5, 2, -100]))
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\).*found 5"):
        F.cross_entropy(logits, target)
    monkeypatch.setattr(backend, "reading_blocks", lambda a: True)  # as on the GPU
    loss = F.cross_entropy(logits, target)
    (g,) = tg.grad(loss, [logits])
    assert np.isnan(loss.item()) and np.isnan(g.numpy()).any()  # loud, never a silently wrong value
    ok = F.cross_entropy(logits, tg.Tensor(np.array([0, 1, 2, -100])))
    monkeypatch.undo()
    np.testing.assert_allclose(ok.item(), F.cross_entropy(logits, tg.Tensor(np.array([0, 1, 2, -100]))).item())


def test_one_hot_marks_out_of_range_rows_with_nan_where_checks_are_deferred(monkeypatch):
    ids = tg.Tensor(np.array([0, 3, 1]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        tg.one_hot(ids, 3, dtype="float32")
    monkeypatch.setattr(backend, "reading_blocks", lambda a: True)
    rows = tg.one_hot(ids, 3, dtype="float32").numpy()
    assert np.isnan(rows[1]).all() and rows[0].tolist() == [1, 0, 0] and rows[2].tolist() == [0, 1, 0]
    with pytest.raises(ValueError):  # an integer result has no NaN to carry the error: checked at once
        F.one_hot(ids, 3)
