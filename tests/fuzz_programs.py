"""The fuzzer's program generator (tests/test_fuzz.py): which op comes next, on which operands,
with which parameters and values.

Hypothesis supplies a seed (and replays and shrinks failing ones); the choices are then made by
a NumPy generator, so that every op, operand kind and parameter is drawn about equally often
(hypothesis itself favours the first entry of a list a third of the time, which left most
programs two ``neg``s long). Values mix uniform draws with 0, halves and small integers, so that
zeros, ties and exact bounds (the kinks of relu, abs, max, clip, x**p) come up often.

An instruction is ``("op", name, operands, params, mode)`` or ``("inplace", sym, target, operand,
mode)``; an operand is ``("slot", i)`` (an earlier value), ``("const", x)`` (a Python number) or
``("array", a)`` (a constant tensor's values) or, rarely, ``("junk", x)`` (None, a string...:
a mistake the library must refuse with a TypeError); ``mode`` is ``"grad"`` or ``"no_grad"``.
"""

from __future__ import annotations

import numpy as np
from fuzz_ref import BINARY, REDUCE, SYM

import tinygrad_rnn as tg

ELEMENTWISE = ("neg", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "clone", "detach")
VIEWS = ("reshape", "transpose", "expand", "unsqueeze", "squeeze", "getitem")
ARITHMETIC = ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "where", "matmul")
KINDS = {"elementwise": ELEMENTWISE, "reduce": REDUCE, "view": VIEWS, "binary": ARITHMETIC,
         "softmax": ("softmax", "log_softmax"), "pow_k": ("pow_k",), "clip": ("clip",), "join": ("cat", "stack")}
SPECIAL = np.array([-2.0, -1.0, -0.5, 0.0, 0.0, 0.5, 1.0, 2.0])


