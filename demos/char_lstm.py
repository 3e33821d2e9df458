"""A character-level LSTM language model in about 100 lines, with tinygrad_rnn's public API.

Run:  python demos/char_lstm.py [--data FILE] [--steps 300]

The same model as ``tinygrad-rnn train`` (which adds checkpoints, resume, metrics and
plots), written out for reading: one-hot characters -> LSTM -> Linear -> softmax.
Backpropagation through time is just ``loss.backward()``: the LSTM's ops were
recorded on the tape step by step, and the engine walks them backwards.
"""

from __future__ import annotations

import argparse
import math
import time

import tinygrad_rnn as tg
from tinygrad_rnn import nn, optim
from tinygrad_rnn.charlm import builtin_corpus
from tinygrad_rnn.nn import functional as F


class CharLSTM(nn.Module):
    def __init__(self, vocab: int, hidden: int, layers: int, gen: tg.Generator) -> None:
        super().__init__()
        self.vocab = vocab
        self.rnn = nn.LSTM(vocab, hidden, layers, generator=gen)   # gates i, f, g, o as in PyTorch
        self.head = nn.Linear(hidden, vocab, generator=gen)

    def forward(self, ids: tg.Tensor, state=None):
        x = tg.one_hot(ids, self.vocab, dtype="float32")    # (T, B) -> (T, B, V)
        out, state = self.rnn(x, state)                      # (T, B, H), ((L, B, H), (L, B, H))
        return self.head(out), state                         # (T, B, V)


def batches(ids: list[int], batch: int, seq: int):
    """char-rnn batching: cut the text into `batch` streams and read them `seq` chars at a time."""
    n = len(ids) // batch
    streams = tg.tensor(ids[: n * batch]).reshape(batch, n)   # (B, n)
    while True:
        for p in range(0, n - seq - 1, seq):
            yield streams[:, p: p + seq].T, streams[:, p + 1: p + seq + 1].T   # (T, B) inputs, targets


def sample(model: CharLSTM, chars: str, prime: str, length: int, gen: tg.Generator) -> str:
    index = {c: i for i, c in enumerate(chars)}
    out, state = [index[c] for c in prime], None
    with tg.no_grad():
        logits, state = model(tg.tensor([[i] for i in out]), state)
        for _ in range(length):
            probs = logits[-1, 0].softmax().numpy()
            nxt = gen.choice(probs)
            out.append(nxt)
            logits, state = model(tg.tensor([[nxt]]), state)
    return "".join(chars[i] for i in out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="a text file (default: the Python standard library's source)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()

    text = open(args.data, encoding="utf-8").read() if args.data else builtin_corpus(300_000).text
    chars = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(chars)}
    ids = [index[c] for c in text]
    print(f"{len(text):,} characters, vocabulary {len(chars)}; "
          f"a uniform guess costs {math.log(len(chars)):.2f} nats/char")

    gen = tg.Generator(0)
    model = CharLSTM(len(chars), args.hidden, args.layers, gen)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    state, start = None, time.perf_counter()
    for step, (x, y) in zip(range(1, args.steps + 1), batches(ids, args.batch, args.seq)):
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()                                  # BPTT over the seq steps of this chunk
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        state = nn.utils.detach_state(state)              # truncated BPTT: keep the state, cut the graph
        if step % 50 == 0 or step == 1:
            rate = step * args.batch * args.seq / (time.perf_counter() - start)
            print(f"step {step:4d}  loss {loss.item():.3f} nats/char  ({rate:,.0f} chars/s)")
    print("\n" + sample(model, chars, "def ", 300, tg.Generator(1)))


if __name__ == "__main__":
    main()
