"""Sequence to sequence: an encoder-decoder LSTM learns to reverse (or sort) strings of letters,
trained with teacher forcing and evaluated with greedy decoding.

Run:  python demos/seq2seq.py [--steps 2000] [--seed 0] [--task reverse|sort] [--plot seq2seq.png]

The encoder reads each string (lengths 3 to 10 in one batch, packed so that every string ends
where it ends) and hands its final (h, c) to the decoder, which writes the answer one letter at
a time and then an end mark. Training feeds the decoder the true previous letter (teacher
forcing); evaluation feeds it its own previous guess (greedy decoding), and a string counts as
right only if the whole answer is (exact match). The baseline copies the input: right exactly
when the input is a palindrome (reverse) or already in order (sort).

Without attention the encoder's final state must hold the whole string: reversing is the
classic test of that (Sutskever et al., 2014); sorting needs only the letter counts and is
learnt several times faster.

The last line printed is one JSON object: {"metric", "value", "baseline", "baseline_value"}.
"""

from __future__ import annotations



import argparse
import json
import random
import time

import tinygrad_rnn as tg
from tinygrad_rnn import nn, optim
from tinygrad_rnn.nn import functional as F

LETTERS = "abcdefgh"
MIN_LEN, MAX_LEN = 3, 10
SOS, EOS = len(LETTERS), len(LETTERS) + 1  # token ids after the letters'
PAD = -100  # ignored by cross_entropy


def make_pair(rng: random.Random, task: str) -> tuple[str, str]:
    s = "".join(rng.choice(LETTERS) for _ in range(rng.randint(MIN_LEN, MAX_LEN)))
    return s, ("".join(sorted(s)) if task == "sort" else s[::-1])


def ids(s: str) -> list[int]:
    return [LETTERS.index(ch) for ch in s]


def padded(rows: list[list[int]], fill: int) -> tg.Tensor:
    """(T, B) int64, time-major, short rows filled with ``fill``."""
    T = max(len(r) for r in rows)
    return tg.tensor([r + [fill] * (T - len(r)) for r in rows]).T


class Seq2Seq(nn.Module):
    def __init__(self, hidden: int, embed: int, gen: tg.Generator) -> None:
        super().__init__()
        self.embed = nn.Embedding(len(LETTERS) + 2, embed, generator=gen)  # letters, SOS, EOS
        self.encoder = nn.LSTM(embed, hidden, generator=gen)
        self.decoder = nn.LSTM(embed, hidden, generator=gen)
        self.head = nn.Linear(hidden, len(LETTERS) + 2, generator=gen)

    def encode(self, sources: list[str]) -> tuple[tg.Tensor, tg.Tensor]:
        """The encoder's (h, c) after each source's own last letter: (1, B, H) each."""
        x = self.embed(padded([ids(s) for s in sources], 0))  # (T, B, E); padding is never read
        packed = nn.pack_padded_sequence(x, [len(s) for s in sources], enforce_sorted=False)
        _, state = self.encoder(packed)
        return state

    def forward(self, sources: list[str], targets: list[str]) -> tg.Tensor:
        """Teacher forcing: the loss of predicting each target letter and the end mark."""
        state = self.encode(sources)
        inputs = padded([[SOS] + ids(t) for t in targets], EOS)  # (T+1, B): SOS, then the true letters
        wanted = padded([ids(t) + [EOS] for t in targets], PAD)  # (T+1, B): the letters, then EOS
        out, _ = self.decoder(self.embed(inputs), state)
        logits = self.head(out)  # (T+1, B, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[2]), wanted.reshape(-1), ignore_index=PAD)

    def greedy(self, sources: list[str]) -> list[str]:
        """Decode each source, feeding back the most likely letter, until EOS (or MAX_LEN + 1 steps)."""
        with tg.no_grad():
            state = self.encode(sources)
            token = tg.tensor([[SOS] * len(sources)])  # (1, B)
            outs = [[] for _ in sources]
            done = [False] * len(sources)
            for _ in range(MAX_LEN + 1):
                out, state = self.decoder(self.embed(token), state)
                best = self.head(out[0]).argmax(axis=1).tolist()
                for b, k in enumerate(best):
                    if not done[b]:
                        if k == EOS or k == SOS:
                            done[b] = True
                        else:
                            outs[b].append(LETTERS[k])
                if all(done):
                    break
                token = tg.tensor([best])
        return ["".join(o) for o in outs]


def exact_match(model: Seq2Seq, pairs: list[tuple[str, str]], batch: int = 500) -> tuple[float, list[str]]:
    guesses = []
    for k in range(0, len(pairs), batch):
        guesses += model.greedy([s for s, _ in pairs[k:k + batch]])
    return sum(g == t for g, (_, t) in zip(guesses, pairs)) / len(pairs), guesses


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (small matrices: one is fastest) [1]")
    ap.add_argument("--task", choices=["reverse", "sort"], default="reverse")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--embed", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--test-size", type=int, default=1000)
    ap.add_argument("--plot", metavar="PATH", help="write the learning curve to PATH (PNG)")
    args = ap.parse_args(argv)
    tg.threads.set_num_threads(args.threads)

    rng = random.Random(args.seed)
    test = [make_pair(rng, args.task) for _ in range(args.test_size)]
    copy = sum(s == t for s, t in test) / len(test)
    model = Seq2Seq(args.hidden, args.embed, tg.Generator(args.seed))
    opt = optim.Adam(model.parameters(), lr=args.lr)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)  # settles at the end
    print(f"{args.task} strings of {MIN_LEN}-{MAX_LEN} letters from {LETTERS!r}; encoder-decoder LSTM({args.hidden}); "
          f"test set {len(test)}; copying the input is right for {copy:.3f}")
    history, start, every = [], time.perf_counter(), max(1, args.steps // 10)
    for step in range(1, args.steps + 1):
        sources, targets = zip(*(make_pair(rng, args.task) for _ in range(args.batch)))
        loss = model(list(sources), list(targets))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % every == 0 or step == args.steps:
            acc, guesses = exact_match(model, test)
            history.append((step, loss.item(), acc))
            print(f"step {step:5d}  loss {loss.item():.4f}  exact match {acc:.3f}  e.g. {test[0][0]} -> "
                  f"{guesses[0]}  ({time.perf_counter() - start:.0f} s)", flush=True)
    acc = history[-1][2]
    if args.plot:
        save_plot(args.plot, history, copy, args.task)
    result = {"metric": "exact_match", "value": acc, "baseline": "copy the input", "baseline_value": copy}
    print(json.dumps(result))
    return result


def save_plot(path: str, history: list, copy: float, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tinygrad_rnn.charlm.plot import save_figure

    steps, losses, accs = zip(*history)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(steps, accs, "o-", label="encoder-decoder LSTM, greedy")
    ax.axhline(copy, color="0.5", ls="--", label=f"copy the input ({copy:.2f})")
    ax.set(xlabel="training step", ylabel="exact match", ylim=(0, 1),
           title=f"{task} strings of {MIN_LEN}-{MAX_LEN} letters")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