class Choices:
    """A program's choices, from a NumPy generator seeded by hypothesis."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def pick(self, options: list | tuple) -> object:
        return options[int(self.rng.integers(len(options)))]

    def int(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return int(self.rng.integers(lo, hi + 1))

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def values(self, shape: tuple) -> np.ndarray:
        """float64 values in [-3, 3]: uniform, special (0, halves, small integers), rounded, or mixed."""
        n = int(np.prod(shape))
        uniform = self.rng.uniform(-3.0, 3.0, n)
        special = self.rng.choice(SPECIAL, n)
        mode = self.int(0, 3)
        v = (uniform, special, np.round(uniform, 1), np.where(self.rng.random(n) < 0.3, special, uniform))[mode]
        return v.reshape(shape)

    def shape(self) -> tuple:
        """0 to 3 axes of 1 to 3 (now and then 4) elements."""
        return tuple(self.int(1, 4 if self.chance(0.1) else 3) for _ in range(self.int(0, 3)))

    def broadcastable(self, shape: tuple) -> tuple:
        """A shape that broadcasts with ``shape``: some axes set to 1, leading axes dropped or added."""
        out = [1 if self.chance(0.3) else n for n in shape]
        if out and self.chance(0.3):
            out = out[self.int(1, len(out)):]
        if self.chance(0.2):
            out = [self.int(1, 3)] + out
        return tuple(out)

    def scalar(self) -> float:
        return float(self.pick(SPECIAL)) if self.chance(0.5) else round(float(self.rng.uniform(-3, 3)), 3)


def axis(ch: Choices, ndim: int, multi: bool = True) -> object:
    """None, an axis, a tuple of axes, or (rarely) an axis out of range."""
    if ch.chance(0.05) or ndim == 0:
        return ch.pick([None, 0, -1, ndim + 1]) if ndim == 0 else ndim
    if ch.chance(0.25):
        return None
    if multi and ch.chance(0.3):
        return tuple(sorted(ch.rng.choice(ndim, ch.int(1, ndim), replace=False).tolist()))
    return ch.int(-ndim, ndim - 1)


def index(ch: Choices, shape: tuple) -> object:
    """An index into ``shape``: int, slice (negative steps too), repeated fancy indices, a bool
    mask, an int index tensor, None/Ellipsis, mixed tuples; rarely one out of range."""
    if not shape:
        return ch.pick([(), None, Ellipsis])
    if 0 in shape:  # an empty result of an earlier op (a mask that selected nothing)
        return ch.pick([slice(None), Ellipsis, (None, Ellipsis), slice(None, None, -1)])
    n = shape[0]
    kind = ch.pick(["int", "slice", "fancy", "mask", "tensor", "tuple", "newaxis", "bad"])
    if kind == "int":
        return ch.int(-n, n - 1)
    if kind == "slice":
        return slice(ch.pick([None, ch.int(-n, n)]), ch.pick([None, ch.int(-n, n)]), ch.pick([None, 1, 2, -1]))
    if kind == "fancy":  # repeats add up in backward
        return [ch.int(-n, n - 1) for _ in range(ch.int(1, 5))]
    if kind == "mask":
        return ch.rng.random(shape) < 0.5
    if kind == "tensor":
        return tg.tensor(ch.rng.integers(0, n, (ch.int(1, 3),) * ch.int(1, 2)))
    if kind == "tuple" and len(shape) > 1:
        return (ch.pick([slice(None), slice(None, None, -1)]), [ch.int(0, shape[1] - 1) for _ in range(ch.int(1, 4))])
    if kind == "newaxis":
        return (None, Ellipsis, ch.int(-shape[-1], shape[-1] - 1))
    return n  # out of range


def params(ch: Choices, name: str, shape: tuple) -> dict:
    """The keyword arguments of op ``name`` applied to an operand of ``shape``."""
    ndim, size = len(shape), int(np.prod(shape))
    if name in REDUCE:
        return {"axis": axis(ch, ndim), "keepdims": ch.chance(0.5)}
    if name in ("softmax", "log_softmax"):
        return {"axis": ch.int(-ndim, ndim - 1) if ndim and ch.chance(0.95) else ndim}
    if name == "pow_k":
        return {"k": ch.pick([0, 1, 2, 3, 0.5, -1, 2.5, -2.0])}
    if name == "clip":
        return {"lo": ch.pick([None, ch.scalar()]), "hi": ch.pick([None, ch.scalar()])}
    if name == "reshape":
        return {"shape": ch.pick([(size,), (-1,), tuple(reversed(shape)), (1,) + shape, (size, 1), (size + 1,)])}
    if name == "transpose":
        perm = tuple(ch.rng.permutation(ndim).tolist())
        return {"perm": perm[:-1] if ndim and ch.chance(0.05) else perm}
    if name == "expand":
        other = ch.shape()
        try:
            return {"shape": tuple(np.broadcast_shapes(shape, other))}
        except ValueError:
            return {"shape": other}  # does not broadcast: refused
    if name == "unsqueeze":
        return {"axis": ch.int(-ndim - 1, ndim)}
    if name == "squeeze":
        ones = [i for i, s in enumerate(shape) if s == 1]
        if ones and ch.chance(0.9):
            return {"axis": ch.pick(ones)}
        return {"axis": None if ch.chance(0.5) else ch.int(-max(ndim, 1), max(ndim, 1) - 1)}  # all 1s; or refused
    if name == "getitem":
        return {"index": index(ch, shape)}
    if name in ("cat", "stack"):
        extra = name == "stack"
        return {"axis": ch.int(-ndim - extra, ndim - 1 + extra) if ndim or extra else 0}
    return {}


def fits(name: str, a: tuple, b: tuple) -> bool:
    """Can ``name`` combine operands of shapes ``a`` and ``b``?"""
    if name == "matmul":
        return len(a) >= 1 and len(b) >= 1 and a[-1] == (b[-2] if len(b) > 1 else b[0])
    if name == "cat":
        return len(a) == len(b) and len(a) > 0 and sum(x != y for x, y in zip(a, b)) <= 1
    if name == "stack":
        return a == b
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def partner(ch: Choices, name: str, shape: tuple, dtype: np.dtype, shapes: list[tuple]) -> tuple:
    """The second operand of a binary op on an operand of ``shape``: an earlier value, a Python
    number or a constant tensor, of a fitting shape most of the time."""
    if ch.chance(0.02):  # a mistake: must give a TypeError, never an AttributeError or a NaN
        return ("junk", ch.pick([None, "a", [None], b"x", object()]))
    fitting = [i for i, s in enumerate(shapes) if fits(name, shape, s)]
    roll = ch.int(0, 9)
    if roll < 5 and fitting:
        return ("slot", ch.pick(fitting))
    if roll < 7 and name not in ("matmul", "cat", "stack"):
        return ("const", ch.scalar())
    if roll < 9:
        if name == "matmul":
            k = shape[-1] if shape else 1
            other = ch.pick([(k,), (k, ch.int(1, 3)), (ch.int(1, 2), k, ch.int(1, 3))])
        elif name in ("cat", "stack"):
            other = shape
        else:
            other = ch.broadcastable(shape)
        # the values the library will see: those of the operand's dtype
        return ("array", ch.values(other).astype(dtype).astype(np.float64))
    return ("slot", ch.int(0, len(shapes) - 1))  # anything: maybe refused


def instruction(ch: Choices, shapes: list[tuple], dtypes: list[np.dtype], n_leaves: int) -> tuple:
    """The next instruction of a program whose values have ``shapes`` and ``dtypes`` (the first
    ``n_leaves`` of them its leaves)."""
    mode = "no_grad" if ch.chance(0.15) else "grad"
    a = ch.int(max(0, len(shapes) - 4), len(shapes) - 1) if ch.chance(0.7) else ch.int(0, len(shapes) - 1)
    shape = shapes[a]
    kind = ch.pick(list(KINDS) + ["binary", "elementwise", "view", "inplace"])
    if kind == "inplace":  # mostly an update under no_grad; recorded, it is refused on a tensor with grad
        mode = "grad" if ch.chance(0.2) else "no_grad"
        a = ch.int(0, n_leaves - 1) if ch.chance(0.4) else a  # as an optimizer step updates a weight
        shape = shapes[a]
        return ("inplace", ch.pick(sorted(SYM)), a, partner(ch, "add", shape, dtypes[a], shapes), mode)
    name = ch.pick(KINDS[kind])
    p = params(ch, name, shape)
    if name not in BINARY:
        return ("op", name, [("slot", a)], p, mode)
    other = partner(ch, name, shape, dtypes[a], shapes)
    if name == "cat" and ch.chance(0.9):  # along the axis where the two differ, if they differ in one
        b = shapes[other[1]] if other[0] == "slot" else np.shape(other[1])
        differ = [i for i, (x, y) in enumerate(zip(shape, b)) if x != y] if len(b) == len(shape) else []
        p = {"axis": differ[0]} if len(differ) == 1 else p
    if other[0] == "const" and name not in ("where", "matmul") and ch.chance(0.5):
        return ("op", name, [other, ("slot", a)], p, mode)  # 2.0 - x, 2.0 ** x, ...
    return ("op", name, [("slot", a), other], p, mode)
