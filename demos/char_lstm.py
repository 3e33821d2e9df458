"""A character-level LSTM language model in about 100 lines, with tinygrad_rnn's public API.

Run:  python demos/char_lstm.py [--data FILE] [--steps 1200] [--seed 0] [--plot char_lstm.png]

The same model as ``tinygrad-rnn train`` (which adds checkpoints, resume, metrics and
plots), written out for reading: one-hot characters -> LSTM -> Linear -> softmax.
Backpropagation through time is just ``loss.backward()``: the LSTM's ops were
recorded on the tape step by step, and the engine walks them backwards.

The last 10% of the text is held out. The last line printed is one JSON object with the
held-out bits per character and the unigram baseline's (each character predicted by its
frequency in the training text, the best a model without context can do).
"""

from __future__ import annotations



import argparse
import json
import math
import time
from collections import Counter

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


def bits_per_char(model: CharLSTM, ids: list[int], batch: int, seq: int) -> float:
    """Held-out cross-entropy in bits/char, the state carried across chunks as in training."""
    total, count, state = 0.0, 0, None
    with tg.no_grad():
        stream = batches(ids, batch, seq)
        for _ in range((len(ids) // batch - 1) // seq):
            x, y = next(stream)
            logits, state = model(x, state)
            loss = F.cross_entropy(logits.reshape(-1, model.vocab), y.reshape(-1), reduction="sum")
            total, count = total + loss.item(), count + y.numel()
    return total / count / math.log(2)


def unigram_bits(train: list[int], held_out: list[int], vocab: int) -> float:
    """Bits/char of the held-out text under the training text's character frequencies (add-one)."""
    counts = Counter(train)
    n = len(train) + vocab
    return -sum(math.log2((counts[i] + 1) / n) for i in held_out) / len(held_out)


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


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="a text file (default: the Python standard library's source)")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (small matrices: one is fastest) [1]")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--plot", metavar="PATH", help="write the training loss curve to PATH (PNG)")
    args = ap.parse_args(argv)
    tg.threads.set_num_threads(args.threads)

    text = open(args.data, encoding="utf-8").read() if args.data else builtin_corpus(1_000_000).text
    chars = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(chars)}
    ids = [index[c] for c in text]
    cut = len(ids) * 9 // 10
    train, held_out = ids[:cut], ids[cut:]
    unigram = unigram_bits(train, held_out, len(chars))
    print(f"{len(text):,} characters, vocabulary {len(chars)}; a uniform guess costs "
          f"{math.log(len(chars)):.2f} nats/char, the unigram model {unigram:.2f} bits/char on the held-out 10%")

    gen = tg.Generator(args.seed)
    model = CharLSTM(len(chars), args.hidden, args.layers, gen)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    state, start, history = None, time.perf_counter(), []
    for step, (x, y) in zip(range(1, args.steps + 1), batches(train, args.batch, args.seq)):
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()                                  # BPTT over the seq steps of this chunk
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        state = nn.utils.detach_state(state)              # truncated BPTT: keep the state, cut the graph
        history.append(loss.item())
        if step % 50 == 0 or step == 1:
            rate = step * args.batch * args.seq / (time.perf_counter() - start)
            print(f"step {step:4d}  loss {loss.item():.3f} nats/char  ({rate:,.0f} chars/s)", flush=True)
    bpc = bits_per_char(model, held_out, args.batch, args.seq)
    print(f"held-out: {bpc:.3f} bits/char (unigram {unigram:.3f}) after {time.perf_counter() - start:.0f} s")
    print("\n" + sample(model, chars, "def ", 300, tg.Generator(args.seed + 1)) + "\n")
    if args.plot:
        save_plot(args.plot, history, bpc, unigram)
    result = {"metric": "bits_per_char", "value": bpc, "baseline": "unigram", "baseline_value": unigram}
    print(json.dumps(result))
    return result


def save_plot(path: str, history: list[float], bpc: float, unigram: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tinygrad_rnn.charlm.plot import save_figure

    bits = [v / math.log(2) for v in history]
    smooth, avg = [], bits[0]
    for v in bits:
        avg = 0.95 * avg + 0.05 * v
        smooth.append(avg)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(range(1, len(bits) + 1), bits, color="tab:blue", alpha=0.25, lw=0.8)
    ax.plot(range(1, len(bits) + 1), smooth, color="tab:blue", label="training loss (EMA)")
    ax.axhline(bpc, color="tab:green", ls="-.", label=f"held-out at the end ({bpc:.2f})")
    ax.axhline(unigram, color="0.5", ls="--", label=f"unigram baseline ({unigram:.2f})")
    ax.set(xlabel="training step", ylabel="bits per character", title="character-level LSTM")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
