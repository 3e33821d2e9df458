"""Generating text from a character model: temperature, top-k, a seeded generator."""

from __future__ import annotations

from .. import backend
from ..autograd import no_grad
from ..backend import Generator
from ..tensor import Tensor
from .corpus import Vocab
from .model import CharRNN


def pick(logits: Tensor, temperature: float, top_k: int | None, generator: Generator) -> int:
    """One character id from logits (V,): argmax at temperature 0, else a draw from
    softmax(logits / temperature) restricted to the ``top_k`` most likely characters."""
    if temperature == 0:
        return int(logits.argmax().item())
    z = logits.numpy().astype("float64") / temperature   # (V,), on the CPU: one small copy per character
    if top_k is not None and top_k < len(z):
        kth = sorted(z)[-top_k]
        z = backend.where(z >= kth, z, -float("inf"))
    z = z - z.max()
    p = backend.exp(z)
    return generator.choice(p)  # choice normalises


def sample(model: CharRNN, vocab: Vocab, prime: str, length: int, temperature: float = 1.0,
           top_k: int | None = None, generator: Generator | None = None) -> str:
    """``prime`` followed by ``length`` generated characters.

    The prime is read in one pass; then each new character is fed back one step at a time,
    carrying the recurrent state.
    """
    if temperature < 0:
        raise ValueError("--temperature must be >= 0")
    if top_k is not None and top_k < 1:
        raise ValueError("--top-k must be >= 1")
    if not prime:
        raise ValueError("--prime must not be empty")
    generator = generator or Generator(0)
    device = model.head.weight.device
    ids = vocab.encode(prime, "--prime")
    was_training = model.training
    model.eval()
    out: list[int] = []
    with no_grad():
        x = Tensor(backend.as_array([[i] for i in ids], backend.int64, device))   # (T, 1)
        logits, state = model(x, None)
        for i in range(length):
            nxt = pick(logits[-1, 0], temperature, top_k, generator)
            out.append(nxt)
            if i + 1 < length:  # the last character needs no forward pass: nothing follows it
                logits, state = model(Tensor(backend.as_array([[nxt]], backend.int64, device)), state)
    model.train(was_training)
    return prime + vocab.decode(out)
