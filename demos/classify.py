"""Sequence classification: is a bracket string balanced? An LSTM reads strings of 10 to 40
brackets, of different lengths in one batch (packed), and a linear layer classifies its last
hidden state, taken at each string's true length.

Run:  python demos/classify.py [--steps 400] [--seed 0] [--plot classify.png]

The task needs memory across the whole sequence: a string is balanced when the running depth
(+1 for "(", -1 for ")") never drops below zero and ends at zero. Half the strings are balanced;
of the others half have one bracket flipped (the counts differ) and half have the counts right
but a "(" and a later ")" swapped so that the depth dips below zero somewhere: counting alone
does not solve those. The baseline is the majority class of the test set.

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

MIN_LEN, MAX_LEN = 10, 40


# ---------------------------------------------------------------- data

def balanced(n: int, rng: random.Random) -> str:
    """A random balanced string of even length n (a random walk kept at depth >= 0 that ends at 0)."""
    out, depth = [], 0
    for k in range(n):
        left = n - k  # brackets still to place
        if depth == 0:
            opening = True
        elif depth == left:
            opening = False
        else:
            opening = rng.random() < 0.5
        depth += 1 if opening else -1
        out.append("(" if opening else ")")
    return "".join(out)


def is_balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += 1 if ch == "(" else -1
        if depth < 0:
            return False
    return depth == 0


def unbalanced(n: int, rng: random.Random) -> str:
    """A string of length n that is not balanced: one bracket flipped, or a '(' swapped with a
    later ')' so that the counts match but the depth goes below zero."""
    while True:
        s = list(balanced(n, rng))
        if rng.random() < 0.5:
            k = rng.randrange(n)
            s[k] = "(" if s[k] == ")" else ")"
        else:
            i = rng.choice([k for k, ch in enumerate(s) if ch == "("])
            j = rng.choice([k for k, ch in enumerate(s) if ch == ")" and k > i] or [i])
            s[i], s[j] = s[j], s[i]
        candidate = "".join(s)
        if not is_balanced(candidate):
            return candidate


def make_example(rng: random.Random) -> tuple[str, int]:
    n = 2 * rng.randint(MIN_LEN // 2, MAX_LEN // 2)  # even lengths: odd ones would give the answer away
    return (balanced(n, rng), 1) if rng.random() < 0.5 else (unbalanced(n, rng), 0)


def encode(strings: list[str]) -> tuple[tg.Tensor, list[int]]:
    """Padded one-hot batch (T, B, 2) and the lengths; padding is zeros and is never read."""
    T = max(len(s) for s in strings)
    rows = [[[1.0, 0.0] if ch == "(" else [0.0, 1.0] for ch in s] + [[0.0, 0.0]] * (T - len(s)) for s in strings]
    x = tg.tensor(rows).transpose(1, 0, 2)  # (B, T, 2) -> (T, B, 2)
    return x, [len(s) for s in strings]


# ---------------------------------------------------------------- model

class Classifier(nn.Module):
    def __init__(self, hidden: int, gen: tg.Generator) -> None:
        super().__init__()
        self.rnn = nn.LSTM(2, hidden, generator=gen)
        self.head = nn.Linear(hidden, 1, generator=gen)

    def forward(self, x: tg.Tensor, lengths: list[int]) -> tg.Tensor:
        """Logits (B,) of "balanced" from the LSTM's state after each string's last bracket."""
        packed = nn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        _, (h_n, _) = self.rnn(packed)  # h_n (1, B, H): at each string's own length, original order
        return self.head(h_n[0]).reshape(-1)


def accuracy(model: Classifier, data: list[tuple[str, int]], batch: int = 500) -> float:
    correct = 0
    with tg.no_grad():
        for k in range(0, len(data), batch):
            chunk = data[k:k + batch]
            logits = model(*encode([s for s, _ in chunk]))
            correct += sum(int((v > 0) == bool(y)) for v, (_, y) in zip(logits.tolist(), chunk))
    return correct / len(data)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (small matrices: one is fastest) [1]")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--test-size", type=int, default=2000)
    ap.add_argument("--plot", metavar="PATH", help="write the learning curve to PATH (PNG)")
    args = ap.parse_args(argv)
    tg.threads.set_num_threads(args.threads)

    rng = random.Random(args.seed)
    test = [make_example(rng) for _ in range(args.test_size)]
    majority = max(sum(y for _, y in test), sum(1 - y for _, y in test)) / len(test)
    model = Classifier(args.hidden, tg.Generator(args.seed))
    opt = optim.Adam(model.parameters(), lr=args.lr)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)  # settles at the end
    print(f"balanced brackets, lengths {MIN_LEN}-{MAX_LEN}; LSTM({args.hidden}); test set {len(test)}, "
          f"majority class {majority:.3f}")
    history, start = [], time.perf_counter()
    every = max(1, args.steps // 10)
    for step in range(1, args.steps + 1):
        strings, labels = zip(*(make_example(rng) for _ in range(args.batch)))
        logits = model(*encode(list(strings)))
        loss = F.binary_cross_entropy_with_logits(logits, tg.tensor([float(y) for y in labels]))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % every == 0 or step == args.steps:
            acc = accuracy(model, test)
            history.append((step, loss.item(), acc))
            print(f"step {step:5d}  loss {loss.item():.4f}  test accuracy {acc:.3f}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    acc = history[-1][2]
    if args.plot:
        save_plot(args.plot, history, majority)
    result = {"metric": "accuracy", "value": acc, "baseline": "majority class", "baseline_value": majority}
    print(json.dumps(result))
    return result


def save_plot(path: str, history: list[tuple[int, float, float]], majority: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tinygrad_rnn.charlm.plot import save_figure

    steps, _, accs = zip(*history)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(steps, accs, "o-", label="LSTM, test accuracy")
    ax.axhline(majority, color="0.5", ls="--", label=f"majority class ({majority:.2f})")
    ax.set(xlabel="training step", ylabel="accuracy", ylim=(0.4, 1.0), title="Balanced brackets (lengths 10-40)")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
