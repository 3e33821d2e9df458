"""Random programs of ops against a float64 NumPy reference (issue 11, point 7).

Each program is built from a seed that hypothesis draws (and, for a failure, replays and
shrinks; tests/fuzz_programs.py says why the choices themselves come from NumPy's generator):
leaves of float32 or float64 (now and then one of the other dtype), then ops on them and on
earlier results: elementwise, broadcasting binaries with tensors and Python numbers,
reductions, views (reshape, transpose, expand, squeeze, slicing), indexing with repeated fancy
indices, masks and index tensors, matmul, cat/stack, ``detach``, ``no_grad``
and in-place ``+= -= *= /=``; then a backward in one of several ways: ``backward()`` (into
``.grad`` that may already hold something), ``grad()``, ``retain_graph`` run again, or
``create_graph`` and a second derivative.

Every op must give the reference's value, dtype and ``requires_grad``, every gradient the
reference's (``fuzz_ref``: hand-written NumPy VJPs on a tape of its own; second derivatives
against finite differences of that reference), or else raise one of the library's documented
errors where NumPy also refuses the op or the library documents a refusal (mixed float dtypes,
in-place on a tensor that takes part in autograd, a second backward through a released graph).
Anything else (an AttributeError, a NumPy traceback, a wrong number) fails the test.

Tolerances come from the reference itself: it is run again twice with each op's result (and
each gradient term) perturbed by a few units of the program dtype's roundoff and, for a float32
program, once computed in float32 throughout (which shows rounding inside an op, such as a
softmax's cancellation); a value may differ from the exact reference by what those runs differ by
(times a margin) plus a small floor. So an ill-conditioned program (a difference of near-equal
numbers, a tie in a max) is judged by its own conditioning, and a wrong factor anywhere is still
caught.

CI runs 3,000 programs (about 15 s); ``pytest -m long tests/test_fuzz.py`` runs 10,000, or as
many as the environment variable ``FUZZ_PROGRAMS`` says.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from fuzz_programs import Choices, instruction
from fuzz_ref import OPS, Ref, replay
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg

ROUNDOFF = {np.dtype(np.float64): 2.0**-53, np.dtype(np.float32): 2.0**-24}
FLOOR = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-6}


def _allowed(exc: BaseException) -> bool:
    """The errors a program may raise: the library's own (IndexingError is also an IndexError)."""
    return isinstance(exc, tg.TinygradRNNError)


def _close(got: np.ndarray, exact: np.ndarray, noisy: list[np.ndarray], dtype: np.dtype, what: str) -> None:
    """``got`` (the library's) against the exact reference, within what the perturbed reference
    runs differ by (times 8) plus a floor; infinite (or NaN) where the reference is infinite, close
    where it is finite; elements near the dtype's overflow, that some perturbed run sends to Inf,
    or whose tolerance exceeds their size, are skipped."""
    got, exact = np.asarray(got, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    assert got.shape == exact.shape, f"{what}: shape {got.shape}, reference {exact.shape}"
    with np.errstate(all="ignore"):
        spread = np.zeros(exact.shape)
        steady = np.isfinite(exact)
        for n in noisy:
            steady &= np.isfinite(n)
            spread = np.fmax(spread, np.abs(n - exact))
        big = np.finfo(dtype).max / 1e3
        steady &= np.abs(exact) < big
        # Where the reference is +-Inf the library must be too (or NaN); where it is NaN (undefined,
        # e.g. softmax of [inf, 1]) the library may define a value
        infinite = np.isinf(exact)  # (and in every perturbed run: else rounding decides, 1 / var of equal values)
        for n in noisy:
            infinite &= np.isinf(n)
        bad_nonfinite = infinite & np.isfinite(got) & (np.abs(got) < big)
        tol = FLOOR[dtype] * (1 + np.abs(exact)) + 8 * spread
        steady &= (tol < np.abs(exact)) | (spread == 0)  # else not even its sign is determined: 1 / (x - x)
        bad = steady & ~(np.abs(got - exact) <= tol)
    if bad.any() or bad_nonfinite.any():
        i = np.argwhere(bad | bad_nonfinite)[0]
        i = tuple(int(k) for k in i)
        raise AssertionError(f"{what}: {got[i]!r} at {i}, reference {exact[i]!r} (tolerance {tol[i]:.3g}); "
                             f"library {got!r}, reference {exact!r}")


# ---------------------------------------------------------------- running a program

class Slot:
    """A value of the library's side of the program, and its dtype."""

    def __init__(self, t: tg.Tensor) -> None:
        self.t = t

    @property
    def shape(self) -> tuple:
        return tuple(self.t.shape)


def _lib_arg(ref: tuple, slots: list[Slot], dtype: np.dtype) -> object:
    """A slot's tensor, a Python number, or a constant array as a tensor of ``dtype``."""
    kind, x = ref
    if kind == "slot":
        return slots[x].t
    return x if kind in ("const", "junk") else tg.Tensor(np.asarray(x, dtype=dtype))


def _refs(instr: tuple) -> list[tuple]:
    return [("slot", instr[2]), instr[3]] if instr[0] == "inplace" else instr[2]


def _dtypes(refs: list[tuple], slots: list[Slot]) -> list:
    return [slots[x].t.dtype for k, x in refs if k == "slot"]


def _intentional(exc: BaseException, instr: tuple, slots: list[Slot]) -> bool:
    """Refusals the library documents where NumPy would go on: mixed float dtypes, and in-place
    arithmetic on a tensor that takes part in autograd while gradients are recorded."""
    refs = _refs(instr)
    if instr[0] == "inplace" and isinstance(exc, tg.BackwardError):
        return instr[-1] == "grad" and any(slots[x].t.requires_grad for k, x in refs if k == "slot")
    return isinstance(exc, tg.DTypeError) and len(set(_dtypes(refs, slots))) > 1


def _inplace(t: tg.Tensor, sym: str, other: object) -> None:
    if sym == "+":
        t += other
    elif sym == "-":
        t -= other
    elif sym == "*":
        t *= other
    else:
        t /= other


def _step(instr: tuple, slots: list[Slot], ref: Ref, made: list) -> bool:
    """Run one instruction on both sides and check the library against the reference; False
    ends the program (the op was refused, rightly)."""
    try:
        ref.run(instr)
        ref_error = None
    except Exception as exc:  # NumPy refuses it: the library must refuse it too
        ref_error = exc
    refs, mode = _refs(instr), instr[-1]
    dtypes = _dtypes(refs, slots)
    dtype = dtypes[0] if dtypes else np.dtype(np.float64)
    args = [_lib_arg(r, slots, dtype) for r in refs]
    try:
        with tg.no_grad() if mode == "no_grad" else tg.enable_grad():
            if instr[0] == "inplace":
                _inplace(args[0], instr[1], args[1])
            else:
                out = OPS[instr[1]].lib(*args, **instr[3])
    except Exception as exc:
        if any(k == "junk" for k, _ in refs):
            assert isinstance(exc, (TypeError, tg.TinygradRNNError)), f"a junk operand gave {exc!r}"
            return False
        if not _allowed(exc):
            raise
        if ref_error is None:
            assert _intentional(exc, instr, slots), f"the library refused an op NumPy accepts: {exc!r}"
        return False
    assert ref_error is None, f"the library accepted an op NumPy refuses ({ref_error!r})"
    if instr[0] == "inplace":
        made.append((instr[2], args[0].numpy().astype(np.float64)))
        return True
    assert out.dtype == dtype, f"{instr[1]} gave {out.dtype} from {dtype} operands"
    assert out.requires_grad == ref.rg[-1], f"{instr[1]}: requires_grad is {out.requires_grad}"
    assert tuple(out.shape) == ref.values[-1].shape, f"{instr[1]}: shape {out.shape} vs {ref.values[-1].shape}"
    slots.append(Slot(out))
    made.append((len(slots) - 1, out.numpy().astype(np.float64)))
    return True


def programs(seed: int, max_ops: int = 8) -> tuple[dict, list[Slot], list, Choices]:
    """Build and run a program on the library, step by step; return it, its slots, each step's
    result and the choices (which go on to pick the backward)."""
    ch = Choices(seed)
    dtype = np.dtype(ch.pick([np.float64, np.float32]))
    other = np.dtype(np.float32 if dtype == np.float64 else np.float64)
    leaves, rgs, slots = [], [], []
    for k in range(ch.int(1, 3)):
        values = ch.values(ch.shape()).astype(other if ch.chance(0.1) else dtype)
        rg = k == 0 or ch.chance(0.6)
        slots.append(Slot(tg.tensor(values, requires_grad=rg)))
        leaves.append(values.astype(np.float64))
        rgs.append(rg)
    program = {"leaves": leaves, "rgs": rgs, "instrs": [], "leaf_dtypes": [s.t.dtype for s in slots]}
    ref, made = Ref(leaves, rgs), []
    for _ in range(ch.int(1, max_ops)):
        instr = instruction(ch, [s.shape for s in slots], [s.t.dtype for s in slots], len(leaves))
        note(f"step {len(program['instrs'])}: {instr}")
        if not _step(instr, slots, ref, made):
            event(f"ended by a refused {instr[1] if instr[0] == 'op' else 'in-place op'}")
            break
        program["instrs"].append(instr)
        event(f"op {instr[1] if instr[0] == 'op' else 'in-place ' + instr[1]}")
    event(f"{len(program['instrs'])} ops")
    return program, slots, made, ch


# ---------------------------------------------------------------- checking a program

def _expected(ref: Ref, i: int, grads: dict) -> np.ndarray | None:
    return grads.get(ref.ids[i])


def _check_grads(got: list, program: dict, exact: Ref, noisy: list[Ref], root: int, v: np.ndarray,
                 tol_dtype: np.dtype, scale: float = 1.0, pre: dict | None = None) -> None:
    """The library's gradients of the leaves that require grad (None = not reached) against the reference."""
    g_exact = exact.grads(root, v)
    g_noisy = [n.grads(root, v) for n in noisy]
    leaves = [i for i, rg in enumerate(program["rgs"]) if rg]
    for i, g in zip(leaves, got):
        want = _expected(exact, i, g_exact)
        base = None if pre is None else pre.get(i)
        if want is None and base is None:
            assert g is None, f"leaf {i} is not reached from the root, but got a gradient"
            continue
        assert g is not None, f"leaf {i} is reached from the root but got no gradient"
        assert g.dtype == program["leaf_dtypes"][i], f"leaf {i}: gradient of dtype {g.dtype}"

        def add(a, base=base):
            return a if base is None else a + base

        ref_w = np.zeros(np.shape(program["leaves"][i])) if want is None else want * scale
        others = [np.zeros_like(ref_w) if _expected(n, i, gn) is None else _expected(n, i, gn) * scale
                  for n, gn in zip(noisy, g_noisy)]
        _close(g.numpy(), add(ref_w), [add(o) for o in others], tol_dtype, f"gradient of leaf {i}")


def _second_order(ch: Choices, program: dict, slots: list[Slot], root: int, v: np.ndarray, gs: list,
                  exact: Ref) -> None:
    """<d/dx <grad, w>, u> from the library against central differences of the reference gradient."""
    leaves = [i for i, rg in enumerate(program["rgs"]) if rg]
    ws = [ch.values(np.shape(program["leaves"][i])) for i in leaves]
    us = [ch.values(np.shape(program["leaves"][i])) for i in leaves]
    terms = [(g * tg.Tensor(w)).sum() for g, w in zip(gs, ws) if g is not None]
    if not terms or exact.kinked:
        return
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    hs = tg.grad(total, [slots[i].t for i in leaves], allow_unused=True) if total.requires_grad else [None] * len(ws)
    analytic = sum(float((h.numpy() * u).sum()) for h, u in zip(hs, us) if h is not None)

    def contracted(eps: float, size: bool = False) -> float:
        xs = [np.array(x, dtype=np.float64) for x in program["leaves"]]
        for i, u in zip(leaves, us):
            xs[i] = xs[i] + eps * u
        ref = replay(program, xs, frozen=exact)
        g = ref.grads(root, v)
        terms = [g[ref.ids[i]] * w for i, w in zip(leaves, ws) if ref.ids[i] in g]
        return sum(float(np.abs(t).sum() if size else t.sum()) for t in terms)

    e = 1e-5
    with np.errstate(all="ignore"):
        at = {k: contracted(k * e) for k in (-2, -1, 0, 1, 2)}
        fd = [(at[1] - at[-1]) / (2 * e), (at[2] - at[-2]) / (4 * e)]
        one_sided = [(at[1] - at[0]) / e, (at[0] - at[-1]) / e]
    if not np.isfinite(fd + one_sided).all() or not np.isfinite(analytic):
        return
    # relative 1e-5, and what rounding of the terms (not of their sum, which may cancel) does to a
    # difference quotient with step e
    with np.errstate(all="ignore"):
        scale = 1e-5 * (1 + abs(fd[0])) + 1e-14 * contracted(0.0, size=True) / e
    if abs(fd[0] - fd[1]) > scale or abs(one_sided[0] - one_sided[1]) > 1e-3 * (1 + abs(fd[0])):
        event("second order: not smooth, skipped")  # a kink or a tie near the point: no verdict
        return
    event("second order checked")
    richardson = (4 * fd[0] - fd[1]) / 3  # step e and 2e combined: truncation error O(e^4), not O(e^2)
    assert abs(analytic - richardson) <= scale, f"second order: {analytic} vs finite differences {richardson}"


def check_program(program: dict, slots: list[Slot], made: list, ch: Choices) -> None:
    """Values, then one backward (chosen by ``ch``) against the reference."""
    tol_dtype = np.dtype(np.float32) if np.dtype(np.float32) in program["leaf_dtypes"] else np.dtype(np.float64)
    exact = replay(program)
    noisy = [replay(program, eps=4 * ROUNDOFF[tol_dtype], seed=s) for s in (1, 2)]
    if tol_dtype == np.float32:  # rounding inside an op (a softmax's cancellation) shows in a float32 run
        noisy.append(replay(program, dtype=tol_dtype))
    for k, (_slot, got) in enumerate(made[:len(program["instrs"])]):
        _close(got, exact.snapshots[k], [n.snapshots[k] for n in noisy], tol_dtype, f"value after step {k}")
    recorded = [i for i, s in enumerate(slots) if s.t.requires_grad]
    root = ch.pick(recorded) if recorded and ch.chance(0.8) else ch.int(0, len(slots) - 1)
    t = slots[root].t
    v = ch.values(t.shape).astype(t.dtype)
    leaves = [slots[i].t for i, rg in enumerate(program["rgs"]) if rg]
    if not t.requires_grad:
        event("root without grad")
        with pytest.raises(tg.BackwardError, match="does not require grad"):
            t.backward(tg.Tensor(v))
        return
    mode = ch.pick(["backward", "grad", "retain", "create_graph"])
    note(f"backward from slot {root}, mode {mode}, upstream {v!r}")
    event(f"backward mode {mode}")
    v64 = v.astype(np.float64)
    if mode == "backward":  # into .grad that may already hold a gradient
        pre = {}
        for i, rg in enumerate(program["rgs"]):
            if rg and ch.chance(0.5):
                pre[i] = ch.values(slots[i].shape).astype(slots[i].t.dtype)
                slots[i].t.grad = tg.Tensor(pre[i].copy())
        t.backward(tg.Tensor(v))
        _check_grads([x.grad for x in leaves], program, exact, noisy, root, v64, tol_dtype,
                     pre={i: p.astype(np.float64) for i, p in pre.items()})
    elif mode == "grad":
        got = tg.grad(t, leaves, grad_outputs=tg.Tensor(v), allow_unused=True)
        _check_grads(list(got), program, exact, noisy, root, v64, tol_dtype)
    elif mode == "retain":
        t.backward(tg.Tensor(v), retain_graph=True)
        t.backward(tg.Tensor(v), retain_graph=True)
        _check_grads([x.grad for x in leaves], program, exact, noisy, root, v64, tol_dtype, scale=2.0)
        t.backward(tg.Tensor(v))
        if t.node is not None:
            with pytest.raises(tg.BackwardError, match="a second time"):
                t.backward(tg.Tensor(v))
    else:
        gs = tg.grad(t, leaves, grad_outputs=tg.Tensor(v), create_graph=True, allow_unused=True)
        _check_grads(list(gs), program, exact, noisy, root, v64, tol_dtype)
        if tol_dtype == np.float64:
            _second_order(ch, program, slots, root, v64, list(gs), exact)


CHECKS_OFF = list(HealthCheck)
SEEDS = st.integers(0, 2**63 - 1)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN and Inf are part of the programs
@settings(max_examples=3000, suppress_health_check=CHECKS_OFF, deadline=None)
@given(SEEDS)
def test_random_programs_match_the_numpy_reference(seed):
    check_program(*programs(seed))


@pytest.mark.long
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=int(os.environ.get("FUZZ_PROGRAMS", "10000")), derandomize=False, database=None,
          suppress_health_check=CHECKS_OFF, deadline=None)
@given(SEEDS)
def test_random_programs_match_the_numpy_reference_long(seed):
    check_program(*programs(seed, max_ops=12))
